//! Criterion benches: `backend/op/size` for FlashMap's CPU engines, with hashbrown beside.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use flash_map::{Backend, FlashMap};

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn bulk(c: &mut Criterion) {
    for n in [100_000usize, 1_000_000] {
        let pairs: Vec<(u64, u64)> = (0..n as u64).map(|i| (splitmix(i), i)).collect();
        let keys: Vec<u64> = pairs.iter().map(|p| p.0).collect();
        let mut g = c.benchmark_group("u64");
        g.throughput(Throughput::Elements(n as u64));
        g.sample_size(10);
        for backend in [Backend::Serial, Backend::Rayon] {
            let name = backend.to_string();
            g.bench_with_input(BenchmarkId::new(format!("{name}/insert"), n), &pairs, |b, p| {
                b.iter_batched(
                    || FlashMap::<u64, u64>::builder(n).backend(backend).build().unwrap(),
                    |mut m| m.bulk_insert(p).unwrap(),
                    BatchSize::LargeInput,
                )
            });
            let mut m = FlashMap::<u64, u64>::builder(n).backend(backend).build().unwrap();
            m.bulk_insert(&pairs).unwrap();
            g.bench_with_input(BenchmarkId::new(format!("{name}/get"), n), &keys, |b, k| {
                b.iter(|| m.bulk_get(k).unwrap())
            });
        }
        g.bench_with_input(BenchmarkId::new("hashbrown/insert", n), &pairs, |b, p| {
            b.iter(|| {
                let mut m = hashbrown::HashMap::with_capacity(n);
                for (k, v) in p {
                    m.insert(*k, *v);
                }
                m
            })
        });
        let hb: hashbrown::HashMap<u64, u64> = pairs.iter().copied().collect();
        g.bench_with_input(BenchmarkId::new("hashbrown/get", n), &keys, |b, k| {
            b.iter(|| k.iter().map(|k| hb.get(k).copied()).collect::<Vec<_>>())
        });
        g.finish();
    }
}

criterion_group!(benches, bulk);
criterion_main!(benches);
