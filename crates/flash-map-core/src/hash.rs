//! Hash strategies: how a key's bytes become the 64-bit hash from which its home slot
//! ([`crate::probe::home`], the low bits) and fingerprint ([`crate::slot::tag_of`]) come.
//!
//! Every strategy's hash is well mixed in all 64 bits: Identity passes the first 8 key
//! bytes through [`fmix64`], Murmur3 and SipHash end in mixes of their own. So the home
//! slot can be the hash's low bits, computed once per key, and keys that differ only in
//! their high bits (ids shifted left, timestamps, shard prefixes) still spread like random
//! keys.

/// How keys are hashed. The same function runs on every backend.
///
/// Every strategy spreads keys with distinct hashes like random keys, whatever their
/// pattern. What no strategy can fix is two keys with the *same* hash; see
/// [`crate::probe::COLLISION_LIMIT`] for how a batch of those is caught.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum HashStrategy {
    /// The first 8 key bytes as a little-endian `u64` (zero-padded when the key is shorter),
    /// through [`fmix64`] (two multiplies; a bijection, so distinct first 8 bytes give
    /// distinct hashes). Right for keys whose first 8 bytes are distinct: integer ids of any
    /// pattern, SHA-256 digests, Ed25519 public keys. Keys that share their first 8 bytes
    /// share their hash.
    #[default]
    Identity = 0,
    /// MurmurHash3 (x64, 128-bit variant, first half, seed 0) over every key byte. For keys
    /// whose first 8 bytes repeat: shared prefixes, structured records. Not for keys an
    /// adversary chooses: it has seed-independent multicollisions.
    Murmur3 = 1,
    /// SipHash-1-3 over every key byte, keyed with a 128-bit secret (as std's `HashMap`):
    /// for keys that come from outside (network packets, user input). Without the key,
    /// nobody can choose keys that collide.
    SipHash13 = 2,
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
            2 => Some(Self::SipHash13),
            _ => None,
        }
    }

    /// Whether the strategy uses a secret key ([`KeyHasher::seed`]).
    #[inline]
    pub const fn is_keyed(self) -> bool {
        matches!(self, Self::SipHash13)
    }
}

/// A strategy with its key: what the engines and kernels hash with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyHasher {
    /// The strategy.
    pub strategy: HashStrategy,
    /// The 128-bit key of a keyed strategy, as `(k0, k1)`; ignored by the others.
    pub seed: [u64; 2],
}

impl KeyHasher {
    /// A hasher of `strategy` keyed with `seed` (ignored unless the strategy is keyed).
    #[inline]
    pub const fn new(strategy: HashStrategy, seed: [u64; 2]) -> Self {
        KeyHasher { strategy, seed }
    }

    /// An unkeyed hasher (seed zero).
    #[inline]
    pub const fn plain(strategy: HashStrategy) -> Self {
        KeyHasher { strategy, seed: [0, 0] }
    }

    /// Hashes `len` bytes at `key`.
    ///
    /// # Safety
    /// `key` must be valid for reads of `len` bytes.
    #[inline(always)]
    pub unsafe fn hash(&self, key: *const u8, len: usize) -> u64 {
        match self.strategy {
            // SAFETY: `key` is readable for `len` bytes (`# Safety`), all that each strategy
            // reads.
            HashStrategy::Identity => unsafe { identity_hash(key, len) },
            // SAFETY: `key` is readable for `len` bytes (`# Safety`).
            HashStrategy::Murmur3 => unsafe { murmur3(key, len) },
            // SAFETY: `key` is readable for `len` bytes (`# Safety`).
            HashStrategy::SipHash13 => unsafe { siphash13(key, len, self.seed[0], self.seed[1]) },
        }
    }

    /// Safe slice form of [`hash`](Self::hash).
    #[inline]
    pub fn hash_bytes(&self, key: &[u8]) -> u64 {
        // SAFETY: a slice is readable for its length.
        unsafe { self.hash(key.as_ptr(), key.len()) }
    }
}

/// Reads up to 8 bytes little-endian, zero-padded (8 and 4 bytes with one load where the
/// target allows, [`crate::bytes::read_u64_le`]).
///
/// # Safety
/// `p` valid for reads of `n` bytes (any alignment), `n <= 8`.
#[inline(always)]
unsafe fn read_le(p: *const u8, n: usize) -> u64 {
    match n {
        // SAFETY: `p` holds `n` = 8 readable bytes (`# Safety`), the read's width.
        8 => return unsafe { crate::bytes::read_u64_le(p) },
        // SAFETY: `p` holds `n` = 4 readable bytes (`# Safety`), the read's width.
        4 => return unsafe { crate::bytes::read_u32_le(p) } as u64,
        _ => {}
    }
    let mut v = 0u64;
    let mut i = 0usize;
    while i < n {
        // SAFETY: `i < n`, and `p` holds `n` readable bytes (`# Safety`).
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
        // SAFETY: 8 bytes readable.
        unsafe { crate::bytes::read_u64_le(key) }
    } else {
        // SAFETY: `len` bytes readable.
        unsafe { read_le(key, len) }
    }
}

