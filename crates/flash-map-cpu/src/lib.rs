//! CPU engines of flash-map: one SoA table, driven by one thread or by all cores with rayon.
//!
//! - `buf`: 16-byte-aligned, lazily zeroed, fallibly allocated byte buffers.
//! - `slots`: the two [`flash_map_core::Slots`] implementations (plain and atomic).
//! - `table`: [`CpuTable`], the table's arrays and its bookkeeping (len, tombstones,
//!   rebuilds, growth, entries, and the dense value array of tables of large values).
//! - `ops`: the bulk operations, each a pass (or three) over the batch.
//! - `exec`: [`Exec`], the driver that runs a pass serially or on rayon.
//! - `pipeline`: the software prefetch every pass runs through.
//!
//! Both engines run the same per-key algorithms from `flash-map-core`, and resolve duplicate
//! keys by batch position, so they return identical results for identical calls.

mod buf;
mod claim;
mod direct;
mod engine;
mod exec;
mod lookup;
mod mem;
mod ops;
mod partition;
mod pipeline;
mod remove;
mod slots;
mod table;
mod write;

#[doc(hidden)]
pub use buf::{
    advise_huge, commit_for_writes, forget_commit_paces, prepare_results, release_spare_memory,
    use_reserved_huge_pages, AlignedBuf,
};
#[cfg(target_os = "linux")]
#[doc(hidden)]
pub use buf::{anonymous_mapping, meminfo_bytes, meminfo_count};
pub use exec::Exec;
pub use ops::set_rayon_serial_mutations;
#[doc(hidden)]
pub use pipeline::{cached_bytes, cached_state_bytes, prefetch_lines};
pub use table::CpuTable;
#[doc(hidden)]
pub use table::{dense_values, records, table_bytes};

use flash_map_core::LayoutError;

/// Errors of the CPU engines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuError {
    /// The table's sizes are invalid.
    #[error("invalid table layout: {0:?}")]
    Layout(LayoutError),
    /// Memory for the table could not be allocated.
    #[error("could not allocate {bytes} bytes for the table; ask for a smaller capacity")]
    Alloc {
        /// Bytes requested.
        bytes: usize,
    },
    /// The batch's claims were refused (its new keys do not fit, or keys share their hash
    /// with too many others: [`CpuTable::rebuild_with`] a stronger hash); nothing was
    /// changed.
    #[error("{0}")]
    Refused(flash_map_core::Refusal),
}

impl From<flash_map_core::Refusal> for CpuError {
    fn from(r: flash_map_core::Refusal) -> Self {
        CpuError::Refused(r)
    }
}

impl From<LayoutError> for CpuError {
    fn from(e: LayoutError) -> Self {
        CpuError::Layout(e)
    }
}

#[cfg(test)]
mod tests;
