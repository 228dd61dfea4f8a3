//! Device-scope (`.gpu`) memory operations in inline PTX, and the kernels' `Slots`.
//!
//! `core::sync::atomic` compiles to system-scope atomics (`.sys`), which order against the
//! host too and cost more; the table is only shared between threads of the device.

#[cfg(target_arch = "nvptx64")]
use core::arch::asm;

use flash_map_core::Slots;

/// Acquire load, device scope.
///
/// # Safety
/// `p` is a valid, 4-byte-aligned address in device memory, and every concurrent access
/// to it is one of this module's atomic operations.
#[cfg(target_arch = "nvptx64")]
#[inline(always)]
pub(crate) unsafe fn ld_acquire(p: *const u32) -> u32 {
    let v: u32;
    // SAFETY: `p` is a valid, aligned device address (`# Safety`), which the instruction
    // reads or writes as one naturally aligned access; it touches no other memory.
    unsafe { asm!("ld.acquire.gpu.u32 {v}, [{p}];", v = out(reg32) v, p = in(reg64) p, options(nostack)) };
    v
}

/// Release store, device scope.
///
/// # Safety
/// `p` is a valid, 4-byte-aligned address in device memory, and every concurrent access
/// to it is one of this module's atomic operations.
#[cfg(target_arch = "nvptx64")]
#[inline(always)]
pub(crate) unsafe fn st_release(p: *mut u32, v: u32) {
    // SAFETY: `p` is a valid, aligned device address (`# Safety`), which the instruction
    // reads or writes as one naturally aligned access; it touches no other memory.
    unsafe { asm!("st.release.gpu.u32 [{p}], {v};", p = in(reg64) p, v = in(reg32) v, options(nostack)) };
}

/// Relaxed load, device scope (sees other blocks' relaxed stores eventually).
///
/// # Safety
/// `p` is a valid, 4-byte-aligned address in device memory, and every concurrent access
/// to it is one of this module's atomic operations.
#[cfg(target_arch = "nvptx64")]
#[inline(always)]
pub(crate) unsafe fn ld_relaxed(p: *const u32) -> u32 {
    let v: u32;
    // SAFETY: `p` is a valid, aligned device address (`# Safety`), which the instruction
    // reads or writes as one naturally aligned access; it touches no other memory.
    unsafe { asm!("ld.relaxed.gpu.u32 {v}, [{p}];", v = out(reg32) v, p = in(reg64) p, options(nostack)) };
    v
}

/// Relaxed store, device scope.
///
/// # Safety
/// `p` is a valid, 4-byte-aligned address in device memory, and every concurrent access
/// to it is one of this module's atomic operations.
#[cfg(target_arch = "nvptx64")]
#[inline(always)]
pub(crate) unsafe fn st_relaxed(p: *mut u32, v: u32) {
    // SAFETY: `p` is a valid, aligned device address (`# Safety`), which the instruction
    // reads or writes as one naturally aligned access; it touches no other memory.
    unsafe { asm!("st.relaxed.gpu.u32 [{p}], {v};", p = in(reg64) p, v = in(reg32) v, options(nostack)) };
}

/// Compare-and-swap (acq_rel, device scope); returns the old value.
///
/// # Safety
/// `p` is a valid, 4-byte-aligned address in device memory, and every concurrent access
/// to it is one of this module's atomic operations.
#[cfg(target_arch = "nvptx64")]
#[inline(always)]
pub(crate) unsafe fn cas(p: *mut u32, cmp: u32, new: u32) -> u32 {
    let old: u32;
    // SAFETY: `p` is a valid, aligned device address (`# Safety`), which the instruction
    // reads or writes as one naturally aligned access; it touches no other memory.
    unsafe {
        asm!("atom.acq_rel.gpu.cas.b32 {o}, [{p}], {c}, {n};",
            o = out(reg32) old, p = in(reg64) p, c = in(reg32) cmp, n = in(reg32) new, options(nostack))
    };
    old
}

