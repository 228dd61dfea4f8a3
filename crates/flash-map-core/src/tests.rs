//! Unit tests of the core pieces with a plain-array `Slots`.

extern crate std;
use std::vec::Vec;

use crate::hash::{fmix64, identity, murmur3, HashStrategy, KeyHasher};
use crate::layout::{LayoutError, TableLayout};
use crate::probe::{claim, find, home, probe_lengths, remove, Claim, Slots};
use crate::slot::*;
use core::cell::Cell;

struct Arr {
    states: Vec<Cell<u32>>,
    keys: core::cell::UnsafeCell<Vec<u8>>,
    key_size: usize,
}

impl Arr {
    /// An empty table of `slots` slots (a power of two) of `key_size`-byte keys.
    fn new(slots: usize, key_size: usize) -> Self {
        Arr {
            states: (0..slots).map(|_| Cell::new(EMPTY)).collect(),
            keys: core::cell::UnsafeCell::new(std::vec![0; slots * key_size]),
            key_size,
        }
    }
}

// SAFETY: single-threaded test table; indices are `<= mask` by the `Slots` contract, and
// the key array holds `key_size` bytes per slot.
unsafe impl Slots for Arr {
    fn mask(&self) -> usize {
        self.states.len() - 1
    }
    fn key_size(&self) -> usize {
        self.key_size
    }
    unsafe fn state(&self, slot: usize) -> u32 {
        self.states[slot].get()
    }
    unsafe fn cas_state(&self, slot: usize, current: u32, new: u32) -> bool {
        if self.states[slot].get() == current {
            self.states[slot].set(new);
            true
        } else {
            false
        }
    }
    unsafe fn publish(&self, slot: usize, state: u32) {
        self.states[slot].set(state)
    }
    unsafe fn key_ptr(&self, slot: usize) -> *mut u8 {
        // SAFETY: `slot <= mask`, so the key lies inside the array.
        unsafe { (*self.keys.get()).as_mut_ptr().add(slot * self.key_size) }
    }
}

#[test]
fn identity_is_first_eight_bytes_zero_padded() {
    let k = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    assert_eq!(KeyHasher::plain(HashStrategy::Identity).hash_bytes(&k), fmix64(0x0807_0605_0403_0201));
    assert_eq!(KeyHasher::plain(HashStrategy::Identity).hash_bytes(&k[..3]), fmix64(0x0003_0201));
    // SAFETY: 1 byte readable.
    assert_eq!(unsafe { identity(k.as_ptr(), 1) }, 1);
}

#[test]
fn murmur3_matches_reference_vectors() {
    // Reference MurmurHash3_x64_128(seed 0) first halves.
    // SAFETY: slices valid.
    unsafe {
        assert_eq!(murmur3(b"".as_ptr(), 0), 0);
        assert_eq!(murmur3(b"hello".as_ptr(), 5), 0xcbd8_a7b3_41bd_9b02);
        assert_eq!(murmur3(b"The quick brown fox jumps over the lazy dog".as_ptr(), 43), 0xe34b_bc7b_bc07_1b6c);
    }
}

#[test]
fn murmur3_uses_every_byte() {
    let a = [0u8; 32];
    let mut b = a;
    b[31] = 1;
    assert_ne!(
        KeyHasher::plain(HashStrategy::Murmur3).hash_bytes(&a),
        KeyHasher::plain(HashStrategy::Murmur3).hash_bytes(&b)
    );
    assert_eq!(
        KeyHasher::plain(HashStrategy::Identity).hash_bytes(&a),
        KeyHasher::plain(HashStrategy::Identity).hash_bytes(&b)
    );
}

#[test]
fn layout_capacity_rules() {
    let l = TableLayout::for_capacity(1000, 0.5, 8, 8).unwrap();
    assert_eq!(l.capacity, 1024);
    assert_eq!(l.slots, 2048);
    let l = TableLayout::for_capacity(1, 0.5, 1, 0).unwrap();
    assert!(l.capacity >= 1 && l.capacity < l.slots);
    let l = TableLayout::for_capacity(100, 0.9, 4, 4).unwrap();
    assert!(l.capacity >= 100 && l.capacity < l.slots);
    assert_eq!(TableLayout::for_capacity(0, 0.5, 8, 8), Err(LayoutError::ZeroCapacity));
    assert_eq!(TableLayout::for_capacity(5, 0.5, 0, 8), Err(LayoutError::ZeroSizedKey));
    for lf in [0.0, 1.0, -0.5, f64::NAN, 1.5, f64::INFINITY] {
        assert_eq!(TableLayout::for_capacity(5, lf, 8, 8), Err(LayoutError::InvalidLoadFactor));
    }
    assert_eq!(TableLayout::for_capacity(usize::MAX, 0.5, 8, 8), Err(LayoutError::CapacityOverflow));
    assert_eq!(TableLayout::for_capacity(1 << 60, 0.5, 32, 128), Err(LayoutError::CapacityOverflow));
}

