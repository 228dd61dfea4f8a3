//! The kernels. Each takes one parameter, a `#[repr(C)]` struct of
//! [`flash_map_core::abi`] that the host fills with the same type: the table
//! ([`TableArgs`]), the batch as key and value columns ([`BatchArgs`]), and the pass's
//! outputs. Device addresses travel as `u64`; enums as their codes.

#[cfg(target_arch = "nvptx64")]
use core::arch::nvptx::{_block_dim_x, _block_idx_x, _grid_dim_x, _thread_idx_x};

use flash_map_core::bytes::{copy_bytes, zero_bytes};
use flash_map_core::probe::{claim, claim_bounded, find, remove, Claim, RawSlots};
use flash_map_core::slot::{is_full, EMPTY, TOMBSTONE};
use flash_map_core::{HashStrategy, KeyHasher};

use crate::atomics::*;

use flash_map_core::abi::*;

#[cfg(target_arch = "nvptx64")]
#[inline(always)]
fn lane() -> u32 {
    // SAFETY: reading a special register.
    unsafe { _thread_idx_x() as u32 & 31 }
}

#[cfg(target_arch = "nvptx64")]
#[inline(always)]
fn grid() -> (usize, usize) {
    // SAFETY: reading special registers has no preconditions.
    unsafe {
        let bd = _block_dim_x() as usize;
        let start = (_block_idx_x() as usize).wrapping_mul(bd).wrapping_add(_thread_idx_x() as usize);
        (start, (_grid_dim_x() as usize).wrapping_mul(bd))
    }
}

/// The host's grid: one thread that covers every index.
#[cfg(not(target_arch = "nvptx64"))]
#[inline(always)]
fn grid() -> (usize, usize) {
    (0, 1)
}

/// The host's warp: one lane.
#[cfg(not(target_arch = "nvptx64"))]
#[inline(always)]
fn lane() -> u32 {
    0
}

/// The hasher of a table (an unknown code hashes as Identity; the host sends only codes of
/// `HashStrategy`).
#[inline(always)]
fn hasher(t: &TableArgs) -> KeyHasher {
    let strategy = HashStrategy::from_code(t.hash).unwrap_or(HashStrategy::Identity);
    KeyHasher::new(strategy, t.seed)
}

/// The table's slots, with device-scope atomics (for passes that claim or remove).
#[inline(always)]
fn device_slots(t: &TableArgs) -> DeviceSlots {
    DeviceSlots {
        states: t.states as *mut u32,
        keys: t.keys as *mut u8,
        mask: t.mask as usize,
        key_size: t.key_size as usize,
        key_stride: t.key_stride(),
    }
}

/// Key `i` of a batch.
///
/// # Safety
/// `i < b.len`; the batch's keys lie in device memory.
#[inline(always)]
unsafe fn key_at(b: &BatchArgs, i: usize) -> *const u8 {
    // SAFETY: `i < b.len` and the column holds `b.len` keys `key_stride` bytes apart, so
    // the offset stays inside the batch's key column in device memory.
    unsafe { (b.keys as *const u8).add(i.wrapping_mul(b.key_stride as usize)) }
}

/// Value `i` of a batch.
///
/// # Safety
/// `i < b.len`; the batch's values lie in device memory.
#[inline(always)]
unsafe fn value_at(b: &BatchArgs, i: usize) -> *const u8 {
    // SAFETY: `i < b.len` and the column holds `b.len` values `value_stride` bytes apart,
    // so the offset stays inside the batch's value column in device memory.
    unsafe { (b.values as *const u8).add(i.wrapping_mul(b.value_stride as usize)) }
}

