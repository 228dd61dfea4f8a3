//! Large batches on Serial and Rayon maps, checked against std's HashMap. Each operation
//! takes six bytes: the operation, a batch of up to 20,000 keys, the range they are drawn
//! from (so that duplicates, present and absent keys mix as the bytes choose) and a seed.
//! Batches this large run the rayon engine's parallel tasks (4,096 keys each), lookups
//! that leave the calling thread and duplicates that fall in different tasks; capacities
//! up to 40,000 make full tables and growth at those sizes. Two shapes: `u64` keys with
//! `u32` values (records) and 16-byte keys with 64-byte values (dense values). Run it with
//! `-- -len_control=0 -max_len=200`: libFuzzer otherwise grows its inputs from a few bytes,
//! one operation each, for a long time.
#![no_main]

use flash_map::HashStrategy;
use libfuzzer_sys::fuzz_target;

mod model;

/// A well-mixed 64-bit value of `x` (splitmix64's finaliser).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn run<K: model::Item, V: model::Item>(data: &[u8], key: fn(u64) -> K, value: fn(u64) -> V) {
    let hash = if data[0] & 1 == 0 { HashStrategy::Identity } else { HashStrategy::Murmur3 };
    let cap = 1 + usize::from(u16::from_le_bytes([data[1], data[2]])) % 40_000;
    let mut maps = model::Maps::<K, V>::new(cap, hash, data[0] & 2 != 0);
    for (round, c) in data[3..].chunks_exact(6).enumerate() {
        let n = 1 + usize::from(u16::from_le_bytes([c[1], c[2]])) % 20_000;
        // Keys from [0, range): small ranges repeat keys within the batch and across them.
        let range = 1 + 4 * u64::from(u16::from_le_bytes([c[3], c[4]]));
        let seed = mix(u64::from(c[5]) << 32 | round as u64);
        let pairs: Vec<(K, V)> =
            (0..n as u64).map(|i| (key(mix(seed ^ i) % range), value(mix(seed.wrapping_add(i))))).collect();
        maps.step(c[0], &pairs);
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    if data[0] & 4 == 0 {
        run::<u64, u32>(data, |k| k, |v| v as u32);
    } else {
        run::<[u8; 16], [u8; 64]>(data, key16, value64);
    }
});

/// A 16-byte key of `k`: its bytes, then their complement (every half depends on `k`).
fn key16(k: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&k.to_le_bytes());
    out[8..].copy_from_slice(&(!k).to_le_bytes());
    out
}

/// A 64-byte value of `v`: its bytes at both ends, zeros between.
fn value64(v: u64) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..8].copy_from_slice(&v.to_le_bytes());
    out[56..].copy_from_slice(&v.to_be_bytes());
    out
}