#[test]
fn records_are_chosen_by_shape_and_hold_the_entries_of_two_arrays() {
    let rec = |ks, vs, max| TableLayout::for_capacity(64, 0.5, ks, vs).unwrap().record_bytes(max);
    // A power of two, the value aligned to its size (up to 8) after the key, at most `max`.
    assert_eq!((rec(8, 8, 32), rec(4, 4, 32), rec(12, 4, 32), rec(24, 8, 32), rec(3, 1, 32)), (16, 8, 16, 32, 4));
    assert_eq!((rec(8, 8, 8), rec(32, 32, 32), rec(32, 32, 64)), (0, 0, 64));
    assert_eq!((rec(4, 8, 32), rec(1, 3, 32), rec(2, 4, 32), rec(8, 0, 32), rec(7, 9, 32)), (0, 0, 0, 0, 0));
    let device = |ks, vs| TableLayout::for_capacity(64, 0.5, ks, vs).unwrap().device_record();
    assert_eq!((device(8, 8), device(24, 8), device(32, 32), device(32, 128)), (16, 32, 0, 0));

    // The same slots as two arrays and as records list the same entries in the same order.
    let mut x = 7u64;
    for (ks, vs) in [(8, 8), (4, 4), (24, 8), (12, 4)] {
        let l = TableLayout::with_slots(64, 0.5, ks, vs).unwrap();
        let r = l.record_bytes(64);
        assert!(r >= ks + vs);
        let states: Vec<u32> = (0..64)
            .map(|_| {
                x = fmix64(x + 1);
                [EMPTY, TOMBSTONE, full_word(tag_of(x)), full_word(tag_of(x >> 7))][(x % 4) as usize]
            })
            .collect();
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x = fmix64(x + 3);
                    x as u8
                })
                .collect()
        };
        let (keys, values) = (bytes(64 * ks), bytes(64 * vs));
        let mut records = bytes(64 * r);
        for i in 0..64 {
            records[i * r..][..ks].copy_from_slice(&keys[i * ks..][..ks]);
            records[i * r + ks..][..vs].copy_from_slice(&values[i * vs..][..vs]);
        }
        let list = |record: usize, keys: &[u8], values: &[u8]| {
            let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            l.for_each_entry_in(record, states.iter().copied(), keys, values, &mut |k, v| {
                out.push((k.to_vec(), v.to_vec()))
            });
            out
        };
        let arrays = list(0, &keys, &values);
        assert_eq!(arrays.len(), states.iter().filter(|&&s| is_full(s)).count(), "{ks}/{vs}");
        assert!(!arrays.is_empty());
        assert_eq!(list(r, &records, &[]), arrays, "{ks}/{vs}: records list the entries of two arrays");
    }
}

#[test]
fn claim_find_remove_roundtrip_with_collisions() {
    let t = Arr::new(8, 3);
    let keys: [[u8; 3]; 5] = [[1, 0, 0], [2, 0, 0], [3, 0, 0], [4, 0, 0], [5, 0, 0]];
    // Every key has the same hash: worst-case chain from one home slot.
    let h = (0..).find(|&h| home(h, 7) == 5).unwrap();
    for (i, k) in keys.iter().enumerate() {
        // SAFETY: key valid.
        match unsafe { claim(&t, h, k.as_ptr()) } {
            Claim::New { slot, prev } => {
                assert_eq!(slot, (5 + i) & 7);
                assert_eq!(prev, EMPTY);
            }
            other => panic!("{other:?}"),
        }
    }
    // SAFETY: keys valid.
    unsafe {
        assert_eq!(claim(&t, h, keys[2].as_ptr()), Claim::Existing(7));
        assert_eq!(find(&t, h, keys[4].as_ptr()), Some(1));
        assert!(remove(&t, h, keys[1].as_ptr()));
        assert!(!remove(&t, h, keys[1].as_ptr()));
        assert_eq!(find(&t, h, keys[1].as_ptr()), None);
        // Past the tombstone the chain still resolves.
        assert_eq!(find(&t, h, keys[4].as_ptr()), Some(1));
        // Re-inserting reuses the tombstone.
        assert_eq!(claim(&t, h, keys[1].as_ptr()), Claim::New { slot: 6, prev: TOMBSTONE });
    }
}

#[test]
fn full_table_reports_no_room_and_misses_end() {
    let t = Arr::new(4, 1);
    for k in 0u8..4 {
        // SAFETY: key valid.
        let c = unsafe { claim(&t, k as u64, [k].as_ptr()) };
        assert!(matches!(c, Claim::New { .. }));
    }
    // SAFETY: key valid.
    unsafe {
        assert_eq!(claim(&t, 0, [9u8].as_ptr()), Claim::NoRoom);
        assert_eq!(find(&t, 0, [9u8].as_ptr()), None);
    }
}

#[test]
fn slot_words_are_distinct() {
    let tag = tag_of(0xdead_beef);
    assert!(is_full(full_word(tag)));
    assert!(!is_full(busy_word(tag)));
    assert!(is_free(EMPTY) && is_free(TOMBSTONE));
    assert!(!is_free(busy_word(0)) && !is_free(full_word(0)));
    assert_eq!(HashStrategy::from_code(HashStrategy::Murmur3.code()), Some(HashStrategy::Murmur3));
    assert_eq!(HashStrategy::from_code(7), None);
    for h in [HashStrategy::Identity, HashStrategy::Murmur3, HashStrategy::SipHash13] {
        assert_eq!(HashStrategy::from_code(h.code()), Some(h));
    }
}

// ---- Hashing: the home slot of patterned keys, the keyed strategy, Murmur3's weakness ----

use crate::hash::{murmur3_seeded, siphash13};
use crate::patterns::{murmur3_multicollision, shared_prefix_key, KeyPattern};