/// `hs.hash(key, len)`, with Murmur3 and SipHash-1-3 in functions of their own: inlined
/// into every table kernel, their state raised the kernels' register counts (ptxas: find
/// 56 -> 72 registers on sm_90, claim 64 -> 72), which costs occupancy also to the batches
/// that never run them. Identity stays inline. The outlining lives here, not in
/// flash-map-core: PTX is built without a linker, so a non-inlined function of another
/// crate would be an unresolved extern.
///
/// # Safety
/// `key` valid for reads of `len` bytes.
#[inline(always)]
unsafe fn hash_of(hs: &KeyHasher, key: *const u8, len: usize) -> u64 {
    match hs.strategy {
        // SAFETY: `key` is valid for reads of `len` bytes (`# Safety`), all it reads.
        HashStrategy::Identity => unsafe { flash_map_core::hash::identity_hash(key, len) },
        // SAFETY: as for Identity: `len` readable bytes at `key` (`# Safety`).
        HashStrategy::Murmur3 => unsafe { fm_murmur3(key, len) },
        // SAFETY: as for Identity: `len` readable bytes at `key` (`# Safety`).
        HashStrategy::SipHash13 => unsafe { fm_siphash(key, len, hs.seed[0], hs.seed[1]) },
    }
}

/// See [`hash_of`].
///
/// # Safety
/// `key` valid for reads of `len` bytes.
// An unmangled name: a mangled one carries the crate hash, which differs between
// checkouts, and the committed PTX must match a fresh build anywhere.
#[no_mangle]
#[inline(never)]
unsafe extern "C" fn fm_murmur3(key: *const u8, len: usize) -> u64 {
    // SAFETY: `key` is valid for reads of `len` bytes (`# Safety`), all `murmur3` reads.
    unsafe { flash_map_core::hash::murmur3(key, len) }
}

/// See [`hash_of`].
///
/// # Safety
/// `key` valid for reads of `len` bytes.
// An unmangled name: a mangled one carries the crate hash, which differs between
// checkouts, and the committed PTX must match a fresh build anywhere.
#[no_mangle]
#[inline(never)]
unsafe extern "C" fn fm_siphash(key: *const u8, len: usize, k0: u64, k1: u64) -> u64 {
    // SAFETY: `key` is valid for reads of `len` bytes (`# Safety`), all `siphash13` reads.
    unsafe { flash_map_core::hash::siphash13(key, len, k0, k1) }
}

/// Entry point of [`pass_claim`].
#[cfg(target_arch = "nvptx64")]
#[no_mangle]
pub unsafe extern "ptx-kernel" fn fm_claim(p: ClaimParams) {
    // SAFETY: the host passes a `ClaimParams` whose addresses are valid for the kernel.
    unsafe { pass_claim(p) }
}

