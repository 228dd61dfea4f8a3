//! GPU benchmark (feature `cuda`), run by the GPU bundle on a CUDA machine.
//!
//! (a) 1M `[u8; 32] -> [u8; 128]` pairs host-to-host through `FlashMap` (insert, get hit,
//!     get miss, remove, and get into a result vector kept between calls), on Cuda and, for
//!     a ratio in the same process, on Rayon.
//! (b) `u64 -> u64` with batches already in device memory, load factor 0.5, 16M and 64M
//!     keys: insert and find throughput in G ops/s.
//!
//! Times are medians of 5 runs after one warm-up; every result is checked.

use std::time::Instant;

use flash_map::{Backend, FlashMap, HashStrategy};
use flash_map_core::BulkEngine;
use flash_map_core::TableLayout;
use flash_map_cuda::{device_records, CudaTable, DeviceBuf};

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn key32(s: u64, i: u64) -> [u8; 32] {
    let mut k = [0u8; 32];
    for (j, c) in k.chunks_exact_mut(8).enumerate() {
        c.copy_from_slice(&splitmix(s ^ (i << 2 | j as u64)).to_le_bytes());
    }
    k
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v[v.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed().as_secs_f64(), r)
}

fn host_to_host(backend: Backend, pairs: &[([u8; 32], [u8; 128])], keys: &[[u8; 32]], absent: &[[u8; 32]]) -> [f64; 5] {
    let n = pairs.len();
    let mut map: FlashMap<[u8; 32], [u8; 128]> = FlashMap::builder(n).backend(backend).build().expect("map");
    let mut t = [vec![], vec![], vec![], vec![], vec![]];
    let mut reused = Vec::new();
    for rep in 0..6 {
        let (a, new) = time(|| map.bulk_insert(pairs).expect("insert"));
        assert_eq!(new, n);
        let (b, got) = time(|| map.bulk_get(keys).expect("get"));
        assert!(got.iter().zip(pairs).all(|(g, p)| *g == Some(p.1)), "wrong value");
        let (c, miss) = time(|| map.bulk_get(absent).expect("get"));
        assert!(miss.iter().all(Option::is_none));
        // The same lookups into a result vector kept from the previous repetition.
        let (e, ()) = time(|| map.bulk_get_into(keys, &mut reused).expect("get"));
        assert!(reused.iter().zip(pairs).all(|(g, p)| *g == Some(p.1)), "wrong value");
        let (d, rem) = time(|| map.bulk_remove(keys).expect("remove"));
        assert_eq!(rem, n);
        if rep > 0 {
            for (v, x) in t.iter_mut().zip([a, b, c, d, e]) {
                v.push(x);
            }
        }
    }
    t.map(median)
}