#[cfg(target_arch = "nvptx64")]
macro_rules! relaxed_rmw {
    ($name:ident, $op:literal, $t:ty, $reg:ident) => {
        /// A relaxed read-modify-write at device scope; returns the old value.
        ///
        /// # Safety
        /// `p` is a valid address in device memory, aligned to the operand's size, and
        /// every concurrent access to it is atomic.
        #[inline(always)]
        pub(crate) unsafe fn $name(p: *mut $t, v: $t) -> $t {
            let old: $t;
            // SAFETY: `p` is a valid, aligned device address (`# Safety`), which the instruction
    // reads or writes as one naturally aligned access; it touches no other memory.
            unsafe {
                asm!(concat!("atom.relaxed.gpu.", $op, " {o}, [{p}], {v};"),
                    o = out($reg) old, p = in(reg64) p, v = in($reg) v, options(nostack))
            };
            old
        }
    };
}
#[cfg(target_arch = "nvptx64")]
relaxed_rmw!(atomic_max_u32, "max.u32", u32, reg32);
#[cfg(target_arch = "nvptx64")]
relaxed_rmw!(atomic_min_u32, "min.u32", u32, reg32);
#[cfg(target_arch = "nvptx64")]
relaxed_rmw!(atomic_add_u32, "add.u32", u32, reg32);
#[cfg(target_arch = "nvptx64")]
relaxed_rmw!(atomic_add_u64, "add.u64", u64, reg64);

#[cfg(not(target_arch = "nvptx64"))]
pub(crate) use host::*;

/// Butterfly shuffle across the full warp.
///
/// # Safety
/// All 32 lanes of the warp execute this call together (the member mask is the full warp).
#[cfg(target_arch = "nvptx64")]
#[inline(always)]
unsafe fn shfl_bfly(v: u32, lane_mask: u32) -> u32 {
    let r: u32;
    // SAFETY: all 32 lanes of the warp execute this call together (`# Safety`), as the
    // full member mask requires.
    unsafe {
        asm!("shfl.sync.bfly.b32 {r}, {v}, {m}, 0x1f, 0xffffffff;",
            r = out(reg32) r, v = in(reg32) v, m = in(reg32) lane_mask, options(nostack))
    };
    r
}

/// Adds `v` from every lane of the warp to `*p` with one atomic per warp.
///
/// # Safety
/// Every one of the warp's 32 lanes must call this at the same point (kernels call it once,
/// after their grid-stride loop, with blocks of a multiple of 32 threads), and `p` must be
/// a valid device address.
#[cfg(target_arch = "nvptx64")]
#[inline(always)]
pub(crate) unsafe fn warp_add_to(p: *mut u32, mut v: u32, lane: u32) {
    let mut m = 16;
    while m > 0 {
        // SAFETY: every lane of the warp calls `warp_add_to` at the same point (`# Safety`),
        // and the loop runs the same count in every lane, so all 32 reach each shuffle.
        v = v.wrapping_add(unsafe { shfl_bfly(v, m) });
        m >>= 1;
    }
    if lane == 0 && v != 0 {
        // SAFETY: `p` is a valid device address (`# Safety`), updated only atomically.
        unsafe { atomic_add_u32(p, v) };
    }
}

/// The table as the kernels see it.
#[derive(Clone, Copy)]
pub(crate) struct DeviceSlots {
    pub(crate) states: *mut u32,
    pub(crate) keys: *mut u8,
    pub(crate) mask: usize,
    pub(crate) key_size: usize,
    /// Bytes from one slot's key to the next's ([`TableArgs::key_stride`](flash_map_core::abi::TableArgs::key_stride)).
    pub(crate) key_stride: usize,
}

// SAFETY: states are accessed with device-scope acquire/release/CAS; keys are written by the
// claiming thread before its release publish.
unsafe impl Slots for DeviceSlots {
    #[inline(always)]
    fn mask(&self) -> usize {
        self.mask
    }
    #[inline(always)]
    fn key_size(&self) -> usize {
        self.key_size
    }
    #[inline(always)]
    unsafe fn state(&self, slot: usize) -> u32 {
        // SAFETY: slot <= mask.
        unsafe { ld_acquire(self.states.add(slot)) }
    }
    #[inline(always)]
    unsafe fn cas_state(&self, slot: usize, current: u32, new: u32) -> bool {
        // SAFETY: slot <= mask.
        unsafe { cas(self.states.add(slot), current, new) == current }
    }
    #[inline(always)]
    unsafe fn publish(&self, slot: usize, state: u32) {
        // SAFETY: slot <= mask.
        unsafe { st_release(self.states.add(slot), state) }
    }
    #[inline(always)]
    unsafe fn key_ptr(&self, slot: usize) -> *mut u8 {
        // SAFETY: slot <= mask.
        unsafe { self.keys.add(slot.wrapping_mul(self.key_stride)) }
    }
}

