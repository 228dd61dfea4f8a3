//! The probe sequence and the per-key algorithms, written once for every backend.
//!
//! Probing is linear: a key's home slot is [`home`] (the low bits of the hash, which
//! every strategy mixes in all 64 bits), then `+1`, `+2`, ... wrapping at the power-of-two slot count. Every loop is
//! bounded by the slot count, so a full table ends in [`Claim::NoRoom`] or a miss, never in
//! an endless loop.
//!
//! Keys with the *same* 64-bit hash (under Identity, keys that share their first 8 bytes)
//! pile into one run that no mix can spread. A claim therefore counts the keys of its own
//! fingerprint that it passes, and gives up with [`Claim::Collisions`] past
//! [`COLLISION_LIMIT`]: a batch of such keys costs at most that many comparisons per key
//! instead of growing quadratically, and the caller rebuilds with a stronger hash.
//!
//! The algorithms are generic over [`Slots`], which says how a slot's state is read,
//! compared-and-swapped and published. The serial engine implements it with plain loads and
//! stores, the rayon engine with `AtomicU32`, the kernels with device-scope PTX atomics.
//!
//! Concurrent inserters (rayon threads, GPU threads) run [`claim`] at the same time. A claim
//! first swaps a free slot to *busy*, writes the key, then publishes *full* with release
//! ordering; a thread that meets a busy slot with its own fingerprint waits for the publish
//! and compares keys. This makes a key that appears several times in one batch land in
//! exactly one slot, whichever thread gets there first.

use crate::bytes::bytes_eq;
use crate::slot::{
    busy_word, full_word, is_free, is_full, state_byte, tag_of, word_of_byte, BYTE_BUSY_TAG_MASK, BYTE_TAG_MASK, EMPTY,
    PENDING, TOMBSTONE,
};

/// Access to a table's slots. Implemented by each engine for its kind of memory.
///
/// # Safety
/// Implementations must make `state`/`cas_state`/`publish` act on the state word of slot
/// `slot`, with acquire loads and release publishes where threads share the table, and
/// `key_ptr` return a pointer valid for `key_size()` bytes of slot `slot`'s key. Overrides
/// of `group`, `matching` and `any_empty` must report the state words of the [`GROUP`] slots
/// from `slot` as they are, with no bit at or above `GROUP` set: [`find`] and [`claim`]
/// turn each set bit into a slot they read. An implementation that keeps a word in fewer
/// bits ([`ByteSlots`]) narrows [`tag`](Self::tag) and [`busy_tag`](Self::busy_tag) so that
/// every word the algorithms write reads back unchanged.
pub unsafe trait Slots {
    /// `slots - 1`.
    fn mask(&self) -> usize;
    /// Bytes per key.
    fn key_size(&self) -> usize;
    /// Reads slot `slot`'s state (acquire).
    ///
    /// # Safety
    /// `slot <= mask()`.
    unsafe fn state(&self, slot: usize) -> u32;
    /// Replaces the state `current` by `new` if it is still `current`; true on success.
    ///
    /// # Safety
    /// `slot <= mask()`.
    unsafe fn cas_state(&self, slot: usize, current: u32, new: u32) -> bool;
    /// Stores `state` (release): makes the key written before it visible.
    ///
    /// # Safety
    /// `slot <= mask()`.
    unsafe fn publish(&self, slot: usize, state: u32);
    /// Pointer to slot `slot`'s key bytes.
    ///
    /// # Safety
    /// `slot <= mask()`.
    unsafe fn key_ptr(&self, slot: usize) -> *mut u8;

    /// The fingerprint this table stores for `hash`: [`tag_of`], or (in a table of state
    /// bytes) its low bits. Every algorithm takes a key's full and busy words from it.
    #[inline(always)]
    fn tag(&self, hash: u64) -> u32 {
        tag_of(hash)
    }

    /// The fingerprint of a busy word for a key whose fingerprint is `tag` ([`Slots::tag`]):
    /// `tag` itself, or (in a table of state bytes) fewer of its bits. A claim that meets a
    /// busy slot of its busy word waits for it to be published, then compares its full word.
    #[inline(always)]
    fn busy_tag(&self, tag: u32) -> u32 {
        tag
    }

    /// Whether the key in full slot `slot`, whose fingerprint agreed with a claim's for
    /// `hash` and whose bytes differ from its key, has that hash too: a claim counts only
    /// such keys towards [`COLLISION_LIMIT`]. The default, for tables of 30-bit
    /// fingerprints, says yes without looking (keys of other hashes share one by chance
    /// once in 2^30); a table of shorter ones hashes the key.
    ///
    /// # Safety
    /// `slot <= mask()`, and the slot full with its key published.
    #[inline(always)]
    unsafe fn shares_hash(&self, slot: usize, hash: u64) -> bool {
        let _ = (slot, hash);
        true
    }

