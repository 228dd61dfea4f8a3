//! The bookkeeping every engine shares: live entries and tombstones, the claim budget of a
//! batch, the decision to accept or roll back its claims, and when to compact.
//!
//! The engines run the passes (on the CPU or the GPU) and count what the claims did; the
//! [`Ledger`] decides. One rule holds after every call, on every engine: **the empty slots
//! number at least half the headroom (`slots − capacity`), or there are no tombstones**
//! ([`Ledger::headroom_holds`]). Probes end at empty slots, so this keeps absent-key lookups
//! and new-key claims short however removals and inserts interleave.

use crate::layout::TableLayout;

/// What the claim pass of one batch did, summed over its keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClaimCounts {
    /// Keys that claimed a free slot.
    pub new: usize,
    /// Of those, keys that claimed a tombstone.
    pub from_tombstone: usize,
    /// Keys that found no room, or were skipped after the batch had failed.
    pub no_room: usize,
    /// Keys that gave up on too many keys of their own hash.
    pub collisions: usize,
    /// Keys that met a slot already holding them.
    pub existing: usize,
}

/// Why a batch's claims were refused (the engine rolls them back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The new keys do not fit.
    Full {
        /// Live entries before the batch.
        len: usize,
        /// New keys the batch would add (at least this many).
        new: usize,
        /// Entry limit of the table.
        capacity: usize,
    },
    /// Keys gave up after passing more than
    /// [`COLLISION_LIMIT`](crate::probe::COLLISION_LIMIT) keys of their own hash.
    Collisions {
        /// Keys that gave up.
        keys: usize,
    },
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Refusal::Full { len, new, capacity } => {
                write!(f, "table full: {len} entries + {new} new keys exceed capacity {capacity}")
            }
            Refusal::Collisions { keys } => write!(
                f,
                "{keys} keys share their hash with more than {} others; rebuild with a stronger hash strategy",
                crate::probe::COLLISION_LIMIT
            ),
        }
    }
}

/// Live entries and tombstones of one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    len: usize,
    tombstones: usize,
}

impl Ledger {
    /// An empty table's ledger.
    pub const fn new() -> Self {
        Ledger { len: 0, tombstones: 0 }
    }

    /// Live entries.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is live.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tombstones in the table.
    pub const fn tombstones(&self) -> usize {
        self.tombstones
    }

    /// How many new claims a batch of `n` keys may make before it has certainly failed:
    /// `usize::MAX` when even `n` new keys fit. A claim pass stops counting (and skips the
    /// rest of the batch) past it, instead of filling the table and scanning it whole.
    pub const fn claim_budget(&self, layout: &TableLayout, n: usize) -> usize {
        if self.len.saturating_add(n) > layout.capacity {
            layout.capacity - self.len
        } else {
            usize::MAX
        }
    }

    /// Accepts a batch's claims, counting its new keys, or refuses them (the engine then
    /// rolls them back, and the table is as it was).
    pub fn settle(&mut self, layout: &TableLayout, c: ClaimCounts) -> Result<(), Refusal> {
        if c.collisions > 0 {
            return Err(Refusal::Collisions { keys: c.collisions });
        }
        if c.no_room > 0 || self.len + c.new > layout.capacity {
            return Err(Refusal::Full { len: self.len, new: c.new + c.no_room, capacity: layout.capacity });
        }
        self.len += c.new;
        self.tombstones -= c.from_tombstone;
        Ok(())
    }

    /// Counts `n` keys removed (each slot became a tombstone).
    pub fn removed(&mut self, n: usize) {
        self.len -= n;
        self.tombstones += n;
    }

    /// Whether the table must be rehashed to drop its tombstones: more than
    /// [`TableLayout::tombstone_limit`] of them, or the empty slots below half the headroom
    /// while tombstones exist ([`headroom_holds`](Self::headroom_holds) would fail), or
    /// tombstones in a table with no entry left. Engines check it at the end of every
    /// mutating call (removals make tombstones; inserts use up empty slots).
    pub const fn needs_compaction(&self, layout: &TableLayout) -> bool {
        self.tombstones > 0
            && (self.len == 0 || self.tombstones > layout.tombstone_limit() || !self.headroom_holds(layout))
    }

    /// The invariant every call leaves behind: the empty slots (`slots − len − tombstones`)
    /// number at least half the headroom (`slots − capacity`), or there are no tombstones.
    pub const fn headroom_holds(&self, layout: &TableLayout) -> bool {
        let headroom = layout.slots - layout.capacity;
        self.tombstones == 0 || self.len + self.tombstones <= layout.slots - headroom / 2
    }

    /// The ledger of the same entries after a rehash (no tombstones).
    pub const fn compacted(self) -> Self {
        Ledger { len: self.len, tombstones: 0 }
    }

    /// The ledger of an emptied table.
    pub const fn cleared() -> Self {
        Self::new()
    }
}
