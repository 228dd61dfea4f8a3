//! Capacity: load factor validation, `reserve`, `auto_grow`, and churn without rot.

mod common;

use common::{backends, from_id, model_run, Run};
use flash_map::{FlashMap, FlashMapError, HashStrategy};

#[test]
fn auto_grow_model_on_every_backend() {
    for backend in backends() {
        for hash in [HashStrategy::Identity, HashStrategy::Murmur3] {
            let log = model_run::<[u8; 12], u64>(Run {
                backend,
                hash,
                capacity: 16,
                rounds: 200,
                max_batch: 300,
                seed: 21,
                auto_grow: true,
                load: 0.5,
            });
            assert!(log.iter().all(|l| !l.contains("full")));
        }
    }
}

#[test]
fn auto_grow_keeps_everything() {
    for backend in backends() {
        let mut m: FlashMap<u64, u64> = FlashMap::builder(4).backend(backend).auto_grow(true).build().unwrap();
        let cap0 = m.capacity();
        let pairs: Vec<(u64, u64)> = (0..10_000).map(|i| (i, i * 3)).collect();
        assert_eq!(m.bulk_insert(&pairs).unwrap(), 10_000);
        assert!(m.capacity() >= 10_000 && m.capacity() > cap0);
        let keys: Vec<u64> = (0..10_000).collect();
        let got = m.bulk_get(&keys).unwrap();
        assert!(got.iter().enumerate().all(|(i, g)| *g == Some(i as u64 * 3)));
    }
}

