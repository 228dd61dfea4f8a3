//! Distributed k-mer counting: every worker reads its share of the sequencing reads,
//! `flash_add`s their 31-mers (2-bit encoded in a `u64`) to the shards, one timestamp per
//! batch of reads, and then checks its shard against one FlashMap counting every read
//! of the same input in this process.
//!
//! One command per process; 2 processes × 2 workers on localhost:
//!
//! ```sh
//! cargo run --release -p flash-map-timely --example timely_kmer -- -w 2 -n 2 -p 0 &
//! cargo run --release -p flash-map-timely --example timely_kmer -- -w 2 -n 2 -p 1
//! ```
//!
//! Across hosts, give each process `-h hostfile` (one `host:port` per process). Options:
//! `--reads N` (default 40000 reads of 150 bases), `--batch N` reads per timestamp
//! (default 4000).

#[path = "common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use common::{opt, report, splitmix};
use flash_map::{shard_of, FlashMap};
use flash_map_timely::{Cluster, FlashOps, ShardBuilder};
use timely::dataflow::operators::Probe;
use timely::dataflow::{InputHandle, ProbeHandle};

const K: usize = 31;
const READ: usize = 150;
const GENOME: usize = 1 << 21;

/// A random genome, the same in every process.
fn genome() -> Vec<u8> {
    (0..GENOME as u64).map(|i| (splitmix(i ^ 0xD1A) & 3) as u8).collect()
}

/// The 31-mers of read `r` (a window of the genome at a position fixed by `r`).
fn kmers(genome: &[u8], r: usize, out: &mut Vec<(u64, u32)>) {
    let start = (splitmix(r as u64) % (GENOME - READ) as u64) as usize;
    let mut k = 0u64;
    for (i, &b) in genome[start..start + READ].iter().enumerate() {
        k = ((k << 2) | b as u64) & ((1 << (2 * K)) - 1);
        if i + 1 >= K {
            out.push((k, 1));
        }
    }
}

fn main() -> ExitCode {
    common::main(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (cluster, rest) = Cluster::from_args(std::env::args().skip(1))?;
    let reads = opt(&rest, "--reads", 40_000);
    let batch = opt(&rest, "--batch", 4_000).max(1);
    let genome = Arc::new(genome());
    let total = reads * (READ - K + 1);

    // The reference: one FlashMap counting every read, on this process's best backend.
    let t = Instant::now();
    let mut single: FlashMap<u64, u32> = FlashMap::builder(1 << 16).auto_grow(true).build()?;
    let mut buf = Vec::new();
    for r0 in (0..reads).step_by(batch) {
        buf.clear();
        (r0..(r0 + batch).min(reads)).for_each(|r| kmers(&genome, r, &mut buf));
        single.bulk_add(&buf)?;
    }
    let single_secs = t.elapsed().as_secs_f64();
    let backend = single.backend();
    let expected = Arc::new(single.entries()?);
    let single = Arc::new(single);
    println!(
        "single FlashMap ({backend}): {total} k-mers, {} distinct, {:.1} M k-mers/s",
        expected.len(),
        total as f64 / single_secs / 1e6
    );

    let workers = cluster.workers();
    let reports = cluster.run(move |worker, ctx| {
        let shard = ShardBuilder::<u64, u32>::new(expected.len() / ctx.peers + 1024).build(worker, ctx)?;
        let mut input = InputHandle::new();
        let probe = ProbeHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            input.to_stream(scope).flash_add(&shard).probe_with(&probe);
        });
        let start = Instant::now();
        let mine: Vec<usize> = (ctx.index..reads).step_by(ctx.peers).collect();
        let per_round = (batch / ctx.peers).max(1);
        let (mut fed, mut buf) = (0usize, Vec::new());
        for (round, rs) in mine.chunks(per_round).enumerate() {
            buf.clear();
            rs.iter().for_each(|&r| kmers(&genome, r, &mut buf));
            fed += buf.len();
            input.send_batch(&mut buf);
            input.advance_to(round as u64 + 1);
            // Two timestamps in flight: the next batch is read while this one is applied.
            while probe.less_than(&(round as u64).saturating_sub(1)) {
                worker.step();
            }
            if ctx.index == 0 && round % 4 == 3 {
                log::info!("worker 0: round {} of {}, {fed} k-mers sent", round + 1, mine.len().div_ceil(per_round));
            }
        }
        drop(input);
        while probe.less_than(&u64::MAX) && worker.step_or_park(None) {}
        let secs = start.elapsed().as_secs_f64();
        if let Some(e) = shard.take_error() {
            return Err(e);
        }
        // Check: exactly the reference's keys of this shard, with its counts.
        let got = shard.with_map(|m| m.entries())?;
        let keys: Vec<u64> = got.iter().map(|e| e.0).collect();
        let want = single.bulk_get(&keys)?;
        let wrong = got.iter().zip(&want).filter(|(g, w)| Some(g.1) != **w).count()
            + got.iter().filter(|(k, _)| shard_of(k, ctx.peers) != ctx.index).count();
        let owned = expected.iter().filter(|(k, _)| shard_of(k, ctx.peers) == ctx.index).count();
        Ok((ctx.index, fed, got.len(), owned, wrong, secs, shard.backend()))
    })?;
    let mut ok = true;
    let secs = reports.iter().map(|r| r.5).fold(0.0, f64::max);
    for &(index, fed, distinct, owned, wrong, s, backend) in &reports {
        println!("worker {index} ({backend}): fed {fed} k-mers, shard holds {distinct} of {owned} expected, {wrong} wrong, {s:.3} s");
        ok &= wrong == 0 && distinct == owned;
    }
    let verdict = if ok {
        Ok("this process's shards equal the single FlashMap's counts")
    } else {
        Err("the shards differ from the single FlashMap")
    };
    report(workers, total, "k-mers", secs, single_secs, verdict)
}