/// Pass 1 of every insert: find or claim a slot per key. `mode` (a [`ClaimMode`] code)
/// says what a claimer does to its new slot.
///
/// `c.budget` bounds the new claims when the batch might not fit (`u64::MAX`: no bound): each
/// new claim is counted in `counters[C_GUARD_NEW]`, and once the count passes `budget` the
/// batch has failed for certain, `counters[C_ABORT]` is raised and the remaining keys are
/// skipped (marked no-room) instead of filling the table and scanning it whole. A key that
/// gives up on collisions (`counters[C_COLLISIONS]`) raises it too.
///
/// # Safety
/// Every device address in `p` is valid for what the pass does with it (see
/// [`flash_map_core::abi`]).
#[inline(always)]
pub(crate) unsafe fn pass_claim(p: ClaimParams) {
    let (t, b, c) = (&p.table, &p.batch, &p.claim);
    let s = device_slots(t);
    let hs = hasher(t);
    let (values, key_size, value_size) = (t.values as *mut u8, t.key_size as usize, t.value_size as usize);
    let value_stride = t.value_stride();
    let (pos, kind, aux, counters) = (c.pos as *mut u32, c.kind as *mut u8, c.aux as *mut u32, c.counters as *mut u32);
    let (n, budget, mode) = (b.len, c.budget, ClaimMode::from_code(c.mode as u64));
    let guarded = budget != u64::MAX;
    let (mut new, mut from_tomb_n, mut no_room, mut existing) = (0u32, 0u32, 0u32, 0u32);
    let mut collisions = 0u32;
    let (mut i, step) = grid();
    while i < n as usize {
        // SAFETY: `i < n`; all arrays sized by the host for this batch and table.
        unsafe {
            if guarded && ld_relaxed(counters.add(C_ABORT)) != 0 {
                *kind.add(i) = KIND_NO_ROOM;
                no_room = no_room.wrapping_add(1);
                i = i.wrapping_add(step);
                continue;
            }
            let k = key_at(b, i);
            match claim(&s, hash_of(&hs, k, key_size), k) {
                Claim::Existing(slot) => {
                    *pos.add(i) = slot as u32;
                    *kind.add(i) = KIND_EXISTING;
                    existing = existing.wrapping_add(1);
                }
                Claim::New { slot, prev } => {
                    *pos.add(i) = slot as u32;
                    let from_tomb = prev == TOMBSTONE;
                    *kind.add(i) = if from_tomb { KIND_NEW_FROM_TOMBSTONE } else { KIND_NEW_FROM_EMPTY };
                    let vs = value_size;
                    let dst = values.add(slot.wrapping_mul(value_stride));
                    match mode {
                        Some(ClaimMode::ZeroValue) => zero_bytes(dst, vs),
                        Some(ClaimMode::MarkAux) => *aux.add(slot) = u32::MAX,
                        Some(ClaimMode::WriteValue) => copy_bytes(value_at(b, i), dst, vs),
                        Some(ClaimMode::Plain) | None => {}
                    }
                    new = new.wrapping_add(1);
                    from_tomb_n = from_tomb_n.wrapping_add(from_tomb as u32);
                    if guarded && atomic_add_u32(counters.add(C_GUARD_NEW), 1) as u64 >= budget {
                        st_relaxed(counters.add(C_ABORT), 1);
                    }
                }
                Claim::NoRoom => {
                    *kind.add(i) = KIND_NO_ROOM;
                    no_room = no_room.wrapping_add(1);
                }
                Claim::Collisions => {
                    // The batch fails whatever the rest does: a guarded batch stops here.
                    *kind.add(i) = KIND_COLLISIONS;
                    collisions = collisions.wrapping_add(1);
                    st_relaxed(counters.add(C_ABORT), 1);
                }
            }
        }
        i = i.wrapping_add(step);
    }
    let l = lane();
    // SAFETY: every lane reaches this point once; `counters` holds `N_COUNTERS` words.
    unsafe {
        warp_add_to(counters.add(C_COLLISIONS), collisions, l);
        warp_add_to(counters.add(C_NEW), new, l);
        warp_add_to(counters.add(C_FROM_TOMBSTONE), from_tomb_n, l);
        warp_add_to(counters.add(C_NO_ROOM), no_room, l);
        warp_add_to(counters.add(C_EXISTING), existing, l);
    }
}

/// Entry point of [`pass_rollback`].
#[cfg(target_arch = "nvptx64")]
#[no_mangle]
pub unsafe extern "ptx-kernel" fn fm_rollback(p: RollbackParams) {
    // SAFETY: the host passes a `RollbackParams` whose addresses are valid for the kernel.
    unsafe { pass_rollback(p) }
}

/// Undoes the new claims of a batch that did not fit.
///
/// # Safety
/// Every device address in `p` is valid for what the pass does with it (see
/// [`flash_map_core::abi`]).
#[inline(always)]
pub(crate) unsafe fn pass_rollback(p: RollbackParams) {
    let (states, aux) = (p.table.states as *mut u32, p.claim.aux as *mut u32);
    let (pos, kind, n) = (p.claim.pos as *const u32, p.claim.kind as *const u8, p.n);
    let (mut i, step) = grid();
    while i < n as usize {
        // SAFETY: `i < n`; `pos[i]` is a slot of this table when `kind[i]` is new.
        unsafe {
            let k = *kind.add(i);
            if k == KIND_NEW_FROM_EMPTY || k == KIND_NEW_FROM_TOMBSTONE {
                let slot = *pos.add(i) as usize;
                *states.add(slot) = if k == KIND_NEW_FROM_EMPTY { EMPTY } else { TOMBSTONE };
                *aux.add(slot) = 0;
            }
        }
        i = i.wrapping_add(step);
    }
}

