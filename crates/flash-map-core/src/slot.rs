//! The slot-state word: one `u32` per slot, stored in its own array (the "S" of SoA).
//!
//! | word | meaning |
//! |---|---|
//! | `0` | [`EMPTY`]: never used since the last clear or rebuild; ends every probe |
//! | `1` | [`TOMBSTONE`]: held a key that was removed; probes go on past it |
//! | `0x4000_0000 \| tag` | busy: being claimed by a concurrent inserter of a key with `tag` |
//! | `0x4000_0000` | pending: only inside an in-place rehash, a key not yet placed |
//! | `0x8000_0000 \| tag` | full: holds a key whose fingerprint is `tag` |
//!
//! The 30-bit fingerprint `tag` comes from the hash, so a probe compares keys only when the
//! tags agree: misses and collisions almost never read the key array.
//!
//! The CPU engines keep each word in one byte ([`state_byte`]): a full slot as `0x80` and a
//! 7-bit fingerprint ([`BYTE_TAG_MASK`]), a busy one as `0x40` and six bits of it. A table's
//! state array is then a quarter of the size, and stays in the caches where the words would
//! not; a probe compares a key whose fingerprint agrees by chance once in 128 full slots
//! instead of almost never. Every word an algorithm writes into such a table has a tag that
//! fits ([`crate::Slots::tag`], [`crate::Slots::busy_tag`]), so the byte gives the word back
//! exactly ([`word_of_byte`]).

/// A slot that has never held a key (since the last clear or rebuild).
pub const EMPTY: u32 = 0;
/// A slot whose key was removed.
pub const TOMBSTONE: u32 = 1;
/// High bit pattern of a busy (being-claimed) slot.
pub const BUSY_BIT: u32 = 0x4000_0000;
/// A slot whose key waits to be placed by an in-place rehash
/// ([`crate::probe::rehash_in_place`]). No claim runs meanwhile, so it cannot be mistaken
/// for a busy slot; it exists only inside that call.
pub const PENDING: u32 = BUSY_BIT;
/// High bit of a full slot.
pub const FULL_BIT: u32 = 0x8000_0000;
/// Mask of the fingerprint bits.
pub const TAG_MASK: u32 = 0x3FFF_FFFF;

/// The 30-bit fingerprint of a hash. Derived by a multiplicative mix so that it is
/// independent of the home slot (the low hash bits), also for the Identity strategy.
#[inline(always)]
pub const fn tag_of(hash: u64) -> u32 {
    ((hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 34) as u32) & TAG_MASK
}

/// The state word of a full slot with fingerprint `tag`.
#[inline(always)]
pub const fn full_word(tag: u32) -> u32 {
    FULL_BIT | tag
}

/// The state word of a busy slot with fingerprint `tag`.
#[inline(always)]
pub const fn busy_word(tag: u32) -> u32 {
    BUSY_BIT | tag
}

/// Whether a state word marks a live entry.
#[inline(always)]
pub const fn is_full(state: u32) -> bool {
    state & FULL_BIT != 0
}

/// Whether a state word can be claimed by an inserter (empty or tombstone).
#[inline(always)]
pub const fn is_free(state: u32) -> bool {
    state <= TOMBSTONE
}

/// Mask of the fingerprint bits a state byte keeps for a full slot ([`state_byte`]).
pub const BYTE_TAG_MASK: u32 = 0x7F;
/// Mask of the fingerprint bits a state byte keeps for a busy slot: one fewer, as the byte's
/// second-highest bit tells busy from empty and tombstone.
pub const BYTE_BUSY_TAG_MASK: u32 = 0x3F;

/// The state word `word` in one byte: a full word as `0x80 | tag`, a busy word as
/// `0x40 | tag`, [`EMPTY`] and [`TOMBSTONE`] as themselves. Exact for every word whose tag
/// fits [`BYTE_TAG_MASK`] (full) or [`BYTE_BUSY_TAG_MASK`] (busy, and [`PENDING`]).
#[inline(always)]
pub const fn state_byte(word: u32) -> u8 {
    // The tag mask: 0x7F for a full word (bit 31 shifted to bit 6 widens it), else 0x3F.
    let tag = word & (BYTE_BUSY_TAG_MASK | ((word >> 25) & 0x40));
    (((word >> 24) & 0xC0) | tag) as u8
}

/// The state word of a state byte ([`state_byte`]'s inverse).
#[inline(always)]
pub const fn word_of_byte(byte: u8) -> u32 {
    let b = byte as u32;
    if b & 0x80 != 0 {
        FULL_BIT | (b & BYTE_TAG_MASK)
    } else {
        ((b & 0x40) << 24) | (b & BYTE_BUSY_TAG_MASK)
    }
}
