//! Owned device buffers and pinned host buffers.

use std::sync::Arc;

use cudarc::driver::{result, sys, CudaStream};

use crate::{drv, CudaError};

/// A device allocation, freed on drop, whose work is ordered on one stream: every copy,
/// fill and kernel that uses it goes to that stream.
///
/// Where the device has memory pools (every GPU the kernels run on, under a current driver)
/// the allocation and the free are queued on the stream too (`cuMemAllocAsync`,
/// `cuMemFreeAsync`): a plain `cuMemFree` waits for the whole device to go idle, so one
/// table's free would wait for every other stream's work, and for ever for a stream that a
/// caller holds back.
pub struct DeviceBuf {
    stream: Arc<CudaStream>,
    ptr: sys::CUdeviceptr,
    bytes: usize,
    pooled: bool,
}

/// Makes `stream`'s context current on the calling thread.
pub(crate) fn bind(stream: &CudaStream) -> Result<(), CudaError> {
    stream.context().bind_to_thread().map_err(drv("cuCtxSetCurrent"))
}

/// Waits for the work queued on `stream` so far.
pub(crate) fn sync(stream: &CudaStream) -> Result<(), CudaError> {
    stream.synchronize().map_err(drv("cuStreamSynchronize"))
}

impl DeviceBuf {
    /// Allocates `bytes` of device memory for work on `stream`, zeroed (the fill is queued
    /// on `stream`).
    pub fn zeroed(stream: &Arc<CudaStream>, bytes: usize) -> Result<Self, CudaError> {
        bind(stream)?;
        let pooled = stream.context().has_async_alloc();
        if bytes == 0 {
            return Ok(DeviceBuf { stream: Arc::clone(stream), ptr: 0, bytes: 0, pooled });
        }
        // SAFETY: the stream's context is current; the stream is live. A pooled allocation
        // is usable by work queued on `stream` after this call, which is all of its work.
        let ptr = unsafe {
            if pooled {
                result::malloc_async(stream.cu_stream(), bytes)
            } else {
                result::malloc_sync(bytes)
            }
        }
        .map_err(|_| CudaError::DeviceAlloc { bytes })?;
        let buf = DeviceBuf { stream: Arc::clone(stream), ptr, bytes, pooled };
        buf.zero()?;
        Ok(buf)
    }

    /// The device address.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// The stream the buffer's work is ordered on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Sets every byte to zero (queued on the buffer's stream).
    pub fn zero(&self) -> Result<(), CudaError> {
        if self.bytes == 0 {
            return Ok(());
        }
        // SAFETY: the allocation holds `bytes` bytes; the stream is of its context.
        unsafe { result::memset_d8_async(self.ptr, 0, self.bytes, self.stream.cu_stream()) }
            .map_err(drv("cuMemsetD8Async"))
    }

    /// Copies `src` to the start of the buffer, after the work queued on its stream, and
    /// waits for the copy.
    ///
    /// # Panics
    /// If `src` is longer than the buffer.
    pub fn upload(&self, src: &[u8]) -> Result<(), CudaError> {
        self.upload_at(0, src)
    }

    /// [`upload`](Self::upload) to offset `offset`.
    ///
    /// # Panics
    /// If `src` does not fit from `offset` on.
    pub fn upload_at(&self, offset: usize, src: &[u8]) -> Result<(), CudaError> {
        assert!(offset <= self.bytes && src.len() <= self.bytes - offset, "upload fits the buffer");
        if src.is_empty() {
            return Ok(());
        }
        bind(&self.stream)?;
        // SAFETY: `src.len()` bytes fit from `offset` (asserted); `src` is borrowed until the
        // synchronize below, after which the copy has completed.
        unsafe { result::memcpy_htod_async(self.ptr + offset as u64, src, self.stream.cu_stream()) }
            .map_err(drv("cuMemcpyHtoDAsync"))?;
        sync(&self.stream)
    }

    /// Copies the start of the buffer into `dst`, after the work queued on its stream, and
    /// waits for the copy.
    ///
    /// # Panics
    /// If `dst` is longer than the buffer.
    pub fn download(&self, dst: &mut [u8]) -> Result<(), CudaError> {
        assert!(dst.len() <= self.bytes, "download fits the buffer");
        if dst.is_empty() {
            return Ok(());
        }
        bind(&self.stream)?;
        // SAFETY: `dst.len()` bytes are in the buffer; `dst` is borrowed until the
        // synchronize below, after which the copy has completed.
        unsafe { result::memcpy_dtoh_async(dst, self.ptr, self.stream.cu_stream()) }
            .map_err(drv("cuMemcpyDtoHAsync"))?;
        sync(&self.stream)
    }

