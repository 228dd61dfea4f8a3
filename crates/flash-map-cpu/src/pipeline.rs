//! The prefetch pipeline every pass over a batch runs through.
//!
//! A batch is known in full before it runs, so the addresses its keys will touch can be
//! computed ahead of use: while key `i` is processed, key `i + 8`'s home slot lines are
//! being fetched and key `i + 24`'s home state word too. The keys of a batch are
//! independent, so a dozen cache misses stay in flight instead of one dependent chain.

use std::ops::Range;

use flash_map_core::probe::home;
use flash_map_core::slot::{full_word, tag_of};
use flash_map_core::tuning::TUNING;
use flash_map_core::{Batch, KeyHasher, Slots};

use crate::exec::prefetch_read;
use crate::slots::RawTable;

/// What the second prefetch stage fetches besides the state word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetch {
    /// Key and value lines when the state's fingerprint matches (lookups, removals).
    /// `shared`: other threads change state words during the pass (parallel removals), so
    /// they are read with atomic loads, one at a time.
    OnTagMatch { values: bool, shared: bool },
    /// Key and value lines always (claims write them when the slot is free).
    Always,
    /// One stage, for passes in partition order ([`crate::partition`]) by regions of
    /// `1 << shift` slots: a plain loop behind a [`Sweep`] of the state and key (and, for
    /// `values`, value) lines. Measured on 8M `u64` keys, removals ran 1.1x faster than
    /// through the two stages.
    Plain { values: bool, shift: u32 },
}

/// Runs `body(i, hash)` for `i` in `range`, in order, with a two-stage software prefetch:
/// `D1` keys ahead the key is hashed and its home state word prefetched; `D2` keys ahead
/// that (now cached) word is read and, per `fetch`, the key and value lines of the home slot
/// are prefetched. Misses thus cost one cache line; the batch's independent keys keep a
/// dozen lines in flight instead of one dependent chain at a time.
///
/// # Safety
/// `raw` views the live arrays of the table (as [`crate::CpuTable`]'s `raw()` makes it), which
/// other threads change during the pass only through atomics, and only in passes whose
/// `fetch` says `shared` or that read no state words (claims); `range.end <= b.len()`; `b`'s
/// keys hold `raw.key_size` bytes.
#[inline(always)]
pub(crate) unsafe fn staged(
    raw: &RawTable,
    hs: KeyHasher,
    b: &Batch<'_>,
    range: Range<usize>,
    fetch: Fetch,
    mut body: impl FnMut(usize, u64),
) {
    if let Fetch::Plain { values, shift } = fetch {
        // SAFETY: forwarded contract.
        unsafe { plain(raw, hs, b, range, values, shift, body) };
        return;
    }
    const D1: usize = TUNING.prefetch_hash_ahead;
    const D2: usize = TUNING.prefetch_lines_ahead;
    // Hashes in flight: D1 of them, a power of two for a cheap index.
    const RING: usize = D1.next_power_of_two();
    let mut ring = [0u64; RING];
    let end = range.end;
    let stage1 = |ring: &mut [u64; RING], i: usize| {
        // SAFETY: `i < end <= b.len()`; the slot is masked into the table; prefetches never
        // fault.
        unsafe {
            let h = hs.hash(b.key(i), raw.key_size);
            ring[i % RING] = h;
            let slot = home(h, raw.mask);
            prefetch_read(raw.states.add(slot));
            if slot % 16 > 8 && matches!(fetch, Fetch::OnTagMatch { shared: false, .. }) {
                // Stage two reads eight words from the home slot on: these cross into the
                // next line, which would otherwise stall it (measured: rayon removals of 8M
                // keys 1.5x slower without this).
                prefetch_read(raw.states.wrapping_add(slot + 8));
            }
        }
    };
    // SAFETY: forwarded contract.
    let stage2 = |ring: &[u64; RING], i: usize| unsafe { fetch_home_lines(raw, ring[i % RING], fetch) };
    for i in range.start..(range.start + D1).min(end) {
        stage1(&mut ring, i);
    }
    for i in range.start..(range.start + D2).min(end) {
        stage2(&ring, i);
    }
    for i in range {
        if i + D1 < end {
            stage1(&mut ring, i + D1);
        }
        if i + D2 < end {
            stage2(&ring, i + D2);
        }
        body(i, ring[i % RING]);
    }
}

/// The one-stage loop of [`Fetch::Plain`].
///
/// # Safety
/// As [`staged`].
#[inline(always)]
unsafe fn plain(
    raw: &RawTable,
    hs: KeyHasher,
    b: &Batch<'_>,
    range: Range<usize>,
    values: bool,
    shift: u32,
    mut body: impl FnMut(usize, u64),
) {
    let mut sweep = Sweep::new(raw, b.len(), shift);
    for i in range {
        // SAFETY: `i < end <= b.len()` indexes the batch.
        let h = unsafe { hs.hash(b.key(i), raw.key_size) };
        sweep.step(raw, h, true, values);
        body(i, h);
    }
}

