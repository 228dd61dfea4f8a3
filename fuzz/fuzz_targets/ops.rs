//! Random operation sequences on Serial and Rayon maps, checked against std's HashMap.
//! Keys are 3 bytes (many collisions and duplicates), values 2 bytes, capacity small, so
//! full tables, growth, tombstones and rebuilds all happen.
#![no_main]

use flash_map::HashStrategy;
use libfuzzer_sys::fuzz_target;

mod model;

type K = [u8; 3];
type V = [u8; 2];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let hash = if data[0] & 1 == 0 { HashStrategy::Identity } else { HashStrategy::Murmur3 };
    let mut maps = model::Maps::<K, V>::new(1 + (data[1] as usize % 64), hash, data[0] & 2 != 0);
    let mut rest = &data[2..];
    while rest.len() >= 2 {
        let op = rest[0];
        let n = (rest[1] as usize % 24).min((rest.len() - 2) / 5);
        let body = &rest[2..2 + n * 5];
        rest = &rest[2 + n * 5..];
        let pairs: Vec<(K, V)> = body.chunks_exact(5).map(|c| ([c[0] & 0x1f, c[1] & 3, 0], [c[3], c[4]])).collect();
        maps.step(op, &pairs);
    }
});