/// Hit and miss probe lengths (slots visited, [`probe_lengths`]) of `keys` claimed in
/// order in a table of `2 * keys.len()` slots (load factor 0.5), and of `absent` looked up
/// there: `(mean hit, max hit, mean miss, max miss)`.
fn probe_stats(h: KeyHasher, keys: &[u64], absent: &[u64]) -> (f64, usize, f64, usize) {
    let t = Arr::new((keys.len() * 2).next_power_of_two(), 8);
    for k in keys {
        let k = k.to_le_bytes();
        // SAFETY: key valid for 8 bytes.
        assert!(matches!(unsafe { claim(&t, h.hash_bytes(&k), k.as_ptr()) }, Claim::New { .. }));
    }
    let stats = |ks: &[u64]| {
        let bytes: Vec<u8> = ks.iter().flat_map(|k| k.to_le_bytes()).collect();
        // SAFETY: one thread, no claims meanwhile.
        let (sum, max) = unsafe { probe_lengths(&t, &h, &bytes) };
        (sum as f64 / ks.len() as f64, max)
    };
    let ((hit, hmax), (miss, mmax)) = (stats(keys), stats(absent));
    (hit, hmax, miss, mmax)
}

/// Every key pattern, under every strategy, gets the probe lengths of random keys: means
/// within 1.25x and maxima within 3x of the random pattern's (or under 40 slots). A plain
/// `hash & mask` home fails this on every pattern but the first two (for `i << 20`, all
/// keys share home slot 0 in a table of fewer than 2^20 slots).
#[test]
#[cfg_attr(miri, ignore = "millions of probes; pure arithmetic, no unsafe beyond the hash reads")]
fn patterned_keys_probe_like_random_keys() {
    let n = 1u64 << 15;
    let strategies = [
        KeyHasher::plain(HashStrategy::Identity),
        KeyHasher::plain(HashStrategy::Murmur3),
        KeyHasher::new(HashStrategy::SipHash13, [1, 2]),
    ];
    // Besides the named patterns: more strides and bit-packings of progressions, of
    // `2n` keys each: the first `n` inserted, the rest looked up as absent keys.
    let n = 2 * n;
    let mut extra: Vec<(std::string::String, Vec<u64>)> = Vec::new();
    for s in [1u32, 8, 12, 16, 24, 32, 40, 44, 48] {
        extra.push((std::format!("i << {s}"), (0..n).map(|i| i << s).collect()));
    }
    for st in [3u64, 1_000_003, 0x9E37_79B9_7F4A_7C15, (1 << 32) | 1, 0x5555_5555_5555_5555] {
        extra.push((std::format!("i * {st:#x}"), (0..n).map(|i| i.wrapping_mul(st)).collect()));
    }
    for s in [16u32, 24, 32, 48, 56, 60] {
        extra.push((std::format!("shard << {s} | id"), (0..n).map(|i| ((i & 15) << s) | (i >> 4)).collect()));
        // The same ids under a few shards only.
        extra.push((std::format!("(i % 3) << {s} | id"), (0..n).map(|i| ((i % 3) << s) | (i / 3)).collect()));
    }
    for s in [16u32, 32] {
        extra.push((std::format!("(a << {s} | b) << 8"), (0..n).map(|i| (((i >> 8) << s) | (i & 255)) << 8).collect()));
    }
    let n = n / 2;
    for h in strategies {
        let rnd: Vec<u64> = (0..n).map(|i| KeyPattern::Random.key(i)).collect();
        let rnd_abs: Vec<u64> = (0..n).map(|i| KeyPattern::Random.absent(i)).collect();
        let (rh, rmax, rm, rmmax) = probe_stats(h, &rnd, &rnd_abs);
        let mut cases: Vec<(std::string::String, Vec<u64>, Vec<u64>)> = KeyPattern::ALL
            .iter()
            .map(|p| {
                let keys = (0..n).map(|i| p.key(i)).collect();
                (p.name().into(), keys, (0..n).map(|i| p.absent(i)).collect())
            })
            .collect();
        for (name, keys) in &extra {
            let (present, absent) = keys.split_at(n as usize);
            cases.push((name.clone(), present.to_vec(), absent.to_vec()));
        }
        for (name, keys, absent) in cases {
            let (mh, mmax, mm, mmmax) = probe_stats(h, &keys, &absent);
            let msg = std::format!(
                "{:?} {name}: hit {mh:.2}/{mmax} miss {mm:.2}/{mmmax}; random: {rh:.2}/{rmax} {rm:.2}/{rmmax}",
                h.strategy
            );
            assert!(mh <= rh * 1.25 && mm <= rm * 1.25, "{msg}");
            assert!(mmax <= (rmax * 3).max(40) && mmmax <= (rmmax * 3).max(40), "{msg}");
        }
    }
}

#[test]
#[cfg_attr(miri, ignore = "pure arithmetic over 65,536 keys")]
fn home_and_tag_are_independent_mixes() {
    // Keys sharing a home region must not share their fingerprints: over 2^16 strided keys
    // in 64 regions, every region's keys have (nearly) all-distinct tags.
    let mask = (1usize << 17) - 1;
    let mut per_region: Vec<Vec<u32>> = std::vec![Vec::new(); 64];
    for i in 0..1u64 << 16 {
        let h = KeyHasher::plain(HashStrategy::Identity).hash_bytes(&KeyPattern::Strided.key(i).to_le_bytes());
        per_region[home(h, mask) >> 11].push(tag_of(h));
    }
    for tags in &mut per_region {
        let n = tags.len();
        assert!(n > 512, "regions are filled evenly, got {n}");
        tags.sort_unstable();
        tags.dedup();
        assert!(n - tags.len() <= 2, "{} of {n} tags repeat within a region", n - tags.len());
    }
}

#[test]
fn siphash13_matches_the_reference() {
    use core::hash::Hasher;
    let data: Vec<u8> = (0..=255u8).collect();
    for (k0, k1) in [(0u64, 0u64), (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908), (u64::MAX, 12345)] {
        for len in [0usize, 1, 7, 8, 9, 15, 16, 31, 32, 33, 64, 255] {
            let mut r = siphasher::sip::SipHasher13::new_with_keys(k0, k1);
            r.write(&data[..len]);
            let ours = KeyHasher::new(HashStrategy::SipHash13, [k0, k1]).hash_bytes(&data[..len]);
            assert_eq!(ours, r.finish(), "k0 {k0:#x} k1 {k1:#x} len {len}");
        }
    }
}