/// Entry point of [`pass_winner_last`].
#[cfg(target_arch = "nvptx64")]
#[no_mangle]
pub unsafe extern "ptx-kernel" fn fm_winner_last(p: ElectParams) {
    // SAFETY: the host passes a `ElectParams` whose addresses are valid for the kernel.
    unsafe { pass_winner_last(p) }
}

/// Upsert pass 2: each slot's winner is the largest batch position (last copy wins).
///
/// # Safety
/// Every device address in `p` is valid for what the pass does with it (see
/// [`flash_map_core::abi`]).
#[inline(always)]
pub(crate) unsafe fn pass_winner_last(p: ElectParams) {
    let (aux, pos, n) = (p.claim.aux as *mut u32, p.claim.pos as *const u32, p.n);
    let (mut i, step) = grid();
    while i < n as usize {
        // SAFETY: `i < n`, `pos[i]` a slot.
        unsafe { atomic_max_u32(aux.add(*pos.add(i) as usize), i as u32 + 1) };
        i = i.wrapping_add(step);
    }
}

/// Entry point of [`pass_winner_first`].
#[cfg(target_arch = "nvptx64")]
#[no_mangle]
pub unsafe extern "ptx-kernel" fn fm_winner_first(p: ElectParams) {
    // SAFETY: the host passes a `ElectParams` whose addresses are valid for the kernel.
    unsafe { pass_winner_first(p) }
}

/// Insert-new pass 2: among copies of a key claimed in this batch, the smallest position wins.
///
/// # Safety
/// Every device address in `p` is valid for what the pass does with it (see
/// [`flash_map_core::abi`]).
#[inline(always)]
pub(crate) unsafe fn pass_winner_first(p: ElectParams) {
    let (aux, pos, n) = (p.claim.aux as *mut u32, p.claim.pos as *const u32, p.n);
    let (mut i, step) = grid();
    while i < n as usize {
        // SAFETY: `i < n`, `pos[i]` a slot; nonzero aux marks a slot claimed in this batch.
        // Other threads run `atom.min` on the same word meanwhile: the test reads it with
        // a relaxed atomic load, not a plain one (a plain load beside an atomic write is a
        // data race).
        unsafe {
            let a = aux.add(*pos.add(i) as usize);
            if ld_relaxed(a) != 0 {
                atomic_min_u32(a, i as u32 + 1);
            }
        }
        i = i.wrapping_add(step);
    }
}

/// Entry point of [`pass_write_winners`].
#[cfg(target_arch = "nvptx64")]
#[no_mangle]
pub unsafe extern "ptx-kernel" fn fm_write_winners(p: WriteParams) {
    // SAFETY: the host passes a `WriteParams` whose addresses are valid for the kernel.
    unsafe { pass_write_winners(p) }
}

/// Pass 3: winners write their value and reset the slot's scratch word. `out` (nullable)
/// receives 1 for winners, 0 for the rest.
///
/// # Safety
/// Every device address in `p` is valid for what the pass does with it (see
/// [`flash_map_core::abi`]).
#[inline(always)]
pub(crate) unsafe fn pass_write_winners(p: WriteParams) {
    let (b, values, value_size) = (&p.batch, p.table.values as *mut u8, p.table.value_size as usize);
    let value_stride = p.table.value_stride();
    let (aux, pos, n, out) = (p.claim.aux as *mut u32, p.claim.pos as *const u32, b.len, p.out as *mut u8);
    let (mut i, step) = grid();
    while i < n as usize {
        // SAFETY: `i < n`, `pos[i]` a slot, batch record valid.
        unsafe {
            let slot = *pos.add(i) as usize;
            let a = aux.add(slot);
            // The winner resets the word while the other copies of its key read it: both
            // sides use relaxed atomics (a copy reads the winner's position or zero, never
            // its own).
            let won = ld_relaxed(a) == i as u32 + 1;
            if won {
                let vs = value_size;
                copy_bytes(value_at(b, i), values.add(slot.wrapping_mul(value_stride)), vs);
                st_relaxed(a, 0);
            }
            if !out.is_null() {
                *out.add(i) = won as u8;
            }
        }
        i = i.wrapping_add(step);
    }
}

