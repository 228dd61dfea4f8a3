//! Memory helpers of the passes: disjoint writes from parallel passes, and small copies.

use flash_map_core::Batch;

use crate::slots::RawTable;

/// Raw pointer wrapper for disjoint per-index writes from a parallel pass.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr<T>(pub(crate) *mut T);
// SAFETY: used only for writes to distinct indices, whose owner outlives the pass.
unsafe impl<T> Send for SyncPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SyncPtr<T> {}
impl<T> SyncPtr<T> {
    /// # Safety
    /// `i` in bounds and written by one thread only.
    #[inline(always)]
    pub(crate) unsafe fn write(self, i: usize, v: T) {
        // SAFETY: by contract.
        unsafe { *self.0.add(i) = v }
    }
    /// # Safety
    /// `i` in bounds and not written meanwhile.
    #[inline(always)]
    pub(crate) unsafe fn read(self, i: usize) -> T
    where
        T: Copy,
    {
        // SAFETY: by contract.
        unsafe { *self.0.add(i) }
    }
}

/// Copies record `i`'s value into `slot`.
///
/// # Safety
/// `i < b.len()`, `slot <= raw.mask`, and no other thread writes that slot's value meanwhile.
#[inline(always)]
pub(crate) unsafe fn copy_value(raw: &RawTable, b: &Batch<'_>, i: usize, slot: usize) {
    // SAFETY: by contract; batch values and slot values hold `value_size` bytes.
    unsafe { copy_small(b.val(i), raw.value_ptr(slot), raw.value_size) }
}

/// Copies `len` bytes between non-overlapping places, with a single move for the common
/// small sizes rather than a call to `memcpy` (whose call costs more than such a copy).
///
/// # Safety
/// As [`std::ptr::copy_nonoverlapping`].
#[inline(always)]
pub(crate) unsafe fn copy_small(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: by contract; unaligned reads and writes of exactly `len` bytes.
    unsafe {
        match len {
            4 => (dst as *mut u32).write_unaligned((src as *const u32).read_unaligned()),
            8 => (dst as *mut u64).write_unaligned((src as *const u64).read_unaligned()),
            16 => (dst as *mut u128).write_unaligned((src as *const u128).read_unaligned()),
            32 => (dst as *mut [u128; 2]).write_unaligned((src as *const [u128; 2]).read_unaligned()),
            64 => (dst as *mut [u128; 4]).write_unaligned((src as *const [u128; 4]).read_unaligned()),
            128 => (dst as *mut [u128; 8]).write_unaligned((src as *const [u128; 8]).read_unaligned()),
            _ => std::ptr::copy_nonoverlapping(src, dst, len),
        }
    }
}
