//! The rayon engine under heavy duplication: exact counts and last-wins, like Serial.
#![cfg(feature = "rayon")]

use flash_map::{Backend, FlashMap};

#[test]
fn heavy_duplicate_batches_match_serial() {
    let n = 400_000u64;
    // 1000 distinct keys, each repeated ~400 times, values = batch position.
    let pairs: Vec<(u64, u64)> = (0..n).map(|i| ((i * 7919) % 1000, i)).collect();
    let mut maps: Vec<FlashMap<u64, u64>> = [Backend::Serial, Backend::Rayon]
        .iter()
        .map(|&b| FlashMap::builder(4096).backend(b).build().unwrap())
        .collect();
    for m in &mut maps {
        assert_eq!(m.bulk_insert(&pairs).unwrap(), 1000);
        assert_eq!(m.len(), 1000);
    }
    let keys: Vec<u64> = (0..1000).collect();
    let mut last = vec![0u64; 1000];
    for (k, v) in &pairs {
        last[*k as usize] = *v;
    }
    for m in &maps {
        let got = m.bulk_get(&keys).unwrap();
        assert!(got.iter().zip(&last).all(|(g, l)| *g == Some(*l)), "last occurrence must win");
    }
    // insert_new: first copy wins; counters: all copies add up.
    let fresh: Vec<(u64, u64)> = (0..n).map(|i| (1_000_000 + (i % 777), i)).collect();
    let flags: Vec<Vec<bool>> = maps.iter_mut().map(|m| m.bulk_insert_new(&fresh).unwrap()).collect();
    assert_eq!(flags[0], flags[1]);
    assert_eq!(flags[0].iter().filter(|&&f| f).count(), 777);
    assert!(flags[0][..777].iter().all(|&f| f));
    let removed: Vec<usize> = maps.iter_mut().map(|m| m.bulk_remove(&keys.repeat(50)).unwrap()).collect();
    assert_eq!(removed, vec![1000, 1000]);
    let mut counts: Vec<FlashMap<u32, u64>> = [Backend::Serial, Backend::Rayon]
        .iter()
        .map(|&b| FlashMap::builder(1024).backend(b).build().unwrap())
        .collect();
    let adds: Vec<(u32, u64)> = (0..n).map(|i| ((i % 500) as u32, 1)).collect();
    for c in &mut counts {
        assert_eq!(c.bulk_add(&adds).unwrap(), 500);
        let got = c.bulk_get(&[0, 499, 500]).unwrap();
        assert_eq!(got, vec![Some(n / 500), Some(n / 500), None]);
    }
}
