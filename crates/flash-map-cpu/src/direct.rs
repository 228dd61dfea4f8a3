//! The serial insert (and add) in batch order without per-position records, for tables
//! without tombstones: the common case of a table being filled, updated or counted into.
//!
//! The general claim pass ([`crate::claim`]) records every key's slot and what its claim did,
//! so that a batch that fails can be undone and duplicates resolved afterwards. This pass
//! writes each new key's value at once and remembers only the keys that met an existing
//! slot. In a table of records (a slot's key and value side by side) that holds entries,
//! their values are written at once too, in batch order (so the last copy wins), while the
//! value each overwrote goes to a log (`CpuTable::overwritten`) that a failed batch puts
//! back, latest first. Elsewhere, and once the log holds `TUNING.update_log_bytes`, their
//! values are written after the batch has succeeded, in batch order, after all those
//! written at once. Like the general pass, it stops
//! at the first key that gives up on collisions, and once the new keys are more than the
//! free capacity (the batch has then failed for certain).
//!
//! The serial add (`add`, counters) runs through the same pass: a new key's counter starts
//! at its value, and a key that meets an existing slot adds its value there at once, in
//! batch order; a failed batch subtracts what it added (wrapping arithmetic, so exactly),
//! with no log.
//!
//! A failed batch is undone without records: in a table without tombstones, linear probing
//! makes the claims of keys `0..f` undoable in reverse order. When key `i` is undone, every
//! later claim already is, so the table is as key `i`'s claim left it: the key lies in the
//! first empty slot of its probe sequence at that time, a lookup finds it there, and marking
//! that slot empty again restores the table as it was before the claim.

use flash_map_core::probe::{claim_without_tombstones, find, Claim};
use flash_map_core::slot::EMPTY;
use flash_map_core::{Batch, ClaimCounts, CounterKind};

use crate::mem::{copy_small, copy_value};
use crate::pipeline::{per_plan, plan_of, prefetch_lines, Ahead, Fetch};
use crate::slots::{per_hash, per_key_size, with_key_size, with_sizes, with_strategy};
use crate::write::{add_one, sub_one};
use crate::{CpuError, CpuTable, Exec};

/// How many entries of the list of updates ahead the values written after the batch are
/// fetched: their slots lie anywhere in the table.
const AHEAD: usize = 16;

/// Why a direct pass stopped before the batch's end.
#[derive(Clone, Copy)]
enum Stop {
    /// The key gave up on collisions.
    Collisions,
    /// The key found no free slot (the free capacity ends before the slots do, so the
    /// budget stops a batch first; kept exact anyway).
    NoRoom,
    /// The new keys, up to this one, are more than the free capacity.
    Budget,
    /// No memory for the list of updates.
    Alloc(usize),
}

impl CpuTable {
    /// Whether [`insert_direct`](Self::insert_direct) (and [`add_direct`](Self::add_direct))
    /// may run a batch of `n` pairs: serial, no tombstones, and batch positions that fit the
    /// list of updates.
    pub(crate) fn direct_insert_applies(&self, n: usize) -> bool {
        matches!(self.exec, Exec::Serial) && self.ledger.tombstones() == 0 && u32::try_from(n).is_ok()
    }

    /// Upserts batch `b` in its own order (see the module's documentation); returns how many
    /// keys were new. On an error the table is as it was.
    ///
    /// # Panics
    /// If the direct insert does not [apply](Self::direct_insert_applies) to the table and
    /// `b`.
    pub(crate) fn insert_direct(&mut self, b: &Batch<'_>) -> Result<usize, CpuError> {
        assert!(self.direct_insert_applies(b.len()), "a direct insert where it does not apply");
        let fetch = self.claim_fetch();
        per_hash!(self.hash, ID => per_key_size!(self.layout.key_size, KS => self.insert_direct_k::<ID, KS>(b, fetch, None)))
    }

    /// Adds the counters of batch `b` (of `kind`, the table's value size) in its own order
    /// (see the module's documentation); returns how many keys were new. On an error the
    /// table is as it was.
    ///
    /// # Panics
    /// If the direct pass does not [apply](Self::direct_insert_applies) to the table and
    /// `b`.
    pub(crate) fn add_direct(&mut self, b: &Batch<'_>, kind: CounterKind) -> Result<usize, CpuError> {
        assert!(self.direct_insert_applies(b.len()), "a direct add where it does not apply");
        let fetch = self.claim_fetch();
        per_hash!(self.hash, ID => per_key_size!(self.layout.key_size, KS => self.insert_direct_k::<ID, KS>(b, fetch, Some(kind))))
    }

