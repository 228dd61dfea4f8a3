//! [`CudaTable`]: the SoA table in device memory and the bulk operations as kernel passes.
//!
//! The passes are those of the CPU engines (see `flash-map-cpu`'s `ops`): claim, check
//! (with rollback), then winners by batch position, so results are identical.

use std::sync::{Arc, Mutex};

use cudarc::driver::CudaStream;

use flash_map_core::tuning::TUNING;
use flash_map_core::{
    AddCounters, Batch, BulkEngine, ClaimCounts, Contains, CounterKind, Get, GetSink, HashStrategy, Insert, InsertNew,
    KeyHasher, Ledger, Remove, TableLayout,
};

use crate::device::Gpu;
use crate::mem::{sync, DeviceBuf, PinnedBuf, Stager};
use crate::CudaError;

/// A batch already in device memory, as key and value columns: the kernels' own
/// [`BatchArgs`](flash_map_core::abi::BatchArgs); [`device_records`] describes an array of
/// records.
pub type DeviceBatch = flash_map_core::abi::BatchArgs;

use flash_map_core::abi::{
    AddParams, BatchArgs, ClaimArgs, ClaimMode, ClaimParams, ElectParams, FindParams, Kernel, RehashParams,
    RemoveParams, RollbackParams, TableArgs, WriteParams, C_COLLISIONS, C_EXISTING, C_FROM_TOMBSTONE, C_HITS, C_NEW,
    C_NO_ROOM, C_REMOVED, N_COUNTERS,
};

/// `len` records of `stride` bytes from device address `base`, each with its key at
/// `key_off` and its value at `val_off`, as a [`DeviceBatch`].
pub fn device_records(base: u64, len: usize, stride: usize, key_off: usize, val_off: usize) -> DeviceBatch {
    BatchArgs {
        keys: base + key_off as u64,
        values: base + val_off as u64,
        len: len as u64,
        key_stride: stride as u64,
        value_stride: stride as u64,
    }
}

/// Per-call buffers, reused across calls.
struct Scratch {
    batch: DeviceBuf,
    pos: DeviceBuf,
    kind: DeviceBuf,
    found: DeviceBuf,
    out: DeviceBuf,
    counters: DeviceBuf,
    host: PinnedBuf,
    stager: Option<Stager>,
    events: Vec<crate::mem::Event>,
    pack: Vec<u8>,
}

/// A hash table in GPU memory. Its work is queued on one stream of its own (or one the
/// caller gave it), never on the null stream, and it never synchronizes the whole device:
/// tables on one GPU used from different threads run side by side.
pub struct CudaTable {
    gpu: Arc<Gpu>,
    stream: Arc<CudaStream>,
    layout: TableLayout,
    hash: KeyHasher,
    /// Live entries and tombstones, and the rules about them (shared with the CPU engines).
    ledger: Ledger,
    /// The state words, the keys and the values ([`Arrays`]).
    arrays: Arrays,
    scratch: Mutex<Scratch>,
}

impl std::fmt::Debug for CudaTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaTable")
            .field("device", &self.gpu.info.name)
            .field("len", &self.ledger.len())
            .field("slots", &self.layout.slots)
            .finish()
    }
}

/// A table's device memory: the state words, and the keys and values as two arrays or as
/// one array of records (`record` bytes each, [`TableLayout::device_record`]; `values` then
/// is empty and the values lie in `keys`, each after its key).
struct Arrays {
    states: DeviceBuf,
    keys: DeviceBuf,
    values: DeviceBuf,
    /// Per-slot scratch word for duplicate resolution; all zero between calls.
    aux: DeviceBuf,
    /// Bytes per record, or 0 for two arrays.
    record: usize,
}

fn alloc_arrays(stream: &Arc<CudaStream>, layout: &TableLayout) -> Result<Arrays, CudaError> {
    let over = CudaError::DeviceAlloc { bytes: usize::MAX };
    let record = layout.device_record();
    let (key_bytes, value_bytes) = if record != 0 {
        (layout.slots.checked_mul(record), Some(0))
    } else {
        (layout.key_bytes(), layout.value_bytes())
    };
    Ok(Arrays {
        states: DeviceBuf::zeroed(stream, layout.state_bytes().ok_or(over.clone())?)?,
        keys: DeviceBuf::zeroed(stream, key_bytes.ok_or(over.clone())?)?,
        values: DeviceBuf::zeroed(stream, value_bytes.ok_or(over.clone())?)?,
        aux: DeviceBuf::zeroed(stream, layout.state_bytes().ok_or(over)?)?,
        record,
    })
}

