//! [`CpuTable`]: the SoA arrays of one table and their bookkeeping.

use flash_map_core::probe::{claim_bounded, Claim};
use flash_map_core::slot::{is_full, word_of_byte, EMPTY};
use flash_map_core::tuning::TUNING;
use flash_map_core::{HashStrategy, KeyHasher, Ledger, TableLayout};

use crate::buf::AlignedBuf;
use crate::claim::{ValueCursor, VALUE_BLOCK};
use crate::slots::RawTable;
use crate::{CpuError, Exec};

/// A hash table in host memory: an array of state bytes, and either a key array and a value
/// array, or, for small records, one array of records that each hold a slot's key and then
/// its value ([`records`]), or, for values of a cache line or more, a key array, a value
/// index per slot and a dense array of the capacity's values ([`dense_values`]).
pub struct CpuTable {
    pub(crate) layout: TableLayout,
    pub(crate) hash: KeyHasher,
    pub(crate) exec: Exec,
    pub(crate) states: AlignedBuf,
    /// The keys, or the records (key, then value) when `record != 0`.
    pub(crate) keys: AlignedBuf,
    /// The values; empty when `record != 0`. In a dense table ([`dense`]), the table's
    /// capacity of values, each at the index that `index` gives its slot.
    pub(crate) values: AlignedBuf,
    /// In a dense table, a `u32` per slot: where in `values` its entry's value lies; else
    /// empty.
    pub(crate) index: AlignedBuf,
    /// In a dense table, the value indices given so far: the live entries, and the holes
    /// that removals left (`vused - len`), which [`make_value_room`](Self::make_value_room)
    /// closes when a batch might need them. 0 otherwise.
    pub(crate) vused: usize,
    /// `vused` before the running mutation's claims, which undoing them restores.
    pub(crate) vsaved: usize,
    /// Bytes per record ([`records`]), or 0: separate key and value arrays.
    pub(crate) record: usize,
    /// Live entries and tombstones, and the rules about them (shared with the CUDA engine).
    pub(crate) ledger: Ledger,
    /// Per batch position: the slot the key landed in.
    pub(crate) pos: Vec<u32>,
    /// Per batch position: what the claim did ([`crate::ops`] `KIND_*`).
    pub(crate) kind: Vec<u8>,
    /// Per key of a direct insert ([`crate::direct`]) that met an existing slot: its batch
    /// position and the slot.
    pub(crate) later: Vec<(u32, u32)>,
    /// The values that a direct insert overwrote at once, in the order of `later`, so that
    /// a failed batch can put them back; at most `TUNING.update_log_bytes`.
    pub(crate) overwritten: Vec<u8>,
    /// The most bytes `overwritten` may hold: `TUNING.update_log_bytes`, less in tests.
    pub(crate) update_log_bytes: usize,
    /// Per slot, for parallel passes: duplicate resolution by batch position. All zero
    /// between operations. Allocated on first use.
    pub(crate) aux: AlignedBuf,
    /// Buffers of partitioned passes ([`crate::partition`]); a lookup that finds them in use
    /// by another thread runs unpartitioned.
    pub(crate) scratch: std::sync::Mutex<crate::partition::Scratch>,
    /// Table bytes per region of a partitioned pass.
    pub(crate) region_bytes: usize,
    /// Serial passes that read at most this many bytes of table run in batch order
    /// ([`CpuTable::partition_shift`]): half the last-level cache's size as Linux reports
    /// it (`crate::pipeline::last_level_cache_bytes`), 0 where it does not say.
    pub(crate) partition_min_bytes: usize,
    /// Whether serial passes over a table of records may run partitioned (only where a test
    /// asked for partitions: [`CpuTable::set_region_bytes`]).
    pub(crate) records_partition: bool,
    /// How many passes ran partitioned (for tests).
    pub(crate) partitioned_passes: std::sync::atomic::AtomicUsize,
    /// Whether a rayon table may run a mutation, or a small lookup, serially
    /// ([`CpuTable::mutates_serially`], `CpuTable::looks_up_serially`).
    pub(crate) serial_passes: bool,
}

impl std::fmt::Debug for CpuTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuTable")
            .field("exec", &self.exec)
            .field("len", &self.ledger.len())
            .field("slots", &self.layout.slots)
            .field("capacity", &self.layout.capacity)
            .field("tombstones", &self.ledger.tombstones())
            .finish()
    }
}

