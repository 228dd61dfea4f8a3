//! Random operation sequences on Serial and Rayon maps, checked against std's HashMap.
//! Keys are 3 bytes (many collisions and duplicates), values 2 bytes, capacity small, so
//! full tables, growth, tombstones and rebuilds all happen.
#![no_main]

use std::collections::{HashMap, HashSet};

use flash_map::{Backend, FlashMap, FlashMapError, HashStrategy};
use libfuzzer_sys::fuzz_target;

type K = [u8; 3];
type V = [u8; 2];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let hash = if data[0] & 1 == 0 { HashStrategy::Identity } else { HashStrategy::Murmur3 };
    let grow = data[0] & 2 != 0;
    let cap = 1 + (data[1] as usize % 64);
    let mut maps: Vec<FlashMap<K, V>> = [Backend::Serial, Backend::Rayon]
        .iter()
        .map(|&b| FlashMap::builder(cap).backend(b).hash_strategy(hash).auto_grow(grow).build().unwrap())
        .collect();
    let mut model: HashMap<K, V> = HashMap::new();
    let mut rest = &data[2..];
    while rest.len() >= 2 {
        let op = rest[0] % 5;
        let n = (rest[1] as usize % 24).min((rest.len() - 2) / 5);
        let body = &rest[2..2 + n * 5];
        rest = &rest[2 + n * 5..];
        let pairs: Vec<(K, V)> = body.chunks_exact(5).map(|c| ([c[0] & 0x1f, c[1] & 3, 0], [c[3], c[4]])).collect();
        let keys: Vec<K> = pairs.iter().map(|p| p.0).collect();
        let fresh: HashSet<K> = keys.iter().filter(|k| !model.contains_key(*k)).copied().collect();
        let fits = grow || model.len() + fresh.len() <= maps[0].capacity();
        match op {
            0 => {
                for m in &mut maps {
                    match m.bulk_insert(&pairs) {
                        Ok(new) => assert!(fits && new == fresh.len()),
                        Err(FlashMapError::TableFull { .. }) => assert!(!fits),
                        Err(e) => panic!("{e}"),
                    }
                }
                if fits {
                    model.extend(pairs.iter().copied());
                }
            }
            1 => {
                let mut seen = HashSet::new();
                let expect: Vec<bool> = keys.iter().map(|k| !model.contains_key(k) && seen.insert(*k)).collect();
                for m in &mut maps {
                    match m.bulk_insert_new(&pairs) {
                        Ok(got) => assert!(fits && got == expect),
                        Err(FlashMapError::TableFull { .. }) => assert!(!fits),
                        Err(e) => panic!("{e}"),
                    }
                }
                if fits {
                    for (p, e) in pairs.iter().zip(&expect) {
                        if *e {
                            model.insert(p.0, p.1);
                        }
                    }
                }
            }
            2 => {
                let expect: Vec<Option<V>> = keys.iter().map(|k| model.get(k).copied()).collect();
                for m in &maps {
                    assert_eq!(m.bulk_get(&keys).unwrap(), expect);
                }
            }
            3 => {
                let distinct: HashSet<K> = keys.iter().copied().collect();
                let expect = distinct.iter().filter(|k| model.remove(*k).is_some()).count();
                for m in &mut maps {
                    assert_eq!(m.bulk_remove(&keys).unwrap(), expect);
                }
            }
            _ => {
                let mut want: Vec<(K, V)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                want.sort();
                for m in &maps {
                    let mut got = m.entries().unwrap();
                    got.sort();
                    assert_eq!(got, want);
                }
            }
        }
        for m in &maps {
            assert_eq!(m.len(), model.len());
        }
    }
});