/// The same operations on the host, with `core::sync::atomic`, so that the kernels' code
/// runs in host tests (one emulated thread at a time: a warp of one lane).
#[cfg(not(target_arch = "nvptx64"))]
mod host {
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    /// # Safety
    /// As the device version's: `p` valid and aligned for its type, and every concurrent
    /// access to it atomic.
    #[inline(always)]
    pub(crate) unsafe fn ld_acquire(p: *const u32) -> u32 {
        // SAFETY: `p` is valid, aligned and only accessed atomically (`# Safety`), as
        // `from_ptr` requires.
        unsafe { AtomicU32::from_ptr(p as *mut u32) }.load(Ordering::Acquire)
    }
    /// # Safety
    /// As the device version's: `p` valid and aligned for its type, and every concurrent
    /// access to it atomic.
    #[inline(always)]
    pub(crate) unsafe fn st_release(p: *mut u32, v: u32) {
        // SAFETY: `p` is valid, aligned and only accessed atomically (`# Safety`), as
        // `from_ptr` requires.
        unsafe { AtomicU32::from_ptr(p) }.store(v, Ordering::Release)
    }
    /// # Safety
    /// As the device version's: `p` valid and aligned for its type, and every concurrent
    /// access to it atomic.
    #[inline(always)]
    pub(crate) unsafe fn ld_relaxed(p: *const u32) -> u32 {
        // SAFETY: `p` is valid, aligned and only accessed atomically (`# Safety`), as
        // `from_ptr` requires.
        unsafe { AtomicU32::from_ptr(p as *mut u32) }.load(Ordering::Relaxed)
    }
    /// # Safety
    /// As the device version's: `p` valid and aligned for its type, and every concurrent
    /// access to it atomic.
    #[inline(always)]
    pub(crate) unsafe fn st_relaxed(p: *mut u32, v: u32) {
        // SAFETY: `p` is valid, aligned and only accessed atomically (`# Safety`), as
        // `from_ptr` requires.
        unsafe { AtomicU32::from_ptr(p) }.store(v, Ordering::Relaxed)
    }
    /// # Safety
    /// As the device version's: `p` valid and aligned for its type, and every concurrent
    /// access to it atomic.
    #[inline(always)]
    pub(crate) unsafe fn cas(p: *mut u32, cmp: u32, new: u32) -> u32 {
        // SAFETY: `p` is valid, aligned and only accessed atomically (`# Safety`), as
        // `from_ptr` requires.
        match unsafe { AtomicU32::from_ptr(p) }.compare_exchange(cmp, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(v) | Err(v) => v,
        }
    }
    /// # Safety
    /// As the device version's: `p` valid and aligned for its type, and every concurrent
    /// access to it atomic.
    #[inline(always)]
    pub(crate) unsafe fn atomic_max_u32(p: *mut u32, v: u32) -> u32 {
        // SAFETY: `p` is valid, aligned and only accessed atomically (`# Safety`), as
        // `from_ptr` requires.
        unsafe { AtomicU32::from_ptr(p) }.fetch_max(v, Ordering::Relaxed)
    }
    /// # Safety
    /// As the device version's: `p` valid and aligned for its type, and every concurrent
    /// access to it atomic.
    #[inline(always)]
    pub(crate) unsafe fn atomic_min_u32(p: *mut u32, v: u32) -> u32 {
        // SAFETY: `p` is valid, aligned and only accessed atomically (`# Safety`), as
        // `from_ptr` requires.
        unsafe { AtomicU32::from_ptr(p) }.fetch_min(v, Ordering::Relaxed)
    }
    /// # Safety
    /// As the device version's: `p` valid and aligned for its type, and every concurrent
    /// access to it atomic.
    #[inline(always)]
    pub(crate) unsafe fn atomic_add_u32(p: *mut u32, v: u32) -> u32 {
        // SAFETY: `p` is valid, aligned and only accessed atomically (`# Safety`), as
        // `from_ptr` requires.
        unsafe { AtomicU32::from_ptr(p) }.fetch_add(v, Ordering::Relaxed)
    }
    /// # Safety
    /// As the device version's: `p` valid and aligned for its type, and every concurrent
    /// access to it atomic.
    #[inline(always)]
    pub(crate) unsafe fn atomic_add_u64(p: *mut u64, v: u64) -> u64 {
        // SAFETY: `p` is valid, aligned and only accessed atomically (`# Safety`), as
        // `from_ptr` requires.
        unsafe { AtomicU64::from_ptr(p) }.fetch_add(v, Ordering::Relaxed)
    }
    /// A warp of one lane: adds `v` itself.
    /// # Safety
    /// As the device version's: `p` valid and aligned for its type, and every concurrent
    /// access to it atomic.
    #[inline(always)]
    pub(crate) unsafe fn warp_add_to(p: *mut u32, v: u32, _lane: u32) {
        if v != 0 {
            // SAFETY: `p` is valid and only accessed atomically (`# Safety`).
            unsafe { atomic_add_u32(p, v) };
        }
    }
}