/// An array of `bytes` for a table run by `exec` (the rayon engine commits a large one on
/// all of its threads where its pool is not small, `TUNING.parallel_commit_min_bytes` and
/// `parallel_commit_min_threads`): zeroed for the state words,
/// which say which slots are full; for `slots`, a key or value array, whose bytes count
/// only in full slots, perhaps the bytes that a dropped table left in the memory it takes
/// ([`AlignedBuf::for_slots`]).
fn alloc(bytes: Option<usize>, exec: Exec, slots: bool) -> Result<AlignedBuf, CpuError> {
    let bytes = bytes.ok_or(CpuError::Alloc { bytes: usize::MAX })?;
    if slots {
        AlignedBuf::for_slots_by(bytes, exec.is_parallel())
    } else {
        AlignedBuf::zeroed_by(bytes, exec.is_parallel())
    }
}

/// Bytes per record when a serial table of `layout` keeps each slot's key and value side by
/// side in one record, or 0 when it keeps a key array and a value array. (A rayon table
/// keeps records at every size, [`CpuTable::new`].)
///
/// Records ([`TableLayout::record_bytes`]), when key and value together are a power of two
/// of at most 64 bytes (a `u64` pair is 16) and the table is at most `record_max_bytes()` (the
/// larger of [`TUNING`]`.record_max_table_bytes` and the size from which serial passes
/// would partition): a lookup that finds its key then has its value in the same line, one
/// line fewer than with two arrays, and a claim writes one line instead of two; a removal,
/// which reads only keys, reads them from twice the memory. So would the region sweeps of
/// partitioned passes, and serial passes over records never partition
/// (`CpuTable::partition_shift`; BENCHMARKS.md, issue 13). Larger records would cross
/// lines where two arrays do not. The value must also lie aligned to its own size (up to 8
/// bytes) inside the record, as the rayon engine adds counters atomically. A table that
/// grows past the limit gets two arrays when it moves.
///
/// Public, hidden, only so that the benches' floor lays its arrays out as the engine does.
pub fn records(layout: &TableLayout) -> usize {
    let small = layout.total_bytes().is_some_and(|b| b <= record_max_bytes());
    if small {
        layout.record_bytes(64)
    } else {
        0
    }
}

/// Bytes per value from which a table keeps its values densely ([`dense`]).
pub(crate) const DENSE_VALUE_MIN_BYTES: usize = 64;

/// Whether a table of `layout` keeps its values in a dense array of its capacity, reached
/// through a `u32` index per slot, rather than one value per slot: for values of at least
/// [`DENSE_VALUE_MIN_BYTES`] (a cache line; such a slot is never a small record), on both
/// engines and at every size.
///
/// At the API's load factor of a half a table has twice as many slots as entries, so
/// per-slot values commit twice the value memory the entries need, and a build commits it
/// all. A dense array commits the capacity's values; a claim writes them in the order the
/// keys come, and a hit reads one more line, the slot's index (fetched ahead with its key,
/// and the value a few keys later). Such a table never runs partitioned
/// ([`CpuTable::partition_shift`]): the region sweeps fetch each region's value lines in
/// slot order, which a dense array does not have, and the per-key prefetch in batch order
/// beat them (BENCHMARKS.md, issue 13, "dense values").
pub(crate) fn dense(layout: &TableLayout) -> bool {
    layout.value_size >= DENSE_VALUE_MIN_BYTES
}

/// How many values a table of `layout` keeps in a dense array (`dense`, `value_capacity`),
/// or `None` where it keeps a value per slot. Public, hidden, only so that the benches'
/// floor lays out its arrays as the engine does.
pub fn dense_values(layout: &TableLayout) -> Option<usize> {
    dense(layout).then(|| value_capacity(layout))
}

/// The bytes of a table of `layout`'s arrays (saturating): a state byte, a key and a value
/// per slot, or, with dense values, a state byte, a key and a `u32` index per slot and the
/// value array (`value_capacity`). Public, hidden, only so that the benches report a
/// table's size as the engine lays it out.
pub fn table_bytes(layout: &TableLayout) -> usize {
    let l = layout;
    if dense(l) {
        l.slots.saturating_mul(1 + l.key_size + 4).saturating_add(value_capacity(l).saturating_mul(l.value_size))
    } else {
        l.slots.saturating_mul(1 + l.key_size + l.value_size)
    }
}

