//! Every call either succeeds or fails with the map exactly as it was, also when memory
//! runs out (issue 11, defects 2 and 3). The checks run in a child process whose address
//! space is limited to just above what it already uses, so that any further table-sized
//! allocation fails while small ones still succeed.
#![cfg(target_os = "linux")]

mod common;

use common::backends;
use flash_map::{Backend, FlashMap, FlashMapError, HashStrategy};

const CHILD: &str = "FLASH_MAP_ALLOC_CHILD";

/// Runs `under_an_address_space_limit` in a child process and checks that it ran and passed.
#[test]
fn calls_succeed_or_change_nothing_when_memory_runs_out() {
    // One malloc arena: threads touching the allocator after the limit do not each reserve
    // a fresh 64 MiB arena.
    common::run_in_child("under_an_address_space_limit", CHILD, &[("MALLOC_ARENA_MAX", "1")], "under the limit");
}

/// Bytes of address space this process uses (`VmSize`).
fn address_space() -> usize {
    common::proc_bytes("/proc/self/status", "VmSize:")
}

/// Limits the address space to what is in use plus `extra` bytes.
fn limit_address_space(extra: usize) {
    let limit = (address_space() + extra) as libc::rlim_t;
    let r = libc::rlimit { rlim_cur: limit, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: `r` is a valid rlimit; lowering the soft limit is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) }, 0, "setrlimit");
}

fn get(m: &FlashMap<u64, u64>, keys: &[u64]) -> Vec<Option<u64>> {
    m.bulk_get(keys).expect("lookups allocate only their results")
}

