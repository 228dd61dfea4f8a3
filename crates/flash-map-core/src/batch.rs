//! A read-only view of a caller's batch as raw bytes, whatever its Rust type.
//!
//! A batch `&[(K, V)]` is an array of records with a fixed stride; the key and the value sit
//! at fixed offsets inside each record. A key-only batch `&[K]` is the same with no value.
//! Engines read keys and values through this view, so they are not generic over `K` and `V`.

/// A strided batch: `len` records of `stride` bytes from `base`, key at `key_off`, value at
/// `val_off` within each record.
#[derive(Clone, Copy, Debug)]
pub struct Batch {
    /// Address of record 0.
    pub base: *const u8,
    /// Number of records.
    pub len: usize,
    /// Bytes from one record to the next.
    pub stride: usize,
    /// Offset of the key within a record.
    pub key_off: usize,
    /// Offset of the value within a record (unused for key-only batches).
    pub val_off: usize,
}

// SAFETY: a `Batch` is a read-only view; the creator guarantees the memory outlives its use
// and is not written meanwhile (it borrows a shared slice).
unsafe impl Send for Batch {}
// SAFETY: as above; only reads happen through it.
unsafe impl Sync for Batch {}

impl Batch {
    /// Pointer to record `i`'s key.
    ///
    /// # Safety
    /// `i < len`.
    #[inline(always)]
    pub unsafe fn key(&self, i: usize) -> *const u8 {
        // SAFETY: `i < len`, record within the borrowed slice.
        unsafe { self.base.add(i * self.stride + self.key_off) }
    }

    /// Pointer to record `i`'s value.
    ///
    /// # Safety
    /// `i < len`, and the batch has values.
    #[inline(always)]
    pub unsafe fn val(&self, i: usize) -> *const u8 {
        // SAFETY: `i < len`, record within the borrowed slice.
        unsafe { self.base.add(i * self.stride + self.val_off) }
    }
}
