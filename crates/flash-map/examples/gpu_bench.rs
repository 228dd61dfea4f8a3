//! GPU benchmark (feature `cuda`), run by the GPU bundle on a CUDA machine.
//!
//! (a) 1M `[u8; 32] -> [u8; 128]` pairs host-to-host through `FlashMap` (insert, get hit,
//!     get miss, remove, and get into a result vector kept between calls), on Cuda and, for
//!     a ratio in the same process, on Rayon.
//!     Next to them, a bare pinned copy of the same bytes each way, in the same run.
//! (b) `u64 -> u64` with batches already in device memory (cudarc buffers on the map's
//!     stream, through `bulk_insert_device` / `bulk_get_device` / `bulk_contains_device`),
//!     load factor 0.5, 16M and 64M keys: throughput in G ops/s.
//!
//! Everything goes through the public API of `flash_map`.
//!
//! Times are medians of 5 runs after one warm-up; every result is checked.

use std::time::Instant;

use flash_map::cuda::CudaContext;
use flash_map::{Backend, FlashMap, HashStrategy};

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

/// `u64 -> u64` at load 0.5 with the batches in device memory, through the public API:
/// keys, values and results are cudarc buffers on the map's stream; each timed call is
/// followed by `cuda_synchronize`, so the times are the device's.
fn device_resident(n: usize, hash: HashStrategy) {
    let mut map: FlashMap<u64, u64> =
        FlashMap::builder(n).backend(Backend::Cuda).hash_strategy(hash).build().expect("map");
    let stream = map.cuda_stream().expect("stream");
    let keys: Vec<u64> = (0..n as u64).map(splitmix).collect();
    let values: Vec<u64> = (0..n as u64).collect();
    let misses: Vec<u64> = (0..n as u64).map(|i| splitmix(i + (1 << 40))).collect();
    let d_keys = stream.clone_htod(&keys).expect("upload");
    let d_values = stream.clone_htod(&values).expect("upload");
    let d_miss = stream.clone_htod(&misses).expect("upload");
    let mut d_out = stream.alloc_zeros::<u64>(n).expect("alloc");
    let mut d_found = stream.alloc_zeros::<bool>(n).expect("alloc");
    let (mut ti, mut th, mut tm, mut tc) = (vec![], vec![], vec![], vec![]);
    for rep in 0..6 {
        map.clear().expect("clear");
        map.cuda_synchronize().expect("sync");
        let (a, new) = time(|| {
            let new = map.bulk_insert_device(&d_keys, &d_values).expect("insert");
            map.cuda_synchronize().expect("sync");
            new
        });
        assert_eq!(new, n);
        let (b, ()) = time(|| {
            map.bulk_get_device(&d_keys, &mut d_out, &mut d_found).expect("get");
            map.cuda_synchronize().expect("sync");
        });
        if rep == 0 {
            assert!(stream.clone_dtoh(&d_found).expect("dl").iter().all(|&f| f), "every key found");
            assert_eq!(stream.clone_dtoh(&d_out).expect("dl"), values, "every value right");
        }
        let (c, ()) = time(|| {
            map.bulk_get_device(&d_miss, &mut d_out, &mut d_found).expect("get");
            map.cuda_synchronize().expect("sync");
        });
        if rep == 0 {
            assert!(stream.clone_dtoh(&d_found).expect("dl").iter().all(|&f| !f), "no absent key found");
        }
        let (d, ()) = time(|| {
            map.bulk_contains_device(&d_keys, &mut d_found).expect("contains");
            map.cuda_synchronize().expect("sync");
        });
        if rep > 0 {
            ti.push(a);
            th.push(b);
            tm.push(c);
            tc.push(d);
        }
    }
    let g = |t: f64| n as f64 / t / 1e9;
    let (a, b, c, d) = (median(ti), median(th), median(tm), median(tc));
    println!(
        "device-resident u64->u64 {hash:?} n={n} (load {:.2}): insert {:.3} ms = {:.2} G/s | get hit {:.3} ms = {:.2} G/s | get miss {:.3} ms = {:.2} G/s | contains hit {:.3} ms = {:.2} G/s",
        map.load_factor(),
        a * 1e3, g(a), b * 1e3, g(b), c * 1e3, g(c), d * 1e3, g(d)
    );
}