impl Arrays {
    /// The table every table kernel takes, for these arrays of layout `l`.
    fn args(&self, l: &TableLayout, hash: KeyHasher) -> TableArgs {
        let keys = self.keys.ptr();
        TableArgs {
            states: self.states.ptr(),
            keys,
            // In a record, the value follows the key.
            values: if self.record != 0 { keys + l.key_size as u64 } else { self.values.ptr() },
            mask: l.mask() as u64,
            // Layouts bound key and value sizes far below 4 GiB (`TableLayout` checks), and
            // records to `DEVICE_RECORD_MAX` bytes.
            key_size: l.key_size as u32,
            value_size: l.value_size as u32,
            hash: hash.strategy.code(),
            record: self.record as u32,
            seed: hash.seed,
        }
    }
}

/// A host copy of a device buffer (an error, not an abort, when the host has no room).
fn host_copy(buf: &DeviceBuf) -> Result<Vec<u8>, CudaError> {
    let bytes = buf.len();
    let mut v = Vec::new();
    v.try_reserve_exact(bytes).map_err(|_| CudaError::HostAlloc { bytes })?;
    v.resize(bytes, 0);
    buf.download(&mut v)?;
    Ok(v)
}

impl CudaTable {
    /// This table, as the kernels take it.
    fn tab(&self) -> TableArgs {
        self.arrays.args(&self.layout, self.hash)
    }

    /// An empty table on device `device_id`, with a new non-blocking stream of its own.
    pub fn new(layout: TableLayout, hash: KeyHasher, device_id: usize) -> Result<Self, CudaError> {
        Self::on_stream(layout, hash, device_id, None)
    }

    /// An empty table on device `device_id` whose work is queued on `stream` (a stream of
    /// that device's primary context), or on a new non-blocking stream of its own (`None`).
    pub fn on_stream(
        layout: TableLayout,
        hash: KeyHasher,
        device_id: usize,
        stream: Option<Arc<CudaStream>>,
    ) -> Result<Self, CudaError> {
        let gpu = Gpu::get(device_id)?;
        let stream = match stream {
            Some(s) if gpu.owns(&s) => s,
            Some(_) => return Err(CudaError::ForeignStream { device: device_id }),
            None => gpu.new_stream()?,
        };
        let a = alloc_arrays(&stream, &layout)?;
        log::debug!(
            "gpu table: {} slots, {} + {} + {} bytes{}",
            layout.slots,
            a.states.len(),
            a.keys.len(),
            a.values.len(),
            if a.record != 0 { " (records)" } else { "" }
        );
        sync(&stream)?;
        let mut scratch = Self::scratch_on(&stream)?;
        scratch.counters = DeviceBuf::zeroed(&stream, N_COUNTERS * 4)?;
        Ok(CudaTable { gpu, stream, layout, hash, ledger: Ledger::new(), arrays: a, scratch: Mutex::new(scratch) })
    }

    /// The layout.
    pub fn layout(&self) -> &TableLayout {
        &self.layout
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.ledger.len()
    }

    /// Tombstones not yet cleaned up.
    pub fn tombstones(&self) -> usize {
        self.ledger.tombstones()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.ledger.is_empty()
    }

    /// The hash strategy.
    pub fn hash_strategy(&self) -> HashStrategy {
        self.hash.strategy
    }

    /// The hash strategy with its key.
    pub fn hasher(&self) -> KeyHasher {
        self.hash
    }

    /// The device's name.
    pub fn device_name(&self) -> &str {
        &self.gpu.info.name
    }

