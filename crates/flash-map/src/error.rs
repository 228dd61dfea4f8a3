//! [`FlashMapError`]: every way a call can fail, with what to do about it.

use crate::Backend;

/// Errors returned by flash-map. Every message says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlashMapError {
    /// A capacity of zero was requested.
    #[error("capacity must be at least 1")]
    ZeroCapacity,
    /// The batch's new keys do not fit and `auto_grow` is off; the map is unchanged.
    #[error(
        "table full: {len} entries + {new} new keys exceed capacity {capacity}; \
         build with a larger capacity, call reserve(), or enable auto_grow(true)"
    )]
    TableFull {
        /// Live entries before the batch.
        len: usize,
        /// New keys the batch would add (a lower bound when the table ran out of slots).
        new: usize,
        /// Entries the map holds.
        capacity: usize,
    },
    /// Keys of the batch share their hash with more than
    /// [`COLLISION_LIMIT`](flash_map_core::probe::COLLISION_LIMIT) others even under
    /// [`HashStrategy::SipHash13`](crate::HashStrategy::SipHash13), the strongest strategy
    /// (the map rebuilds itself with a stronger one before it returns this). The map is
    /// unchanged. With a secret random key this does not happen; with a key given to
    /// [`hash_seed`](crate::FlashMapBuilder::hash_seed) it means the key is known to
    /// whoever chose the keys.
    #[error(
        "{keys} keys share their hash with more than 16 others even under SipHash13; \
         use a secret hash_seed (or none: a random one)"
    )]
    HashCollisions {
        /// Keys that gave up on collisions (at least this many).
        keys: usize,
    },
    /// The key type has size zero, so keys cannot be told apart.
    #[error("zero-sized key types are not supported; use a key of at least one byte")]
    ZeroSizedKey,
    /// The requested capacity cannot be represented (more than 2^31 slots or `usize` bytes).
    #[error("capacity {requested} is too large (at most 2^31 slots); ask for less")]
    CapacityOverflow {
        /// The capacity asked for.
        requested: usize,
    },
    /// Memory for the table or a batch could not be allocated.
    #[error("could not allocate {bytes} bytes; ask for a smaller capacity or batch")]
    AllocationFailed {
        /// Bytes requested.
        bytes: usize,
    },
    /// The maximum load factor is not in (0, 1).
    #[error("max_load_factor must be in (0, 1), got {0}")]
    InvalidLoadFactor(f64),
    /// The backend asked for is not compiled in or cannot be used here.
    #[error("backend {backend} is unavailable: {reason}")]
    BackendUnavailable {
        /// The backend asked for.
        backend: Backend,
        /// Why it cannot be used, and what to enable.
        reason: String,
    },
    /// A batch has more entries than one call can take.
    #[error("batch of {len} entries exceeds the limit of {max} per call; split it")]
    BatchTooLarge {
        /// Entries in the batch.
        len: usize,
        /// The most entries one call takes.
        max: usize,
    },
    /// Columns of one call differ in length: values (or an output slice) for a different
    /// number of entries than there are keys. Nothing was changed.
    #[error("{keys} keys with a column of {other} entries; pass one value (or result slot) per key")]
    ColumnLengths {
        /// Keys in the call.
        keys: usize,
        /// Entries in the other column.
        other: usize,
    },
    /// A device-resident call (`bulk_*_device`, `cuda_stream`) on a map whose backend is not
    /// Cuda.
    #[error("device-resident calls need the Cuda backend, and this map runs on {backend}; use the host calls (bulk_insert, bulk_get, ...) or build with Backend::Cuda")]
    NotOnDevice {
        /// The map's backend.
        backend: Backend,
    },
    /// The CUDA driver reported an error.
    #[error("CUDA error: {0}")]
    Cuda(String),
    /// A snapshot could not be read: it is not a flash-map snapshot, or does not match.
    #[error("invalid snapshot: {0}")]
    Snapshot(String),
    /// A background task of [`crate::AsyncFlashMap`] failed: it panicked or was cancelled,
    /// or an earlier one panicked while holding the map, which may then be half-updated.
    #[error("async task failed: {0}; rebuild the map (e.g. from a snapshot) if it was poisoned")]
    Task(String),
    /// Reading or writing a snapshot failed.
    #[error("snapshot I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand for `Result<T, FlashMapError>`.
pub type Result<T, E = FlashMapError> = std::result::Result<T, E>;

/// The one place an engine's refusal of a batch becomes the public error.
impl From<flash_map_core::Refusal> for FlashMapError {
    fn from(r: flash_map_core::Refusal) -> Self {
        match r {
            flash_map_core::Refusal::Full { len, new, capacity } => FlashMapError::TableFull { len, new, capacity },
            flash_map_core::Refusal::Collisions { keys } => FlashMapError::HashCollisions { keys },
        }
    }
}

impl From<flash_map_cpu::CpuError> for FlashMapError {
    fn from(e: flash_map_cpu::CpuError) -> Self {
        use flash_map_cpu::CpuError as C;
        match e {
            C::Layout(l) => layout_error(l, 0, 0.5),
            C::Alloc { bytes } => FlashMapError::AllocationFailed { bytes },
            C::Refused(r) => r.into(),
        }
    }
}

pub(crate) fn layout_error(e: flash_map_core::LayoutError, requested: usize, lf: f64) -> FlashMapError {
    use flash_map_core::LayoutError as L;
    match e {
        L::ZeroCapacity => FlashMapError::ZeroCapacity,
        L::ZeroSizedKey => FlashMapError::ZeroSizedKey,
        L::InvalidLoadFactor => FlashMapError::InvalidLoadFactor(lf),
        L::CapacityOverflow => FlashMapError::CapacityOverflow { requested },
    }
}
