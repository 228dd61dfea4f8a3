//! The behaviours the seed README promises, and the errors API.md asks for.

mod common;

use common::backends;
use flash_map::{Backend, FlashMap, FlashMapBuilder, FlashMapError, HashStrategy};

#[test]
fn quick_start_flow() {
    for backend in backends() {
        let mut map: FlashMap<[u8; 32], [u8; 128]> = FlashMap::builder(10_000).backend(backend).build().unwrap();
        let pairs: Vec<([u8; 32], [u8; 128])> = (0..5_000u32)
            .map(|i| {
                let mut k = [0u8; 32];
                k[..4].copy_from_slice(&i.to_le_bytes());
                k[31] = 7;
                (
                    [k[0] ^ 0x5a; 1].iter().chain(&k[1..]).copied().collect::<Vec<u8>>().try_into().unwrap(),
                    [i as u8; 128],
                )
            })
            .collect();
        assert_eq!(map.bulk_insert(&pairs).unwrap(), 5_000);
        let keys: Vec<[u8; 32]> = pairs.iter().map(|(k, _)| *k).collect();
        let results = map.bulk_get(&keys).unwrap();
        assert!(results.iter().zip(&pairs).all(|(r, p)| *r == Some(p.1)));
        assert_eq!(map.bulk_remove(&keys[..1000]).unwrap(), 1000);
        assert_eq!(map.len(), 4_000);
        assert_eq!(map.bulk_get(&keys[..1]).unwrap(), vec![None]);
    }
}

#[test]
fn builder_example_from_the_api_contract_compiles_and_builds() {
    let m: FlashMap<[u8; 32], [u8; 64]> =
        FlashMap::builder(1_000_000).hash_strategy(HashStrategy::Murmur3).build().unwrap();
    assert!(m.capacity() >= 1_000_000);
    let b: FlashMapBuilder<u64, u64> = FlashMapBuilder::new(10).device_id(3).force_cpu();
    assert_ne!(b.build().unwrap().backend(), Backend::Cuda);
}

#[test]
fn capacity_is_a_power_of_two_at_the_default_load_factor() {
    for n in [1usize, 2, 3, 1000, 1 << 16, (1 << 16) + 1] {
        let m: FlashMap<u64, u64> = FlashMap::with_capacity(n).unwrap();
        assert!(m.capacity() >= n && m.capacity().is_power_of_two(), "{n} -> {}", m.capacity());
        assert_eq!(m.load_factor(), 0.0);
        assert!(m.is_empty());
    }
}

#[test]
fn absurd_capacities_are_errors_not_aborts() {
    assert!(matches!(FlashMap::<u64, u64>::with_capacity(0), Err(FlashMapError::ZeroCapacity)));
    assert!(matches!(FlashMap::<u64, u64>::with_capacity(usize::MAX), Err(FlashMapError::CapacityOverflow { .. })));
    assert!(matches!(
        FlashMap::<[u8; 32], [u8; 128]>::with_capacity(1 << 60),
        Err(FlashMapError::CapacityOverflow { .. })
    ));
    // Representable but far beyond this machine's memory: an allocation error.
    let r = FlashMap::<[u8; 64], [u8; 4096]>::with_capacity(1 << 30);
    assert!(matches!(r, Err(FlashMapError::AllocationFailed { .. }) | Err(FlashMapError::Cuda(_))), "{r:?}");
}

#[test]
fn zero_sized_keys_are_refused() {
    let r = FlashMap::<(), u64>::with_capacity(10);
    assert!(matches!(r, Err(FlashMapError::ZeroSizedKey)), "{r:?}");
    assert!(r.unwrap_err().to_string().contains("at least one byte"));
}