    /// The stream the table's work is queued on. Work a caller queues on it runs after the
    /// table's work queued so far, and before any queued later.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits until the work queued on the table's stream has completed.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        sync(&self.stream)
    }

    fn scratch(&self) -> std::sync::MutexGuard<'_, Scratch> {
        self.scratch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Copies a host batch to the device. Tight batches (no padding between fields) go as
    /// they are; others are packed as key‖value records first.
    fn upload(&self, s: &mut Scratch, b: &Batch<'_>, with_values: bool) -> Result<DeviceBatch, CudaError> {
        let (ks, vs) = (self.layout.key_size, if with_values { self.layout.value_size } else { 0 });
        assert!(
            b.key_size() == ks && b.value_size() >= vs && (!with_values || b.value_size() == vs),
            "a batch of the table's key and value sizes"
        );
        let b = if with_values { *b } else { b.keys_only() };
        if let Some(src) = b.tight_bytes() {
            s.batch.ensure(src.len())?;
            Self::stage(&self.stream, s, 0, src)?;
            return Ok(device_records(s.batch.ptr(), b.len(), b.stride(), b.key_off(), b.val_off()));
        }
        if let Some((keys, values)) = b.column_bytes() {
            // Two columns go as two columns.
            s.batch.ensure(keys.len() + values.len())?;
            Self::stage(&self.stream, s, 0, keys)?;
            Self::stage(&self.stream, s, keys.len(), values)?;
            let base = s.batch.ptr();
            return Ok(BatchArgs {
                keys: base,
                values: base + keys.len() as u64,
                len: b.len() as u64,
                key_stride: ks as u64,
                value_stride: vs as u64,
            });
        }
        let rec = ks + vs;
        let bytes = b.len() * rec;
        s.pack.clear();
        s.pack.try_reserve_exact(bytes).map_err(|_| CudaError::HostAlloc { bytes })?;
        for i in 0..b.len() {
            s.pack.extend_from_slice(b.key_bytes(i));
            if vs > 0 {
                // SAFETY: `i < len`; the batch's values hold `vs` bytes (asserted above).
                s.pack.extend_from_slice(unsafe { std::slice::from_raw_parts(b.val(i), vs) });
            }
        }
        s.batch.ensure(bytes)?;
        let pack = std::mem::take(&mut s.pack);
        let r = Self::stage(&self.stream, s, 0, &pack);
        s.pack = pack;
        r?;
        Ok(device_records(s.batch.ptr(), b.len(), rec, 0, ks))
    }

    /// Copies `src` into the batch buffer from `offset` on, through the pinned stager.
    fn stage(stream: &Arc<CudaStream>, s: &mut Scratch, offset: usize, src: &[u8]) -> Result<(), CudaError> {
        if s.stager.is_none() {
            s.stager = Some(Stager::new(stream)?);
        }
        let stager = s.stager.as_mut().expect("created above");
        stager.upload(&s.batch, offset, src)
    }

    fn counters(&self, s: &mut Scratch) -> Result<[u32; N_COUNTERS], CudaError> {
        let mut c = [0u8; N_COUNTERS * 4];
        s.counters.download(&mut c)?;
        Ok(std::array::from_fn(|i| u32::from_le_bytes(c[i * 4..i * 4 + 4].try_into().expect("4 bytes"))))
    }

    fn ensure_per_key(&self, s: &mut Scratch, n: usize) -> Result<(), CudaError> {
        s.pos.ensure(n * 4)?;
        s.kind.ensure(n)?;
        s.found.ensure(n)?;
        Ok(())
    }

    /// Claim pass + settle (with rollback); `mode` says what a claimer does to its new
    /// slot. Returns what the claims did and, when accepting
    /// them leaves the table in need of a compaction, the fresh arrays for it: allocated
    /// before the claims count, so that running out of device memory fails the call with
    /// the table as it was (the caller compacts with [`finish`](Self::finish)).
    fn claim(
        &mut self,
        s: &mut Scratch,
        d: DeviceBatch,
        mode: ClaimMode,
    ) -> Result<(ClaimCounts, Option<Arrays>), CudaError> {
        let n = d.len as usize;
        self.ensure_per_key(s, n)?;
        s.counters.zero()?;
        let l = self.layout;
        // A batch that might not fit is bounded: it stops as soon as it has certainly failed.
        let budget = match self.ledger.claim_budget(&l, n) {
            usize::MAX => u64::MAX,
            b => b as u64,
        };
        let p = ClaimParams { table: self.tab(), batch: d, claim: ClaimArgs { budget, ..self.claim_args(s, mode) } };
        // SAFETY: the table's arrays, the batch `d` (keys and values of the table's sizes in
        // this context's memory, as the callers' `# Safety` requires) and the scratch buffers sized for
        // `n` keys above.
        unsafe { self.gpu.launch(&self.stream, Kernel::Claim, n, &p) }?;
        let c = self.counters(s)?;
        let counts = ClaimCounts {
            new: c[C_NEW] as usize,
            from_tombstone: c[C_FROM_TOMBSTONE] as usize,
            no_room: c[C_NO_ROOM] as usize,
            collisions: c[C_COLLISIONS] as usize,
            existing: c[C_EXISTING] as usize,
        };
        let mut after = self.ledger;
        let verdict = match after.settle(&l, counts) {
            Ok(()) if after.needs_compaction(&l) && !after.is_empty() => alloc_arrays(&self.stream, &l).map(Some),
            Ok(()) => Ok(None),
            Err(r) => Err(CudaError::from(r)),
        };
        match verdict {
            Ok(spare) => {
                self.ledger = after;
                Ok((counts, spare))
            }
            Err(e) => {
                let p = RollbackParams { table: self.tab(), claim: self.claim_args(s, mode), n: d.len };
                // SAFETY: the claim pass's own table and per-key buffers.
                unsafe { self.gpu.launch(&self.stream, Kernel::Rollback, n, &p) }?;
                sync(&self.stream)?;
                Err(e)
            }
        }
    }

    /// The per-key buffers and counters of a claim pass in scratch `s`, with `mode`.
    fn claim_args(&self, s: &Scratch, mode: ClaimMode) -> ClaimArgs {
        ClaimArgs {
            pos: s.pos.ptr(),
            kind: s.kind.ptr(),
            aux: self.arrays.aux.ptr(),
            counters: s.counters.ptr(),
            budget: u64::MAX,
            mode: mode as u32,
            _pad: 0,
        }
    }

    /// Ends a mutating call: compacts when the ledger asks for it, into `spare`, the arrays
    /// the call reserved before it changed anything (a table with no entry left is just
    /// emptied).
    fn finish(&mut self, spare: Option<Arrays>) -> Result<(), CudaError> {
        if !self.ledger.needs_compaction(&self.layout) {
            return Ok(());
        }
        if self.ledger.is_empty() {
            return self.clear();
        }
        let a = match spare {
            Some(a) => a,
            // Not reached: every call that can need a compaction reserves its arrays.
            None => alloc_arrays(&self.stream, &self.layout)?,
        };
        self.rehash_into(a, self.layout, self.hash)
    }

    /// Upserts a batch already on the device; returns how many keys were new.
    ///
    /// # Safety
    /// `d` describes memory of this table's device context: `d.len` keys of the table's key
    /// size, `d.key_stride` bytes apart from `d.keys`, and as many values of its value size,
    /// `d.value_stride` bytes apart from `d.values`; nothing writes that memory until the
    /// work queued on the table's stream by this call has completed.
    pub unsafe fn insert_device(&mut self, d: DeviceBatch) -> Result<usize, CudaError> {
        self.with_scratch(|t, s| t.insert_dev(s, d))
    }

    /// Scratch buffers of no size, for work on `stream`.
    fn scratch_on(stream: &Arc<CudaStream>) -> Result<Scratch, CudaError> {
        let g = stream;
        Ok(Scratch {
            batch: DeviceBuf::zeroed(g, 0)?,
            pos: DeviceBuf::zeroed(g, 0)?,
            kind: DeviceBuf::zeroed(g, 0)?,
            found: DeviceBuf::zeroed(g, 0)?,
            out: DeviceBuf::zeroed(g, 0)?,
            counters: DeviceBuf::zeroed(g, 0)?,
            host: PinnedBuf::new(g),
            stager: None,
            events: Vec::new(),
            pack: Vec::new(),
        })
    }

    /// Runs `f` with the scratch buffers taken out of the lock (so `f` may borrow `self`
    /// mutably).
    fn with_scratch<T>(
        &mut self,
        f: impl FnOnce(&mut Self, &mut Scratch) -> Result<T, CudaError>,
    ) -> Result<T, CudaError> {
        self.gpu.bind()?;
        let mut s = std::mem::replace(&mut *self.scratch(), Self::scratch_on(&self.stream)?);
        let r = f(self, &mut s);
        *self.scratch() = s;
        r
    }

    fn insert_dev(&mut self, s: &mut Scratch, d: DeviceBatch) -> Result<usize, CudaError> {
        // Claimers write their own value; with no key meeting an existing slot (no
        // duplicates, no updates) that is the final state.
        let (c, spare) = self.claim(s, d, ClaimMode::WriteValue)?;
        if c.existing > 0 {
            let p = ElectParams { claim: self.claim_args(s, ClaimMode::WriteValue), n: d.len };
            // SAFETY: the claim pass's per-key buffers and the table's election words.
            unsafe { self.gpu.launch(&self.stream, Kernel::WinnerLast, d.len as usize, &p) }?;
            self.write_winners(s, d, 0)?;
        }
        self.finish(spare)?;
        Ok(c.new)
    }

    /// The elected copies write their values (see `fm_write_winners`); `out` (a device
    /// address, or 0) receives 1 for each elected position.
    fn write_winners(&self, s: &Scratch, d: DeviceBatch, out: u64) -> Result<(), CudaError> {
        let p = WriteParams { table: self.tab(), batch: d, claim: self.claim_args(s, ClaimMode::Plain), out };
        // SAFETY: the table, the batch's values (of the table's value size), the claim pass's
        // per-key buffers, and `out` (0, or the scratch's `n` flag bytes).
        unsafe { self.gpu.launch(&self.stream, Kernel::WriteWinners, d.len as usize, &p) }
    }

    /// Queues a lookup of a batch already on the device on the table's stream, and returns:
    /// `found` (device, `len` bytes) gets 1/0 per key, `out` (device, `len * value_size`
    /// bytes, or 0 for none) the values of hits; the values of misses are left as they were.
    ///
    /// # Safety
    /// As [`insert_device`](Self::insert_device) for the keys of `d` (its values are not
    /// read); `found` and (unless 0) `out` are device addresses of this context, writable
    /// for `d.len` bytes and `d.len * value_size` bytes, that nothing else reads or writes
    /// until the work queued on the table's stream by this call has completed.
    pub unsafe fn find_device(&self, d: DeviceBatch, found: u64, out: u64) -> Result<(), CudaError> {
        self.gpu.bind()?;
        // SAFETY: `launch_find` asks what this function does (`# Safety`: `d`'s keys, `found`
        // and `out` valid in this context until the stream's work completes); no counters.
        unsafe { self.launch_find(d, found, out, 0) }
    }

    /// # Safety
    /// As [`find_device`](Self::find_device); `counters` is 0 or this table's counters.
    unsafe fn launch_find(&self, d: DeviceBatch, found: u64, out: u64, counters: u64) -> Result<(), CudaError> {
        let p = FindParams { table: self.tab(), batch: d, found, out, counters };
        // SAFETY: every address in `p` is valid in this context until the launch completes
        // on the table's stream: the table's own arrays, and `d`, `found`, `out` and
        // `counters` (`# Safety`, as `find_device`'s), as `launch` requires.
        unsafe { self.gpu.launch(&self.stream, Kernel::Find, d.len as usize, &p) }
    }

    /// Looks up every key and hands the results to `f` chunk by chunk, in order:
    /// `f(first, found, values)` gets the positions `first..first + found.len()`, `found[j]`
    /// (1 for a hit) and their values (`value_size` bytes each, meaningful where found).
    /// Values come back in chunks whose copies overlap with `f` working on earlier ones.
    pub fn get_chunks(&self, b: &Batch<'_>, mut f: impl FnMut(usize, &[u8], &[u8])) -> Result<(), CudaError> {
        self.gpu.bind()?;
        let mut guard = self.scratch();
        let s = &mut *guard;
        let t0 = std::time::Instant::now();
        let d = self.upload(s, b, false)?;
        let (n, vs) = (d.len as usize, self.layout.value_size);
        self.ensure_per_key(s, n)?;
        s.out.ensure(n * vs)?;
        s.counters.zero()?;
        let t1 = std::time::Instant::now();
        // SAFETY: `d` is the scratch's upload of `b`; the result buffers and the counters are
        // the scratch's, sized for `n` keys above.
        unsafe { self.launch_find(d, s.found.ptr(), if vs > 0 { s.out.ptr() } else { 0 }, s.counters.ptr()) }?;
        let hits = self.counters(s)?[C_HITS] as usize;
        let t2 = std::time::Instant::now();
        s.host.ensure(n + n * vs)?;
        let host = s.host.slice_mut(n + n * vs);
        let (flags, vals) = host.split_at_mut(n);
        s.found.download(flags)?;
        // Keys per chunk: about 8 MiB of values.
        let per = if vs == 0 || hits == 0 { n.max(1) } else { (TUNING.gpu_download_chunk / vs).max(1024) };
        let chunks = n.div_ceil(per);
        // Until every queued copy has landed, leaving this function early (an error, or a
        // panic in `f`) waits for the device first: the copies write into `vals`.
        let mut pending = crate::mem::WaitOnDrop::new(&self.stream);
        if hits > 0 && vs > 0 {
            // Queue every chunk's copy, each followed by its event; then hand out chunks as
            // their copies land.
            while s.events.len() < chunks {
                s.events.push(crate::mem::Event::new(&self.stream)?);
            }
            for c in 0..chunks {
                let (lo, hi) = (c * per * vs, ((c + 1) * per).min(n) * vs);
                pending.arm();
                // SAFETY: `vals` is pinned memory of the scratch, which this call holds (the
                // lock) and reads only after the chunk's event below has completed; if it
                // returns or unwinds before, `pending` waits for the device first.
                unsafe { s.out.download_async(lo, &mut vals[lo..hi]) }?;
                s.events[c].record()?;
            }
        }
        for c in 0..chunks {
            let (lo, hi) = (c * per, ((c + 1) * per).min(n));
            if hits > 0 && vs > 0 {
                s.events[c].wait()?;
            }
            // Misses have no values to bring back: `vals` is then left as it was.
            f(lo, &flags[lo..hi], &vals[lo * vs..hi * vs]);
        }
        pending.disarm();
        log::debug!(
            "gpu get n={n} hits={hits}: upload {:?}, kernel {:?}, download and fill {:?}",
            t1 - t0,
            t2 - t1,
            t2.elapsed()
        );
        Ok(())
    }

    /// Brings the per-key flags of the last pass (`found`, one byte each) back as bools.
    fn download_flags(s: &mut Scratch, out: &mut [bool]) -> Result<(), CudaError> {
        s.host.ensure(out.len())?;
        let host = s.host.slice_mut(out.len());
        s.found.download(host)?;
        for (o, &f) in out.iter_mut().zip(host.iter()) {
            *o = f != 0;
        }
        Ok(())
    }

    /// Removes the keys of a batch already on the device.
    ///
    /// # Safety
    /// As [`insert_device`](Self::insert_device) for the keys of `d` (its values are not
    /// read).
    pub unsafe fn remove_device(&mut self, d: DeviceBatch) -> Result<usize, CudaError> {
        self.with_scratch(|t, s| t.remove_dev(s, d))
    }

    fn remove_dev(&mut self, s: &mut Scratch, d: DeviceBatch) -> Result<usize, CudaError> {
        // If the removals could call for a compaction that moves entries, its arrays are
        // allocated first: running out of device memory then fails the call before
        // anything is removed. Each clause of the rule that holds for fewer removals also
        // holds for the most that leave an entry (removing every entry only empties the
        // state array).
        let len = self.ledger.len();
        let most = (d.len as usize).min(len.saturating_sub(1));
        let mut worst = self.ledger;
        worst.removed(most);
        let spare = if most > 0 && worst.needs_compaction(&self.layout) {
            Some(alloc_arrays(&self.stream, &self.layout)?)
        } else {
            None
        };
        s.counters.zero()?;
        let p = RemoveParams { table: self.tab(), batch: d, counters: s.counters.ptr() };
        // SAFETY: the addresses in `p` are the table's arrays, the batch's keys (valid in this
        // context until the stream's work completes, as the callers' `# Safety` requires)
        // and the counters, as `launch` requires.
        unsafe { self.gpu.launch(&self.stream, Kernel::Remove, d.len as usize, &p) }?;
        let removed = self.counters(s)?[C_REMOVED] as usize;
        self.ledger.removed(removed);
        self.finish(spare)?;
        Ok(removed)
    }

    /// Rehashes every entry into fresh arrays of `layout` (same or larger), on the device.
    /// On failure (out of device memory) the table is unchanged.
    pub fn rebuild(&mut self, layout: TableLayout) -> Result<(), CudaError> {
        self.rebuild_with(layout, self.hash)
    }

    /// Moves every entry into the fresh arrays `a` of `layout`, hashing with `hash`.
    fn rehash_into(&mut self, a: Arrays, layout: TableLayout, hash: KeyHasher) -> Result<(), CudaError> {
        let p = RehashParams { table: a.args(&layout, hash), old: self.tab() };
        // SAFETY: both tables' arrays, live for the launch (the old ones are dropped after
        // the synchronize below); the new one has room for every entry.
        unsafe { self.gpu.launch(&self.stream, Kernel::Rehash, self.layout.slots, &p) }?;
        sync(&self.stream)?;
        log::debug!("gpu rebuild: {} -> {} slots, {} entries", self.layout.slots, layout.slots, self.ledger.len());
        self.arrays = a;
        self.layout = layout;
        self.hash = hash;
        self.ledger = self.ledger.compacted();
        Ok(())
    }
}