    /// Queues a copy of `dst.len()` bytes from offset `offset` into `dst` on the buffer's
    /// stream; it is complete once an event recorded after it has completed.
    ///
    /// # Safety
    /// The driver writes `dst` after this call returns, when the borrow has ended: `dst`
    /// must be pinned host memory ([`PinnedBuf`]) that stays allocated, and is neither read
    /// nor written, until an event recorded after this call has completed (or the stream
    /// has synchronized).
    ///
    /// # Panics
    /// If the range `offset..offset + dst.len()` leaves the buffer.
    pub(crate) unsafe fn download_async(&self, offset: usize, dst: &mut [u8]) -> Result<(), CudaError> {
        assert!(offset + dst.len() <= self.bytes, "download fits the buffer");
        if dst.is_empty() {
            return Ok(());
        }
        // SAFETY: the range lies inside the allocation (asserted); the caller keeps `dst`
        // allocated and untouched until the copy completes (`# Safety`).
        unsafe { result::memcpy_dtoh_async(dst, self.ptr + offset as u64, self.stream.cu_stream()) }
            .map_err(drv("cuMemcpyDtoHAsync"))
    }

    /// Makes sure the buffer holds at least `bytes`, reallocating (contents lost) if not.
    /// The old allocation is freed once the work queued on the stream has completed.
    pub fn ensure(&mut self, bytes: usize) -> Result<(), CudaError> {
        if self.bytes < bytes {
            let grown = bytes.max(self.bytes.saturating_mul(3) / 2);
            *self = DeviceBuf::zeroed(&self.stream, grown)?;
        }
        Ok(())
    }
}

impl Drop for DeviceBuf {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        // An error here (a failed context) leaves nothing better to do than to go on.
        let _ = bind(&self.stream);
        if self.pooled {
            // SAFETY: allocated by `malloc_async` for this stream; the free is queued after
            // the stream's work on it (all of its work), once.
            let _ = unsafe { result::free_async(self.ptr, self.stream.cu_stream()) };
        } else {
            // Work queued on the stream may still use the memory: it completes first.
            let _ = sync(&self.stream);
            // SAFETY: allocated by `malloc_sync` in this context; freed once, after the
            // stream's work on it.
            let _ = unsafe { result::free_sync(self.ptr) };
        }
    }
}

/// Page-locked host memory for fast transfers, freed on drop.
pub(crate) struct PinnedBuf {
    stream: Arc<CudaStream>,
    ptr: *mut u8,
    bytes: usize,
}

// SAFETY: plain host memory owned by this value.
unsafe impl Send for PinnedBuf {}
// SAFETY: shared access is read-only.
unsafe impl Sync for PinnedBuf {}

impl PinnedBuf {
    /// An empty buffer.
    pub(crate) fn new(stream: &Arc<CudaStream>) -> Self {
        PinnedBuf { stream: Arc::clone(stream), ptr: std::ptr::null_mut(), bytes: 0 }
    }

    /// Makes sure the buffer holds at least `bytes` (contents lost on growth).
    pub(crate) fn ensure(&mut self, bytes: usize) -> Result<(), CudaError> {
        if self.bytes >= bytes {
            return Ok(());
        }
        self.release();
        let grown = bytes.max(self.bytes.saturating_mul(3) / 2);
        bind(&self.stream)?;
        // SAFETY: context current; freed in `release`.
        let p = unsafe { result::malloc_host(grown, 0) }.map_err(|_| CudaError::HostAlloc { bytes: grown })?;
        self.ptr = p as *mut u8;
        // SAFETY: `grown` writable bytes; zeroed once so that slices over it are initialised.
        unsafe { std::ptr::write_bytes(self.ptr, 0, grown) };
        self.bytes = grown;
        Ok(())
    }

    /// The first `len` bytes.
    pub(crate) fn slice_mut(&mut self, len: usize) -> &mut [u8] {
        assert!(len <= self.bytes);
        if len == 0 {
            return &mut [];
        }
        // SAFETY: `len` initialised bytes of an allocation owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, len) }
    }

    fn release(&mut self) {
        if !self.ptr.is_null() {
            // Copies queued on the stream may still use it: they complete first.
            let _ = sync(&self.stream);
            // SAFETY: allocated by `malloc_host` in this context (bound by `sync`); freed
            // once, after the stream's copies.
            let _ = unsafe { result::free_host(self.ptr as *mut std::ffi::c_void) };
            self.ptr = std::ptr::null_mut();
            self.bytes = 0;
        }
    }
}

impl Drop for PinnedBuf {
    fn drop(&mut self) {
        self.release();
    }
}

