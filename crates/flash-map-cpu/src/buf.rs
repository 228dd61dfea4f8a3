//! Aligned, zeroed, fallibly allocated byte buffers.
//!
//! The table's arrays come from `alloc_zeroed` (`calloc`), or, on Linux, from
//! `TUNING.commit_min_bytes` on, straight from `mmap`; large arrays (from
//! `TUNING.huge_page_min_bytes`) 2 MiB-aligned with transparent huge pages requested
//! (`MADV_HUGEPAGE`): random probes over a big table then miss the TLB far less often, and
//! the build commits a huge page several times faster than as many bytes of 4 KiB pages
//! where the system has free 2 MiB blocks. An array's last, partial 2 MiB block is advised
//! too when it holds at least `TUNING.huge_page_tail_min_bytes` (the mapping then ends with a
//! whole huge page), and so is an array of that size up to one huge page ([`huge_span`]).
//!
//! A mapped array is committed when it is made (`MADV_POPULATE_WRITE`, Linux 5.14+): its
//! pages are faulted in there, in order (in huge pages while the system gives them faster
//! than 4 KiB pages, see `commit`),
//! rather than one by one in random order by the first batch's probes, which costs more
//! (BENCHMARKS.md). Memory the system cannot give is thus an error from the constructor
//! (`CpuError::Alloc`), not a fault halfway through an insert. Arrays larger than half the
//! available memory (free memory plus the page cache the kernel can reclaim, `MemAvailable`),
//! and all arrays on kernels before 5.14, are mapped lazily. An impossible size
//! is always an error instead of an abort.
//!
//! A dropped mapped array of at most `TUNING.spare_bytes` is kept (with the others kept,
//! at most that many bytes in all, the oldest unmapped first) and given to the next array
//! of exactly its length: its pages are already faulted in (and, on a virtual machine,
//! backed by the host), which a fresh mapping's are not. It is zeroed where it lies, unless
//! it is taken for a table's key or value array ([`AlignedBuf::for_slots`]), whose bytes
//! count only in full slots: there it keeps the bytes the former array left, and a table
//! built on kept memory writes nothing but its state words.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

use crate::CpuError;

/// 16 bytes: enough for u64 atomics, and at most the platform's minimum alignment, so that
/// `alloc_zeroed` becomes `calloc` (fresh, lazily zeroed pages) rather than alloc + memset.
const ALIGN: usize = 16;

/// Arrays at least this large are mapped directly and committed at once ...
const COMMIT_MIN: usize = flash_map_core::tuning::TUNING.commit_min_bytes;
/// ... and from this size on 2 MiB-aligned, with huge pages advised ...
#[cfg(target_os = "linux")]
const HUGE_MIN: usize = flash_map_core::tuning::TUNING.huge_page_min_bytes;
/// ... over a last, partial 2 MiB block too when it holds this many bytes.
#[cfg(target_os = "linux")]
const HUGE_TAIL_MIN: usize = flash_map_core::tuning::TUNING.huge_page_tail_min_bytes;
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;
/// Bytes of dropped mappings kept for reuse, in all.
#[cfg(target_os = "linux")]
const SPARE_BYTES: usize = flash_map_core::tuning::TUNING.spare_bytes;

/// Whether mapped arrays with a huge span come from the system's reserved huge pages first
/// ([`use_reserved_huge_pages`]).
#[cfg(target_os = "linux")]
static RESERVED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Has the tables built from now on, in this process, take the arrays that would get
/// transparent huge pages (from 1 MiB, see `huge_span`) from the huge pages the system keeps
/// reserved (Linux's `hugetlb` pool, `vm.nr_hugepages`) while the pool has enough of them,
/// and from the usual mappings where it has not (`on` = false, the default: never). Returns
/// whether they did before.
///
/// Why: the pool's pages are set aside when an administrator reserves them, so a build
/// takes them without waiting on the kernel (or a virtual machine's host) to make huge
/// pages, and never meets a slow one; its cost is the kernel zeroing them (a whole 2 MiB
/// page for an array's last, partial one, however small). The array is reserved in full
/// when it is mapped (a pool too small for it is a fallback, never a fault later), and
/// committed at once, as other arrays are, whatever the available memory (the pool lies
/// outside it). Opt-in, as the pool may be meant for another program (a database's shared
/// buffers) that would then find fewer pages. Arrays kept from dropped tables
/// ([`release_spare_memory`]) are handed out again as they are, from the pool or not.
/// Linux only; elsewhere a no-op that returns false.
pub fn use_reserved_huge_pages(on: bool) -> bool {
    #[cfg(target_os = "linux")]
    return RESERVED.swap(on, std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = on;
        false
    }
}

/// A dropped array's mapping, kept for the next array of the same length.
#[cfg(target_os = "linux")]
struct Spare {
    /// The array's start and length, inside ...
    start: NonNull<u8>,
    len: usize,
    /// ... the whole mapping (start, length).
    map: (*mut u8, usize),
}

// SAFETY: a spare mapping is owned by the list that holds it, like a `Vec<u8>`'s buffer.
#[cfg(target_os = "linux")]
unsafe impl Send for Spare {}

/// The spare mappings, oldest first.
#[cfg(target_os = "linux")]
static SPARES: std::sync::Mutex<Vec<Spare>> = std::sync::Mutex::new(Vec::new());

/// The spare list (a panic while it was held left it consistent: every change to it is one
/// `Vec` call).
#[cfg(target_os = "linux")]
fn spares() -> std::sync::MutexGuard<'static, Vec<Spare>> {
    SPARES.lock().unwrap_or_else(|e| e.into_inner())
}

/// A byte buffer aligned to 16 bytes (2 MiB when mapped): zero-initialised, or, made by
/// [`for_slots`](Self::for_slots) from kept memory, holding a former array's bytes. Public,
/// hidden, only so that the benches can allocate memory exactly as a table's arrays are
/// allocated.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    /// The whole mapping (start, length) when the buffer was mapped with `mmap`.
    map: Option<(*mut u8, usize)>,
}