impl BulkEngine for CudaTable {
    type Error = CudaError;

    fn layout(&self) -> &TableLayout {
        &self.layout
    }
    fn ledger(&self) -> Ledger {
        self.ledger
    }
    fn hasher(&self) -> KeyHasher {
        self.hash
    }
    /// Calls `f(key, value)` for every live entry (copies the table to the host).
    fn for_each_entry(&self, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), CudaError> {
        self.gpu.bind()?;
        let a = &self.arrays;
        let states = host_copy(&a.states)?;
        let keys = host_copy(&a.keys)?;
        // A table of records has no value array: `values` is then empty.
        let values = host_copy(&a.values)?;
        let words = states.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        self.layout.for_each_entry_in(a.record, words, &keys, &values, f);
        Ok(())
    }
    /// Removes every entry; keeps the arrays.
    fn clear(&mut self) -> Result<(), CudaError> {
        self.gpu.bind()?;
        self.arrays.states.zero()?;
        sync(&self.stream)?;
        self.ledger = Ledger::cleared();
        Ok(())
    }
    /// [`rebuild`](Self::rebuild), hashing with `hash` from now on (after
    /// a refusal for collisions, say). On failure the table is unchanged.
    fn rebuild_with(&mut self, layout: TableLayout, hash: KeyHasher) -> Result<(), CudaError> {
        if self.ledger.is_empty() && layout == self.layout {
            // Nothing to move: emptying the state array is the whole rebuild.
            self.clear()?;
            self.hash = hash;
            return Ok(());
        }
        self.gpu.bind()?;
        let a = alloc_arrays(&self.stream, &layout)?;
        self.rehash_into(a, layout, hash)
    }
    /// The sum and the maximum of the slots that lookups of `keys` (packed, `key_size`
    /// bytes each) visit ([`flash_map_core::probe::probe_length`]), computed on a host copy
    /// of the state and key arrays.
    fn probe_lengths(&self, keys: &[u8]) -> Result<(u64, usize), CudaError> {
        self.gpu.bind()?;
        let states = host_copy(&self.arrays.states)?;
        let mut table_keys = host_copy(&self.arrays.keys)?;
        let key_stride = self.tab().key_stride();
        let words: Vec<u32> = states.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
        // SAFETY: host copies of the table's `slots` state words and of its keys, `slots`
        // strides of `key_stride >= key_size` bytes, which nothing else uses while `s` is.
        let s = unsafe {
            flash_map_core::probe::RawSlots::strided(
                words.as_ptr() as *mut u32,
                table_keys.as_mut_ptr(),
                self.layout.mask(),
                self.layout.key_size,
                key_stride,
            )
        };
        // SAFETY: no claims run on the copies.
        Ok(unsafe { flash_map_core::probe::probe_lengths(&s, &self.hash, keys) })
    }
}

