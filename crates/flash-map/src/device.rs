//! Device-resident batches (feature `cuda`): the bulk calls with keys, values and results
//! already in GPU memory, as cudarc buffers, ordered on the map's CUDA stream.
//!
//! A user's own kernels can produce the keys and consume the results without a host hop:
//! every argument is a cudarc [`CudaSlice`](crate::cuda::CudaSlice) or a view of one, of the
//! map's device. Borrowing does the rest: inputs are shared borrows and outputs exclusive
//! ones for the call, and the work is ordered by events both ways. The map's stream waits
//! for the work queued so far on each argument's stream, and each argument's stream waits
//! for the map's work on it. A caller's later copy of a result therefore sees it, with no
//! synchronize in between.

use std::mem::size_of;
use std::sync::Arc;

use flash_map_core::abi::BatchArgs;
use flash_map_cuda::cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut, DeviceSlice};
use flash_map_cuda::CudaTable;

use crate::backend::Engine;
use crate::error::{FlashMapError, Result};
use crate::map::{check_batch, same_len};
use crate::{Counter, FlashMap, Pod};

/// The map's table, if it runs on Cuda.
fn cuda(engine: &Engine) -> Result<&CudaTable> {
    match engine {
        Engine::Cuda(t) => Ok(t),
        Engine::Cpu(t) => Err(FlashMapError::NotOnDevice { backend: backend_of(t) }),
    }
}

/// [`cuda`], mutably.
fn cuda_mut(engine: &mut Engine) -> Result<&mut CudaTable> {
    match engine {
        Engine::Cuda(t) => Ok(t),
        Engine::Cpu(t) => Err(FlashMapError::NotOnDevice { backend: backend_of(t) }),
    }
}

fn backend_of(t: &flash_map_cpu::CpuTable) -> crate::Backend {
    match t.exec() {
        flash_map_cpu::Exec::Serial => crate::Backend::Serial,
        #[allow(unreachable_patterns)]
        _ => crate::Backend::Rayon,
    }
}

/// One device call's arguments: their lengths and contexts checked against `n` keys, and
/// the streams the call orders its work with (the map's, and those of its arguments).
struct Order<'a> {
    map: &'a CudaStream,
    n: usize,
    others: Vec<Arc<CudaStream>>,
}

impl<'a> Order<'a> {
    /// A call on the `n` keys of `keys`, on the map's stream `map`.
    fn new<K>(map: &'a CudaStream, keys: &impl DeviceSlice<K>) -> Result<Self> {
        let n = keys.len();
        check_batch(n)?;
        Order { map, n, others: Vec::new() }.stream(keys.stream())
    }

    /// An input column: exactly one entry per key.
    fn input<T>(self, col: &impl DeviceSlice<T>) -> Result<Self> {
        same_len(self.n, col.len())?;
        self.stream(col.stream())
    }

    /// An output column: room for at least one entry per key.
    fn output<T>(self, col: &impl DeviceSlice<T>) -> Result<Self> {
        if col.len() < self.n {
            return Err(FlashMapError::ColumnLengths { keys: self.n, other: col.len() });
        }
        self.stream(col.stream())
    }

    /// Adds an argument's stream, which must be of the map's context.
    fn stream(mut self, s: &Arc<CudaStream>) -> Result<Self> {
        if s.context().cu_ctx() != self.map.context().cu_ctx() {
            let d = self.map.context().ordinal();
            return Err(FlashMapError::Cuda(format!(
                "a device buffer belongs to another context than the map's (device {d}); \
                 allocate it from CudaContext::new({d}) or from map.cuda_stream()"
            )));
        }
        if **s != *self.map && !self.others.contains(s) {
            self.others.push(Arc::clone(s));
        }
        Ok(self)
    }

    /// Runs `call` (which queues the work on the map's stream) for a batch of at least one
    /// key, `T::default()` for none. Before it, the map's stream waits for the work queued
    /// so far on the arguments' streams; after it, each of those waits for the map's work,
    /// so that nothing a caller queues on them later reads a result early or overwrites an
    /// input still in use.
    fn run<T: Default>(self, call: impl FnOnce(usize) -> Result<T>) -> Result<T> {
        if self.n == 0 {
            return Ok(T::default());
        }
        let wait = |e| FlashMapError::Cuda(format!("cuStreamWaitEvent: {e:?}"));
        for s in &self.others {
            self.map.join(s).map_err(wait)?;
        }
        let r = call(self.n);
        for s in &self.others {
            s.join(self.map).map_err(wait)?;
        }
        r
    }
}

/// The batch the kernels take: `n` keys at `keys` and (unless 0) `n` values at `values`,
/// back to back.
fn columns<K, V>(keys: u64, values: u64, n: usize) -> BatchArgs {
    BatchArgs { keys, values, len: n as u64, key_stride: size_of::<K>() as u64, value_stride: size_of::<V>() as u64 }
}

