//! Two processes on localhost, spawned by the test (this test binary run again as each
//! process): the model job across processes, a peer of other types, and peers that cannot
//! be reached. Every failure must come as an error within a stated time, never a hang.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{assert_outcome, model_job};
use flash_map_timely::{Cluster, Error, ShardBuilder};

/// How long any child process may run before the test fails.
const CHILD_LIMIT: Duration = Duration::from_secs(120);

/// The tests of this file run one at a time. Each picks ports that are free when it starts
/// ([`addresses`]) and lets go of them for its processes to bind; a test running beside it
/// could take one of them meanwhile (for a listener, or as an outgoing connection's local
/// port), or connect to one, and a process of the other test would then fail or answer for
/// it. Seen once in CI: a peer that never listened, "Connection refused" for 5 s.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Holds this file's tests to one at a time (a failed test leaves the lock usable).
fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Two localhost addresses on ports free right now.
fn addresses() -> Vec<String> {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    vec![a.local_addr().unwrap().to_string(), b.local_addr().unwrap().to_string()]
}

/// Starts this test binary as process `p` of a job at `addrs`, running `role`.
fn spawn(role: &str, p: usize, addrs: &[String]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child", "--nocapture", "--test-threads", "1"])
        .env("FMT_ROLE", role)
        .env("FMT_PROCESS", p.to_string())
        .env("FMT_ADDRS", addrs.join(","))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` at most `CHILD_LIMIT`, killing it past that.
fn wait(mut child: Child) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > CHILD_LIMIT {
            child.kill().unwrap();
            panic!("a child process ran past {CHILD_LIMIT:?}: {:?}", child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The body of a spawned process (ignored when the suite runs; started by the tests below).
#[test]
#[ignore = "run by the other tests of this file as a child process"]
fn child() {
    let role = std::env::var("FMT_ROLE").expect("started by a test of this file");
    let p: usize = std::env::var("FMT_PROCESS").unwrap().parse().unwrap();
    let addrs: Vec<String> = std::env::var("FMT_ADDRS").unwrap().split(',').map(String::from).collect();
    let cluster = Cluster::hosts(addrs, p, 2)
        .unwrap()
        .connect_timeout(Duration::from_secs(30))
        .handshake_timeout(Duration::from_secs(30));
    match role.as_str() {
        "model" => {
            let outcomes = model_job(cluster, 3, 1_500).unwrap();
            assert_eq!(outcomes.iter().map(|o| o.index).collect::<Vec<_>>(), vec![2 * p, 2 * p + 1]);
            assert_outcome(&outcomes, 4);
            println!("CHILD OK {}", outcomes.iter().map(|o| o.entries.len()).sum::<usize>());
        }
        "mismatch" => {
            // Process 1 holds 8-byte values where process 0 holds 4-byte ones.
            let r = cluster.run(move |worker, ctx| {
                if p == 0 {
                    ShardBuilder::<u64, u32>::new(16).build(worker, ctx).map(|_| ())
                } else {
                    ShardBuilder::<u64, u64>::new(16).build(worker, ctx).map(|_| ())
                }
            });
            match r {
                Err(e @ Error::Handshake(_)) => println!("CHILD REFUSED {e}"),
                other => panic!("expected a handshake error, got {other:?}"),
            }
        }
        r => panic!("unknown role {r}"),
    }
}

#[test]
fn two_processes_of_two_workers_match_the_model() {
    let _one = one_at_a_time();
    let addrs = addresses();
    let children: Vec<Child> = (0..2).map(|p| spawn("model", p, &addrs)).collect();
    let outs: Vec<Output> = children.into_iter().map(wait).collect();
    let mut held = 0;
    for (p, o) in outs.iter().enumerate() {
        let t = text(o);
        assert!(o.status.success() && t.contains("CHILD OK"), "process {p}:\n{t}");
        held +=
            t.split("CHILD OK ").nth(1).and_then(|s| s.split_whitespace().next()).unwrap().parse::<usize>().unwrap();
    }
    // Each worker checked its shard against the model; together they hold something.
    assert!(held > 0);
}

#[test]
fn a_peer_of_other_types_is_refused_on_both_sides() {
    let _one = one_at_a_time();
    let addrs = addresses();
    let start = Instant::now();
    let children: Vec<Child> = (0..2).map(|p| spawn("mismatch", p, &addrs)).collect();
    for (p, o) in children.into_iter().map(wait).enumerate() {
        let t = text(&o);
        assert!(o.status.success() && t.contains("CHILD REFUSED") && t.contains("8-byte values"), "process {p}:\n{t}");
    }
    assert!(start.elapsed() < Duration::from_secs(60), "took {:?}", start.elapsed());
}

#[test]
fn an_unreachable_peer_is_an_error_at_the_deadline() {
    let _one = one_at_a_time();
    // Process 1 of 2, and nobody listens at process 0's address.
    let addrs = addresses();
    let start = Instant::now();
    let err = Cluster::hosts(addrs.clone(), 1, 1)
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .run(|_, _| Ok(()))
        .unwrap_err();
    let waited = start.elapsed();
    assert!(matches!(err, Error::Connect { peer: 0, .. }), "{err}");
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(10), "waited {waited:?}");
    assert!(err.to_string().contains(&addrs[0]), "{err}");

    // Process 0 of 2, and process 1 never connects.
    let start = Instant::now();
    let err =
        Cluster::hosts(addrs, 0, 1).unwrap().connect_timeout(Duration::from_secs(2)).run(|_, _| Ok(())).unwrap_err();
    assert!(matches!(err, Error::Connect { peer: 1, .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_peer_started_for_another_job_shape_is_refused() {
    let _one = one_at_a_time();
    // Process 1 believes the job has 3 processes; process 0 that it has 2.
    let addrs = addresses();
    let mut three = addrs.clone();
    three.push("127.0.0.1:1".into());
    let a = addrs.clone();
    let zero = std::thread::spawn(move || {
        Cluster::hosts(a, 0, 1).unwrap().connect_timeout(Duration::from_secs(5)).run(|_, _| Ok(()))
    });
    std::thread::sleep(Duration::from_millis(200));
    let one = Cluster::hosts(three, 1, 1).unwrap().connect_timeout(Duration::from_secs(5)).run(|_, _| Ok(()));
    let zero = zero.join().unwrap();
    let msg = one.unwrap_err().to_string();
    assert!(msg.contains("-n 2") && msg.contains("-n 3"), "{msg}\nprocess 0: {zero:?}");
    assert!(zero.is_err());
}
