//! The CPU's table view, and [`AtomicSlots`], the [`Slots`] implementation for many threads
//! (one thread uses the core's [`ByteSlots`]).

#[cfg(feature = "rayon")]
use std::sync::atomic::{AtomicU8, Ordering};

use flash_map_core::probe::ByteSlots;
#[cfg(feature = "rayon")]
use flash_map_core::slot::{state_byte, tag_of, word_of_byte, BYTE_BUSY_TAG_MASK, BYTE_TAG_MASK};
#[cfg(feature = "rayon")]
use flash_map_core::Slots;
use flash_map_core::{HashStrategy, KeyHasher};

/// Raw pointers to one table's arrays, shared by the threads of one pass. Made only by
/// `CpuTable::raw`, so its pointers always view the live arrays of a table of `mask + 1`
/// slots; it is used only while that table is borrowed.
#[derive(Clone, Copy)]
pub(crate) struct RawTable {
    /// State bytes ([`flash_map_core::slot::state_byte`]).
    pub states: *mut u8,
    /// Key bytes.
    pub keys: *mut u8,
    /// Value bytes: per slot (`value_stride` apart), or, in a dense table (`index` not
    /// null), `vcap` values in the order they were first written.
    pub values: *mut u8,
    /// In a dense table ([`crate::table::dense`]), one `u32` per slot: the index in `values`
    /// of the value of the entry the slot holds (set when the slot is claimed new); null in
    /// a table of values per slot.
    pub index: *mut u32,
    /// Values the dense array holds (0 in a table of values per slot).
    pub vcap: usize,
    /// `slots - 1`.
    pub mask: usize,
    /// Bytes per key.
    pub key_size: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// Bytes from one slot's key (and value) to the next's: `key_size + value_size` in a
    /// table of records, where `values` is `keys + key_size`; 0 in a table of a key array
    /// and a value array (then the strides are the sizes).
    pub record: usize,
    /// Bytes from one slot's key to the next's (the record, or the key size).
    pub key_stride: usize,
    /// Bytes from one slot's value to the next's (the record, or the value size).
    pub value_stride: usize,
    /// The table's hasher: the claims' hashes are its own.
    pub hasher: KeyHasher,
}

// SAFETY: a pass hands the same `RawTable` to its threads only with atomic slot claims
// (`AtomicSlots`) or disjoint writes; the table outlives the pass (it is borrowed mutably).
unsafe impl Send for RawTable {}
// SAFETY: a shared `&RawTable` gives only its pointers and sizes; every access through them
// is `unsafe` and made under the same rule as for `Send` (atomic claims, disjoint writes,
// or reads while no pass writes), within the borrowed table's lifetime.
unsafe impl Sync for RawTable {}

/// Evaluates `$body` with the constant `$ks` set to `$size` when that is a common key size
/// (4, 8, 16 or 32 bytes), else to 0 (the size stays a run-time value): the entry of a pass
/// compiled per key size (see [`with_key_size`]).
macro_rules! per_key_size {
    ($size:expr, $ks:ident => $body:expr) => {
        per_key_size!(@arms $size, $ks => $body; 4, 8, 16, 32)
    };
    (@arms $size:expr, $ks:ident => $body:expr; $($n:literal),*) => {
        match $size {
            $($n => {
                const $ks: usize = $n;
                $body
            })*
            _ => {
                const $ks: usize = 0;
                $body
            }
        }
    };
}
pub(crate) use per_key_size;

/// Evaluates `$body` with the constant `$id` set to whether `$hash` (a [`KeyHasher`]) is the
/// default strategy, [`HashStrategy::Identity`]: the entry of a pass compiled for it (see
/// [`with_strategy`]), so that its hashing is the inlined fmix64 with no test of the
/// strategy per key.
///
/// [`KeyHasher`]: flash_map_core::KeyHasher
/// [`HashStrategy::Identity`]: flash_map_core::HashStrategy::Identity
macro_rules! per_hash {
    ($hash:expr, $id:ident => $body:expr) => {
        if $hash.strategy == flash_map_core::HashStrategy::Identity {
            const $id: bool = true;
            $body
        } else {
            const $id: bool = false;
            $body
        }
    };
}
pub(crate) use per_hash;

