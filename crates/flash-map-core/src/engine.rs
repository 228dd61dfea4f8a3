//! The engine contract: what every backend's table does, so that the umbrella crate drives
//! any of them the same way.
//!
//! An engine owns one table in its memory (host or device), counts its entries with a
//! [`Ledger`] and runs the bulk operations as passes over a [`Batch`]. The rules are the
//! same on every engine, and the ledger states them once:
//!
//! - a mutating call either succeeds or fails with the table exactly as it was
//!   ([`Refusal`](crate::Refusal) of the claims, allocation failures before anything
//!   changes);
//! - duplicates resolve by batch position: the last copy's value for an upsert, the first
//!   copy for [`insert_new`](InsertNew::insert_new), every copy adds for
//!   [`add`](AddCounters::add);
//! - after every call the ledger's headroom rule holds
//!   ([`Ledger::headroom_holds`]): the engine compacts when [`Ledger::needs_compaction`].
//!
//! A batch's keys (and values) must have the table's sizes; an engine panics otherwise
//! (its callers build batches from the map's own types).

use crate::{Batch, KeyHasher, Ledger, TableLayout};

/// Receives the results of a lookup, one call per batch position.
pub trait GetSink: Sync {
    /// Stores the result for position `i`: the value's bytes if the key is present.
    ///
    /// # Safety
    /// Called exactly once per `i < batch.len()`, possibly from several threads for
    /// distinct `i`; a `Some` pointer is valid for `value_size` bytes during the call.
    unsafe fn put(&self, i: usize, value: Option<*const u8>);
}

/// The width of a counter value for [`AddCounters::add`] (signed types add the same bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CounterKind {
    /// 4-byte wrapping add.
    U32 = 4,
    /// 8-byte wrapping add.
    U64 = 8,
}

impl CounterKind {
    /// Bytes per counter.
    pub const fn width(self) -> usize {
        self as usize
    }
}

/// A table of one backend: what every engine has besides its bulk operations. Implemented
/// by the CPU engines (`flash_map_cpu::CpuTable`, serial or rayon) and the GPU engine
/// (`flash_map_cuda::CudaTable`), together with one trait per bulk operation ([`Insert`],
/// [`InsertNew`], [`AddCounters`], [`Get`], [`Contains`], [`Remove`]), each implemented next
/// to that operation's passes. A new operation is a new trait here and one `impl` per
/// engine.
pub trait BulkEngine {
    /// The engine's error.
    type Error;

    /// The table's layout.
    fn layout(&self) -> &TableLayout;
    /// Live entries and tombstones.
    fn ledger(&self) -> Ledger;
    /// The hash strategy with its key.
    fn hasher(&self) -> KeyHasher;

    /// Calls `f(key, value)` for every live entry.
    fn for_each_entry(&self, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), Self::Error>;
    /// Removes every entry; keeps the capacity.
    fn clear(&mut self) -> Result<(), Self::Error>;
    /// Moves every entry into a table of `layout` (same or larger) hashed with `hash`. On
    /// failure the table is unchanged.
    fn rebuild_with(&mut self, layout: TableLayout, hash: KeyHasher) -> Result<(), Self::Error>;
    /// The sum and the maximum of the slots that lookups of `keys` (packed, `key_size`
    /// bytes each) visit ([`crate::probe::probe_length`]).
    fn probe_lengths(&self, keys: &[u8]) -> Result<(u64, usize), Self::Error>;

    /// Host bytes of working memory kept between calls.
    fn buffer_bytes(&self) -> usize {
        0
    }
    /// Frees the working memory that [`buffer_bytes`](Self::buffer_bytes) counts.
    fn release_buffers(&mut self) {}
}

/// `bulk_insert`.
pub trait Insert: BulkEngine {
    /// Upserts every pair; returns how many keys were new. The last copy of a key wins.
    fn insert(&mut self, b: &Batch<'_>) -> Result<usize, Self::Error>;
}

/// `bulk_insert_new`.
pub trait InsertNew: BulkEngine {
    /// Inserts the pairs whose keys are absent (the first copy of a new key);
    /// `out[i]` tells whether pair `i` was inserted. Returns how many were.
    fn insert_new(&mut self, b: &Batch<'_>, out: &mut [bool]) -> Result<usize, Self::Error>;
}

/// `bulk_add`.
pub trait AddCounters: BulkEngine {
    /// Adds each pair's value to its key's counter of `kind` (absent keys start at zero);
    /// returns how many keys were new.
    fn add(&mut self, b: &Batch<'_>, kind: CounterKind) -> Result<usize, Self::Error>;
}

/// `bulk_get`.
pub trait Get: BulkEngine {
    /// Looks up every key, handing each result to `sink`.
    fn get<S: GetSink>(&self, b: &Batch<'_>, sink: &S) -> Result<(), Self::Error>;
}

/// `bulk_contains`.
pub trait Contains: BulkEngine {
    /// Whether each key is present (`out[i]` for key `i`).
    fn contains(&self, b: &Batch<'_>, out: &mut [bool]) -> Result<(), Self::Error>;
}

/// `bulk_remove`.
pub trait Remove: BulkEngine {
    /// Removes every key; returns how many distinct keys were present.
    fn remove(&mut self, b: &Batch<'_>) -> Result<usize, Self::Error>;
}
