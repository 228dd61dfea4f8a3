//! Key patterns that users' keys follow, for tests and benchmarks of the hashing.
//!
//! Each pattern maps an index `i` to a key, distinct for distinct `i < 2^32`, with an
//! absent twin ([`KeyPattern::absent`]) that no index maps to. These are the inputs that
//! made a plain `hash & mask` home slot quadratic: ids, timestamps and prefixes whose
//! differences sit in the high bits.

use crate::hash::fmix64;

/// A pattern of `u64` keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyPattern {
    /// Uniformly random keys (a bijective mix of the index).
    Random,
    /// `0, 1, 2, ...`: order ids, row ids.
    Sequential,
    /// `i << 20`: ids in the high bits, nothing in the low ones.
    Strided,
    /// `shard << 40 | id` over 16 shards: venue- or shard-prefixed ids.
    ShardPrefixed,
    /// `timestamp << 20 | sequence`, 16 keys per millisecond from a 2023 epoch time.
    Timestamp,
}

impl KeyPattern {
    /// Every pattern, random first.
    pub const ALL: [KeyPattern; 5] =
        [Self::Random, Self::Sequential, Self::Strided, Self::ShardPrefixed, Self::Timestamp];

    /// A short name (`random`, `sequential`, `strided`, `shard`, `timestamp`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::Sequential => "sequential",
            Self::Strided => "strided",
            Self::ShardPrefixed => "shard",
            Self::Timestamp => "timestamp",
        }
    }

    /// Key number `i` (distinct for distinct `i < 2^32`).
    pub const fn key(self, i: u64) -> u64 {
        match self {
            Self::Random => fmix64(i ^ 0x5851_f42d_4c95_7f2d),
            Self::Sequential => i,
            Self::Strided => i << 20,
            Self::ShardPrefixed => ((i & 15) << 40) | (i >> 4),
            Self::Timestamp => ((1_700_000_000_000 + (i >> 4)) << 20) | (i & 15),
        }
    }

    /// A key of the same shape that no index below 2^32 maps to: the same low bits with the
    /// top bit flipped (for random keys, the mix of another range of indices).
    pub const fn absent(self, i: u64) -> u64 {
        match self {
            Self::Random => fmix64((i | 1 << 40) ^ 0x5851_f42d_4c95_7f2d),
            _ => self.key(i) ^ (1 << 63),
        }
    }
}

/// Key number `i` of the pattern of keys that share their first 8 bytes (structured
/// 32-byte records with a common prefix): identical under Identity, distinct after.
pub const fn shared_prefix_key(i: u64) -> [u8; 32] {
    let mut k = [0x5e; 32];
    let b = i.to_le_bytes();
    let mut j = 0;
    while j < 8 {
        k[8 + j] = b[j];
        j += 1;
    }
    k
}

/// An absent twin of [`shared_prefix_key`]`(i)`.
pub const fn shared_prefix_absent(i: u64) -> [u8; 32] {
    let mut k = shared_prefix_key(i);
    k[31] = 0xa5;
    k
}

/// Key number `i` (below `2^(N / 32)`) of a set of `N`-byte keys that all share one
/// MurmurHash3_x64_128 hash, for *every* seed: the seed-independent multicollisions of
/// Aumasson, Bernstein and Boßlet's hash-flooding attacks (2012), built for the x64 variant.
///
/// Each 32-byte chunk (two 16-byte blocks) comes in two variants. Murmur3 mixes each input
/// word by an invertible function before it enters the state, so the variants are chosen
/// after that mix: block one flips bit 36 of the word xored into `h1` (after the rotation
/// by 27, bit 63 of `h1`, and then of `h2`: a difference in the top bit survives the
/// additions and the multiplication by 5 unchanged); block two flips bits 63 and 36 of
/// `h1`'s word and bit 63 of `h2`'s, which cancels both. The state after the chunk is thus
/// the same for either variant, whatever it was before, and bit `c` of `i` picks the
/// variant of chunk `c`.
pub fn murmur3_multicollision<const N: usize>(i: u64) -> [u8; N] {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    /// The inverse of an odd number modulo 2^64 (Newton's iteration).
    const fn inv(a: u64) -> u64 {
        let mut x = a;
        let mut j = 0;
        while j < 6 {
            x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
            j += 1;
        }
        x
    }
    // The per-word mixes of a block's two halves, and their inverses.
    let f1 = |m: u64| m.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
    let f1inv = |k: u64| k.wrapping_mul(inv(C2)).rotate_right(31).wrapping_mul(inv(C1));
    let f2 = |m: u64| m.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
    let f2inv = |k: u64| k.wrapping_mul(inv(C1)).rotate_right(33).wrapping_mul(inv(C2));
    let mut key = [0u8; N];
    for c in 0..N / 32 {
        let base = 0x0123_4567_89ab_cdef_u64.wrapping_mul(c as u64 + 1);
        let mut m = [base, base ^ 1, base ^ 2, base ^ 3];
        if (i >> c) & 1 == 1 {
            m[0] = f1inv(f1(m[0]) ^ 1 << 36);
            m[2] = f1inv(f1(m[2]) ^ (1 << 63 | 1 << 36));
            m[3] = f2inv(f2(m[3]) ^ 1 << 63);
        }
        for (w, v) in m.iter().enumerate() {
            key[c * 32 + w * 8..][..8].copy_from_slice(&v.to_le_bytes());
        }
    }
    key
}
