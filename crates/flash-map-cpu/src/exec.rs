//! How a pass over a batch runs: on the calling thread, or split across rayon's pool.

/// The execution strategy of a CPU table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exec {
    /// One thread, plain memory accesses.
    Serial,
    /// All of rayon's threads, atomic slot claims.
    #[cfg(feature = "rayon")]
    Rayon,
}

/// Indices per rayon task ([`flash_map_core::tuning::TUNING`]`.rayon_min_len`).
#[cfg(feature = "rayon")]
const MIN_LEN: usize = flash_map_core::tuning::TUNING.rayon_min_len;

/// Asks the CPU to bring the cache line holding `p` into L1 (a hint; never faults).
#[inline(always)]
pub(crate) fn prefetch_read<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint that never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch(p as *const i8, core::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl Exec {
    /// Whether this strategy runs on several threads.
    pub fn is_parallel(self) -> bool {
        !matches!(self, Exec::Serial)
    }

    /// Calls `f(range)` over consecutive ranges covering `0..n`: one range on one thread,
    /// ranges of `MIN_LEN` on rayon. Within a range, work runs in order.
    pub fn for_chunks<F>(self, n: usize, f: F)
    where
        F: Fn(std::ops::Range<usize>) + Sync + Send,
    {
        self.sum_chunks(n, |r| {
            f(r);
            0
        });
    }

    /// Like [`for_chunks`](Self::for_chunks), summing `f`'s results.
    pub fn sum_chunks<F>(self, n: usize, f: F) -> usize
    where
        F: Fn(std::ops::Range<usize>) -> usize + Sync + Send,
    {
        match self {
            Exec::Serial => f(0..n),
            // One chunk: no work to share, so no hand-off to the pool (a batch this small
            // would otherwise wait for a worker to wake up).
            #[cfg(feature = "rayon")]
            Exec::Rayon if n <= MIN_LEN => f(0..n),
            #[cfg(feature = "rayon")]
            Exec::Rayon => {
                use rayon::prelude::*;
                (0..n.div_ceil(MIN_LEN)).into_par_iter().map(|c| f(c * MIN_LEN..((c + 1) * MIN_LEN).min(n))).sum()
            }
        }
    }

    /// Calls `f(i)` for every `i` in `0..n`.
    pub fn for_each<F>(self, n: usize, f: F)
    where
        F: Fn(usize) + Sync + Send,
    {
        match self {
            Exec::Serial => (0..n).for_each(f),
            #[cfg(feature = "rayon")]
            Exec::Rayon if n <= MIN_LEN => (0..n).for_each(f),
            #[cfg(feature = "rayon")]
            Exec::Rayon => {
                use rayon::prelude::*;
                (0..n).into_par_iter().with_min_len(MIN_LEN).for_each(f)
            }
        }
    }
}
