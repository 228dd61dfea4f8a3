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
