//! One-shot comparison of flash-map's CPU engines with hashbrown, papaya and DashMap, in
//! one process, on the same data (issue #4's table).
//!
//! `cargo run --release -p flash-map-benches --bin compare [-- --w1 N] [--w2 N] [--reps R]`
//! (`-- --churn` instead measures issue #5's churn criterion; `-- --patterns` the key-pattern
//! sweep of issue 10 at `--small N` (default 65536) and `--w2 N` keys, see `sweep.rs`).
//!
//! FlashMap runs with its default hash strategy, Identity: like the peers' hasher, the
//! first 8 key bytes through fmix64.
//!
//! W1: `[u8; 32] -> [u8; 128]` (default 1M pairs); W2: `u64 -> u64` (default 8M pairs).
//! Ops: insert into a table sized for the batch, get of all present keys, get of as many
//! absent keys, remove of all. Peers use the cheapest sound hasher for random keys: the
//! first 8 key bytes through murmur3's fmix64. hashbrown runs a per-key loop on one thread
//! collecting `Vec<Option<V>>`; papaya and DashMap run rayon `par_iter`. Every result is
//! checked. Prints the median of R runs (default 5) and the ratios FlashMap / peer.
//! `COMPARE_ONLY=Serial` (a substring of an engine's name) runs just that engine, for
//! profiling.

use std::time::Instant;

mod sweep;

use flash_map::{Backend, FlashMap};
use flash_map_benches::{data, splitmix, Data, Gen, H};
use rayon::prelude::*;

/// Touches and frees `WARM_BYTES` of fresh memory (in huge pages where the system gives
/// them), so that the engine run next starts with memory the hypervisor has already backed.
/// On these VMs, free guest memory is reported back to the host (`page_reporting`), and the
/// first touch of such memory costs several times a normal page fault: without this,
/// whichever engine runs first after a pause pays for it (a serial insert measured 0.4 s
/// warm and 1.1 s cold; filling a 129 MB result in huge pages 16 ms warm, 235 ms cold).
fn warm_memory() {
    const WARM_BYTES: usize = 1 << 30;
    let mut v: Vec<u8> = Vec::with_capacity(WARM_BYTES);
    let p = v.as_mut_ptr();
    flash_map_cpu::advise_huge(p, WARM_BYTES);
    for i in (0..WARM_BYTES).step_by(4096) {
        // SAFETY: `i < capacity`; the bytes are never read.
        unsafe { p.add(i).write(1) };
    }
    std::hint::black_box(&v);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v[v.len() / 2]
}

fn timed<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed().as_secs_f64() * 1e3, r)
}

/// insert, get hit, get miss, remove, and (not one of the compared ops) the table's creation.
type Times = [f64; 5];

fn check<V: PartialEq + Copy>(got: &[Option<V>], want: impl Iterator<Item = V>) {
    assert!(got.iter().zip(want).all(|(g, w)| *g == Some(w)), "wrong lookup result");
}

fn flash<K: Gen, V: Gen>(backend: Backend, d: &Data<K, V>) -> Times {
    let n = d.pairs.len();
    let (build, mut m) = timed(|| FlashMap::<K, V>::builder(n).backend(backend).build().expect("map"));
    let (a, new) = timed(|| m.bulk_insert(&d.pairs).expect("insert"));
    assert_eq!(new, n);
    let (b, got) = timed(|| m.bulk_get(&d.keys).expect("get"));
    check(&got, d.pairs.iter().map(|p| p.1));
    let (c, miss) = timed(|| m.bulk_get(&d.absent).expect("get"));
    assert!(miss.iter().all(Option::is_none));
    let (e, rem) = timed(|| m.bulk_remove(&d.keys).expect("remove"));
    assert_eq!(rem, n);
    [a, b, c, e, build]
}