fn device_resident(n: usize, hash: HashStrategy) {
    let layout = TableLayout::for_capacity(n, 0.5, 8, 8).expect("layout");
    let mut table = CudaTable::new(layout, flash_map_core::KeyHasher::new(hash, [1, 2]), 0).expect("table");
    let mut pairs = Vec::with_capacity(n * 16);
    let mut misses = Vec::with_capacity(n * 8);
    for i in 0..n as u64 {
        pairs.extend_from_slice(&splitmix(i).to_le_bytes());
        pairs.extend_from_slice(&i.to_le_bytes());
        misses.extend_from_slice(&splitmix(i + (1 << 40)).to_le_bytes());
    }
    let gpu = flash_map_cuda::Gpu::get(0).expect("gpu");
    let d_pairs = DeviceBuf::zeroed(&gpu, pairs.len()).expect("alloc");
    d_pairs.upload(&pairs).expect("upload");
    let d_miss = DeviceBuf::zeroed(&gpu, misses.len()).expect("alloc");
    d_miss.upload(&misses).expect("upload");
    let found = DeviceBuf::zeroed(&gpu, n).expect("alloc");
    let out = DeviceBuf::zeroed(&gpu, n * 8).expect("alloc");
    let ins = device_records(d_pairs.ptr(), n, 16, 0, 8);
    let hit = ins;
    let miss = device_records(d_miss.ptr(), n, 8, 0, 0);
    let (mut ti, mut th, mut tm) = (vec![], vec![], vec![]);
    let mut flags = vec![0u8; n];
    let mut vals = vec![0u8; n * 8];
    for rep in 0..6 {
        table.clear().expect("clear");
        // The batches and result buffers of the three device calls below are allocations of
        // this device's context sized for `n` records (above), which nothing else uses.
        let (a, new) = time(|| {
            // SAFETY: see above.
            unsafe { table.insert_device(ins) }.expect("insert")
        });
        assert_eq!(new, n);
        // SAFETY: as above.
        let (b, ()) = time(|| unsafe { table.find_device(hit, found.ptr(), out.ptr()) }.expect("find"));
        if rep == 0 {
            found.download(&mut flags).expect("dl");
            out.download(&mut vals).expect("dl");
            assert!(flags.iter().all(|&f| f == 1), "every key found");
            assert!(vals
                .chunks_exact(8)
                .enumerate()
                .all(|(i, v)| u64::from_le_bytes(v.try_into().unwrap()) == i as u64));
        }
        // SAFETY: as above.
        let (c, ()) = time(|| unsafe { table.find_device(miss, found.ptr(), 0) }.expect("find"));
        if rep == 0 {
            found.download(&mut flags).expect("dl");
            assert!(flags.iter().all(|&f| f == 0), "no absent key found");
        }
        if rep > 0 {
            ti.push(a);
            th.push(b);
            tm.push(c);
        }
    }
    let g = |t: f64| n as f64 / t / 1e9;
    let (a, b, c) = (median(ti), median(th), median(tm));
    println!(
        "device-resident u64->u64 {hash:?} n={n} (load {:.2}): insert {:.3} ms = {:.2} G/s | find hit {:.3} ms = {:.2} G/s | find miss {:.3} ms = {:.2} G/s",
        n as f64 / layout.slots as f64,
        a * 1e3, g(a), b * 1e3, g(b), c * 1e3, g(c)
    );
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let info = flash_map_cuda::probe_device(0).expect("a CUDA device");
    println!(
        "device: {} (sm_{}{}, {} SMs)",
        info.name, info.compute_capability.0, info.compute_capability.1, info.sm_count
    );
    let n = 1_000_000;
    let pairs: Vec<([u8; 32], [u8; 128])> = (0..n as u64)
        .map(|i| {
            let mut v = [0u8; 128];
            v[..8].copy_from_slice(&i.to_le_bytes());
            (key32(1, i), v)
        })
        .collect();
    let keys: Vec<[u8; 32]> = pairs.iter().map(|p| p.0).collect();
    let absent: Vec<[u8; 32]> = (0..n as u64).map(|i| key32(2, i)).collect();
    let ops = ["insert", "get hit", "get miss", "remove", "get hit, reused result vector"];
    let cuda = host_to_host(Backend::Cuda, &pairs, &keys, &absent);
    let rayon = host_to_host(Backend::Rayon, &pairs, &keys, &absent);
    println!(
        "host-to-host 1M [u8;32]->[u8;128] (median of 5), Cuda vs Rayon ({} threads):",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    for i in 0..5 {
        println!(
            "  {:<8} cuda {:>8.2} ms ({:>6.1} M/s) | rayon {:>8.2} ms | cuda/rayon {:.2}",
            ops[i],
            cuda[i] * 1e3,
            n as f64 / cuda[i] / 1e6,
            rayon[i] * 1e3,
            cuda[i] / rayon[i]
        );
    }
    for n in [1 << 24, 1 << 26] {
        for hash in [HashStrategy::Identity, HashStrategy::Murmur3, HashStrategy::SipHash13] {
            device_resident(n, hash);
        }
    }
}
