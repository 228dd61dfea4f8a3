//! Issue 14: `shard_of` routes keys to shards without touching the bits that place them in
//! a shard's table. Each shard's table (at every size `auto_grow` takes it through) is
//! compared with an unsharded table of the same load: the share of distinct home slots its
//! keys use, and the slots lookups visit. Routing by the table's own hash (`hash % shards`)
//! is run through the same check and must fail it, so the check can tell.

use flash_map::{shard_of, Backend, FlashMap, HashStrategy, Pod};
use flash_map_core::patterns::{shared_prefix_key, KeyPattern};
use flash_map_core::probe::home;
use flash_map_core::KeyHasher;

const N: usize = 1 << 16;

/// What a table's keys look like in it: distinct home slots per key, and probe lengths.
#[derive(Debug, Clone, Copy)]
struct Spread {
    homes_per_key: f64,
    mean_probe: f64,
    max_probe: usize,
}

fn spread<K: Pod + Send + Sync>(map: &FlashMap<K, u32>, keys: &[K], hash: HashStrategy) -> Spread {
    let slots = map.stats().slots;
    let hasher = KeyHasher::plain(hash);
    let mut homes: Vec<usize> =
        keys.iter().map(|k| home(hasher.hash_bytes(bytemuck::bytes_of(k)), slots - 1)).collect();
    homes.sort_unstable();
    homes.dedup();
    let p = map.probe_stats(keys).unwrap();
    Spread { homes_per_key: homes.len() as f64 / keys.len() as f64, mean_probe: p.mean, max_probe: p.max }
}

/// Builds `keys` into one table of their size at load 0.5 and returns its spread.
fn unsharded<K: Pod + Send + Sync>(keys: &[K], hash: HashStrategy) -> Spread {
    let mut m: FlashMap<K, u32> =
        FlashMap::builder(keys.len()).backend(Backend::Serial).hash_strategy(hash).build().unwrap();
    let pairs: Vec<(K, u32)> = keys.iter().map(|&k| (k, 1)).collect();
    m.bulk_insert(&pairs).unwrap();
    spread(&m, keys, hash)
}

/// Routes `keys` to `shards` shards with `route`; each shard starts at an eighth of its
/// share and grows in four batches. After every batch, its spread must match an unsharded
/// table's at the same load and size: `Err` says where it did not.
fn check_sharded<K: Pod + Send + Sync>(
    keys: &[K],
    hash: HashStrategy,
    shards: usize,
    route: impl Fn(&K) -> usize,
    ctx: &str,
) -> Result<(), String> {
    let mut parts: Vec<Vec<K>> = vec![Vec::new(); shards];
    for k in keys {
        parts[route(k)].push(*k);
    }
    for (s, part) in parts.iter().enumerate() {
        let share = keys.len() / shards;
        if part.len() < share * 9 / 10 || part.len() > share * 11 / 10 {
            return Err(format!("{ctx}: shard {s} got {} keys of {}", part.len(), keys.len()));
        }
        let mut m: FlashMap<K, u32> = FlashMap::builder(part.len() / 8)
            .backend(Backend::Serial)
            .hash_strategy(hash)
            .auto_grow(true)
            .build()
            .unwrap();
        let mut slots_seen = Vec::new();
        for (b, batch) in part.chunks(part.len().div_ceil(4)).enumerate() {
            let pairs: Vec<(K, u32)> = batch.iter().map(|&k| (k, 1)).collect();
            m.bulk_insert(&pairs).unwrap();
            let inserted = &part[..part.len().min((b + 1) * part.len().div_ceil(4))];
            let got = spread(&m, inserted, hash);
            // The same number of keys in a table of the same size, unsharded: keys
            // sampled evenly from the whole set (a set the route did not choose).
            let step = keys.len() / inserted.len();
            let sample: Vec<K> = keys.iter().step_by(step.max(1)).take(inserted.len()).copied().collect();
            let mut reference: FlashMap<K, u32> =
                FlashMap::builder(m.capacity()).backend(Backend::Serial).hash_strategy(hash).build().unwrap();
            let pairs: Vec<(K, u32)> = sample.iter().map(|&k| (k, 1)).collect();
            reference.bulk_insert(&pairs).unwrap();
            assert_eq!(reference.stats().slots, m.stats().slots, "{ctx}: reference table of another size");
            let want = spread(&reference, &sample, hash);
            slots_seen.push(m.stats().slots);
            if got.homes_per_key < want.homes_per_key * 0.9
                || got.mean_probe > want.mean_probe * 1.25 + 0.05
                || got.max_probe > want.max_probe * 3 + 8
            {
                return Err(format!(
                    "{ctx}: shard {s} of {shards} at {} slots after batch {b}: {got:?}, unsharded {want:?}",
                    m.stats().slots
                ));
            }
        }
        assert!(slots_seen.windows(2).any(|w| w[1] > w[0]), "{ctx}: the shard never grew: {slots_seen:?}");
    }
    Ok(())
}

#[test]
fn shards_spread_like_one_table_for_every_key_pattern() {
    for pattern in KeyPattern::ALL {
        let keys: Vec<u64> = (0..N as u64).map(|i| pattern.key(i)).collect();
        for shards in [2, 3, 4, 8] {
            let ctx = format!("{} keys, Identity", pattern.name());
            check_sharded(&keys, HashStrategy::Identity, shards, |k| shard_of(k, shards), &ctx).unwrap();
        }
        let _ = unsharded(&keys, HashStrategy::Identity);
    }
}

#[test]
fn shards_spread_like_one_table_for_shared_prefix_keys_under_murmur3() {
    let keys: Vec<[u8; 32]> = (0..N as u64 / 2).map(shared_prefix_key).collect();
    for shards in [2, 4] {
        check_sharded(&keys, HashStrategy::Murmur3, shards, |k| shard_of(k, shards), "shared prefix, Murmur3").unwrap();
    }
}

#[test]
fn routing_by_the_tables_own_hash_fails_the_same_check() {
    let keys: Vec<u64> = (0..N as u64).map(|i| KeyPattern::Random.key(i)).collect();
    let h = KeyHasher::plain(HashStrategy::Identity);
    let shards = 4;
    let naive = |k: &u64| (h.hash_bytes(&k.to_le_bytes()) % shards as u64) as usize;
    let err = check_sharded(&keys, HashStrategy::Identity, shards, naive, "hash % shards").unwrap_err();
    assert!(err.contains("hash % shards"), "{err}");
}

#[test]
fn shard_of_is_a_fixed_function_of_the_key() {
    // Pinned values: every process of a job must route alike, so the function may not
    // change between builds, platforms or maps.
    assert_eq!([0u64, 1, 2, 3, 1 << 40, u64::MAX].map(|k| shard_of(&k, 1 << 20)), PINNED);
    assert_eq!(shard_of(&7u64, 0), 0);
    assert_eq!(shard_of(&7u64, 1), 0);
    for k in 0..1000u64 {
        assert!(shard_of(&k, 5) < 5);
        assert_eq!(shard_of(&k, 5), shard_of(&k, 5));
    }
}

/// Routing must never change: shard snapshots saved by one version are loaded by the next,
/// and a job's processes may be built apart. These are the first version's values.
const PINNED: [usize; 6] = [529596, 568376, 931336, 757630, 881332, 1027645];