/// The negative control of the keyed strategy: 32 distinct 160-byte keys that share one
/// Murmur3 hash for every seed tried, and have 32 distinct hashes under SipHash13.
#[test]
fn murmur3_multicollisions_collide_for_every_seed_but_not_under_siphash13() {
    let keys: Vec<[u8; 160]> = (0..32).map(murmur3_multicollision::<160>).collect();
    assert_eq!(keys.len(), 32);
    let mut distinct = keys.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 32, "the keys are distinct");
    for seed in [0u32, 1, 0xdead_beef, u32::MAX] {
        // SAFETY: each key is readable for its length.
        let hashes: Vec<u64> = keys.iter().map(|k| unsafe { murmur3_seeded(k.as_ptr(), k.len(), seed) }).collect();
        assert!(hashes.iter().all(|&h| h == hashes[0]), "seed {seed}: Murmur3 multicollision");
    }
    for sip in [[1u64, 2], [0x5eed, 0xf00d]] {
        // SAFETY: as above.
        let mut hashes: Vec<u64> =
            keys.iter().map(|k| unsafe { siphash13(k.as_ptr(), k.len(), sip[0], sip[1]) }).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), 32, "SipHash13 with key {sip:?} separates them");
    }
}

/// Claims of keys sharing one hash stop after [`COLLISION_LIMIT`] of them, and a rehash
/// (no limit) still places them all.
#[test]
fn claims_give_up_on_keys_of_one_hash() {
    use crate::probe::{claim_bounded, COLLISION_LIMIT};
    let t = Arr::new(64, 32);
    let h = KeyHasher::plain(HashStrategy::Identity);
    let keys: Vec<[u8; 32]> = (0..40).map(shared_prefix_key).collect();
    let limit = COLLISION_LIMIT as usize;
    for (i, k) in keys.iter().enumerate() {
        // SAFETY: key valid.
        let c = unsafe { claim(&t, h.hash_bytes(k), k.as_ptr()) };
        if i <= limit {
            assert!(matches!(c, Claim::New { .. }), "key {i}: {c:?}");
        } else {
            assert_eq!(c, Claim::Collisions, "key {i}");
        }
    }
    // SAFETY: key valid.
    unsafe {
        // Present keys are still found, whatever their place in the run.
        assert!(matches!(claim(&t, h.hash_bytes(&keys[limit]), keys[limit].as_ptr()), Claim::Existing(_)));
        let k = &keys[limit + 1];
        assert!(matches!(claim_bounded(&t, h.hash_bytes(k), k.as_ptr(), u32::MAX), Claim::New { .. }));
    }
}

/// A rehash in place keeps exactly the live keys with their values, drops every tombstone,
/// and leaves every key findable, on tables of every fill with wrap-around runs and keys
/// that share their hash, with the table's own hasher and with a new one.
#[test]
#[cfg_attr(miri, ignore)]
fn rehash_in_place_keeps_every_key_and_drops_tombstones() {
    use crate::probe::{claim_bounded, rehash_in_place};
    let mut rnd = stream(0x1234_5678_9abc_def0);
    let hashers = [
        KeyHasher::plain(HashStrategy::Identity),
        KeyHasher::plain(HashStrategy::Murmur3),
        KeyHasher::new(HashStrategy::SipHash13, [3, 4]),
    ];
    for round in 0..300 {
        let slots = 1usize << (2 + round % 7);
        let t = Arr::new(slots, 16);
        let mut values = std::vec![0u8; slots * 4];
        let (from, to) = (&hashers[round % 3], &hashers[(round / 3) % 3]);
        // Keys: random, or (every fourth round) sharing their first 8 bytes.
        let key = |r: u64, i: u64| -> [u8; 16] {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&(if round % 4 == 0 { 7 } else { r }).to_le_bytes());
            k[8..].copy_from_slice(&i.to_le_bytes());
            k
        };
        let fill = (rnd() as usize % slots).max(1);
        let mut live: Vec<([u8; 16], u32)> = Vec::new();
        for i in 0..fill as u64 {
            let k = key(rnd(), i);
            // SAFETY: key valid; one thread.
            if let Claim::New { slot, .. } = unsafe { claim_bounded(&t, from.hash_bytes(&k), k.as_ptr(), u32::MAX) } {
                let v = rnd() as u32;
                values[slot * 4..slot * 4 + 4].copy_from_slice(&v.to_le_bytes());
                live.push((k, v));
            }
        }
        // Remove about a third.
        live.retain(|(k, _)| {
            // SAFETY: key valid; one thread.
            !(rnd() % 3 == 0 && unsafe { remove(&t, from.hash_bytes(k), k.as_ptr()) })
        });
        // SAFETY: one thread; `values` holds 4 bytes per slot.
        unsafe { rehash_in_place(&t, values.as_mut_ptr(), 4, to) };
        let states: Vec<u32> = t.states.iter().map(Cell::get).collect();
        assert!(states.iter().all(|&s| s == EMPTY || is_full(s)), "round {round}: no tombstone or pending slot left");
        assert_eq!(states.iter().filter(|&&s| is_full(s)).count(), live.len(), "round {round}");
        for (k, v) in &live {
            // SAFETY: key valid; no claims run.
            let slot = unsafe { find(&t, to.hash_bytes(k), k.as_ptr()) };
            let slot = slot.unwrap_or_else(|| panic!("round {round}: key lost"));
            assert_eq!(&values[slot * 4..slot * 4 + 4], &v.to_le_bytes(), "round {round}: value moved with its key");
        }
    }
}

