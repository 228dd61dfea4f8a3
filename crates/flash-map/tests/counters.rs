//! `bulk_add` (k-mer counting) against a model, on every backend, with atomic `TableFull`.

mod common;

use std::collections::BTreeMap;

use common::{backends, from_id};
use flash_map::{Backend, Counter, FlashMap, FlashMapError, HashStrategy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

trait Wrapping: Counter + Copy + PartialEq + std::fmt::Debug + Default + Send + Sync {
    fn wadd(self, o: Self) -> Self;
    fn from_u64(v: u64) -> Self;
}
macro_rules! w {
    ($($t:ty),*) => {$(impl Wrapping for $t {
        fn wadd(self, o: Self) -> Self { self.wrapping_add(o) }
        fn from_u64(v: u64) -> Self { v as $t }
    })*};
}
w!(u32, u64, i32, i64);

fn run<V: Wrapping>(backend: Backend, hash: HashStrategy, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cap = 512;
    let mut map: FlashMap<u64, V> = FlashMap::builder(cap).backend(backend).hash_strategy(hash).build().unwrap();
    let mut model: BTreeMap<u64, V> = BTreeMap::new();
    let mut log = Vec::new();
    let mut fulls = 0;
    for round in 0..150 {
        let n = rng.gen_range(0..400);
        // Few distinct keys, many repeats; values near the type's wrap-around.
        let pairs: Vec<(u64, V)> = (0..n)
            .map(|_| (from_id::<u64>(rng.gen_range(0..700)), V::from_u64(rng.gen::<u64>() >> rng.gen_range(0..64))))
            .collect();
        let mut fresh = std::collections::HashSet::new();
        for (k, _) in &pairs {
            if !model.contains_key(k) {
                fresh.insert(*k);
            }
        }
        let res = map.bulk_add(&pairs);
        if model.len() + fresh.len() > cap {
            assert!(matches!(res, Err(FlashMapError::TableFull { .. })), "round {round}: {res:?}");
            fulls += 1;
            // Make room.
            let drop: Vec<u64> = model.keys().take(200).copied().collect();
            assert_eq!(map.bulk_remove(&drop).unwrap(), drop.len());
            for k in drop {
                model.remove(&k);
            }
        } else {
            assert_eq!(res.unwrap(), fresh.len(), "round {round}");
            for (k, v) in &pairs {
                let e = model.entry(*k).or_default();
                *e = e.wadd(*v);
            }
        }
        let keys: Vec<u64> = model.keys().copied().collect();
        let got = map.bulk_get(&keys).unwrap();
        for (k, g) in keys.iter().zip(got) {
            assert_eq!(g, Some(model[k]), "{backend:?} round {round} key {k}");
        }
        assert_eq!(map.len(), model.len());
        log.push(map.len());
    }
    assert!(fulls > 0, "the full-table path was not exercised");
    log
}

fn all<V: Wrapping>(seed: u64) {
    for hash in [HashStrategy::Identity, HashStrategy::Murmur3] {
        let logs: Vec<Vec<usize>> = backends().into_iter().map(|b| run::<V>(b, hash, seed)).collect();
        assert!(logs.windows(2).all(|w| w[0] == w[1]), "backends disagree");
    }
}

#[test]
fn add_u32() {
    all::<u32>(11);
}

#[test]
fn add_u64() {
    all::<u64>(12);
}

#[test]
fn add_i32() {
    all::<i32>(13);
}

#[test]
fn add_i64() {
    all::<i64>(14);
}
