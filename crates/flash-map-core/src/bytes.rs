//! Panic-free byte helpers for keys and values stored as raw bytes.
//!
//! On the GPU there is no panic handler to link against, so these work on raw pointers with
//! wrapping arithmetic and pick the widest aligned word the operands allow. Targets that
//! load unaligned words at full speed (x86_64, aarch64) move the common key sizes as one
//! or two words whatever their alignment.

/// Whether the target loads unaligned words at the cost of aligned ones.
const UNALIGNED_IS_FAST: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// Reads 8 bytes at `p` as a little-endian `u64`: one load wherever the target allows it
/// (always on x86_64 and aarch64, else where `p` is 8-aligned, as the keys of a `u64`
/// column are), byte loads otherwise. On nvptx an unaligned read is eight byte loads, so
/// the alignment test saves seven memory instructions per key for the common key sizes.
///
/// # Safety
/// `p` valid for reads of 8 bytes.
#[inline(always)]
pub unsafe fn read_u64_le(p: *const u8) -> u64 {
    // SAFETY: `p` is valid for reads of 8 bytes (`# Safety`), all `read_u64_le_on` needs.
    unsafe { read_u64_le_on(p, UNALIGNED_IS_FAST) }
}

/// [`read_u64_le`] for a target whose unaligned loads are (`fast`) or are not as cheap as
/// aligned ones: both branches run in the host's tests.
///
/// # Safety
/// `p` valid for reads of 8 bytes.
#[inline(always)]
pub(crate) unsafe fn read_u64_le_on(p: *const u8, fast: bool) -> u64 {
    if !fast && (p as usize) & 7 == 0 {
        // SAFETY: 8 readable bytes, 8-aligned.
        return u64::from_le(unsafe { *(p as *const u64) });
    }
    // SAFETY: 8 readable bytes; an unaligned read.
    u64::from_le(unsafe { core::ptr::read_unaligned(p as *const u64) })
}

/// [`read_u64_le`] for 4 bytes.
///
/// # Safety
/// `p` valid for reads of 4 bytes.
#[inline(always)]
pub unsafe fn read_u32_le(p: *const u8) -> u32 {
    // SAFETY: `p` is valid for reads of 4 bytes (`# Safety`), all `read_u32_le_on` needs.
    unsafe { read_u32_le_on(p, UNALIGNED_IS_FAST) }
}

/// [`read_u64_le_on`] for 4 bytes.
///
/// # Safety
/// `p` valid for reads of 4 bytes.
#[inline(always)]
pub(crate) unsafe fn read_u32_le_on(p: *const u8, fast: bool) -> u32 {
    if !fast && (p as usize) & 3 == 0 {
        // SAFETY: 4 readable bytes, 4-aligned.
        return u32::from_le(unsafe { *(p as *const u32) });
    }
    // SAFETY: 4 readable bytes; an unaligned read.
    u32::from_le(unsafe { core::ptr::read_unaligned(p as *const u32) })
}

/// Compares `len` bytes at `a` and `b`.
///
/// # Safety
/// `a` and `b` must be valid for reads of `len` bytes.
#[inline(always)]
pub unsafe fn bytes_eq(a: *const u8, b: *const u8, len: usize) -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        use core::ptr::read_unaligned as rd;
        // SAFETY: `len` bytes at each; unaligned reads, which these targets serve at the cost
        // of aligned ones (a constant `len` leaves only its own arm).
        unsafe {
            match len {
                4 => return rd(a as *const u32) == rd(b as *const u32),
                8 => return rd(a as *const u64) == rd(b as *const u64),
                16 => return rd(a as *const u128) == rd(b as *const u128),
                32 => return rd(a as *const [u128; 2]) == rd(b as *const [u128; 2]),
                _ => {}
            }
        }
    }
    let mut i = 0usize;
    if ((a as usize) | (b as usize) | len) & 7 == 0 {
        while i < len {
            // SAFETY: both pointers are 8-aligned, `i + 8 <= len` (len is a multiple of 8).
            let (x, y) = unsafe { (*(a.add(i) as *const u64), *(b.add(i) as *const u64)) };
            if x != y {
                return false;
            }
            i = i.wrapping_add(8);
        }
        return true;
    }
    if ((a as usize) | (b as usize) | len) & 3 == 0 {
        while i < len {
            // SAFETY: both pointers are 4-aligned, `i + 4 <= len` (len is a multiple of 4).
            let (x, y) = unsafe { (*(a.add(i) as *const u32), *(b.add(i) as *const u32)) };
            if x != y {
                return false;
            }
            i = i.wrapping_add(4);
        }
        return true;
    }
    while i < len {
        // SAFETY: `i < len`, both valid for `len` bytes.
        if unsafe { *a.add(i) != *b.add(i) } {
            return false;
        }
        i = i.wrapping_add(1);
    }
    true
}

/// Copies `len` bytes from `src` to `dst` (non-overlapping).
///
/// # Safety
/// `src` valid for reads and `dst` valid for writes of `len` bytes; the ranges do not overlap.
#[inline(always)]
pub unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        use core::ptr::{read_unaligned as rd, write_unaligned as wr};
        // SAFETY: `len` bytes at each; unaligned moves, as in `bytes_eq`.
        unsafe {
            match len {
                4 => return wr(dst as *mut u32, rd(src as *const u32)),
                8 => return wr(dst as *mut u64, rd(src as *const u64)),
                16 => return wr(dst as *mut u128, rd(src as *const u128)),
                32 => return wr(dst as *mut [u128; 2], rd(src as *const [u128; 2])),
                _ => {}
            }
        }
    }
    let mut i = 0usize;
    if ((src as usize) | (dst as usize) | len) & 7 == 0 {
        while i < len {
            // SAFETY: 8-aligned, in bounds (see above).
            unsafe { *(dst.add(i) as *mut u64) = *(src.add(i) as *const u64) };
            i = i.wrapping_add(8);
        }
        return;
    }
    if ((src as usize) | (dst as usize) | len) & 3 == 0 {
        while i < len {
            // SAFETY: 4-aligned, in bounds.
            unsafe { *(dst.add(i) as *mut u32) = *(src.add(i) as *const u32) };
            i = i.wrapping_add(4);
        }
        return;
    }
    while i < len {
        // SAFETY: in bounds.
        unsafe { *dst.add(i) = *src.add(i) };
        i = i.wrapping_add(1);
    }
}

/// Writes `len` zero bytes at `dst`.
///
/// # Safety
/// `dst` valid for writes of `len` bytes.
#[inline(always)]
pub unsafe fn zero_bytes(dst: *mut u8, len: usize) {
    let mut i = 0usize;
    while i < len {
        // SAFETY: in bounds.
        unsafe { *dst.add(i) = 0 };
        i = i.wrapping_add(1);
    }
}
