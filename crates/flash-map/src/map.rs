//! [`FlashMap`]: the bulk API over whichever engine was chosen.

use std::marker::PhantomData;
use std::mem::size_of;

use flash_map_core::{Batch, TableLayout};

use flash_map_core::{AddCounters, BulkEngine, Contains, Get, Insert, InsertNew, Remove};

use crate::backend::{dispatch, Backend, Engine};
use crate::error::{layout_error, FlashMapError, Result};
use crate::{Counter, FlashMapBuilder};

/// The most entries one bulk call takes (batch positions travel as `u32`).
pub const MAX_BATCH: usize = u32::MAX as usize - 1;

/// A snapshot of a map's table statistics (see [`FlashMap::stats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MapStats {
    /// Slots in the table (a power of two).
    pub slots: usize,
    /// Live entries.
    pub len: usize,
    /// Entries the map holds before `TableFull`.
    pub capacity: usize,
    /// Removed-entry markers not yet cleaned up (never above `slots / 8`).
    pub tombstones: usize,
}

/// Slots visited by lookups (see [`FlashMap::probe_stats`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct ProbeStats {
    /// Keys looked up.
    pub keys: usize,
    /// Mean slots visited per lookup.
    pub mean: f64,
    /// Most slots any one lookup visited.
    pub max: usize,
}

/// A hash map from fixed-size keys to fixed-size values, operated on in batches.
///
/// ```
/// use flash_map::FlashMap;
///
/// let mut map: FlashMap<u64, u64> = FlashMap::with_capacity(1_000)?;
/// assert_eq!(map.bulk_insert(&[(1, 10), (2, 20), (1, 11)])?, 2); // last duplicate wins
/// assert_eq!(map.bulk_get(&[1, 2, 3])?, vec![Some(11), Some(20), None]);
/// assert_eq!(map.bulk_remove(&[2, 2, 3])?, 1);
/// assert_eq!(map.len(), 1);
/// # Ok::<(), flash_map::FlashMapError>(())
/// ```
pub struct FlashMap<K, V> {
    pub(crate) engine: Engine,
    backend: Backend,
    auto_grow: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for FlashMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let layout = self.engine.layout();
        let len = self.engine.ledger().len();
        f.debug_struct("FlashMap")
            .field("backend", &self.backend)
            .field("len", &len)
            .field("capacity", &layout.capacity)
            .field("load_factor", &(len as f64 / layout.slots as f64))
            .finish()
    }
}

/// A batch of two columns, checked: as long as each other and not over [`MAX_BATCH`].
fn columns<'a, K: bytemuck::Pod, V: bytemuck::Pod>(keys: &'a [K], values: &'a [V]) -> Result<Batch<'a>> {
    check_batch(keys.len())?;
    Batch::columns(keys, values).map_err(|_| FlashMapError::ColumnLengths { keys: keys.len(), other: values.len() })
}

/// A column of `other` entries beside `keys` keys must hold one per key.
pub(crate) fn same_len(keys: usize, other: usize) -> Result<()> {
    if other != keys {
        return Err(FlashMapError::ColumnLengths { keys, other });
    }
    Ok(())
}

pub(crate) fn check_batch(len: usize) -> Result<()> {
    if len > MAX_BATCH {
        return Err(FlashMapError::BatchTooLarge { len, max: MAX_BATCH });
    }
    Ok(())
}

impl<K: bytemuck::Pod + Send + Sync, V: bytemuck::Pod + Send + Sync> FlashMap<K, V> {
    /// A builder for a map holding at least `capacity` entries.
    pub fn builder(capacity: usize) -> FlashMapBuilder<K, V> {
        FlashMapBuilder::new(capacity)
    }

    /// A map holding at least `capacity` entries, on the best available backend.
    ///
    /// `0` gives [`FlashMapError::ZeroCapacity`]; a capacity too large to represent or
    /// allocate gives an error, never a panic or abort.
    ///
    /// ```
    /// # use flash_map::{FlashMap, FlashMapError};
    /// let m: FlashMap<[u8; 32], u64> = FlashMap::with_capacity(1000)?;
    /// assert_eq!(m.capacity(), 1024); // a power of two at the default load factor 0.5
    /// assert!(matches!(FlashMap::<u64, u64>::with_capacity(0), Err(FlashMapError::ZeroCapacity)));
    /// # Ok::<(), FlashMapError>(())
    /// ```
    pub fn with_capacity(capacity: usize) -> Result<Self> {
        Self::builder(capacity).build()
    }