#[test]
#[ignore = "run in a child process by calls_succeed_or_change_nothing_when_memory_runs_out"]
fn under_an_address_space_limit() {
    assert_eq!(std::env::var(CHILD).as_deref(), Ok("1"), "run through the parent test");
    // Everything that needs memory is made before the limit: the maps (2M slots: each
    // array, and any second table or per-slot word array, is megabytes), the batches, and
    // rayon's threads.
    let cpu: Vec<Backend> = backends().into_iter().filter(|&b| b != Backend::Cuda).collect();
    let mut maps = Vec::new();
    for &b in &cpu {
        let build = |cap: usize, lf: f64| {
            FlashMap::<u64, u64>::builder(cap).backend(b).max_load_factor(lf).build().expect("build")
        };
        let mut dup = build(1 << 20, 0.5);
        dup.bulk_insert(&[(1, 10), (2, 20), (3, 30)]).unwrap();
        // 300,000 entries, then 270,000 removals: past the tombstone limit (262,144).
        let mut churn = build(1 << 20, 0.5);
        let many: Vec<(u64, u64)> = (0..300_000).map(|i| (i, i * 2)).collect();
        churn.bulk_insert(&many).unwrap();
        // Capacity 1,038,090 of 1,048,576 slots: inserts after removals use up the headroom.
        let mut dense = build(1_000_000, 0.99);
        let cap = dense.capacity() as u64;
        let fill: Vec<(u64, u64)> = (0..cap).map(|i| (i, i)).collect();
        dense.bulk_insert(&fill).unwrap();
        let mut grow = FlashMap::<u64, u64>::builder(1 << 20).backend(b).auto_grow(true).build().expect("build");
        let full: Vec<(u64, u64)> = (0..grow.capacity() as u64).map(|i| (i, i)).collect();
        grow.bulk_insert(&full).unwrap();
        let mut shared = FlashMap::<[u8; 32], u32>::builder(1 << 18).backend(b).build().expect("build");
        let first: Vec<([u8; 32], u32)> = (0..100_000u32).map(|i| (distinct_key(i), i)).collect();
        shared.bulk_insert(&first).unwrap();
        assert_eq!(shared.hash_strategy(), HashStrategy::Identity, "distinct first bytes so far");
        maps.push((b, dup, churn, dense, grow, shared));
    }
    let gone: Vec<u64> = (0..270_000).collect();
    let dense_gone: Vec<u64> = (0..40_000).map(|i| i * 25).collect();
    let dense_new: Vec<(u64, u64)> = (0..40_000).map(|i| (1 << 40 | i, i)).collect();
    let over: Vec<(u64, u64)> = (0..10).map(|i| (1 << 41 | i, i)).collect();
    let collide: Vec<([u8; 32], u32)> =
        (0..1_000u32).map(|i| (flash_map_core::patterns::shared_prefix_key(i as u64), i)).collect();
    let probe: Vec<u64> = vec![1, 2, 3, 4, 5];

    limit_address_space(2 << 20);
    // The maps stay alive to the end: memory a dropped map frees would lift the limit for
    // the next backend.
    for (b, dup, churn, dense, grow, shared) in maps.iter_mut() {
        let b = *b;
        // Defect 3: a rayon upsert with duplicates needs the per-slot words for its
        // election; without memory for them the call fails and nothing changes.
        let before = get(dup, &probe);
        match dup.bulk_insert(&[(1, 11), (4, 40), (4, 41), (5, 50)]) {
            Ok(new) => {
                assert_eq!(new, 2, "{b}");
                assert_eq!(get(dup, &probe), vec![Some(11), Some(20), Some(30), Some(41), Some(50)], "{b}");
                assert_eq!(dup.len(), 5, "{b}");
            }
            Err(e) => {
                assert!(matches!(e, FlashMapError::AllocationFailed { .. }), "{b}: {e}");
                assert_eq!(get(dup, &probe), before, "{b}: a failed insert changed the map");
                assert_eq!(dup.len(), 3, "{b}");
            }
        }
        // Defect 2: removals past the tombstone limit compact without a second table, so
        // they succeed even with no memory for one.
        assert_eq!(churn.bulk_remove(&gone).expect("removal needs no memory"), 270_000, "{b}");
        let s = churn.stats();
        assert_eq!((s.len, s.tombstones), (30_000, 0), "{b}: compacted in place");
        assert_eq!(get(churn, &[269_999, 270_000, 299_999]), vec![None, Some(540_000), Some(599_998)], "{b}");
        // Defect 1 under the limit: inserts that use up the headroom compact in place.
        assert_eq!(dense.bulk_remove(&dense_gone).unwrap(), 40_000, "{b}");
        assert_eq!(dense.bulk_insert(&dense_new).expect("compaction needs no memory"), 40_000, "{b}");
        common::assert_headroom(dense, &format!("{b} dense"));
        assert_eq!(get(dense, &[0, 1, 25, 1 << 40 | 7]), vec![None, Some(1), None, Some(7)], "{b}");
        // Growth needs a larger table: it fails, and the batch with it, changing nothing.
        let len = grow.len();
        let e = grow.bulk_insert(&over).expect_err("no memory to grow");
        assert!(matches!(e, FlashMapError::AllocationFailed { .. }), "{b}: {e}");
        assert_eq!((grow.len(), get(grow, &[1 << 41, 5])), (len, vec![None, Some(5)]), "{b}");
        // Keys sharing their first 8 bytes: the map switches to a stronger hash in place.
        assert_eq!(shared.bulk_insert(&collide).expect("rehash needs no memory"), 1_000, "{b}");
        assert_ne!(shared.hash_strategy(), HashStrategy::Identity, "{b}");
        let got = shared.bulk_get(&[collide[999].0, distinct_key(0)]).unwrap();
        assert_eq!(got, vec![Some(999), Some(0)], "{b}");
        println!("checked {b} under the limit");
    }
}

/// A 32-byte key whose first 8 bytes differ from every other's.
fn distinct_key(i: u32) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&(u64::from(i) + 1).to_le_bytes());
    k
}

/// `build` commits a CPU table whatever the huge-page policy chose (issue 13): its memory is
/// resident when `build` returns, so that memory the system cannot give fails `build`, not
/// a later batch. (Tests run in parallel threads; the table is large enough that their
/// allocations cannot account for it.)
#[test]
fn build_leaves_the_table_resident() {
    for b in [Backend::Serial, Backend::Rayon] {
        if !b.is_compiled() {
            continue;
        }
        common::build_resident(b, 4 << 20);
    }
}