/// The ledger accepts what fits, refuses the rest unchanged, and asks for a compaction
/// exactly when the headroom rule would break.
#[test]
fn ledger_settles_and_keeps_the_headroom_rule() {
    use crate::ledger::{ClaimCounts, Ledger, Refusal};
    let l = TableLayout::with_slots(1024, 0.875, 8, 8).expect("layout");
    assert_eq!(l.capacity, 896);
    let mut g = Ledger::new();
    assert_eq!(g.claim_budget(&l, 896), usize::MAX);
    assert_eq!(g.claim_budget(&l, 897), 896);
    let before = g;
    let c = ClaimCounts { new: 897, ..Default::default() };
    assert_eq!(g.settle(&l, c), Err(Refusal::Full { len: 0, new: 897, capacity: 896 }));
    assert_eq!(g.settle(&l, ClaimCounts { collisions: 1, ..Default::default() }), Err(Refusal::Collisions { keys: 1 }));
    assert_eq!(g, before, "a refusal changes nothing");
    g.settle(&l, ClaimCounts { new: 800, ..Default::default() }).expect("fits");
    g.removed(80);
    // 720 live + 80 tombstones = 800 <= 1024 - 64: the rule holds.
    assert!(g.headroom_holds(&l) && !g.needs_compaction(&l));
    // 176 new keys from empty slots: 896 + 80 = 976 > 960 (half the headroom of 128 is gone).
    g.settle(&l, ClaimCounts { new: 176, ..Default::default() }).expect("fits");
    assert!(!g.headroom_holds(&l) && g.needs_compaction(&l));
    assert!(g.compacted().headroom_holds(&l));
    // Tombstones past an eighth of the slots.
    let mut h = Ledger::new();
    h.settle(&l, ClaimCounts { new: 200, ..Default::default() }).expect("fits");
    h.removed(129);
    assert!(h.needs_compaction(&l));
    // Tombstones with nothing live.
    let mut e = Ledger::new();
    e.settle(&l, ClaimCounts { new: 1, ..Default::default() }).expect("fits");
    e.removed(1);
    assert!(e.needs_compaction(&l));
}

/// The group fast paths (plain memory: [`crate::probe::RawSlots`], which checks the first
/// eight slots of a probe at once where the target allows) place, find and remove every key
/// exactly as the slot-by-slot algorithm does (the test table `Arr`, which does not group):
/// the same results and the same state words after every call, on random tables with keys
/// that share their hash, tombstones, full tables and runs that wrap around the end. In a
/// third of the rounds nothing is removed, and the fast table claims with
/// `claim_without_tombstones`.
#[test]
fn grouped_probes_match_the_scalar_algorithm() {
    use crate::probe::{RawSlots, GROUP};
    const _: () = assert!(!<Arr as Slots>::GROUPED, "the reference probes slot by slot");
    table_rounds(0x0dd_ba11, |round, slots, ks, rnd| {
        let hs = KeyHasher::plain(HashStrategy::Identity);
        let reference = Arr::new(slots, ks);
        let mut states = std::vec![EMPTY; slots];
        let mut keys = std::vec![0u8; slots * ks];
        // SAFETY: `slots` words and keys, used by this thread alone.
        let fast = unsafe { RawSlots::new(states.as_mut_ptr(), keys.as_mut_ptr(), slots - 1, ks) };
        let reference_words = || reference.states.iter().map(Cell::get).collect();
        same_ops(&reference, &fast, (slots, ks, hs), round, rnd, reference_words, || states.clone());
        // The keys stored agree too, slot for slot.
        for slot in 0..slots {
            if is_full(states[slot]) {
                // SAFETY: `slot < slots`.
                let r = unsafe { core::slice::from_raw_parts(reference.key_ptr(slot), ks) };
                assert_eq!(r, &keys[slot * ks..][..ks], "round {round}: key of slot {slot}");
            }
        }
        assert!(slots >= GROUP);
    });
}

/// A stream of 64-bit values from `seed` (fmix64 of a Weyl sequence): the tests' random
/// numbers, the same on every run.
fn stream(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x = fmix64(x.wrapping_add(0x9E37_79B9_7F4A_7C15));
        x
    }
}

/// Calls `round(round, slots, key_size, rnd)` for the rounds of a differential test (6 under
/// Miri, else 200): tables of 8 to 256 slots and keys of 8 or 16 bytes, in turn, with
/// random numbers from one `seed`.
fn table_rounds(seed: u64, mut round: impl FnMut(usize, usize, usize, &mut dyn FnMut() -> u64)) {
    let mut rnd = stream(seed);
    for r in 0..if cfg!(miri) { 6 } else { 200 } {
        round(r, 1usize << (3 + r % 6), [8, 16][r % 2], &mut rnd);
    }
}