// SAFETY: the buffer owns its memory (and mapping) exclusively, like a `Vec<u8>`.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only reads through `&self` methods.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// Allocates `len` zero bytes; `Err(CpuError::Alloc)` if the allocator refuses.
    pub fn zeroed(len: usize) -> Result<Self, CpuError> {
        Self::zeroed_by(len, false)
    }

    /// [`zeroed`](Self::zeroed), committing a mapped array on all of rayon's threads when
    /// `parallel` (and the `rayon` feature is on), the array is large and the pool is not
    /// small ([`commits_in_parallel`]): the commit is the kernel zeroing pages, which can
    /// run on each core at once.
    pub(crate) fn zeroed_by(len: usize, parallel: bool) -> Result<Self, CpuError> {
        Self::made(len, parallel, true)
    }

    /// [`zeroed`](Self::zeroed) for a table's key or value array, whose bytes are read only
    /// in slots whose state word says they are full, after the table wrote them: made zero
    /// when fresh, but taken from the spare list as the former array left it, not zeroed.
    /// Its bytes are initialised either way (a mapping's pages are zero until written, and
    /// kept arrays were written only with whole bytes), just not necessarily zero.
    pub fn for_slots(len: usize) -> Result<Self, CpuError> {
        Self::made(len, false, false)
    }

    /// [`for_slots`](Self::for_slots), committing as [`zeroed_by`](Self::zeroed_by) does.
    pub(crate) fn for_slots_by(len: usize, parallel: bool) -> Result<Self, CpuError> {
        Self::made(len, parallel, false)
    }

    /// The buffer of [`zeroed_by`](Self::zeroed_by) (`zero`) or [`for_slots_by`](Self::for_slots_by).
    fn made(len: usize, parallel: bool, zero: bool) -> Result<Self, CpuError> {
        if len == 0 {
            // A dangling pointer aligned to 16 (`u128`'s alignment) for the empty buffer.
            let ptr = NonNull::<u128>::dangling().cast::<u8>();
            return Ok(AlignedBuf { ptr, len, map: None });
        }
        #[cfg(target_os = "linux")]
        if len >= COMMIT_MIN {
            if let Some(buf) = Self::spare(len, parallel, zero) {
                return Ok(buf);
            }
            return Self::mapped(len, huge_span(len), parallel).or_else(|e| {
                // Memory kept for reuse goes back to the system before a build fails.
                if release_spare_memory() == 0 {
                    return Err(e);
                }
                Self::mapped(len, huge_span(len), parallel)
            });
        }
        let _ = parallel;
        let layout = Layout::from_size_align(len, ALIGN).map_err(|_| CpuError::Alloc { bytes: len })?;
        // SAFETY: the layout has non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or(CpuError::Alloc { bytes: len })?;
        Ok(AlignedBuf { ptr, len, map: None })
    }

    /// A spare mapping of exactly `len` bytes (see the module's documentation), for `zero`
    /// zeroed (on all of rayon's threads for `parallel`, with the `rayon` feature); `None`
    /// if no dropped array of that length is kept.
    #[cfg(target_os = "linux")]
    fn spare(len: usize, parallel: bool, zero: bool) -> Option<Self> {
        let s = {
            let mut list = spares();
            let at = list.iter().rposition(|s| s.len == len)?;
            list.remove(at)
        };
        let buf = AlignedBuf { ptr: s.start, len, map: Some(s.map) };
        if !zero {
            return Some(buf);
        }
        #[cfg(feature = "rayon")]
        if parallel {
            use rayon::prelude::*;
            const PART: usize = 1 << 20;
            let base = buf.ptr.as_ptr() as usize;
            (0..len.div_ceil(PART)).into_par_iter().for_each(|k| {
                let off = k * PART;
                // SAFETY: `off < len`, so the part lies inside the buffer's `len` bytes,
                // which the list gave up to us alone; the parts are disjoint.
                unsafe { ((base + off) as *mut u8).write_bytes(0, PART.min(len - off)) };
            });
            return Some(buf);
        }
        let _ = parallel;
        // SAFETY: the buffer's `len` bytes lie inside its mapping, which the list gave up to
        // us alone: nothing else reads or writes them.
        unsafe { buf.ptr.as_ptr().write_bytes(0, len) };
        Some(buf)
    }

    /// Maps `len` zero bytes and commits them (on all of rayon's threads for `parallel`, where
    /// [`commits_in_parallel`]); for
    /// a `huge` span (a multiple of 2 MiB, [`huge_span`]), 2 MiB-aligned with transparent
    /// huge pages advised over that span, which may reach past `len` into the mapping; or,
    /// where the process asked for them ([`use_reserved_huge_pages`]), from the reserved
    /// huge pages for an array with a huge span ([`reserved`](Self::reserved)).
    #[cfg(target_os = "linux")]
    fn mapped(len: usize, huge: usize, parallel: bool) -> Result<Self, CpuError> {
        // Also an array of 1-2 MiB (one huge page, `huge_span`): on the usual path it takes a
        // huge page only right after a fast one, and the pool's arrays show the pace none.
        if huge > 0 && RESERVED.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(buf) = Self::reserved(len, parallel) {
                return Ok(buf);
            }
        }
        let err = CpuError::Alloc { bytes: len };
        let align = if huge > 0 { HUGE_PAGE } else { page_size() };
        let total = len.max(huge).checked_add(align).ok_or(err.clone())?;
        let base = anonymous_mapping(total).ok_or(err.clone())?;
        let offset = (align - (base as usize % align)) % align;
        // SAFETY: `offset < align`, so `offset + len.max(huge) <= total` lies inside the
        // mapping.
        let start = unsafe { base.add(offset) };
        if huge > 0 {
            // SAFETY: `[start, start + huge)` lies inside our mapping (above); the advice is
            // a hint (if it fails the buffer simply uses ordinary pages).
            unsafe { libc::madvise(start as *mut libc::c_void, huge, libc::MADV_HUGEPAGE) };
        }
        let ptr = NonNull::new(start).ok_or(err.clone())?;
        let buf = AlignedBuf { ptr, len, map: Some((base, total)) };
        // An array larger than half the available memory stays lazy: committing it could
        // wake the out-of-memory killer, where lazily it may never be touched in full.
        if !commits_at_once(len, free_memory, available_memory) {
            return Ok(buf);
        }
        // Smaller arrays, and every array of a small pool, commit on the calling thread, as
        // a serial table's do (see the tuning fields).
        let parallel = parallel && commits_in_parallel(len, pool_threads());
        // SAFETY: `[start, start + len)` lies inside the mapping made above, which `buf` owns.
        match unsafe { commit_on(start, len, huge, parallel) } {
            Ok(()) => Ok(buf),
            Err(e) => {
                // Out of memory (or a signal): report it now; `buf` unmaps on drop.
                log::debug!("committing {len} bytes failed: {e}");
                Err(err)
            }
        }
    }

    /// Maps `len` zero bytes from the system's reserved huge pages (`MAP_HUGETLB`, whole
    /// 2 MiB pages) and commits them (on all of rayon's threads for `parallel`, where
    /// [`commits_in_parallel`]); `None` where the pool has too few free pages (the mapping
    /// reserves them all, or fails), or the system has no such pool, or the commit fails.
    #[cfg(target_os = "linux")]
    fn reserved(len: usize, parallel: bool) -> Option<Self> {
        let total = len.checked_next_multiple_of(HUGE_PAGE)?;
        let Some(base) = mapping(total, libc::MAP_HUGETLB) else {
            log::debug!("{total} bytes of reserved huge pages not at hand: {}", std::io::Error::last_os_error());
            return None;
        };
        // A mapping of the pool's pages starts on a huge page's boundary.
        debug_assert_eq!(base as usize % HUGE_PAGE, 0);
        let buf = AlignedBuf { ptr: NonNull::new(base)?, len, map: Some((base, total)) };
        let parallel = parallel && commits_in_parallel(total, pool_threads());
        // SAFETY: `[base, base + total)` is the mapping made above, which `buf` owns. The
        // commit asks no huge span of its own (0): the mapping's pages are all huge.
        match unsafe { commit_on(base, total, 0, parallel) } {
            Ok(()) => Some(buf),
            Err(e) => {
                // `buf` unmaps on drop; the caller maps ordinary memory instead.
                log::debug!("committing {total} bytes of reserved huge pages failed: {e}");
                None
            }
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Base pointer.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Base pointer for writes.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` initialised bytes owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, mutable.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `len` initialised bytes owned exclusively by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Sets every byte to zero.
    pub(crate) fn fill_zero(&mut self) {
        self.as_mut_slice().fill(0);
    }
}

/// Faults in (`MADV_POPULATE_WRITE`) the `len` bytes at `start`, a range of one mapping, in
/// the steps of `steps` ([`Steps::on`]: `TUNING.commit_step_bytes`). Where huge pages are
/// advised (the first `huge` bytes from `start`, a multiple of 2 MiB, [`huge_span`]; 0 for
/// none) the steps are paced ([`Pace`]): in huge pages, 2 MiB at a time, while each 2 MiB
/// commits at `TUNING.commit_min_rate` or faster; after a slower one, the rest of its step
/// and the next steps go to 4 KiB pages (`MADV_NOHUGEPAGE` on those steps alone) until they
/// have taken `TUNING.commit_probe_ratio` times the slow huge page's time; then, where they
/// were faster per byte, one huge page is tried again, and where they were not, huge pages
/// are kept for a while.
///
/// Why: a huge page is cheap only where the kernel has a free 2 MiB block at hand. Where it
/// must make one, it costs several 4 KiB pages' time: on a machine whose page cache holds
/// nearly all memory, interleaved with pages still in use, the kernel compacts memory for
/// each huge page (several times slower than committing the same bytes in 4 KiB pages); on a
/// virtual machine, a block the guest freed and gave back to the host (free page reporting)
/// costs the host far more per huge page than the guest's own zeroing. Both come in
/// stretches that pass, so the decision is made again and again during one commit, at a
/// bounded cost: each try costs one huge page, and the tries take at most a fixed share of
/// the time spent in 4 KiB pages (BENCHMARKS.md, issue 13). Without `MADV_POPULATE_WRITE`
/// (Linux before 5.14) the range stays lazy.
///
/// For `parallel` (with the `rayon` feature), one worker per rayon thread takes the steps
/// ([`commit_steps`]); `steps` are fresh (none taken yet), and say whose pace they follow.
///
/// # Safety
/// `[start, start + len)` is whole pages of memory that the caller owns (a mapping of its
/// own, or an allocation it may write in full), and so is `[start, start + huge)`: the
/// advice and the population change no contents, but must not reach memory that others
/// manage.
#[cfg(target_os = "linux")]
unsafe fn commit(start: *mut u8, len: usize, huge: usize, parallel: bool, steps: &Steps) -> std::io::Result<()> {
    #[cfg(feature = "rayon")]
    {
        let count = len.div_ceil(steps.size);
        let workers = if parallel { pool_threads().min(count) } else { 1 };
        // (A range of one step is committed on the calling thread: no hand-off to the pool.)
        if workers > 1 {
            use rayon::prelude::*;
            let base = start as usize;
            // SAFETY: `commit_steps` asks what this function does (`# Safety`: the range is
            // whole pages the caller owns), and gets the same range; the workers share the
            // steps, each step taken by one of them once.
            return (0..workers)
                .into_par_iter()
                .try_for_each(|_| unsafe { commit_steps(base as *mut u8, len, huge, steps, workers) });
        }
    }
    let _ = parallel;
    // SAFETY: as for the workers above: the same range, whole pages the caller owns
    // (`# Safety`); here one worker takes every step.
    unsafe { commit_steps(start, len, huge, steps, 1) }
}

/// The steps of one commit that its workers share: the next step to take, whether any
/// step has committed yet, the [`Pace`] they follow ([`PACE`] for tables' arrays,
/// [`RESULT_PACE`] for results and scratch), and their length.
#[cfg(target_os = "linux")]
struct Steps {
    next: std::sync::atomic::AtomicUsize,
    committed: std::sync::atomic::AtomicBool,
    pace: &'static ProcessPace,
    /// Bytes per step: `TUNING.commit_step_bytes`, or less for a parallel lookup's results
    /// ([`Steps::shared`]); a multiple of the page size.
    size: usize,
}

#[cfg(target_os = "linux")]
impl Steps {
    /// Fresh steps (none taken yet) of `TUNING.commit_step_bytes`, following `pace`.
    fn on(pace: &'static ProcessPace) -> Self {
        let size = flash_map_core::tuning::TUNING.commit_step_bytes;
        Steps { next: Default::default(), committed: Default::default(), pace, size }
    }

    /// Fresh steps of 4 KiB pages (a commit with no huge span, which never asks the pace)
    /// for `len` bytes that `workers` threads commit: [`Steps::shares`] in whole pages.
    fn shared(len: usize, workers: usize) -> Self {
        Self::shares(len, workers, page_size())
    }

    /// Fresh steps for a table's array of `len` bytes that `workers` threads commit:
    /// [`Steps::shares`] in whole huge pages, so that every step starts on a huge page's
    /// boundary where the array's huge span does. In steps of `commit_step_bytes` alone, a
    /// 32 MiB array went to four of sixteen threads.
    fn table_shares(len: usize, workers: usize) -> Self {
        Self::shares(len, workers, HUGE_PAGE)
    }

    /// Fresh steps ([`PACE`]) for `len` bytes that `workers` threads commit: equal steps in
    /// whole `unit`s, one per worker while each holds at least
    /// `TUNING.commit_share_min_bytes` (else as many as hold that much, at least one: a
    /// range below twice the minimum is one step, which the calling thread takes,
    /// [`commit`]), and none above `TUNING.commit_step_bytes` (a multiple of `unit`).
    fn shares(len: usize, workers: usize, unit: usize) -> Self {
        let t = &flash_map_core::tuning::TUNING;
        let count = (len / t.commit_share_min_bytes).clamp(1, workers.max(1));
        let size = len.div_ceil(count).next_multiple_of(unit).clamp(unit, t.commit_step_bytes);
        Steps { size, ..Steps::on(&PACE) }
    }

    /// Calls `f` on the pace these steps follow.
    fn with_pace<R>(&self, f: impl FnOnce(&mut Pace) -> R) -> R {
        self.pace.with(f)
    }
}