    pub(crate) fn from_parts(engine: Engine, backend: Backend, auto_grow: bool) -> Self {
        FlashMap { engine, backend, auto_grow, _types: PhantomData }
    }

    /// How many entries the map holds before a batch fails with `TableFull`.
    pub fn capacity(&self) -> usize {
        self.engine.layout().capacity
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.engine.ledger().len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len / slots` (0.0 when empty).
    pub fn load_factor(&self) -> f64 {
        self.len() as f64 / self.engine.layout().slots as f64
    }

    /// The backend the map runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The maximum load factor the map was built with.
    pub fn max_load_factor(&self) -> f64 {
        self.engine.layout().max_load_factor
    }

    /// The hash strategy the map hashes with: the one it was built with, or a stronger one
    /// if a batch of keys sharing their hash made it rebuild itself (see
    /// [`bulk_insert`](Self::bulk_insert)).
    pub fn hash_strategy(&self) -> crate::HashStrategy {
        self.engine.hasher().strategy
    }

    /// The 128-bit key of a keyed strategy ([`HashStrategy::SipHash13`]); `None` for the
    /// unkeyed ones.
    ///
    /// [`HashStrategy::SipHash13`]: crate::HashStrategy::SipHash13
    pub fn hash_seed(&self) -> Option<u128> {
        let h = self.engine.hasher();
        h.strategy.is_keyed().then(|| h.seed[0] as u128 | (h.seed[1] as u128) << 64)
    }

    /// Table statistics: slots, live entries, capacity, tombstones.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut m: FlashMap<u64, u64> = FlashMap::with_capacity(8)?;
    /// m.bulk_insert(&[(1, 1), (2, 2)])?;
    /// m.bulk_remove(&[1])?;
    /// let s = m.stats();
    /// assert_eq!((s.slots, s.len, s.capacity, s.tombstones), (16, 1, 8, 1));
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn stats(&self) -> MapStats {
        let layout = self.engine.layout();
        MapStats {
            slots: layout.slots,
            len: self.len(),
            capacity: layout.capacity,
            tombstones: self.engine.ledger().tombstones(),
        }
    }

    /// How many slots lookups of `keys` visit: a diagnostic of how well the hash strategy
    /// spreads your keys (it walks the table on the host, one key at a time; on Cuda it
    /// copies the table's states and keys to the host first).
    ///
    /// A lookup visits the slots from the key's home slot up to the one holding it, or up
    /// to the first empty slot when it is absent. Well-spread keys at the default load
    /// factor average about 1.5 slots for present keys and 2.5 for absent ones.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut m: FlashMap<u64, u64> = FlashMap::with_capacity(1 << 16)?;
    /// let ids: Vec<u64> = (0..1 << 16).map(|i| i << 32).collect(); // ids in the high bits
    /// m.bulk_insert(&ids.iter().map(|&k| (k, k)).collect::<Vec<_>>())?;
    /// let p = m.probe_stats(&ids)?;
    /// assert!(p.mean < 2.0 && p.max < 64, "{p:?}");
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn probe_stats(&self, keys: &[K]) -> Result<ProbeStats> {
        let (sum, max) = dispatch!(&self.engine, t => t.probe_lengths(bytemuck::cast_slice(keys)))?;
        let mean = if keys.is_empty() { 0.0 } else { sum as f64 / keys.len() as f64 };
        Ok(ProbeStats { keys: keys.len(), mean, max })
    }

    /// Bytes of working memory the map keeps from earlier batches for the next one, besides
    /// the table itself.
    ///
    /// A large batch on a CPU backend needs working memory in proportion to its size: the
    /// slot each key landed in (a serial insert into a table without tombstones keeps only
    /// the keys it updates), and, on the serial backend, a copy of the batch reordered by
    /// table region and its lookup results (about 24 bytes per `u64` pair). The map keeps
    /// it, so that the next batch does not pay for faulting it in again;
    /// [`release_buffers`](Self::release_buffers) frees it. On the Cuda backend this is 0:
    /// its per-call buffers are device and pinned host memory, kept until the map is
    /// dropped.
    ///
    /// ```
    /// # use flash_map::{Backend, FlashMap};
    /// let mut m: FlashMap<u64, u64> = FlashMap::builder(1 << 16).backend(Backend::Serial).build()?;
    /// let pairs: Vec<(u64, u64)> = (0..1 << 16).map(|i| (i, i)).collect();
    /// m.bulk_insert(&pairs)?;
    /// // Updates of every key: the slots are kept until their new values are written.
    /// m.bulk_insert(&pairs)?;
    /// assert!(m.buffer_bytes() > 0);
    /// m.release_buffers();
    /// assert_eq!(m.buffer_bytes(), 0);
    /// assert_eq!(m.bulk_get(&[7])?, vec![Some(7)]);
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn buffer_bytes(&self) -> usize {
        dispatch!(@raw &self.engine, t => t.buffer_bytes())
    }

    /// Frees the working memory that [`buffer_bytes`](Self::buffer_bytes) counts (after a
    /// one-off large batch, say); the next batch allocates what it needs again. The entries
    /// are untouched.
    pub fn release_buffers(&mut self) {
        dispatch!(@raw &mut self.engine, t => t.release_buffers())
    }

    /// Runs a mutating batch operation; with `auto_grow`, grows and retries on `TableFull`.
    /// On `HashCollisions` (the batch failed with the map unchanged), rebuilds with the next
    /// stronger hash strategy and retries; past the strongest, returns the error.
    pub(crate) fn grow_on_full<T>(&mut self, mut op: impl FnMut(&mut Engine) -> Result<T>) -> Result<T> {
        loop {
            match op(&mut self.engine) {
                Err(FlashMapError::TableFull { len, new, capacity }) if self.auto_grow => {
                    let want = len.saturating_add(new).max(capacity.saturating_mul(2));
                    log::debug!("flash-map: growing from capacity {capacity} to at least {want}");
                    self.grow_to(want)?;
                }
                Err(FlashMapError::HashCollisions { keys }) => self.strengthen_hash(keys)?,
                other => return other,
            }
        }
    }

    /// Rebuilds the table with the next stronger hash strategy after a batch in which
    /// `keys` keys gave up on collisions: Identity → Murmur3 → SipHash13 (random key).
    fn strengthen_hash(&mut self, keys: usize) -> Result<()> {
        use crate::HashStrategy as H;
        let now = self.engine.hasher();
        let next = match now.strategy {
            H::Identity => H::Murmur3,
            H::Murmur3 => H::SipHash13,
            H::SipHash13 => return Err(FlashMapError::HashCollisions { keys }),
        };
        log::warn!(
            "flash-map: keys of a batch share their {:?} hash with more than {} others \
             (first 8 bytes equal, or keys chosen to collide); rebuilding {} entries with {next:?}. \
             Build the map with .hash_strategy(HashStrategy::{next:?}) to skip this rebuild.",
            now.strategy,
            flash_map_core::probe::COLLISION_LIMIT,
            self.len(),
        );
        let layout = self.engine.layout();
        dispatch!(&mut self.engine, t => t.rebuild_with(layout, crate::builder::hasher_for(next, None)))
    }

    fn grow_to(&mut self, capacity: usize) -> Result<()> {
        let old = self.engine.layout();
        let layout = TableLayout::for_capacity(capacity, old.max_load_factor, old.key_size, old.value_size)
            .map_err(|e| layout_error(e, capacity, old.max_load_factor))?;
        let hash = self.engine.hasher();
        dispatch!(&mut self.engine, t => t.rebuild_with(layout, hash))
    }

    /// Inserts or updates every pair; returns how many keys were new.
    ///
    /// Duplicate keys in one batch: the **last** occurrence wins, on every backend. If the
    /// new keys do not fit (and `auto_grow` is off) the call fails with
    /// [`FlashMapError::TableFull`] and the map is unchanged. Updates never fail for capacity.
    ///
    /// Keys that share their hash (under the default Identity strategy: keys whose first 8
    /// bytes are equal) are caught, not left to grow quadratically: once a key passes more
    /// than [`COLLISION_LIMIT`](flash_map_core::probe::COLLISION_LIMIT) keys of its hash,
    /// the batch stops, the map rebuilds itself with the next stronger strategy
    /// (Identity → Murmur3 → SipHash13 with a random key; a `log` warning says so, and
    /// [`hash_strategy`](Self::hash_strategy) tells the new one), and the batch runs again.
    /// This holds for `bulk_insert_new` and `bulk_add` too.
    ///
    /// ```
    /// # use flash_map::{FlashMap, HashStrategy};
    /// // 32-byte keys that differ only after their first 8 bytes.
    /// let pairs: Vec<([u8; 32], u32)> =
    ///     (0..1000u32).map(|i| { let mut k = [7u8; 32]; k[28..].copy_from_slice(&i.to_le_bytes()); (k, i) }).collect();
    /// let mut m: FlashMap<[u8; 32], u32> = FlashMap::with_capacity(1000)?;
    /// assert_eq!(m.bulk_insert(&pairs)?, 1000);
    /// assert_eq!(m.hash_strategy(), HashStrategy::Murmur3); // rebuilt on the first batch
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    ///
    /// ```
    /// # use flash_map::{FlashMap, FlashMapError};
    /// let mut m: FlashMap<u64, u64> = FlashMap::with_capacity(2)?;
    /// assert_eq!(m.bulk_insert(&[(1, 1), (1, 2)])?, 1);
    /// assert_eq!(m.bulk_get(&[1])?, vec![Some(2)]);
    /// // Three new keys do not fit in capacity 2: nothing changes.
    /// assert!(matches!(m.bulk_insert(&[(1, 9), (2, 2), (3, 3)]), Err(FlashMapError::TableFull { .. })));
    /// assert_eq!(m.bulk_get(&[1, 2])?, vec![Some(2), None]);
    /// # Ok::<(), FlashMapError>(())
    /// ```
    pub fn bulk_insert(&mut self, pairs: &[(K, V)]) -> Result<usize> {
        check_batch(pairs.len())?;
        if pairs.is_empty() {
            return Ok(0);
        }
        let b = Batch::pairs(pairs);
        self.grow_on_full(|e| dispatch!(e, t => t.insert(&b)))
    }

    /// Inserts only the pairs whose keys are absent. Within the batch the **first** copy of
    /// a new key is inserted (`true`); later copies and keys already present report `false`
    /// and change nothing. Atomic on `TableFull` like [`bulk_insert`](Self::bulk_insert).
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut seen: FlashMap<[u8; 32], u64> = FlashMap::with_capacity(100)?;
    /// let a = [1u8; 32];
    /// let b = [2u8; 32];
    /// assert_eq!(seen.bulk_insert_new(&[(a, 1), (b, 2), (a, 3)])?, vec![true, true, false]);
    /// assert_eq!(seen.bulk_insert_new(&[(a, 9)])?, vec![false]);
    /// assert_eq!(seen.bulk_get(&[a])?, vec![Some(1)]);
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn bulk_insert_new(&mut self, pairs: &[(K, V)]) -> Result<Vec<bool>> {
        check_batch(pairs.len())?;
        let mut out = vec![false; pairs.len()];
        if pairs.is_empty() {
            return Ok(out);
        }
        let b = Batch::pairs(pairs);
        self.grow_on_full(|e| dispatch!(e, t => t.insert_new(&b, &mut out)))?;
        Ok(out)
    }

    /// Looks up every key; one result per key, in order. Each call returns a fresh vector,
    /// whose memory the system must fault in; for a stream of batches,
    /// [`bulk_get_into`](Self::bulk_get_into) fills one you keep.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut m: FlashMap<u32, [u8; 4]> = FlashMap::with_capacity(8)?;
    /// m.bulk_insert(&[(1, *b"one!"), (2, *b"two!")])?;
    /// assert_eq!(m.bulk_get(&[2, 3, 1])?, vec![Some(*b"two!"), None, Some(*b"one!")]);
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn bulk_get(&self, keys: &[K]) -> Result<Vec<Option<V>>> {
        let mut out = Vec::new();
        self.bulk_get_into(keys, &mut out)?;
        Ok(out)
    }

    /// [`bulk_get`](Self::bulk_get) into a vector the caller keeps: `out` is cleared and
    /// refilled with one result per key, reusing its allocation. For a stream of lookup
    /// batches (join probes, dedup windows) this saves allocating — and faulting in — a fresh
    /// result vector per batch, which for large values costs more than the lookups.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut m: FlashMap<u64, [u8; 64]> = FlashMap::with_capacity(16)?;
    /// m.bulk_insert(&[(1, [1; 64])])?;
    /// let mut out = Vec::new();
    /// for batch in [[1u64, 2], [2, 1]] {
    ///     m.bulk_get_into(&batch, &mut out)?;
    ///     assert_eq!(out.iter().filter(|v| v.is_some()).count(), 1);
    /// }
    /// assert_eq!(out, vec![None, Some([1; 64])]);
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn bulk_get_into(&self, keys: &[K], out: &mut Vec<Option<V>>) -> Result<()> {
        check_batch(keys.len())?;
        let n = keys.len();
        out.clear();
        let kept = out.capacity();
        out.try_reserve_exact(n)
            .map_err(|_| FlashMapError::AllocationFailed { bytes: n.saturating_mul(size_of::<Option<V>>()) })?;
        if out.capacity() != kept {
            // Fresh memory, all of it written below.
            let bytes = n * size_of::<Option<V>>();
            flash_map_cpu::prepare_results(out.as_mut_ptr(), bytes, self.backend() != Backend::Serial);
        }
        // Generic, not `dyn`, and holding the pointer itself: the per-key store inlines into
        // the engine's loop with one load of the base pointer.
        struct Sink<V>(*mut Option<V>);
        // SAFETY: each index is written by exactly one thread (the engines' contract).
        unsafe impl<V> Sync for Sink<V> {}
        impl<V: crate::Pod> flash_map_core::GetSink for Sink<V> {
            #[inline(always)]
            unsafe fn put(&self, i: usize, v: Option<*const u8>) {
                // SAFETY: `i < n <= capacity` (called once per batch position); a `Some`
                // pointer holds `size_of::<V>()` bytes of a stored `V` (any bit pattern is a
                // valid Pod value).
                unsafe { self.0.add(i).write(v.map(|p| std::ptr::read_unaligned(p as *const V))) };
            }
        }
        let sink = Sink(out.as_mut_ptr());
        dispatch!(&self.engine, t => t.get(&Batch::keys(keys), &sink))?;
        // SAFETY: the engine called `put` once for every `i < n`.
        unsafe { out.set_len(n) };
        Ok(())
    }

    /// Whether each key is present, in order.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut m: FlashMap<u64, ()> = FlashMap::with_capacity(8)?; // a set
    /// m.bulk_insert(&[(5, ())])?;
    /// assert_eq!(m.bulk_contains(&[4, 5])?, vec![false, true]);
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn bulk_contains(&self, keys: &[K]) -> Result<Vec<bool>> {
        check_batch(keys.len())?;
        let mut out = vec![false; keys.len()];
        if !keys.is_empty() {
            dispatch!(&self.engine, t => t.contains(&Batch::keys(keys), &mut out))?;
        }
        Ok(out)
    }

    /// [`bulk_insert`](Self::bulk_insert) of two columns: `keys[i]` gets `values[i]`. For a
    /// column store, with no `(K, V)` pairs to pack first; same results as the pairs.
    /// [`FlashMapError::ColumnLengths`] when the columns differ in length.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut m: FlashMap<u64, u32> = FlashMap::with_capacity(8)?;
    /// assert_eq!(m.bulk_insert_columns(&[1, 2, 1], &[10, 20, 11])?, 2);
    /// assert_eq!(m.bulk_get(&[1, 2])?, vec![Some(11), Some(20)]);
    /// assert!(m.bulk_insert_columns(&[3], &[]).is_err());
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn bulk_insert_columns(&mut self, keys: &[K], values: &[V]) -> Result<usize> {
        let b = columns(keys, values)?;
        if b.is_empty() {
            return Ok(0);
        }
        self.grow_on_full(|e| dispatch!(e, t => t.insert(&b)))
    }

    /// [`bulk_insert_new`](Self::bulk_insert_new) of two columns, the answers into a slice of
    /// the caller's: `inserted[i]` tells whether pair `i` was inserted (`inserted` holds one
    /// per key). Returns how many were.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut seen: FlashMap<u64, u64> = FlashMap::with_capacity(8)?;
    /// let mut inserted = [false; 3];
    /// assert_eq!(seen.bulk_insert_new_columns(&[5, 6, 5], &[1, 2, 3], &mut inserted)?, 2);
    /// assert_eq!(inserted, [true, true, false]);
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn bulk_insert_new_columns(&mut self, keys: &[K], values: &[V], inserted: &mut [bool]) -> Result<usize> {
        let b = columns(keys, values)?;
        same_len(keys.len(), inserted.len())?;
        if b.is_empty() {
            return Ok(0);
        }
        self.grow_on_full(|e| dispatch!(e, t => t.insert_new(&b, inserted)))
    }

    /// [`bulk_get`](Self::bulk_get) into slices of the caller's: `found[i]` tells whether
    /// `keys[i]` is present and `values[i]` gets its value; the values of absent keys are
    /// left as they were. `values` and `found` hold one per key. Returns how many were
    /// found.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut m: FlashMap<u64, u64> = FlashMap::with_capacity(8)?;
    /// m.bulk_insert(&[(1, 10), (2, 20)])?;
    /// let (mut values, mut found) = ([0u64; 3], [false; 3]);
    /// assert_eq!(m.bulk_get_columns(&[2, 9, 1], &mut values, &mut found)?, 2);
    /// assert_eq!((values, found), ([20, 0, 10], [true, false, true]));
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn bulk_get_columns(&self, keys: &[K], values: &mut [V], found: &mut [bool]) -> Result<usize> {
        check_batch(keys.len())?;
        same_len(keys.len(), values.len())?;
        same_len(keys.len(), found.len())?;
        if keys.is_empty() {
            return Ok(0);
        }
        struct Sink<V>(*mut V, *mut bool);
        // SAFETY: each index is written by exactly one thread (the engines' contract).
        unsafe impl<V> Sync for Sink<V> {}
        impl<V: crate::Pod> flash_map_core::GetSink for Sink<V> {
            #[inline(always)]
            unsafe fn put(&self, i: usize, v: Option<*const u8>) {
                // SAFETY: `i < n`, the length of both slices (checked above; called once per
                // batch position); a `Some` pointer holds `size_of::<V>()` bytes of a stored
                // `V` (any bit pattern is a valid Pod value).
                unsafe {
                    self.1.add(i).write(v.is_some());
                    if let Some(p) = v {
                        self.0.add(i).write(std::ptr::read_unaligned(p as *const V));
                    }
                }
            }
        }
        let sink = Sink(values.as_mut_ptr(), found.as_mut_ptr());
        dispatch!(&self.engine, t => t.get(&Batch::keys(keys), &sink))?;
        Ok(found.iter().filter(|&&f| f).count())
    }

    /// [`bulk_contains`](Self::bulk_contains) into a slice of the caller's, one per key.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut m: FlashMap<u64, ()> = FlashMap::with_capacity(8)?;
    /// m.bulk_insert(&[(5, ())])?;
    /// let mut found = [true; 2];
    /// m.bulk_contains_into(&[4, 5], &mut found)?;
    /// assert_eq!(found, [false, true]);
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn bulk_contains_into(&self, keys: &[K], found: &mut [bool]) -> Result<()> {
        check_batch(keys.len())?;
        same_len(keys.len(), found.len())?;
        if !keys.is_empty() {
            dispatch!(&self.engine, t => t.contains(&Batch::keys(keys), found))?;
        }
        Ok(())
    }

    /// Removes every key; returns how many distinct keys were present and removed.
    ///
    /// Removed keys leave tombstones, which the map compacts away when they pile up (or
    /// when later inserts would use up the empty slots around them). On the CPU backends
    /// that compaction rehashes the table in place and needs no memory, so a removal never
    /// fails for memory; on Cuda a removal that may need it reserves the arrays first, and
    /// fails with [`FlashMapError::AllocationFailed`] before removing anything when the
    /// device has no room.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut m: FlashMap<u64, u64> = FlashMap::with_capacity(8)?;
    /// m.bulk_insert(&[(1, 1), (2, 2)])?;
    /// assert_eq!(m.bulk_remove(&[1, 1, 9])?, 1); // distinct keys that were present
    /// assert_eq!(m.len(), 1);
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn bulk_remove(&mut self, keys: &[K]) -> Result<usize> {
        check_batch(keys.len())?;
        if keys.is_empty() {
            return Ok(0);
        }
        dispatch!(&mut self.engine, t => t.remove(&Batch::keys(keys)))
    }

    /// Every live entry exactly once, in no particular order.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut m: FlashMap<u64, u64> = FlashMap::with_capacity(8)?;
    /// m.bulk_insert(&[(2, 20), (1, 10)])?;
    /// let mut all = m.entries()?;
    /// all.sort();
    /// assert_eq!(all, vec![(1, 10), (2, 20)]);
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn entries(&self) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        out.try_reserve_exact(self.len())
            .map_err(|_| FlashMapError::AllocationFailed { bytes: self.len().saturating_mul(size_of::<(K, V)>()) })?;
        let push =
            &mut |k: &[u8], v: &[u8]| out.push((bytemuck::pod_read_unaligned(k), bytemuck::pod_read_unaligned(v)));
        dispatch!(&self.engine, t => t.for_each_entry(push))?;
        Ok(out)
    }

