//! Hash strategies: how a key's bytes become the 64-bit hash that picks its home slot.

/// How keys are hashed. The same function runs on every backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum HashStrategy {
    /// The first 8 key bytes as a little-endian `u64` (zero-padded when the key is shorter).
    /// Free to compute; right for keys that are already uniformly distributed (SHA-256
    /// digests, Ed25519 public keys, random ids).
    #[default]
    Identity = 0,
    /// MurmurHash3 (x64, 128-bit variant, first half, seed 0) over every key byte. For keys
    /// with poor distribution: sequential integers, shared prefixes, structured records.
    Murmur3 = 1,
}

impl HashStrategy {
    /// The strategy's stable numeric code (used in snapshots and kernel arguments).
    #[inline]
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// The strategy for a numeric code, if it names one.
    #[inline]
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::Identity),
            1 => Some(Self::Murmur3),
            _ => None,
        }
    }
}

/// Hashes `len` bytes at `key` with `strategy`.
///
/// # Safety
/// `key` must be valid for reads of `len` bytes.
#[inline(always)]
pub unsafe fn hash_key(strategy: HashStrategy, key: *const u8, len: usize) -> u64 {
    match strategy {
        // SAFETY: forwarded contract.
        HashStrategy::Identity => unsafe { identity(key, len) },
        // SAFETY: forwarded contract.
        HashStrategy::Murmur3 => unsafe { murmur3(key, len) },
    }
}

/// Safe slice form of [`hash_key`].
#[inline]
pub fn hash_bytes(strategy: HashStrategy, key: &[u8]) -> u64 {
    // SAFETY: the slice is valid for its length.
    unsafe { hash_key(strategy, key.as_ptr(), key.len()) }
}

/// Reads up to 8 bytes little-endian, zero-padded.
#[inline(always)]
unsafe fn read_le(p: *const u8, n: usize) -> u64 {
    let mut v = 0u64;
    let mut i = 0usize;
    while i < n {
        // SAFETY: caller guarantees `n` readable bytes.
        v |= (unsafe { *p.add(i) } as u64) << (8 * i as u32);
        i = i.wrapping_add(1);
    }
    v
}

/// Identity: the first 8 bytes as a little-endian `u64`.
///
/// # Safety
/// `key` valid for reads of `len` bytes.
#[inline(always)]
pub unsafe fn identity(key: *const u8, len: usize) -> u64 {
    if len >= 8 {
        // SAFETY: 8 bytes readable; unaligned read.
        u64::from_le(unsafe { core::ptr::read_unaligned(key as *const u64) })
    } else {
        // SAFETY: `len` bytes readable.
        unsafe { read_le(key, len) }
    }
}

/// MurmurHash3's 64-bit finaliser.
#[inline(always)]
pub const fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// MurmurHash3_x64_128 with seed 0, returning the first 64-bit half.
///
/// # Safety
/// `key` valid for reads of `len` bytes.
#[inline(always)]
pub unsafe fn murmur3(key: *const u8, len: usize) -> u64 {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let mut h1 = 0u64;
    let mut h2 = 0u64;
    let blocks = len / 16;
    let mut b = 0usize;
    while b < blocks {
        // SAFETY: block `b` lies within `len` bytes.
        let (mut k1, mut k2) = unsafe {
            let p = key.add(b * 16);
            (
                u64::from_le(core::ptr::read_unaligned(p as *const u64)),
                u64::from_le(core::ptr::read_unaligned(p.add(8) as *const u64)),
            )
        };
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1.rotate_left(27).wrapping_add(h2).wrapping_mul(5).wrapping_add(0x52dc_e729);
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2.rotate_left(31).wrapping_add(h1).wrapping_mul(5).wrapping_add(0x3849_5ab5);
        b = b.wrapping_add(1);
    }
    let tail_len = len & 15;
    // SAFETY: the tail lies within `len` bytes.
    let tail = unsafe { key.add(blocks * 16) };
    if tail_len > 8 {
        // SAFETY: `tail_len - 8` bytes readable after the first 8 tail bytes.
        let mut k2 = unsafe { read_le(tail.add(8), tail_len - 8) };
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
    }
    if tail_len > 0 {
        let n = if tail_len > 8 { 8 } else { tail_len };
        // SAFETY: `n` tail bytes readable.
        let mut k1 = unsafe { read_le(tail, n) };
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
    }
    h1 ^= len as u64;
    h2 ^= len as u64;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1.wrapping_add(h2)
}
