//! The bulk operations of [`CpuTable`].
//!
//! Every mutating operation runs in passes so that it is atomic and deterministic:
//!
//! 1. **claim**: each key finds its slot or claims a free one, writing the key (and, for an
//!    upsert, the claimer's value); `pos[i]` records the slot, `kind[i]` whether the claim
//!    was new. A batch that might not fit stops once it has certainly failed.
//! 2. **check**: if the new keys exceed the capacity, the new claims are rolled back (their
//!    slots get their former state) and the call fails with nothing changed.
//! 3. **values**: needed only when a key met an existing slot (a duplicate or an update).
//!    Serially, values are written in batch order, so the last duplicate wins (first for
//!    `insert_new`). In parallel, each slot's winner is chosen by an atomic max (min) over
//!    batch positions in a per-slot scratch word, then only winners write. Counters are
//!    added with atomic adds, which commute.
//!
//! The loops run through the prefetch pipeline of [`crate::pipeline`], which fetches keys'
//! home slots ahead of the key being processed.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use flash_map_core::abi::{KIND_COLLISIONS, KIND_EXISTING, KIND_NEW_FROM_EMPTY, KIND_NEW_FROM_TOMBSTONE, KIND_NO_ROOM};
use flash_map_core::probe::{claim, find, remove, Claim};
use flash_map_core::slot::TOMBSTONE;
use flash_map_core::{Batch, ClaimCounts, CounterKind, GetSink};

use crate::buf::AlignedBuf;
use crate::exec::prefetch_read;
use crate::partition::{self, Order};
use crate::pipeline::{staged, Fetch, Sweep};
#[cfg(feature = "rayon")]
use crate::slots::AtomicSlots;
use crate::slots::RawTable;
use crate::{CpuError, CpuTable, Exec};

/// Raw pointer wrapper for disjoint per-index writes from a parallel pass.
#[derive(Clone, Copy)]
struct SyncPtr<T>(*mut T);
// SAFETY: used only for writes to distinct indices, whose owner outlives the pass.
unsafe impl<T> Send for SyncPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SyncPtr<T> {}
impl<T> SyncPtr<T> {
    /// # Safety
    /// `i` in bounds and written by one thread only.
    #[inline(always)]
    unsafe fn write(self, i: usize, v: T) {
        // SAFETY: by contract.
        unsafe { *self.0.add(i) = v }
    }
    #[inline(always)]
    unsafe fn read(self, i: usize) -> T
    where
        T: Copy,
    {
        // SAFETY: by contract.
        unsafe { *self.0.add(i) }
    }
}

/// How the claim pass prepares a newly claimed slot.
#[derive(Clone, Copy)]
enum OnNew<'a> {
    /// Copy the claiming record's value (upsert).
    WriteValue(Batch<'a>),
    /// Zero the value (counters).
    ZeroValue,
    /// Mark the slot's scratch word as claimed in this batch (insert_new, parallel).
    MarkAux,
}

/// Which copy of a duplicated key writes its value in a parallel pass.
#[cfg(feature = "rayon")]
#[derive(Clone, Copy)]
enum Elect {
    /// The last copy (upsert).
    Last,
    /// The first copy of a key claimed in this batch (insert_new).
    FirstNew,
}

/// Copies record `i`'s value into `slot`.
///
/// # Safety
/// `i < b.len()`, `slot <= raw.mask`, and no other thread writes that slot's value meanwhile.
#[inline(always)]
unsafe fn copy_value(raw: &RawTable, b: &Batch<'_>, i: usize, slot: usize) {
    // SAFETY: by contract; batch values and slot values hold `value_size` bytes.
    unsafe { copy_small(b.val(i), raw.value_ptr(slot), raw.value_size) }
}

/// Copies `len` bytes between non-overlapping places, with a single move for the common
/// small sizes rather than a call to `memcpy` (whose call costs more than such a copy).
///
/// # Safety
/// As [`std::ptr::copy_nonoverlapping`].
#[inline(always)]
pub(crate) unsafe fn copy_small(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: by contract; unaligned reads and writes of exactly `len` bytes.
    unsafe {
        match len {
            4 => (dst as *mut u32).write_unaligned((src as *const u32).read_unaligned()),
            8 => (dst as *mut u64).write_unaligned((src as *const u64).read_unaligned()),
            16 => (dst as *mut u128).write_unaligned((src as *const u128).read_unaligned()),
            32 => (dst as *mut [u128; 2]).write_unaligned((src as *const [u128; 2]).read_unaligned()),
            _ => std::ptr::copy_nonoverlapping(src, dst, len),
        }
    }
}

