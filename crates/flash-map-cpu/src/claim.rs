//! Passes 1 and 2 of every mutating operation: each key finds its slot or claims a free one
//! (`pos[i]` records the slot, `kind[i]` what the claim did), then the ledger accepts the
//! claims or they are undone and the call fails with the table as it was.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use flash_map_core::abi::{
    ClaimMode, KIND_COLLISIONS, KIND_EXISTING, KIND_NEW_FROM_EMPTY, KIND_NEW_FROM_TOMBSTONE, KIND_NO_ROOM,
};
use flash_map_core::probe::{claim, ByteSlots, Claim};
use flash_map_core::slot::TOMBSTONE;
use flash_map_core::{Batch, ClaimCounts};

use crate::buf::AlignedBuf;
use crate::mem::{copy_value, SyncPtr};
use crate::pipeline::{fetch_for, per_plan, plan_of, Ahead, Fetch, Sweep};
#[cfg(feature = "rayon")]
use crate::slots::AtomicSlots;
use crate::slots::{per_hash, per_key_size, with_key_size, with_strategy, RawTable};
use crate::{CpuError, CpuTable, Exec};

/// The most new claims a batch may make before it has certainly failed (`usize::MAX`:
/// no limit, the whole batch fits).
#[derive(Clone, Copy)]
pub(crate) struct Budget(usize);

impl Budget {
    /// Whether `new` claims are more than the batch may make.
    #[inline(always)]
    fn exceeded(self, new: usize) -> bool {
        new > self.0
    }

    /// Whether the batch may fail for want of room.
    #[inline(always)]
    #[cfg(feature = "rayon")]
    fn is_limited(self) -> bool {
        self.0 != usize::MAX
    }
}

/// Writes what each key's claim did at its batch position, and prepares newly claimed slots.
struct Recorder {
    pos: SyncPtr<u32>,
    kind: SyncPtr<u8>,
    /// The per-slot words to mark claimed slots in (parallel `insert_new`).
    aux: Option<SyncPtr<u32>>,
    raw: RawTable,
    on_new: ClaimMode,
    /// In a dense table, the next value index no thread has taken yet.
    next: AtomicUsize,
    /// Value indices a thread of a parallel pass takes at a time ([`ValueCursor`]).
    #[cfg(feature = "rayon")]
    block: usize,
}

/// Indices a thread of a parallel claim pass takes from the shared counter at a time
/// ([`ValueCursor`]): one atomic add per this many new keys rather than per key, whose
/// line would cross between the cores at every claim.
pub(crate) const VALUE_BLOCK: usize = 32;

/// Where one thread's new claims in a dense table take their value indices: from a block
/// taken from the shared counter (`next`), `block` indices at a time on rayon's threads
/// ([`VALUE_BLOCK`] unless [`CpuTable::make_value_room`] says otherwise), or all of them on
/// one thread. The unused end of a thread's last block is left as holes, which
/// [`CpuTable::compact_values`] closes when a batch needs them; the value array's slack
/// holds them ([`crate::table::value_capacity`]).
pub(crate) struct ValueCursor<'a> {
    next: &'a AtomicUsize,
    block: usize,
    at: usize,
    end: usize,
}

impl<'a> ValueCursor<'a> {
    /// A cursor of one thread, which takes every index from `next` without atomics.
    pub(crate) fn serial(next: &'a AtomicUsize) -> Self {
        let at = next.load(Ordering::Relaxed);
        ValueCursor { next, block: 0, at, end: usize::MAX }
    }

    /// A cursor of one of several threads, which takes blocks of `block` indices from
    /// `next`.
    #[cfg(feature = "rayon")]
    pub(crate) fn shared(next: &'a AtomicUsize, block: usize) -> Self {
        ValueCursor { next, block, at: 0, end: 0 }
    }

