//! A read-only view of a caller's batch as raw bytes, whatever its Rust type.
//!
//! A batch `&[(K, V)]` is an array of records with a fixed stride; the key and the value sit
//! at fixed offsets inside each record. A key-only batch `&[K]` is the same with no value.
//! A batch of two columns, `&[K]` and `&[V]` ([`Batch::columns`]), has its values in an
//! array of their own. Engines read keys and values through this view, so they are not
//! generic over `K` and `V`.
//!
//! A [`Batch`] borrows the memory it views for its lifetime `'a`, and is made only by
//! constructors that check its shape against that memory: every key and value it names lies
//! inside the borrowed bytes. Reading through it is therefore sound from safe code, as long
//! as the reader stays below [`len`](Batch::len) and within [`key_size`](Batch::key_size) /
//! [`value_size`](Batch::value_size) bytes — which the `unsafe` accessors ask of their callers.

use core::marker::PhantomData;

/// Why a batch could not be made from the given bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// A key or value does not fit in its record (`offset + size > stride`).
    FieldOutsideRecord,
    /// `len` records of `stride` bytes need more bytes than were given (or overflow).
    TooShort,
    /// The key and value columns of a [`Batch::columns`] differ in length.
    ColumnLengths,
}

/// A strided batch: [`len`](Self::len) records of `stride` bytes, each with a key of
/// `key_size` bytes at `key_off` and a value of `value_size` bytes at `val_off` (no value
/// for key-only batches: `value_size == 0`). In a batch of two columns the values lie in
/// an array of their own instead ([`columns`](Self::columns)).
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    base: *const u8,
    len: usize,
    stride: usize,
    key_off: usize,
    key_size: usize,
    val_off: usize,
    value_size: usize,
    /// Value `i` lies at `vbase + i * vstride`: inside the records (`base + val_off`,
    /// `stride`), or in a column of its own (`split`).
    vbase: *const u8,
    vstride: usize,
    split: bool,
    _borrow: PhantomData<&'a [u8]>,
}

// SAFETY: a `Batch` is a shared borrow of initialised bytes (see the constructors), so it
// may cross threads like the `&'a [u8]` it stands for.
unsafe impl Send for Batch<'_> {}
// SAFETY: as above; nothing is written through it.
unsafe impl Sync for Batch<'_> {}

/// Whether `len` records of `stride` bytes with fields `(off, size)` fit in `bytes` bytes.
const fn shape_ok(bytes: usize, len: usize, stride: usize, fields: [(usize, usize); 2]) -> Result<(), BatchError> {
    let mut i = 0;
    while i < 2 {
        let (off, size) = fields[i];
        // Even a field of no bytes lies inside its record: pointers to it stay in bounds.
        if off > stride || size > stride - off {
            return Err(BatchError::FieldOutsideRecord);
        }
        i += 1;
    }
    match len.checked_mul(stride) {
        Some(n) if n <= bytes => Ok(()),
        _ => Err(BatchError::TooShort),
    }
}

impl<'a> Batch<'a> {
    /// A batch over `bytes`: `len` records of `stride` bytes, key `key_size` bytes at
    /// `key_off`, value `value_size` bytes at `val_off` (0 for none). Errors if a field
    /// leaves its record or the records leave `bytes`.
    ///
    /// ```
    /// use flash_map_core::Batch;
    /// let recs = [1u8, 2, 3, 4, 5, 6];
    /// let b = Batch::from_bytes(&recs, 2, 3, (0, 2), (2, 1)).unwrap();
    /// assert_eq!((b.len(), b.key_size(), b.value_size()), (2, 2, 1));
    /// assert!(Batch::from_bytes(&recs, 4, 3, (0, 2), (2, 1)).is_err()); // 12 bytes > 6
    /// assert!(Batch::from_bytes(&recs, 2, 3, (2, 2), (0, 0)).is_err()); // key leaves its record
    /// ```
    pub const fn from_bytes(
        bytes: &'a [u8],
        len: usize,
        stride: usize,
        (key_off, key_size): (usize, usize),
        (val_off, value_size): (usize, usize),
    ) -> Result<Self, BatchError> {
        match shape_ok(bytes.len(), len, stride, [(key_off, key_size), (val_off, value_size)]) {
            Ok(()) => Ok(Batch {
                base: bytes.as_ptr(),
                len,
                stride,
                key_off,
                key_size,
                val_off,
                value_size,
                // In bounds or one past the end (the field lies in its record), but the
                // records may be none: no access happens through it then.
                vbase: bytes.as_ptr().wrapping_add(val_off),
                vstride: stride,
                split: false,
                _borrow: PhantomData,
            }),
            Err(e) => Err(e),
        }
    }

