//! Unit tests of the core pieces with a plain-array `Slots`.

use crate::hash::{hash_bytes, identity, murmur3, HashStrategy};
use crate::layout::{LayoutError, TableLayout};
use crate::probe::{claim, find, remove, Claim, Slots};
use crate::slot::*;
use core::cell::Cell;

struct Arr<const N: usize, const K: usize> {
    states: [Cell<u32>; N],
    keys: core::cell::UnsafeCell<[[u8; K]; N]>,
}

impl<const N: usize, const K: usize> Arr<N, K> {
    fn new() -> Self {
        Arr { states: core::array::from_fn(|_| Cell::new(EMPTY)), keys: core::cell::UnsafeCell::new([[0; K]; N]) }
    }
}

// SAFETY: single-threaded test table; indices are masked.
unsafe impl<const N: usize, const K: usize> Slots for Arr<N, K> {
    fn mask(&self) -> usize {
        N - 1
    }
    fn key_size(&self) -> usize {
        K
    }
    unsafe fn state(&self, slot: usize) -> u32 {
        self.states[slot].get()
    }
    unsafe fn cas_state(&self, slot: usize, current: u32, new: u32) -> bool {
        if self.states[slot].get() == current {
            self.states[slot].set(new);
            true
        } else {
            false
        }
    }
    unsafe fn publish(&self, slot: usize, state: u32) {
        self.states[slot].set(state)
    }
    unsafe fn key_ptr(&self, slot: usize) -> *mut u8 {
        // SAFETY: slot < N.
        unsafe { (*self.keys.get())[slot].as_mut_ptr() }
    }
}

#[test]
fn identity_is_first_eight_bytes_zero_padded() {
    let k = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    assert_eq!(hash_bytes(HashStrategy::Identity, &k), 0x0807_0605_0403_0201);
    assert_eq!(hash_bytes(HashStrategy::Identity, &k[..3]), 0x0003_0201);
    // SAFETY: 1 byte readable.
    assert_eq!(unsafe { identity(k.as_ptr(), 1) }, 1);
}

#[test]
fn murmur3_matches_reference_vectors() {
    // Reference MurmurHash3_x64_128(seed 0) first halves.
    // SAFETY: slices valid.
    unsafe {
        assert_eq!(murmur3(b"".as_ptr(), 0), 0);
        assert_eq!(murmur3(b"hello".as_ptr(), 5), 0xcbd8_a7b3_41bd_9b02);
        assert_eq!(murmur3(b"The quick brown fox jumps over the lazy dog".as_ptr(), 43), 0xe34b_bc7b_bc07_1b6c);
    }
}

#[test]
fn murmur3_uses_every_byte() {
    let a = [0u8; 32];
    let mut b = a;
    b[31] = 1;
    assert_ne!(hash_bytes(HashStrategy::Murmur3, &a), hash_bytes(HashStrategy::Murmur3, &b));
    assert_eq!(hash_bytes(HashStrategy::Identity, &a), hash_bytes(HashStrategy::Identity, &b));
}

#[test]
fn layout_capacity_rules() {
    let l = TableLayout::for_capacity(1000, 0.5, 8, 8).unwrap();
    assert_eq!(l.capacity, 1024);
    assert_eq!(l.slots, 2048);
    let l = TableLayout::for_capacity(1, 0.5, 1, 0).unwrap();
    assert!(l.capacity >= 1 && l.capacity < l.slots);
    let l = TableLayout::for_capacity(100, 0.9, 4, 4).unwrap();
    assert!(l.capacity >= 100 && l.capacity < l.slots);
    assert_eq!(TableLayout::for_capacity(0, 0.5, 8, 8), Err(LayoutError::ZeroCapacity));
    assert_eq!(TableLayout::for_capacity(5, 0.5, 0, 8), Err(LayoutError::ZeroSizedKey));
    for lf in [0.0, 1.0, -0.5, f64::NAN, 1.5, f64::INFINITY] {
        assert_eq!(TableLayout::for_capacity(5, lf, 8, 8), Err(LayoutError::InvalidLoadFactor));
    }
    assert_eq!(TableLayout::for_capacity(usize::MAX, 0.5, 8, 8), Err(LayoutError::CapacityOverflow));
    assert_eq!(TableLayout::for_capacity(1 << 60, 0.5, 32, 128), Err(LayoutError::CapacityOverflow));
}

#[test]
fn claim_find_remove_roundtrip_with_collisions() {
    let t = Arr::<8, 3>::new();
    let keys: [[u8; 3]; 5] = [[1, 0, 0], [2, 0, 0], [3, 0, 0], [4, 0, 0], [5, 0, 0]];
    // Every key hashes to the same home slot: worst-case chain.
    let h = 5u64;
    for (i, k) in keys.iter().enumerate() {
        // SAFETY: key valid.
        match unsafe { claim(&t, h, k.as_ptr()) } {
            Claim::New { slot, prev } => {
                assert_eq!(slot, (5 + i) & 7);
                assert_eq!(prev, EMPTY);
            }
            other => panic!("{other:?}"),
        }
    }
    // SAFETY: keys valid.
    unsafe {
        assert_eq!(claim(&t, h, keys[2].as_ptr()), Claim::Existing(7));
        assert_eq!(find(&t, h, keys[4].as_ptr()), Some(1));
        assert!(remove(&t, h, keys[1].as_ptr()));
        assert!(!remove(&t, h, keys[1].as_ptr()));
        assert_eq!(find(&t, h, keys[1].as_ptr()), None);
        // Past the tombstone the chain still resolves.
        assert_eq!(find(&t, h, keys[4].as_ptr()), Some(1));
        // Re-inserting reuses the tombstone.
        assert_eq!(claim(&t, h, keys[1].as_ptr()), Claim::New { slot: 6, prev: TOMBSTONE });
    }
}

#[test]
fn full_table_reports_no_room_and_misses_end() {
    let t = Arr::<4, 1>::new();
    for k in 0u8..4 {
        // SAFETY: key valid.
        let c = unsafe { claim(&t, k as u64, [k].as_ptr()) };
        assert!(matches!(c, Claim::New { .. }));
    }
    // SAFETY: key valid.
    unsafe {
        assert_eq!(claim(&t, 0, [9u8].as_ptr()), Claim::NoRoom);
        assert_eq!(find(&t, 0, [9u8].as_ptr()), None);
    }
}

#[test]
fn slot_words_are_distinct() {
    let tag = tag_of(0xdead_beef);
    assert!(is_full(full_word(tag)));
    assert!(!is_full(busy_word(tag)));
    assert!(is_free(EMPTY) && is_free(TOMBSTONE));
    assert!(!is_free(busy_word(0)) && !is_free(full_word(0)));
    assert_eq!(HashStrategy::from_code(HashStrategy::Murmur3.code()), Some(HashStrategy::Murmur3));
    assert_eq!(HashStrategy::from_code(7), None);
}