/// A bare copy of `bytes` bytes from pinned host memory to the device and back on one
/// stream (median of 5): the floor of a host-to-host batch of that size.
fn pinned_copy(bytes_up: usize, bytes_down: usize) -> (f64, f64) {
    let ctx = CudaContext::new(0).expect("context");
    let stream = ctx.new_stream().expect("stream");
    // SAFETY: the pinned buffers are written (zeroed) by the host before any copy reads
    // them; `alloc_pinned` leaves them uninitialised.
    let mut up = unsafe { ctx.alloc_pinned::<u8>(bytes_up) }.expect("pinned");
    up.as_mut_slice().expect("host").fill(1);
    // SAFETY: the same: zeroed by the host (`fill(0)` below) before any copy reads it.
    let mut down = unsafe { ctx.alloc_pinned::<u8>(bytes_down) }.expect("pinned");
    down.as_mut_slice().expect("host").fill(0);
    let mut dev = stream.alloc_zeros::<u8>(bytes_up.max(bytes_down)).expect("alloc");
    let (mut tu, mut td) = (vec![], vec![]);
    for rep in 0..6 {
        let (a, ()) = time(|| {
            stream.memcpy_htod(&up, &mut dev).expect("htod");
            stream.synchronize().expect("sync");
        });
        let (b, ()) = time(|| {
            stream.memcpy_dtoh(&dev.slice(..bytes_down), &mut down).expect("dtoh");
            stream.synchronize().expect("sync");
        });
        if rep > 0 {
            tu.push(a);
            td.push(b);
        }
    }
    (median(tu), median(td))
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // Asked through the map first: cudarc's own context call panics where no driver loads.
    if let Err(e) = FlashMap::<u64, u64>::builder(16).backend(Backend::Cuda).build() {
        eprintln!("no usable CUDA device ({e}); this benchmark needs one: see quickstart for the CPU backends");
        std::process::exit(2);
    }
    let ctx = CudaContext::new(0).expect("a CUDA device");
    let cc = ctx.compute_capability().expect("compute capability");
    println!("device: {} (sm_{}{})", ctx.name().expect("name"), cc.0, cc.1);
    // Each part runs even when an earlier one failed (a wrong result panics), so one run on
    // a lent GPU shows everything; the exit status says whether all of them passed.
    let mut failed = Vec::new();
    let mut part = |name: &'static str, f: &mut dyn FnMut()| {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
            eprintln!("FAILED: {name}");
            failed.push(name);
        }
    };
    part("host-to-host", &mut || host_section());
    for n in [1 << 24, 1 << 26] {
        for hash in [HashStrategy::Identity, HashStrategy::Murmur3, HashStrategy::SipHash13] {
            part("device-resident", &mut || device_resident(n, hash));
        }
    }
    part("L2 fetch granularity", &mut || l2_section(&ctx));
    if !failed.is_empty() {
        eprintln!("gpu_bench: {} part(s) failed: {failed:?}", failed.len());
        std::process::exit(1);
    }
}

/// (a): host-to-host on Cuda and Rayon, and the bare pinned copy of the same bytes.
fn host_section() {
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
    let (up, down) = pinned_copy(n * 160, n * 128);
    println!(
        "  bare pinned copy of the same bytes: {} MB up {:.2} ms ({:.1} GB/s) | {} MB down {:.2} ms ({:.1} GB/s)",
        n * 160 / 1_000_000,
        up * 1e3,
        (n * 160) as f64 / up / 1e9,
        n * 128 / 1_000_000,
        down * 1e3,
        (n * 128) as f64 / down / 1e9
    );
}

/// The device-resident `Identity` runs again at two L2 fetch granularities.
fn l2_section(ctx: &CudaContext) {
    // Every probe reads whole 32-byte sectors at random; the L2 may fetch more than that
    // from memory per miss. The limit is the context's (the map shares the primary
    // context), so it is set here, for this measurement only, and put back.
    use flash_map::cuda::cudarc::driver::sys::CUlimit;
    let l2 = CUlimit::CU_LIMIT_MAX_L2_FETCH_GRANULARITY;
    let before = ctx.get_limit(l2).expect("limit");
    for g in [32usize, 128] {
        ctx.set_limit(l2, g).expect("set limit");
        println!("  L2 fetch granularity {} B (default {before} B):", ctx.get_limit(l2).expect("limit"));
        for n in [1 << 24, 1 << 26] {
            device_resident(n, HashStrategy::Identity);
        }
    }
    ctx.set_limit(l2, before).expect("set limit");
}