    /// A batch of the keys `keys`, each `size_of::<K>()` bytes (feature `bytemuck`).
    ///
    /// ```
    /// let keys = [1u64, 2, 3];
    /// let b = flash_map_core::Batch::keys(&keys);
    /// assert_eq!((b.len(), b.key_size(), b.value_size()), (3, 8, 0));
    /// assert_eq!(b.key_bytes(1), &2u64.to_le_bytes()[..]);
    /// ```
    #[cfg(feature = "bytemuck")]
    pub const fn keys<K: bytemuck::Pod>(keys: &'a [K]) -> Self {
        // SAFETY: a `Pod` type has no padding: every byte of every key is initialised.
        unsafe { Self::keys_unchecked(keys) }
    }

    /// A batch of the pairs `pairs` (feature `bytemuck`): keys of `size_of::<K>()` and
    /// values of `size_of::<V>()` bytes, at their offsets in the tuple (padding between
    /// them is never read).
    ///
    /// ```
    /// let pairs = [(1u32, 10u64), (2, 20)];
    /// let b = flash_map_core::Batch::pairs(&pairs);
    /// assert_eq!((b.len(), b.stride(), b.key_size(), b.value_size()), (2, 16, 4, 8));
    /// ```
    #[cfg(feature = "bytemuck")]
    pub const fn pairs<K: bytemuck::Pod, V: bytemuck::Pod>(pairs: &'a [(K, V)]) -> Self {
        // SAFETY: `Pod` types have no padding: every key and value byte is initialised.
        unsafe { Self::pairs_unchecked(pairs) }
    }

    /// [`keys`](Self::keys) for any `K`.
    ///
    /// # Safety
    /// Every byte of a `K` is initialised (no padding): `K` is `bytemuck::Pod` or alike.
    pub const unsafe fn keys_unchecked<K>(keys: &'a [K]) -> Self {
        Batch {
            base: keys.as_ptr() as *const u8,
            len: keys.len(),
            stride: size_of::<K>(),
            key_off: 0,
            key_size: size_of::<K>(),
            val_off: 0,
            value_size: 0,
            vbase: keys.as_ptr() as *const u8,
            vstride: size_of::<K>(),
            split: false,
            _borrow: PhantomData,
        }
    }

    /// A batch of two columns: key `i` is `keys[i]`, its value `values[i]` (feature
    /// `bytemuck`). Errors if the columns differ in length.
    ///
    /// ```
    /// let (keys, values) = ([1u64, 2], [10u32, 20]);
    /// let b = flash_map_core::Batch::columns(&keys, &values).unwrap();
    /// assert_eq!((b.len(), b.key_size(), b.value_size()), (2, 8, 4));
    /// let (k, v) = b.column_bytes().unwrap();
    /// assert_eq!((k.len(), v.len()), (16, 8));
    /// assert_eq!(&v[4..], &20u32.to_le_bytes());
    /// assert!(flash_map_core::Batch::columns(&keys, &values[..1]).is_err());
    /// ```
    #[cfg(feature = "bytemuck")]
    pub const fn columns<K: bytemuck::Pod, V: bytemuck::Pod>(
        keys: &'a [K],
        values: &'a [V],
    ) -> Result<Self, BatchError> {
        if keys.len() != values.len() {
            return Err(BatchError::ColumnLengths);
        }
        // SAFETY: `Pod` types have no padding; the lengths are equal (checked above).
        Ok(unsafe { Self::columns_unchecked(keys, values) })
    }

    /// [`columns`](Self::columns) for any `K` and `V`.
    ///
    /// # Safety
    /// `keys.len() == values.len()`, and every byte of a `K` and of a `V` is initialised
    /// (no padding inside them): `K` and `V` are `bytemuck::Pod` or alike.
    pub const unsafe fn columns_unchecked<K, V>(keys: &'a [K], values: &'a [V]) -> Self {
        Batch {
            value_size: size_of::<V>(),
            vbase: values.as_ptr() as *const u8,
            vstride: size_of::<V>(),
            split: true,
            // SAFETY: every byte of a `K` is initialised (`# Safety`), as `keys_unchecked`
            // requires.
            ..unsafe { Self::keys_unchecked(keys) }
        }
    }