impl<K: Pod + Send + Sync, V: Pod + Send + Sync> FlashMap<K, V> {
    /// Runs `op` on the table with the batch of `keys` and `values` (growing or
    /// strengthening the hash and retrying as the host calls do); the batch is valid for
    /// `op`'s device work on the table's stream.
    fn pairs_device(
        &mut self,
        keys: &impl DevicePtr<K>,
        values: &impl DevicePtr<V>,
        op: impl Fn(&mut CudaTable, BatchArgs) -> std::result::Result<usize, flash_map_cuda::CudaError>,
    ) -> Result<usize> {
        let stream = self.cuda_stream()?;
        let order = Order::new(&stream, keys)?.input(values)?;
        // `d` names `n` keys and `n` values, of the table's key and value sizes (the map's
        // `K` and `V`), in device buffers of the table's context (checked by `Order`). They
        // stay borrowed for this call, and the streams are ordered both ways around it
        // (`Order::run`, and cudarc's read events when `_read_k`, `_read_v` drop after it):
        // nothing writes them while the table reads them.
        let (kp, _read_k) = keys.device_ptr(&stream);
        let (vp, _read_v) = values.device_ptr(&stream);
        order.run(|n| {
            let d = columns::<K, V>(kp, vp, n);
            self.grow_on_full(|e| op(cuda_mut(e)?, d).map_err(FlashMapError::from))
        })
    }

    /// The CUDA stream this map queues its work on (feature `cuda`): its own non-blocking
    /// stream, or the one given to [`FlashMapBuilder::cuda_stream`](crate::FlashMapBuilder::cuda_stream).
    /// Buffers allocated from it, and work queued on it, are ordered with the map's work
    /// without events. [`FlashMapError::NotOnDevice`] on a CPU backend.
    pub fn cuda_stream(&self) -> Result<Arc<CudaStream>> {
        Ok(Arc::clone(cuda(&self.engine)?.stream()))
    }

    /// Waits until the work queued on the map's stream has completed (feature `cuda`).
    /// Needed only to time the device, or before reading results by means that cudarc
    /// does not order (its copies of the result buffers wait by themselves).
    pub fn cuda_synchronize(&self) -> Result<()> {
        cuda(&self.engine)?.synchronize().map_err(FlashMapError::from)
    }

