//! Issue 13's construction check: how long building a table takes in a **fresh process**,
//! and what it leaves resident. One build per process, so that no freed table memory is
//! reused; run it many times (BENCHMARKS.md has the loop).
//!
//! `build_time table w1|w2 PAIRS [serial|rayon]`: builds a map sized for PAIRS pairs
//! (`w1`: `[u8;32] -> [u8;128]`, `w2`: `u64 -> u64`), then inserts PAIRS pairs, and prints
//! the build time, the first insert's time, the table's bytes, the growth of resident
//! memory during the build, and how much of the process's memory is in huge pages.
//!
//! With `no-thp` after the backend, the process first turns transparent huge pages off
//! (`prctl(PR_SET_THP_DISABLE)`), so that the table commits in 4 KiB pages; with `hugetlb`,
//! it takes the table's large arrays from the system's reserved huge pages
//! (`flash_map::use_reserved_huge_pages`; `vm.nr_hugepages` must hold enough), and
//! `reserved_mb` says how much it took (resident memory does not count those pages).
//! `RUST_LOG=debug` shows the engine's own account (slow huge pages, the table's arrays).
//!
//! `build_time touch w1|w2 PAIRS`: the floor of that build, in a process of its own: the
//! same pairs generated, then the table's bytes of fresh memory written once, a byte per
//! 4 KiB page.
//!
//! `build_time fragment PERCENT`: the fragmentation step. Takes PERCENT of the available
//! memory in 4 KiB pages (huge pages refused), gives back every other page, prints
//! `fragmented`, and holds the rest until its standard input closes. While it runs, no
//! 2 MiB block of that memory is free, so a huge page there needs compaction first.

use std::io::Read;
use std::time::Instant;

use flash_map::{Backend, FlashMap};
use flash_map_benches::{data, Gen};

/// `field` of `/proc/self/status` or `/proc/meminfo`, in bytes (0 where neither says).
fn meminfo(field: &str) -> usize {
    match proc_field("/proc/self/status", field) {
        0 => proc_field("/proc/meminfo", field),
        b => b,
    }
}

/// `field` of the `/proc` file `path`, which gives sizes in kB, in bytes (0 where the file
/// does not say, or off Linux).
fn proc_field(path: &str, field: &str) -> usize {
    #[cfg(target_os = "linux")]
    return std::fs::read_to_string(path).ok().and_then(|t| flash_map_cpu::meminfo_bytes(&t, field)).unwrap_or(0);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, field);
        0
    }
}