/// Values a dense table of `layout` holds: its capacity, and a sixty-fourth more (at least
/// a block, `VALUE_BLOCK`) for the holes that rayon's claims leave. Each thread of a
/// parallel pass takes value indices in blocks (`claim::ValueCursor`) and leaves its last
/// block's unused end: at most one block less one per rayon task of
/// `TUNING.rayon_min_len` keys or slots, for a batch (or a table's slots) of at most twice
/// the capacity less than the slack (larger ones take their indices one at a time,
/// [`CpuTable::make_value_room`]). Below `MAX_SLOTS`, so every index fits a `u32`.
pub(crate) fn value_capacity(layout: &TableLayout) -> usize {
    layout.capacity + (layout.capacity / 64).max(VALUE_BLOCK)
}

/// The largest table (all arrays together) that [`records`] lays out in records:
/// [`TUNING`]`.record_max_table_bytes`, or the size up to which serial passes run in batch
/// order because the last-level cache holds the table, where that is larger
/// ([`CpuTable::partition_shift`]).
pub(crate) fn record_max_bytes() -> usize {
    TUNING.record_max_table_bytes.max(crate::pipeline::last_level_cache_bytes())
}

impl CpuTable {
    /// An empty table with `layout`, hashing with `hash`, run by `exec`.
    pub fn new(layout: TableLayout, hash: KeyHasher, exec: Exec) -> Result<Self, CpuError> {
        // The rayon engine never partitions a pass, so its tables keep records at every
        // size: hits and claims then touch one line fewer (BENCHMARKS.md, issue 13).
        let record = if exec.is_parallel() { layout.record_bytes(64) } else { records(&layout) };
        let dense = dense_values(&layout);
        let states = alloc(Some(layout.slots), exec, false)?;
        let (keys, values, index) = if record != 0 {
            (alloc(layout.slots.checked_mul(record), exec, true)?, AlignedBuf::zeroed(0)?, AlignedBuf::zeroed(0)?)
        } else if let Some(values) = dense {
            // The value array first, as a rule the largest: an array commits its last,
            // partial 2 MiB block as a huge page only right after a fast one (`crate::buf`).
            let values = alloc(values.checked_mul(layout.value_size), exec, true)?;
            (alloc(layout.key_bytes(), exec, true)?, values, alloc(layout.slots.checked_mul(4), exec, true)?)
        } else {
            (alloc(layout.key_bytes(), exec, true)?, alloc(layout.value_bytes(), exec, true)?, AlignedBuf::zeroed(0)?)
        };
        log::debug!(
            "cpu table: {} slots, {} + {} + {} + {} bytes{}, {:?}",
            layout.slots,
            states.len(),
            keys.len(),
            index.len(),
            values.len(),
            if record != 0 {
                " (records)"
            } else if dense.is_some() {
                " (dense values)"
            } else {
                ""
            },
            exec
        );
        Ok(CpuTable {
            layout,
            hash,
            exec,
            states,
            keys,
            values,
            index,
            vused: 0,
            vsaved: 0,
            record,
            ledger: Ledger::new(),
            pos: Vec::new(),
            kind: Vec::new(),
            later: Vec::new(),
            overwritten: Vec::new(),
            update_log_bytes: flash_map_core::tuning::TUNING.update_log_bytes,
            aux: AlignedBuf::zeroed(0)?,
            scratch: Default::default(),
            region_bytes: crate::partition::REGION_BYTES,
            partition_min_bytes: crate::pipeline::last_level_cache_bytes(),
            records_partition: false,
            partitioned_passes: Default::default(),
            serial_passes: crate::ops::serial_passes(),
        })
    }

    /// Sets the most bytes of overwritten values that a serial insert keeps to write present
    /// keys' values at once (see [`crate::direct`]; default `TUNING.update_log_bytes`).
    /// Tests shrink it so that small batches write some of them after the batch.
    #[doc(hidden)]
    pub fn set_update_log_bytes(&mut self, bytes: usize) {
        self.update_log_bytes = bytes;
    }