    /// [`bulk_insert`](Self::bulk_insert) with the keys and values already in device memory
    /// (feature `cuda`): `keys[i]` gets `values[i]`, the last copy of a key wins, and new
    /// keys that do not fit fail the call with [`FlashMapError::TableFull`] with the map
    /// unchanged (or grow it, with `auto_grow`). Returns how many keys were new, which
    /// needs one wait for the claim pass's count; the writes of the values are queued and
    /// the call returns.
    ///
    /// Errors: [`FlashMapError::NotOnDevice`] on a CPU backend,
    /// [`FlashMapError::ColumnLengths`] when the columns differ in length,
    /// [`FlashMapError::Cuda`] for buffers of another context.
    ///
    /// ```no_run
    /// use flash_map::{Backend, FlashMap};
    /// let mut map: FlashMap<u64, u64> = FlashMap::builder(1 << 20).backend(Backend::Cuda).build()?;
    /// let stream = map.cuda_stream()?;
    /// let keys: Vec<u64> = (0..1000).collect();
    /// let d_keys = stream.clone_htod(&keys)?;
    /// let d_vals = stream.clone_htod(&keys.iter().map(|k| k * 10).collect::<Vec<u64>>())?;
    /// assert_eq!(map.bulk_insert_device(&d_keys, &d_vals)?, 1000);
    ///
    /// let mut d_out = stream.alloc_zeros::<u64>(1000)?;
    /// let mut d_found = stream.alloc_zeros::<bool>(1000)?;
    /// map.bulk_get_device(&d_keys, &mut d_out, &mut d_found)?; // queued; returns at once
    /// let out = stream.clone_dtoh(&d_out)?; // ordered after the lookup
    /// assert_eq!(out[7], 70);
    /// assert!(stream.clone_dtoh(&d_found)?.iter().all(|&f| f));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bulk_insert_device(&mut self, keys: &impl DevicePtr<K>, values: &impl DevicePtr<V>) -> Result<usize> {
        // SAFETY: `pairs_device` passes a batch of `keys` and `values`, valid for the call.
        self.pairs_device(keys, values, |t, d| unsafe { t.insert_device(d) })
    }

    /// [`bulk_insert_new`](Self::bulk_insert_new) with the pairs and the answers in device
    /// memory (feature `cuda`): `inserted[i]` becomes `true` for the first copy of each
    /// absent key, `false` for the others. Returns how many pairs were inserted.
    /// `inserted` may be longer than the batch; the entries past it are left as they were.
    pub fn bulk_insert_new_device(
        &mut self,
        keys: &impl DevicePtr<K>,
        values: &impl DevicePtr<V>,
        inserted: &mut impl DevicePtrMut<bool>,
    ) -> Result<usize> {
        let stream = self.cuda_stream()?;
        let order = Order::new(&stream, keys)?.input(values)?.output(inserted)?;
        let (kp, _read_k) = keys.device_ptr(&stream);
        let (vp, _read_v) = values.device_ptr(&stream);
        let (op, _write_o) = inserted.device_ptr_mut(&stream);
        order.run(|n| {
            let d = columns::<K, V>(kp, vp, n);
            self.grow_on_full(|e| {
                // SAFETY: as in `pairs_device` for `d`; `op` holds at least `n` bools of
                // the table's context (checked by `Order`), exclusively borrowed for this call
                // and ordered like the inputs; the kernel writes 0 or 1 into each, a `bool`.
                unsafe { cuda_mut(e)?.insert_new_device(d, op) }.map_err(FlashMapError::from)
            })
        })
    }

    /// [`bulk_get_into`](Self::bulk_get_into) with keys and results in device memory
    /// (feature `cuda`): `found[i]` tells whether `keys[i]` is present and `values[i]` gets
    /// its value; the values of absent keys are left as they were. The lookup is queued on
    /// the map's stream and the call returns. `values` and `found` may be longer than the
    /// batch.
    pub fn bulk_get_device(
        &self,
        keys: &impl DevicePtr<K>,
        values: &mut impl DevicePtrMut<V>,
        found: &mut impl DevicePtrMut<bool>,
    ) -> Result<()> {
        let t = cuda(&self.engine)?;
        let stream = t.stream();
        let order = Order::new(stream, keys)?.output(values)?.output(found)?;
        let (kp, _read_k) = keys.device_ptr(stream);
        let (vp, _write_v) = values.device_ptr_mut(stream);
        let (fp, _write_f) = found.device_ptr_mut(stream);
        // A value type of no bytes has nothing to copy back.
        let vp = if size_of::<V>() == 0 { 0 } else { vp };
        order.run(|n| {
            // SAFETY: `kp` holds `n` keys of the table's key size, `vp` room for `n` values of
            // its value size and `fp` for `n` bools, all in buffers of the table's context
            // (checked by `Order`), borrowed (the outputs exclusively) for this call and
            // ordered with the map's stream both ways (`Order::run`, and cudarc's events when
            // the guards drop after it): nothing else uses them until the lookup is done. The
            // kernel writes 0 or 1 into each flag and whole values.
            unsafe { t.find_device(columns::<K, V>(kp, 0, n), fp, vp) }.map_err(FlashMapError::from)
        })
    }

    /// [`bulk_contains`](Self::bulk_contains) with keys and answers in device memory
    /// (feature `cuda`): queued on the map's stream; the call returns.
    pub fn bulk_contains_device(&self, keys: &impl DevicePtr<K>, found: &mut impl DevicePtrMut<bool>) -> Result<()> {
        let t = cuda(&self.engine)?;
        let stream = t.stream();
        let order = Order::new(stream, keys)?.output(found)?;
        let (kp, _read_k) = keys.device_ptr(stream);
        let (fp, _write_f) = found.device_ptr_mut(stream);
        order.run(|n| {
            // SAFETY: as in `bulk_get_device`, with no values.
            unsafe { t.find_device(columns::<K, V>(kp, 0, n), fp, 0) }.map_err(FlashMapError::from)
        })
    }

    /// [`bulk_remove`](Self::bulk_remove) with the keys in device memory (feature `cuda`).
    /// Returns how many distinct keys were present and removed (one wait for the count).
    pub fn bulk_remove_device(&mut self, keys: &impl DevicePtr<K>) -> Result<usize> {
        let stream = self.cuda_stream()?;
        let order = Order::new(&stream, keys)?;
        let (kp, _read_k) = keys.device_ptr(&stream);
        order.run(|n| {
            // SAFETY: as in `pairs_device`, with no values.
            unsafe { cuda_mut(&mut self.engine)?.remove_device(columns::<K, V>(kp, 0, n)) }.map_err(FlashMapError::from)
        })
    }
}

impl<K: Pod + Send + Sync, V: Counter + Send + Sync> FlashMap<K, V> {
    /// [`bulk_add`](Self::bulk_add) with the pairs in device memory (feature `cuda`):
    /// absent keys start at 0, every copy adds (wrapping). Returns how many keys were new.
    pub fn bulk_add_device(&mut self, keys: &impl DevicePtr<K>, values: &impl DevicePtr<V>) -> Result<usize> {
        // SAFETY: `pairs_device` passes a batch of `keys` and `values`, valid for the call;
        // the values are counters of `V::KIND`, the table's value size.
        self.pairs_device(keys, values, |t, d| unsafe { t.add_device(d, V::KIND) })
    }
}