impl Insert for CudaTable {
    /// Upserts every pair; last duplicate wins; atomic on `TableFull`.
    fn insert(&mut self, b: &Batch<'_>) -> Result<usize, CudaError> {
        self.with_scratch(|t, s| {
            let t0 = std::time::Instant::now();
            let d = t.upload(s, b, true)?;
            let t1 = std::time::Instant::now();
            let r = t.insert_dev(s, d);
            log::debug!("gpu insert n={}: upload {:?}, kernels {:?}", b.len(), t1 - t0, t1.elapsed());
            r
        })
    }
}

impl InsertNew for CudaTable {
    /// Inserts absent keys (first copy wins); `out[i]` tells whether pair `i` was inserted.
    fn insert_new(&mut self, b: &Batch<'_>, out: &mut [bool]) -> Result<usize, CudaError> {
        assert_eq!(out.len(), b.len());
        self.with_scratch(|t, s| {
            let d = t.upload(s, b, true)?;
            let new = t.insert_new_dev(s, d, None)?;
            Self::download_flags(s, out)?;
            Ok(new)
        })
    }
}

impl AddCounters for CudaTable {
    /// Adds counters of `kind`; returns how many keys were new.
    fn add(&mut self, b: &Batch<'_>, kind: CounterKind) -> Result<usize, CudaError> {
        self.with_scratch(|t, s| {
            let d = t.upload(s, b, true)?;
            t.add_dev(s, d, kind)
        })
    }
}