    /// The next value index.
    #[inline(always)]
    pub(crate) fn take(&mut self) -> usize {
        if self.at == self.end {
            self.at = self.next.fetch_add(self.block, Ordering::Relaxed);
            self.end = self.at + self.block;
        }
        self.at += 1;
        self.at - 1
    }

    /// Ends a serial cursor: the counter goes past the indices it took.
    pub(crate) fn finish(self) {
        if self.end == usize::MAX {
            self.next.store(self.at, Ordering::Relaxed);
        }
    }
}

impl Recorder {
    /// Records claim `c` of key `i` of `b`, preparing its slot if it is new.
    ///
    /// # Safety
    /// `i < b.len()` (the scratch arrays hold `b.len()` entries), each `i` recorded by one
    /// thread once; a new slot is this thread's to write.
    #[inline(always)]
    unsafe fn record(&self, i: usize, c: Claim, b: &Batch<'_>, values: &mut ValueCursor<'_>) {
        // SAFETY: `i < b.len()`, the length of `pos` and `kind`, and this call is the only
        // one for `i`, so their writes at `i` are in bounds and race with nothing; a new
        // slot came from this thread's claim, so its value (and aux word) is this thread's
        // to write, and `copy_value` reads record `i` of the batch, which exists.
        unsafe {
            match c {
                Claim::Existing(slot) => {
                    self.pos.write(i, slot as u32);
                    self.kind.write(i, KIND_EXISTING);
                }
                Claim::New { slot, prev } => {
                    self.pos.write(i, slot as u32);
                    let k = if prev == TOMBSTONE { KIND_NEW_FROM_TOMBSTONE } else { KIND_NEW_FROM_EMPTY };
                    self.kind.write(i, k);
                    let v = if self.raw.is_dense() { values.take() } else { 0 };
                    if !self.raw.assign_value(slot, v) {
                        // Past the dense value array: the batch adds more entries than the
                        // table may hold, and its claims are refused (`make_value_room`).
                        return;
                    }
                    match self.on_new {
                        ClaimMode::Plain => {}
                        ClaimMode::WriteValue => copy_value(&self.raw, b, i, slot),
                        ClaimMode::ZeroValue => std::ptr::write_bytes(self.raw.value_ptr(slot), 0, self.raw.value_size),
                        ClaimMode::MarkAux => {
                            if let Some(aux) = self.aux {
                                AtomicU32::from_ptr(aux.0.add(slot)).store(u32::MAX, Ordering::Relaxed)
                            }
                        }
                    }
                }
                Claim::NoRoom => self.kind.write(i, KIND_NO_ROOM),
                Claim::Collisions => self.kind.write(i, KIND_COLLISIONS),
            }
        }
    }

    /// Records key `i` as skipped (the batch has failed).
    ///
    /// # Safety
    /// As [`record`](Self::record).
    #[inline(always)]
    unsafe fn skip(&self, i: usize) {
        // SAFETY: `i < b.len()`, the length of `kind`, and `i` is recorded by this call alone
        // (`# Safety`, as `record`'s), so the write is in bounds and races with nothing.
        unsafe { self.kind.write(i, KIND_NO_ROOM) }
    }
}

/// The claims of a batch on one thread, key by key: stops claiming (and records the rest
/// as skipped) once the batch has certainly failed.
struct SerialClaims<'a, 'b> {
    s: ByteSlots,
    values: ValueCursor<'a>,
    budget: Budget,
    rec: &'a Recorder,
    b: &'a Batch<'b>,
    new: usize,
    failed: bool,
}

