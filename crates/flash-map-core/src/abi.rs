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

// ---------------------------------------------------------------------------------------
// The kernels' parameters.
//
// Every kernel takes exactly one parameter: a `#[repr(C)]` struct of this module, which the
// host fills and passes by value (PTX `.param .align 8 .b8 name[size]`, the convention of
// CUDA C structs). Host and kernel use the same type, so they cannot disagree on the order
// or width of a field; the assertions below pin the layout, and `cargo xtask ptx --check`
// checks each kernel's parameter size in the PTX against `size_of` of its type. Device
// addresses travel as `u64` (0 for "none"); enums travel as their `u32` codes and are
// decoded with `from_code`, so that no bit pattern from the host is an invalid value.

/// A table on the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TableArgs {
    /// Device address of the state words (`mask + 1` of them).
    pub states: u64,
    /// Device address of slot 0's key (`key_size` bytes per slot, [`key_stride`](Self::key_stride) apart).
    pub keys: u64,
    /// Device address of slot 0's value (`value_size` bytes per slot, [`value_stride`](Self::value_stride) apart).
    pub values: u64,
    /// `slots - 1`.
    pub mask: u64,
    /// Bytes per key.
    pub key_size: u32,
    /// Bytes per value.
    pub value_size: u32,
    /// The hash strategy's code ([`crate::HashStrategy::code`]).
    pub hash: u32,
    /// Bytes per record where keys and values lie side by side, each slot's key and then its
    /// value ([`crate::TableLayout::device_record`]): slot `i`'s key is at `keys + i *
    /// record` and its value at `values + i * record`, with `values = keys + key_size`.
    /// 0: a key array and a value array, slot `i`'s key at `keys + i * key_size` and its
    /// value at `values + i * value_size`.
    pub record: u32,
    /// The key of a keyed strategy.
    pub seed: [u64; 2],
}

impl TableArgs {
    /// Bytes from one slot's key to the next's.
    #[inline(always)]
    pub const fn key_stride(&self) -> usize {
        if self.record == 0 {
            self.key_size as usize
        } else {
            self.record as usize
        }
    }

    /// Bytes from one slot's value to the next's.
    #[inline(always)]
    pub const fn value_stride(&self) -> usize {
        if self.record == 0 {
            self.value_size as usize
        } else {
            self.record as usize
        }
    }
}

/// A batch on the device, as two columns: key `i` at `keys + i * key_stride`, value `i` at
/// `values + i * value_stride`. A batch of records (`&[(K, V)]` copied as it is) is the
/// case `keys = base + key_off`, `values = base + val_off`, both strides the record's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct BatchArgs {
    /// Device address of key 0.
    pub keys: u64,
    /// Device address of value 0 (unused by key-only kernels).
    pub values: u64,
    /// Number of entries.
    pub len: u64,
    /// Bytes from one key to the next.
    pub key_stride: u64,
    /// Bytes from one value to the next.
    pub value_stride: u64,
}

/// The per-position results and the counters of a claim pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ClaimArgs {
    /// Device address of `len` `u32`: the slot each key landed in.
    pub pos: u64,
    /// Device address of `len` bytes: what each claim did (`KIND_*`).
    pub kind: u64,
    /// Device address of the per-slot election words (`mask + 1` `u32`).
    pub aux: u64,
    /// Device address of the [`N_COUNTERS`] counter words.
    pub counters: u64,
    /// New claims the batch may make before it has certainly failed (`u64::MAX`: no bound).
    pub budget: u64,
    /// What a claimer does to its new slot: a [`ClaimMode`] code.
    pub mode: u32,
    /// Zero.
    pub _pad: u32,
}

/// `fm_claim`: find or claim a slot per key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct ClaimParams {
    /// The table.
    pub table: TableArgs,
    /// The batch.
    pub batch: BatchArgs,
    /// Where the claims go.
    pub claim: ClaimArgs,
}

/// `fm_rollback`: undo the new claims of the last claim pass over `n` keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct RollbackParams {
    /// The table.
    pub table: TableArgs,
    /// The claim pass's results.
    pub claim: ClaimArgs,
    /// Keys in the batch.
    pub n: u64,
}

/// `fm_winner_last` and `fm_winner_first`: elect, per slot, the copy that writes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct ElectParams {
    /// The claim pass's results (`pos`, `aux`).
    pub claim: ClaimArgs,
    /// Keys in the batch.
    pub n: u64,
}

/// `fm_write_winners`: the elected copies write their values; `out` (0: none) gets one
/// flag byte per position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct WriteParams {
    /// The table.
    pub table: TableArgs,
    /// The batch (its values).
    pub batch: BatchArgs,
    /// The claim pass's results.
    pub claim: ClaimArgs,
    /// Device address of `len` flag bytes, or 0.
    pub out: u64,
}

/// `fm_add`: add each value to its slot's counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct AddParams {
    /// The table.
    pub table: TableArgs,
    /// The batch (its values).
    pub batch: BatchArgs,
    /// The claim pass's results (`pos`).
    pub claim: ClaimArgs,
}

/// `fm_find`: look up every key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct FindParams {
    /// The table.
    pub table: TableArgs,
    /// The batch (its keys).
    pub batch: BatchArgs,
    /// Device address of `len` flag bytes: 1 where the key is present.
    pub found: u64,
    /// Device address of `len * value_size` bytes for the values of hits, or 0.
    pub out: u64,
    /// Device address of the counters (hits go to [`C_HITS`]), or 0.
    pub counters: u64,
}