    /// Sets how many bytes of table one region of a partitioned serial pass spans (see
    /// [`crate::partition`]; default [`crate::partition::REGION_BYTES`]), and lets tables
    /// that the last-level cache holds, and tables of records, run partitioned too. Tests
    /// shrink it so that small tables run the partitioned passes.
    #[doc(hidden)]
    pub fn set_region_bytes(&mut self, bytes: usize) {
        self.region_bytes = bytes.max(1);
        self.partition_min_bytes = 0;
        self.records_partition = true;
    }

    /// Bytes of working memory kept from earlier batches for the next one: per batch
    /// position, the claimed slot and what the claim did; the slots a direct insert
    /// updated and the values it overwrote ([`crate::direct`]); the partitioned copy of a batch
    /// and its lookup results ([`crate::partition`]); and, once a parallel pass needed it,
    /// one word per slot. Not counted: the table's own arrays.
    pub(crate) fn buffer_bytes(&self) -> usize {
        let scratch = self.scratch.lock().map_or_else(|e| e.into_inner().bytes(), |s| s.bytes());
        self.pos.capacity() * 4
            + self.kind.capacity()
            + self.later.capacity() * 8
            + self.overwritten.capacity()
            + self.aux.len()
            + scratch
    }

    /// Frees the working memory that [`buffer_bytes`](Self::buffer_bytes) counts; the next
    /// batch allocates what it needs again.
    pub(crate) fn release_buffers(&mut self) {
        self.pos = Vec::new();
        self.kind = Vec::new();
        self.later = Vec::new();
        self.overwritten = Vec::new();
        // A zero-length buffer allocates nothing, so this cannot fail; if it did, the old
        // buffer (all zero between operations) stays.
        if let Ok(empty) = AlignedBuf::zeroed(0) {
            self.aux = empty;
        }
        self.scratch.get_mut().unwrap_or_else(|e| e.into_inner()).release();
    }

