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

/// Indices per rayon task: large enough to amortise scheduling, small enough to balance.
#[cfg(feature = "rayon")]
const MIN_LEN: usize = 4096;

impl Exec {
    /// Whether this strategy runs on several threads.
    pub fn is_parallel(self) -> bool {
        !matches!(self, Exec::Serial)
    }

    /// Calls `f(i)` for every `i` in `0..n` and returns the sum of the results.
    pub fn sum<F>(self, n: usize, f: F) -> usize
    where
        F: Fn(usize) -> usize + Sync + Send,
    {
        match self {
            Exec::Serial => (0..n).map(f).sum(),
            #[cfg(feature = "rayon")]
            Exec::Rayon => {
                use rayon::prelude::*;
                (0..n).into_par_iter().with_min_len(MIN_LEN).map(f).sum()
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
            Exec::Rayon => {
                use rayon::prelude::*;
                (0..n).into_par_iter().with_min_len(MIN_LEN).for_each(f)
            }
        }
    }
}