/// `hash` with its strategy the constant [`Identity`](HashStrategy::Identity) in a pass
/// compiled for it (`ID`), else unchanged.
///
/// # Panics
/// If `ID` and the strategy is another.
#[inline(always)]
pub(crate) fn with_strategy<const ID: bool>(hash: KeyHasher) -> KeyHasher {
    if ID {
        assert!(hash.strategy == HashStrategy::Identity, "a pass compiled for another hash strategy");
        KeyHasher::new(HashStrategy::Identity, hash.seed)
    } else {
        hash
    }
}

/// `raw` with its key size the constant `KS` (0: unchanged). The passes are compiled once
/// per common key size, and a constant key size turns every hash and key comparison of the
/// inlined probe code into a few fixed loads.
///
/// # Panics
/// If `KS` is neither 0 nor the table's key size.
#[inline(always)]
pub(crate) fn with_key_size<const KS: usize>(raw: RawTable) -> RawTable {
    with_sizes::<KS, 0>(raw)
}

/// [`with_key_size`], and the value size the constant `VS` (0: unchanged), for passes that
/// copy values and are compiled per value size too: the copies become single moves, and for
/// values too small for a dense array ([`crate::table::dense`]) the index is a null the
/// compiler sees, so that every [`is_dense`](RawTable::is_dense) test of the pass folds away.
///
/// # Panics
/// If `KS` or `VS` is neither 0 nor the table's size, or a table of `VS`-byte values has a
/// dense array where the rule gives none.
#[inline(always)]
pub(crate) fn with_sizes<const KS: usize, const VS: usize>(mut raw: RawTable) -> RawTable {
    if KS != 0 {
        assert_eq!(raw.key_size, KS, "a pass compiled for another key size");
        raw.key_size = KS;
    }
    if VS != 0 {
        assert_eq!(raw.value_size, VS, "a pass compiled for another value size");
        raw.value_size = VS;
        if VS < crate::table::DENSE_VALUE_MIN_BYTES {
            assert!(raw.index.is_null(), "a dense array of {VS}-byte values");
            raw.index = std::ptr::null_mut();
        }
    }
    raw
}

impl RawTable {
    /// Plain, single-threaded (or read-only) access to the states and keys.
    #[inline(always)]
    pub(crate) fn plain(&self) -> ByteSlots {
        // SAFETY: a `RawTable` views the live arrays of a `CpuTable` of `mask + 1` slots;
        // its users (the passes of one call) follow the view's rules: writes on one thread
        // with the table borrowed mutably, shared reads under `&self`; they hash keys with
        // the table's hasher.
        unsafe { ByteSlots::strided(self.states, self.keys, self.mask, self.key_size, self.key_stride, self.hasher) }
    }

    /// Pointer to slot `slot`'s key.
    ///
    /// # Safety
    /// `slot <= mask`.
    #[inline(always)]
    pub(crate) unsafe fn key_ptr(&self, slot: usize) -> *mut u8 {
        // SAFETY: `slot <= mask`, and the key array holds `mask + 1` keys of `key_stride`
        // bytes, so the offset stays inside it.
        unsafe { self.keys.add(slot * self.key_stride) }
    }

    /// Whether the values lie in a dense array behind a per-slot index.
    #[inline(always)]
    pub(crate) fn is_dense(&self) -> bool {
        !self.index.is_null()
    }