    /// [`pairs`](Self::pairs) for any `K` and `V`.
    ///
    /// # Safety
    /// Every byte of a `K` and of a `V` is initialised (no padding inside them): `K` and `V`
    /// are `bytemuck::Pod` or alike.
    pub const unsafe fn pairs_unchecked<K, V>(pairs: &'a [(K, V)]) -> Self {
        Batch {
            base: pairs.as_ptr() as *const u8,
            len: pairs.len(),
            stride: size_of::<(K, V)>(),
            key_off: core::mem::offset_of!((K, V), 0),
            key_size: size_of::<K>(),
            val_off: core::mem::offset_of!((K, V), 1),
            value_size: size_of::<V>(),
            vbase: (pairs.as_ptr() as *const u8).wrapping_add(core::mem::offset_of!((K, V), 1)),
            vstride: size_of::<(K, V)>(),
            split: false,
            _borrow: PhantomData,
        }
    }

    /// Number of records.
    #[inline(always)]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch has no record.
    #[inline(always)]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes from one record to the next (from one key to the next, in a batch of two
    /// columns).
    #[inline(always)]
    pub const fn stride(&self) -> usize {
        self.stride
    }

    /// Offset of the key within a record.
    #[inline(always)]
    pub const fn key_off(&self) -> usize {
        self.key_off
    }

    /// Bytes per key.
    #[inline(always)]
    pub const fn key_size(&self) -> usize {
        self.key_size
    }

    /// Offset of the value within a record (0 and meaningless in a batch of two columns:
    /// see [`column_bytes`](Self::column_bytes)).
    #[inline(always)]
    pub const fn val_off(&self) -> usize {
        self.val_off
    }

    /// Bytes per value (0: a key-only batch).
    #[inline(always)]
    pub const fn value_size(&self) -> usize {
        self.value_size
    }

    /// Whether the records lie back to back with nothing but key and value in them, the key
    /// first or (`value_first`) the value first: such a batch can be copied as one block.
    pub const fn is_tight(&self) -> Option<bool> {
        let (ks, vs) = (self.key_size, self.value_size);
        if self.split || self.stride != ks + vs {
            return None;
        }
        if self.key_off == 0 && (vs == 0 || self.val_off == ks) {
            Some(false)
        } else if self.val_off == 0 && self.key_off == vs {
            Some(true)
        } else {
            None
        }
    }

    /// The batch's bytes, `len * stride` of them, when the batch is tight
    /// ([`is_tight`](Self::is_tight)): then every one of them is a key or value byte, and
    /// initialised.
    pub fn tight_bytes(&self) -> Option<&'a [u8]> {
        self.is_tight()?;
        // SAFETY: the constructors checked that `len * stride` bytes from `base` are borrowed
        // for `'a`; a tight record is all key and value bytes, which are initialised.
        Some(unsafe { core::slice::from_raw_parts(self.base, self.len * self.stride) })
    }

    /// A batch of two columns ([`columns`](Self::columns)) as its key bytes and its value
    /// bytes, `len * key_size` and `len * value_size` of them; `None` for a batch of records.
    pub fn column_bytes(&self) -> Option<(&'a [u8], &'a [u8])> {
        if !self.split {
            return None;
        }
        // SAFETY: `columns` borrowed `len` keys and `len` values for `'a`, all initialised.
        Some(unsafe {
            (
                core::slice::from_raw_parts(self.base, self.len * self.key_size),
                core::slice::from_raw_parts(self.vbase, self.len * self.value_size),
            )
        })
    }

    /// Record `i`'s key bytes.
    ///
    /// # Panics
    /// If `i >= len`.
    pub fn key_bytes(&self, i: usize) -> &'a [u8] {
        assert!(i < self.len, "record {i} of {}", self.len);
        // SAFETY: `i < len`: the key lies inside the borrowed bytes and is initialised.
        unsafe { core::slice::from_raw_parts(self.key(i), self.key_size) }
    }

    /// Pointer to record `i`'s key, valid for reads of [`key_size`](Self::key_size) bytes
    /// for `'a`.
    ///
    /// # Safety
    /// `i < len`.
    #[inline(always)]
    pub const unsafe fn key(&self, i: usize) -> *const u8 {
        // SAFETY: `i < len`: record `i` lies inside the borrowed bytes (checked by the
        // constructors), and so does its key.
        unsafe { self.base.add(i * self.stride + self.key_off) }
    }

    /// Pointer to record `i`'s value, valid for reads of [`value_size`](Self::value_size)
    /// bytes for `'a`.
    ///
    /// # Safety
    /// `i < len`.
    #[inline(always)]
    pub const unsafe fn val(&self, i: usize) -> *const u8 {
        // SAFETY: `i < len`: value `i` lies inside the borrowed records or value column
        // (checked by the constructors).
        unsafe { self.vbase.add(i * self.vstride) }
    }

    /// The same records without their values (a lookup of an insert batch's keys).
    pub const fn keys_only(self) -> Self {
        Batch { val_off: 0, value_size: 0, vbase: self.base, vstride: self.stride, split: false, ..self }
    }
}
