//! Codes shared by the engines and the kernels for the passes of a batch.
//!
//! A claim pass records, per batch position, what its claim did (`KIND_*`), and the kernels
//! sum what happened into a small array of counters (`C_*`) that the host reads back.

/// The key was found in a slot it already held (or another copy of it claimed this batch).
pub const KIND_EXISTING: u8 = 0;
/// The key claimed an empty slot.
pub const KIND_NEW_FROM_EMPTY: u8 = 1;
/// The key claimed a tombstone.
pub const KIND_NEW_FROM_TOMBSTONE: u8 = 2;
/// The key found no slot, or was skipped because the batch had already failed.
pub const KIND_NO_ROOM: u8 = 3;
/// The key gave up after passing too many keys of its own hash
/// ([`crate::probe::Claim::Collisions`]).
pub const KIND_COLLISIONS: u8 = 4;

/// What a claim pass does to a slot it claims new, on every engine (the CPU's claim pass
/// and the GPU's `fm_claim`, which takes it as its `mode` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ClaimMode {
    /// Nothing: the value is written later.
    Plain = 0,
    /// Zero the value (counters, then added to).
    ZeroValue = 1,
    /// Mark the slot's per-slot word as claimed in this batch (`insert_new`, whose first new
    /// copy is elected afterwards).
    MarkAux = 2,
    /// Write the claiming record's own value (upsert).
    WriteValue = 3,
}

impl ClaimMode {
    /// The mode of a code, as the kernels receive it (`None` for an unknown one).
    pub const fn from_code(code: u64) -> Option<ClaimMode> {
        match code {
            0 => Some(ClaimMode::Plain),
            1 => Some(ClaimMode::ZeroValue),
            2 => Some(ClaimMode::MarkAux),
            3 => Some(ClaimMode::WriteValue),
            _ => None,
        }
    }
}

/// Counter: new keys claimed.
pub const C_NEW: usize = 0;
/// Counter: new keys that claimed a tombstone.
pub const C_FROM_TOMBSTONE: usize = 1;
/// Counter: keys that found no room (or were skipped).
pub const C_NO_ROOM: usize = 2;
/// Counter: keys removed.
pub const C_REMOVED: usize = 3;
/// Counter: keys that met an existing slot.
pub const C_EXISTING: usize = 4;
/// Counter: lookups that hit.
pub const C_HITS: usize = 5;
/// Counter: new claims counted against the budget of a batch that might not fit.
pub const C_GUARD_NEW: usize = 6;
/// Flag word: the batch has certainly failed; remaining keys are skipped.
pub const C_ABORT: usize = 7;
/// Counter: keys that gave up on too many keys of their own hash.
pub const C_COLLISIONS: usize = 8;
/// Number of counter words.
pub const N_COUNTERS: usize = 9;