    /// How many operations on this table ran partitioned so far.
    #[doc(hidden)]
    pub fn partitioned_passes(&self) -> usize {
        self.partitioned_passes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The table's layout.
    pub fn layout(&self) -> &TableLayout {
        &self.layout
    }

    /// The hash strategy.
    pub fn hash_strategy(&self) -> HashStrategy {
        self.hash.strategy
    }

    /// The hash strategy with its key.
    pub fn hasher(&self) -> KeyHasher {
        self.hash
    }

    /// How passes run.
    pub fn exec(&self) -> Exec {
        self.exec
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.ledger.len()
    }

    /// Whether no entry is live.
    pub fn is_empty(&self) -> bool {
        self.ledger.is_empty()
    }

    /// Tombstones currently in the table.
    pub fn tombstones(&self) -> usize {
        self.ledger.tombstones()
    }

    /// Bytes of the state, key and value arrays (and of the value index): [`table_bytes`].
    pub(crate) fn table_bytes(&self) -> usize {
        table_bytes(&self.layout)
    }

    /// Whether the values lie in a dense array behind a per-slot index ([`dense`]).
    pub(crate) fn is_dense(&self) -> bool {
        !self.index.is_empty()
    }

    pub(crate) fn raw(&self) -> RawTable {
        let keys = self.keys.as_ptr() as *mut u8;
        RawTable {
            states: self.states.as_ptr() as *mut u8,
            keys,
            // A record's value follows its key (inside the record array, `wrapping_add` as
            // it is never dereferenced past it).
            values: if self.record != 0 {
                keys.wrapping_add(self.layout.key_size)
            } else {
                self.values.as_ptr() as *mut u8
            },
            index: if self.is_dense() { self.index.as_ptr() as *mut u32 } else { std::ptr::null_mut() },
            vcap: if self.is_dense() { value_capacity(&self.layout) } else { 0 },
            mask: self.layout.mask(),
            key_size: self.layout.key_size,
            value_size: self.layout.value_size,
            record: self.record,
            key_stride: if self.record != 0 { self.record } else { self.layout.key_size },
            value_stride: if self.record != 0 { self.record } else { self.layout.value_size },
            hasher: self.hash,
        }
    }

    /// Removes every entry; keeps the arrays.
    pub(crate) fn clear(&mut self) {
        self.states.fill_zero();
        self.ledger = Ledger::cleared();
        (self.vused, self.vsaved) = (0, 0);
    }

    /// Calls `f(key, value)` for every live entry, in slot order.
    pub(crate) fn for_each_entry(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        if self.is_dense() {
            let raw = self.raw();
            let (ks, vs) = (raw.key_size, raw.value_size);
            for (slot, &b) in self.state_bytes().iter().enumerate() {
                if is_full(word_of_byte(b)) {
                    // SAFETY: a full slot's key is initialised, and its value index was given
                    // when it was claimed (below `vcap`); `&self`: nobody writes meanwhile.
                    let (k, v) = unsafe {
                        (
                            std::slice::from_raw_parts(raw.key_ptr(slot), ks),
                            std::slice::from_raw_parts(raw.value_ptr(slot), vs),
                        )
                    };
                    f(k, v);
                }
            }
            return;
        }
        let (states, raw) = (self.state_bytes().iter().map(|&b| word_of_byte(b)), self.raw());
        // A record's value follows its key in the same array.
        let values =
            if self.record != 0 { &self.keys.as_slice()[self.layout.key_size..] } else { self.values.as_slice() };
        let keys = (self.keys.as_slice(), raw.key_stride);
        self.layout.for_each_entry_strided(states, keys, (values, raw.value_stride), f);
    }

    fn state_bytes(&self) -> &[u8] {
        self.states.as_slice()
    }

    /// Moves every entry into arrays of `layout` (same or larger): drops tombstones, and
    /// grows the table when `layout` is larger. On allocation failure nothing changes; a
    /// rebuild to the same layout never fails (see [`rebuild_with`](Self::rebuild_with)).
    pub fn rebuild(&mut self, layout: TableLayout) -> Result<(), CpuError> {
        self.rebuild_with(layout, self.hash)
    }

    /// [`rebuild`](Self::rebuild), hashing with `hash` from now on (after
    /// a refusal for collisions, say). A larger layout needs fresh arrays: on allocation
    /// failure nothing changes. The same layout is rehashed where it lies
    /// ([`flash_map_core::probe::rehash_in_place`]), needing no memory, so it cannot fail;
    /// the rayon engine first tries fresh arrays, to move the entries on every core.
    pub fn rebuild_with(&mut self, layout: TableLayout, hash: KeyHasher) -> Result<(), CpuError> {
        debug_assert!(layout.capacity >= self.ledger.len());
        if layout == self.layout {
            self.rebuild_same(hash);
            return Ok(());
        }
        self.rebuild_fresh(layout, hash)
    }

    /// [`rebuild_with`](Self::rebuild_with) to the table's own layout, which cannot fail:
    /// an empty table is just emptied; otherwise the entries are rehashed in place, unless
    /// the rayon engine gets fresh arrays to move them on every core.
    fn rebuild_same(&mut self, hash: KeyHasher) {
        if self.ledger.is_empty() {
            // Nothing to move: emptying the state array is the whole rebuild.
            self.clear();
        } else if !self.exec.is_parallel() || self.rebuild_fresh(self.layout, hash).is_err() {
            self.rehash_in_place(hash);
        }
        self.hash = hash;
    }

    /// Rehashes the table where it lies with `hash`: no allocation, one thread.
    fn rehash_in_place(&mut self, hash: KeyHasher) {
        let raw = self.raw();
        // A dense table's values stay where they are: each slot's index moves with it.
        let (values, value_size, value_stride) =
            if raw.is_dense() { (raw.index as *mut u8, 4, 4) } else { (raw.values, raw.value_size, raw.value_stride) };
        // SAFETY: `&mut self`: no other thread uses the table; the values (or a dense
        // table's indices) lie a stride apart, `value_size` bytes each, apart from the keys
        // (in a record, after its key).
        unsafe {
            flash_map_core::probe::rehash_in_place_strided(&raw.plain(), values, value_size, value_stride, &hash)
        };
        log::debug!("rehashed {} slots in place, {} tombstones dropped", self.layout.slots, self.ledger.tombstones());
        self.ledger = self.ledger.compacted();
    }

    /// Moves every entry into fresh arrays of `layout` with `hash`; on allocation failure
    /// nothing changes.
    fn rebuild_fresh(&mut self, layout: TableLayout, hash: KeyHasher) -> Result<(), CpuError> {
        let mut next = CpuTable::new(layout, hash, self.exec)?;
        let (src, dst) = (self.raw(), next.raw());
        let (hs, ks, vs) = (hash, layout.key_size, layout.value_size);
        // A dense table's value indices, given in the order the entries move.
        let given = std::sync::atomic::AtomicUsize::new(0);
        let move_one = |slot: usize, s: &(dyn Fn(u64, *const u8) -> Claim + Sync), values: &mut ValueCursor<'_>| {
            // SAFETY: `slot` < old slots; a full slot's key and value are initialised; the
            // new table has room for every entry (capacity >= len), so each claim is new and
            // in range, and its value slot is written by this thread alone. A dense table's
            // indices stay below its value capacity: the entries and the blocks' unused ends
            // fit it (`block`, below); the assert keeps an error in that sum from writing
            // past the array (the old table is untouched until the rebuild ends).
            unsafe {
                if is_full(word_of_byte(*src.states.add(slot))) {
                    let k = src.key_ptr(slot);
                    if let Claim::New { slot: to, .. } = s(hs.hash(k, ks), k) {
                        if dst.is_dense() {
                            assert!(dst.assign_value(to, values.take()), "a rebuilt table holds every value");
                        }
                        std::ptr::copy_nonoverlapping(src.value_ptr(slot), dst.value_ptr(to), vs);
                    }
                }
            }
        };
        match self.exec {
            Exec::Serial => {
                let s = dst.plain();
                // SAFETY: key pointers come from the old table's arrays. No collision limit:
                // every entry must move, however many share its hash.
                let c = |h, k| unsafe { claim_bounded(&s, h, k, u32::MAX) };
                let mut values = ValueCursor::serial(&given);
                (0..self.layout.slots).for_each(|slot| move_one(slot, &c, &mut values));
                values.finish();
            }
            #[cfg(feature = "rayon")]
            Exec::Rayon => {
                let s = crate::slots::AtomicSlots(dst);
                // SAFETY: as above; claims are atomic.
                let c = |h, k| unsafe { claim_bounded(&s, h, k, u32::MAX) };
                // The threads take the indices in blocks, as in the claims; one at a time
                // where the unused ends of the blocks could exhaust the array (tables of
                // many slots per entry).
                let tasks = self.layout.slots.div_ceil(flash_map_core::tuning::TUNING.rayon_min_len);
                let fits = self.ledger.len() + tasks * (VALUE_BLOCK - 1) <= value_capacity(&layout);
                let block = if fits { VALUE_BLOCK } else { 1 };
                self.exec.for_chunks(self.layout.slots, |range| {
                    let mut values = ValueCursor::shared(&given, block);
                    range.for_each(|slot| move_one(slot, &c, &mut values));
                });
            }
        }
        next.ledger = self.ledger.compacted();
        if next.is_dense() {
            // The entries' indices, and the unused ends of the threads' blocks.
            next.vused = given.into_inner();
            next.vsaved = next.vused;
        }
        log::debug!(
            "rebuilt table: {} -> {} slots, {} entries, {} tombstones dropped",
            self.layout.slots,
            layout.slots,
            self.ledger.len(),
            self.ledger.tombstones()
        );
        next.pos = std::mem::take(&mut self.pos);
        next.kind = std::mem::take(&mut self.kind);
        next.scratch = std::mem::take(&mut self.scratch);
        next.region_bytes = self.region_bytes;
        next.records_partition = self.records_partition;
        next.serial_passes = self.serial_passes;
        next.partitioned_passes = std::mem::take(&mut self.partitioned_passes);
        *self = next;
        Ok(())
    }

