//! The structure-of-arrays layout and its capacity arithmetic.
//!
//! A table of `slots` slots (a power of two) is three arrays:
//! `states: [u32; slots]`, `keys: [u8; slots * key_size]`, `values: [u8; slots * value_size]`
//! ([`TableLayout::state_bytes`] counts the GPU's state words; the CPU engines keep a byte
//! per slot instead, [`crate::slot::state_byte`]).
//! Slot `i`'s key is at byte `i * key_size` of `keys`, its value at `i * value_size`. Where
//! key and value fit a small record ([`TableLayout::record_bytes`]), an engine may keep the
//! keys and values as one array of records instead, each a slot's key and then its value;
//! the state words, the slots and so every result stay the same.
//! All sizes are computed with checked arithmetic, so absurd requests become errors.

/// The largest number of slots a table may have (2^31): slot indices and batch positions
/// travel as `u32` through the engines and kernels.
pub const MAX_SLOTS: usize = 1 << 31;

/// The largest record a GPU table keeps ([`TableLayout::device_record`]): one 32-byte sector
/// of device memory, the unit a random load fetches.
pub const DEVICE_RECORD_MAX: usize = 32;

/// The default maximum load factor.
pub const DEFAULT_MAX_LOAD_FACTOR: f64 = 0.5;

/// Why a layout cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// A capacity of zero was requested.
    ZeroCapacity,
    /// The key type has size zero.
    ZeroSizedKey,
    /// The load factor is not in (0, 1).
    InvalidLoadFactor,
    /// The table would need more than [`MAX_SLOTS`] slots or more bytes than `usize` holds.
    CapacityOverflow,
}

/// Checks what every layout needs: a key of at least one byte, a load factor in (0, 1).
fn validate(key_size: usize, max_load_factor: f64) -> Result<(), LayoutError> {
    if key_size == 0 {
        return Err(LayoutError::ZeroSizedKey);
    }
    // `!(x > 0.0 && x < 1.0)` is also true for NaN.
    if !(max_load_factor > 0.0 && max_load_factor < 1.0) {
        return Err(LayoutError::InvalidLoadFactor);
    }
    Ok(())
}

/// Sizes of one table: slot count, per-slot key/value sizes, and the entry limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TableLayout {
    /// Number of slots, a power of two.
    pub slots: usize,
    /// Bytes per key.
    pub key_size: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// The most live entries allowed (`floor(slots * max_load_factor)`, always `< slots`).
    pub capacity: usize,
    /// The maximum load factor this layout was made for.
    pub max_load_factor: f64,
}

impl TableLayout {
    /// The smallest layout that holds `capacity` entries at `max_load_factor`.
    pub fn for_capacity(
        capacity: usize,
        max_load_factor: f64,
        key_size: usize,
        value_size: usize,
    ) -> Result<Self, LayoutError> {
        validate(key_size, max_load_factor)?;
        if capacity == 0 {
            return Err(LayoutError::ZeroCapacity);
        }
        if capacity >= MAX_SLOTS {
            return Err(LayoutError::CapacityOverflow);
        }
        // ceil(capacity / lf) in f64 is exact enough below 2^31; re-checked below.
        let want = capacity as f64 / max_load_factor;
        if want.is_nan() || want >= MAX_SLOTS as f64 * 2.0 {
            return Err(LayoutError::CapacityOverflow);
        }
        // `as` truncates: a start at or just below ceil(want); the loop below corrects it.
        let mut slots = (want as usize).max(2).next_power_of_two();
        loop {
            if slots > MAX_SLOTS {
                return Err(LayoutError::CapacityOverflow);
            }
            let cap = Self::capacity_of(slots, max_load_factor);
            if cap >= capacity {
                break;
            }
            slots *= 2;
        }
        Self::with_slots(slots, max_load_factor, key_size, value_size)
    }

    /// A layout with exactly `slots` slots (a power of two, at least 2).
    pub fn with_slots(
        slots: usize,
        max_load_factor: f64,
        key_size: usize,
        value_size: usize,
    ) -> Result<Self, LayoutError> {
        validate(key_size, max_load_factor)?;
        if slots < 2 || !slots.is_power_of_two() || slots > MAX_SLOTS {
            return Err(LayoutError::CapacityOverflow);
        }
        let layout = TableLayout {
            slots,
            key_size,
            value_size,
            capacity: Self::capacity_of(slots, max_load_factor),
            max_load_factor,
        };
        layout.total_bytes().ok_or(LayoutError::CapacityOverflow)?;
        Ok(layout)
    }

    fn capacity_of(slots: usize, lf: f64) -> usize {
        // `as` truncates toward zero, i.e. floors a positive product.
        let cap = (slots as f64 * lf) as usize;
        // At least one slot always stays free so that every probe ends.
        cap.clamp(1, slots - 1)
    }