/// Stage two of [`staged`] for a key of hash `h`, whose home state word stage one fetched:
/// per `fetch`, fetches the key and value lines of its home slot, or of the first slot
/// whose fingerprint matches.
///
/// # Safety
/// As [`staged`], for the table `raw` views.
#[inline(always)]
unsafe fn fetch_home_lines(raw: &RawTable, h: u64, fetch: Fetch) {
    let slot = home(h, raw.mask);
    // SAFETY: `slot` is masked into the table, and the words read lie in it (the group only
    // when it fits before the end); other threads change words only in `shared` passes,
    // which read them atomically (the contract); prefetches never fault.
    unsafe {
        let (target, values) = match fetch {
            Fetch::Always => (Some(slot), true),
            Fetch::Plain { .. } => (None, false),
            Fetch::OnTagMatch { values, shared } => {
                // The key is at its home slot or a few slots on: look through the state
                // words (one cache line, already fetched) for the first fingerprint match.
                let full = full_word(tag_of(h));
                let mut found = None;
                if <flash_map_core::probe::RawSlots as Slots>::GROUPED && !shared && slot + 8 <= raw.mask + 1 {
                    // Eight state words at once, as `probe::find` does: no branch per
                    // slot to mispredict (stage one fetched both of their lines).
                    let cand = raw.plain().group(slot, full).candidates();
                    if cand != 0 {
                        let t = slot + cand.trailing_zeros() as usize;
                        prefetch_read(raw.keys.add(t * raw.key_size));
                        if values {
                            prefetch_value(raw, t);
                        }
                    }
                    return;
                }
                for j in 0..4 {
                    let t = (slot + j) & raw.mask;
                    let st = if shared {
                        // Relaxed suffices: the word only steers a prefetch.
                        std::sync::atomic::AtomicU32::from_ptr(raw.states.add(t))
                            .load(std::sync::atomic::Ordering::Relaxed)
                    } else {
                        *raw.states.add(t)
                    };
                    if st == full {
                        found = Some(t);
                        break;
                    }
                    if st == flash_map_core::slot::EMPTY {
                        break;
                    }
                }
                (found, values)
            }
        };
        if let Some(t) = target {
            prefetch_read(raw.keys.add(t * raw.key_size));
            if values {
                // Claims (and lookups at the table's last slots) fetch the first line
                // alone: for claims, the whole value measured slower.
                prefetch_read(raw.value_ptr(t));
            }
        }
    }
}

/// Slots a sweep fetches per step: one line of state words.
const SWEEP: usize = TUNING.sweep_slots;

/// The prefetch of the one-stage loops that run a batch in partition order
/// ([`crate::partition`]): a sequential sweep of the table one region ahead of the keys.
///
/// Within a region the keys' home slots are random, so, unaided, the first key to touch
/// each line of a region waits for memory. But the regions come in order: while the keys
/// of region `r` run, the sweep fetches region `r + 1`'s lines front to back, one group of
/// 16 slots (a line of state words, and the key and value bytes of those slots) every
/// [`every`](Self::every) keys, the pace at which the batch itself moves through the
/// table. The lines a key needs are thus fetched about one region before it runs, and no
/// per-key prefetch is needed.
///
/// Measured on 8M `u64` keys (table of 16M slots, regions of 16K slots), against a
/// prefetch of each key's home lines 16 keys ahead: probes of absent keys 57 → 45 ms,
/// of present keys 90 → 78 ms. A sweep twice as fast was slower (47 and 84 ms), as was
/// no prefetch at all (54 ms for absent keys; 39 ms when the whole table is in cache).
pub(crate) struct Sweep {
    /// The next slot to fetch (a multiple of 16 when regions are: real tables' regions
    /// hold thousands of slots).
    next: usize,
    /// Region of a slot = `slot >> shift`.
    shift: u32,
    /// Keys per group of 16 slots in the batch (at least 1).
    every: usize,
    /// Keys left before the next group.
    count: usize,
}

impl Sweep {
    /// A sweep for a batch of `n` keys in partition order by regions of `1 << shift`
    /// slots.
    pub(crate) fn new(raw: &RawTable, n: usize, shift: u32) -> Self {
        let every = (n.saturating_mul(SWEEP) / (raw.mask + 1)).max(1);
        Sweep { next: 0, shift, every, count: every }
    }

    /// Steps past a key of hash `hash`: every [`every`](Self::every) keys, fetches the next
    /// 16 slots' state line, and (per `keys` and `values`) their key and value bytes, if
    /// they lie in the region after the key's.
    #[inline(always)]
    pub(crate) fn step(&mut self, raw: &RawTable, hash: u64, keys: bool, values: bool) {
        self.count -= 1;
        if self.count != 0 {
            return;
        }
        self.count = self.every;
        let r = home(hash, raw.mask) >> self.shift;
        // A sweep that fell behind (a crowded region) skips to the next region; one ahead
        // (a sparse region) waits.
        self.next = self.next.max((r + 1) << self.shift);
        if self.next >= (r + 2) << self.shift || self.next > raw.mask {
            return;
        }
        let slot = self.next;
        self.next += SWEEP;
        prefetch_read(raw.states.wrapping_add(slot));
        if keys {
            prefetch_lines(raw.keys.wrapping_add(slot * raw.key_size), SWEEP * raw.key_size);
        }
        if values {
            prefetch_lines(raw.values.wrapping_add(slot * raw.value_size), SWEEP * raw.value_size);
        }
    }
}

/// Prefetches every line that the `len` bytes from `p` touch.
#[inline(always)]
fn prefetch_lines(p: *const u8, len: usize) {
    let lead = p as usize & 63;
    let line = p.wrapping_sub(lead);
    let mut off = 0;
    while off < lead + len {
        prefetch_read(line.wrapping_add(off));
        off += 64;
    }
}

/// Prefetches the lines of slot `slot`'s value: all of them up to four (a 128-byte value
/// spans two lines, and the second would otherwise miss on its own when the value is read).
///
/// # Safety
/// `slot <= raw.mask`.
#[inline(always)]
unsafe fn prefetch_value(raw: &RawTable, slot: usize) {
    // SAFETY: in range by contract; prefetches never fault.
    prefetch_lines(unsafe { raw.value_ptr(slot) }, raw.value_size.min(TUNING.value_prefetch_bytes));
}