impl CpuTable {
    /// Checks that `b`'s keys (and, for `values`, its values) have the table's sizes: the
    /// passes read exactly that many bytes per record.
    ///
    /// # Panics
    /// If they do not.
    fn check_shape(&self, b: &Batch<'_>, values: bool) {
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

    #[inline(always)]
    fn aux_at(&self, slot: usize) -> &AtomicU32 {
        // SAFETY: `aux` holds `slots` aligned u32 words when a parallel pass runs (see
        // `ensure_aux`); all access during a pass is atomic.
        unsafe { AtomicU32::from_ptr((self.aux.as_ptr() as *mut u32).add(slot)) }
    }

    fn ensure_aux(&mut self) -> Result<(), CpuError> {
        if self.aux.len() != self.layout.slots * 4 {
            self.aux = AlignedBuf::zeroed(self.layout.slots * 4)?;
        }
        Ok(())
    }

    fn ensure_scratch(&mut self, n: usize) -> Result<(), CpuError> {
        let grow = |v: usize| CpuError::Alloc { bytes: v };
        if self.pos.len() < n {
            self.pos.try_reserve_exact(n - self.pos.len()).map_err(|_| grow(n * 4))?;
            self.pos.resize(n, 0);
        }
        if self.kind.len() < n {
            self.kind.try_reserve_exact(n - self.kind.len()).map_err(|_| grow(n))?;
            self.kind.resize(n, 0);
        }
        Ok(())
    }

    /// Pass 1: claim a slot for every key of `b`.
    fn claim_pass(&mut self, b: &Batch<'_>, on_new: OnNew<'_>) -> Result<ClaimCounts, CpuError> {
        self.ensure_scratch(b.len())?;
        if self.exec.is_parallel() && matches!(on_new, OnNew::MarkAux) {
            self.ensure_aux()?;
        }
        let raw = self.raw();
        let hs = self.hash;
        let pos = SyncPtr(self.pos.as_mut_ptr());
        let kind = SyncPtr(self.kind.as_mut_ptr());
        let this = &*self;
        let one = |i: usize, c: Claim| -> (usize, usize, usize) {
            // SAFETY: `i < b.len()` (scratch sized above), each `i` visited by one thread.
            unsafe {
                match c {
                    Claim::Existing(slot) => {
                        pos.write(i, slot as u32);
                        kind.write(i, KIND_EXISTING);
                        (0, 0, 0)
                    }
                    Claim::New { slot, prev } => {
                        pos.write(i, slot as u32);
                        let t = prev == TOMBSTONE;
                        kind.write(i, if t { KIND_NEW_FROM_TOMBSTONE } else { KIND_NEW_FROM_EMPTY });
                        match on_new {
                            OnNew::WriteValue(vb) => copy_value(&raw, &vb, i, slot),
                            OnNew::ZeroValue => std::ptr::write_bytes(raw.value_ptr(slot), 0, raw.value_size),
                            OnNew::MarkAux => {
                                if this.exec.is_parallel() {
                                    this.aux_at(slot).store(u32::MAX, Ordering::Relaxed)
                                }
                            }
                        }
                        (1, t as usize, 0)
                    }
                    Claim::NoRoom => {
                        kind.write(i, KIND_NO_ROOM);
                        (0, 0, 1)
                    }
                    Claim::Collisions => {
                        kind.write(i, KIND_COLLISIONS);
                        (0, 0, 1)
                    }
                }
            }
        };
        // Counted afterwards from `kind`: one cheap sequential scan, no shared counters.
        // A batch that might not fit is bounded: once its new claims pass the free
        // capacity it has failed for certain, and the rest of the batch is skipped instead
        // of filling the table and scanning it whole. So is a batch in which a key gave up
        // on collisions: it fails whatever the rest does.
        let budget = self.ledger.claim_budget(&self.layout, b.len());
        match self.exec {
            Exec::Serial if self.reordered.is_some() => {
                let shift = self.reordered.unwrap_or_default();
                // In partition order: a one-stage loop behind a sweep, as in
                // `probe_in_order` (measured on 8M `u64` pairs: inserts 1.3x faster than
                // through the two-stage pipeline, and 1.15x faster than this same loop run
                // through `staged` with `Fetch::Plain`, 189 against 217 ms).
                let s = raw.plain();
                let (ks, n) = (raw.key_size, b.len());
                let mut sweep = Sweep::new(&raw, n, shift);
                let (mut new, mut failed) = (0usize, false);
                for i in 0..n {
                    // SAFETY: `i < n` indexes the batch; one thread.
                    unsafe {
                        let h = hs.hash(b.key(i), ks);
                        sweep.step(&raw, h, true, true);
                        if new > budget || failed {
                            kind.write(i, KIND_NO_ROOM);
                            continue;
                        }
                        let c = claim(&s, h, b.key(i));
                        new += matches!(c, Claim::New { .. }) as usize;
                        failed = c == Claim::Collisions;
                        one(i, c);
                    }
                }
            }
            Exec::Serial => {
                let s = raw.plain();
                let (mut new, mut failed) = (0usize, false);
                staged(&raw, hs, b, 0..b.len(), Fetch::Always, |i, h| {
                    if new > budget || failed {
                        // SAFETY: `i < b.len()`.
                        unsafe { kind.write(i, KIND_NO_ROOM) };
                        return;
                    }
                    // SAFETY: `i < b.len()`; key valid for key_size bytes; one thread.
                    let c = unsafe { claim(&s, h, b.key(i)) };
                    new += matches!(c, Claim::New { .. }) as usize;
                    failed = c == Claim::Collisions;
                    one(i, c);
                });
            }
            #[cfg(feature = "rayon")]
            Exec::Rayon => {
                use std::sync::atomic::{AtomicBool, AtomicUsize};
                let s = AtomicSlots(raw);
                let (new, abort) = (AtomicUsize::new(0), AtomicBool::new(false));
                self.exec.for_chunks(b.len(), |range| {
                    staged(&raw, hs, b, range, Fetch::Always, |i, h| {
                        if abort.load(Ordering::Relaxed) {
                            // SAFETY: `i < b.len()`, one writer per index.
                            unsafe { kind.write(i, KIND_NO_ROOM) };
                            return;
                        }
                        // SAFETY: as above; claims are atomic.
                        let c = unsafe { claim(&s, h, b.key(i)) };
                        if c == Claim::Collisions
                            || budget != usize::MAX
                                && matches!(c, Claim::New { .. })
                                && new.fetch_add(1, Ordering::Relaxed) >= budget
                        {
                            abort.store(true, Ordering::Relaxed);
                        }
                        one(i, c);
                    })
                });
            }
        }
        let mut st = ClaimCounts::default();
        for &k in &self.kind[..b.len()] {
            match k {
                KIND_NEW_FROM_EMPTY => st.new += 1,
                KIND_NEW_FROM_TOMBSTONE => {
                    st.new += 1;
                    st.from_tombstone += 1
                }
                KIND_NO_ROOM => st.no_room += 1,
                KIND_COLLISIONS => st.collisions += 1,
                _ => st.existing += 1,
            }
        }
        Ok(st)
    }

    /// Pass 2: the ledger accepts the claims, or they are undone and the call fails with
    /// the table as it was.
    fn settle(&mut self, n: usize, c: ClaimCounts) -> Result<(), CpuError> {
        self.ledger.settle(&self.layout, c).map_err(|r| {
            self.undo_claims(n);
            CpuError::from(r)
        })
    }

    /// Gives the slots claimed new by the last claim pass of `n` keys their former state
    /// (and clears their scratch words).
    fn undo_claims(&mut self, n: usize) {
        let states = self.states.as_mut_ptr() as *mut u32;
        let aux_used = self.aux.len() == self.layout.slots * 4;
        for i in 0..n {
            let prev = match self.kind[i] {
                KIND_NEW_FROM_EMPTY => flash_map_core::slot::EMPTY,
                KIND_NEW_FROM_TOMBSTONE => TOMBSTONE,
                _ => continue,
            };
            let slot = self.pos[i] as usize;
            // SAFETY: `slot` came from a claim on this table.
            unsafe { *states.add(slot) = prev };
            if aux_used {
                self.aux_at(slot).store(0, Ordering::Relaxed);
            }
        }
    }

    /// Upserts every pair of `b`; returns how many keys were new. Last duplicate wins.
    /// On [`CpuError::TableFull`] the table is unchanged.
    pub(crate) fn insert(&mut self, b: &Batch<'_>) -> Result<usize, CpuError> {
        self.check_shape(b, true);
        let new = self.partitioned(b, true, false, |t, b, _| t.insert_in_order(b))?;
        self.compact_if_needed();
        Ok(new)
    }

    fn insert_in_order(&mut self, b: &Batch<'_>) -> Result<usize, CpuError> {
        // Claimers write their value at once: when no key met an existing slot (no
        // duplicates, no updates), that is already the final state.
        let st = self.claim_pass(b, OnNew::WriteValue(*b))?;
        if st.existing > 0 && self.exec.is_parallel() {
            // The winners' election needs the per-slot words: allocated before the claims
            // count, so that running out of memory leaves the table as it was.
            if let Err(e) = self.ensure_aux() {
                self.undo_claims(b.len());
                return Err(e);
            }
        }
        self.settle(b.len(), st)?;
        if st.existing == 0 {
            return Ok(st.new);
        }
        match self.exec {
            Exec::Serial => {
                // In batch order the claimer is a key's first copy, so writing every later
                // copy in order leaves the last one.
                let raw = self.raw();
                for i in 0..b.len() {
                    if self.kind[i] == KIND_EXISTING {
                        // SAFETY: pos[i] is a slot of this table; the value holds vs bytes.
                        unsafe { copy_value(&raw, b, i, self.pos[i] as usize) };
                    }
                }
            }
            #[cfg(feature = "rayon")]
            Exec::Rayon => {
                self.elect(b.len(), Elect::Last);
                self.write_elected(b, None);
            }
        }
        Ok(st.new)
    }

    /// Inserts the pairs whose keys are absent; the first copy of a new key wins.
    /// `out[i]` says whether pair `i` was inserted. Atomic on [`CpuError::TableFull`].
    pub(crate) fn insert_new(&mut self, b: &Batch<'_>, out: &mut [bool]) -> Result<usize, CpuError> {
        self.check_shape(b, true);
        assert_eq!(out.len(), b.len(), "one result per pair");
        let new = self.partitioned(b, true, true, |t, b, scratch| {
            let Some(sc) = scratch else { return t.insert_new_in_order(b, out) };
            // SAFETY: the flags hold zeros and ones only, valid `bool`s.
            let won = unsafe { &mut *(&mut sc.found[..b.len()] as *mut [u8] as *mut [bool]) };
            let new = t.insert_new_in_order(b, won)?;
            let won = sc.found.as_ptr();
            // SAFETY: `j < n`: written by `insert_new_in_order`.
            sc.merge(b.len(), |i, j| out[i] = unsafe { *won.add(j) } != 0);
            Ok(new)
        })?;
        self.compact_if_needed();
        Ok(new)
    }

    fn insert_new_in_order(&mut self, b: &Batch<'_>, out: &mut [bool]) -> Result<usize, CpuError> {
        let st = self.claim_pass(b, OnNew::MarkAux)?;
        self.settle(b.len(), st)?;
        match self.exec {
            Exec::Serial => {
                // In batch order, the claimer of a new key is its first copy.
                let raw = self.raw();
                for (i, o) in out.iter_mut().enumerate() {
                    *o = matches!(self.kind[i], KIND_NEW_FROM_EMPTY | KIND_NEW_FROM_TOMBSTONE);
                    if *o {
                        // SAFETY: pos[i] is a slot of this table; the value holds vs bytes.
                        unsafe { copy_value(&raw, b, i, self.pos[i] as usize) };
                    }
                }
            }
            #[cfg(feature = "rayon")]
            Exec::Rayon => {
                self.elect(b.len(), Elect::FirstNew);
                self.write_elected(b, Some(out));
            }
        }
        Ok(st.new)
    }

    /// Parallel duplicate resolution: each slot's scratch word ends up holding the batch
    /// position (+1) of the copy that must write its value.
    #[cfg(feature = "rayon")]
    fn elect(&self, n: usize, how: Elect) {
        let pos = &self.pos;
        self.exec.for_each(n, |i| {
            let a = self.aux_at(pos[i] as usize);
            match how {
                Elect::Last => {
                    a.fetch_max(i as u32 + 1, Ordering::Relaxed);
                }
                // Only slots claimed in this batch carry a (nonzero) mark.
                Elect::FirstNew => {
                    if a.load(Ordering::Relaxed) != 0 {
                        a.fetch_min(i as u32 + 1, Ordering::Relaxed);
                    }
                }
            }
        });
    }

    /// The elected copies write their values and reset the scratch words; `out[i]` (if
    /// given) records whether copy `i` was elected.
    #[cfg(feature = "rayon")]
    fn write_elected(&self, b: &Batch<'_>, out: Option<&mut [bool]>) {
        let raw = self.raw();
        let pos = &self.pos;
        let outp = out.map(|o| SyncPtr(o.as_mut_ptr()));
        self.exec.for_each(b.len(), |i| {
            let slot = pos[i] as usize;
            let a = self.aux_at(slot);
            // Other copies read either the winner's position or, after the reset, zero:
            // never their own.
            let won = a.load(Ordering::Relaxed) == i as u32 + 1;
            if won {
                // SAFETY: `slot` is a slot of this table, written only by its winner.
                unsafe { copy_value(&raw, b, i, slot) };
                a.store(0, Ordering::Relaxed);
            }
            if let Some(o) = outp {
                // SAFETY: `i < b.len() == out.len()`, one writer per index.
                unsafe { o.write(i, won) };
            }
        });
    }

    /// Adds each pair's value to the stored counter (absent keys start at zero); returns
    /// how many keys were new. Atomic on [`CpuError::TableFull`].
    pub(crate) fn add(&mut self, b: &Batch<'_>, kind: CounterKind) -> Result<usize, CpuError> {
        self.check_shape(b, true);
        let new = self.partitioned(b, true, false, |t, b, _| t.add_in_order(b, kind))?;
        self.compact_if_needed();
        Ok(new)
    }

    fn add_in_order(&mut self, b: &Batch<'_>, kind: CounterKind) -> Result<usize, CpuError> {
        assert_eq!(self.layout.value_size, kind.width(), "counter width matches the value size");
        let st = self.claim_pass(b, OnNew::ZeroValue)?;
        self.settle(b.len(), st)?;
        let raw = self.raw();
        let pos = SyncPtr(self.pos.as_mut_ptr());
        let parallel = self.exec.is_parallel();
        self.exec.for_each(b.len(), |i| {
            // SAFETY: pos[i] a slot of this table; values are `width`-aligned (16-byte
            // aligned array, stride = width); adds from several threads are atomic.
            unsafe {
                let dst = raw.value_ptr(pos.read(i) as usize);
                add_one(dst, b.val(i), kind, parallel);
            }
        });
        Ok(st.new)
    }

    /// Looks up every key of `b`, handing each result to `sink`.
    pub(crate) fn get(&self, b: &Batch<'_>, sink: &impl GetSink) {
        self.check_shape(b, false);
        let vs = self.layout.value_size;
        let done = self.lookup_partitioned(b, true, |order, res, hits| {
            let (res, found, n) = (res.as_ptr(), order.found.as_ptr(), b.len());
            if hits == 0 {
                // Nothing found: every result is `None`, in any order.
                // SAFETY: `i < n`.
                (0..n).for_each(|i| unsafe { sink.put(i, None) });
                return;
            }
            order.merge(b.len(), |i, j| {
                // Each region's results are a stream read a little at a time: fetching its
                // next lines now keeps the thousands of streams from missing one by one.
                // (Values only for keys that were found: a miss's value line is never read.)
                prefetch_read(found.wrapping_add(j + 64));
                // SAFETY: `j + 16 < n`: written by the lookup.
                if j + 16 < n && unsafe { *found.add(j + 16) } != 0 {
                    prefetch_read(res.wrapping_add((j + 16) * vs));
                }
                // SAFETY: `j < n`: result `j` was written by the lookup (`vs` bytes if found).
                unsafe { sink.put(i, (*found.add(j) != 0).then(|| res.add(j * vs))) }
            });
        });
        if done {
            return;
        }
        self.lookup(b, Fetch::OnTagMatch { values: true, shared: false }, |i, slot, raw| {
            // SAFETY: `i < b.len()`, slot (if any) in range.
            unsafe { sink.put(i, slot.map(|s| raw.value_ptr(s) as *const u8)) }
        });
    }

    /// A partitioned lookup of `b` (when worth it and the scratch is free): results go to
    /// the order's `found` flags (and, for `values`, the value bytes `res`) in partition
    /// order, and `merge` hands them out, told how many keys were found. Returns whether it
    /// ran.
    fn lookup_partitioned(&self, b: &Batch<'_>, values: bool, merge: impl FnOnce(&mut Order, &[u8], usize)) -> bool {
        let Some(shift) = self.lookup_shift(b) else { return false };
        // Another thread's lookup holds the scratch: this one runs in batch order.
        let Ok(mut scratch) = self.scratch.try_lock() else { return false };
        let vs = if values { self.layout.value_size } else { 0 };
        // No memory for the scratch: the lookup runs in batch order.
        let Ok(p) = scratch.partition(b, self.hash, &self.layout, shift, false, vs) else { return false };
        if p.order.flags(b.len()).is_err() {
            return false;
        }
        self.partitioned_passes.fetch_add(1, Ordering::Relaxed);
        let hits = self.probe_in_order(&p.batch, values, shift, p.res, &mut p.order.found);
        merge(p.order, p.res, hits);
        true
    }

    /// The probe pass of a partitioned lookup by regions of `1 << shift` slots: a plain loop
    /// behind a [`Sweep`] (the lines it touches are cached about a region ahead). Writes
    /// `found[j]` and, for `values`, the value to `res[j]`; returns how many keys were
    /// found. Measured on 8M `u64` keys, this loop (then with a per-key prefetch) beat the
    /// two-stage pipeline by 1.15–1.25x and the same loop run through the generic pass
    /// (`Fetch::Plain`) by 1.1x.
    ///
    ///
    /// # Panics
    /// If `found` holds fewer than `b.len()` flags, or (for `values`) `res` fewer than
    /// `b.len()` values, or the keys are not of the table's size.
    fn probe_in_order(&self, b: &Batch<'_>, values: bool, shift: u32, res: &mut [u8], found: &mut [u8]) -> usize {
        let raw = self.raw();
        let s = raw.plain();
        let (hs, ks, vs, n) = (self.hash, raw.key_size, raw.value_size, b.len());
        assert!(b.key_size() == ks && found.len() >= n && (!values || res.len() >= n * vs), "results for every key");
        let (res, found) = (res.as_mut_ptr(), found.as_mut_ptr());
        let mut sweep = Sweep::new(&raw, n, shift);
        // Keys found so far: while most keys are found, the sweep fetches key and value
        // lines too; while most are missing, only state lines (a missing key rarely matches
        // a fingerprint, so its other lines are never read).
        let mut hits = 0usize;
        for j in 0..n {
            // SAFETY: `j < n` indexes the batch, whose keys hold `ks` bytes; `found` and (for
            // `values`) `res` hold `n` results (asserted above).
            unsafe {
                let key = b.key(j);
                let h = hs.hash(key, ks);
                let likely_found = hits * 4 >= j;
                sweep.step(&raw, h, likely_found, likely_found && values);
                let slot = find(&s, h, key);
                hits += slot.is_some() as usize;
                *found.add(j) = slot.is_some() as u8;
                if let (Some(t), true) = (slot, values) {
                    copy_small(raw.value_ptr(t), res.add(j * vs), vs);
                }
            }
        }
        hits
    }

    /// Writes whether each key of `b` is present into `out`.
    pub(crate) fn contains(&self, b: &Batch<'_>, out: &mut [bool]) {
        self.check_shape(b, false);
        assert_eq!(out.len(), b.len(), "one result per key");
        let done = self.lookup_partitioned(b, false, |order, _, hits| {
            if hits == 0 {
                out.fill(false);
                return;
            }
            let found = order.found.as_ptr();
            // SAFETY: `j < n`, written by the lookup.
            order.merge(b.len(), |i, j| {
                prefetch_read(found.wrapping_add(j + 64));
                // SAFETY: as above.
                out[i] = unsafe { *found.add(j) } != 0
            });
        });
        if done {
            return;
        }
        let outp = SyncPtr(out.as_mut_ptr());
        // SAFETY: `i < out.len()`, one writer per index.
        self.lookup(b, Fetch::OnTagMatch { values: false, shared: false }, |i, slot, _| unsafe {
            outp.write(i, slot.is_some())
        });
    }

    fn lookup(&self, b: &Batch<'_>, fetch: Fetch, f: impl Fn(usize, Option<usize>, &RawTable) + Sync + Send) {
        let raw = self.raw();
        let hs = self.hash;
        let s = raw.plain();
        // Lookups never race with writers (`&self`), so plain loads serve both engines.
        self.exec.for_chunks(b.len(), |range| {
            staged(&raw, hs, b, range, fetch, |i, h| {
                // SAFETY: `i < b.len()`, key valid for key_size bytes.
                let slot = unsafe { find(&s, h, b.key(i)) };
                f(i, slot, &raw);
            })
        });
    }

    /// Removes every key of `b`; returns how many distinct keys were present.
    pub(crate) fn remove(&mut self, b: &Batch<'_>) -> Result<usize, CpuError> {
        self.check_shape(b, false);
        let removed = self.partitioned(b, false, false, |t, b, _| Ok(t.remove_in_order(b)))?;
        self.ledger.removed(removed);
        self.compact_if_needed();
        Ok(removed)
    }

    fn remove_in_order(&mut self, b: &Batch<'_>) -> usize {
        let raw = self.raw();
        let hs = self.hash;
        let shared = self.exec.is_parallel();
        let fetch = match self.reordered {
            Some(shift) => Fetch::Plain { values: false, shift },
            None => Fetch::OnTagMatch { values: false, shared },
        };
        match self.exec {
            Exec::Serial => {
                let s = raw.plain();
                let mut n = 0;
                staged(&raw, hs, b, 0..b.len(), fetch, |i, h| {
                    // SAFETY: `i < b.len()`, keys valid.
                    let gone = unsafe { remove(&s, h, b.key(i)) };
                    n += gone as usize;
                });
                n
            }
            #[cfg(feature = "rayon")]
            Exec::Rayon => {
                let s = AtomicSlots(raw);
                self.exec.sum_chunks(b.len(), |range| {
                    let mut n = 0;
                    staged(&raw, hs, b, range, fetch, |i, h| {
                        // SAFETY: as above; other threads swap state words meanwhile, so the
                        // search reads them atomically too (`probe::remove`), and the swap is
                        // a CAS, so one remover wins.
                        let gone = unsafe { remove(&s, h, b.key(i)) };
                        n += gone as usize;
                    });
                    n
                })
            }
        }
    }

    /// Whether a serial pass over `n` keys runs partitioned: `Some(shift)` of its regions.
    fn partition_shift(&self, n: usize) -> Option<u32> {
        if self.exec.is_parallel() {
            return None;
        }
        let l = &self.layout;
        partition::plan(l.slots, 4 + l.key_size + l.value_size, n, self.region_bytes)
    }

    /// Whether a serial lookup of `b` runs partitioned: `Some(shift)` of its regions.
    ///
    /// A lookup whose keys are mostly absent reads state words alone (a missing key rarely
    /// matches a fingerprint), so its regions count only those: half a region's bytes of
    /// state words. Measured on 8M absent `u64` keys (16M slots), regions of 128 / 256 /
    /// 512 KiB of state words took 104 / 102 / 108 ms, and regions sized for whole 20-byte
    /// slots 107 ms; with 1 key in 16 / 32 / 64 present, 163 / 138 / 121 ms against 173–186
    /// / 143 / 128–130 ms (1 in 8: 193 ms either way). Which case applies is estimated from
    /// a sample of the batch. (Tables
    /// of large slots stay unpartitioned even then: absent 32-byte keys, 1M of them in a
    /// table of 164-byte slots, took 62 ms partitioned against 41 ms in batch order, as
    /// the copy of their keys costs more than the 8 MB of state words it keeps in cache.)
    fn lookup_shift(&self, b: &Batch<'_>) -> Option<u32> {
        let whole = self.partition_shift(b.len())?;
        if self.mostly_absent(b) {
            partition::plan(self.layout.slots, 4, b.len(), self.region_bytes / 2)
        } else {
            Some(whole)
        }
    }

    /// Whether fewer than a quarter of a sample of `b`'s keys (up to 256, evenly spaced)
    /// are present.
    fn mostly_absent(&self, b: &Batch<'_>) -> bool {
        const SAMPLE: usize = 256;
        let m = b.len().min(SAMPLE);
        if m == 0 {
            return false;
        }
        let step = b.len() / m;
        let raw = self.raw();
        let s = raw.plain();
        let hits: usize = (0..m)
            .map(|k| {
                // SAFETY: `k * step < b.len()`; the batch holds keys of the table's key size.
                unsafe {
                    let key = b.key(k * step);
                    find(&s, self.hash.hash(key, raw.key_size), key).is_some() as usize
                }
            })
            .sum();
        hits * 4 < m
    }

    /// Runs `op` on `b`, or, when worth it, on `b` in partition order (see
    /// [`crate::partition`]); `self.reordered` says which meanwhile. Reordered, `op` also
    /// gets the scratch, to bring per-position results back with [`Scratch::merge`]. `values`
    /// says whether `op` reads the batch's values, `flags` whether it needs one flag byte per
    /// record in the scratch's `found`. The partition keeps the order of copies of one key,
    /// so batch-order rules hold on either path.
    fn partitioned<R>(
        &mut self,
        b: &Batch<'_>,
        values: bool,
        flags: bool,
        op: impl FnOnce(&mut Self, &Batch<'_>, Option<&mut Order>) -> Result<R, CpuError>,
    ) -> Result<R, CpuError> {
        let Some(shift) = self.partition_shift(b.len()) else { return op(self, b, None) };
        let mut scratch = std::mem::take(self.scratch.get_mut().unwrap_or_else(|e| e.into_inner()));
        let p = scratch.partition(b, self.hash, &self.layout, shift, values, 0).and_then(|p| {
            if flags {
                p.order.flags(b.len())?;
            }
            Ok(p)
        });
        let r = match p {
            Ok(p) => {
                self.partitioned_passes.fetch_add(1, Ordering::Relaxed);
                self.reordered = Some(shift);
                let r = op(self, &p.batch, Some(p.order));
                self.reordered = None;
                r
            }
            // No memory for the scratch: the batch runs in its own order (nothing has
            // changed yet).
            Err(_) => op(self, b, None),
        };
        *self.scratch.get_mut().unwrap_or_else(|e| e.into_inner()) = scratch;
        r
    }
}

/// Adds the counter at `src` to the one at `dst`.
///
/// # Safety
/// `dst` aligned and valid for the counter width, `src` valid for reads of it.
#[inline(always)]
unsafe fn add_one(dst: *mut u8, src: *const u8, kind: CounterKind, atomic: bool) {
    // SAFETY: by contract.
    unsafe {
        match kind {
            CounterKind::U32 => {
                let v = std::ptr::read_unaligned(src as *const u32);
                let d = AtomicU32::from_ptr(dst as *mut u32);
                if atomic {
                    d.fetch_add(v, Ordering::Relaxed);
                } else {
                    *d.as_ptr() = (*d.as_ptr()).wrapping_add(v);
                }
            }
            CounterKind::U64 => {
                let v = std::ptr::read_unaligned(src as *const u64);
                let d = AtomicU64::from_ptr(dst as *mut u64);
                if atomic {
                    d.fetch_add(v, Ordering::Relaxed);
                } else {
                    *d.as_ptr() = (*d.as_ptr()).wrapping_add(v);
                }
            }
        }
    }
}
