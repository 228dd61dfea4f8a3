//! The operations that write values: `insert` (the last copy of a key wins), `insert_new`
//! (the first new copy wins) and `add` (every copy adds). Each claims first
//! ([`crate::claim`]); values that the claims did not settle are written after, serially in
//! batch order, or in parallel by the copy each slot elects. A serial insert or add in
//! batch order into a table without tombstones runs as one pass instead
//! ([`crate::direct`]).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use flash_map_core::abi::{ClaimMode, KIND_EXISTING, KIND_NEW_FROM_EMPTY, KIND_NEW_FROM_TOMBSTONE};
use flash_map_core::{AddCounters, Batch, CounterKind, Insert, InsertNew};

use crate::mem::{copy_value, SyncPtr};
use crate::ops::{Mutation, Reordered};
use crate::{CpuError, CpuTable, Exec};

/// Which copy of a duplicated key writes its value in a parallel pass.
#[cfg(feature = "rayon")]
#[derive(Clone, Copy)]
enum Elect {
    /// The last copy (upsert).
    Last,
    /// The first copy of a key claimed in this batch (insert_new).
    FirstNew,
}

impl CpuTable {
    fn insert_in_order(&mut self, b: &Batch<'_>, shift: Option<u32>) -> Result<usize, CpuError> {
        if shift.is_none() && self.direct_insert_applies(b.len()) {
            return self.insert_direct(b);
        }
        // Claimers write their value at once: when no key met an existing slot (no
        // duplicates, no updates), that is already the final state.
        let st = self.claim_pass(b, ClaimMode::WriteValue, shift)?;
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

    fn insert_new_in_order(&mut self, b: &Batch<'_>, out: &mut [bool], shift: Option<u32>) -> Result<usize, CpuError> {
        let st = self.claim_pass(b, ClaimMode::MarkAux, shift)?;
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

    fn add_in_order(&mut self, b: &Batch<'_>, kind: CounterKind, shift: Option<u32>) -> Result<usize, CpuError> {
        assert_eq!(self.layout.value_size, kind.width(), "counter width matches the value size");
        if shift.is_none() && self.direct_insert_applies(b.len()) {
            return self.add_direct(b, kind);
        }
        let st = self.claim_pass(b, ClaimMode::ZeroValue, shift)?;
        self.settle(b.len(), st)?;
        let raw = self.raw();
        let pos = SyncPtr(self.pos.as_mut_ptr());
        let parallel = self.exec.is_parallel();
        self.exec.for_each(b.len(), |i| {
            // SAFETY: pos[i] a slot of this table; values are `width`-aligned (a 16-byte
            // aligned array, stride = width, or records whose value offset and size are
            // multiples of it: `table::records`); adds from several threads are atomic.
            unsafe {
                let dst = raw.value_ptr(pos.read(i) as usize);
                add_one(dst, b.val(i), kind, parallel);
            }
        });
        Ok(st.new)
    }
}

/// Adds the counter at `src` to the one at `dst` (wrapping), atomically for `atomic`.
///
/// # Safety
/// `dst` aligned and valid for the counter width, `src` valid for reads of it; for
/// `!atomic`, no other thread accesses `dst` meanwhile.
#[inline(always)]
pub(crate) unsafe fn add_one(dst: *mut u8, src: *const u8, kind: CounterKind, atomic: bool) {
    // SAFETY: the caller gives `dst` aligned and valid for the width, accessed by no other
    // thread unless `atomic` (then every access to it is atomic), and `src` valid for reads
    // of it (`# Safety`).
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

/// Subtracts the counter at `src` from the one at `dst` (wrapping): undoes [`add_one`].
///
/// # Safety
/// `dst` aligned and valid for the counter width, `src` valid for reads of it; no other
/// thread accesses `dst` meanwhile.
#[inline(always)]
pub(crate) unsafe fn sub_one(dst: *mut u8, src: *const u8, kind: CounterKind) {
    // SAFETY: the caller gives `dst` aligned, valid for the width and accessed by no other
    // thread (so plain reads and writes), and `src` valid for reads of it (`# Safety`).
    unsafe {
        match kind {
            CounterKind::U32 => {
                let d = dst as *mut u32;
                *d = (*d).wrapping_sub(std::ptr::read_unaligned(src as *const u32));
            }
            CounterKind::U64 => {
                let d = dst as *mut u64;
                *d = (*d).wrapping_sub(std::ptr::read_unaligned(src as *const u64));
            }
        }
    }
}

impl Insert for CpuTable {
    /// Upserts every pair of `b`; returns how many keys were new. Last duplicate wins.
    /// On [`CpuError::Refused`] the table is unchanged.
    fn insert(&mut self, b: &Batch<'_>) -> Result<usize, CpuError> {
        self.check_shape(b, true);
        let new = self.partitioned(b, Mutation::Claims, false, |t, b, r| t.insert_in_order(b, r.map(|r| r.shift)))?;
        self.compact_if_needed();
        Ok(new)
    }
}

impl InsertNew for CpuTable {
    /// Inserts the pairs whose keys are absent; the first copy of a new key wins.
    /// `out[i]` says whether pair `i` was inserted. Atomic: on an error the table is unchanged.
    fn insert_new(&mut self, b: &Batch<'_>, out: &mut [bool]) -> Result<usize, CpuError> {
        self.check_shape(b, true);
        assert_eq!(out.len(), b.len(), "one result per pair");
        let new = self.partitioned(b, Mutation::Claims, true, |t, b, r| {
            let Some(Reordered { shift, order: sc }) = r else { return t.insert_new_in_order(b, out, None) };
            // SAFETY: the flags hold zeros and ones only, valid `bool`s.
            let won = unsafe { &mut *(&mut sc.found[..b.len()] as *mut [u8] as *mut [bool]) };
            let new = t.insert_new_in_order(b, won, Some(shift))?;
            let won = sc.found.as_ptr();
            // SAFETY: `j < n`: written by `insert_new_in_order`.
            sc.merge(b.len(), |i, j| out[i] = unsafe { *won.add(j) } != 0);
            Ok(new)
        })?;
        self.compact_if_needed();
        Ok(new)
    }
}

impl AddCounters for CpuTable {
    /// Adds each pair's value to the stored counter (absent keys start at zero); returns
    /// how many keys were new. Atomic: on an error the table is unchanged.
    fn add(&mut self, b: &Batch<'_>, kind: CounterKind) -> Result<usize, CpuError> {
        self.check_shape(b, true);
        let new =
            self.partitioned(b, Mutation::Claims, false, |t, b, r| t.add_in_order(b, kind, r.map(|r| r.shift)))?;
        self.compact_if_needed();
        Ok(new)
    }
}
