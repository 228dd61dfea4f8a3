//! Runs both examples as the README does, 2 processes × 2 workers on localhost (at a small
//! size), and checks that every process verified its results. `cargo test` builds the
//! examples first.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir").join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} is missing: run `cargo test -p flash-map-timely`, which builds it", path.display());
    path
}

/// The two tests run one at a time: each picks ports that are free when it starts and lets
/// go of them for its processes to bind, and a test running beside it could take one of them
/// meanwhile (as `processes.rs` once saw in CI).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `name` as 2 processes of 2 workers with a hostfile of free localhost ports.
fn two_by_two(name: &str, args: &[&str]) -> Vec<String> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let ports: Vec<TcpListener> = (0..2).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let hosts: String = ports.iter().map(|l| format!("{}\n", l.local_addr().unwrap())).collect();
    drop(ports);
    let hostfile = std::env::temp_dir().join(format!("fmt-hosts-{name}-{}", std::process::id()));
    std::fs::write(&hostfile, hosts).unwrap();
    let children: Vec<_> = (0..2)
        .map(|p| {
            Command::new(example(name))
                .args(["-w", "2", "-n", "2", "-p", &p.to_string(), "-h", hostfile.to_str().unwrap()])
                .args(["--connect-timeout", "30"])
                .args(args)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let start = Instant::now();
    let outs: Vec<String> = children
        .into_iter()
        .enumerate()
        .map(|(p, mut c)| {
            while c.try_wait().unwrap().is_none() {
                if start.elapsed() > Duration::from_secs(120) {
                    c.kill().unwrap();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let o = c.wait_with_output().unwrap();
            let t = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            assert!(o.status.success() && t.contains("verified"), "{name} process {p}:\n{t}");
            t
        })
        .collect();
    let _ = std::fs::remove_file(hostfile);
    outs
}

#[test]
fn kmer_count_two_processes() {
    for out in two_by_two("timely_kmer", &["--reads", "4000", "--batch", "1000"]) {
        assert!(out.contains("4 workers") && out.contains("M k-mers/s"), "{out}");
    }
}

#[test]
fn dedup_two_processes() {
    for out in two_by_two("timely_dedup", &["--rounds", "5", "--packets", "5000", "--flows", "20000"]) {
        assert!(out.contains("4 workers") && out.contains("M packets/s"), "{out}");
    }
}
