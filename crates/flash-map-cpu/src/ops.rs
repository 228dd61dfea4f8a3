//! How the bulk operations of [`CpuTable`] run, and the map of their modules.
//!
//! Every mutating operation runs in passes so that it is atomic and deterministic:
//!
//! 1. **claim** ([`crate::claim`]): each key finds its slot or claims a free one, writing
//!    the key (and, for an upsert, the claimer's value; in a table of dense values, giving
//!    the slot its value index first); `pos[i]` records the slot,
//!    `kind[i]` what the claim did. A batch that might not fit stops once it has certainly
//!    failed.
//! 2. **settle** ([`crate::claim`]): the ledger accepts the claims, or they are rolled back
//!    (their slots get their former state) and the call fails with nothing changed.
//! 3. **values** ([`crate::write`]): needed only when a key met an existing slot (a
//!    duplicate or an update). Serially, values are written in batch order, so the last
//!    duplicate wins (first for `insert_new`). In parallel, each slot's winner is chosen by
//!    an atomic max (min) over batch positions in a per-slot scratch word, then only winners
//!    write. Counters are added with atomic adds, which commute.
//! 4. **compact**: when the ledger asks for it, the table is rehashed in place.
//!
//! Lookups ([`crate::lookup`]) and removals ([`crate::remove`]) are one pass each. The
//! loops run through the prefetch pipeline of [`crate::pipeline`], or, for a large serial
//! batch, in partition order ([`crate::partition`], driven from here by
//! [`CpuTable::partitioned`]); [`crate::mem`] has the copies and the disjoint-write
//! pointer they share.

use std::sync::atomic::Ordering;

use flash_map_core::Batch;

use crate::partition::{self, Order};
use crate::{CpuError, CpuTable, Exec};

/// Whether rayon tables made from now on may run a mutation, or a small lookup, serially
/// ([`CpuTable::mutates_serially`], `CpuTable::looks_up_serially`).
static SERIAL_PASSES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Lets rayon tables made from now on run their mutations, and their small lookups, serially
/// where that is faster (`true`, the default), or makes them run them in parallel always
/// (`false`): for tests of the parallel passes on machines whose pool is small enough to run
/// them serially, and with batches small enough to run on the calling thread. Results are
/// the same either way. Process-wide.
#[doc(hidden)]
pub fn set_rayon_serial_mutations(on: bool) {
    SERIAL_PASSES.store(on, Ordering::Relaxed);
}

/// What a mutation does, for the rayon engine's choice of running it serially
/// ([`CpuTable::mutates_serially`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mutation {
    /// Claims: insert, insert_new, add.
    Claims,
    /// Removals.
    Remove,
}

/// Whether a rayon mutation `m` of `n` keys, in a pool of `threads` threads, on a table of
/// `table_bytes`, runs serially: one rayon task's worth of keys; or a small pool
/// ([`TUNING`](flash_map_core::tuning::TUNING)`.rayon_serial_max_threads`) on a table that
/// stays in cache (`.rayon_serial_table_bytes`), or, for [`Mutation::Claims`], on a table
/// of any size unless `partitioned_fill` (the table is empty and the serial engine would
/// fill it in partition order).
///
/// In a small pool the parallel claims lose at every size: for keys already present, an
/// insert elects per slot the copy that writes its value (two more passes over the table)
/// and an add adds in a pass of its own, where the serial engine writes or adds at once;
/// and an empty table that the serial engine fills in batch order fills faster serially
/// too. Only a partitioned fill of an empty table is left to the threads, whose claims need
/// no partition's scratch: in fresh memory that scratch cost the serial fill more than the
/// threads did. Removals gain from the threads beyond the cache (BENCHMARKS.md, issue 13,
/// "a small pool's claims on one thread").
#[cfg(feature = "rayon")]
pub(crate) fn serial_rule(n: usize, threads: usize, table_bytes: usize, m: Mutation, partitioned_fill: bool) -> bool {
    let t = &flash_map_core::tuning::TUNING;
    n <= t.rayon_min_len
        || threads <= t.rayon_serial_max_threads
            && (table_bytes <= t.rayon_serial_table_bytes || m == Mutation::Claims && !partitioned_fill)
}

/// Whether a table made now may run its rayon mutations, and its small lookups, serially.
pub(crate) fn serial_passes() -> bool {
    SERIAL_PASSES.load(Ordering::Relaxed)
}

/// A batch running in partition order: the regions' size and the order to merge per-position
/// results back with.
pub(crate) struct Reordered<'s> {
    /// Regions of `1 << shift` slots.
    pub(crate) shift: u32,
    /// The partition order (and one flag byte per record, when asked for).
    pub(crate) order: &'s mut Order,
}

impl CpuTable {
    /// Checks that `b`'s keys (and, for `values`, its values) have the table's sizes: the
    /// passes read exactly that many bytes per record.
    ///
    /// # Panics
    /// If they do not.
    pub(crate) fn check_shape(&self, b: &Batch<'_>, values: bool) {
        let l = &self.layout;
        assert!(
            b.key_size() == l.key_size && (!values || b.value_size() == l.value_size),
            "a batch of {}-byte keys and {}-byte values for a table of {} and {}",
            b.key_size(),
            b.value_size(),
            l.key_size,
            l.value_size
        );
    }

