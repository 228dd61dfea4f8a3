//! Lookups (`get`, `contains`): in batch order through the prefetch pipeline, or, for a
//! large serial batch, in partition order with the results merged back.

use std::sync::atomic::Ordering;

use flash_map_core::probe::find;
use flash_map_core::{Batch, Contains, Get, GetSink};

use crate::exec::prefetch_read;
use crate::mem::{copy_small, SyncPtr};
use crate::partition::{self, Order};
use crate::pipeline::{fetch_for, fetch_for_states, per_plan, plan_of, Ahead, Fetch, Sweep};
use crate::slots::{per_hash, per_key_size, with_key_size, with_strategy, RawTable};
use crate::{CpuError, CpuTable};

impl CpuTable {
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
        self.lookup(b, self.lookup_fetch(b, vs), move |i, slot, raw| {
            // SAFETY: `i < b.len()`, slot (if any) in range.
            unsafe { sink.put(i, slot.map(|s| raw.value_ptr(s) as *const u8)) }
        });
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
            order.merge(b.len(), |i, j| {
                prefetch_read(found.wrapping_add(j + 64));
                // SAFETY: the merge hands out `j < n`, and the lookup wrote all `n` flags.
                out[i] = unsafe { *found.add(j) } != 0
            });
        });
        if done {
            return;
        }
        let outp = SyncPtr(out.as_mut_ptr());
        // SAFETY: `i < out.len()`, one writer per index.
        self.lookup(b, self.lookup_fetch(b, 0), move |i, slot, _| unsafe { outp.write(i, slot.is_some()) });
    }

    /// A partitioned lookup of `b` (when worth it, the scratch is free, and
    /// [`Scratch::lookup_partitions`](crate::partition::Scratch::lookup_partitions) says so):
    /// results go to the order's `found` flags (and, for `values`, the value bytes `res`) in
    /// partition order, and `merge` hands them out, told how many keys were found. Returns
    /// whether it ran.
    fn lookup_partitioned(&self, b: &Batch<'_>, values: bool, merge: impl FnOnce(&mut Order, &[u8], usize)) -> bool {
        let Some(shift) = self.lookup_shift(b) else { return false };
        // Another thread's lookup holds the scratch: this one runs in batch order.
        let Ok(mut scratch) = self.scratch.try_lock() else { return false };
        let vs = if values { self.layout.value_size } else { 0 };
        if !scratch.lookup_partitions(b.len(), self.layout.key_size + vs) {
            return false;
        }
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
    /// found. On large tables this loop beat both the per-key prefetch pipeline and the same
    /// loop run through the generic pass (`Fetch::Plain`); BENCHMARKS.md has the figures.
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

    /// Looks up every key of `b` in batch order (on rayon, in chunks), with `fetch`'s
    /// prefetch, and calls `f(i, slot, raw)` with key `i`'s slot if it is present.
    fn lookup(&self, b: &Batch<'_>, fetch: Fetch, f: impl Fn(usize, Option<usize>, &RawTable) + Copy + Sync + Send) {
        per_hash!(self.hash, ID => self.lookup_h::<ID>(b, fetch, f))
    }

    /// [`lookup`](Self::lookup) hashing with the Identity strategy when `ID`. A function of
    /// its own, not inlined by force: every arm of these matches is a copy of the pass, and
    /// an unoptimized build gives each its own stack slots in the frame of the function that
    /// holds the match (all of them at once overflowed a 2 MiB thread stack).
    fn lookup_h<const ID: bool>(
        &self,
        b: &Batch<'_>,
        fetch: Fetch,
        f: impl Fn(usize, Option<usize>, &RawTable) + Copy + Sync + Send,
    ) {
        per_key_size!(self.layout.key_size, KS => {
            per_plan!(plan_of(&self.raw(), fetch), P => self.lookup_ks::<ID, KS, P>(b, fetch, f))
        })
    }

    /// [`lookup`](Self::lookup) for keys of `KS` bytes (0: the table's size), fetching per
    /// the plan `P`, hashing with the Identity strategy when `ID`.
    #[inline(always)]
    fn lookup_ks<const ID: bool, const KS: usize, const P: u8>(
        &self,
        b: &Batch<'_>,
        fetch: Fetch,
        f: impl Fn(usize, Option<usize>, &RawTable) + Copy + Sync + Send,
    ) {
        let (raw, hs) = (self.raw(), self.hash);
        // Lookups never race with writers (`&self`), so plain loads serve both engines, and
        // a small batch may run on the calling thread whatever the engine.
        let exec = if self.looks_up_serially(b.len()) { crate::Exec::Serial } else { self.exec };
        exec.for_chunks(b.len(), |range| {
            // Locals, not captures: the stores of `f` could alias captured fields, which the
            // loop would then reload for every key. `f` itself is copied too (it holds only
            // references), so that the sink it points to is one load away, not three.
            let (raw, hs, b, f) = (with_key_size::<KS>(raw), with_strategy::<ID>(hs), *b, f);
            let s = raw.plain();
            let b = &b;
            // SAFETY: `raw` is this table's, which nobody writes during `&self`; `range` is
            // within the batch, whose keys have the table's key size (checked by callers).
            let mut ahead = unsafe { Ahead::<KS, P>::new(&raw, hs, b, range.clone(), fetch) };
            for i in range {
                // SAFETY: `i` runs through the range in order; `i < b.len()`, key valid for
                // key_size bytes.
                let slot = unsafe { find(&s, ahead.next(i), b.key(i)) };
                f(i, slot, &raw);
            }
        });
    }

    /// Whether a lookup of `n` keys runs on the calling thread although the table is run
    /// by rayon: at most [`TUNING`](flash_map_core::tuning::TUNING)`.rayon_lookup_serial_len`
    /// keys, in a table whose values fill a cache line or more (results that large,
    /// written by the pool's threads, must all cross to the caller; small ones were faster
    /// written in parallel), unless the process asked for parallel passes always
    /// ([`crate::set_rayon_serial_mutations`]).
    fn looks_up_serially(&self, n: usize) -> bool {
        let t = &flash_map_core::tuning::TUNING;
        self.serial_passes && n <= t.rayon_lookup_serial_len && self.layout.value_size >= 64
    }

    /// What a lookup of `b` in batch order fetches ahead: when a sample of a large batch
    /// shows its keys mostly absent, the home state bytes alone (their key and value lines
    /// are never read), or nothing when the L1 cache holds them easily; else nothing in a
    /// cached table, and in a larger one also the key line and up to `value_bytes` of the
    /// value: of the home slot when they fit in a line, else of the slot whose fingerprint
    /// matches ([`Fetch::Found`]).
    fn lookup_fetch(&self, b: &Batch<'_>, value_bytes: usize) -> Fetch {
        const SAMPLE: usize = flash_map_core::tuning::TUNING.absent_sample;
        let values = value_bytes.min(flash_map_core::tuning::TUNING.value_prefetch_bytes);
        if b.len() >= 4 * SAMPLE && self.mostly_absent(b) {
            return fetch_for_states(self.states.len());
        }
        let home = if self.layout.key_size + values > 64 {
            Fetch::Found { values }
        } else {
            Fetch::Home { keys: true, values }
        };
        fetch_for(self.table_bytes(), home)
    }

    /// Whether a serial lookup of `b` runs partitioned: `Some(shift)` of its regions.
    ///
    /// A lookup whose keys are mostly absent reads state bytes alone (a missing key rarely
    /// matches a fingerprint), so its regions count only those: an eighth of a region's
    /// bytes, as many slots as half a region of the 4-byte state words they were measured
    /// with. On 8M `u64` keys (16M slots) such regions were as fast as regions sized for
    /// whole slots when no key was present, and faster when 1 key in 16 to 64 was (1 in 8:
    /// the same); BENCHMARKS.md, issue 13, "Regions sized by state words", has the figures.
    /// Which case applies is estimated from a sample of the batch. (Tables of large slots
    /// stay unpartitioned even then: 1M absent 32-byte keys in a table of 164-byte slots
    /// were slower partitioned than in batch order, as the copy of their keys costs more
    /// than the 8 MB of state words it keeps in cache: BENCHMARKS.md, "Figures that code
    /// comments quoted".)
    /// State bytes that the last-level cache holds are read in batch order, as a table that
    /// it holds is ([`partition_shift`](Self::partition_shift)).
    fn lookup_shift(&self, b: &Batch<'_>) -> Option<u32> {
        let whole = self.partition_shift(b.len())?;
        if self.mostly_absent(b) {
            if self.states.len() <= self.partition_min_bytes {
                return None;
            }
            partition::plan(self.layout.slots, 1, b.len(), self.region_bytes / 8)
        } else {
            Some(whole)
        }
    }

    /// Whether fewer than a quarter of a sample of `b`'s keys (up to 256, evenly spaced)
    /// are present.
    fn mostly_absent(&self, b: &Batch<'_>) -> bool {
        const SAMPLE: usize = flash_map_core::tuning::TUNING.absent_sample;
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
}

impl Get for CpuTable {
    fn get<S: GetSink>(&self, b: &Batch<'_>, sink: &S) -> Result<(), CpuError> {
        CpuTable::get(self, b, sink);
        Ok(())
    }
}

impl Contains for CpuTable {
    fn contains(&self, b: &Batch<'_>, out: &mut [bool]) -> Result<(), CpuError> {
        CpuTable::contains(self, b, out);
        Ok(())
    }
}
