//! Region partitioning: a large batch, reordered so that it visits the table region by
//! region.
//!
//! A key's probes touch three arrays (state, key, value) at a random place. In batch order,
//! a large batch thus costs about three cache misses per key, each far from the last. But
//! the whole batch is known before it runs: hashing it first and moving each record into
//! the bucket of its home slot's *region* (a run of slots whose three arrays together fill
//! about a quarter of an L2 cache), the probe pass then works through one region at a time.
//! Every line of a region is fetched once and serves all the keys homed there, and serial
//! passes over tables far larger than the last-level cache run about twice as fast as in
//! batch order (BENCHMARKS.md, "Figures that code comments quoted").
//!
//! The partition is *stable*: records keep their batch order within a region, and copies of
//! one key share a region, so every serial rule that depends on batch order ("the last
//! duplicate wins", "the first new copy wins") holds unchanged. The reordered batch is an
//! ordinary [`Batch`] over a scratch buffer, so the passes of [`crate::ops`] run on it as
//! they are. Results that belong to batch positions are written in partition order and
//! brought back by replaying the partition: position `i`'s result is the next unread one
//! of region `part[i]`, so every read and write of that merge runs sequentially. (A lookup
//! that found no key at all skips the replay: every result is "absent".)
//!
//! Partitioning costs two sequential passes and a copy of the batch; it is used only where
//! that pays: one thread (the rayon engine's threads already overlap their misses), slots
//! of at most `max_slot_bytes` bytes (larger records cost more to copy than their misses),
//! a table of at least `min_regions` regions, and a batch with at least one key per
//! `min_slots_per_key` slots (see [`flash_map_core::tuning`]) (fewer keys share too few lines to gain). A lookup whose
//! keys are mostly absent (judged from a sample) reads only state words, so its regions
//! are sized by those alone.

use flash_map_core::probe::home;
use flash_map_core::{Batch, KeyHasher, TableLayout};

use crate::buf::commit_huge_for_writes;
use crate::mem::copy_small;
use crate::CpuError;

use flash_map_core::tuning::TUNING;

/// Bytes of table one region of a partitioned pass spans ([`TUNING`]`.region_bytes`).
pub(crate) const REGION_BYTES: usize = TUNING.region_bytes;
/// At most this many regions (so `u16` region numbers).
const MAX_REGIONS: usize = TUNING.max_regions;
const _: () = assert!(MAX_REGIONS <= 1 << 16, "region numbers are u16");
const MIN_REGIONS: usize = TUNING.min_regions;
const MIN_SLOTS_PER_KEY: usize = TUNING.min_slots_per_key;
const MAX_SLOT_BYTES: usize = TUNING.max_slot_bytes;

/// Reusable buffers of a partitioned pass (kept by the table, so that their pages are
/// faulted in once, not per batch).
#[derive(Default)]
pub(crate) struct Scratch {
    /// The records in partition order, then (for lookups) their results: value bytes
    /// sharing one buffer with the records, so that a lookup after an insert of as many
    /// pairs needs no fresh memory.
    rec: Vec<u8>,
    /// Which region each batch position went to, and the per-record flags.
    order: Order,
    /// Whether a lookup has run in batch order because these buffers lacked room for its
    /// partition ([`lookup_partitions`](Self::lookup_partitions)); kept when they are freed.
    declined: bool,
}

/// The partition order of the last batch, to bring per-position results back, and one flag
/// byte per record for the pass to write.
#[derive(Default)]
pub(crate) struct Order {
    /// Per batch position: its region.
    part: Vec<u16>,
    /// Per region: its first record (then, during a merge, the next unread result).
    start: Vec<usize>,
    /// Per record in partition order: whether the key was found (or won), once sized by
    /// [`flags`](Self::flags).
    pub(crate) found: Vec<u8>,
}

/// A batch in partition order, borrowing the scratch it lies in.
pub(crate) struct Partitioned<'s> {
    /// The records (key, and value when asked for), in partition order.
    pub(crate) batch: Batch<'s>,
    /// `room` bytes per record for the pass's results, in partition order.
    pub(crate) res: &'s mut [u8],
    /// The order, to merge results back.
    pub(crate) order: &'s mut Order,
}

/// Grows `v` to at least `n` elements (zeroed), committing fresh memory first: in huge
/// pages where they come fast, paced as a lookup's results are ([`commit_huge_for_writes`]).
/// Advised huge pages and left to the zeroing to fault in, as before, a scratch of 128 MB
/// cost what its first huge page cost 64 times over where that was slow, and the
/// partitioned insert of 8M `u64` pairs was then far slower than the same insert in batch
/// order (BENCHMARKS.md, "Figures that code comments quoted").
fn grow<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> Result<(), CpuError> {
    if v.len() < n {
        let bytes = n.saturating_mul(size_of::<T>());
        let mut fresh: Vec<T> = Vec::new();
        fresh.try_reserve_exact(n).map_err(|_| CpuError::Alloc { bytes })?;
        commit_huge_for_writes(fresh.as_mut_ptr(), bytes);
        fresh.resize(n, T::default());
        *v = fresh;
    }
    Ok(())
}

