//! Quick start: 1M `[u8; 32] -> [u8; 128]` pairs inserted, looked up and removed on the best
//! backend available, with throughput.
//!
//! `cargo run --release --example quickstart [-- N]` (add `--features rayon` or `cuda`).

use std::time::Instant;

use flash_map::FlashMap;

type Key = [u8; 32];
type Value = [u8; 128];

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A pseudo-random 32-byte key (like a public key) for index `i` of stream `s`.
fn key(s: u64, i: u64) -> Key {
    let mut k = [0u8; 32];
    for (j, c) in k.chunks_exact_mut(8).enumerate() {
        c.copy_from_slice(&splitmix(s ^ (i << 2 | j as u64)).to_le_bytes());
    }
    k
}

fn value(i: u64) -> Value {
    let mut v = [0u8; 128];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v[120..].copy_from_slice(&(!i).to_le_bytes());
    v
}

fn rate(n: usize, secs: f64) -> String {
    format!("{:>8.2} ms  {:>7.2} M ops/s", secs * 1e3, n as f64 / secs / 1e6)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(1_000_000);

    println!("generating {n} pairs of [u8; 32] -> [u8; 128] ...");
    let pairs: Vec<(Key, Value)> = (0..n as u64).map(|i| (key(1, i), value(i))).collect();
    let keys: Vec<Key> = pairs.iter().map(|p| p.0).collect();
    let absent: Vec<Key> = (0..n as u64).map(|i| key(2, i)).collect();

    let mut map: FlashMap<Key, Value> = FlashMap::with_capacity(n)?;
    println!("{map:?}");

    let t = Instant::now();
    let new = map.bulk_insert(&pairs)?;
    println!("insert   {}  ({new} new)", rate(n, t.elapsed().as_secs_f64()));
    assert_eq!(new, n);

    let t = Instant::now();
    let got = map.bulk_get(&keys)?;
    println!("get hit  {}", rate(n, t.elapsed().as_secs_f64()));
    let ok = got.iter().zip(&pairs).filter(|(g, p)| **g == Some(p.1)).count();
    assert_eq!(ok, n, "every key must be found with its value");

    let t = Instant::now();
    let miss = map.bulk_get(&absent)?;
    println!("get miss {}", rate(n, t.elapsed().as_secs_f64()));
    assert!(miss.iter().all(Option::is_none));

    let t = Instant::now();
    let removed = map.bulk_remove(&keys)?;
    println!("remove   {}  ({removed} removed)", rate(n, t.elapsed().as_secs_f64()));
    assert_eq!(removed, n);
    assert!(map.is_empty());

    println!("backend {}: {n} pairs inserted, found, missed and removed; all results verified", map.backend());
    Ok(())
}
