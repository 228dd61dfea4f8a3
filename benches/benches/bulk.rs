//! Criterion benches of the compare binary's ops (insert into a table sized for the batch,
//! get of all present keys, get of as many absent keys, remove of all) for FlashMap Serial
//! and Rayon, hashbrown (a per-key loop), papaya and DashMap (rayon `par_iter`), on the same
//! data and with the same hasher as `compare`.
//!
//! `cargo bench -p flash-map-benches` runs W1 `[u8;32]→[u8;128]` with 100K pairs and W2
//! `u64→u64` with 1M (smaller than the compare's 1M and 8M, so that criterion's many
//! samples stay within minutes); `FLASH_MAP_BENCH_N` scales both (W2 gets 10x it).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use flash_map::{Backend, FlashMap};
use flash_map_benches::{data, Data, Gen, H};
use rayon::prelude::*;

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn flash<K: Gen, V: Gen>(g: &mut Group<'_>, backend: Backend, d: &Data<K, V>) {
    let n = d.pairs.len();
    let name = backend.to_string();
    let build = || FlashMap::<K, V>::builder(n).backend(backend).build().expect("map");
    let full = || {
        let mut m = build();
        m.bulk_insert(&d.pairs).expect("insert");
        m
    };
    g.bench_function(BenchmarkId::new(format!("{name}/insert"), n), |b| {
        b.iter_batched(build, |mut m| m.bulk_insert(&d.pairs).expect("insert"), BatchSize::PerIteration)
    });
    let m = full();
    g.bench_function(BenchmarkId::new(format!("{name}/get hit"), n), |b| b.iter(|| m.bulk_get(&d.keys).expect("get")));
    g.bench_function(BenchmarkId::new(format!("{name}/get miss"), n), |b| {
        b.iter(|| m.bulk_get(&d.absent).expect("get"))
    });
    g.bench_function(BenchmarkId::new(format!("{name}/remove"), n), |b| {
        b.iter_batched(full, |mut m| m.bulk_remove(&d.keys).expect("remove"), BatchSize::PerIteration)
    });
}

fn hashbrown_ops<K: Gen, V: Gen>(g: &mut Group<'_>, d: &Data<K, V>) {
    let n = d.pairs.len();
    let build = || hashbrown::HashMap::<K, V, H>::with_capacity_and_hasher(n, H::default());
    let insert = |mut m: hashbrown::HashMap<K, V, H>| {
        for (k, v) in &d.pairs {
            m.insert(*k, *v);
        }
        m
    };
    g.bench_function(BenchmarkId::new("hashbrown/insert", n), |b| {
        b.iter_batched(build, insert, BatchSize::PerIteration)
    });
    let m = insert(build());
    let get = |keys: &[K]| keys.iter().map(|k| m.get(k).copied()).collect::<Vec<_>>();
    g.bench_function(BenchmarkId::new("hashbrown/get hit", n), |b| b.iter(|| get(&d.keys)));
    g.bench_function(BenchmarkId::new("hashbrown/get miss", n), |b| b.iter(|| get(&d.absent)));
    g.bench_function(BenchmarkId::new("hashbrown/remove", n), |b| {
        b.iter_batched(
            || insert(build()),
            |mut m| d.keys.iter().filter(|k| m.remove(*k).is_some()).count(),
            BatchSize::PerIteration,
        )
    });
}

fn papaya_ops<K: Gen, V: Gen>(g: &mut Group<'_>, d: &Data<K, V>) {
    let n = d.pairs.len();
    let build = || papaya::HashMap::<K, V, H>::with_capacity_and_hasher(n, H::default());
    let insert = |m: papaya::HashMap<K, V, H>| {
        d.pairs.par_iter().for_each(|(k, v)| {
            m.pin().insert(*k, *v);
        });
        m
    };
    g.bench_function(BenchmarkId::new("papaya/insert", n), |b| b.iter_batched(build, insert, BatchSize::PerIteration));
    let m = insert(build());
    let get = |keys: &[K]| keys.par_iter().map(|k| m.pin().get(k).copied()).collect::<Vec<_>>();
    g.bench_function(BenchmarkId::new("papaya/get hit", n), |b| b.iter(|| get(&d.keys)));
    g.bench_function(BenchmarkId::new("papaya/get miss", n), |b| b.iter(|| get(&d.absent)));
    g.bench_function(BenchmarkId::new("papaya/remove", n), |b| {
        b.iter_batched(
            || insert(build()),
            |m| d.keys.par_iter().filter(|k| m.pin().remove(*k).is_some()).count(),
            BatchSize::PerIteration,
        )
    });
}

fn dashmap_ops<K: Gen, V: Gen>(g: &mut Group<'_>, d: &Data<K, V>) {
    let n = d.pairs.len();
    let build = || dashmap::DashMap::<K, V, H>::with_capacity_and_hasher(n, H::default());
    let insert = |m: dashmap::DashMap<K, V, H>| {
        d.pairs.par_iter().for_each(|(k, v)| {
            m.insert(*k, *v);
        });
        m
    };
    g.bench_function(BenchmarkId::new("DashMap/insert", n), |b| b.iter_batched(build, insert, BatchSize::PerIteration));
    let m = insert(build());
    let get = |keys: &[K]| keys.par_iter().map(|k| m.get(k).map(|r| *r)).collect::<Vec<_>>();
    g.bench_function(BenchmarkId::new("DashMap/get hit", n), |b| b.iter(|| get(&d.keys)));
    g.bench_function(BenchmarkId::new("DashMap/get miss", n), |b| b.iter(|| get(&d.absent)));
    g.bench_function(BenchmarkId::new("DashMap/remove", n), |b| {
        b.iter_batched(
            || insert(build()),
            |m| d.keys.par_iter().filter(|k| m.remove(*k).is_some()).count(),
            BatchSize::PerIteration,
        )
    });
}

fn workload<K: Gen, V: Gen>(c: &mut Criterion, name: &str, n: usize) {
    let d = data::<K, V>(n);
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    for backend in [Backend::Serial, Backend::Rayon] {
        flash(&mut g, backend, &d);
    }
    hashbrown_ops(&mut g, &d);
    papaya_ops(&mut g, &d);
    dashmap_ops(&mut g, &d);
    g.finish();
}

fn bulk(c: &mut Criterion) {
    let n = std::env::var("FLASH_MAP_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    workload::<[u8; 32], [u8; 128]>(c, "W1 [u8;32]->[u8;128]", n);
    workload::<u64, u64>(c, "W2 u64->u64", 10 * n);
}

criterion_group!(benches, bulk);
criterion_main!(benches);
