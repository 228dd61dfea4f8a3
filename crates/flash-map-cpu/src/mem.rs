//! Memory helpers of the passes: disjoint writes from parallel passes, and small copies.

use flash_map_core::Batch;

use crate::slots::RawTable;

/// Raw pointer wrapper for disjoint per-index writes from a parallel pass.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr<T>(pub(crate) *mut T);
// SAFETY: the pointer is only dereferenced through the `unsafe` `write` and `read` below,
// whose callers keep each index to one writer and no concurrent reader, inside an owner
// that outlives the pass; sending the address itself to another thread touches nothing.
unsafe impl<T> Send for SyncPtr<T> {}
// SAFETY: sharing `&SyncPtr` only shares the address; every access goes through the same
// `unsafe` methods, under the same one-writer-per-index rule, as for `Send`.
unsafe impl<T> Sync for SyncPtr<T> {}
impl<T> SyncPtr<T> {
    /// # Safety
    /// `i` in bounds and written by one thread only.
    #[inline(always)]
    pub(crate) unsafe fn write(self, i: usize, v: T) {
        // SAFETY: the caller keeps `i` within the allocation (so `add` stays inside it) and
        // has no other thread access index `i` meanwhile, so this store races with nothing.
        unsafe { *self.0.add(i) = v }
    }
    /// # Safety
    /// `i` in bounds and not written meanwhile.
    #[inline(always)]
    pub(crate) unsafe fn read(self, i: usize) -> T
    where
        T: Copy,
    {
        // SAFETY: the caller keeps `i` within the allocation, initialized, and unwritten
        // during the read, so this load is in bounds and races with no store.
        unsafe { *self.0.add(i) }
    }
}

/// Copies record `i`'s value into `slot`.
///
/// # Safety
/// `i < b.len()`, `slot <= raw.mask`, and no other thread writes that slot's value meanwhile.
#[inline(always)]
pub(crate) unsafe fn copy_value(raw: &RawTable, b: &Batch<'_>, i: usize, slot: usize) {
    // SAFETY: `i < b.len()` makes `b.val(i)` point at `value_size` readable bytes, and
    // `slot <= raw.mask` makes `value_ptr(slot)` point at the slot's `value_size` bytes,
    // which no other thread writes meanwhile; the batch and the table never overlap.
    unsafe { copy_small(b.val(i), raw.value_ptr(slot), raw.value_size) }
}

/// Copies `len` bytes between non-overlapping places, with a single move for the common
/// small sizes rather than a call to `memcpy` (whose call costs more than such a copy).
///
/// # Safety
/// As [`std::ptr::copy_nonoverlapping`].
#[inline(always)]
pub(crate) unsafe fn copy_small(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: the caller gives `src` readable and `dst` writable for `len` bytes, not
    // overlapping (as `copy_nonoverlapping` requires); each arm reads and writes exactly
    // `len` bytes with unaligned accesses, so no alignment is assumed.
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