/// `slots * 3` random claims, removals and finds of keys from a small pool, run on
/// `reference` (slot by slot) and on `fast` alike, with the same results and the same state
/// words (`reference_words`, `words`) after every call. The pool brings repeats, removals of
/// present keys, and (16-byte keys) keys that share their first 8 bytes and so their hash
/// under Identity. In a third of the rounds nothing is removed, and `fast` claims with
/// `claim_without_tombstones`.
fn same_ops<R: Slots, F: Slots>(
    reference: &R,
    fast: &F,
    (slots, ks, hs): (usize, usize, KeyHasher),
    round: usize,
    rnd: &mut dyn FnMut() -> u64,
    reference_words: impl Fn() -> Vec<u32>,
    words: impl Fn() -> Vec<u32>,
) {
    use crate::probe::{claim_bounded, claim_without_tombstones, COLLISION_LIMIT};
    let pool = slots as u64 * 2;
    let key = |id: u64| -> Vec<u8> {
        let mut k = std::vec![0u8; ks];
        let first = if ks == 16 { id / 4 } else { id };
        k[..8].copy_from_slice(&first.to_le_bytes());
        if ks == 16 {
            k[8..].copy_from_slice(&id.to_le_bytes());
        }
        k
    };
    let fills = round % 3 == 2;
    for op in 0..slots * 3 {
        let k = key(rnd() % pool);
        let h = hs.hash_bytes(&k);
        let ctx = std::format!("round {round} ({slots} slots, {ks}-byte keys) op {op}");
        // SAFETY: `k` holds `ks` bytes; one thread; in the rounds of `fills`, nothing
        // removes a key, so no slot is a tombstone.
        unsafe {
            match rnd() % 3 {
                0 if fills => {
                    let a = claim_bounded(reference, h, k.as_ptr(), COLLISION_LIMIT);
                    let b = claim_without_tombstones(fast, h, k.as_ptr());
                    assert_eq!(a, b, "{ctx}: claim without tombstones");
                }
                0 => {
                    let limit = [COLLISION_LIMIT, u32::MAX][op % 2];
                    let a = claim_bounded(reference, h, k.as_ptr(), limit);
                    let b = claim_bounded(fast, h, k.as_ptr(), limit);
                    assert_eq!(a, b, "{ctx}: claim");
                }
                1 if !fills => {
                    assert_eq!(remove(reference, h, k.as_ptr()), remove(fast, h, k.as_ptr()), "{ctx}: remove")
                }
                _ => assert_eq!(find(reference, h, k.as_ptr()), find(fast, h, k.as_ptr()), "{ctx}: find"),
            }
        }
        assert_eq!(reference_words(), words(), "{ctx}: states");
    }
}

/// Batches check their shape against the bytes they borrow, and the typed ones read keys
/// and values at the tuple's field offsets, never its padding.
#[test]
fn batches_view_only_their_fields() {
    use crate::batch::{Batch, BatchError};
    let bytes = [0u8; 12];
    assert_eq!(Batch::from_bytes(&bytes, 3, 4, (0, 4), (4, 0)).map(|b| b.len()), Ok(3));
    assert_eq!(Batch::from_bytes(&bytes, 4, 4, (0, 4), (0, 0)).err(), Some(BatchError::TooShort));
    assert_eq!(Batch::from_bytes(&bytes, usize::MAX, 2, (0, 1), (1, 1)).err(), Some(BatchError::TooShort));
    assert_eq!(Batch::from_bytes(&bytes, 1, 4, (2, 4), (0, 0)).err(), Some(BatchError::FieldOutsideRecord));
    assert_eq!(Batch::from_bytes(&bytes, 1, 4, (0, 4), (9, 0)).err(), Some(BatchError::FieldOutsideRecord));
    let b = Batch::from_bytes(&bytes, 3, 4, (0, 2), (2, 2)).unwrap();
    assert_eq!((b.is_tight(), b.tight_bytes().map(<[u8]>::len)), (Some(false), Some(12)));
    #[cfg(feature = "bytemuck")]
    {
        let pairs = [(1u8, 10u64), (2, 20)];
        let p = Batch::pairs(&pairs);
        assert_eq!((p.stride(), p.key_size(), p.value_size()), (16, 1, 8));
        assert_eq!(p.is_tight(), None, "padding between the fields: never read as a block");
        assert_eq!(p.key_bytes(1), &[2]);
        // SAFETY: record 1 of 2; its value holds 8 bytes.
        let v = unsafe { core::slice::from_raw_parts(p.val(1), 8) };
        assert_eq!(v, &20u64.to_ne_bytes());
        let keys = [7u32, 8];
        assert_eq!(Batch::keys(&keys).tight_bytes(), Some(&[7, 0, 0, 0, 8, 0, 0, 0][..]));
        // Two columns: values from their own array, never copied as one block of records.
        let (ks, vs) = ([1u8, 2, 3], [10u64, 20, 30]);
        let c = Batch::columns(&ks, &vs).unwrap();
        assert_eq!((c.len(), c.key_size(), c.value_size(), c.is_tight()), (3, 1, 8, None));
        assert_eq!(c.key_bytes(2), &[3]);
        // SAFETY: record 2 of 3; its value holds 8 bytes.
        let v = unsafe { core::slice::from_raw_parts(c.val(2), 8) };
        assert_eq!(v, &30u64.to_ne_bytes());
        assert_eq!(c.column_bytes().map(|(k, v)| (k.len(), v.len())), Some((3, 24)));
        let k = c.keys_only();
        assert_eq!((k.value_size(), k.tight_bytes()), (0, Some(&[1u8, 2, 3][..])));
        assert_eq!(p.column_bytes(), None);
        assert_eq!(Batch::columns(&ks, &vs[..2]).err(), Some(BatchError::ColumnLengths));
    }
}