fn hashbrown_run<K: Gen, V: Gen>(d: &Data<K, V>) -> Times {
    let n = d.pairs.len();
    let (build, mut m) = timed(|| hashbrown::HashMap::<K, V, H>::with_capacity_and_hasher(n, H::default()));
    let (a, ()) = timed(|| {
        for (k, v) in &d.pairs {
            m.insert(*k, *v);
        }
    });
    let (b, got) = timed(|| d.keys.iter().map(|k| m.get(k).copied()).collect::<Vec<_>>());
    check(&got, d.pairs.iter().map(|p| p.1));
    let (c, miss) = timed(|| d.absent.iter().map(|k| m.get(k).copied()).collect::<Vec<_>>());
    assert!(miss.iter().all(Option::is_none));
    let (e, rem) = timed(|| d.keys.iter().filter(|k| m.remove(*k).is_some()).count());
    assert_eq!(rem, n);
    [a, b, c, e, build]
}

fn papaya_run<K: Gen, V: Gen>(d: &Data<K, V>) -> Times {
    let n = d.pairs.len();
    let (build, m) = timed(|| papaya::HashMap::<K, V, H>::with_capacity_and_hasher(n, H::default()));
    let (a, ()) = timed(|| {
        d.pairs.par_iter().for_each(|(k, v)| {
            m.pin().insert(*k, *v);
        })
    });
    let (b, got) = timed(|| d.keys.par_iter().map(|k| m.pin().get(k).copied()).collect::<Vec<_>>());
    check(&got, d.pairs.iter().map(|p| p.1));
    let (c, miss) = timed(|| d.absent.par_iter().map(|k| m.pin().get(k).copied()).collect::<Vec<_>>());
    assert!(miss.iter().all(Option::is_none));
    let (e, rem) = timed(|| d.keys.par_iter().filter(|k| m.pin().remove(*k).is_some()).count());
    assert_eq!(rem, n);
    [a, b, c, e, build]
}

fn dashmap_run<K: Gen, V: Gen>(d: &Data<K, V>) -> Times {
    let n = d.pairs.len();
    let (build, m) = timed(|| dashmap::DashMap::<K, V, H>::with_capacity_and_hasher(n, H::default()));
    let (a, ()) = timed(|| {
        d.pairs.par_iter().for_each(|(k, v)| {
            m.insert(*k, *v);
        })
    });
    let (b, got) = timed(|| d.keys.par_iter().map(|k| m.get(k).map(|r| *r)).collect::<Vec<_>>());
    check(&got, d.pairs.iter().map(|p| p.1));
    let (c, miss) = timed(|| d.absent.par_iter().map(|k| m.get(k).map(|r| *r)).collect::<Vec<_>>());
    assert!(miss.iter().all(Option::is_none));
    let (e, rem) = timed(|| d.keys.par_iter().filter(|k| m.remove(*k).is_some()).count());
    assert_eq!(rem, n);
    [a, b, c, e, build]
}

fn workload<K: Gen, V: Gen>(name: &str, n: usize, reps: usize) -> bool {
    if n == 0 {
        eprintln!("{name}: skipped (size 0)");
        return true;
    }
    eprintln!("{name}: generating {n} pairs ...");
    let d = data::<K, V>(n);
    let names = ["FlashMap Serial (Identity)", "FlashMap Rayon (Identity)", "hashbrown", "papaya", "DashMap"];
    let mut runs: Vec<Vec<Times>> = vec![Vec::new(); names.len()];
    let only = std::env::var("COMPARE_ONLY").ok();
    let want = |i: usize| only.as_deref().is_none_or(|o| names[i].contains(o));
    for rep in 0..reps {
        eprintln!("{name}: run {}/{reps}", rep + 1);
        let z = [0.0; 5];
        let run = |i: usize, f: &dyn Fn() -> Times| {
            if want(i) {
                warm_memory();
                f()
            } else {
                z
            }
        };
        runs[0].push(run(0, &|| flash(Backend::Serial, &d)));
        runs[1].push(run(1, &|| flash(Backend::Rayon, &d)));
        runs[2].push(run(2, &|| hashbrown_run(&d)));
        runs[3].push(run(3, &|| papaya_run(&d)));
        runs[4].push(run(4, &|| dashmap_run(&d)));
        if std::env::var_os("COMPARE_VERBOSE").is_some() {
            for (i, r) in runs.iter().enumerate() {
                eprintln!("  {}: {:?}", names[i], r.last().map(|t| t.map(|x| (x * 10.0).round() / 10.0)));
            }
        }
    }
    let med: Vec<Times> =
        runs.iter().map(|r| std::array::from_fn(|op| median(r.iter().map(|t| t[op]).collect()))).collect();
    let ops = ["insert", "get hit", "get miss", "remove", "(build)"];
    println!("\n{name} ({n} pairs, median of {reps}, ms; build: creating the table sized for the batch, not compared)");
    println!("| engine | {} |", ops.join(" | "));
    println!("|---|---|---|---|---|---|");
    for (i, m) in med.iter().enumerate() {
        println!("| {} | {} |", names[i], m.map(|t| format!("{t:.1}")).join(" | "));
    }
    let ratio = |a: usize, b: usize| -> [f64; 4] { std::array::from_fn(|op| med[a][op] / med[b][op]) };
    let goals = [
        ("Serial / hashbrown", ratio(0, 2), 0.7),
        ("Rayon / papaya", ratio(1, 3), 0.8),
        ("Rayon / DashMap", ratio(1, 4), 0.5),
    ];
    let mut all = true;
    for (label, r, goal) in goals {
        let ok = r.iter().all(|&x| x <= goal);
        all &= ok;
        println!(
            "| {label} (goal <= {goal}) | {} | {} |",
            r.map(|x| format!("{x:.2}{}", if x <= goal { "" } else { " ✗" })).join(" | "),
            if ok { "met" } else { "not met" }
        );
    }
    all
}

