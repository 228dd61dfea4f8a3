//! `compare -- --patterns`: the key-pattern sweep of issue 10.
//!
//! For each key pattern users have (random, sequential, `i << 20`, shard-prefixed,
//! timestamp-like; and 32-byte keys sharing their first 8 bytes), each hash strategy and
//! each CPU engine: insert into a table sized for the batch (its creation included), get
//! of every present key, get of as many absent keys. Prints the median and the maximum of
//! R runs, and each op's ratio to the random-key time of the same strategy and engine (for
//! the shared-prefix keys: to Murmur3's time on the same keys). Goal: every ratio <= 2.

use std::time::Instant;

use flash_map::{Backend, FlashMap, HashStrategy, Pod};
use flash_map_core::patterns::{shared_prefix_absent, shared_prefix_key, KeyPattern};

const STRATEGIES: [HashStrategy; 3] = [HashStrategy::Identity, HashStrategy::Murmur3, HashStrategy::SipHash13];

/// Median and maximum (ms) of insert (with the table's creation), get hit, get miss.
type Stat = [(f64, f64); 3];

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Runs one case `reps` times; checks every result.
fn run<K: Pod + Send + Sync>(backend: Backend, hash: HashStrategy, keys: &[K], absent: &[K], reps: usize) -> Stat {
    let pairs: Vec<(K, u64)> = keys.iter().enumerate().map(|(i, &k)| (k, i as u64)).collect();
    let mut t: [Vec<f64>; 3] = Default::default();
    for _ in 0..reps {
        let s = Instant::now();
        let mut m: FlashMap<K, u64> =
            FlashMap::builder(keys.len()).backend(backend).hash_strategy(hash).build().expect("map");
        assert_eq!(m.bulk_insert(&pairs).expect("insert"), keys.len());
        t[0].push(ms(s));
        let s = Instant::now();
        let got = m.bulk_get(keys).expect("get");
        t[1].push(ms(s));
        assert!(got.iter().enumerate().all(|(i, g)| *g == Some(i as u64)), "wrong lookup result");
        let s = Instant::now();
        let miss = m.bulk_get(absent).expect("get");
        t[2].push(ms(s));
        assert!(miss.iter().all(Option::is_none), "an absent key was found");
    }
    t.map(|mut v| {
        v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        (v[v.len() / 2], v[v.len() - 1])
    })
}

fn row(label: &str, s: &Stat, base: &Stat) -> f64 {
    let mut worst: f64 = 0.0;
    let cells: Vec<String> = (0..3)
        .map(|op| {
            let r = s[op].0 / base[op].0;
            worst = worst.max(r);
            format!("{:.1} / {:.1} ({r:.2}x)", s[op].0, s[op].1)
        })
        .collect();
    println!("| {label} | {} |", cells.join(" | "));
    worst
}

/// The sweep at `n` keys; true if every ratio is at most 2.
pub(crate) fn sweep(n: usize, reps: usize) -> bool {
    if n == 0 {
        return true;
    }
    let mut worst: f64 = 0.0;
    println!(
        "\nkey patterns, {n} keys, median / max of {reps} runs in ms (ratio of medians to the baseline)\n\
         u64 -> u64; insert includes creating the table; baseline: random keys, same strategy and engine"
    );
    println!("| engine, strategy, keys | insert | get hit | get miss |");
    println!("|---|---|---|---|");
    for backend in [Backend::Serial, Backend::Rayon] {
        for hash in STRATEGIES {
            let mut base = None;
            for p in KeyPattern::ALL {
                eprintln!("patterns {n}: {backend} {hash:?} {}", p.name());
                let keys: Vec<u64> = (0..n as u64).map(|i| p.key(i)).collect();
                let absent: Vec<u64> = (0..n as u64).map(|i| p.absent(i)).collect();
                let s = run(backend, hash, &keys, &absent, reps);
                let b = *base.get_or_insert(s);
                worst = worst.max(row(&format!("{backend} {hash:?} {}", p.name()), &s, &b));
            }
        }
    }
    println!("\n[u8; 32] -> u64 keys sharing their first 8 bytes; baseline: Murmur3, same keys and engine");
    println!("| engine, strategy | insert | get hit | get miss |");
    println!("|---|---|---|---|");
    let keys: Vec<[u8; 32]> = (0..n as u64).map(shared_prefix_key).collect();
    let absent: Vec<[u8; 32]> = (0..n as u64).map(shared_prefix_absent).collect();
    for backend in [Backend::Serial, Backend::Rayon] {
        eprintln!("patterns {n}: {backend} shared prefix");
        let base = run(backend, HashStrategy::Murmur3, &keys, &absent, reps);
        for hash in STRATEGIES {
            let s = if hash == HashStrategy::Murmur3 { base } else { run(backend, hash, &keys, &absent, reps) };
            worst = worst.max(row(&format!("{backend} {hash:?}"), &s, &base));
        }
    }
    println!("\nworst ratio at {n} keys: {worst:.2} (goal <= 2: {})", if worst <= 2.0 { "met" } else { "not met" });
    worst <= 2.0
}