/// Entry point of [`pass_add`].
#[cfg(target_arch = "nvptx64")]
#[no_mangle]
pub unsafe extern "ptx-kernel" fn fm_add(p: AddParams) {
    // SAFETY: the host passes a `AddParams` whose addresses are valid for the kernel.
    unsafe { pass_add(p) }
}

/// Counter pass: adds each record's value to its slot's counter (4- or 8-byte, wrapping).
///
/// # Safety
/// Every device address in `p` is valid for what the pass does with it (see
/// [`flash_map_core::abi`]).
#[inline(always)]
pub(crate) unsafe fn pass_add(p: AddParams) {
    let (b, values, value_size) = (&p.batch, p.table.values as *mut u8, p.table.value_size);
    let (value_stride, pos, n) = (p.table.value_stride(), p.claim.pos as *const u32, b.len);
    let (mut i, step) = grid();
    while i < n as usize {
        // SAFETY: `i < n`; counters are `value_size`-aligned in the value array, and in a
        // record, whose value lies aligned to its size (`TableLayout::record_bytes`).
        unsafe {
            let slot = *pos.add(i) as usize;
            let src = value_at(b, i);
            let dst = values.add(slot.wrapping_mul(value_stride));
            if value_size == 8 {
                let v = core::ptr::read_unaligned(src as *const u64);
                atomic_add_u64(dst as *mut u64, v);
            } else {
                let v = core::ptr::read_unaligned(src as *const u32);
                atomic_add_u32(dst as *mut u32, v);
            }
        }
        i = i.wrapping_add(step);
    }
}

/// Entry point of [`pass_find`].
#[cfg(target_arch = "nvptx64")]
#[no_mangle]
pub unsafe extern "ptx-kernel" fn fm_find(p: FindParams) {
    // SAFETY: the host passes a `FindParams` whose addresses are valid for the kernel.
    unsafe { pass_find(p) }
}

/// Lookup: `found[i]` = 1 if key `i` is present; its value goes to `out + i * value_size`
/// when `out` is not null. `counters[C_HITS]` (if not null) counts the hits.
///
/// # Safety
/// Every device address in `p` is valid for what the pass does with it (see
/// [`flash_map_core::abi`]).
#[inline(always)]
pub(crate) unsafe fn pass_find(p: FindParams) {
    let (t, b) = (&p.table, &p.batch);
    let (values, key_size, vs, n) = (t.values as *const u8, t.key_size as usize, t.value_size as usize, b.len);
    let value_stride = t.value_stride();
    let (found, out, counters) = (p.found as *mut u8, p.out as *mut u8, p.counters as *mut u32);
    // SAFETY: the host passes the table's arrays of `mask + 1` slots, keys `key_stride` bytes
    // apart; no claims run during a lookup, so plain loads serve, like the CPU's serial
    // engine.
    let s = unsafe {
        RawSlots::strided(t.states as *mut u32, t.keys as *mut u8, t.mask as usize, key_size, t.key_stride())
    };
    let hs = hasher(t);
    let mut hits = 0u32;
    let (mut i, step) = grid();
    while i < n as usize {
        // SAFETY: `i < n`; output arrays sized `n` and `n * value_size`.
        unsafe {
            let k = key_at(b, i);
            let hit = find(&s, hash_of(&hs, k, key_size), k);
            *found.add(i) = hit.is_some() as u8;
            hits = hits.wrapping_add(hit.is_some() as u32);
            if let Some(slot) = hit {
                if !out.is_null() {
                    copy_bytes(values.add(slot.wrapping_mul(value_stride)), out.add(i.wrapping_mul(vs)), vs);
                }
            }
        }
        i = i.wrapping_add(step);
    }
    if !counters.is_null() {
        // SAFETY: every lane reaches this point once; `counters` holds `N_COUNTERS` words.
        unsafe { warp_add_to(counters.add(C_HITS), hits, lane()) };
    }
}