    /// Before a mutation of `n` keys on a dense table ([`dense`]): makes sure the batch
    /// cannot run out of value indices unless it adds more entries than the table may hold
    /// (its claims are then refused anyway, [`RawTable::assign_value`]), closing the holes
    /// of earlier batches ([`compact_values`](Self::compact_values)) if it could. Returns how
    /// many indices a thread of a parallel pass takes from the shared counter at a time
    /// ([`crate::claim::ValueCursor`]): [`VALUE_BLOCK`](crate::claim::VALUE_BLOCK), or 1
    /// where the unused ends of the blocks could exhaust the array (a batch of many more
    /// keys than the table's capacity). On allocation failure nothing changes.
    pub(crate) fn make_value_room(&mut self, n: usize) -> Result<usize, CpuError> {
        use crate::claim::VALUE_BLOCK;
        if !self.is_dense() {
            return Ok(VALUE_BLOCK);
        }
        let (len, cap, vcap) = (self.ledger.len(), self.layout.capacity, value_capacity(&self.layout));
        // The value indices the batch may take if it fits: its new keys, and on rayon's
        // threads the unused ends of one block per task that claims a new key.
        let new = n.min(cap - len);
        let tasks =
            if self.exec.is_parallel() { n.div_ceil(flash_map_core::tuning::TUNING.rayon_min_len).min(new) } else { 0 };
        let fits = |vused: usize, block: usize| vused + new + tasks * (block - 1) <= vcap;
        if !fits(self.vused, VALUE_BLOCK) && self.vused > len {
            self.compact_values()?;
        }
        self.vsaved = self.vused;
        Ok(if fits(self.vused, VALUE_BLOCK) { VALUE_BLOCK } else { 1 })
    }