/// `fm_remove`: tombstone every present key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct RemoveParams {
    /// The table.
    pub table: TableArgs,
    /// The batch (its keys).
    pub batch: BatchArgs,
    /// Device address of the counters (removals go to [`C_REMOVED`]).
    pub counters: u64,
}

/// `fm_rehash`: move every live entry of `old` into `table` (fresh and empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct RehashParams {
    /// The new table.
    pub table: TableArgs,
    /// The old table.
    pub old: TableArgs,
}

/// The kernels of the module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kernel {
    /// `fm_claim`, [`ClaimParams`].
    Claim,
    /// `fm_rollback`, [`RollbackParams`].
    Rollback,
    /// `fm_winner_last`, [`ElectParams`].
    WinnerLast,
    /// `fm_winner_first`, [`ElectParams`].
    WinnerFirst,
    /// `fm_write_winners`, [`WriteParams`].
    WriteWinners,
    /// `fm_add`, [`AddParams`].
    Add,
    /// `fm_find`, [`FindParams`].
    Find,
    /// `fm_remove`, [`RemoveParams`].
    Remove,
    /// `fm_rehash`, [`RehashParams`].
    Rehash,
}

impl Kernel {
    /// Every kernel.
    pub const ALL: [Kernel; 9] = [
        Kernel::Claim,
        Kernel::Rollback,
        Kernel::WinnerLast,
        Kernel::WinnerFirst,
        Kernel::WriteWinners,
        Kernel::Add,
        Kernel::Find,
        Kernel::Remove,
        Kernel::Rehash,
    ];

    /// The kernel's symbol in the PTX.
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::Claim => "fm_claim",
            Kernel::Rollback => "fm_rollback",
            Kernel::WinnerLast => "fm_winner_last",
            Kernel::WinnerFirst => "fm_winner_first",
            Kernel::WriteWinners => "fm_write_winners",
            Kernel::Add => "fm_add",
            Kernel::Find => "fm_find",
            Kernel::Remove => "fm_remove",
            Kernel::Rehash => "fm_rehash",
        }
    }

    /// Bytes of the kernel's one parameter.
    pub const fn param_size(self) -> usize {
        match self {
            Kernel::Claim => size_of::<ClaimParams>(),
            Kernel::Rollback => size_of::<RollbackParams>(),
            Kernel::WinnerLast | Kernel::WinnerFirst => size_of::<ElectParams>(),
            Kernel::WriteWinners => size_of::<WriteParams>(),
            Kernel::Add => size_of::<AddParams>(),
            Kernel::Find => size_of::<FindParams>(),
            Kernel::Remove => size_of::<RemoveParams>(),
            Kernel::Rehash => size_of::<RehashParams>(),
        }
    }
}

/// A kernel's parameter type.
///
/// # Safety
/// Implemented only for the `#[repr(C)]` types of this module, each for the kernels that
/// take it as their one parameter (`accepts`): a launch passes the host's value to them
/// byte for byte.
pub unsafe trait KernelParams: Copy {
    /// Whether `kernel` takes this type as its parameter.
    fn accepts(kernel: Kernel) -> bool;
}

macro_rules! params {
    ($($t:ty => $($k:ident)|+;)*) => {$(
        // SAFETY: `$t` is `#[repr(C)]` and the parameter of exactly these kernels (their
        // signatures in kernels-rs take it; xtask checks the PTX sizes).
        unsafe impl KernelParams for $t {
            fn accepts(kernel: Kernel) -> bool {
                matches!(kernel, $(Kernel::$k)|+)
            }
        }
    )*};
}
params! {
    ClaimParams => Claim;
    RollbackParams => Rollback;
    ElectParams => WinnerLast | WinnerFirst;
    WriteParams => WriteWinners;
    AddParams => Add;
    FindParams => Find;
    RemoveParams => Remove;
    RehashParams => Rehash;
}

// The layout both sides rely on: every field 8-byte aligned or packed in pairs, no
// implicit padding, sizes a multiple of 8.
const _: () = {
    use core::mem::offset_of;
    assert!(size_of::<TableArgs>() == 64);
    assert!(offset_of!(TableArgs, mask) == 24 && offset_of!(TableArgs, key_size) == 32);
    assert!(
        offset_of!(TableArgs, hash) == 40 && offset_of!(TableArgs, record) == 44 && offset_of!(TableArgs, seed) == 48
    );
    assert!(size_of::<BatchArgs>() == 40 && offset_of!(BatchArgs, value_stride) == 32);
    assert!(size_of::<ClaimArgs>() == 48 && offset_of!(ClaimArgs, budget) == 32 && offset_of!(ClaimArgs, mode) == 40);
    assert!(
        size_of::<ClaimParams>() == 152
            && offset_of!(ClaimParams, batch) == 64
            && offset_of!(ClaimParams, claim) == 104
    );
    assert!(size_of::<RollbackParams>() == 120 && offset_of!(RollbackParams, n) == 112);
    assert!(size_of::<ElectParams>() == 56 && offset_of!(ElectParams, n) == 48);
    assert!(size_of::<WriteParams>() == 160 && offset_of!(WriteParams, out) == 152);
    assert!(size_of::<AddParams>() == 152);
    assert!(size_of::<FindParams>() == 128 && offset_of!(FindParams, counters) == 120);
    assert!(size_of::<RemoveParams>() == 112 && offset_of!(RemoveParams, counters) == 104);
    assert!(size_of::<RehashParams>() == 128 && offset_of!(RehashParams, old) == 64);
    assert!(align_of::<ClaimParams>() == 8);
};
