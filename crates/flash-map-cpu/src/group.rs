//! Group probing: the first eight slots of a probe sequence checked at once with SSE2.
//!
//! The probe sequence is the core's (`flash_map_core::probe`): linear from the home slot,
//! ending at the first empty slot. Here the first eight state words are compared with the
//! key's full word and with `EMPTY` in two 16-byte loads; only slots whose fingerprint
//! matches before the first empty one have their key compared. Lookups thus take no
//! data-dependent branch per slot (the mispredicted loop exits of a scalar probe), and the
//! rare sequence that runs past eight slots continues with `probe::find_from`.

use flash_map_core::bytes::{bytes_eq, copy_bytes};
use flash_map_core::probe::{claim, find, find_from, home, Claim, RawSlots, Slots};
use flash_map_core::slot::{full_word, tag_of, TOMBSTONE};

const GROUP: usize = 8;

/// Finds the slot holding `key`, like `probe::find`.
///
/// # Safety
/// `key` valid for `key_size` bytes; no concurrent claims on the table.
#[inline(always)]
pub(crate) unsafe fn find_grouped(s: &RawSlots, hash: u64, key: *const u8) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        let h = home(hash, s.mask());
        if h + GROUP <= s.mask() + 1 {
            // SAFETY: the window `h..h + 8` lies inside the state array.
            let (mut cand, em) = unsafe { candidates(s.states().add(h), full_word(tag_of(hash))) };
            while cand != 0 {
                let slot = h + cand.trailing_zeros() as usize;
                // SAFETY: slot in range; key valid by contract.
                if unsafe { bytes_eq(s.key_ptr(slot), key, s.key_size()) } {
                    return Some(slot);
                }
                cand &= cand - 1;
            }
            if em != 0 {
                return None;
            }
            // SAFETY: `h + 8 <= slots`; the rest of the sequence is searched.
            return unsafe { find_from(s, hash, key, (h + GROUP) & s.mask(), s.mask() + 1 - GROUP) };
        }
    }
    // SAFETY: forwarded contract.
    unsafe { find(s, hash, key) }
}

/// Finds `key` or claims a free slot for it on one thread, like `probe::claim` (the same
/// slot: the first free one before the first empty slot, else that empty slot).
///
/// # Safety
/// `key` valid for `key_size` bytes; no other thread uses the table.
#[inline(always)]
pub(crate) unsafe fn claim_grouped(s: &RawSlots, hash: u64, key: *const u8) -> Claim {
    #[cfg(target_arch = "x86_64")]
    {
        let h = home(hash, s.mask());
        if h + GROUP <= s.mask() + 1 {
            let full = full_word(tag_of(hash));
            // SAFETY: the window `h..h + 8` lies inside the state array.
            let (fm, em, tm) = unsafe { masks3(s.states().add(h), full) };
            if em != 0 {
                let stop = em.trailing_zeros();
                let before = (1u32 << stop) - 1;
                let mut cand = fm & before;
                while cand != 0 {
                    let slot = h + cand.trailing_zeros() as usize;
                    // SAFETY: slot in range; key valid by contract.
                    if unsafe { bytes_eq(s.key_ptr(slot), key, s.key_size()) } {
                        return Claim::Existing(slot);
                    }
                    cand &= cand - 1;
                }
                // Absent: take the first tombstone before the empty slot, else the empty slot.
                let tombs = tm & before;
                let (slot, prev) = if tombs != 0 {
                    (h + tombs.trailing_zeros() as usize, TOMBSTONE)
                } else {
                    (h + stop as usize, flash_map_core::slot::EMPTY)
                };
                // SAFETY: the slot is free and ours (one thread); key valid by contract.
                unsafe {
                    copy_bytes(key, s.key_ptr(slot), s.key_size());
                    s.publish(slot, full);
                }
                return Claim::New { slot, prev };
            }
        }
    }
    // SAFETY: forwarded contract.
    unsafe { claim(s, hash, key) }
}

/// Of the eight state words at `p` (bit j = word j): those equal to `full` before the first
/// empty word — the slots where a probe for that fingerprint compares keys — and those that
/// are empty.
///
/// # Safety
/// `p` valid for reads of eight `u32`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn candidates(p: *const u32, full: u32) -> (u32, u32) {
    // SAFETY: forwarded contract.
    let (fm, em) = unsafe { masks(p, full) };
    let stop = if em != 0 { em.trailing_zeros() } else { GROUP as u32 };
    (fm & ((1u32 << stop) - 1), em)
}

/// Bit masks of the eight state words at `p` equal to `full` and to `EMPTY` (bit j = word j).
///
/// # Safety
/// `p` valid for reads of eight `u32`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn masks(p: *const u32, full: u32) -> (u32, u32) {
    use core::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86_64 baseline; 32 readable bytes by contract.
    unsafe {
        let a = _mm_loadu_si128(p as *const __m128i);
        let b = _mm_loadu_si128(p.add(4) as *const __m128i);
        let f = _mm_set1_epi32(full as i32);
        let z = _mm_setzero_si128();
        let mf = |x| _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(x, f))) as u32;
        let mz = |x| _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(x, z))) as u32;
        (mf(a) | mf(b) << 4, mz(a) | mz(b) << 4)
    }
}

/// Like [`masks`], plus the mask of tombstones.
///
/// # Safety
/// `p` valid for reads of eight `u32`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn masks3(p: *const u32, full: u32) -> (u32, u32, u32) {
    use core::arch::x86_64::*;
    // SAFETY: as in `masks`.
    unsafe {
        let (fm, em) = masks(p, full);
        let a = _mm_loadu_si128(p as *const __m128i);
        let b = _mm_loadu_si128(p.add(4) as *const __m128i);
        let t = _mm_set1_epi32(TOMBSTONE as i32);
        let mt = |x| _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(x, t))) as u32;
        (fm, em, mt(a) | mt(b) << 4)
    }
}