/// One worker of a [`commit`]: takes the next step of `steps` until none is left. Several
/// workers on one range share it by speed: a worker whose huge pages come slowly takes fewer
/// steps, where equal parts would leave the fast worker idle while the slow one finishes.
/// All of them, and every other commit of tables' arrays in the process, follow one
/// [`Pace`] ([`PACE`]): what one huge page showed of the system's memory holds for the next
/// array of the same build too, which would otherwise pay for a slow try of its own.
/// (Lookups' results and partitions' scratch follow [`RESULT_PACE`],
/// [`commit_huge_for_writes`].)
///
/// The pace judges the commit as a whole: each part's time counts divided by the
/// commit's `workers` (1 on the calling thread alone), so that a huge page is slow where
/// the commit as a whole gets fewer than `TUNING.commit_min_rate` bytes a second, not where
/// each of sixteen threads does. Sixteen threads faulting their first huge pages of fresh
/// memory at once each waited many times a lone thread's time for it, together about one
/// thread's rate (BENCHMARKS.md, "The GPU bundle on an H200"); judged per thread, those
/// pages were slow and sent the commit to 4 KiB pages, slower in all. The 4 KiB stretches
/// and the huge pages kept after them last as long in wall-clock time either way (every
/// worker counts its part of the time off them).
///
/// # Safety
/// As [`commit`].
#[cfg(target_os = "linux")]
unsafe fn commit_steps(start: *mut u8, len: usize, huge: usize, steps: &Steps, workers: usize) -> std::io::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let size = steps.size;
    // A part's time as the pace counts it.
    let share = workers.max(1) as f64;
    // Populates `[start + off, start + off + n)`, within the caller's range; the time taken.
    let populate = |off: usize, n: usize| -> std::io::Result<f64> {
        let t = std::time::Instant::now();
        // SAFETY: `[start + off, start + off + n)` lies inside the caller's range (the
        // contract); populating writes nothing the range's zero contents could show.
        let r = unsafe { libc::madvise(start.add(off) as *mut libc::c_void, n, libc::MADV_POPULATE_WRITE) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        steps.committed.store(true, Relaxed);
        Ok(t.elapsed().as_secs_f64())
    };
    loop {
        let off = steps.next.fetch_add(1, Relaxed).saturating_mul(size);
        if off >= len {
            return Ok(());
        }
        let end = off + size.min(len - off);
        let mut at = off;
        // In huge pages, one at a time while they come fast. (The last one may hold the
        // range's end: it commits a whole huge page all the same, `huge` reaching past it.)
        while at < end
            && at + HUGE_PAGE <= huge
            && steps.with_pace(if at + HUGE_PAGE <= len { Pace::next_in_huge } else { Pace::next_in_huge_tail })
        {
            let n = HUGE_PAGE.min(end - at);
            let done = populate(at, n);
            let slow = steps.with_pace(|p| p.after_huge(HUGE_PAGE, done.as_ref().ok().map(|secs| secs / share)));
            match done {
                Ok(secs) if slow => {
                    log::debug!(
                        "a huge page took {:.2} ms at byte {at} of {len}, {workers} committing (slow)",
                        secs * 1e3
                    );
                }
                Ok(_) => {}
                Err(e) => return refused(e, steps),
            }
            at += n;
        }
        // The rest of the step in 4 KiB pages (and the range's end past the last whole
        // huge page, where no huge page is advised).
        if at < end {
            if at < huge {
                // SAFETY: `[start + at, start + end)` lies inside the caller's range (the
                // contract); the advice changes no contents.
                unsafe { libc::madvise(start.add(at) as *mut libc::c_void, end - at, libc::MADV_NOHUGEPAGE) };
            }
            match populate(at, end - at) {
                Ok(secs) if at < huge => steps.with_pace(|p| p.after_small(end - at, secs / share)),
                Ok(_) => {}
                Err(e) => return refused(e, steps),
            }
        }
    }

    /// What a refused population means: a kernel without `MADV_POPULATE_WRITE` refuses the
    /// first steps (`EINVAL`), and the range stays lazy; a refusal after a step has committed
    /// is an error. No worker takes another step: every step number from here on lies past
    /// the range (halfway to the counter's end, so that the workers' further increments
    /// cannot wrap it around to step 0).
    fn refused(e: std::io::Error, steps: &Steps) -> std::io::Result<()> {
        let unsupported = e.raw_os_error() == Some(libc::EINVAL) && !steps.committed.load(Relaxed);
        steps.next.store(usize::MAX / 2, Relaxed);
        if unsupported {
            Ok(())
        } else {
            Err(e)
        }
    }
}

/// [`commit`] of the `len` bytes at `start` at the process's pace.
///
/// # Safety
/// As [`commit`].
#[cfg(target_os = "linux")]
unsafe fn commit_on(start: *mut u8, len: usize, huge: usize, parallel: bool) -> std::io::Result<()> {
    let steps = if parallel { Steps::table_shares(len, pool_threads()) } else { Steps::on(&PACE) };
    // SAFETY: `commit`'s `# Safety` is this function's, for the same range (whole pages
    // the caller owns); the steps are fresh.
    unsafe { commit(start, len, huge, parallel, &steps) }
}

/// The page size of each part of the commits in huge pages: huge pages while each commits at
/// `TUNING.commit_min_rate` or faster. After a slower one, a stretch of 4 KiB pages that
/// lasts `TUNING.commit_probe_ratio` times that huge page's time. At its end, where the
/// stretch's 4 KiB pages were faster per byte than the slow huge page, one more huge page
/// is tried (one try at a time: the other workers stay in 4 KiB pages meanwhile); each try
/// that is slow again starts another stretch and doubles the ratio (up to
/// `TUNING.commit_probe_ratio_max`), so that a long slow stretch costs few tries. Where they
/// were no faster (a virtual machine's host backing memory again costs both alike), huge
/// pages are kept, slow ones too, for `commit_probe_ratio` times the stretch's time; then a
/// slow huge page starts a stretch again. A fast huge page starts over. The tries thus cost
/// a bounded share of the time spent in the page size that is faster.
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct Pace {
    /// In a stretch of 4 KiB pages (a huge page was slow, and none since was fast).
    slow: bool,
    /// Seconds of 4 KiB commits still to go in the stretch.
    small_left: f64,
    /// Seconds and bytes of the stretch's 4 KiB commits so far.
    small_secs: f64,
    small_bytes: f64,
    /// Seconds per byte of the slow huge page that started the stretch.
    huge_cost: f64,
    /// Seconds of huge-page commits still to go during which a slow huge page stays in huge
    /// pages (the last stretch's 4 KiB pages were no faster).
    huge_left: f64,
    /// A try in huge pages is under way.
    trying: bool,
    /// The ratio that the next slow huge page's time is multiplied by.
    ratio: f64,
    /// The last huge page committed fast (since the pace last started over): the evidence
    /// that an array's last, partial block needs before it takes a whole huge page.
    fast: bool,
}

#[cfg(target_os = "linux")]
impl Pace {
    const fn new() -> Self {
        Pace {
            slow: false,
            small_left: 0.0,
            small_secs: 0.0,
            small_bytes: 0.0,
            huge_cost: 0.0,
            huge_left: 0.0,
            trying: false,
            ratio: flash_map_core::tuning::TUNING.commit_probe_ratio as f64,
            fast: false,
        }
    }

    /// Whether the next part, the last, partial block of an array, takes a whole huge page:
    /// only right after a fast one (and then as [`next_in_huge`](Self::next_in_huge)). Such
    /// a block costs a whole huge page's time, and the array is served without it, so it is
    /// not spent on a guess: where the system's free 2 MiB blocks cost the most (on a
    /// virtual machine, blocks given back to the host, which a new process often meets
    /// first), the first huge page shows it.
    fn next_in_huge_tail(&mut self) -> bool {
        self.fast && self.next_in_huge()
    }

    /// Whether the next part commits in huge pages (for a try, the caller then owes
    /// [`after_huge`](Self::after_huge)).
    fn next_in_huge(&mut self) -> bool {
        if !self.slow {
            return true;
        }
        if self.small_left > 0.0 || self.trying {
            return false;
        }
        if self.small_secs >= self.huge_cost * self.small_bytes {
            // The stretch's 4 KiB pages were no faster: huge pages for a while.
            self.slow = false;
            self.huge_left = self.small_secs * flash_map_core::tuning::TUNING.commit_probe_ratio as f64;
            return true;
        }
        self.trying = true;
        true
    }

    /// After a huge page (or the last part of one) that committed `bytes` in `secs` (`None`:
    /// it failed); whether it was slow.
    fn after_huge(&mut self, bytes: usize, secs: Option<f64>) -> bool {
        use flash_map_core::tuning::TUNING;
        self.trying = false;
        let Some(secs) = secs else { return false };
        if secs * TUNING.commit_min_rate as f64 <= bytes as f64 {
            *self = Pace { fast: true, ..Pace::new() };
            return false;
        }
        self.fast = false;
        if self.huge_left > 0.0 {
            self.huge_left -= secs;
            return true;
        }
        if !self.slow || self.small_left <= 0.0 {
            // A new stretch.
            (self.small_secs, self.small_bytes) = (0.0, 0.0);
            self.huge_cost = secs / bytes as f64;
        }
        self.slow = true;
        self.small_left = self.small_left.max(secs * self.ratio);
        self.ratio = (self.ratio * 2.0).min(TUNING.commit_probe_ratio_max as f64);
        true
    }

    /// After 4 KiB pages that committed `bytes` in `secs`.
    fn after_small(&mut self, bytes: usize, secs: f64) {
        self.small_left -= secs;
        self.small_secs += secs;
        self.small_bytes += bytes as f64;
    }
}

/// A [`Pace`] for the whole process, when a commit last used it, and after how long
/// without one it starts over (huge pages): the state of the system's memory that it
/// reflects passes.
#[cfg(target_os = "linux")]
struct ProcessPace {
    state: std::sync::Mutex<(Pace, Option<std::time::Instant>)>,
    forget_ms: usize,
}

/// The pace of tables' arrays (`TUNING.commit_pace_forget_ms`).
#[cfg(target_os = "linux")]
static PACE: ProcessPace = ProcessPace::new(flash_map_core::tuning::TUNING.commit_pace_forget_ms);

/// The pace of serial lookups' results and partitions' scratch
/// (`TUNING.result_pace_forget_ms`), apart from the tables'.
#[cfg(target_os = "linux")]
static RESULT_PACE: ProcessPace = ProcessPace::new(flash_map_core::tuning::TUNING.result_pace_forget_ms);

#[cfg(target_os = "linux")]
impl ProcessPace {
    const fn new(forget_ms: usize) -> Self {
        ProcessPace { state: std::sync::Mutex::new((Pace::new(), None)), forget_ms }
    }

    /// The pace and when a commit last used it (a panic elsewhere leaves them valid).
    fn lock(&self) -> std::sync::MutexGuard<'_, (Pace, Option<std::time::Instant>)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `f` on the pace, started over first where no commit used it for `forget_ms`.
    fn with<R>(&self, f: impl FnOnce(&mut Pace) -> R) -> R {
        let mut g = self.lock();
        let now = std::time::Instant::now();
        let (pace, last) = &mut *g;
        pace_at(pace, last, now, std::time::Duration::from_millis(self.forget_ms as u64), f)
    }
}