    /// Closes the holes that removals (and the unused ends of the rayon claims' blocks of
    /// value indices) left in a dense table's value array: the live values of the highest
    /// indices move down into the lowest holes, so that the live entries then use value
    /// indices `0..len`, and only as many values move as there were holes below `len`. One
    /// thread; needs a `u32` of working memory per value index given (on allocation failure
    /// nothing changes).
    pub(crate) fn compact_values(&mut self) -> Result<(), CpuError> {
        let (used, len) = (self.vused, self.ledger.len());
        // Per value index, the slot whose entry it holds, or `u32::MAX`: a hole.
        let mut owner: Vec<u32> = Vec::new();
        owner.try_reserve_exact(used).map_err(|_| CpuError::Alloc { bytes: used.saturating_mul(4) })?;
        owner.resize(used, u32::MAX);
        let raw = self.raw();
        for (slot, &b) in self.states.as_slice().iter().enumerate() {
            if is_full(word_of_byte(b)) {
                // SAFETY: `slot` is a full slot of this table (`&mut self`, one thread), whose
                // index a settled claim or a rebuild gave: below `vused`. Slots fit a `u32`.
                owner[unsafe { *raw.index.add(slot) } as usize] = slot as u32;
            }
        }
        let (mut lo, mut hi, mut moved) = (0usize, used, 0usize);
        loop {
            while lo < len && owner[lo] != u32::MAX {
                lo += 1;
            }
            while hi > len && owner[hi - 1] == u32::MAX {
                hi -= 1;
            }
            if lo >= len || hi <= len {
                break;
            }
            // A hole below `len` and a live value at `len` or above: the value moves down.
            hi -= 1;
            let slot = owner[hi] as usize;
            // SAFETY: `lo < len <= hi < used <= vcap`: two distinct values of the array;
            // `slot` is the full slot that holds index `hi`.
            unsafe {
                let vs = raw.value_size;
                std::ptr::copy_nonoverlapping(raw.values.add(hi * vs), raw.values.add(lo * vs), vs);
                *raw.index.add(slot) = lo as u32;
            }
            owner[lo] = slot as u32;
            moved += 1;
        }
        log::debug!("closed {} holes in the dense values of {len} entries, moving {moved} values", used - len);
        (self.vused, self.vsaved) = (len, len);
        Ok(())
    }

    /// Rehashes in place when the ledger asks for it ([`Ledger::needs_compaction`]): after
    /// removals (tombstones piled up) and after inserts (empty slots used up while
    /// tombstones remain), so probe lengths stay those of the live load. Never fails.
    pub fn compact_if_needed(&mut self) {
        if self.ledger.needs_compaction(&self.layout) {
            self.rebuild_same(self.hash);
        }
    }

    /// The sum and the maximum of the slots that lookups of `keys` (packed, `key_size`
    /// bytes each; a shorter tail is ignored) visit
    /// ([`flash_map_core::probe::probe_length`]).
    pub(crate) fn probe_lengths(&self, keys: &[u8]) -> (u64, usize) {
        // SAFETY: the table is not written during `&self`.
        unsafe { flash_map_core::probe::probe_lengths(&self.raw().plain(), &self.hash, keys) }
    }

    /// Number of live entries counted from the state array (for tests and checks).
    pub fn count_full(&self) -> usize {
        self.state_bytes().iter().filter(|&&s| is_full(word_of_byte(s))).count()
    }

    /// Number of empty slots (for tests and checks).
    pub fn count_empty(&self) -> usize {
        self.state_bytes().iter().filter(|&&s| word_of_byte(s) == EMPTY).count()
    }
}