    /// Pointer to slot `slot`'s value.
    ///
    /// # Safety
    /// `slot <= mask`; in a dense table, the slot holds an entry (or was claimed new in the
    /// running pass) and its index was given by [`assign_value`](Self::assign_value), so
    /// that it is below `vcap`.
    #[inline(always)]
    pub(crate) unsafe fn value_ptr(&self, slot: usize) -> *mut u8 {
        // SAFETY: `slot <= mask` keeps the index array's read (and, undense, the value
        // offset: `mask + 1` values of `value_stride` bytes) in range; a dense slot's index
        // came from `assign_value`, so it is below `vcap`, and the value array holds `vcap`
        // values of `value_size` bytes.
        unsafe {
            if self.is_dense() {
                self.values.add(*self.index.add(slot) as usize * self.value_size)
            } else {
                self.values.add(slot * self.value_stride)
            }
        }
    }

    /// In a dense table, gives slot `slot`, just claimed new by this thread, the value index
    /// `v`; returns whether `v` is inside the value array. A value index past it means the
    /// batch adds more entries than the table may hold (see `CpuTable::make_value_room`),
    /// so its claims are refused; the slot's value must then not be written. Always `true`
    /// in a table of values per slot.
    ///
    /// # Safety
    /// `slot <= mask`, claimed new by this thread in the running pass (no other thread
    /// reads or writes its index meanwhile).
    #[inline(always)]
    pub(crate) unsafe fn assign_value(&self, slot: usize, v: usize) -> bool {
        if !self.is_dense() {
            return true;
        }
        if v >= self.vcap {
            return false;
        }
        // SAFETY: `slot <= mask` indexes the index array; the slot is this thread's. `v`
        // fits a `u32`: `vcap` is a table's capacity, at most `MAX_SLOTS`.
        unsafe { *self.index.add(slot) = v as u32 };
        true
    }

    /// Slot `slot`'s state byte, for atomic access.
    ///
    /// # Safety
    /// `slot <= mask`, and while the reference is used every access to that byte, by any
    /// thread, is atomic (a parallel pass's protocol).
    #[cfg(feature = "rayon")]
    #[inline(always)]
    unsafe fn atomic(&self, slot: usize) -> &AtomicU8 {
        // SAFETY: `slot <= mask`, inside the state array (a byte needs no alignment); all
        // concurrent access to the byte goes through atomics during a parallel pass.
        unsafe { AtomicU8::from_ptr(self.states.add(slot)) }
    }
}

/// Multi-threaded access: acquire loads, acq-rel compare-and-swap, release publishes —
/// the same protocol the GPU kernels follow.
#[cfg(feature = "rayon")]
#[derive(Clone, Copy)]
pub(crate) struct AtomicSlots(pub RawTable);

// SAFETY: all state accesses are atomic; keys are written only by the thread holding the
// slot busy and read only after an acquire load of the published full word. Every word
// written has a tag that its byte holds (`tag`, `busy_tag`), so the byte gives it back.
#[cfg(feature = "rayon")]
unsafe impl Slots for AtomicSlots {
    #[inline(always)]
    fn mask(&self) -> usize {
        self.0.mask
    }
    #[inline(always)]
    fn key_size(&self) -> usize {
        self.0.key_size
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
        // SAFETY: `slot <= mask` (the contract) and its key published: nobody writes it.
        unsafe { self.0.hasher.hash(self.0.key_ptr(slot), self.0.key_size) == hash }
    }
    #[inline(always)]
    unsafe fn state(&self, slot: usize) -> u32 {
        // SAFETY: slot in range.
        word_of_byte(unsafe { self.0.atomic(slot) }.load(Ordering::Acquire))
    }
    #[inline(always)]
    unsafe fn cas_state(&self, slot: usize, current: u32, new: u32) -> bool {
        let (current, new) = (state_byte(current), state_byte(new));
        // SAFETY: slot in range.
        unsafe { self.0.atomic(slot) }.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
    #[inline(always)]
    unsafe fn publish(&self, slot: usize, state: u32) {
        // SAFETY: slot in range.
        unsafe { self.0.atomic(slot) }.store(state_byte(state), Ordering::Release)
    }
    #[inline(always)]
    unsafe fn key_ptr(&self, slot: usize) -> *mut u8 {
        // SAFETY: slot in range.
        unsafe { self.0.key_ptr(slot) }
    }
}
