//! `AsyncFlashMap` under many concurrent tasks.
#![cfg(feature = "tokio")]

use flash_map::{AsyncFlashMap, FlashMap};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_insert_read_and_remove() {
    let map = AsyncFlashMap::new(FlashMap::<u64, u64>::with_capacity(100_000).unwrap());
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let m = map.clone();
        tasks.push(tokio::spawn(async move {
            let pairs: Vec<(u64, u64)> = (0..1000).map(|i| (t * 10_000 + i, t + i)).collect();
            assert_eq!(m.bulk_insert(pairs.clone()).await.unwrap(), 1000);
            let got = m.bulk_get(pairs.iter().map(|p| p.0).collect()).await.unwrap();
            assert!(got.iter().zip(&pairs).all(|(g, p)| *g == Some(p.1)));
            let half: Vec<u64> = pairs.iter().take(500).map(|p| p.0).collect();
            assert_eq!(m.bulk_remove(half.clone()).await.unwrap(), 500);
            assert!(m.bulk_contains(half).await.unwrap().iter().all(|c| !c));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(map.len(), 32 * 500);
}