/// Copies host memory to the device through two pinned staging buffers: while the DMA engine
/// moves one chunk, all cores copy the next chunk into the other buffer. A copy straight from
/// pageable memory runs at a fraction of the PCIe bandwidth; this keeps the link busy.
pub(crate) struct Stager {
    stream: Arc<CudaStream>,
    bufs: [PinnedBuf; 2],
    events: [Event; 2],
}

/// Bytes per staging chunk.
const CHUNK: usize = flash_map_core::tuning::TUNING.gpu_stage_chunk;

impl Stager {
    /// Two empty staging buffers and their events.
    pub(crate) fn new(stream: &Arc<CudaStream>) -> Result<Self, CudaError> {
        Ok(Stager {
            stream: Arc::clone(stream),
            bufs: [PinnedBuf::new(stream), PinnedBuf::new(stream)],
            events: [Event::new(stream)?, Event::new(stream)?],
        })
    }

    /// Copies `src` to `dst` from offset `offset` on and waits for the copy to finish.
    ///
    /// # Panics
    /// If `src` does not fit in `dst` from `offset` on.
    pub(crate) fn upload(&mut self, dst: &DeviceBuf, offset: usize, src: &[u8]) -> Result<(), CudaError> {
        use rayon::prelude::*;
        assert!(
            offset <= dst.len() && src.len() <= dst.len() - offset,
            "{} bytes at {offset} into a buffer of {}",
            src.len(),
            dst.len()
        );
        if src.len() < 2 * CHUNK {
            return dst.upload_at(offset, src);
        }
        let dst = dst.ptr() + offset as u64;
        bind(&self.stream)?;
        for b in &mut self.bufs {
            b.ensure(CHUNK)?;
        }
        for (c, chunk) in src.chunks(CHUNK).enumerate() {
            let k = c % 2;
            if c >= 2 {
                // Buffer `k`'s previous copy must be done before it is refilled.
                self.events[k].wait()?;
            }
            let staging = self.bufs[k].slice_mut(chunk.len());
            staging.par_chunks_mut(1 << 20).zip(chunk.par_chunks(1 << 20)).for_each(|(d, s)| d.copy_from_slice(s));
            // SAFETY: the pinned source stays untouched until the event below completes (it
            // is waited for before the buffer is refilled, and the stream synchronizes before
            // returning); the destination range lies inside `dst` (asserted).
            unsafe { result::memcpy_htod_async(dst + (c * CHUNK) as u64, &*staging, self.stream.cu_stream()) }
                .map_err(drv("cuMemcpyHtoDAsync"))?;
            self.events[k].record()?;
        }
        sync(&self.stream)
    }
}

/// A driver event on a stream: marks a point in the stream's work.
pub(crate) struct Event {
    stream: Arc<CudaStream>,
    ev: sys::CUevent,
}

// SAFETY: a driver handle usable from any thread with the context current.
unsafe impl Send for Event {}

impl Event {
    /// A new event (no timing).
    pub(crate) fn new(stream: &Arc<CudaStream>) -> Result<Self, CudaError> {
        bind(stream)?;
        let ev = result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING).map_err(drv("cuEventCreate"))?;
        Ok(Event { stream: Arc::clone(stream), ev })
    }

    /// Records the event after the work queued on the stream so far.
    pub(crate) fn record(&self) -> Result<(), CudaError> {
        // SAFETY: a live event and a live stream of the same context.
        unsafe { result::event::record(self.ev, self.stream.cu_stream()) }.map_err(drv("cuEventRecord"))
    }

    /// Waits until the recorded work is done.
    pub(crate) fn wait(&self) -> Result<(), CudaError> {
        // SAFETY: a live event.
        unsafe { result::event::synchronize(self.ev) }.map_err(drv("cuEventSynchronize"))
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        let _ = bind(&self.stream);
        // SAFETY: created in `new`, destroyed once.
        let _ = unsafe { result::event::destroy(self.ev) };
    }
}

/// Waits for a stream when dropped while armed: a guard for host memory that queued
/// asynchronous copies still write, so that no early return or unwind leaves them running
/// into memory the caller reuses.
pub(crate) struct WaitOnDrop<'a> {
    stream: &'a CudaStream,
    armed: bool,
}

impl<'a> WaitOnDrop<'a> {
    /// A disarmed guard.
    pub(crate) fn new(stream: &'a CudaStream) -> Self {
        WaitOnDrop { stream, armed: false }
    }

    /// Copies are in flight from now on.
    pub(crate) fn arm(&mut self) {
        self.armed = true;
    }

    /// Every copy has been waited for.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for WaitOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            // An error here leaves nothing better to do: the context is unusable anyway.
            let _ = sync(self.stream);
        }
    }
}
