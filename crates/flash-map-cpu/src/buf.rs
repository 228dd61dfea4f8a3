//! Aligned, zeroed, fallibly allocated byte buffers.
//!
//! The table's arrays come from `alloc_zeroed`, which for large sizes maps fresh zero pages
//! lazily: a big table costs nothing until it is touched, and an impossible size is an error
//! instead of an abort.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

use crate::CpuError;

/// 16 bytes: enough for u64 atomics, and at most the platform's minimum alignment, so that
/// `alloc_zeroed` becomes `calloc` (fresh, lazily zeroed pages) rather than alloc + memset.
const ALIGN: usize = 16;

/// A zero-initialised byte buffer aligned to 16 bytes.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer owns its memory exclusively, like a `Vec<u8>`.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only reads through `&self` methods.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// Allocates `len` zero bytes; `Err(CpuError::Alloc)` if the allocator refuses.
    pub fn zeroed(len: usize) -> Result<Self, CpuError> {
        if len == 0 {
            // A dangling, aligned pointer for the empty buffer.
            let ptr = NonNull::new(ALIGN as *mut u8).expect("nonzero");
            return Ok(AlignedBuf { ptr, len });
        }
        let layout =
            Layout::from_size_align(len, ALIGN).map_err(|_| CpuError::Alloc { bytes: len })?;
        // SAFETY: the layout has non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or(CpuError::Alloc { bytes: len })?;
        Ok(AlignedBuf { ptr, len })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Base pointer.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Base pointer for writes.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` initialised bytes owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `len` initialised bytes owned exclusively by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Sets every byte to zero.
    pub fn fill_zero(&mut self) {
        self.as_mut_slice().fill(0);
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: allocated in `zeroed` with this exact layout.
            unsafe {
                dealloc(
                    self.ptr.as_ptr(),
                    Layout::from_size_align_unchecked(self.len, ALIGN),
                )
            }
        }
    }
}