/// The byte helpers at every alignment and at the sizes they move as words (4, 8, 16, 32)
/// as well as others, against slice comparison and copying: equal and unequal in the first
/// and the last byte.
#[test]
fn words_read_alike_at_every_alignment_on_every_kind_of_target() {
    use crate::bytes::{read_u32_le_on, read_u64_le_on};
    // An 8-aligned buffer, so that offset 0 is aligned and offsets 1..8 are not.
    let words: [u64; 4] = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210, 0x0f1e_2d3c_4b5a_6978, 7];
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let base = words.as_ptr() as *const u8;
    for off in 0..16 {
        let want8 = u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap());
        let want4 = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
        for fast in [false, true] {
            // SAFETY: `off + 8 <= 24 < 32` bytes of `words`.
            let (got8, got4) = unsafe { (read_u64_le_on(base.add(off), fast), read_u32_le_on(base.add(off), fast)) };
            assert_eq!((got8, got4), (want8, want4), "offset {off}, fast unaligned loads: {fast}");
        }
    }
}

#[test]
fn byte_helpers_compare_and_copy_at_any_alignment() {
    use crate::bytes::{bytes_eq, copy_bytes};
    let src: Vec<u8> = (0..80u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    for len in [1usize, 3, 4, 7, 8, 12, 16, 24, 32, 40] {
        for (a, b) in [(0usize, 0usize), (1, 3), (3, 8), (5, 2)] {
            let mut dst = [0u8; 80];
            // SAFETY: both ranges lie inside their arrays (`a, b + len < 80`); no overlap.
            unsafe { copy_bytes(src.as_ptr().add(a), dst.as_mut_ptr().add(b), len) };
            assert_eq!(&dst[b..b + len], &src[a..a + len], "copy {len} at {a}->{b}");
            assert!(dst[..b].iter().chain(&dst[b + len..]).all(|&x| x == 0), "copy {len} wrote outside");
            for flip in [0, len - 1] {
                let mut other = dst;
                // SAFETY: as above.
                let eq = |o: &[u8; 80]| unsafe { bytes_eq(src.as_ptr().add(a), o.as_ptr().add(b), len) };
                assert!(eq(&other), "equal {len} at {a},{b}");
                other[b + flip] ^= 1;
                assert!(!eq(&other), "unequal {len} at {a},{b}, byte {flip}");
            }
        }
    }
}

/// `RawSlots::group`, `matching` and `any_empty` (vector compares on x86_64) against the
/// state words read one by one: every mix of empty, tombstone, matching, busy and other full words.
#[test]
fn raw_group_masks_match_the_words() {
    use crate::probe::{RawSlots, GROUP};
    let full = full_word(tag_of(0xDEAD_BEEF));
    let words = [EMPTY, TOMBSTONE, full, busy_word(tag_of(0xDEAD_BEEF)), full_word(tag_of(7))];
    let mut states = [0u32; 16];
    let mut keys = [0u8; 16 * 8];
    let mut rnd = stream(1);
    // Fewer mixes under Miri, which interprets every vector instruction.
    for _ in 0..if cfg!(miri) { 40 } else { 2000 } {
        for s in states.iter_mut() {
            *s = words[(rnd() % words.len() as u64) as usize];
        }
        // SAFETY: 16 state words and 16 keys of 8 bytes, read only.
        let s = unsafe { RawSlots::new(states.as_mut_ptr(), keys.as_mut_ptr(), 15, 8) };
        for at in 0..=16 - GROUP {
            // SAFETY: `at + GROUP <= 16`.
            let g = unsafe { s.group(at, full) };
            let mask = |w: u32| (0..GROUP).filter(|&j| states[at + j] == w).fold(0u32, |m, j| m | 1 << j);
            assert_eq!(
                (g.matching, g.empty, g.tombstone),
                (mask(full), mask(EMPTY), mask(TOMBSTONE)),
                "{states:?} at {at}"
            );
            // The masks a lookup takes one at a time (their own vector compares).
            // SAFETY: as above.
            let (m, e) = unsafe { (s.matching(at, full), s.any_empty(at)) };
            assert_eq!((m, e), (mask(full), mask(EMPTY) != 0), "{states:?} at {at}, alone");
        }
    }
}

/// Every word a table of state bytes holds comes back from its byte, and no two share one.
#[test]
fn state_bytes_give_back_every_word_they_hold() {
    let mut words = std::vec![EMPTY, TOMBSTONE, PENDING];
    words.extend((0..=BYTE_TAG_MASK).map(full_word));
    words.extend((0..=BYTE_BUSY_TAG_MASK).map(busy_word));
    let mut seen = std::collections::BTreeMap::new();
    for &w in &words {
        let b = state_byte(w);
        assert_eq!(word_of_byte(b), w, "{w:#x}");
        assert_eq!(is_full(word_of_byte(b)), is_full(w));
        assert_eq!(is_free(word_of_byte(b)), is_free(w));
        if let Some(other) = seen.insert(b, w) {
            assert_eq!(other, w, "{w:#x} and {other:#x} share byte {b:#x}");
        }
    }
    assert_eq!(seen.len(), 2 + 128 + 64);
}

/// The scalar reference for [`crate::probe::ByteSlots`]: [`Arr`] with the fingerprints of a
/// table of state bytes and its test of a shared hash.
struct ByteArr {
    arr: Arr,
    hasher: KeyHasher,
}

// SAFETY: forwards to `Arr`; `shares_hash` reads a key of a slot `<= mask`.
unsafe impl Slots for ByteArr {
    fn mask(&self) -> usize {
        self.arr.mask()
    }
    fn key_size(&self) -> usize {
        self.arr.key_size
    }
    fn tag(&self, hash: u64) -> u32 {
        tag_of(hash) & BYTE_TAG_MASK
    }
    fn busy_tag(&self, tag: u32) -> u32 {
        tag & BYTE_BUSY_TAG_MASK
    }
    unsafe fn shares_hash(&self, slot: usize, hash: u64) -> bool {
        // SAFETY: `slot <= mask`.
        unsafe { self.hasher.hash(self.key_ptr(slot), self.arr.key_size) == hash }
    }
    unsafe fn state(&self, slot: usize) -> u32 {
        // SAFETY: forwarded.
        unsafe { self.arr.state(slot) }
    }
    unsafe fn cas_state(&self, slot: usize, current: u32, new: u32) -> bool {
        // SAFETY: forwarded.
        unsafe { self.arr.cas_state(slot, current, new) }
    }
    unsafe fn publish(&self, slot: usize, state: u32) {
        // SAFETY: forwarded.
        unsafe { self.arr.publish(slot, state) }
    }
    unsafe fn key_ptr(&self, slot: usize) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { self.arr.key_ptr(slot) }
    }
}