#[test]
fn forcing_a_backend_that_is_not_compiled_fails_clearly() {
    for b in [Backend::Cuda, Backend::Rayon, Backend::Serial] {
        let r = FlashMap::<u64, u64>::builder(10).backend(b).build();
        if b.is_compiled() && b != Backend::Cuda {
            assert_eq!(r.unwrap().backend(), b);
        } else if !b.is_compiled() {
            let msg = r.unwrap_err().to_string();
            assert!(msg.contains("not compiled in") && msg.contains("feature"), "{msg}");
        }
    }
}

#[test]
fn debug_names_backend_len_capacity_and_load() {
    let mut m: FlashMap<u64, u64> = FlashMap::with_capacity(8).unwrap();
    m.bulk_insert(&[(1, 1), (2, 2)]).unwrap();
    let s = format!("{m:?}");
    for part in ["backend", "len: 2", "capacity: 8", "load_factor: 0.125"] {
        assert!(s.contains(part), "{s}");
    }
    assert_eq!(format!("{}", m.backend()), format!("{:?}", m.backend()));
}

#[test]
fn identity_hash_handles_short_keys_and_zero_keys() {
    for backend in backends() {
        let mut m: FlashMap<[u8; 2], u8> = FlashMap::builder(300).backend(backend).build().unwrap();
        let pairs: Vec<([u8; 2], u8)> = (0..=255u8).map(|i| ([i, 0], i)).collect();
        assert_eq!(m.bulk_insert(&pairs).unwrap(), 256);
        assert_eq!(m.bulk_get(&[[0, 0], [255, 0], [0, 1]]).unwrap(), vec![Some(0), Some(255), None]);
    }
}

#[test]
fn empty_batches_are_fine() {
    for backend in backends() {
        let mut m: FlashMap<u64, u64> = FlashMap::builder(8).backend(backend).build().unwrap();
        assert_eq!(m.bulk_insert(&[]).unwrap(), 0);
        assert_eq!(m.bulk_get(&[]).unwrap(), vec![]);
        assert_eq!(m.bulk_remove(&[]).unwrap(), 0);
        assert_eq!(m.bulk_contains(&[]).unwrap(), Vec::<bool>::new());
        assert_eq!(m.bulk_insert_new(&[]).unwrap(), Vec::<bool>::new());
        assert!(m.entries().unwrap().is_empty());
    }
}

#[test]
fn padded_pair_types_work() {
    // (u8, u64) has padding inside the tuple; keys and values must still be read exactly.
    for backend in backends() {
        let mut m: FlashMap<u8, u64> = FlashMap::builder(300).backend(backend).build().unwrap();
        let pairs: Vec<(u8, u64)> = (0..=255u8).map(|i| (i, u64::MAX - i as u64)).collect();
        assert_eq!(m.bulk_insert(&pairs).unwrap(), 256);
        let got = m.bulk_get(&[0, 7, 255]).unwrap();
        assert_eq!(got, vec![Some(u64::MAX), Some(u64::MAX - 7), Some(u64::MAX - 255)]);
    }
}

#[test]
fn bulk_get_into_reuses_the_callers_vector() {
    for backend in backends() {
        let mut m: FlashMap<[u8; 13], [u8; 40]> = FlashMap::builder(1000).backend(backend).build().unwrap();
        let pairs: Vec<([u8; 13], [u8; 40])> =
            (0..500u32).map(|i| (common::from_id(i as u64), common::from_id(i as u64 + 9))).collect();
        m.bulk_insert(&pairs).unwrap();
        let mut out = Vec::new();
        for round in 0..4u64 {
            let keys: Vec<[u8; 13]> = (0..700).map(|i| common::from_id((i * 7 + round) % 900)).collect();
            m.bulk_get_into(&keys, &mut out).unwrap();
            assert_eq!(out, m.bulk_get(&keys).unwrap(), "{backend:?} round {round}");
        }
        let cap = out.capacity();
        m.bulk_get_into(&[], &mut out).unwrap();
        assert!(out.is_empty() && out.capacity() == cap, "cleared, allocation kept");
    }
}