    /// [`insert_direct`](Self::insert_direct) (or, for `add`, [`add_direct`](Self::add_direct))
    /// for keys of `KS` bytes, hashing with the Identity strategy when `ID`. A function of
    /// its own, not inlined by force: every arm of these matches is a copy of the pass, and
    /// an unoptimized build gives each its own stack slots in the frame of the function that
    /// holds the match (all of them at once overflowed a 2 MiB thread stack).
    fn insert_direct_k<const ID: bool, const KS: usize>(
        &mut self,
        b: &Batch<'_>,
        fetch: Fetch,
        add: Option<CounterKind>,
    ) -> Result<usize, CpuError> {
        per_key_size!(@arms self.layout.value_size, VS => {
            // The plans of a claim: nothing (a cached table), or the home key line, and the
            // value's first line unless it shares the key's record.
            per_plan!(plan_of(&self.raw(), fetch), P => self.insert_direct_kv::<ID, KS, VS, P>(b, fetch, add); 0, ON | KEYS, ON | KEYS | VALUES)
        }; 4, 8, 16)
    }

    /// [`insert_direct_k`](Self::insert_direct_k) for values of `VS` bytes (0: the table's
    /// size), fetching per `fetch`, whose plan is `P`; adding counters of `add`'s kind
    /// instead of writing values when it is given.
    #[inline(always)]
    fn insert_direct_kv<const ID: bool, const KS: usize, const VS: usize, const P: u8>(
        &mut self,
        b: &Batch<'_>,
        fetch: Fetch,
        add: Option<CounterKind>,
    ) -> Result<usize, CpuError> {
        let n = b.len();
        self.make_value_room(n)?;
        // A dense table's next value index (see `RawTable::assign_value`).
        let mut next_value = self.vused;
        let raw = with_sizes::<KS, VS>(self.raw());
        let s = raw.plain();
        // (batch position, slot) of each key that met an existing slot, in batch order.
        let mut later = std::mem::take(&mut self.later);
        later.clear();
        // The values those keys' writes overwrote, for as many of them as the log holds: room
        // for every key's, up to the limit, reserved once (without memory for it, every such
        // value waits for the batch's success). Only where key and value share a record,
        // whose line the claim has just read (a value of its own array is a line the claim did
        // not touch, and logging it cost more than writing it later), and where the table
        // holds entries (in an empty one, only the batch's own duplicates meet a key). An add
        // needs none: what it added is subtracted again.
        let vs = raw.value_size;
        let mut log = std::mem::take(&mut self.overwritten);
        log.clear();
        let limit = if raw.record != 0 && !self.ledger.is_empty() && add.is_none() { self.update_log_bytes } else { 0 };
        let want = n.saturating_mul(vs).min(limit);
        if log.capacity() < want {
            let _ = log.try_reserve_exact(want);
        }
        let room_for = log.capacity().min(limit);
        let (log_at, log_room) = (log.as_mut_ptr(), room_for.checked_div(vs).unwrap_or(n));
        // Keys written at once so far: the first `logged` of `later`.
        let mut logged = 0usize;
        // The new keys the batch may still claim before it has certainly failed (one counter
        // for both: fewer registers in the loop).
        let budget = self.ledger.claim_budget(&self.layout, n);
        let mut room = budget;
        let mut stop = None;
        // SAFETY: `raw` is this table's, written by this thread alone (serial, `&mut self`);
        // the range is the batch's, whose keys have the table's key size (checked by the
        // operations).
        let mut ahead = unsafe { Ahead::<KS, P>::new(&raw, with_strategy::<ID>(self.hash), b, 0..n, fetch) };
        // The batch runs in runs of `room` keys, which cannot hold the key past the budget
        // (each new key takes one): the loop counts no budget per key. With no room left, a
        // run of one key tells whether the batch has failed.
        let mut start = 0;
        while start < n && stop.is_none() {
            let end = n.min(start.saturating_add(room.max(1)));
            let met = later.len();
            for i in start..end {
                // SAFETY: `i` runs through the range in order (the runs follow each other).
                let h = unsafe { ahead.next(i) };
                // SAFETY: `i < n`; the key holds the table's key size; one thread writes; the
                // table holds no tombstones (`direct_insert_applies`), and a claim makes none.
                match unsafe { claim_without_tombstones(&s, h, b.key(i)) } {
                    Claim::New { slot, .. } => {
                        // SAFETY: `slot <= mask`, claimed new by this thread alone. Past a
                        // dense value array the batch adds more entries than the table may
                        // hold: this is then the key past the budget, and the batch is
                        // refused below.
                        if unsafe { raw.assign_value(slot, next_value) } {
                            // SAFETY: `i < n`, `slot <= mask` (with its value index, if
                            // dense), written by this thread alone.
                            unsafe { copy_value(&raw, b, i, slot) };
                        }
                        next_value += raw.is_dense() as usize;
                    }
                    Claim::Existing(slot) => {
                        // At most one reservation per batch: room for every key left.
                        if later.len() == later.capacity() && later.try_reserve(n - i).is_err() {
                            stop = Some((i, Stop::Alloc((n - i) * std::mem::size_of::<(u32, u32)>())));
                            break;
                        }
                        // `n` fits a `u32` (`direct_insert_applies`), and so do slot numbers
                        // (`MAX_SLOTS`).
                        later.push((i as u32, slot as u32));
                        if let Some(kind) = add {
                            // SAFETY: `slot <= mask` holds a counter of `kind` (the table's
                            // value size, checked by `add`), aligned to its width (as in
                            // `add_in_order`); `i < n`; one thread writes.
                            unsafe { add_one(raw.value_ptr(slot), b.val(i), kind, false) };
                        } else if logged < log_room {
                            // SAFETY: `slot <= mask` holds `vs` value bytes; the log has room
                            // for `log_room` values, and `logged < log_room`; `i < n`; one
                            // thread writes.
                            unsafe {
                                copy_small(raw.value_ptr(slot), log_at.add(logged * vs), vs);
                                copy_value(&raw, b, i, slot);
                            }
                            logged += 1;
                        }
                    }
                    Claim::Collisions => {
                        stop = Some((i, Stop::Collisions));
                        break;
                    }
                    Claim::NoRoom => {
                        stop = Some((i, Stop::NoRoom));
                        break;
                    }
                }
            }
            // The run's new keys: its keys whose claims were made, less those that met a slot.
            let upto = stop.map_or(end, |(i, _)| i);
            let new_keys = upto - start - (later.len() - met);
            if room == 0 && new_keys > 0 {
                // The run's one key is new, past the budget (its slot claimed).
                stop = Some((start, Stop::Budget));
            } else {
                room -= new_keys;
            }
            start = end;
        }
        // The counts the general pass would have made: the key that stops the batch, and the
        // keys after it as skipped (the key past the budget has claimed its slot).
        let new = budget - room + matches!(stop, Some((_, Stop::Budget))) as usize;
        let mut c = ClaimCounts { new, from_tombstone: 0, no_room: 0, collisions: 0, existing: later.len() };
        // Keys whose claims were made (and are undone if the batch fails).
        let done = match stop {
            None => n,
            Some((i, Stop::Collisions)) => {
                (c.collisions, c.no_room) = (1, n - i - 1);
                i
            }
            Some((i, Stop::NoRoom)) => {
                c.no_room = n - i;
                i
            }
            Some((i, Stop::Budget)) => {
                c.no_room = n - i - 1;
                i + 1
            }
            Some((i, Stop::Alloc(_))) => i,
        };
        let settled = match stop {
            Some((_, Stop::Alloc(bytes))) => Err(CpuError::Alloc { bytes }),
            _ => self.ledger.settle(&self.layout, c).map_err(CpuError::from),
        };
        if settled.is_ok() {
            self.vused = next_value;
            // An add's keys that met a slot have added their values already.
            let written = if add.is_some() { later.len() } else { logged };
            for (j, &(i, slot)) in later.iter().enumerate().skip(written) {
                if let Some(&(_, ahead)) = later.get(j + AHEAD) {
                    // SAFETY: `ahead` is a slot of this table, from its claim in this pass.
                    prefetch_lines(unsafe { raw.value_ptr(ahead as usize) }, raw.value_size);
                }
                // SAFETY: `i < n`, `slot` a slot of this table; one thread writes.
                unsafe { copy_value(&raw, b, i as usize, slot as usize) };
            }
        } else {
            // The overwritten values back, latest first (a key met twice gets its oldest), or
            // what an add added subtracted, then the claims undone.
            if let Some(kind) = add {
                for &(i, slot) in &later {
                    // SAFETY: as where it was added: `slot <= mask` holds an aligned counter
                    // of `kind`, `i < n`, one thread writes.
                    unsafe { sub_one(raw.value_ptr(slot as usize), b.val(i as usize), kind) };
                }
            }
            for (j, &(_, slot)) in later[..logged].iter().enumerate().rev() {
                // SAFETY: entry `j < logged` of the log was written above; `slot <= mask`.
                unsafe { copy_small(log_at.add(j * vs), raw.value_ptr(slot as usize), vs) };
            }
            self.undo_direct::<KS>(b, done, &later);
        }
        self.later = later;
        self.overwritten = log;
        settled.map(|()| new)
    }

    /// Undoes the claims of keys `0..done` of a direct pass (`later`: the keys among them that
    /// met an existing slot, in batch order), latest first.
    fn undo_direct<const KS: usize>(&mut self, b: &Batch<'_>, done: usize, later: &[(u32, u32)]) {
        let raw = with_key_size::<KS>(self.raw());
        let s = raw.plain();
        let mut existing = later.iter().rev().peekable();
        for i in (0..done).rev() {
            if existing.next_if(|&&(j, _)| j as usize == i).is_some() {
                continue;
            }
            // SAFETY: `i < done <= b.len()`; the key holds the table's key size.
            let (key, h) = unsafe { (b.key(i), self.hash.hash(b.key(i), raw.key_size)) };
            // SAFETY: as above; this thread alone uses the table (`&mut self`).
            match unsafe { find(&s, h, key) } {
                // SAFETY: `slot <= mask`, from the lookup on this table.
                Some(slot) => unsafe { *raw.states.add(slot) = flash_map_core::slot::state_byte(EMPTY) },
                None => debug_assert!(false, "a key claimed by this batch is in the table"),
            }
        }
    }
}