/// The Identity strategy's hash: [`fmix64`] of [`identity`].
///
/// # Safety
/// `key` valid for reads of `len` bytes.
#[inline(always)]
pub unsafe fn identity_hash(key: *const u8, len: usize) -> u64 {
    // SAFETY: `key` is valid for reads of `len` bytes (`# Safety`), all `identity` reads.
    fmix64(unsafe { identity(key, len) })
}

/// MurmurHash3's 64-bit finaliser: a bijection in which every input bit flips every
/// output bit with probability about one half (the Identity strategy's mix).
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
    // SAFETY: `key` is valid for reads of `len` bytes (`# Safety`), all `murmur3_seeded`
    // reads.
    unsafe { murmur3_seeded(key, len, 0) }
}

/// MurmurHash3_x64_128 with a 32-bit `seed`, returning the first 64-bit half. (A seed does
/// not make Murmur3 safe for keys an adversary picks: its multicollisions hold for every
/// seed. The tests show it.)
///
/// # Safety
/// `key` valid for reads of `len` bytes.
#[inline(always)]
pub unsafe fn murmur3_seeded(key: *const u8, len: usize, seed: u32) -> u64 {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let mut h1 = seed as u64;
    let mut h2 = seed as u64;
    let blocks = len / 16;
    let mut b = 0usize;
    while b < blocks {
        // SAFETY: block `b` lies within `len` bytes.
        let (mut k1, mut k2) = unsafe {
            let p = key.add(b * 16);
            (crate::bytes::read_u64_le(p), crate::bytes::read_u64_le(p.add(8)))
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

/// One SipRound on the state `v`.
#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-1-3 (one compression round per 8-byte word, three finalisation rounds; the
/// variant std's `HashMap` uses) of `len` bytes at `key`, keyed with `(k0, k1)`.
///
/// # Safety
/// `key` valid for reads of `len` bytes.
#[inline(always)]
pub unsafe fn siphash13(key: *const u8, len: usize, k0: u64, k1: u64) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let words = len / 8;
    let mut w = 0usize;
    while w < words {
        // SAFETY: word `w` lies within the `len` readable bytes.
        let m = unsafe { crate::bytes::read_u64_le(key.add(w * 8)) };
        v[3] ^= m;
        sip_round(&mut v);
        v[0] ^= m;
        w = w.wrapping_add(1);
    }
    // SAFETY: the `len % 8` tail bytes lie within the readable bytes.
    let b = ((len as u64) << 56) | unsafe { read_le(key.add(words * 8), len & 7) };
    v[3] ^= b;
    sip_round(&mut v);
    v[0] ^= b;
    v[2] ^= 0xff;
    sip_round(&mut v);
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The routing hash of [`shard_of`]: a fixed, unkeyed hash of every key byte that shares
/// nothing with the table's hash strategies (other constants, another construction), so a
/// shard's keys still spread over every slot of the shard's table.
///
/// Folded 128-bit multiplies over 16-byte words (the last zero-padded), with the length
/// mixed in.
/// The same in every process and on every platform. Not for keys an adversary chooses.
#[inline]
pub fn shard_hash(key: &[u8]) -> u64 {
    const P0: u64 = 0xa076_1d64_78bd_642f;
    const P1: u64 = 0xe703_7ed1_a0b4_28db;
    const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
    #[inline(always)]
    const fn fold(a: u64, b: u64) -> u64 {
        let r = (a as u128).wrapping_mul(b as u128);
        (r as u64) ^ (r >> 64) as u64
    }
    /// Up to 8 bytes, little-endian, zero-padded.
    #[inline(always)]
    fn word(b: &[u8]) -> u64 {
        match <[u8; 8]>::try_from(b) {
            Ok(w) => u64::from_le_bytes(w),
            Err(_) => b.iter().rev().fold(0, |w, &x| w << 8 | x as u64),
        }
    }
    let n = key.len() as u64;
    let mut h = P0 ^ n;
    let mut rest = key;
    // 16-byte words; the last (1 to 16 bytes) zero-padded.
    while rest.len() > 16 {
        h = fold(word(&rest[..8]) ^ P1, word(&rest[8..16]) ^ h ^ P2);
        rest = &rest[16..];
    }
    let (a, b) = rest.split_at(rest.len().min(8));
    h = fold(word(a) ^ P1, word(b) ^ h ^ P2);
    fold(h ^ P1, n ^ P0 ^ P2)
}

/// Which of `shards` shards owns `key` (`0..shards`; 0 when `shards` is 0 or 1).
///
/// A table's home slot is the low bits of its [`KeyHasher`] hash. Routing by those same
/// bits would leave each shard's keys on a fraction of its home slots. `shard_of` uses
/// the high bits of [`shard_hash`], another function of the key, so the shard a key goes
/// to says nothing about its slot at any table size, whatever the strategy. It is fixed
/// (no per-map key), so every process routes alike.
#[inline]
pub fn shard_of(key: &[u8], shards: usize) -> usize {
    ((shard_hash(key) as u128 * shards as u128) >> 64) as usize
}
