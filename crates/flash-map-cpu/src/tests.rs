//! Engine-level unit tests (the model tests live in the umbrella crate).

use flash_map_core::{Batch, HashStrategy, TableLayout};

use crate::{CpuError, CpuTable, Exec};

fn pairs_batch(p: &[(u64, u64)]) -> Batch {
    Batch { base: p.as_ptr() as *const u8, len: p.len(), stride: 16, key_off: 0, val_off: 8 }
}

fn execs() -> Vec<Exec> {
    vec![
        Exec::Serial,
        #[cfg(feature = "rayon")]
        Exec::Rayon,
    ]
}

#[test]
fn table_full_leaves_table_unchanged() {
    for exec in execs() {
        let layout = TableLayout::for_capacity(8, 0.5, 8, 8).unwrap();
        let mut t = CpuTable::new(layout, HashStrategy::Murmur3, exec).unwrap();
        let first: Vec<(u64, u64)> = (0..6).map(|i| (i, i)).collect();
        assert_eq!(t.insert(&pairs_batch(&first)).unwrap(), 6);
        let over: Vec<(u64, u64)> = (0..20).map(|i| (i, 100 + i)).collect();
        let err = t.insert(&pairs_batch(&over)).unwrap_err();
        assert!(matches!(err, CpuError::TableFull { len: 6, capacity: 8, .. }), "{err:?}");
        assert_eq!(t.len(), 6);
        assert_eq!(t.count_full(), 6);
        let mut seen = Vec::new();
        t.for_each_entry(|k, v| seen.push((k[0], v[0])));
        seen.sort();
        assert_eq!(seen, (0..6).map(|i| (i as u8, i as u8)).collect::<Vec<_>>());
    }
}

#[test]
fn removal_compacts_tombstones() {
    for exec in execs() {
        let layout = TableLayout::for_capacity(64, 0.5, 8, 8).unwrap();
        let mut t = CpuTable::new(layout, HashStrategy::Murmur3, exec).unwrap();
        for round in 0..50u64 {
            let p: Vec<(u64, u64)> = (0..30).map(|i| (round * 1000 + i, i)).collect();
            t.insert(&pairs_batch(&p)).unwrap();
            assert_eq!(t.remove(&pairs_batch(&p)).unwrap(), 30);
            assert!(t.tombstones() <= layout.tombstone_limit());
        }
        assert_eq!(t.len(), 0);
        assert!(t.count_empty() > layout.slots / 2);
    }
}

#[test]
fn duplicates_resolve_by_position_on_every_exec() {
    // Small enough for Miri (which runs this crate's tests in CI), with every pass exercised.
    let mut results = Vec::new();
    for exec in execs() {
        let layout = TableLayout::for_capacity(64, 0.5, 8, 8).unwrap();
        let mut t = CpuTable::new(layout, HashStrategy::Identity, exec).unwrap();
        let p: Vec<(u64, u64)> = (0..40).map(|i| (i % 7, i)).collect();
        assert_eq!(t.insert(&pairs_batch(&p)).unwrap(), 7);
        let mut out = vec![false; 40];
        let q: Vec<(u64, u64)> = (0..40).map(|i| (i % 11, 100 + i)).collect();
        assert_eq!(t.insert_new(&pairs_batch(&q), &mut out).unwrap(), 4);
        let keys: Vec<(u64, u64)> = (0..12).map(|k| (k, 0)).collect();
        struct Out(std::sync::Mutex<Vec<Option<u64>>>);
        impl crate::GetSink for Out {
            unsafe fn put(&self, i: usize, v: Option<*const u8>) {
                // SAFETY: a `Some` pointer holds a stored 8-byte value.
                self.0.lock().unwrap()[i] = v.map(|p| unsafe { std::ptr::read_unaligned(p as *const u64) });
            }
        }
        let sink = Out(std::sync::Mutex::new(vec![None; 12]));
        t.get(&pairs_batch(&keys), &sink);
        let got = sink.0.into_inner().unwrap();
        // Keys 0..7: the last of i % 7 == k wins; keys 7..11: the first of i % 11 == k.
        let want: Vec<Option<u64>> = (0..12u64)
            .map(|k| match k {
                0..=6 => Some((0..40).filter(|i| i % 7 == k).max().unwrap()),
                7..=10 => Some(100 + k),
                _ => None,
            })
            .collect();
        assert_eq!(got, want, "{exec:?}");
        let mut counters = CpuTable::new(layout, HashStrategy::Murmur3, exec).unwrap();
        let adds: Vec<(u64, u64)> = (0..40).map(|i| (i % 5, 2)).collect();
        assert_eq!(counters.add(&pairs_batch(&adds), crate::CounterKind::U64).unwrap(), 5);
        results.push((got, out));
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]));
}