impl SerialClaims<'_, '_> {
    /// Claims key `i` of hash `h`.
    ///
    /// # Safety
    /// `i < b.len()`, each `i` once; `s` is written by this thread alone.
    #[inline(always)]
    unsafe fn claim(&mut self, i: usize, h: u64) {
        if self.failed || self.budget.exceeded(self.new) {
            // SAFETY: `i < b.len()` and claimed once (this method's own precondition), as
            // `skip` requires.
            unsafe { self.rec.skip(i) };
            return;
        }
        // SAFETY: `i < b.len()`, so `b.key(i)` points at one of the batch's keys, which
        // hold the table's key size (the passes check the batch's shape first).
        let c = unsafe { claim(&self.s, h, self.b.key(i)) };
        self.new += matches!(c, Claim::New { .. }) as usize;
        self.failed = c == Claim::Collisions;
        // SAFETY: `i < b.len()`, recorded once, and a new slot from the claim above is this
        // (the only) thread's to write, as `record` requires.
        unsafe { self.rec.record(i, c, self.b, &mut self.values) };
    }
}

/// What the claims of a pass did, counted from their `kind` codes: one count per code, each
/// a loop the compiler vectorizes (a `match` per byte cost several instructions per key).
fn count_kinds(kind: &[u8]) -> ClaimCounts {
    // Byte counters over runs of at most 255 codes, which cannot overflow and vectorize.
    let count = |code: u8| -> usize {
        kind.chunks(255).map(|c| c.iter().fold(0u8, |n, &k| n + (k == code) as u8) as usize).sum()
    };
    let (empty, tomb) = (count(KIND_NEW_FROM_EMPTY), count(KIND_NEW_FROM_TOMBSTONE));
    let (no_room, collisions) = (count(KIND_NO_ROOM), count(KIND_COLLISIONS));
    ClaimCounts {
        new: empty + tomb,
        from_tombstone: tomb,
        no_room,
        collisions,
        existing: kind.len() - empty - tomb - no_room - collisions,
    }
}

impl CpuTable {
    #[inline(always)]
    pub(crate) fn aux_at(&self, slot: usize) -> &AtomicU32 {
        // SAFETY: `aux` holds `slots` aligned u32 words when a parallel pass runs (see
        // `ensure_aux`); all access during a pass is atomic.
        unsafe { AtomicU32::from_ptr((self.aux.as_ptr() as *mut u32).add(slot)) }
    }