impl CudaTable {
    /// Inserts the absent keys of a batch already on the device (the first copy of each
    /// wins); `inserted` gets 1 for each pair inserted, 0 for the others. Returns how many
    /// were inserted.
    ///
    /// # Safety
    /// As [`insert_device`](Self::insert_device); `inserted` is a device address of this
    /// context, writable for `d.len` bytes, that nothing else reads or writes until the
    /// work queued on the table's stream by this call has completed.
    pub unsafe fn insert_new_device(&mut self, d: DeviceBatch, inserted: u64) -> Result<usize, CudaError> {
        self.with_scratch(|t, s| t.insert_new_dev(s, d, Some(inserted)))
    }

    /// Adds the counters of a batch already on the device (`kind`, the table's value
    /// size); returns how many keys were new.
    ///
    /// # Safety
    /// As [`insert_device`](Self::insert_device).
    pub unsafe fn add_device(&mut self, d: DeviceBatch, kind: CounterKind) -> Result<usize, CudaError> {
        self.with_scratch(|t, s| t.add_dev(s, d, kind))
    }

    /// The flags go to `out`, or (`None`) to the scratch's `found`, which the claim pass
    /// sizes for the batch (and may reallocate: its address is taken after).
    fn insert_new_dev(&mut self, s: &mut Scratch, d: DeviceBatch, out: Option<u64>) -> Result<usize, CudaError> {
        let (c, spare) = self.claim(s, d, ClaimMode::MarkAux)?;
        let out = out.unwrap_or(s.found.ptr());
        let p = ElectParams { claim: self.claim_args(s, ClaimMode::MarkAux), n: d.len };
        // SAFETY: the claim pass's per-key buffers and the table's election words.
        unsafe { self.gpu.launch(&self.stream, Kernel::WinnerFirst, d.len as usize, &p) }?;
        self.write_winners(s, d, out)?;
        self.finish(spare)?;
        Ok(c.new)
    }

