//! Transparent huge pages turned off for the process (`prctl(PR_SET_THP_DISABLE)`), as the
//! README and `FlashMapBuilder::build` tell a user who wants no build to wait on a slow huge
//! page: tables still commit when they are built, now in 4 KiB pages, and every backend
//! still matches the model. The flag holds for the whole process, so the check runs in a
//! child process of its own.
#![cfg(target_os = "linux")]

mod common;

use common::backends;
use flash_map::Backend;

const CHILD: &str = "FLASH_MAP_THP_OFF_CHILD";

/// Runs `with_huge_pages_off` in a child process and checks that it ran and passed.
#[test]
fn tables_commit_and_match_the_model_with_huge_pages_off() {
    common::run_in_child("with_huge_pages_off", CHILD, &[], "with huge pages off");
}

#[test]
#[ignore = "run in a child process by tables_commit_and_match_the_model_with_huge_pages_off"]
fn with_huge_pages_off() {
    assert_eq!(std::env::var(CHILD).as_deref(), Ok("1"), "run through the parent test");
    // SAFETY: `prctl` with PR_SET_THP_DISABLE takes integers only and changes nothing but
    // this process's huge-page policy.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) }, 0, "PR_SET_THP_DISABLE");
    // SAFETY: as above; PR_GET_THP_DISABLE reads the flag.
    assert_eq!(unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) }, 1, "the flag holds");
    for b in backends() {
        if b == Backend::Cuda {
            continue;
        }
        // 2M slots: arrays of 2 MiB and more, which the engine advises huge pages for.
        let mut m = common::build_resident(b, 1 << 20);
        let pairs: Vec<(u64, u64)> = (0..300_000u64).map(|i| (common::splitmix(i), i)).collect();
        assert_eq!(m.bulk_insert(&pairs).unwrap(), pairs.len(), "{b}");
        let keys: Vec<u64> = pairs.iter().map(|p| p.0).collect();
        let got = m.bulk_get(&keys).unwrap();
        assert!(got.iter().zip(&pairs).all(|(g, p)| *g == Some(p.1)), "{b}: lookups after the insert");
        let huge = common::proc_bytes("/proc/self/smaps_rollup", "AnonHugePages:");
        assert_eq!(huge, 0, "{b}: {huge} bytes of huge pages with THP off");
        println!("checked {b} with huge pages off");
    }
    // The model, on every CPU backend alike, in tables large enough for huge-page advice.
    common::all_backends::<u64, u64>(200_000, 12, 60_000, 0x7A9);
}
