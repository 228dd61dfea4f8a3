//! Owned device buffers and pinned host buffers.

use std::sync::Arc;

use cudarc::driver::{result, sys};

use crate::device::Gpu;
use crate::{drv, CudaError};

/// A device allocation, freed on drop.
pub struct DeviceBuf {
    gpu: Arc<Gpu>,
    ptr: sys::CUdeviceptr,
    bytes: usize,
}

impl DeviceBuf {
    /// Allocates `bytes` of device memory, zeroed.
    pub fn zeroed(gpu: &Arc<Gpu>, bytes: usize) -> Result<Self, CudaError> {
        gpu.bind()?;
        if bytes == 0 {
            return Ok(DeviceBuf { gpu: Arc::clone(gpu), ptr: 0, bytes: 0 });
        }
        // SAFETY: context is current.
        let ptr = unsafe { result::malloc_sync(bytes) }.map_err(|_| CudaError::DeviceAlloc { bytes })?;
        let buf = DeviceBuf { gpu: Arc::clone(gpu), ptr, bytes };
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

    /// Sets every byte to zero (stream-ordered).
    pub fn zero(&self) -> Result<(), CudaError> {
        if self.bytes == 0 {
            return Ok(());
        }
        // SAFETY: the allocation holds `bytes` bytes.
        unsafe { result::memset_d8_async(self.ptr, 0, self.bytes, std::ptr::null_mut()) }.map_err(drv("cuMemsetD8"))
    }

    /// Copies `src` to the start of the buffer (synchronous).
    pub fn upload(&self, src: &[u8]) -> Result<(), CudaError> {
        assert!(src.len() <= self.bytes, "upload fits the buffer");
        if src.is_empty() {
            return Ok(());
        }
        // SAFETY: `src.len()` bytes fit; the copy completes before returning.
        unsafe { result::memcpy_htod_sync(self.ptr, src) }.map_err(drv("cuMemcpyHtoD"))
    }

    /// Copies the start of the buffer into `dst` (synchronous).
    pub fn download(&self, dst: &mut [u8]) -> Result<(), CudaError> {
        assert!(dst.len() <= self.bytes, "download fits the buffer");
        if dst.is_empty() {
            return Ok(());
        }
        // SAFETY: `dst.len()` bytes are in the buffer; synchronous.
        unsafe { result::memcpy_dtoh_sync(dst, self.ptr) }.map_err(drv("cuMemcpyDtoH"))
    }

    /// Queues a copy of `dst.len()` bytes from offset `offset` into `dst` on the null stream;
    /// it is complete once an event recorded after it has completed.
    ///
    /// # Safety
    /// The driver writes `dst` after this call returns, when the borrow has ended: `dst`
    /// must be pinned host memory ([`PinnedBuf`]) that stays allocated, and is neither read
    /// nor written, until an event recorded after this call has completed (or the context
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
        // allocated and untouched until the copy completes (the function's contract).
        unsafe { result::memcpy_dtoh_async(dst, self.ptr + offset as u64, std::ptr::null_mut()) }
            .map_err(drv("cuMemcpyDtoHAsync"))
    }

    /// Makes sure the buffer holds at least `bytes`, reallocating (contents lost) if not.
    pub fn ensure(&mut self, bytes: usize) -> Result<(), CudaError> {
        if self.bytes < bytes {
            let grown = bytes.max(self.bytes.saturating_mul(3) / 2);
            *self = DeviceBuf::zeroed(&self.gpu, grown)?;
        }
        Ok(())
    }
}

impl Drop for DeviceBuf {
    fn drop(&mut self) {
        if self.bytes != 0 {
            let _ = self.gpu.bind();
            // SAFETY: allocated by `malloc_sync`; freed once.
            let _ = unsafe { result::free_sync(self.ptr) };
        }
    }
}

/// Page-locked host memory for fast transfers, freed on drop.
pub(crate) struct PinnedBuf {
    gpu: Arc<Gpu>,
    ptr: *mut u8,
    bytes: usize,
}

// SAFETY: plain host memory owned by this value.
unsafe impl Send for PinnedBuf {}
// SAFETY: shared access is read-only.
unsafe impl Sync for PinnedBuf {}

impl PinnedBuf {
    /// An empty buffer.
    pub(crate) fn new(gpu: &Arc<Gpu>) -> Self {
        PinnedBuf { gpu: Arc::clone(gpu), ptr: std::ptr::null_mut(), bytes: 0 }
    }