    pub(crate) fn ensure_aux(&mut self) -> Result<(), CpuError> {
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

    /// Pass 1: claims a slot for every key of `b` (`shift`: the batch is in partition order
    /// by regions of `1 << shift` slots) and counts what the claims did.
    ///
    /// A batch that might not fit is bounded ([`Budget`]): once its new claims pass the
    /// free capacity it has failed for certain, and the rest of the batch is skipped instead
    /// of filling the table and scanning it whole. So is a batch in which a key gave up on
    /// collisions: it fails whatever the rest does.
    pub(crate) fn claim_pass(
        &mut self,
        b: &Batch<'_>,
        on_new: ClaimMode,
        shift: Option<u32>,
    ) -> Result<ClaimCounts, CpuError> {
        self.ensure_scratch(b.len())?;
        if self.exec.is_parallel() && matches!(on_new, ClaimMode::MarkAux) {
            self.ensure_aux()?;
        }
        let block = self.make_value_room(b.len())?;
        let budget = Budget(self.ledger.claim_budget(&self.layout, b.len()));
        let rec = Recorder {
            pos: SyncPtr(self.pos.as_mut_ptr()),
            kind: SyncPtr(self.kind.as_mut_ptr()),
            aux: (self.exec.is_parallel() && matches!(on_new, ClaimMode::MarkAux))
                .then(|| SyncPtr(self.aux.as_mut_ptr() as *mut u32)),
            raw: self.raw(),
            on_new,
            next: AtomicUsize::new(self.vused),
            #[cfg(feature = "rayon")]
            block,
        };
        #[cfg(not(feature = "rayon"))]
        let _ = block;
        match (self.exec, shift) {
            (Exec::Serial, Some(shift)) => self.claim_in_regions(b, shift, budget, &rec),
            _ => self.claim_in_order(b, budget, &rec),
        }
        // Past the value array only if the claims are refused, which gives back `vsaved`.
        self.vused = rec.next.into_inner();
        // Counted afterwards from `kind`: one cheap sequential scan, no shared counters.
        Ok(count_kinds(&self.kind[..b.len()]))
    }

    /// The claims of a batch in partition order, on one thread: a one-stage loop behind a
    /// sweep, as in the partitioned lookups (on large tables faster than both the per-key
    /// prefetch pipeline and this same loop run through `staged` with `Fetch::Plain`;
    /// BENCHMARKS.md has the figures).
    fn claim_in_regions(&self, b: &Batch<'_>, shift: u32, budget: Budget, rec: &Recorder) {
        let raw = self.raw();
        let s = raw.plain();
        let (hs, ks, n) = (self.hash, raw.key_size, b.len());
        let mut sweep = Sweep::new(&raw, n, shift);
        let values = ValueCursor::serial(&rec.next);
        let mut one = SerialClaims { s, values, budget, rec, b, new: 0, failed: false };
        for i in 0..n {
            // SAFETY: `i < n` indexes the batch (keys of `ks` bytes); one thread.
            let h = unsafe { hs.hash(b.key(i), ks) };
            sweep.step(&raw, h, true, true);
            // SAFETY: `i < n`, visited once, by this thread alone.
            unsafe { one.claim(i, h) };
        }
        one.values.finish();
    }

    /// The claims of a batch in its own order, on one thread or on rayon's, through the
    /// prefetch pipeline, compiled for the common key sizes (a constant size makes the hash
    /// and the key comparisons a few fixed loads) and for the fetch plans of a claim:
    /// nothing (a cached table), the home key line, and the value's first line unless it
    /// shares the key's record.
    fn claim_in_order(&self, b: &Batch<'_>, budget: Budget, rec: &Recorder) {
        let fetch = self.claim_fetch();
        per_hash!(self.hash, ID => self.claim_in_order_h::<ID>(b, budget, rec, fetch))
    }

    /// [`claim_in_order`](Self::claim_in_order) hashing with the Identity strategy when
    /// `ID`: a function of its own, so that an unoptimized build's frame holds the stack
    /// slots of half the copies of the pass (see `lookup_h`).
    fn claim_in_order_h<const ID: bool>(&self, b: &Batch<'_>, budget: Budget, rec: &Recorder, fetch: Fetch) {
        per_key_size!(self.layout.key_size, KS => {
            per_plan!(plan_of(&self.raw(), fetch), P => match self.exec {
                Exec::Serial => self.claim_serial_ks::<ID, KS, P>(b, budget, rec, fetch),
                #[cfg(feature = "rayon")]
                Exec::Rayon => self.claim_parallel_ks::<ID, KS, P>(b, budget, rec, fetch),
            }; 0, ON | KEYS, ON | KEYS | VALUES)
        })
    }

    /// [`claim_in_order`](Self::claim_in_order) on one thread, for keys of `KS` bytes (0: the
    /// table's size), fetching per `fetch`, whose plan is `P`.
    #[inline(always)]
    fn claim_serial_ks<const ID: bool, const KS: usize, const P: u8>(
        &self,
        b: &Batch<'_>,
        budget: Budget,
        rec: &Recorder,
        fetch: Fetch,
    ) {
        let raw = with_key_size::<KS>(self.raw());
        let values = ValueCursor::serial(&rec.next);
        let mut one = SerialClaims { s: raw.plain(), values, budget, rec, b, new: 0, failed: false };
        // SAFETY: `raw` is this table's, written by this thread alone; the range is the
        // batch's; its keys have the table's key size (checked by the operations).
        let mut ahead = unsafe { Ahead::<KS, P>::new(&raw, with_strategy::<ID>(self.hash), b, 0..b.len(), fetch) };
        for i in 0..b.len() {
            // SAFETY: `i` runs through the range in order, visited once, by this thread
            // alone.
            unsafe { one.claim(i, ahead.next(i)) };
        }
        one.values.finish();
    }

    /// [`claim_in_order`](Self::claim_in_order) on rayon's threads, with atomic claims, for
    /// keys of `KS` bytes (0: the table's size), fetching per `fetch`, whose plan is `P`;
    /// the new claims are counted against the budget only when it is limited.
    #[cfg(feature = "rayon")]
    #[inline(always)]
    fn claim_parallel_ks<const ID: bool, const KS: usize, const P: u8>(
        &self,
        b: &Batch<'_>,
        budget: Budget,
        rec: &Recorder,
        fetch: Fetch,
    ) {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        let (raw, hs) = (self.raw(), with_strategy::<ID>(self.hash));
        let (new, abort) = (AtomicUsize::new(0), AtomicBool::new(false));
        self.exec.for_chunks(b.len(), |range| {
            // Locals, not captures, so that the loop keeps them in registers.
            let (raw, b) = (with_key_size::<KS>(raw), *b);
            let s = AtomicSlots(raw);
            // SAFETY: `raw` is this table's; other threads change its state words only by
            // atomic claims, and the prefetch reads no table memory; `range` is within the
            // batch, whose keys have the table's key size.
            let mut ahead = unsafe { Ahead::<KS, P>::new(&raw, hs, &b, range.clone(), fetch) };
            let mut values = ValueCursor::shared(&rec.next, rec.block);
            for i in range {
                // SAFETY: `i` runs through the range in order.
                let h = unsafe { ahead.next(i) };
                if abort.load(Ordering::Relaxed) {
                    // SAFETY: `i < b.len()`, visited by one thread once.
                    unsafe { rec.skip(i) };
                    continue;
                }
                // SAFETY: `i < b.len()`; key valid; claims are atomic.
                let c = unsafe { claim(&s, h, b.key(i)) };
                let counted = |new: &AtomicUsize| new.fetch_add(1, Ordering::Relaxed) + 1;
                if c == Claim::Collisions
                    || budget.is_limited() && matches!(c, Claim::New { .. }) && budget.exceeded(counted(&new))
                {
                    abort.store(true, Ordering::Relaxed);
                }
                // SAFETY: `i < b.len()`, visited by one thread once.
                unsafe { rec.record(i, c, &b, &mut values) };
            }
        });
    }

    /// What a claim pass in batch order fetches ahead: the home slot's key line and its
    /// value's first line, which a new claim writes (the whole value measured slower); in a
    /// table small enough to stay cached only while it is empty: the first batch fills
    /// memory that the system has just zeroed and left in no cache.
    pub(crate) fn claim_fetch(&self) -> Fetch {
        let home = Fetch::Home { keys: true, values: 1 };
        if self.ledger.is_empty() {
            home
        } else {
            fetch_for(self.table_bytes(), home)
        }
    }

    /// Pass 2: the ledger accepts the claims, or they are undone and the call fails with
    /// the table as it was.
    pub(crate) fn settle(&mut self, n: usize, c: ClaimCounts) -> Result<(), CpuError> {
        self.ledger.settle(&self.layout, c).map_err(|r| {
            self.undo_claims(n);
            CpuError::from(r)
        })
    }

    /// Gives the slots claimed new by the last claim pass of `n` keys their former state
    /// (and clears their scratch words).
    pub(crate) fn undo_claims(&mut self, n: usize) {
        self.vused = self.vsaved;
        let states = self.states.as_mut_ptr();
        let aux_used = self.aux.len() == self.layout.slots * 4;
        for i in 0..n {
            let prev = match self.kind[i] {
                KIND_NEW_FROM_EMPTY => flash_map_core::slot::EMPTY,
                KIND_NEW_FROM_TOMBSTONE => TOMBSTONE,
                _ => continue,
            };
            let slot = self.pos[i] as usize;
            // SAFETY: `slot` came from a claim on this table.
            unsafe { *states.add(slot) = flash_map_core::slot::state_byte(prev) };
            if aux_used {
                self.aux_at(slot).store(0, Ordering::Relaxed);
            }
        }
    }
}
