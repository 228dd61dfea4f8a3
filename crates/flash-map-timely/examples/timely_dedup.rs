//! Distributed packet deduplication: capture workers each see a stream of packets (a
//! 16-byte digest and a 4-byte capture id); `flash_insert_new` tells each worker, in its
//! own order, which of its packets were the first of their digest. Every answer is checked
//! against one FlashMap replaying the same packets in the order the shards apply them
//! (per timestamp: by sending worker, then in that worker's order).
//!
//! One command per process; 2 processes × 2 workers on localhost:
//!
//! ```sh
//! cargo run --release -p flash-map-timely --example timely_dedup -- -w 2 -n 2 -p 0 &
//! cargo run --release -p flash-map-timely --example timely_dedup -- -w 2 -n 2 -p 1
//! ```
//!
//! Options: `--rounds N` timestamps (default 20), `--packets N` per worker and round
//! (default 50000), `--flows N` distinct digests to draw from (default 1000000).

#[path = "common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use common::{keep, opt, report, splitmix};
use flash_map::FlashMap;
use flash_map_timely::{Cluster, FlashOps, ShardBuilder};
use timely::dataflow::operators::Probe;
use timely::dataflow::{InputHandle, ProbeHandle};

type Packet = ([u8; 16], u32);

/// Worker `w`'s packets of round `t`: digests of flows drawn at random (so repeats come
/// from every worker and every round), tagged with where they were captured.
fn packets(w: usize, t: usize, n: usize, flows: usize) -> Vec<Packet> {
    (0..n)
        .map(|i| {
            let r = splitmix(((w as u64) << 48) ^ ((t as u64) << 24) ^ i as u64);
            let flow = r % flows as u64;
            let mut d = [0u8; 16];
            d[..8].copy_from_slice(&splitmix(flow).to_le_bytes());
            d[8..].copy_from_slice(&splitmix(!flow).to_le_bytes());
            (d, (w as u32) << 24 | i as u32)
        })
        .collect()
}

fn main() -> ExitCode {
    common::main(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (cluster, rest) = Cluster::from_args(std::env::args().skip(1))?;
    let rounds = opt(&rest, "--rounds", 20);
    let n = opt(&rest, "--packets", 50_000);
    let flows = opt(&rest, "--flows", 1_000_000).max(1);
    let workers = cluster.workers();

    // The reference: one FlashMap, each round's packets in the shards' order.
    let t = Instant::now();
    let mut single: FlashMap<[u8; 16], u32> = FlashMap::builder(flows.min(rounds * n * workers)).build()?;
    let mut expected: Vec<Vec<Vec<bool>>> = vec![Vec::new(); workers];
    for round in 0..rounds {
        let batch: Vec<Packet> = (0..workers).flat_map(|w| packets(w, round, n, flows)).collect();
        let new = single.bulk_insert_new(&batch)?;
        for (w, flags) in new.chunks(n).enumerate() {
            expected[w].push(flags.to_vec());
        }
    }
    let single_secs = t.elapsed().as_secs_f64();
    let total = rounds * n * workers;
    println!(
        "single FlashMap ({}): {total} packets, {} distinct, {:.1} M packets/s",
        single.backend(),
        single.len(),
        total as f64 / single_secs / 1e6
    );
    let expected = Arc::new(expected);

    let reports = cluster.run(move |worker, ctx| {
        let shard = ShardBuilder::<[u8; 16], u32>::new(flows / ctx.peers + 1024).build(worker, ctx)?;
        let mut input = InputHandle::new();
        let probe = ProbeHandle::new();
        let answers = worker
            .dataflow::<u64, _, _>(|scope| keep(input.to_stream(scope).flash_insert_new(&shard).probe_with(&probe)));
        let start = Instant::now();
        for round in 0..rounds {
            input.send_batch(&mut packets(ctx.index, round, n, flows));
            input.advance_to(round as u64 + 1);
            while probe.less_than(&(round as u64).saturating_sub(1)) {
                worker.step();
            }
            if ctx.index == 0 && round % 5 == 4 {
                let rate = ((round + 1) * n * ctx.peers) as f64 / start.elapsed().as_secs_f64() / 1e6;
                log::info!("worker 0: round {} of {rounds}, about {rate:.1} M packets/s in the job", round + 1);
            }
        }
        drop(input);
        while worker.step_or_park(None) {}
        let secs = start.elapsed().as_secs_f64();
        if let Some(e) = shard.take_error() {
            return Err(e);
        }
        // Check every answer, in order, against the reference.
        let got = answers.borrow();
        let mut wrong = usize::from(got.len() != rounds * n);
        for round in 0..rounds {
            let mine: Vec<&(u64, (Packet, bool))> = got.iter().filter(|(t, _)| *t == round as u64).collect();
            let want = packets(ctx.index, round, n, flows);
            wrong += usize::from(mine.len() != n);
            for ((_, (p, new)), (w, e)) in mine.iter().zip(want.iter().zip(&expected[ctx.index][round])) {
                wrong += usize::from(p != w || new != e);
            }
        }
        let new = got.iter().filter(|(_, (_, b))| *b).count();
        Ok((ctx.index, new, wrong, secs))
    })?;
    let secs = reports.iter().map(|r| r.3).fold(0.0, f64::max);
    let mut ok = true;
    for &(index, new, wrong, s) in &reports {
        println!("worker {index}: {} packets, {new} new, {wrong} answers wrong, {s:.3} s", rounds * n);
        ok &= wrong == 0;
    }
    let verdict = if ok {
        Ok("every answer of this process's workers equals the single FlashMap's")
    } else {
        Err("answers differ from the single FlashMap")
    };
    report(workers, total, "packets", secs, single_secs, verdict)
}