    /// `slots - 1`: the mask that turns a hash into a slot index.
    #[inline(always)]
    pub const fn mask(&self) -> usize {
        self.slots - 1
    }

    /// Bytes of the state array.
    pub fn state_bytes(&self) -> Option<usize> {
        self.slots.checked_mul(4)
    }

    /// Bytes of the key array.
    pub fn key_bytes(&self) -> Option<usize> {
        self.slots.checked_mul(self.key_size)
    }

    /// Bytes of the value array.
    pub fn value_bytes(&self) -> Option<usize> {
        self.slots.checked_mul(self.value_size)
    }

    /// Bytes of all three arrays together, or `None` on overflow.
    pub fn total_bytes(&self) -> Option<usize> {
        self.state_bytes()?.checked_add(self.key_bytes()?)?.checked_add(self.value_bytes()?)
    }

    /// Bytes per record when each slot's key and its value can lie side by side in one
    /// record of at most `max` bytes, or 0 when they cannot: a value of at least one byte,
    /// key and value together a power of two (so records never straddle a boundary of that
    /// size that two arrays would not), and the value aligned to its own size, up to 8 bytes,
    /// inside the record (engines add counters atomically). The value starts right after the
    /// key, at byte `key_size` of the record.
    ///
    /// The engines choose between records and two arrays per table; [`device_record`](Self::device_record)
    /// is the GPU's choice.
    pub const fn record_bytes(&self, max: usize) -> usize {
        let (ks, vs) = (self.key_size, self.value_size);
        let align = if vs < 8 { vs } else { 8 };
        let rec = ks + vs;
        if vs > 0 && rec.is_power_of_two() && rec <= max && ks % align == 0 {
            rec
        } else {
            0
        }
    }

    /// Bytes per record of a table on the GPU ([`crate::abi::TableArgs::record`]), or 0 for
    /// a key array and a value array: records of at most [`DEVICE_RECORD_MAX`] bytes. The
    /// state words stay an array of their own, so that a miss, which walks a few slots' words,
    /// reads one 32-byte sector as before; a hit then reads two sectors (the state word, then
    /// key and value together) instead of three, and a claim writes two instead of three.
    /// Records of a state word, key and value were measured too: hits gained, and misses,
    /// reading a sector per slot they passed, lost half their speed (BENCHMARKS.md, issue 12).
    pub const fn device_record(&self) -> usize {
        self.record_bytes(DEVICE_RECORD_MAX)
    }

    /// Tombstones beyond this many trigger an in-place rebuild (one eighth of the slots), so
    /// that removal never rots probe lengths.
    pub const fn tombstone_limit(&self) -> usize {
        self.slots / 8
    }

    /// Calls `f(key, value)` for every full slot of a table of this layout, in slot order:
    /// `states` yields its state words, `keys` and `values` hold its key and value arrays
    /// (host memory: the table's own, or a copy of a device table's). Slots past the end of
    /// a shorter array are not visited.
    pub fn for_each_entry(
        &self,
        states: impl Iterator<Item = u32>,
        keys: &[u8],
        values: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) {
        self.for_each_entry_strided(states, (keys, self.key_size), (values, self.value_size), f)
    }

    /// [`for_each_entry`](Self::for_each_entry) for a table that keeps records of `record`
    /// bytes ([`record_bytes`](Self::record_bytes); 0: a key array and a value array):
    /// `keys` then holds the records, each a slot's key and then its value, and `values` is
    /// not read. The entries, and their order, are those of the same slots in two arrays.
    pub fn for_each_entry_in(
        &self,
        record: usize,
        states: impl Iterator<Item = u32>,
        keys: &[u8],
        values: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) {
        if record == 0 {
            self.for_each_entry(states, keys, values, f)
        } else {
            let values = keys.get(self.key_size..).unwrap_or_default();
            self.for_each_entry_strided(states, (keys, record), (values, record), f)
        }
    }

    /// [`for_each_entry`](Self::for_each_entry) for keys and values a stride apart: slot
    /// `i`'s key starts at byte `i * key_stride` of `keys` and its value at `i *
    /// value_stride` of `values` (for records of a key and a value, both slices view the
    /// records, `values` from the first value on, and both strides are the record's).
    pub fn for_each_entry_strided(
        &self,
        states: impl Iterator<Item = u32>,
        (keys, key_stride): (&[u8], usize),
        (values, value_stride): (&[u8], usize),
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) {
        let (ks, vs) = (self.key_size, self.value_size);
        for (slot, st) in states.enumerate() {
            let (k0, v0) = (slot * key_stride, slot * value_stride);
            let (Some(k), Some(v)) = (keys.get(k0..k0 + ks), values.get(v0..v0 + vs)) else { break };
            if crate::slot::is_full(st) {
                f(k, v);
            }
        }
    }
}