    fn add_dev(&mut self, s: &mut Scratch, d: DeviceBatch, kind: CounterKind) -> Result<usize, CudaError> {
        assert_eq!(self.layout.value_size, kind.width(), "counter width matches the value size");
        let (c, spare) = self.claim(s, d, ClaimMode::ZeroValue)?;
        let p = AddParams { table: self.tab(), batch: d, claim: self.claim_args(s, ClaimMode::ZeroValue) };
        // SAFETY: the table, the batch's values (counters of the table's width) and the
        // claim pass's slots.
        unsafe { self.gpu.launch(&self.stream, Kernel::Add, d.len as usize, &p) }?;
        self.finish(spare)?;
        Ok(c.new)
    }
}

impl Get for CudaTable {
    fn get<S: GetSink>(&self, b: &Batch<'_>, sink: &S) -> Result<(), CudaError> {
        use rayon::prelude::*;
        let vs = self.layout.value_size;
        // Filling the caller's results is host work (page faults included): spread over
        // the cores.
        self.get_chunks(b, |first, found, vals| {
            found.par_iter().enumerate().with_min_len(4096).for_each(|(j, &f)| {
                // SAFETY: positions `first + j` are handed out once each (chunks do not
                // overlap); a found value's `vs` bytes lie in `vals`.
                unsafe { sink.put(first + j, (f != 0).then(|| vals[j * vs..].as_ptr())) }
            })
        })
    }
}

impl Drop for CudaTable {
    fn drop(&mut self) {
        // The arrays free themselves after their stream's work; this only makes the wait
        // happen once. An error leaves nothing better to do.
        let _ = sync(&self.stream);
    }
}

impl Contains for CudaTable {
    /// Whether each key is present.
    fn contains(&self, b: &Batch<'_>, out: &mut [bool]) -> Result<(), CudaError> {
        self.gpu.bind()?;
        let mut guard = self.scratch();
        let s = &mut *guard;
        let d = self.upload(s, b, false)?;
        self.ensure_per_key(s, d.len as usize)?;
        // SAFETY: `d` is the scratch's upload of `b`; `found` holds `n` flags.
        unsafe { self.launch_find(d, s.found.ptr(), 0, 0) }?;
        Self::download_flags(s, out)
    }
}

impl Remove for CudaTable {
    /// Removes every key; returns how many distinct keys were present.
    fn remove(&mut self, b: &Batch<'_>) -> Result<usize, CudaError> {
        let removed = self.with_scratch(|t, s| {
            let d = t.upload(s, b, false)?;
            t.remove_dev(s, d)
        })?;
        Ok(removed)
    }
}