    /// Removes every entry; the capacity stays.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut m: FlashMap<u64, u64> = FlashMap::with_capacity(8)?;
    /// m.bulk_insert(&[(1, 1)])?;
    /// m.clear()?;
    /// assert!(m.is_empty());
    /// assert_eq!(m.capacity(), 8);
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn clear(&mut self) -> Result<()> {
        dispatch!(&mut self.engine, t => t.clear())
    }

    /// Grows the map so that `len() + additional` entries fit.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut m: FlashMap<u64, u64> = FlashMap::with_capacity(8)?;
    /// m.reserve(100)?;
    /// assert!(m.capacity() >= 100);
    /// let pairs: Vec<(u64, u64)> = (0..100).map(|i| (i, i)).collect();
    /// assert_eq!(m.bulk_insert(&pairs)?, 100);
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn reserve(&mut self, additional: usize) -> Result<()> {
        let need =
            self.len().checked_add(additional).ok_or(FlashMapError::CapacityOverflow { requested: usize::MAX })?;
        if need > self.capacity() {
            self.grow_to(need)?;
        }
        Ok(())
    }
}

impl<K: bytemuck::Pod + Send + Sync, V: Counter + Send + Sync> FlashMap<K, V> {
    /// Adds each pair's value to the stored counter (absent keys start at 0; duplicates in
    /// a batch all add up; wrapping). Returns how many keys were new. Atomic on `TableFull`.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut counts: FlashMap<u64, u32> = FlashMap::with_capacity(16)?;
    /// assert_eq!(counts.bulk_add(&[(7, 1), (7, 1), (9, 5)])?, 2);
    /// counts.bulk_add(&[(7, 1)])?;
    /// assert_eq!(counts.bulk_get(&[7, 9])?, vec![Some(3), Some(5)]);
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn bulk_add(&mut self, pairs: &[(K, V)]) -> Result<usize> {
        check_batch(pairs.len())?;
        if pairs.is_empty() {
            return Ok(0);
        }
        let b = Batch::pairs(pairs);
        self.grow_on_full(|e| dispatch!(e, t => t.add(&b, V::KIND)))
    }

    /// [`bulk_add`](Self::bulk_add) of two columns: `values[i]` is added to the counter of
    /// `keys[i]`.
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut counts: FlashMap<u64, u64> = FlashMap::with_capacity(16)?;
    /// assert_eq!(counts.bulk_add_columns(&[7, 7, 9], &[1, 1, 5])?, 2);
    /// assert_eq!(counts.bulk_get(&[7, 9])?, vec![Some(2), Some(5)]);
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn bulk_add_columns(&mut self, keys: &[K], values: &[V]) -> Result<usize> {
        let b = columns(keys, values)?;
        if b.is_empty() {
            return Ok(0);
        }
        self.grow_on_full(|e| dispatch!(e, t => t.add(&b, V::KIND)))
    }
}