fn table<K: Gen, V: Gen>(n: usize, backend: Backend) {
    let d = data::<K, V>(n);
    let rss = meminfo("VmRSS:");
    let t = Instant::now();
    let mut m = FlashMap::<K, V>::builder(n).backend(backend).build().expect("build");
    let build = t.elapsed().as_secs_f64() * 1e3;
    let grown = meminfo("VmRSS:").saturating_sub(rss);
    let reserved = proc_field("/proc/self/status", "HugetlbPages:");
    let t = Instant::now();
    assert_eq!(m.bulk_insert(&d.pairs).expect("insert"), n);
    let insert = t.elapsed().as_secs_f64() * 1e3;
    let huge = proc_field("/proc/self/smaps_rollup", "AnonHugePages:");
    let s = m.stats();
    // As the engine lays the table out (a value per slot, or dense values).
    let l = flash_map_core::TableLayout::with_slots(s.slots, 0.5, size_of::<K>(), size_of::<V>()).expect("layout");
    let bytes = flash_map_cpu::table_bytes(&l);
    println!(
        "build_ms {build:.1} insert_ms {insert:.1} table_mb {:.1} resident_growth_mb {:.1} huge_pages_mb {:.1} reserved_mb {:.1}",
        bytes as f64 / 1e6,
        grown as f64 / 1e6,
        huge as f64 / 1e6,
        reserved as f64 / 1e6
    );
}

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`), as a
/// user can who wants no build to wait on a slow huge page: the engine's huge-page advice
/// then has no effect, and every array is committed in 4 KiB pages.
///
/// # Panics
/// If the system refuses it.
#[cfg(target_os = "linux")]
fn disable_thp() {
    // SAFETY: `prctl` with PR_SET_THP_DISABLE takes integers only and changes nothing but the
    // process's huge-page policy.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    assert_eq!(r, 0, "prctl(PR_SET_THP_DISABLE): {}", std::io::Error::last_os_error());
}

#[cfg(not(target_os = "linux"))]
fn disable_thp() {
    println!("no-thp: Linux only");
}

/// `build_time touch w1|w2 PAIRS`: the floor of `table`'s build. Generates the same pairs
/// (so that the process has done the same work before), then maps as many bytes as the
/// table of PAIRS pairs takes and writes one byte to each 4 KiB page in order, without any
/// advice (with `transparent_hugepage` on `madvise`, in 4 KiB pages): the cost of touching
/// the table's memory once. Prints the time and the bytes.
#[cfg(target_os = "linux")]
fn touch<K: Gen, V: Gen>(n: usize) {
    let d = data::<K, V>(n);
    let l = flash_map_core::TableLayout::for_capacity(
        n,
        flash_map_core::layout::DEFAULT_MAX_LOAD_FACTOR,
        size_of::<K>(),
        size_of::<V>(),
    )
    .expect("layout");
    let bytes = flash_map_cpu::table_bytes(&l).next_multiple_of(PAGE);
    let t = Instant::now();
    let p = map_anonymous(bytes);
    // SAFETY: `p` is a fresh writable mapping of `bytes` bytes, made above.
    unsafe { write_each_page(p, bytes) };
    let ms = t.elapsed().as_secs_f64() * 1e3;
    std::hint::black_box(&d);
    println!("touch_ms {ms:.1} table_mb {:.1}", bytes as f64 / 1e6);
}

#[cfg(not(target_os = "linux"))]
fn touch<K: Gen, V: Gen>(_: usize) {
    println!("touch: Linux only");
}

/// The base page size this binary's page-by-page loops step by.
#[cfg(target_os = "linux")]
const PAGE: usize = 4096;

/// Writes one byte to each [`PAGE`] of `len` bytes from `p`, in order: every page faulted in
/// once. The writes are volatile, so that they stay although nothing reads them.
///
/// # Safety
/// `p..p + len` must be writable memory that nothing else reads or writes meanwhile.
#[cfg(target_os = "linux")]
unsafe fn write_each_page(p: *mut u8, len: usize) {
    for i in (0..len).step_by(PAGE) {
        // SAFETY: `i < len`, so `p + i` is inside the range the caller vouches for.
        unsafe { p.add(i).write_volatile(1) };
    }
}

/// A fresh anonymous private mapping of `len` bytes (`flash_map_cpu`'s, as a table's arrays
/// are mapped), never unmapped (the process ends).
///
/// # Panics
/// If the system refuses it.
#[cfg(target_os = "linux")]
fn map_anonymous(len: usize) -> *mut u8 {
    flash_map_cpu::anonymous_mapping(len).unwrap_or_else(|| panic!("mmap of {len} bytes failed"))
}

#[cfg(target_os = "linux")]
fn fragment(percent: usize) {
    let len = meminfo("MemAvailable:") / 100 * percent / PAGE * PAGE;
    let p = map_anonymous(len);
    // SAFETY: the range is the mapping made above.
    unsafe { libc::madvise(p as *mut libc::c_void, len, libc::MADV_NOHUGEPAGE) };
    // SAFETY: `p` is a fresh writable mapping of `len` bytes, made above.
    unsafe { write_each_page(p, len) };
    for i in (0..len).step_by(2 * PAGE) {
        // SAFETY: one page inside the mapping; its contents are not read again.
        unsafe { libc::madvise(p.add(i) as *mut libc::c_void, PAGE, libc::MADV_DONTNEED) };
    }
    println!("fragmented: holding {} MB in every other 4 KiB page", (len / 2) >> 20);
    let _ = std::io::stdin().read(&mut [0u8; 1]);
}

/// `build_time trace MIB STEP_MIB [huge]`: commits a fresh mapping of MIB MiB in steps of
/// STEP_MIB (with huge pages advised for `huge`), printing each step's milliseconds: where in
/// a commit the time goes.
#[cfg(target_os = "linux")]
fn trace(len: usize, step: usize, huge: bool) {
    // 2 MiB-aligned inside a mapping 2 MiB larger.
    let p = (map_anonymous(len + (2 << 20)) as usize).next_multiple_of(2 << 20) as *mut libc::c_void;
    if huge {
        // SAFETY: inside the mapping.
        unsafe { libc::madvise(p, len, libc::MADV_HUGEPAGE) };
    }
    let mut steps = Vec::new();
    for off in (0..len).step_by(step) {
        let t = Instant::now();
        // SAFETY: inside the mapping.
        unsafe {
            libc::madvise((p as *mut u8).add(off) as *mut libc::c_void, step.min(len - off), libc::MADV_POPULATE_WRITE)
        };
        steps.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let total: f64 = steps.iter().sum();
    println!("total_ms {total:.1} steps_ms {}", steps.iter().map(|s| format!("{s:.1}")).collect::<Vec<_>>().join(" "));
}

/// `build_time results MIB REPS [PAUSE_MS] [parallel]`: what a lookup's fresh results of MIB
/// MiB cost to fault in and write, three ways in turns, REPS times each, each after a pause
/// of PAUSE_MS (default 0; a virtual machine gives free memory back to its host after a
/// while) and after the compare binary's cold start ([`flash_map_benches::cold_start`] of
/// 64 MiB: the allocator's free memory goes back to the system, so that each vector is fresh
/// memory): `advised` (huge pages advised, the writes fault them in: how results were
/// prepared before), `prepared` (`flash_map_cpu::prepare_results`, which commits them
/// first, paced: after a slow huge page, 4 KiB pages) and `lazy` (no advice: the writes
/// fault in 4 KiB pages, as the peers' collected results are). With `parallel`, rayon's
/// threads write (as a parallel lookup does) and `prepared` commits on them. Prints the
/// median and maximum milliseconds of each.
#[cfg(target_os = "linux")]
fn results(len: usize, reps: usize, pause_ms: u64, parallel: bool) {
    use rayon::prelude::*;
    let flush = 64 << 20;
    const WAYS: [&str; 3] = ["advised", "prepared", "lazy"];
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for r in 0..WAYS.len() * reps {
        std::thread::sleep(std::time::Duration::from_millis(pause_ms));
        flash_map_benches::cold_start(flush);
        let way = r % WAYS.len();
        let t = Instant::now();
        let mut v: Vec<u8> = Vec::with_capacity(len);
        match way {
            0 => flash_map_cpu::advise_huge(v.as_mut_ptr(), len),
            1 => flash_map_cpu::prepare_results(v.as_mut_ptr(), len, parallel),
            _ => {}
        }
        if parallel {
            v.spare_capacity_mut().par_chunks_mut(1 << 16).for_each(|c| c.fill(std::mem::MaybeUninit::new(1)));
            // SAFETY: every byte was written just above.
            unsafe { v.set_len(len) };
        } else {
            v.resize(len, 1);
        }
        times[way].push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(&v);
    }
    for (name, mut t) in WAYS.into_iter().zip(times) {
        t.sort_by(f64::total_cmp);
        println!("{name}: median {:.2} max {:.2} ms", t[t.len() / 2], t[t.len() - 1]);
    }
}

#[cfg(not(target_os = "linux"))]
fn results(_: usize, _: usize, _: u64, _: bool) {
    println!("results: Linux only");
}

#[cfg(not(target_os = "linux"))]
fn trace(_: usize, _: usize, _: bool) {
    println!("trace: Linux only");
}

#[cfg(not(target_os = "linux"))]
fn fragment(_: usize) {
    println!("fragment: Linux only");
}

fn main() {
    // The engines' own account of slow huge pages and the like, with RUST_LOG=debug.
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let n = |i: usize| a(i).parse::<usize>().expect("a number");
    match a(0) {
        "table" => {
            let backend = if a(3) == "rayon" { Backend::Rayon } else { Backend::Serial };
            match a(4) {
                "no-thp" => disable_thp(),
                "hugetlb" => {
                    flash_map::use_reserved_huge_pages(true);
                }
                _ => {}
            }
            match a(1) {
                "w1" => table::<[u8; 32], [u8; 128]>(n(2), backend),
                _ => table::<u64, u64>(n(2), backend),
            }
        }
        "touch" => match a(1) {
            "w1" => touch::<[u8; 32], [u8; 128]>(n(2)),
            _ => touch::<u64, u64>(n(2)),
        },
        "fragment" => fragment(n(1)),
        "trace" => trace(n(1) << 20, n(2) << 20, a(3) == "huge"),
        "results" => results(n(1) << 20, n(2), a(3).parse().unwrap_or(0), a(4) == "parallel"),
        _ => eprintln!("usage: build_time table w1|w2 PAIRS [serial|rayon [no-thp|hugetlb]] | touch w1|w2 PAIRS | fragment PERCENT | trace MIB STEP_MIB [huge] | results MIB REPS [PAUSE_MS [parallel]]"),
    }
}
