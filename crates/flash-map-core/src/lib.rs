//! The `no_std`, allocation-free heart of flash-map, shared by the CPU engines and the GPU kernels.
//!
//! Everything that decides *where* a key lives is defined once, here:
//!
//! - [`hash`]: the hash strategies ([`HashStrategy::Identity`], [`HashStrategy::Murmur3`],
//!   the keyed [`HashStrategy::SipHash13`]) and [`KeyHasher`], a strategy with its key.
//! - [`slot`]: the 32-bit slot-state word (empty, tombstone, busy, full + fingerprint tag).
//! - [`layout`]: the structure-of-arrays table layout (states, keys, values as raw bytes) and
//!   the capacity arithmetic (power-of-two slot counts, load factor, overflow checks).
//! - [`probe`]: the home slot ([`probe::home`]), the linear probe sequence and the per-key algorithms (find, claim,
//!   remove) and the in-place rehash, generic over a [`probe::Slots`] accessor so that the serial engine, the rayon
//!   engine and the nvptx kernels run literally the same code with different memory accesses.
//! - [`engine`]: the contract every backend's table implements ([`BulkEngine`]).
//! - [`ledger`]: the bookkeeping every engine shares (live entries, tombstones, the claim
//!   budget, accept-or-roll-back, when to compact) and the headroom invariant.
//! - [`tuning`]: the engines' tuning constants ([`tuning::TUNING`]), in one place.
//! - [`bytes`]: panic-free byte comparison and copying used on the device path.
//! - [`abi`]: the per-position claim codes and the counter indices of the passes.
//! - [`patterns`]: the key patterns users have (ids, timestamps, prefixes), for tests and
//!   benchmarks of the hashing.
//!
//! The crate has no dependencies, no `std`, no allocation, and its hot functions contain no
//! panicking paths, so it compiles for `nvptx64-nvidia-cuda` and inlines into the kernels.
#![no_std]

pub mod abi;
pub mod batch;
pub mod bytes;
pub mod engine;
pub mod hash;
pub mod layout;
pub mod ledger;
pub mod patterns;
pub mod probe;
pub mod slot;
pub mod tuning;

pub use batch::{Batch, BatchError};
pub use engine::{AddCounters, BulkEngine, Contains, CounterKind, Get, GetSink, Insert, InsertNew, Remove};
pub use hash::{HashStrategy, KeyHasher};
pub use layout::{LayoutError, TableLayout};
pub use ledger::{ClaimCounts, Ledger, Refusal};
pub use probe::{Claim, Slots};

#[cfg(test)]
mod tests;