/// The region geometry for a table of `slots` slots of `slot_bytes` bytes each and regions
/// of about `region_bytes`: `Some(shift)` (region of a slot = `slot >> shift`) when a batch
/// of `n` keys should be partitioned.
pub(crate) fn plan(slots: usize, slot_bytes: usize, n: usize, region_bytes: usize) -> Option<u32> {
    if slot_bytes > MAX_SLOT_BYTES {
        return None;
    }
    let per_region = (region_bytes / slot_bytes.max(1)).max(1);
    // Round down to a power of two, at least slots / MAX_REGIONS.
    let per_region = (1usize << per_region.ilog2()).max(slots / MAX_REGIONS).max(1);
    let regions = slots / per_region;
    (regions >= MIN_REGIONS && n.saturating_mul(MIN_SLOTS_PER_KEY) >= slots).then(|| per_region.ilog2())
}

impl Scratch {
    /// Whether a lookup of `n` keys that a partition would copy into `record` bytes each
    /// (key and result room) runs partitioned now: at once where these buffers hold that
    /// much already (a partitioned insert or an earlier lookup left them), else only from the
    /// second such lookup of the table on. The first runs in batch order, committing no
    /// scratch: a lookup made once (a batch checked after its insert) then pays no fresh
    /// memory for it, which cost more than the partition saved where fresh memory came
    /// slowly, while a table looked up again and again (join probes) pays it once, on its
    /// second lookup (BENCHMARKS.md, issue 13).
    pub(crate) fn lookup_partitions(&mut self, n: usize, record: usize) -> bool {
        let holds = self.order.part.len() >= n && self.rec.len() >= n.saturating_mul(record);
        holds || std::mem::replace(&mut self.declined, true)
    }

    /// Frees the buffers (the next partition allocates them again), keeping what
    /// [`lookup_partitions`](Self::lookup_partitions) learnt.
    pub(crate) fn release(&mut self) {
        *self = Scratch { declined: self.declined, ..Scratch::default() };
    }

    /// Copies the records of `b` (key, and value when `values`) into partition order by the
    /// region of each key's home slot, with room for `room` bytes of results per record
    /// after them, and returns them as a batch borrowing this scratch.
    ///
    /// # Panics
    /// If `b`'s keys (or values, when `values`) are not of the layout's sizes.
    pub(crate) fn partition<'s>(
        &'s mut self,
        b: &Batch<'_>,
        hs: KeyHasher,
        layout: &TableLayout,
        shift: u32,
        values: bool,
        room: usize,
    ) -> Result<Partitioned<'s>, CpuError> {
        let (mask, key_size) = (layout.mask(), layout.key_size);
        let value_size = if values { layout.value_size } else { 0 };
        assert_eq!(
            (b.key_size(), values && b.value_size() != value_size),
            (key_size, false),
            "batch of the table's sizes"
        );
        let n = b.len();
        let regions = (mask >> shift) + 1;
        let stride = key_size + value_size;
        let too_big = CpuError::Alloc { bytes: usize::MAX };
        let bytes = stride.checked_add(room).and_then(|r| r.checked_mul(n)).ok_or(too_big)?;
        let o = &mut self.order;
        grow(&mut o.part, n)?;
        grow(&mut self.rec, bytes)?;
        o.start.clear();
        o.start.resize(regions + 1, 0);
        // Pass 1: each key's region, and the regions' sizes.
        let part = &mut o.part[..n];
        for (i, p) in part.iter_mut().enumerate() {
            // SAFETY: `i < n`; the key holds `key_size` bytes (asserted above).
            let h = unsafe { hs.hash(b.key(i), key_size) };
            let r = home(h, mask) >> shift;
            *p = r as u16;
            o.start[r + 1] += 1;
        }
        for r in 0..regions {
            o.start[r + 1] += o.start[r];
        }
        // Pass 2: copy each record to the next place of its region (stable).
        let mut next = o.start.clone();
        let (recs, res) = self.rec[..bytes].split_at_mut(n * stride);
        let dst0 = recs.as_mut_ptr();
        for (i, &p) in part.iter().enumerate() {
            let j = next[p as usize];
            next[p as usize] = j + 1;
            // SAFETY: `j < n`, so record `j` lies inside `recs` (`n * stride` bytes); the
            // source key and value hold their sizes (asserted above).
            unsafe {
                let dst = dst0.add(j * stride);
                // The region's stream continues here later: fetching its next line now
                // saves a miss per line over thousands of interleaved streams.
                crate::exec::prefetch_read(dst.wrapping_add(64));
                copy_small(b.key(i), dst, key_size);
                if values {
                    copy_small(b.val(i), dst.add(key_size), value_size);
                }
            }
        }
        let batch = Batch::from_bytes(recs, n, stride, (0, key_size), (key_size, value_size))
            .expect("n records of `stride` bytes, key then value");
        Ok(Partitioned { batch, res, order: o })
    }
}

impl Order {
    /// Replays the partition of the last [`Scratch::partition`] of `n` records:
    /// calls `f(i, j)` for every batch position `i` in order, with `j` the position of its
    /// record in partition order.
    pub(crate) fn merge(&mut self, n: usize, mut f: impl FnMut(usize, usize)) {
        let next = &mut self.start;
        for (i, &p) in self.part[..n].iter().enumerate() {
            let j = next[p as usize];
            next[p as usize] = j + 1;
            f(i, j);
        }
    }

    /// Sizes the flags (`found`) for `n` records.
    pub(crate) fn flags(&mut self, n: usize) -> Result<(), CpuError> {
        grow(&mut self.found, n)
    }
}

impl Scratch {
    /// Bytes held by these buffers.
    pub(crate) fn bytes(&self) -> usize {
        let o = &self.order;
        o.part.capacity() * 2 + self.rec.capacity() + o.start.capacity() * size_of::<usize>() + o.found.capacity()
    }
}