/// [`ProcessPace::with`] at the time `now`, on `pace`, last used at `last`, forgotten after
/// `forget`.
#[cfg(target_os = "linux")]
fn pace_at<R>(
    pace: &mut Pace,
    last: &mut Option<std::time::Instant>,
    now: std::time::Instant,
    forget: std::time::Duration,
    f: impl FnOnce(&mut Pace) -> R,
) -> R {
    if last.is_some_and(|t| now.saturating_duration_since(t) > forget) {
        *pace = Pace::new();
    }
    *last = Some(now);
    f(pace)
}

/// Makes the process's paces of commits in huge pages (tables' arrays, and lookups' results
/// and partitions' scratch) start over, as in a fresh process: for benchmarks that run
/// several engines in one process, so that none starts from what the one before it met.
/// Public, hidden, only for them; the paces also start over by themselves after a pause.
#[doc(hidden)]
pub fn forget_commit_paces() {
    #[cfg(target_os = "linux")]
    for p in [&PACE, &RESULT_PACE] {
        *p.lock() = (Pace::new(), None);
    }
}

/// Gives back to the system the memory of dropped tables that this process keeps for the
/// next table of the same size (at most `TUNING.spare_bytes`, see the crate's `buf` module);
/// returns how many bytes it unmapped. A table build that would otherwise fail for memory
/// does this by itself first; call it to shrink a long-lived process's footprint after its
/// last table of a size is gone. A no-op (returning 0) off Linux, where nothing is kept.
///
/// ```
/// let freed = flash_map_cpu::release_spare_memory();
/// assert_eq!(flash_map_cpu::release_spare_memory(), 0, "{freed} bytes were released, nothing is left");
/// ```
pub fn release_spare_memory() -> usize {
    #[cfg(target_os = "linux")]
    {
        let list = std::mem::take(&mut *spares());
        let mut bytes = 0;
        for s in list {
            bytes += s.map.1;
            // SAFETY: a mapping created in `mapped` with exactly this start and length, taken
            // off the spare list, which owned it alone.
            unsafe { libc::munmap(s.map.0 as *mut libc::c_void, s.map.1) };
        }
        bytes
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// Whether a fresh mapped array of `len` bytes is committed when it is made: when it takes at
/// most half the memory available. Available is what `/proc/meminfo` calls `MemAvailable`:
/// free memory plus the page cache and other memory the kernel can reclaim at once. Free
/// memory alone (`MemFree`) is not the measure: on a machine that has read files for a
/// while the page cache holds nearly all of memory, `MemFree` is a few hundred MB, and a
/// table's larger arrays would stay lazy, losing both the error from `build` for memory the
/// system cannot give and the commit in order (BENCHMARKS.md, issue 13). `free` (bytes) is
/// asked first, as a system call with no parsing: when the array fits in half of it, the
/// available memory, at least as large, is not read. Where `/proc/meminfo` cannot be read
/// or lacks the field (`available` gives `None`), free memory decides.
#[cfg(target_os = "linux")]
fn commits_at_once(len: usize, free: impl FnOnce() -> usize, available: impl FnOnce() -> Option<usize>) -> bool {
    let free = free();
    len <= free / 2 || len <= available().unwrap_or(free) / 2
}

/// Free memory in bytes (`sysinfo`'s, through `sysconf`: `MemFree`).
#[cfg(target_os = "linux")]
fn free_memory() -> usize {
    // SAFETY: `sysconf` has no preconditions.
    unsafe { libc::sysconf(libc::_SC_AVPHYS_PAGES).max(0) as usize * page_size() }
}

/// Available memory in bytes, `MemAvailable` of `/proc/meminfo` (Linux 3.14+); `None` where
/// the file cannot be read or has no such line, and under Miri.
#[cfg(target_os = "linux")]
fn available_memory() -> Option<usize> {
    // Miri's isolation refuses to open files (it stops the program): free memory decides there.
    if cfg!(miri) {
        return None;
    }
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_bytes(&text, "MemAvailable:")
}

/// The value of `field` (a line's first word, with its colon) in the text of `/proc/meminfo`
/// (or of `/proc/self/status`, which writes its sizes alike), in bytes (the file gives kB;
/// `None` for a field without that unit, a count). Public, hidden, only so that the benches
/// and tests read these files as the crate does.
#[cfg(target_os = "linux")]
#[doc(hidden)]
pub fn meminfo_bytes(text: &str, field: &str) -> Option<usize> {
    match meminfo_number(text, field)? {
        (kb, "kB") => kb.checked_mul(1024),
        _ => None,
    }
}

/// The value of `field` in the same texts where it is a count, without a unit (as
/// `HugePages_Free:`, the reserved huge pages free); `None` for a size in kB. Public, hidden,
/// as [`meminfo_bytes`] is.
#[cfg(target_os = "linux")]
#[doc(hidden)]
pub fn meminfo_count(text: &str, field: &str) -> Option<usize> {
    match meminfo_number(text, field)? {
        (n, "") => Some(n),
        _ => None,
    }
}

/// The number after `field` at the start of a line of `text`, and the unit after it (empty
/// where there is none).
#[cfg(target_os = "linux")]
fn meminfo_number<'t>(text: &'t str, field: &str) -> Option<(usize, &'t str)> {
    let mut words = text.lines().find_map(|l| l.strip_prefix(field))?.split_whitespace();
    let n = words.next()?.parse().ok()?;
    Some((n, words.next().unwrap_or("")))
}

/// The system's page size.
#[cfg(target_os = "linux")]
fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE).max(4096) as usize }
}

/// The bytes from a mapped array's start that are advised huge pages, for an array of `len`
/// bytes: its whole 2 MiB blocks, and its last, partial block too when that holds at least
/// `TUNING.huge_page_tail_min_bytes` (the span then reaches past `len`: the mapping ends with
/// a whole huge page); 0 when that comes to less than `TUNING.huge_page_min_bytes`. A multiple
/// of 2 MiB.
#[cfg(target_os = "linux")]
fn huge_span(len: usize) -> usize {
    let (whole, tail) = (len / HUGE_PAGE * HUGE_PAGE, len % HUGE_PAGE);
    let span = if tail >= HUGE_TAIL_MIN { whole + HUGE_PAGE } else { whole };
    if span >= HUGE_MIN {
        span
    } else {
        0
    }
}