    /// Whether the algorithms start a probe with [`group`](Self::group), checking the
    /// first [`GROUP`] slots at once. Only for access that no other thread writes during
    /// the call (one thread, or readers only): a wide plain load beside another thread's
    /// compare-and-swap would be a data race, so concurrent accessors keep the default
    /// (`false`) and probe slot by slot with their atomic loads.
    const GROUPED: bool = false;

    /// The [`Group`] of slots `slot..slot + GROUP` against the full word `full`. The default
    /// reads the words one by one through [`state`](Self::state) (usable anywhere, nvptx
    /// included); plain memory overrides it with a vector compare.
    ///
    /// # Safety
    /// `slot + GROUP <= mask() + 1`.
    #[inline(always)]
    unsafe fn group(&self, slot: usize, full: u32) -> Group {
        let mut g = Group { matching: 0, empty: 0, tombstone: 0 };
        let mut j = 0;
        while j < GROUP {
            // SAFETY: `j < GROUP` and `slot + GROUP <= mask + 1` (`# Safety`), so `slot + j <= mask`.
            let st = unsafe { self.state(slot + j) };
            g.matching |= ((st == full) as u32) << j;
            g.empty |= ((st == EMPTY) as u32) << j;
            g.tombstone |= ((st == TOMBSTONE) as u32) << j;
            j += 1;
        }
        g
    }

    /// The [`Group::matching`] mask alone of the group at `slot`: for a lookup, which needs
    /// the empty slots only when no matching slot holds its key. The default takes it from
    /// [`group`](Self::group).
    ///
    /// # Safety
    /// As [`group`](Self::group).
    #[inline(always)]
    unsafe fn matching(&self, slot: usize, full: u32) -> u32 {
        // SAFETY: `slot + GROUP <= mask + 1` (`# Safety`, as `group`'s).
        unsafe { self.group(slot, full) }.matching
    }

    /// Whether the group at `slot` holds an empty slot. The default takes it from
    /// [`group`](Self::group).
    ///
    /// # Safety
    /// As [`group`](Self::group).
    #[inline(always)]
    unsafe fn any_empty(&self, slot: usize) -> bool {
        // SAFETY: `slot + GROUP <= mask + 1` (`# Safety`, as `group`'s).
        unsafe { self.group(slot, EMPTY) }.empty != 0
    }
}

/// Slots a group probe checks at once.
pub const GROUP: usize = 8;

/// The state words of [`GROUP`] consecutive slots compared at once: bit `j` of each mask
/// stands for the `j`-th slot of the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Group {
    /// Slots whose word is the probed key's full word (its fingerprint).
    pub matching: u32,
    /// Empty slots.
    pub empty: u32,
    /// Tombstones.
    pub tombstone: u32,
}

impl Group {
    /// The slots before the first empty one (all of them when none is empty): the part of
    /// the group a probe passes through.
    #[inline(always)]
    pub const fn before_empty(&self) -> u32 {
        // The bits below the lowest set bit of `empty` (all of them when none is set): no
        // branch, no bit count.
        self.empty.wrapping_sub(1) & !self.empty & ((1 << GROUP) - 1)
    }

    /// The matching slots a probe compares keys at: those before the first empty slot.
    #[inline(always)]
    pub const fn candidates(&self) -> u32 {
        self.matching & self.before_empty()
    }
}

/// Plain (non-atomic) access to a table's raw state and key arrays: for a table that one
/// thread owns, or for lookups while nobody writes. The lookup kernels run on it; the CPU
/// engines, whose state words are bytes, on [`ByteSlots`].
#[derive(Clone, Copy, Debug)]
pub struct RawSlots {
    states: *mut u32,
    keys: *mut u8,
    mask: usize,
    key_size: usize,
    /// Bytes from one slot's key to the next's: the key size in a key array of its own, more
    /// where each slot's key and value lie side by side in one record.
    key_stride: usize,
}

impl RawSlots {
    /// A view of `mask + 1` state words at `states` and as many keys of `key_size` bytes at
    /// `keys`.
    ///
    /// # Safety
    /// `mask + 1` is a power of two; both arrays are valid (and aligned) for that many
    /// slots, and stay so, unwritten by anyone but the user of this view, while the view
    /// and its copies are used. Writes through it ([`claim`], [`remove`],
    /// [`rehash_in_place`]) need the arrays writable and no other thread using them; reads
    /// may be shared by threads that only read.
    pub const unsafe fn new(states: *mut u32, keys: *mut u8, mask: usize, key_size: usize) -> Self {
        RawSlots { states, keys, mask, key_size, key_stride: key_size }
    }

    /// [`new`](Self::new) for keys `key_stride` bytes apart (at least `key_size`): slot
    /// `i`'s key lies at `keys + i * key_stride`, as in an array of records that hold a key
    /// and a value each.
    ///
    /// # Safety
    /// As [`new`](Self::new), for an array of `mask + 1` strides (the last one holding at
    /// least its key); `key_stride >= key_size`.
    pub const unsafe fn strided(
        states: *mut u32,
        keys: *mut u8,
        mask: usize,
        key_size: usize,
        key_stride: usize,
    ) -> Self {
        RawSlots { states, keys, mask, key_size, key_stride }
    }
}