#[test]
fn without_auto_grow_a_full_batch_fails_and_changes_nothing() {
    for backend in backends() {
        let mut m: FlashMap<u64, u64> = FlashMap::builder(8).backend(backend).build().unwrap();
        assert_eq!(m.capacity(), 8);
        m.bulk_insert(&[(1, 1), (2, 2)]).unwrap();
        let big: Vec<(u64, u64)> = (0..9).map(|i| (i, 100)).collect();
        match m.bulk_insert(&big) {
            Err(FlashMapError::TableFull { len: 2, capacity: 8, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(m.bulk_get(&[1, 2, 3]).unwrap(), vec![Some(1), Some(2), None]);
        // Updates never fail for capacity, even at the limit.
        let fill: Vec<(u64, u64)> = (0..8).map(|i| (i, i)).collect();
        assert_eq!(m.bulk_insert(&fill).unwrap(), 6);
        assert_eq!(m.bulk_insert(&fill).unwrap(), 0);
        assert_eq!(m.len(), 8);
        let msg = m.bulk_insert(&[(99, 0)]).unwrap_err().to_string();
        assert!(msg.contains("auto_grow") && msg.contains("reserve"), "{msg}");
    }
}

#[test]
fn reserve_grows_once() {
    for backend in backends() {
        let mut m: FlashMap<[u8; 3], u8> = FlashMap::builder(10).backend(backend).build().unwrap();
        m.bulk_insert(&[([1, 2, 3], 9)]).unwrap();
        m.reserve(1000).unwrap();
        assert!(m.capacity() >= 1001);
        let cap = m.capacity();
        let pairs: Vec<([u8; 3], u8)> = (0..1000u32).map(|i| (from_id(i as u64 + 5), 1)).collect();
        m.bulk_insert(&pairs).unwrap();
        assert_eq!(m.capacity(), cap);
        assert_eq!(m.bulk_get(&[[1, 2, 3]]).unwrap(), vec![Some(9)]);
        assert!(matches!(m.reserve(usize::MAX), Err(FlashMapError::CapacityOverflow { .. })));
    }
}

#[test]
fn max_load_factor_is_validated() {
    for lf in [0.0, 1.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
        let r = FlashMap::<u64, u64>::builder(10).max_load_factor(lf).build();
        assert!(matches!(r, Err(FlashMapError::InvalidLoadFactor(_))), "lf {lf}: {r:?}");
    }
    for lf in [0.1, 0.5, 0.75, 0.95] {
        let m = FlashMap::<u64, u64>::builder(1000).max_load_factor(lf).build().unwrap();
        assert!(m.capacity() >= 1000);
        assert!((m.max_load_factor() - lf).abs() < 1e-12);
    }
}

#[test]
fn high_load_factor_fills_to_capacity() {
    for backend in backends() {
        let mut m: FlashMap<u64, u64> = FlashMap::builder(1000)
            .max_load_factor(0.95)
            .backend(backend)
            .hash_strategy(HashStrategy::Murmur3)
            .build()
            .unwrap();
        let cap = m.capacity();
        let pairs: Vec<(u64, u64)> = (0..cap as u64).map(|i| (i, i)).collect();
        assert_eq!(m.bulk_insert(&pairs).unwrap(), cap);
        assert!(m.load_factor() > 0.9);
        assert!(matches!(m.bulk_insert(&[(u64::MAX, 0)]), Err(FlashMapError::TableFull { .. })));
        let keys: Vec<u64> = (0..cap as u64 + 500).collect();
        let hits = m.bulk_contains(&keys).unwrap().iter().filter(|&&h| h).count();
        assert_eq!(hits, cap);
    }
}

/// Issue #5's churn case: 300 rounds of inserting and removing 16K fresh keys in a table
/// holding 32K live keys (capacity 64K). Every live key stays found, and probe lengths stay
/// bounded: tombstones never exceed one eighth of the slots, so misses still meet an empty
/// slot about as soon as in a fresh table. (The timing side is in `benches/`.)
#[test]
fn churn_does_not_rot_the_table() {
    for backend in backends() {
        let mut m: FlashMap<u64, u64> = FlashMap::builder(64 * 1024).backend(backend).build().unwrap();
        let live: Vec<(u64, u64)> = (0..32 * 1024).map(|i| (from_id::<u64>(i), i)).collect();
        m.bulk_insert(&live).unwrap();
        let live_keys: Vec<u64> = live.iter().map(|p| p.0).collect();
        let mut next = 1u64 << 32;
        for _ in 0..300 {
            let fresh: Vec<(u64, u64)> = (0..16 * 1024).map(|i| (from_id::<u64>(next + i), i)).collect();
            next += 16 * 1024;
            assert_eq!(m.bulk_insert(&fresh).unwrap(), fresh.len());
            let keys: Vec<u64> = fresh.iter().map(|p| p.0).collect();
            assert_eq!(m.bulk_remove(&keys).unwrap(), keys.len());
            let st = m.stats();
            assert!(st.tombstones <= st.slots / 8, "{backend:?}: {st:?}");
        }
        assert_eq!(m.len(), live.len());
        let got = m.bulk_get(&live_keys).unwrap();
        assert!(got.iter().zip(&live).all(|(g, p)| *g == Some(p.1)), "{backend:?}: live keys lost");
        let absent: Vec<u64> = (0..10_000).map(|i| from_id::<u64>((1 << 50) + i)).collect();
        assert!(m.bulk_get(&absent).unwrap().iter().all(Option::is_none));
    }
}

/// A batch far larger than the free capacity fails quickly and changes nothing: the claim
/// pass stops once the batch has certainly failed, instead of filling every slot and then
/// scanning the whole table for each remaining key.
#[test]
fn hugely_overflowing_batch_fails_and_changes_nothing() {
    for backend in backends() {
        let mut m: FlashMap<u64, u64> = FlashMap::builder(1 << 10).backend(backend).build().unwrap();
        m.bulk_insert(&[(7, 7)]).unwrap();
        let big: Vec<(u64, u64)> = (0..300_000).map(|i| (from_id::<u64>(i), i)).collect();
        match m.bulk_insert(&big) {
            Err(FlashMapError::TableFull { len: 1, new, capacity: 1024 }) => assert!(new > 1023),
            other => panic!("{backend:?}: {other:?}"),
        }
        assert!(matches!(m.bulk_add(&big), Err(FlashMapError::TableFull { .. })));
        assert!(matches!(m.bulk_insert_new(&big), Err(FlashMapError::TableFull { .. })));
        assert_eq!(m.len(), 1);
        assert_eq!(m.entries().unwrap(), vec![(7, 7)]);
        assert_eq!(m.stats().tombstones, 0);
    }
}
