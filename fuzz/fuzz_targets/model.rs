//! The model check that the fuzz targets share: one operation on a Serial and a Rayon map at
//! once, checked against std's HashMap, and the maps' lengths after it.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;

use flash_map::{Backend, FlashMap, FlashMapError, HashStrategy, Pod};

/// The trait bounds of a fuzzed key or value.
pub trait Item: Pod + Send + Sync + Eq + Hash + Ord + Debug {}
impl<T: Pod + Send + Sync + Eq + Hash + Ord + Debug> Item for T {}

/// A Serial and a Rayon map built alike, and the model both must match.
pub struct Maps<K: Item, V: Item> {
    maps: Vec<FlashMap<K, V>>,
    model: HashMap<K, V>,
    grow: bool,
}

impl<K: Item, V: Item> Maps<K, V> {
    /// Maps of capacity `cap`, hashing with `hash`, growing when full for `grow`.
    pub fn new(cap: usize, hash: HashStrategy, grow: bool) -> Self {
        let maps = [Backend::Serial, Backend::Rayon]
            .iter()
            .map(|&b| FlashMap::builder(cap).backend(b).hash_strategy(hash).auto_grow(grow).build().unwrap())
            .collect();
        Maps { maps, model: HashMap::new(), grow }
    }

    /// Operation `op % 5` (insert, insert_new, get, remove, entries) with `pairs` (their
    /// keys alone for get and remove) on every map, each result checked against the model,
    /// which then takes the operation too.
    pub fn step(&mut self, op: u8, pairs: &[(K, V)]) {
        let Maps { maps, model, grow } = self;
        let keys: Vec<K> = pairs.iter().map(|p| p.0).collect();
        let fresh: HashSet<K> = keys.iter().filter(|k| !model.contains_key(*k)).copied().collect();
        let fits = *grow || model.len() + fresh.len() <= maps[0].capacity();
        match op % 5 {
            0 => {
                for m in maps.iter_mut() {
                    match m.bulk_insert(pairs) {
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
                for m in maps.iter_mut() {
                    match m.bulk_insert_new(pairs) {
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
                for m in maps.iter() {
                    assert_eq!(m.bulk_get(&keys).unwrap(), expect);
                    let present: Vec<bool> = expect.iter().map(Option::is_some).collect();
                    assert_eq!(m.bulk_contains(&keys).unwrap(), present);
                }
            }
            3 => {
                let distinct: HashSet<K> = keys.iter().copied().collect();
                let expect = distinct.iter().filter(|k| model.remove(*k).is_some()).count();
                for m in maps.iter_mut() {
                    assert_eq!(m.bulk_remove(&keys).unwrap(), expect);
                }
            }
            _ => {
                let mut want: Vec<(K, V)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                want.sort();
                for m in maps.iter() {
                    let mut got = m.entries().unwrap();
                    got.sort();
                    assert_eq!(got, want);
                }
            }
        }
        for m in maps.iter() {
            assert_eq!(m.len(), model.len());
        }
    }
}