// SAFETY: a view of arrays whose owner outlives its use; it is shared between threads only
// by lookups, which do not write.
unsafe impl Send for RawSlots {}
// SAFETY: as above.
unsafe impl Sync for RawSlots {}

// SAFETY: indices are `<= mask` by the `Slots` contract, inside the arrays by construction;
// plain accesses are sound under the single-writer / read-only use documented above.
unsafe impl Slots for RawSlots {
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
        // SAFETY: slot in range.
        unsafe { *self.states.add(slot) }
    }
    #[inline(always)]
    unsafe fn cas_state(&self, slot: usize, current: u32, new: u32) -> bool {
        // SAFETY: slot in range; one writer.
        unsafe {
            let p = self.states.add(slot);
            if *p == current {
                *p = new;
                true
            } else {
                false
            }
        }
    }
    #[inline(always)]
    unsafe fn publish(&self, slot: usize, state: u32) {
        // SAFETY: slot in range.
        unsafe { *self.states.add(slot) = state }
    }
    #[inline(always)]
    unsafe fn key_ptr(&self, slot: usize) -> *mut u8 {
        // SAFETY: slot in range.
        unsafe { self.keys.add(slot.wrapping_mul(self.key_stride)) }
    }

    // Plain memory, one writer or readers only (the view's contract): a wide load is
    // sound. Vector compares where the target has them (SSE2 is x86_64's baseline).
    const GROUPED: bool = cfg!(target_arch = "x86_64");

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn group(&self, slot: usize, full: u32) -> Group {
        use core::arch::x86_64::*;
        // SAFETY: `slot + 8 <= mask + 1`: two 16-byte loads inside the state array; SSE2 is
        // part of the x86_64 baseline.
        unsafe {
            let p = self.states.add(slot);
            let a = _mm_loadu_si128(p as *const __m128i);
            let b = _mm_loadu_si128(p.add(4) as *const __m128i);
            // Each comparison's eight lanes (all ones or zero) narrowed to eight 16-bit
            // lanes, so that two comparisons share one byte mask.
            let eq = |w: u32| {
                let v = _mm_set1_epi32(w as i32);
                _mm_packs_epi32(_mm_cmpeq_epi32(a, v), _mm_cmpeq_epi32(b, v))
            };
            let both = _mm_movemask_epi8(_mm_packs_epi16(eq(full), eq(EMPTY))) as u32;
            // A pass that reads no tombstones leaves this comparison to the optimizer.
            let tomb = _mm_movemask_epi8(_mm_packs_epi16(eq(TOMBSTONE), _mm_setzero_si128())) as u32;
            Group { matching: both & 0xff, empty: both >> 8, tombstone: tomb }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn matching(&self, slot: usize, full: u32) -> u32 {
        // SAFETY: as in `group`.
        unsafe { eq_mask(self.states.add(slot), full) }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn any_empty(&self, slot: usize) -> bool {
        // SAFETY: as in `group`.
        unsafe { eq_mask(self.states.add(slot), EMPTY) != 0 }
    }
}

/// Plain access, as [`RawSlots`], to a table whose state words are kept as bytes
/// ([`state_byte`]): the CPU engines' tables. Fingerprints are seven bits ([`BYTE_TAG_MASK`]),
/// so a claim hashes a key whose fingerprint agrees and whose bytes differ before it counts
/// it towards [`COLLISION_LIMIT`] ([`Slots::shares_hash`]), with the `hasher` that made the
/// claim's hash.
#[derive(Clone, Copy, Debug)]
pub struct ByteSlots {
    states: *mut u8,
    keys: *mut u8,
    mask: usize,
    key_size: usize,
    key_stride: usize,
    hasher: crate::KeyHasher,
}

impl ByteSlots {
    /// A view of `mask + 1` state bytes at `states` and as many keys of `key_size` bytes,
    /// `key_stride` bytes apart, at `keys`, whose claims hash with `hasher`.
    ///
    /// # Safety
    /// As [`RawSlots::strided`], for an array of `mask + 1` state bytes; the hashes handed
    /// to [`claim`] and its variants through this view are `hasher`'s.
    pub const unsafe fn strided(
        states: *mut u8,
        keys: *mut u8,
        mask: usize,
        key_size: usize,
        key_stride: usize,
        hasher: crate::KeyHasher,
    ) -> Self {
        ByteSlots { states, keys, mask, key_size, key_stride, hasher }
    }
}

// SAFETY: as `RawSlots`: a view of arrays whose owner outlives its use, shared between
// threads only by lookups, which do not write.
unsafe impl Send for ByteSlots {}
// SAFETY: as above.
unsafe impl Sync for ByteSlots {}

// SAFETY: indices are `<= mask` by the `Slots` contract, inside the arrays by construction;
// plain accesses are sound under the single-writer / read-only use of `RawSlots`. Every word
// written has a tag that its byte holds (`tag`, `busy_tag`), so `state` reads back the word
// written; the group masks have bits 0..8 only.
unsafe impl Slots for ByteSlots {
    #[inline(always)]
    fn mask(&self) -> usize {
        self.mask
    }
    #[inline(always)]
    fn key_size(&self) -> usize {
        self.key_size
    }
    #[inline(always)]
    fn tag(&self, hash: u64) -> u32 {
        tag_of(hash) & BYTE_TAG_MASK
    }
    #[inline(always)]
    fn busy_tag(&self, tag: u32) -> u32 {
        tag & BYTE_BUSY_TAG_MASK
    }
    #[inline(always)]
    unsafe fn shares_hash(&self, slot: usize, hash: u64) -> bool {
        // SAFETY: `slot <= mask` (the contract), so its key lies inside the key array, and
        // it is published.
        unsafe { self.hasher.hash(self.key_ptr(slot), self.key_size) == hash }
    }
    #[inline(always)]
    unsafe fn state(&self, slot: usize) -> u32 {
        // SAFETY: slot in range.
        word_of_byte(unsafe { *self.states.add(slot) })
    }
    #[inline(always)]
    unsafe fn cas_state(&self, slot: usize, current: u32, new: u32) -> bool {
        // SAFETY: slot in range; one writer.
        unsafe {
            let p = self.states.add(slot);
            if *p == state_byte(current) {
                *p = state_byte(new);
                true
            } else {
                false
            }
        }
    }
    #[inline(always)]
    unsafe fn publish(&self, slot: usize, state: u32) {
        // SAFETY: slot in range.
        unsafe { *self.states.add(slot) = state_byte(state) }
    }
    #[inline(always)]
    unsafe fn key_ptr(&self, slot: usize) -> *mut u8 {
        // SAFETY: slot in range.
        unsafe { self.keys.add(slot.wrapping_mul(self.key_stride)) }
    }

    const GROUPED: bool = cfg!(target_arch = "x86_64");

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn group(&self, slot: usize, full: u32) -> Group {
        use core::arch::x86_64::*;
        // SAFETY: `slot + 8 <= mask + 1`: one 8-byte load inside the state array; SSE2 is
        // part of the x86_64 baseline.
        unsafe {
            // The load zeroes the register's upper eight bytes: only the empty mask, whose
            // byte is zero, needs them cut off.
            let a = _mm_loadl_epi64(self.states.add(slot) as *const __m128i);
            let eq = |w: u32| _mm_movemask_epi8(_mm_cmpeq_epi8(a, _mm_set1_epi8(state_byte(w) as i8))) as u32;
            // Three independent masks; a pass that reads no tombstones leaves the third to
            // the optimizer.
            Group { matching: eq(full) & 0xff, empty: eq(EMPTY) & 0xff, tombstone: eq(TOMBSTONE) & 0xff }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn matching(&self, slot: usize, full: u32) -> u32 {
        // SAFETY: as in `group`.
        unsafe { byte_eq_mask(self.states.add(slot), full) }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn any_empty(&self, slot: usize) -> bool {
        // SAFETY: as in `group`.
        unsafe { byte_eq_mask(self.states.add(slot), EMPTY) != 0 }
    }
}

/// The mask of the eight state bytes at `p` that hold the word `w` (bit `j` for byte `j`).
///
/// # Safety
/// `p` is valid for reading eight bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn byte_eq_mask(p: *const u8, w: u32) -> u32 {
    use core::arch::x86_64::*;
    // SAFETY: one 8-byte load inside the eight bytes (the contract); SSE2 is part of the
    // x86_64 baseline.
    unsafe {
        let a = _mm_loadl_epi64(p as *const __m128i);
        _mm_movemask_epi8(_mm_cmpeq_epi8(a, _mm_set1_epi8(state_byte(w) as i8))) as u32 & 0xff
    }
}

/// The mask of the eight state words at `p` that are `w` (bit `j` for word `j`).
///
/// # Safety
/// `p` is valid for reading eight `u32`s.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn eq_mask(p: *const u32, w: u32) -> u32 {
    use core::arch::x86_64::*;
    // SAFETY: two 16-byte loads inside the eight words (the contract); SSE2 is part of the
    // x86_64 baseline.
    unsafe {
        let v = _mm_set1_epi32(w as i32);
        let a = _mm_cmpeq_epi32(_mm_loadu_si128(p as *const __m128i), v);
        let b = _mm_cmpeq_epi32(_mm_loadu_si128(p.add(4) as *const __m128i), v);
        _mm_movemask_ps(_mm_castsi128_ps(a)) as u32 | (_mm_movemask_ps(_mm_castsi128_ps(b)) as u32) << 4
    }
}

/// The outcome of [`claim`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key was already present (or was claimed by another thread in this batch).
    Existing(usize),
    /// This call claimed a free slot; `prev` is its former state, for rollback.
    New {
        /// The slot claimed.
        slot: usize,
        /// Its state before the claim ([`EMPTY`] or [`TOMBSTONE`]).
        prev: u32,
    },
    /// No free slot is left anywhere in the table.
    NoRoom,
    /// More than [`COLLISION_LIMIT`] other keys with this key's fingerprint lie on its
    /// probe sequence: keys that share its hash. Nothing was claimed.
    Collisions,
}

/// How many keys of its own fingerprint (in practice: of its own 64-bit hash) a claim
/// passes before it gives up with [`Claim::Collisions`].
///
/// Fingerprints are 30 bits, so keys of different hashes share one by chance once in 2^30
/// comparisons; 17 such chance matches on one probe sequence do not happen. Tables of
/// 7-bit fingerprints ([`ByteSlots`]) count only keys of the same hash
/// ([`Slots::shares_hash`]). Past the limit the keys share their hash, and every further
/// key of that hash would cost a pass over all the others.
pub const COLLISION_LIMIT: u32 = 16;

/// The home slot of a hash: its low bits.
///
/// Every strategy's hash is mixed in all 64 bits ([`crate::hash`]), so the low bits spread
/// keys that differ only in their high bits (`i << 40`, timestamps, shard prefixes) like
/// random keys. The fingerprint ([`tag_of`]) comes from another mix of the hash, so keys
/// that share a home region do not share their fingerprints. This is the one place where a
/// hash becomes a slot: the engines' prefetches and partitions call it too.
#[inline(always)]
pub const fn home(hash: u64, mask: usize) -> usize {
    (hash as usize) & mask
}

/// The slot after `slot`.
#[inline(always)]
pub const fn next(slot: usize, mask: usize) -> usize {
    slot.wrapping_add(1) & mask
}

/// Waits while `slot` is busy with `busy`, then tells whether it is `full`.
///
/// # Safety
/// `slot <= s.mask()`.
#[inline(always)]
unsafe fn settled_is<S: Slots>(s: &S, slot: usize, mut st: u32, busy: u32, full: u32) -> bool {
    while st == busy {
        core::hint::spin_loop();
        // SAFETY: `slot <= mask` (`# Safety`), as `state` requires.
        st = unsafe { s.state(slot) };
    }
    st == full
}

/// Finds the slot holding `key`.
///
/// # Safety
/// `key` valid for `s.key_size()` bytes; no concurrent claims on the same table.
#[inline(always)]
pub unsafe fn find<S: Slots>(s: &S, hash: u64, key: *const u8) -> Option<usize> {
    let mask = s.mask();
    let h = home(hash, mask);
    if S::GROUPED && h + GROUP <= mask.wrapping_add(1) {
        // The first slots at once: only those whose fingerprint matches, before the
        // group's first empty slot (a key lies where its probe met no empty slot), have
        // their key compared, with no branch per slot to mispredict. With 7-bit
        // fingerprints ([`ByteSlots`]) a full slot matches by chance once in 128, and a
        // compare past the first empty slot would read a key line for nothing: a lookup of
        // a missing key in a table the caches do not hold then waits for memory.
        // SAFETY: the group lies inside the table.
        let g = unsafe { s.group(h, full_word(s.tag(hash))) };
        // Most absent keys match no slot: their test is the matching mask alone.
        if g.matching != 0 {
            let mut cand = g.candidates();
            while cand != 0 {
                let slot = h + cand.trailing_zeros() as usize;
                // SAFETY: `slot` is a bit of the group at `h`, which lies inside the table, so
                // `slot <= mask`; `key` holds `key_size` readable bytes (`# Safety`).
                if unsafe { bytes_eq(s.key_ptr(slot), key, s.key_size()) } {
                    return Some(slot);
                }
                cand &= cand - 1;
            }
        }
        if g.empty != 0 {
            return None;
        }
        // SAFETY: the rest of the sequence, from the slot after the group.
        return unsafe { find_from(s, hash, key, next(h + GROUP - 1, mask), mask + 1 - GROUP) };
    }
    // SAFETY: `key` holds `key_size` readable bytes and no claims run (`# Safety`, as
    // `find_from`'s); `h = home(..) <= mask`, and the whole table is left to search.
    unsafe { find_from(s, hash, key, h, mask.wrapping_add(1)) }
}

/// Continues the probe for `key` at `slot`, for at most `left` slots. [`find`] starts it at
/// the home slot; a caller that has already checked the first slots of the sequence (the
/// CPU engines check several state words at once) continues it here.
///
/// # Safety
/// As [`find`]; `slot <= mask`.
#[inline(always)]
pub unsafe fn find_from<S: Slots>(s: &S, hash: u64, key: *const u8, mut slot: usize, mut left: usize) -> Option<usize> {
    let mask = s.mask();
    let full = full_word(s.tag(hash));
    let ks = s.key_size();
    while left != 0 {
        // SAFETY: `slot <= mask`.
        let st = unsafe { s.state(slot) };
        if st == EMPTY {
            return None;
        }
        // SAFETY: `slot <= mask` (the caller's start, then `next`); `key` holds `ks` readable
        // bytes (`# Safety`, as `find`'s).
        if st == full && unsafe { bytes_eq(s.key_ptr(slot), key, ks) } {
            return Some(slot);
        }
        slot = next(slot, mask);
        left -= 1;
    }
    None
}

/// How many slots a lookup of `key` visits: up to and including the slot that holds it,
/// or the first empty slot when it is absent (at most the slot count). A diagnostic of
/// how well the hashing spreads a set of keys, not used on the hot paths.
///
/// # Safety
/// As [`find`].
pub unsafe fn probe_length<S: Slots>(s: &S, hash: u64, key: *const u8) -> usize {
    let mask = s.mask();
    let full = full_word(s.tag(hash));
    let mut slot = home(hash, mask);
    let mut visited = 0;
    while visited <= mask {
        visited += 1;
        // SAFETY: `slot <= mask`.
        let st = unsafe { s.state(slot) };
        // SAFETY: `slot <= mask` (`home`, then `next`); `key` holds `key_size` readable bytes
        // (`# Safety`, as `find`'s).
        if st == EMPTY || st == full && unsafe { bytes_eq(s.key_ptr(slot), key, s.key_size()) } {
            break;
        }
        slot = next(slot, mask);
    }
    visited
}

/// The sum and the maximum of [`probe_length`] over `keys`: packed keys of `s.key_size()`
/// bytes each (a shorter tail is ignored), hashed with `hasher`.
///
/// # Safety
/// No concurrent claims on the table.
pub unsafe fn probe_lengths<S: Slots>(s: &S, hasher: &crate::KeyHasher, keys: &[u8]) -> (u64, usize) {
    let (mut sum, mut max) = (0u64, 0usize);
    for k in keys.chunks_exact(s.key_size()) {
        // SAFETY: `k` holds `key_size` bytes (`chunks_exact`), and the caller runs no claims on
        // the table meanwhile (`# Safety`), as `probe_length` requires.
        let n = unsafe { probe_length(s, hasher.hash_bytes(k), k.as_ptr()) };
        sum += n as u64;
        max = max.max(n);
    }
    (sum, max)
}

/// Finds `key` or claims a free slot for it, writing the key bytes (not the value).
/// Gives up with [`Claim::Collisions`] after passing [`COLLISION_LIMIT`] other keys of its
/// fingerprint.
///
/// Safe to run from many threads at once on one table, given `Slots` atomics.
///
/// # Safety
/// `key` valid for `s.key_size()` bytes.
#[inline(always)]
pub unsafe fn claim<S: Slots>(s: &S, hash: u64, key: *const u8) -> Claim {
    // SAFETY: `key` is valid for `key_size` bytes (`# Safety`), all `claim_bounded` asks.
    unsafe { claim_bounded(s, hash, key, COLLISION_LIMIT) }
}

/// [`claim`] in a table that holds no tombstones: the same outcome, without looking for
/// tombstones in the group of slots it starts with (the serial insert of a table being
/// filled or updated).
///
/// # Safety
/// As [`claim`]; no slot of the table is a tombstone.
#[inline(always)]
pub unsafe fn claim_without_tombstones<S: Slots>(s: &S, hash: u64, key: *const u8) -> Claim {
    // SAFETY: `key` is valid for `key_size` bytes and no slot is a tombstone (`# Safety`),
    // what `claim_grouped` asks with `TOMBS` false.
    unsafe { claim_grouped::<S, false>(s, hash, key, COLLISION_LIMIT) }
}

/// [`claim`] with a limit of `limit` keys of the same fingerprint passed (`u32::MAX`: no
/// limit, for a rehash, which must place every key it moves).
///
/// # Safety
/// As [`claim`].
#[inline(always)]
pub unsafe fn claim_bounded<S: Slots>(s: &S, hash: u64, key: *const u8, limit: u32) -> Claim {
    // SAFETY: `key` is valid for `key_size` bytes (`# Safety`), all `claim_grouped` asks
    // with `TOMBS` true.
    unsafe { claim_grouped::<S, true>(s, hash, key, limit) }
}

/// [`claim_bounded`]; `TOMBS` false where the table holds no tombstones.
///
/// # Safety
/// As [`claim`]; with `TOMBS` false, no slot of the table is a tombstone.
#[inline(always)]
unsafe fn claim_grouped<S: Slots, const TOMBS: bool>(s: &S, hash: u64, key: *const u8, limit: u32) -> Claim {
    let mask = s.mask();
    let tag = s.tag(hash);
    let full = full_word(tag);
    let busy = busy_word(s.busy_tag(tag));
    let ks = s.key_size();
    let mut slot = home(hash, mask);
    if S::GROUPED && slot + GROUP <= mask.wrapping_add(1) && limit >= GROUP as u32 {
        // SAFETY: `key` is valid (`# Safety`), `S::GROUPED` holds, the group lies inside
        // the table (tested just above), and with `TOMBS` false no slot is a tombstone
        // (`# Safety`): what `claim_in_group` asks.
        if let Some(c) = unsafe { claim_in_group::<S, TOMBS>(s, slot, full, key) } {
            return c;
        }
    }
    let mut first_free = usize::MAX;
    let mut left = mask.wrapping_add(1);
    // Keys of this fingerprint passed (not this key).
    let mut same = 0u32;
    // Phase 1: is the key present? Stop at the first empty slot; remember the first free one.
    while left != 0 {
        // SAFETY: `slot <= mask`.
        let st = unsafe { s.state(slot) };
        if st == EMPTY {
            if first_free == usize::MAX {
                first_free = slot;
            }
            break;
        }
        if st == TOMBSTONE {
            if first_free == usize::MAX {
                first_free = slot;
            }
        // SAFETY: slot in range; a settled full slot's key is published.
        } else if (st == full || st == busy) && unsafe { settled_is(s, slot, st, busy, full) } {
            // SAFETY: as above.
            if unsafe { bytes_eq(s.key_ptr(slot), key, ks) } {
                return Claim::Existing(slot);
            }
            // SAFETY: as above.
            if unsafe { s.shares_hash(slot, hash) } {
                same = same.wrapping_add(1);
                if same > limit {
                    return Claim::Collisions;
                }
            }
        }
        slot = next(slot, mask);
        left -= 1;
    }
    if first_free == usize::MAX {
        return Claim::NoRoom;
    }
    // Phase 2: claim the first free slot from `first_free` on.
    // SAFETY: `key` is valid for `key_size` bytes (`# Safety`, as `claim`'s), and
    // `first_free <= mask` (a slot phase 1 visited).
    unsafe { claim_from(s, hash, first_free, full, busy, key, limit) }
}

/// Phase 2 of [`claim_bounded`]: claims the first free slot from `slot` on. A concurrent
/// inserter of the same key may win a slot first, and is then found on the way.
///
/// # Safety
/// As [`claim`]; `slot <= mask`.
#[inline(always)]
unsafe fn claim_from<S: Slots>(
    s: &S,
    hash: u64,
    mut slot: usize,
    full: u32,
    busy: u32,
    key: *const u8,
    limit: u32,
) -> Claim {
    let (mask, ks) = (s.mask(), s.key_size());
    let mut left = mask.wrapping_add(1);
    // Phase 1 counted the keys up to the first empty slot; this phase passes again only
    // those after `slot` (when another thread took it first), so it counts afresh.
    let mut same = 0u32;
    while left != 0 {
        // SAFETY: `slot <= mask`.
        let st = unsafe { s.state(slot) };
        if is_free(st) {
            // SAFETY: slot in range.
            if unsafe { s.cas_state(slot, st, busy) } {
                // SAFETY: the compare-and-swap above moved the slot from free to busy, so no other
                // thread writes its key until it is published here; `key` holds `ks` readable bytes
                // (`# Safety`, as `claim`'s).
                unsafe {
                    crate::bytes::copy_bytes(key, s.key_ptr(slot), ks);
                    s.publish(slot, full);
                }
                return Claim::New { slot, prev: st };
            }
            // Lost the race for this slot: look at it again.
            continue;
        }
        // SAFETY: as in phase 1.
        if (st == full || st == busy) && unsafe { settled_is(s, slot, st, busy, full) } {
            // SAFETY: as in phase 1.
            if unsafe { bytes_eq(s.key_ptr(slot), key, ks) } {
                return Claim::Existing(slot);
            }
            // SAFETY: as above.
            if unsafe { s.shares_hash(slot, hash) } {
                same = same.wrapping_add(1);
                if same > limit {
                    return Claim::Collisions;
                }
            }
        }
        slot = next(slot, mask);
        left -= 1;
    }
    Claim::NoRoom
}

/// The start of a claim by a single writer with grouped access: when the group of slots
/// from `home` holds an empty slot, the probe ends in it, so the claim is decided here —
/// the key if it lies before that slot, else the first tombstone before it, else the empty
/// slot itself: the slots the scalar phases of [`claim_bounded`] would choose (nothing is
/// busy with one writer, and at most [`GROUP`] keys are passed). `None` when the group has
/// no empty slot. `TOMBS` false: the table holds no tombstones, so none is looked for.
///
/// As in [`find`], every slot of the group whose fingerprint matches has its key compared,
/// those past the first empty slot too (where the key cannot lie).
///
/// # Safety
/// As [`claim`]; `S::GROUPED` (one writer), and `home + GROUP <= mask + 1`; with `TOMBS`
/// false, no slot of the table is a tombstone.
#[inline(always)]
unsafe fn claim_in_group<S: Slots, const TOMBS: bool>(s: &S, home: usize, full: u32, key: *const u8) -> Option<Claim> {
    let ks = s.key_size();
    // SAFETY: `home + GROUP <= mask + 1` (`# Safety`): the group lies inside the table.
    let g = unsafe { s.group(home, full) };
    if g.empty == 0 {
        return None;
    }
    let mut cand = g.matching;
    while cand != 0 {
        let at = home + cand.trailing_zeros() as usize;
        // SAFETY: `at` is a bit of the group, inside the table; `key` holds `ks` readable bytes
        // (`# Safety`, as `claim`'s).
        if unsafe { bytes_eq(s.key_ptr(at), key, ks) } {
            return Some(Claim::Existing(at));
        }
        cand &= cand - 1;
    }
    let tombs = if TOMBS { g.tombstone & g.before_empty() } else { 0 };
    let (at, prev) = if tombs != 0 {
        (home + tombs.trailing_zeros() as usize, TOMBSTONE)
    } else {
        (home + g.empty.trailing_zeros() as usize, EMPTY)
    };
    // SAFETY: the slot is free and, with `S::GROUPED`, this thread is the table's only writer
    // (`# Safety`), so nothing else reads or writes its key; `key` holds `ks` readable bytes.
    unsafe {
        crate::bytes::copy_bytes(key, s.key_ptr(at), ks);
        s.publish(at, full);
    }
    Some(Claim::New { slot: at, prev })
}

/// Removes `key`: turns its slot into a tombstone. True if this call removed it.
///
/// Safe to run from many threads at once (only one of several removers of a key wins).
///
/// # Safety
/// `key` valid for `s.key_size()` bytes; no concurrent claims on the same table.
#[inline(always)]
pub unsafe fn remove<S: Slots>(s: &S, hash: u64, key: *const u8) -> bool {
    // SAFETY: `key` is valid for `key_size` bytes and no claims run (`# Safety`), as `find`
    // asks.
    match unsafe { find(s, hash, key) } {
        // SAFETY: slot in range.
        Some(slot) => unsafe { s.cas_state(slot, full_word(s.tag(hash)), TOMBSTONE) },
        None => false,
    }
}

/// Rehashes a table where it lies, with `hasher` (the table's own or a new one): every
/// tombstone becomes empty and every key moves to the slot a fresh table would give it
/// after the keys placed before it. Needs no second table and no allocation, so a
/// compaction or a change of hash strategy cannot fail for want of memory.
///
/// The keys are first all marked [`PENDING`]; then each pending slot's key is placed at the
/// first slot from its home that is empty or pending. That slot is the key's own (it stays),
/// an empty one (the key moves there and leaves its slot empty), or another pending one
/// (the two keys swap, and the other key is placed next). A key placed this way passed only
/// full slots, so no slot it passed becomes empty later: every key stays reachable. Each
/// step places one key for good, so the whole rehash takes one step per key.
///
/// `values` holds `value_size` bytes per slot and moves with the keys.
///
/// # Safety
/// `s` is used by this thread alone for the whole call (`Slots` plain accesses suffice);
/// `values` is valid for `(mask + 1) * value_size` bytes and does not overlap the keys.
pub unsafe fn rehash_in_place<S: Slots>(s: &S, values: *mut u8, value_size: usize, hasher: &crate::KeyHasher) {
    // SAFETY: `s` is this thread's alone and `values` holds `(mask + 1) * value_size` bytes
    // apart from the keys (`# Safety`): `mask + 1` strides of one value each, as the
    // strided form asks.
    unsafe { rehash_in_place_strided(s, values, value_size, value_size, hasher) }
}

/// [`rehash_in_place`] for values `value_stride` bytes apart (at least `value_size`): slot
/// `i`'s value lies at `values + i * value_stride`, as in an array of records that hold a
/// key and a value each.
///
/// # Safety
/// As [`rehash_in_place`], with `values` valid for `mask + 1` strides (the last one holding
/// at least its value); a slot's value overlaps no key.
pub unsafe fn rehash_in_place_strided<S: Slots>(
    s: &S,
    values: *mut u8,
    value_size: usize,
    value_stride: usize,
    hasher: &crate::KeyHasher,
) {
    let (mask, ks) = (s.mask(), s.key_size());
    for slot in 0..=mask {
        // SAFETY: `slot <= mask`; this thread owns the table.
        unsafe {
            let st = s.state(slot);
            s.publish(slot, if is_full(st) { PENDING } else { EMPTY });
        }
    }
    for i in 0..=mask {
        // SAFETY: every slot index below is `<= mask`; keys and values of distinct slots do
        // not overlap; this thread owns the table.
        unsafe {
            while s.state(i) == PENDING {
                let h = hasher.hash(s.key_ptr(i), ks);
                let mut t = home(h, mask);
                // Ends at `i` at the latest: it is pending.
                let mut st = s.state(t);
                while st != EMPTY && st != PENDING {
                    t = next(t, mask);
                    st = s.state(t);
                }
                let full = full_word(s.tag(h));
                if t == i {
                    s.publish(i, full);
                } else {
                    let (vi, vt) = (values.add(i * value_stride), values.add(t * value_stride));
                    if st == EMPTY {
                        core::ptr::copy_nonoverlapping(s.key_ptr(i), s.key_ptr(t), ks);
                        core::ptr::copy_nonoverlapping(vi, vt, value_size);
                        s.publish(i, EMPTY);
                    } else {
                        // `i` now holds the key from `t`, still pending.
                        core::ptr::swap_nonoverlapping(s.key_ptr(i), s.key_ptr(t), ks);
                        core::ptr::swap_nonoverlapping(vi, vt, value_size);
                    }
                    s.publish(t, full);
                }
            }
        }
    }
}