/// Advises transparent huge pages for the whole 2 MiB pages inside `[ptr, ptr + len)`, when
/// `len` is at least `TUNING.huge_page_min_bytes` (Linux; a no-op elsewhere). For result
/// buffers about to be written in full, up to `TUNING.result_huge_max_bytes`: where the
/// system has huge pages at hand they fault in several times faster than 4 KiB pages, and
/// where the host of a virtual machine must first give them back, several times slower
/// (see that field). The advice is a hint and changes no contents.
pub fn advise_huge<T>(ptr: *mut T, len: usize) {
    #[cfg(target_os = "linux")]
    if len >= HUGE_MIN {
        let start = (ptr as usize).next_multiple_of(HUGE_PAGE);
        let end = (ptr as usize + len) / HUGE_PAGE * HUGE_PAGE;
        if end > start {
            // SAFETY: the range lies inside the caller's allocation (whole pages within
            // `[ptr, ptr + len)`); the advice does not change its contents.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

/// Faults in now, in 4 KiB pages, the whole pages of `[ptr, ptr + len)`: a fresh allocation
/// of the caller's that is about to be written in full (a lookup's results), when `len`
/// is at least `TUNING.commit_min_bytes`. One call faults them all in order, for
/// `parallel` on all of rayon's threads in equal shares (`TUNING.commit_share_min_bytes`),
/// which costs less than taking each fault as the writes reach its page. Linux 5.14+;
/// elsewhere, and where the system cannot commit the memory now, a no-op (the writes then
/// fault the pages in as they would have). Changes no contents.
pub fn commit_for_writes<T>(ptr: *mut T, len: usize, parallel: bool) {
    #[cfg(target_os = "linux")]
    if len >= COMMIT_MIN && !last_page_resident(ptr as usize, len) {
        commit_pages(ptr as usize, len, parallel);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len, parallel, COMMIT_MIN);
}

/// Whether the last whole page inside `[p, p + len)` is resident: memory the allocator
/// reused (freed by the process and handed out again) is, and committing it would only walk
/// its pages. False where the range holds no whole page.
#[cfg(target_os = "linux")]
fn last_page_resident(p: usize, len: usize) -> bool {
    let page = page_size();
    let end = p.saturating_add(len) / page * page;
    end > p.next_multiple_of(page) && page_resident(end - page)
}

/// Faults in the whole pages of `[p, p + len)` in 4 KiB pages, at any length, without asking
/// whether they are resident: for [`commit_for_writes`] and the parts of a larger allocation
/// ([`commit_huge_for_writes`]), whose callers asked.
#[cfg(target_os = "linux")]
fn commit_pages(p: usize, len: usize, parallel: bool) {
    let page = page_size();
    let (start, end) = (p.next_multiple_of(page), p.saturating_add(len) / page * page);
    if end > start {
        let steps = if parallel { Steps::shared(end - start, pool_threads()) } else { Steps::on(&PACE) };
        // SAFETY: sound for any range: in 4 KiB pages (no huge span) `commit` only
        // populates, which faults pages in without changing any byte, and fails with an
        // error (logged below) where the range is not mapped writable. The caller passes its
        // own allocation, so that only its pages are faulted in.
        if let Err(e) = unsafe { commit(start as *mut u8, end - start, 0, parallel, &steps) } {
            log::debug!("committing {len} bytes of results ahead failed ({e}); they fault in as written");
        }
    }
}

/// Whether the rayon engine commits a fresh array of `len` bytes on all of the pool's
/// `threads`: from `TUNING.parallel_commit_min_bytes`, on a pool of at least
/// `TUNING.parallel_commit_min_threads`.
#[cfg(target_os = "linux")]
fn commits_in_parallel(len: usize, threads: usize) -> bool {
    let t = &flash_map_core::tuning::TUNING;
    len >= t.parallel_commit_min_bytes && threads >= t.parallel_commit_min_threads
}

/// The threads of rayon's pool (1 without the `rayon` feature): whether the rayon engine's
/// arrays commit in parallel ([`commits_in_parallel`]), the workers of a parallel
/// [`commit`] and the shares of [`Steps::shared`]. Asked only for the rayon engine's
/// commits: the question starts rayon's global pool, threads that a serial table never
/// uses.
#[cfg(target_os = "linux")]
fn pool_threads() -> usize {
    #[cfg(feature = "rayon")]
    return rayon::current_num_threads();
    #[cfg(not(feature = "rayon"))]
    1
}

/// Prepares `bytes` of fresh result memory at `ptr`, about to be written in full by a
/// lookup (on all of rayon's threads for `parallel`). For a serial lookup, from
/// `TUNING.huge_page_min_bytes` up to `TUNING.result_huge_max_bytes`, its whole 2 MiB pages
/// are committed in huge pages, paced as a table's arrays are (after a slow huge page, 4 KiB
/// pages; the crate's `buf` module); otherwise, and for every parallel lookup, in 4 KiB
/// pages faulted in by one call ([`commit_for_writes`]), on all of rayon's threads for
/// `parallel`, rather than one write at a time. (Parallel lookups with huge-page results
/// were the slower, and the more scattered, on a virtual machine whose host takes freed
/// memory back: BENCHMARKS.md, issue 13.) Changes no contents.
pub fn prepare_results<T>(ptr: *mut T, bytes: usize, parallel: bool) {
    let t = &flash_map_core::tuning::TUNING;
    if !parallel && (t.huge_page_min_bytes..=t.result_huge_max_bytes).contains(&bytes) {
        commit_huge_for_writes(ptr, bytes);
    } else {
        commit_for_writes(ptr, bytes, parallel);
    }
}

/// Faults in now, on the calling thread, the whole 2 MiB pages inside `[ptr, ptr + len)`, a
/// fresh allocation of the caller's about to be written in full (a serial lookup's results,
/// a partition's scratch), with huge pages advised, paced as a table's arrays are
/// (`commit`): after a slow huge page the next parts go to 4 KiB pages. The parts before
/// and after them are committed in 4 KiB
/// pages at any length; a range that holds no whole huge page goes to 4 KiB pages as
/// [`commit_for_writes`] sends it; memory the allocator reused (its last page resident, one
/// `mincore` for the whole range) is left as it is.
/// Advised and left to the writes to fault in, as results were before, one slow huge page
/// did not keep the next from being slow too: a lookup then paid for every huge page what
/// the first cost. The pace is [`RESULT_PACE`], one for the process apart from the
/// tables': following the tables', results committed right after a build that had met one
/// slow huge page went to 4 KiB pages in full where huge pages came fast again; starting
/// from huge pages at every commit, each lookup paid for a slow huge page of its own while
/// huge pages stayed slow (BENCHMARKS.md, issue 13).
/// Linux 5.14+; elsewhere, and where the system cannot commit the memory now, a no-op as
/// [`commit_for_writes`] is. Changes no contents.
pub(crate) fn commit_huge_for_writes<T>(ptr: *mut T, len: usize) {
    #[cfg(target_os = "linux")]
    commit_huge_on(ptr, len, &RESULT_PACE);
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

/// [`commit_huge_for_writes`] at the pace `pace` (tests give it one of their own).
#[cfg(target_os = "linux")]
fn commit_huge_on<T>(ptr: *mut T, len: usize, pace: &'static ProcessPace) {
    let (p, end) = (ptr as usize, (ptr as usize).saturating_add(len));
    let (start, stop) = (p.next_multiple_of(HUGE_PAGE), end / HUGE_PAGE * HUGE_PAGE);
    if stop <= start {
        return commit_for_writes(ptr, len, false);
    }
    // One question for the whole range: a resident last page means memory the allocator
    // reused, as a rule resident throughout (where some of it is not, those pages fault
    // in as written, as without this call).
    if last_page_resident(p, len) {
        return;
    }
    let huge = stop - start;
    // SAFETY: sound for any range, as in `commit_pages`: the advice and `commit`
    // (populating, and advising 4 KiB pages for the parts it commits in them) change no
    // byte, and the population fails with an error (logged below) where the range is
    // not mapped writable. The caller passes its own allocation, whose whole 2 MiB pages
    // these are, so that only its memory is touched.
    unsafe {
        libc::madvise(start as *mut libc::c_void, huge, libc::MADV_HUGEPAGE);
        if let Err(e) = commit(start as *mut u8, huge, huge, false, &Steps::on(pace)) {
            log::debug!("committing {huge} bytes of results ahead failed ({e}); they fault in as written");
        }
    }
    // The parts before and after, at any length: they belong to a large allocation.
    commit_pages(p, start - p, false);
    commit_pages(stop, end - stop, false);
}

/// A fresh anonymous private mapping of `len` bytes (zero, not yet faulted in), or `None`
/// where the system refuses it. Public, hidden, only so that the benches map memory as a
/// table's arrays are mapped.
#[cfg(target_os = "linux")]
pub fn anonymous_mapping(len: usize) -> Option<*mut u8> {
    mapping(len, 0)
}

/// A fresh anonymous private mapping of `len` bytes, readable and writable, with `flags`
/// added to `mmap`'s (`MAP_HUGETLB`: from the reserved huge pages); `None` where the system
/// refuses it (`errno` says why).
#[cfg(target_os = "linux")]
fn mapping(len: usize, flags: libc::c_int) -> Option<*mut u8> {
    // SAFETY: an anonymous private mapping with no address hint: it takes no memory of the
    // process's; failure is checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p as *mut u8)
}

/// Whether the page at `addr` (page-aligned) is resident (`mincore`); false where the call
/// fails (the address is not mapped).
#[cfg(target_os = "linux")]
fn page_resident(addr: usize) -> bool {
    let mut v = 0u8;
    // SAFETY: `mincore` reads no memory of the range, and writes one byte, for the one page
    // asked about, into `v`; it fails with an error for an address that is not mapped.
    let r = unsafe { libc::mincore(addr as *mut libc::c_void, 1, &mut v) };
    r == 0 && v & 1 == 1
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some((base, total)) = self.map {
            let mut unmap = Vec::new();
            if total <= SPARE_BYTES {
                let mut list = spares();
                list.push(Spare { start: self.ptr, len: self.len, map: (base, total) });
                let mut kept: usize = list.iter().map(|s| s.map.1).sum();
                while kept > SPARE_BYTES {
                    let s = list.remove(0);
                    kept -= s.map.1;
                    unmap.push(s.map);
                }
            } else {
                unmap.push((base, total));
            }
            for (base, total) in unmap {
                // SAFETY: a mapping created in `mapped` with exactly this start and length,
                // owned by this buffer or taken off the spare list: no one else uses it.
                unsafe { libc::munmap(base as *mut libc::c_void, total) };
            }
            return;
        }
        if self.len != 0 {
            // SAFETY: allocated in `zeroed` with this exact layout.
            unsafe { dealloc(self.ptr.as_ptr(), Layout::from_size_align_unchecked(self.len, ALIGN)) }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::{
        available_memory, commits_at_once, commits_in_parallel, huge_span, meminfo_bytes, meminfo_count, pace_at,
        AlignedBuf, Pace,
    };
    use flash_map_core::tuning::TUNING;

    /// An array from the reserved huge pages (`AlignedBuf::reserved`): where the pool has
    /// free pages enough, a zeroed, writable array on a huge page's boundary whose pages
    /// count in the process's `HugetlbPages`; where it has not, none at all.
    #[test]
    #[cfg_attr(miri, ignore = "maps memory")]
    fn reserved_huge_pages_come_from_the_pool_or_not_at_all() {
        // A count of pages, not of kB (0 where the system keeps no pool).
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let free = meminfo_count(&meminfo, "HugePages_Free:").unwrap_or(0);
        let hugetlb = || {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            meminfo_bytes(&status, "HugetlbPages:").unwrap_or(0)
        };
        // Two huge pages, the second part-used.
        let len = (3 << 20) + 5;
        let before = hugetlb();
        let Some(mut b) = AlignedBuf::reserved(len, false) else {
            assert!(free < 2, "{free} reserved huge pages free, yet none mapped");
            // Which case ran, flash-map's child-process test prints.
            log::info!("no reserved huge pages free (vm.nr_hugepages): checked that none were mapped");
            return;
        };
        assert!(free >= 2, "mapped two reserved huge pages where {free} were free");
        assert_eq!((b.len(), b.as_ptr() as usize % (2 << 20)), (len, 0));
        assert!(hugetlb() >= before + (4 << 20), "the pages count as huge pages of the pool");
        assert!(b.as_slice().iter().all(|&x| x == 0), "zeroed");
        b.as_mut_slice().iter_mut().enumerate().for_each(|(i, x)| *x = i as u8);
        assert!(b.as_slice().iter().enumerate().all(|(i, &x)| x == i as u8), "writable");
    }

    /// A fresh array commits on all of the pool's threads only where both are large: from
    /// `parallel_commit_min_bytes`, on a pool of `parallel_commit_min_threads` or more (two
    /// threads commit every array on the calling thread).
    #[test]
    fn only_large_arrays_of_large_pools_commit_in_parallel() {
        let (bytes, threads) = (TUNING.parallel_commit_min_bytes, TUNING.parallel_commit_min_threads);
        assert!(threads > 2, "a pool of two threads commits on one");
        for t in [1, 2, threads - 1] {
            assert!(!commits_in_parallel(bytes, t) && !commits_in_parallel(usize::MAX, t), "{t} threads");
        }
        for t in [threads, threads + 1, 16, 256] {
            assert!(commits_in_parallel(bytes, t) && commits_in_parallel(usize::MAX, t), "{t} threads");
            assert!(!commits_in_parallel(bytes - 1, t) && !commits_in_parallel(0, t), "{t} threads");
        }
    }

    /// The parts of a commit paced by `p`, each 2 MiB: `true` for a huge page, taking
    /// `factor` times a unit of time, with the next factor of `factors` until they run
    /// out; `false` for 2 MiB in 4 KiB pages, taking `small` units. The unit, 2⁻¹⁰ s (exact
    /// in floating point), is a fast huge page's time, and 3 units a slow one's.
    fn parts(p: &mut Pace, factors: &[f64], small: f64) -> Vec<bool> {
        let (n, fast) = (2 << 20, 1.0 / 1024.0);
        assert!(
            fast * TUNING.commit_min_rate as f64 <= n as f64 && 3.0 * fast * TUNING.commit_min_rate as f64 > n as f64
        );
        let mut f = factors.iter();
        let mut out = vec![];
        loop {
            let huge = p.next_in_huge();
            if huge {
                let Some(&x) = f.next() else { return out };
                p.after_huge(n, Some(fast * x));
            } else {
                p.after_small(n, fast * small);
            }
            out.push(huge);
        }
    }

    #[test]
    fn a_slow_huge_page_sends_the_next_parts_to_small_pages_then_tries_again() {
        let r = TUNING.commit_probe_ratio;
        assert!(r >= 2 && TUNING.commit_probe_ratio_max >= 8 * r);
        let small = |k: usize| vec![false; k];
        // Fast huge pages stay huge.
        assert_eq!(parts(&mut Pace::new(), &[0.2, 0.9, 0.5], 0.5), vec![true; 3]);
        // A slow huge page (3 units), with 2 MiB of 4 KiB pages in half a unit: 4 KiB pages for `r` times its time (`6 r` parts), then a try; a fast try
        // stays in huge pages and resets the ratio.
        let want = [vec![true, true], small(6 * r), vec![true, true, true], small(6 * r)].concat();
        assert_eq!(parts(&mut Pace::new(), &[0.2, 3.0, 0.2, 0.2, 3.0], 0.5), want);
        // Slow tries double the ratio before the next, up to the maximum: the tries cost ever
        // less of the time in small pages.
        let mut want = vec![true];
        let mut k = r;
        for _ in 0..8 {
            want.extend(small(6 * k));
            want.push(true);
            k = (k * 2).min(TUNING.commit_probe_ratio_max);
        }
        want.extend(small(6 * k));
        assert_eq!(parts(&mut Pace::new(), &[3.0; 9], 0.5), want);
        // A slower huge page buys a longer stretch in small pages: the time, not the count
        // of slow pages, sets it.
        let want = [vec![true], small(12 * r), vec![true]].concat();
        assert_eq!(parts(&mut Pace::new(), &[6.0, 0.2], 0.5), want);
    }

    #[test]
    fn a_last_partial_block_of_a_megabyte_or_more_is_advised_a_whole_huge_page() {
        let (mb, tail) = (1usize << 20, TUNING.huge_page_tail_min_bytes);
        assert!(tail <= mb && TUNING.huge_page_min_bytes == 2 * mb, "the cases below assume these");
        // Below the tail minimum: no huge page.
        assert_eq!(huge_span(tail - 4096), 0);
        // From it up to 2 MiB: one.
        assert_eq!(huge_span(tail), 2 * mb);
        assert_eq!(huge_span(2 * mb), 2 * mb);
        // Whole blocks, and a partial one only from the tail minimum.
        assert_eq!(huge_span(2 * mb + tail - 4096), 2 * mb);
        assert_eq!(huge_span(2 * mb + tail), 4 * mb);
        assert_eq!(huge_span(9 * mb), 10 * mb);
        assert_eq!(huge_span(130_000_000), 130_000_000usize.next_multiple_of(2 * mb));
        assert_eq!(huge_span(8 * mb + 4096), 8 * mb);
    }

    #[test]
    #[cfg_attr(miri, ignore = "maps memory and asks mincore")]
    fn an_array_ending_in_a_whole_huge_page_is_mapped_for_it_and_resident() {
        // 1.5 MiB: advised one huge page, so 2 MiB-aligned, in a mapping that holds the whole
        // page, committed.
        let len = 3 << 19;
        let buf = AlignedBuf::zeroed(len).unwrap();
        let (base, total) = buf.map.expect("mapped");
        let start = buf.as_ptr() as usize;
        assert_eq!(start % (2 << 20), 0);
        assert!(start + (2 << 20) <= base as usize + total, "the mapping holds the whole huge page");
        assert!(resident(&buf));
        assert!(buf.as_slice().iter().all(|&b| b == 0));
    }

    /// Whether every whole page inside `buf` is resident (`mincore`).
    fn resident(buf: &AlignedBuf) -> bool {
        resident_pages(buf.as_ptr(), buf.len()).iter().all(|&r| r)
    }

    /// Whether each whole page inside `[ptr, ptr + len)` (memory of the caller's) is resident.
    fn resident_pages(ptr: *const u8, len: usize) -> Vec<bool> {
        let page = super::page_size();
        let start = (ptr as usize).next_multiple_of(page);
        let end = (ptr as usize + len) / page * page;
        let mut pages = vec![0u8; (end - start) / page];
        // SAFETY: `[start, end)` lies inside the caller's memory; `pages` has room for one
        // byte per page of it.
        let r = unsafe { libc::mincore(start as *mut libc::c_void, end - start, pages.as_mut_ptr()) };
        assert_eq!(r, 0, "mincore: {}", std::io::Error::last_os_error());
        pages.iter().map(|p| p & 1 == 1).collect()
    }

    /// The flags (`VmFlags` of `/proc/self/smaps`, such as `hg` and `nh`) of the mappings
    /// that overlap `[start, start + len)`, all of them in one set.
    fn vm_flags_in(start: usize, len: usize) -> std::collections::BTreeSet<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let mut inside = false;
        let mut flags = std::collections::BTreeSet::new();
        for line in smaps.lines() {
            let range = line.split(' ').next().and_then(|r| r.split_once('-'));
            let bounds =
                range.and_then(|(a, b)| Some((usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?)));
            // A mapping's first line starts with its range in hex; its fields follow it.
            if let Some((a, b)) = bounds {
                inside = a < start + len && start < b;
            } else if let (true, Some(f)) = (inside, line.strip_prefix("VmFlags:")) {
                flags.extend(f.split_whitespace().map(str::to_string));
            }
        }
        flags
    }

    /// A fresh allocation about to be written is faulted in before the writes, on one thread
    /// and on rayon's, with its contents unchanged: by one call in 4 KiB pages
    /// (`commit_for_writes`), and, from a huge page up to `TUNING.result_huge_max_bytes`,
    /// on one thread its whole 2 MiB pages as huge pages at the pace and the ends in 4 KiB
    /// pages, on rayon's in 4 KiB pages (`prepare_results`).
    #[test]
    #[cfg_attr(miri, ignore = "asks mincore")]
    fn results_committed_for_writes_are_resident() {
        let huge = (11 << 20) + 4567;
        assert!((TUNING.huge_page_min_bytes..=TUNING.result_huge_max_bytes).contains(&huge));
        type Commit = fn(*mut u8, usize, bool);
        let ways: [(usize, Commit); 2] =
            [((9 << 20) + 123, super::commit_for_writes::<u8>), (huge, super::prepare_results::<u8>)];
        for (len, commit) in ways {
            for parallel in [false, true] {
                // Fresh memory for certain: a mapping of its own, not the allocator's (which
                // may hand out memory freed by another test, partly faulted in: the commit
                // then takes it for reused memory, resident already, and leaves it).
                let map = 2 * len;
                let base = super::anonymous_mapping(map).expect("mmap");
                // An allocation that starts mid-page, as the allocator's do.
                let p = base.wrapping_add(4096 * 3 + 16);
                // SAFETY: `[p, p + len)` lies inside the mapping, which this test owns.
                let v = unsafe { std::slice::from_raw_parts_mut(p, len) };
                assert!(resident_pages(p, len).iter().all(|&r| !r), "fresh memory already resident");
                v[..4096].iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
                commit(p, len, parallel);
                assert!(resident_pages(p, len).iter().all(|&r| r), "{len} parallel {parallel}: not committed");
                if len == huge && std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
                    // Huge pages for a serial lookup's results only: advised, or, where the
                    // pace sent them to 4 KiB pages after a slow one (in this test or
                    // another's commit), advised against.
                    let flags = vm_flags_in(base as usize, map);
                    let paced = flags.contains("hg") || flags.contains("nh");
                    assert_eq!(paced, !parallel, "results paced in huge pages, parallel {parallel}");
                }
                assert!(v[..4096].iter().enumerate().all(|(i, &b)| b == i as u8), "commit changed the contents");
                assert!(v[4096..].iter().all(|&b| b == 0), "commit changed the contents");
                // SAFETY: the mapping made above, no longer used.
                unsafe { libc::munmap(base as *mut libc::c_void, map) };
            }
        }
    }

    /// Lookups' results (and partitions' scratch) follow one pace across commits: after a
    /// slow huge page, a later commit's whole 2 MiB pages go to 4 KiB pages at once, none
    /// tried in huge pages, where a pace that started over tries the first in a huge page.
    #[test]
    #[cfg_attr(miri, ignore = "asks the kernel")]
    fn results_commits_keep_their_pace_from_one_to_the_next() {
        use super::{commit_huge_on, ProcessPace, HUGE_PAGE};
        // Without transparent huge pages no advice shows; the commits are checked all the same.
        let thp = std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists();
        // Paces of this test's own, kept for a minute without use, so that no other test's
        // commit and no pause of this one changes them.
        static SLOW: ProcessPace = ProcessPace::new(60_000);
        static FRESH: ProcessPace = ProcessPace::new(60_000);
        // A huge page that took a second: 4 KiB pages for four seconds of commits.
        SLOW.with(|p| p.after_huge(HUGE_PAGE, Some(1.0)));
        let len = 3 * HUGE_PAGE + 4567;
        for (pace, huge_tried) in [(&SLOW, false), (&FRESH, true)] {
            let map = len + 2 * HUGE_PAGE;
            let base = super::anonymous_mapping(map).expect("mmap");
            let p = base.wrapping_add(4096 * 3 + 16);
            commit_huge_on(p, len, pace);
            assert!(resident_pages(p, len).iter().all(|&r| r), "not committed");
            if thp {
                let flags = vm_flags_in(base as usize, map);
                assert_eq!(flags.contains("hg"), huge_tried, "a huge page tried: {flags:?}");
                assert!(flags.contains("nh") || huge_tried, "4 KiB pages advised: {flags:?}");
            }
            // SAFETY: the mapping made above, no longer used.
            unsafe { libc::munmap(base as *mut libc::c_void, map) };
        }
    }

    /// Results whose last page is resident are taken for memory the allocator reused, and
    /// left as they are, by both ways: one `mincore` decides for the whole range.
    #[test]
    #[cfg_attr(miri, ignore = "asks mincore")]
    fn results_whose_last_page_is_resident_are_left_as_they_are() {
        type Commit = fn(*mut u8, usize, bool);
        let ways: [(usize, Commit); 2] =
            [((9 << 20) + 123, super::commit_for_writes::<u8>), ((11 << 20) + 4567, super::prepare_results::<u8>)];
        for (len, commit) in ways {
            let base = super::anonymous_mapping(len + 4096).expect("mmap");
            let p = base.wrapping_add(16);
            // SAFETY: `[p, p + len)` lies inside the mapping, which this test owns.
            let v = unsafe { std::slice::from_raw_parts_mut(p, len) };
            // A byte in the last whole page.
            let page = super::page_size();
            let last = (p as usize + len) / page * page - page - p as usize;
            v[last] = 7;
            commit(p, len, false);
            let res = resident_pages(p, len);
            assert!(res[res.len() - 1], "the written page");
            // The first half only: where the system gives every fault a huge page, the
            // written page's 2 MiB block came in with it.
            assert!(res[..res.len() / 2].iter().all(|&r| !r), "{len}: reused memory committed again");
            assert_eq!(v[last], 7);
            // SAFETY: the mapping made above, no longer used.
            unsafe { libc::munmap(base as *mut libc::c_void, len + 4096) };
        }
    }

    #[test]
    fn a_partial_block_takes_a_huge_page_only_right_after_a_fast_one() {
        let (n, fast) = (2 << 20, 1.0 / 1024.0);
        // No evidence yet (a fresh pace, or one forgotten): 4 KiB pages.
        let mut p = Pace::new();
        assert!(!p.next_in_huge_tail());
        // After a fast huge page: a huge page.
        assert!(p.next_in_huge());
        assert!(!p.after_huge(n, Some(fast)));
        assert!(p.next_in_huge_tail());
        // After a slow one, none, also once huge pages are kept despite it.
        assert!(p.after_huge(n, Some(3.0 * fast)));
        assert!(!p.next_in_huge_tail());
        let mut p = Pace { huge_left: 1.0, fast: true, ..Pace::new() };
        assert!(p.after_huge(n, Some(3.0 * fast)));
        assert!(p.next_in_huge(), "huge pages kept");
        assert!(!p.next_in_huge_tail());
    }

    /// A fresh mapping smaller than a huge page (a small lookup's results) is committed too,
    /// from `TUNING.commit_min_bytes` on; below that, it is left to fault in as written.
    #[test]
    #[cfg_attr(miri, ignore = "maps memory and asks mincore")]
    fn small_results_are_committed_from_the_commit_minimum() {
        for (len, committed) in [(super::COMMIT_MIN + 5000, true), (super::COMMIT_MIN - 8192, false)] {
            let p = super::anonymous_mapping(len).expect("a small mapping");
            assert!(resident_pages(p, len).iter().all(|&r| !r), "fresh memory already resident");
            super::commit_for_writes(p, len, false);
            let res = resident_pages(p, len);
            assert!(res.iter().all(|&r| r == committed), "{len} bytes: resident {res:?}");
            // SAFETY: the mapping made above, not used after.
            unsafe { libc::munmap(p as *mut libc::c_void, len) };
        }
    }

    /// A parallel lookup's results split into equal steps in whole pages, one per thread
    /// where each holds `TUNING.commit_share_min_bytes`, else fewer (one below twice that),
    /// and none above `TUNING.commit_step_bytes`.
    #[test]
    fn results_split_into_equal_shares_between_the_bounds() {
        let (min, max, page) = (TUNING.commit_share_min_bytes, TUNING.commit_step_bytes, super::page_size());
        assert!(min % page == 0 && max % page == 0 && 2 * min <= max);
        let steps = |len: usize, workers| {
            let size = super::Steps::shared(len, workers).size;
            assert!(size % page == 0 && size <= max, "{len} bytes on {workers}: steps of {size}");
            len.div_ceil(size)
        };
        // 12.9 MB on two threads: two steps of half of it, not 8 MiB and 4.3.
        let len = 12_900_000;
        assert_eq!(super::Steps::shared(len, 2).size, (len / 2).next_multiple_of(page));
        assert_eq!(steps(len, 2), 2);
        // Below twice the minimum: one step, whatever the threads.
        for workers in [1, 2, 16] {
            assert_eq!(steps(2 * min - page, workers), 1);
            assert_eq!(steps(min / 2, workers), 1);
        }
        // Large results keep the usual step, on any number of threads.
        assert_eq!(super::Steps::shared(129 << 20, 2).size, max);
        assert_eq!(super::Steps::shared(len, 1).size, max);
        // Many threads: as many steps as hold the minimum.
        assert_eq!(steps(5 * min, 16), 5);
        assert_eq!(steps(64 * min, 16), 16);
    }

    /// A parallel commit of a table's array splits it into equal steps in whole huge pages,
    /// one per thread where each holds `TUNING.commit_share_min_bytes`, else fewer, and none
    /// above `TUNING.commit_step_bytes`: on sixteen threads a 32 MiB array goes to all of
    /// them, not to four steps of 8 MiB.
    #[test]
    fn table_arrays_split_into_huge_page_shares() {
        let (min, max) = (TUNING.commit_share_min_bytes, TUNING.commit_step_bytes);
        let huge = super::HUGE_PAGE;
        assert!(min <= huge && max % huge == 0);
        let steps = |len: usize, workers| {
            let size = super::Steps::table_shares(len, workers).size;
            assert!(size % huge == 0 && (huge..=max).contains(&size), "{len} bytes on {workers}: steps of {size}");
            len.div_ceil(size)
        };
        assert_eq!(steps(32 << 20, 16), 16);
        // Shares round up to whole huge pages: 36 MiB on sixteen threads is nine of 4 MiB.
        assert_eq!(super::Steps::table_shares(36 << 20, 16).size, 4 << 20);
        // An array that is not a whole number of shares: the last step is the shorter.
        assert_eq!(super::Steps::table_shares(5 << 20, 2).size, 4 << 20);
        // Large arrays keep the usual step; one worker takes them in that step.
        assert_eq!(steps(1 << 30, 16), (1 << 30) / max);
        assert_eq!(super::Steps::table_shares(64 << 20, 1).size, max);
        // Below twice the minimum share: one step.
        assert_eq!(steps(2 * min - 4096, 16), 1);
    }

    /// A fresh array from `parallel_commit_min_bytes` up, made by the rayon engine in a pool
    /// of `parallel_commit_min_threads` or more, is committed in shares for the pool's
    /// threads (9 MiB + 12 KiB on four threads: two shares of 4 MiB and a shorter last
    /// one): resident in full, and zero. Reuse of a dropped array of the same length would
    /// make it resident too, so the length is one no other test uses.
    #[cfg(feature = "rayon")]
    #[test]
    #[cfg_attr(miri, ignore = "maps memory and asks mincore")]
    fn a_large_pools_fresh_array_is_committed_in_shares() {
        let len = (9 << 20) + 3 * 4096;
        assert!(len >= TUNING.parallel_commit_min_bytes && commits_in_parallel(len, 4));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        let buf = pool.install(|| AlignedBuf::zeroed_by(len, true)).unwrap();
        assert!(resident(&buf), "a fresh array of a large pool is not resident");
        assert!(buf.as_slice().iter().all(|&b| b == 0), "a fresh array is not zero");
        assert_eq!(super::Steps::table_shares(len, 4).size, 4 << 20);
    }

    /// A commit that meets a page it may not write after its first steps is an error, on
    /// one thread and on rayon's (where the failing step is one that no worker takes before
    /// it has committed a step), and the steps before it were committed.
    #[test]
    #[cfg_attr(miri, ignore = "maps memory and asks mincore")]
    fn a_commit_that_fails_partway_is_an_error() {
        let step = flash_map_core::tuning::TUNING.commit_step_bytes;
        for parallel in [false, true] {
            #[cfg(feature = "rayon")]
            let workers = if parallel { rayon::current_num_threads() } else { 1 };
            #[cfg(not(feature = "rayon"))]
            let workers = 1;
            let len = (workers + 2) * step;
            let p = super::anonymous_mapping(len).expect("a mapping");
            // SAFETY: one page inside the mapping made above.
            let r = unsafe { libc::mprotect(p.add(workers * step + 4096) as *mut libc::c_void, 4096, libc::PROT_READ) };
            assert_eq!(r, 0);
            // SAFETY: whole pages of the mapping made above, which nothing else uses.
            let r = unsafe { super::commit_on(p, len, 0, parallel) };
            assert!(r.is_err(), "parallel {parallel}: a failed commit reported {r:?}");
            assert!(resident_pages(p, step).iter().all(|&r| r), "parallel {parallel}: step 0 was not committed");
            // SAFETY: the mapping made above, not used after.
            unsafe { libc::munmap(p as *mut libc::c_void, len) };
        }
    }

    /// Filled with ones and dropped: what a table leaves behind.
    fn dirty_drop(mut buf: AlignedBuf) -> usize {
        buf.as_mut_slice().fill(1);
        let at = buf.as_ptr() as usize;
        drop(buf);
        at
    }

    /// A dropped array's mapping goes to the next array of exactly its length, zeroed and
    /// resident; another length gets a fresh one. (Lengths no other test uses, as tests
    /// share the list; another test's `release_spare_memory` may empty it, so a miss is
    /// retried.)
    #[test]
    #[cfg_attr(miri, ignore = "maps memory and asks mincore")]
    fn a_dropped_array_is_reused_zeroed_by_the_next_of_its_length() {
        // Zeroed on one thread, and on rayon's (with the feature).
        for (len, parallel) in [(TUNING.commit_min_bytes * 3 + 4096 * 7, false), (5 << 20, true)] {
            let mut reused = false;
            for _ in 0..20 {
                let at = dirty_drop(AlignedBuf::zeroed(len).unwrap());
                let other = AlignedBuf::zeroed(len + 4096).unwrap();
                assert_ne!(other.as_ptr() as usize, at, "another length took the spare");
                let again = AlignedBuf::zeroed_by(len, parallel).unwrap();
                assert!(again.as_slice().iter().all(|&b| b == 0), "a reused array is not zero");
                assert!(resident(&again), "a reused array is not resident");
                dirty_drop(other);
                if again.as_ptr() as usize == at {
                    reused = true;
                    break;
                }
            }
            assert!(reused, "{len} bytes: a dropped array's mapping was never reused");
        }
    }

    /// An array for a table's keys or values takes a dropped array's mapping as it is: the
    /// bytes the former array left stay (where a zeroed one would be rewritten), and it is
    /// resident. A fresh one is zero.
    #[test]
    #[cfg_attr(miri, ignore = "maps memory and asks mincore")]
    fn an_array_for_slots_keeps_the_bytes_of_the_one_it_reuses() {
        let len = TUNING.commit_min_bytes * 5 + 4096 * 3;
        let fresh = AlignedBuf::for_slots(len).unwrap();
        assert!(fresh.as_slice().iter().all(|&b| b == 0), "a fresh array is not zero");
        let mut at = dirty_drop(fresh);
        let mut reused = false;
        for _ in 0..20 {
            let again = AlignedBuf::for_slots_by(len, true).unwrap();
            if again.as_ptr() as usize == at {
                assert!(again.as_slice().iter().all(|&b| b == 1), "a reused array for slots was rewritten");
                assert!(resident(&again), "a reused array is not resident");
                reused = true;
                break;
            }
            // Another test's release emptied the list: try again.
            at = dirty_drop(again);
        }
        assert!(reused, "a dropped array's mapping was never reused");
    }

    /// The spares stay within `TUNING.spare_bytes` (oldest unmapped first), a mapping larger
    /// than that is never kept, and `release_spare_memory` empties the list.
    #[test]
    #[cfg_attr(miri, ignore = "maps memory")]
    fn spares_stay_within_their_limit_and_go_back_on_release() {
        let kept = || super::spares().iter().map(|s| s.map.1).sum::<usize>();
        let len = super::SPARE_BYTES / 3 + 4096 * 5;
        let held: Vec<AlignedBuf> = (0..4).map(|_| AlignedBuf::zeroed(len).unwrap()).collect();
        for buf in held {
            dirty_drop(buf);
            assert!(kept() <= super::SPARE_BYTES, "{} bytes kept", kept());
        }
        // An oversized mapping is neither kept nor makes room by unmapping the others.
        let small = dirty_drop(AlignedBuf::zeroed(TUNING.commit_min_bytes + 4096 * 9).unwrap());
        let big = dirty_drop(AlignedBuf::zeroed(super::SPARE_BYTES + 1).unwrap());
        let starts = || super::spares().iter().map(|s| s.start.as_ptr() as usize).collect::<Vec<_>>();
        assert!(!starts().contains(&big), "an oversized mapping was kept");
        assert!(starts().contains(&small), "an oversized mapping unmapped the others");
        dirty_drop(AlignedBuf::zeroed(len).unwrap());
        let ours: Vec<usize> = super::spares().iter().map(|s| s.start.as_ptr() as usize).collect();
        assert!(!ours.is_empty() && super::release_spare_memory() >= len, "nothing released");
        assert!(
            super::spares().iter().all(|s| !ours.contains(&(s.start.as_ptr() as usize))),
            "a spare outlived the release"
        );
    }

    const CHILD: &str = "FLASH_MAP_CPU_SPARE_CHILD";

    /// Runs `kept_memory_goes_back_when_a_build_needs_it` in a child process (it limits its
    /// address space) and checks that it ran and passed.
    #[test]
    #[cfg_attr(miri, ignore = "runs a child process")]
    fn a_build_that_needs_kept_memory_gets_it_back() {
        let exe = std::env::current_exe().expect("test executable");
        let out = std::process::Command::new(exe)
            .args(["--exact", "buf::tests::kept_memory_goes_back_when_a_build_needs_it"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .expect("run the child");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        // "1 passed": the child ran the test (a filter that matched nothing passes too).
        assert!(out.status.success() && text.contains("1 passed"), "child:\n{text}");
    }

    /// A dropped array is kept, and counts against the address-space limit set next; an
    /// array of another length, for which there is no room but that memory, is still made
    /// (the kept mapping is unmapped, and the mapping retried).
    #[test]
    #[ignore = "run in a child process by a_build_that_needs_kept_memory_gets_it_back"]
    fn kept_memory_goes_back_when_a_build_needs_it() {
        assert_eq!(std::env::var(CHILD).as_deref(), Ok("1"), "run through the parent test");
        let len = super::SPARE_BYTES / 2;
        dirty_drop(AlignedBuf::zeroed(len).unwrap());
        assert!(!super::spares().is_empty(), "nothing kept");
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let used: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmSize");
        let r = libc::rlimit { rlim_cur: (used * 1024 + (1 << 20)) as libc::rlim_t, rlim_max: libc::RLIM_INFINITY };
        // SAFETY: `r` is a valid rlimit; lowering the soft limit is always allowed.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) }, 0, "setrlimit");
        let other = AlignedBuf::zeroed(len + 4096 * 3);
        assert!(other.is_ok(), "no memory for an array while a kept one held it");
    }

    /// Where a stretch's 4 KiB pages are no faster per byte than the slow huge page that
    /// started it, huge pages stay, slow ones too, for the ratio times the stretch's time;
    /// then a slow huge page starts a stretch again, and where its 4 KiB pages are faster, a
    /// huge page is tried at its end. One slow 4 KiB part among faster ones decides nothing.
    #[test]
    fn huge_pages_stay_where_small_pages_are_no_faster() {
        let (n, unit, r) = (2 << 20, 1.0 / 1024.0, TUNING.commit_probe_ratio as f64);
        let mut p = Pace::new();
        // A stretch of 4 KiB parts that take 4 units each, after a huge page of 3.
        p.after_huge(n, Some(unit * 3.0));
        let mut stretch = 0.0;
        while !p.next_in_huge() {
            p.after_small(n, unit * 4.0);
            stretch += unit * 4.0;
        }
        assert_eq!(stretch, (3.0 * r / 4.0).ceil() * 4.0 * unit, "the stretch lasts the ratio times 3 units");
        // No faster: huge pages for the ratio times the stretch, slow ones (4 units) too.
        let mut slow_huge = 0;
        while p.next_in_huge() && slow_huge < 1000 {
            p.after_huge(n, Some(unit * 4.0));
            slow_huge += 1;
        }
        assert_eq!(
            slow_huge as f64,
            (stretch * r / (4.0 * unit)).ceil() + 1.0,
            "then one more slow one starts a stretch"
        );
        // This stretch's 4 KiB pages are faster on the whole, one slow part included: a try
        // at its end.
        p.after_small(n, unit * 6.0);
        let mut parts = 1;
        while !p.next_in_huge() {
            p.after_small(n, unit * 0.5);
            parts += 1;
        }
        assert!(parts > 2 && p.trying, "a try after {parts} parts");
    }

    /// Workers sharing the pace: all in huge pages while they are fast; in a slow stretch,
    /// one try at a time, the others in 4 KiB pages until it reports; a failed try ends the
    /// try without a verdict.
    #[test]
    fn workers_share_the_pace_and_try_one_at_a_time() {
        let (n, unit) = (2 << 20, 1.0 / 1024.0);
        let mut p = Pace::new();
        assert!(p.next_in_huge() && p.next_in_huge(), "both workers in huge pages");
        p.after_huge(n, Some(unit * 3.0));
        assert!(!p.next_in_huge(), "after a slow huge page, 4 KiB pages");
        let mut k = 0;
        while !p.next_in_huge() {
            p.after_small(n, unit * 0.5);
            k += 1;
        }
        assert_eq!(
            k,
            6 * TUNING.commit_probe_ratio,
            "4 KiB pages for the ratio times 3 units; then the first worker tries"
        );
        assert!(!p.next_in_huge(), "the second does not while the try is under way");
        p.after_huge(n, None);
        assert!(p.next_in_huge(), "a failed try gives the next worker its turn");
        p.after_huge(n, Some(unit * 0.5));
        assert!(p.next_in_huge() && p.next_in_huge(), "a fast try: everyone in huge pages");
    }

    /// The process's pace forgets a slow stretch once no commit has used it for
    /// `commit_pace_forget_ms`, and keeps it while commits come closer together.
    #[test]
    fn the_process_pace_forgets_a_slow_stretch_after_a_pause() {
        use std::time::{Duration, Instant};
        for ms in [TUNING.commit_pace_forget_ms, TUNING.result_pace_forget_ms] {
            let forget = Duration::from_millis(ms as u64);
            let (mut pace, mut last, t0) = (Pace::new(), None, Instant::now());
            pace_at(&mut pace, &mut last, t0, forget, |p| p.after_huge(2 << 20, Some(1.0)));
            let t1 = t0 + forget / 2;
            assert!(!pace_at(&mut pace, &mut last, t1, forget, Pace::next_in_huge), "still slow");
            assert!(!pace_at(&mut pace, &mut last, t1 + forget, forget, Pace::next_in_huge), "used within the pause");
            assert!(pace_at(
                &mut pace,
                &mut last,
                t1 + forget * 2 + Duration::from_millis(1),
                forget,
                Pace::next_in_huge
            ));
            assert!(!pace.slow, "started over");
        }
    }

    /// The machine of a server that has read files for a while: a few hundred MB free, the
    /// rest page cache that the kernel reclaims when asked. A table's 136 MB value array is
    /// committed there, as with free memory; only an array larger than half of what is
    /// available stays lazy.
    #[test]
    fn arrays_are_committed_against_available_memory_not_free_memory() {
        const MB: usize = 1 << 20;
        let (free, available) = (|| 300 * MB, || Some(23_600 * MB));
        assert!(commits_at_once(136 * MB, free, available), "page cache counts as available");
        assert!(commits_at_once(11_000 * MB, free, available));
        assert!(!commits_at_once(12_000 * MB, free, available), "over half of what is available");
        assert!(!commits_at_once(136 * MB, || 200 * MB, || Some(250 * MB)));
        // Without `/proc/meminfo`, free memory decides.
        assert!(commits_at_once(100 * MB, || 200 * MB, || None));
        assert!(!commits_at_once(136 * MB, || 200 * MB, || None));
        // An array that fits in half the free memory never reads the file.
        assert!(commits_at_once(136 * MB, || 1_000 * MB, || unreachable!("read /proc/meminfo")));
    }

    #[test]
    fn available_memory_is_read_from_meminfo() {
        let text = "MemTotal:       24683520 kB\nMemFree:          312264 kB\nMemAvailable:   24165248 kB\n";
        assert_eq!(meminfo_bytes(text, "MemAvailable:"), Some(24_165_248 * 1024));
        assert_eq!(meminfo_bytes(text, "MemFree:"), Some(312_264 * 1024));
        assert_eq!(meminfo_bytes(text, "Cached:"), None);
        assert_eq!(meminfo_bytes("MemAvailable: lots kB\n", "MemAvailable:"), None);
        // Counts have no unit: read by `meminfo_count`, never taken for kB.
        let pool = "HugePages_Total:     200\nHugePages_Free:      198\nHugepagesize:       2048 kB\n";
        assert_eq!(meminfo_count(pool, "HugePages_Free:"), Some(198));
        assert_eq!(meminfo_bytes(pool, "HugePages_Free:"), None);
        assert_eq!(meminfo_count(pool, "Hugepagesize:"), None);
        assert_eq!(meminfo_bytes(pool, "Hugepagesize:"), Some(2 << 20));
        assert_eq!(meminfo_count(pool, "HugePages_Rsvd:"), None);
    }

    /// This machine's: present (Linux 3.14+), and no more than all of memory.
    #[test]
    #[cfg_attr(miri, ignore = "reads /proc/meminfo")]
    fn this_machine_has_available_memory() {
        let total = meminfo_bytes(&std::fs::read_to_string("/proc/meminfo").unwrap(), "MemTotal:").unwrap();
        let available = available_memory().expect("MemAvailable in /proc/meminfo");
        assert!(available > 0 && available <= total, "{available} of {total}");
    }
}