/// A table of state bytes ([`crate::probe::ByteSlots`], grouped where the target allows)
/// claims, finds, removes and rehashes exactly as the slot-by-slot algorithm does with the
/// same 7-bit fingerprints: the same results and the same words after every call, on random
/// tables whose keys often share a fingerprint, sometimes their hash (16-byte keys of one
/// first half), with tombstones, full tables and wrap-around runs.
#[test]
fn byte_slots_probe_as_the_scalar_algorithm_does() {
    use crate::probe::{rehash_in_place, ByteSlots};
    table_rounds(0x5eed, |round, slots, ks, rnd| {
        let hs = KeyHasher::plain([HashStrategy::Identity, HashStrategy::Murmur3][round % 4 / 2]);
        let reference = ByteArr { arr: Arr::new(slots, ks), hasher: hs };
        let mut states = std::vec![0u8; slots];
        let mut keys = std::vec![0u8; slots * ks];
        // SAFETY: `slots` state bytes and keys, used by this thread alone; hashes are `hs`'s.
        let fast = unsafe { ByteSlots::strided(states.as_mut_ptr(), keys.as_mut_ptr(), slots - 1, ks, ks, hs) };
        let words = || states.iter().map(|&b| word_of_byte(b)).collect();
        let reference_words = || reference.arr.states.iter().map(Cell::get).collect();
        same_ops(&reference, &fast, (slots, ks, hs), round, rnd, reference_words, words);
        // A rehash in place leaves the same table in both, every key findable.
        let mut values = std::vec![0u8; slots];
        // SAFETY: one thread; values of no bytes.
        unsafe {
            rehash_in_place(&reference, values.as_mut_ptr(), 0, &hs);
            rehash_in_place(&fast, values.as_mut_ptr(), 0, &hs);
        }
        assert!(reference.arr.states.iter().map(Cell::get).eq(states.iter().map(|&b| word_of_byte(b))));
        for slot in 0..slots {
            if is_full(word_of_byte(states[slot])) {
                let k = keys[slot * ks..][..ks].to_vec();
                // SAFETY: `slot < slots`; `k` holds `ks` bytes.
                unsafe {
                    assert_eq!(core::slice::from_raw_parts(reference.key_ptr(slot), ks), &k[..]);
                    assert_eq!(find(&fast, hs.hash_bytes(&k), k.as_ptr()), Some(slot), "round {round}");
                }
            }
        }
    });
}

/// In a table of 7-bit fingerprints, keys of different hashes that share a fingerprint never
/// count as collisions, however many a claim passes; keys of one hash still do.
#[test]
#[cfg_attr(miri, ignore)] // hashes a few hundred thousand candidate keys
fn byte_slots_count_only_keys_of_one_hash() {
    use crate::probe::{ByteSlots, COLLISION_LIMIT};
    let hs = KeyHasher::plain(HashStrategy::Identity);
    let (slots, ks) = (64usize, 32usize);
    let table = || (std::vec![0u8; slots], std::vec![0u8; slots * ks]);
    let ((mut states, mut keys), (mut states2, mut keys2)) = (table(), table());
    // SAFETY: `slots` state bytes and keys each, this thread alone; hashes are `hs`'s.
    let (t, t2) = unsafe {
        (
            ByteSlots::strided(states.as_mut_ptr(), keys.as_mut_ptr(), slots - 1, ks, ks, hs),
            ByteSlots::strided(states2.as_mut_ptr(), keys2.as_mut_ptr(), slots - 1, ks, ks, hs),
        )
    };
    // 40 keys of one home slot and one fingerprint but distinct hashes: one run, in which
    // the last claim passes 39 keys of its fingerprint.
    let key = |i: u64| {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&i.to_le_bytes());
        k
    };
    let h0 = hs.hash_bytes(&key(0));
    let run: Vec<[u8; 32]> = (0u64..)
        .map(key)
        .filter(|k| {
            let h = hs.hash_bytes(k);
            home(h, slots - 1) == home(h0, slots - 1) && t.tag(h) == t.tag(h0)
        })
        .take(40)
        .collect();
    for (i, k) in run.iter().enumerate() {
        // SAFETY: `k` holds 32 bytes; one thread.
        let c = unsafe { claim(&t, hs.hash_bytes(k), k.as_ptr()) };
        assert!(matches!(c, Claim::New { .. }), "key {i}: {c:?}");
    }
    // Keys of one hash (one first 8 bytes under Identity) stop after the limit.
    let one_hash: Vec<[u8; 32]> = (0..40).map(shared_prefix_key).collect();
    let limit = COLLISION_LIMIT as usize;
    for (i, k) in one_hash.iter().enumerate() {
        // SAFETY: as above.
        let c = unsafe { claim(&t2, hs.hash_bytes(k), k.as_ptr()) };
        if i <= limit {
            assert!(matches!(c, Claim::New { .. }), "key {i}: {c:?}");
        } else {
            assert_eq!(c, Claim::Collisions, "key {i}");
        }
    }
}