    /// Whether a serial pass over `n` keys runs partitioned: `Some(shift)` of its regions.
    /// Never for a table that the last-level cache holds (`partition_min_bytes`): there the
    /// per-key prefetch of a pass in batch order finds its lines in that cache, and a
    /// partition only adds its copy of the batch (BENCHMARKS.md, issue 13); nor, for an empty
    /// table, one up to [`TUNING`](flash_map_core::tuning::TUNING)`.fill_batch_order_factor`
    /// times that size, whose fill reads no keys back. Nor for a table of dense values
    /// ([`crate::table::dense`]), whose values lie in no region's order, nor for a table of
    /// records ([`crate::table::records`] says up to what size), whose region sweeps would
    /// read keys from twice the memory, unless a test asked for partitions
    /// ([`set_region_bytes`](Self::set_region_bytes)).
    pub(crate) fn partition_shift(&self, n: usize) -> Option<u32> {
        if self.exec.is_parallel() {
            return None;
        }
        self.serial_partition_shift(n)
    }

    /// [`partition_shift`](Self::partition_shift) as the serial engine's passes would have
    /// it, whichever engine runs the table.
    fn serial_partition_shift(&self, n: usize) -> Option<u32> {
        let batch_order_bytes = if self.is_empty() {
            self.partition_min_bytes.saturating_mul(flash_map_core::tuning::TUNING.fill_batch_order_factor)
        } else {
            self.partition_min_bytes
        };
        let records = self.record != 0 && !self.records_partition;
        if self.is_dense() || records || self.table_bytes() <= batch_order_bytes {
            return None;
        }
        let l = &self.layout;
        partition::plan(l.slots, 1 + l.key_size + l.value_size, n, self.region_bytes)
    }

    /// Whether mutation `m` of `n` keys runs on the calling thread with the serial engine's
    /// passes although the table is run by rayon: a batch of one rayon task (which would run
    /// on one thread anyway, with atomic claims), or in a pool of at most
    /// [`TUNING`](flash_map_core::tuning::TUNING)`.rayon_serial_max_threads` threads where the
    /// parallel passes gain nothing ([`serial_rule`] says where). Both engines give the same
    /// results for the same calls, so only the speed changes.
    pub(crate) fn mutates_serially(&self, n: usize, m: Mutation) -> bool {
        #[cfg(feature = "rayon")]
        if self.exec == Exec::Rayon && self.serial_passes {
            let partitioned_fill = self.is_empty() && self.serial_partition_shift(n).is_some();
            return serial_rule(n, rayon::current_num_threads(), self.table_bytes(), m, partitioned_fill);
        }
        let _ = (n, m);
        false
    }

    /// Runs `op` on `b`, or, when worth it, on `b` in partition order (see
    /// [`crate::partition`]): then `op` gets a [`Reordered`] telling the regions' size and
    /// holding the order, to bring per-position results back with [`Order::merge`].
    /// `m` says what `op` does (claims read the batch's values), `flags` whether it needs one
    /// flag byte per record in the order's `found`. The partition keeps the order of copies
    /// of one key, so batch-order rules hold on either path. Every mutation runs through
    /// here, on one thread where [`mutates_serially`](Self::mutates_serially) says so.
    pub(crate) fn partitioned<R>(
        &mut self,
        b: &Batch<'_>,
        m: Mutation,
        flags: bool,
        op: impl FnOnce(&mut Self, &Batch<'_>, Option<Reordered<'_>>) -> Result<R, CpuError>,
    ) -> Result<R, CpuError> {
        if self.mutates_serially(b.len(), m) {
            let exec = std::mem::replace(&mut self.exec, Exec::Serial);
            // The table's own exec comes back when the call returns (after a panic it would
            // stay serial: slower, as correct).
            let r = self.partitioned(b, m, flags, op);
            self.exec = exec;
            return r;
        }
        let Some(shift) = self.partition_shift(b.len()) else { return op(self, b, None) };
        let mut scratch = std::mem::take(self.scratch.get_mut().unwrap_or_else(|e| e.into_inner()));
        let p = scratch.partition(b, self.hash, &self.layout, shift, m == Mutation::Claims, 0).and_then(|p| {
            if flags {
                p.order.flags(b.len())?;
            }
            Ok(p)
        });
        let r = match p {
            Ok(p) => {
                self.partitioned_passes.fetch_add(1, Ordering::Relaxed);
                op(self, &p.batch, Some(Reordered { shift, order: p.order }))
            }
            // No memory for the scratch: the batch runs in its own order (nothing has
            // changed yet).
            Err(_) => op(self, b, None),
        };
        *self.scratch.get_mut().unwrap_or_else(|e| e.into_inner()) = scratch;
        r
    }
}