    /// Makes sure the buffer holds at least `bytes` (contents lost on growth).
    pub(crate) fn ensure(&mut self, bytes: usize) -> Result<(), CudaError> {
        if self.bytes >= bytes {
            return Ok(());
        }
        self.release();
        let grown = bytes.max(self.bytes.saturating_mul(3) / 2);
        self.gpu.bind()?;
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
            let _ = self.gpu.bind();
            // SAFETY: allocated by `malloc_host`; freed once.
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
    gpu: Arc<Gpu>,
    bufs: [PinnedBuf; 2],
    events: [Event; 2],
}

/// Bytes per staging chunk.
const CHUNK: usize = flash_map_core::tuning::TUNING.gpu_stage_chunk;

impl Stager {
    /// Two empty staging buffers and their events.
    pub(crate) fn new(gpu: &Arc<Gpu>) -> Result<Self, CudaError> {
        Ok(Stager {
            gpu: Arc::clone(gpu),
            bufs: [PinnedBuf::new(gpu), PinnedBuf::new(gpu)],
            events: [Event::new(gpu)?, Event::new(gpu)?],
        })
    }

    /// Copies `src` to the start of `dst` and waits for the copy to finish.
    ///
    /// # Panics
    /// If `src` is longer than `dst`.
    pub(crate) fn upload(&mut self, dst: &DeviceBuf, src: &[u8]) -> Result<(), CudaError> {
        use rayon::prelude::*;
        assert!(src.len() <= dst.len(), "{} bytes into a buffer of {}", src.len(), dst.len());
        let dst = dst.ptr();
        self.gpu.bind()?;
        if src.len() < 2 * CHUNK {
            if !src.is_empty() {
                // SAFETY: `dst` holds at least `src.len()` bytes (asserted); synchronous.
                unsafe { result::memcpy_htod_sync(dst, src) }.map_err(drv("cuMemcpyHtoD"))?;
            }
            return Ok(());
        }
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
            // is waited for before the buffer is refilled, and the context synchronizes
            // before returning); the destination range lies inside `dst` (asserted).
            unsafe { result::memcpy_htod_async(dst + (c * CHUNK) as u64, &*staging, std::ptr::null_mut()) }
                .map_err(drv("cuMemcpyHtoDAsync"))?;
            self.events[k].record()?;
        }
        self.gpu.sync()
    }
}

/// A driver event on the null stream: marks a point in the stream's work.
pub(crate) struct Event {
    gpu: Arc<Gpu>,
    ev: sys::CUevent,
}

// SAFETY: a driver handle usable from any thread with the context current.
unsafe impl Send for Event {}

impl Event {
    /// A new event (no timing).
    pub(crate) fn new(gpu: &Arc<Gpu>) -> Result<Self, CudaError> {
        gpu.bind()?;
        let ev = result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING).map_err(drv("cuEventCreate"))?;
        Ok(Event { gpu: Arc::clone(gpu), ev })
    }

    /// Records the event after the work queued so far.
    pub(crate) fn record(&self) -> Result<(), CudaError> {
        // SAFETY: a live event, the null stream.
        unsafe { result::event::record(self.ev, std::ptr::null_mut()) }.map_err(drv("cuEventRecord"))
    }

    /// Waits until the recorded work is done.
    pub(crate) fn wait(&self) -> Result<(), CudaError> {
        // SAFETY: a live event.
        unsafe { result::event::synchronize(self.ev) }.map_err(drv("cuEventSynchronize"))
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        let _ = self.gpu.bind();
        // SAFETY: created in `new`, destroyed once.
        let _ = unsafe { result::event::destroy(self.ev) };
    }
}

/// Waits for the device when dropped while armed: a guard for host memory that queued
/// asynchronous copies still write, so that no early return or unwind leaves them running
/// into memory the caller reuses.
pub(crate) struct WaitOnDrop<'a> {
    gpu: &'a Gpu,
    armed: bool,
}

impl<'a> WaitOnDrop<'a> {
    /// A disarmed guard.
    pub(crate) fn new(gpu: &'a Gpu) -> Self {
        WaitOnDrop { gpu, armed: false }
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
            let _ = self.gpu.sync();
        }
    }
}
