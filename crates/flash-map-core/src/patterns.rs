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
