//! Tables built with `use_reserved_huge_pages(true)`: where the system's pool of reserved
//! huge pages (`vm.nr_hugepages`) has room for a table, its arrays come from there
//! (`HugetlbPages` of the process grows by the table's bytes); where the pool is empty, they
//! come from ordinary memory, committed as usual. Every backend matches the model either
//! way. The switch holds for the whole process, so the check runs in a child process of
//! its own; which case it met, it prints.
#![cfg(target_os = "linux")]

mod common;

use common::backends;
use flash_map::{Backend, FlashMap};

const CHILD: &str = "FLASH_MAP_RESERVED_HUGE_PAGES_CHILD";

/// Runs `with_reserved_huge_pages` in a child process and checks that it ran and passed.
#[test]
fn tables_take_reserved_huge_pages_where_the_pool_has_them() {
    let out = common::run_in_child("with_reserved_huge_pages", CHILD, &[], "with reserved huge pages");
    for line in out.lines().filter(|l| l.contains("reserved huge pages:")) {
        eprintln!("{line}");
    }
}

/// Free pages of the pool, and their size in bytes (0 pages where the system keeps none).
fn pool_free() -> (usize, usize) {
    let text = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    let free = flash_map_cpu::meminfo_count(&text, "HugePages_Free:").unwrap_or(0);
    (free, flash_map_cpu::meminfo_bytes(&text, "Hugepagesize:").unwrap_or(2 << 20))
}

#[test]
#[ignore = "run in a child process by tables_take_reserved_huge_pages_where_the_pool_has_them"]
fn with_reserved_huge_pages() {
    assert_eq!(std::env::var(CHILD).as_deref(), Ok("1"), "run through the parent test");
    assert!(!flash_map::use_reserved_huge_pages(true), "off by default");
    assert!(flash_map::use_reserved_huge_pages(true), "on once asked");
    let hugetlb = || common::proc_bytes("/proc/self/status", "HugetlbPages:");
    for b in backends() {
        if b == Backend::Cuda {
            continue;
        }
        let (free, page) = pool_free();
        let before = hugetlb();
        // 2M slots: a 2 MiB array of state bytes and 32 MiB of records. From an empty pool,
        // ordinary memory, committed at the build as without the switch: `build_resident`
        // checks that (resident memory does not count the pool's pages, so only there).
        let mut m: FlashMap<u64, u64> = if free == 0 {
            common::build_resident(b, 1 << 20)
        } else {
            FlashMap::builder(1 << 20).backend(b).build().expect("build")
        };
        let table = m.stats().slots * (1 + 8 + 8);
        let taken = hugetlb() - before;
        // Each array rounds up to whole pages: three of them at most.
        if free * page >= table + 3 * page {
            assert!(taken >= table, "{b}: {taken} bytes of reserved huge pages for a {table}-byte table");
            println!("{b}: reserved huge pages: {taken} bytes taken of {} free", free * page);
        } else if free == 0 {
            assert_eq!(taken, 0, "{b}: reserved huge pages taken from an empty pool");
            println!("{b}: reserved huge pages: none free: the table committed in ordinary memory");
        } else {
            println!("{b}: reserved huge pages: {free} free, too few for the table; {taken} bytes taken");
        }
        let pairs: Vec<(u64, u64)> = (0..300_000u64).map(|i| (common::splitmix(i), i)).collect();
        assert_eq!(m.bulk_insert(&pairs).unwrap(), pairs.len(), "{b}");
        let keys: Vec<u64> = pairs.iter().map(|p| p.0).collect();
        let got = m.bulk_get(&keys).unwrap();
        assert!(got.iter().zip(&pairs).all(|(g, p)| *g == Some(p.1)), "{b}: lookups after the insert");
        drop(m);
        // The next backend's table takes fresh memory, not this one's arrays.
        flash_map::release_spare_memory();
        assert_eq!(hugetlb(), before, "{b}: the pool's pages went back when the table was dropped");
        println!("checked {b} with reserved huge pages");
    }
    // The model, on every CPU backend alike, in tables large enough for huge pages.
    common::all_backends::<u64, u64>(200_000, 12, 60_000, 0x4E5);
}