/// Entry point of [`pass_remove`].
#[cfg(target_arch = "nvptx64")]
#[no_mangle]
pub unsafe extern "ptx-kernel" fn fm_remove(p: RemoveParams) {
    // SAFETY: the host passes a `RemoveParams` whose addresses are valid for the kernel.
    unsafe { pass_remove(p) }
}

/// Removal: tombstones each present key; `counters[C_REMOVED]` counts distinct removals.
///
/// # Safety
/// Every device address in `p` is valid for what the pass does with it (see
/// [`flash_map_core::abi`]).
#[inline(always)]
pub(crate) unsafe fn pass_remove(p: RemoveParams) {
    let (t, b) = (&p.table, &p.batch);
    let (key_size, n, counters) = (t.key_size as usize, b.len, p.counters as *mut u32);
    let s = device_slots(t);
    let hs = hasher(t);
    let mut removed = 0u32;
    let (mut i, step) = grid();
    while i < n as usize {
        // SAFETY: `i < n`, record valid.
        unsafe {
            let k = key_at(b, i);
            removed = removed.wrapping_add(remove(&s, hash_of(&hs, k, key_size), k) as u32);
        }
        i = i.wrapping_add(step);
    }
    // SAFETY: every lane reaches this point once; `counters` holds `N_COUNTERS` words.
    unsafe { warp_add_to(counters.add(C_REMOVED), removed, lane()) };
}

/// Entry point of [`pass_rehash`].
#[cfg(target_arch = "nvptx64")]
#[no_mangle]
pub unsafe extern "ptx-kernel" fn fm_rehash(p: RehashParams) {
    // SAFETY: the host passes a `RehashParams` whose addresses are valid for the kernel.
    unsafe { pass_rehash(p) }
}

/// Rehash: moves every live entry of the old table `p.old` into the new, empty table
/// `p.table` (same key and value sizes; either may keep records, [`TableArgs::record`]).
///
/// # Safety
/// Every device address in `p` is valid for what the pass does with it (see
/// [`flash_map_core::abi`]).
#[inline(always)]
pub(crate) unsafe fn pass_rehash(p: RehashParams) {
    let (t, o) = (&p.table, &p.old);
    let s = device_slots(t);
    let hs = hasher(t);
    let (values, ks, vs) = (t.values as *mut u8, t.key_size as usize, t.value_size as usize);
    let (old_states, old_keys, old_values) = (o.states as *const u32, o.keys as *const u8, o.values as *const u8);
    let (value_stride, old_key_stride, old_value_stride) = (t.value_stride(), o.key_stride(), o.value_stride());
    let old_slots = o.mask.wrapping_add(1);
    let (mut i, step) = grid();
    while i < old_slots as usize {
        // SAFETY: `i < old_slots`; the new table has room for every live entry.
        unsafe {
            if is_full(*old_states.add(i)) {
                let k = old_keys.add(i.wrapping_mul(old_key_stride));
                // No collision limit: every entry must move, however many share its hash.
                if let Claim::New { slot, .. } = claim_bounded(&s, hash_of(&hs, k, ks), k, u32::MAX) {
                    let (src, dst) =
                        (old_values.add(i.wrapping_mul(old_value_stride)), values.add(slot.wrapping_mul(value_stride)));
                    copy_bytes(src, dst, vs);
                }
            }
        }
        i = i.wrapping_add(step);
    }
}