/// Issue #5's churn criterion: a table of capacity 64K holding 32K live keys goes through
/// 300 rounds of inserting and removing 16K fresh keys; lookups of absent keys must then cost
/// at most 2x what they cost before. Prints both times and the ratio per backend.
fn churn() -> bool {
    let mut ok = true;
    for backend in [Backend::Serial, Backend::Rayon] {
        let mut m: FlashMap<u64, u64> = FlashMap::builder(64 * 1024).backend(backend).build().expect("map");
        let live: Vec<(u64, u64)> = (0..32 * 1024).map(|i| (splitmix(i), i)).collect();
        m.bulk_insert(&live).expect("insert");
        let absent: Vec<u64> = (0..1 << 20).map(|i| splitmix(i + (1 << 50))).collect();
        let miss_time = |m: &FlashMap<u64, u64>| {
            median(
                (0..7)
                    .map(|_| {
                        let (t, r) = timed(|| m.bulk_contains(&absent).expect("contains"));
                        assert!(r.iter().all(|&c| !c));
                        t
                    })
                    .collect(),
            )
        };
        let before = miss_time(&m);
        let mut next = 1u64 << 40;
        for _ in 0..300 {
            let fresh: Vec<(u64, u64)> = (0..16 * 1024).map(|i| (splitmix(next + i), i)).collect();
            next += 16 * 1024;
            m.bulk_insert(&fresh).expect("insert");
            let keys: Vec<u64> = fresh.iter().map(|p| p.0).collect();
            assert_eq!(m.bulk_remove(&keys).expect("remove"), keys.len());
        }
        let keys: Vec<u64> = live.iter().map(|p| p.0).collect();
        assert!(m.bulk_contains(&keys).expect("contains").iter().all(|&c| c), "live keys lost");
        let after = miss_time(&m);
        let ratio = after / before;
        ok &= ratio <= 2.0;
        println!(
            "churn {backend}: 1M absent-key lookups {before:.2} ms before, {after:.2} ms after 300 rounds ({ratio:.2}x, goal <= 2): {}; {:?}",
            if ratio <= 2.0 { "met" } else { "not met" },
            m.stats()
        );
    }
    ok
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--churn") {
        let ok = churn();
        println!("churn goal met: {ok}");
        return;
    }
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let reps = arg("--reps", 5);
    if args.iter().any(|a| a == "--patterns") {
        let reps = arg("--reps", 3);
        let small = sweep::sweep(arg("--small", 1 << 16), reps);
        let large = sweep::sweep(arg("--w2", 8_000_000), reps);
        println!("\nkey-pattern goal met: {}", small && large);
        return;
    }
    println!("threads: {}", rayon::current_num_threads());
    let w1 = workload::<[u8; 32], [u8; 128]>("W1 [u8;32]->[u8;128]", arg("--w1", 1_000_000), reps);
    let w2 = workload::<u64, u64>("W2 u64->u64", arg("--w2", 8_000_000), reps);
    println!("\nall goals met: {}", w1 && w2);
}
