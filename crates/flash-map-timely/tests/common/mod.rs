//! The model job: every operator on shards of a job, each worker's answers checked
//! against `std::collections::HashMap` replaying the same records in the documented order.
#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use flash_map::shard_of;
use flash_map_timely::timely::dataflow::channels::pact::Pipeline;
use flash_map_timely::timely::dataflow::operators::generic::Operator;
use flash_map_timely::timely::dataflow::operators::Probe;
use flash_map_timely::timely::dataflow::{InputHandle, ProbeHandle, Stream};
use flash_map_timely::{Cluster, Error, FlashKeyOps, FlashOps, ShardBuilder};

pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Records of worker `w`, round `r`, phase `p`: keys from a small range, so that keys
/// repeat within a batch, across workers and across rounds.
pub fn batch(w: usize, r: usize, p: usize, n: usize) -> Vec<(u64, u64)> {
    (0..n as u64)
        .map(|i| {
            let x = splitmix(((w as u64) << 40) ^ ((r as u64) << 20) ^ ((p as u64) << 16) ^ i);
            (x % 3_000, x >> 32)
        })
        .collect()
}

fn keep<D: Clone + 'static>(s: Stream<'_, u64, Vec<D>>) -> Rc<RefCell<Vec<(u64, D)>>> {
    let got = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&got);
    s.sink(Pipeline, "Keep", move |(input, _)| {
        input.for_each(|cap, data| {
            let t = *cap.least().expect("data has a time");
            sink.borrow_mut().extend(data.drain(..).map(|d| (t, d)));
        })
    });
    got
}

/// What one worker saw: wrong answers and the entries of its two shards.
pub struct Outcome {
    pub index: usize,
    pub wrong: Vec<String>,
    pub entries: Vec<(u64, u64)>,
    pub counts: Vec<(u64, u32)>,
}

const PHASES: u64 = 5;

/// A pair sent to `flash_insert_new` and whether it was new.
type NewAnswer = ((u64, u64), bool);

/// Runs `rounds` rounds of upsert + add (phase 0), insert_new (1), remove (2), get (3) and
/// counter get (4), each phase its own timestamp, each worker waiting for a phase's probe
/// before sending the next phase (the documented way to order operators on one shard).
/// Every worker checks its answers against a model of the whole job.
pub fn model_job(cluster: Cluster, rounds: usize, n: usize) -> Result<Vec<Outcome>, Error> {
    cluster.run(move |worker, ctx| {
        let kv = ShardBuilder::<u64, u64>::new(64).build(worker, ctx)?;
        let counts = ShardBuilder::<u64, u32>::new(64).build(worker, ctx)?;
        let (mut ups, mut adds, mut news, mut rems, mut gets, mut cgets) = (
            InputHandle::new(),
            InputHandle::new(),
            InputHandle::new(),
            InputHandle::new(),
            InputHandle::new(),
            InputHandle::new(),
        );
        let probe = ProbeHandle::new();
        let (new_answers, get_answers, count_answers) = worker.dataflow::<u64, _, _>(|scope| {
            ups.to_stream(scope).flash_upsert(&kv).probe_with(&probe);
            adds.to_stream(scope).flash_add(&counts).probe_with(&probe);
            rems.to_stream(scope).flash_remove(&kv).probe_with(&probe);
            (
                keep(news.to_stream(scope).flash_insert_new(&kv).probe_with(&probe)),
                keep(gets.to_stream(scope).flash_get(&kv).probe_with(&probe)),
                keep(cgets.to_stream(scope).flash_get(&counts).probe_with(&probe)),
            )
        });
        for r in 0..rounds {
            for p in 0..PHASES {
                let t = r as u64 * PHASES + p;
                ups.advance_to(t);
                news.advance_to(t);
                adds.advance_to(t);
                rems.advance_to(t);
                gets.advance_to(t);
                cgets.advance_to(t);
                let mut b = batch(ctx.index, r, p as usize, n);
                let mut keys: Vec<u64> = b.iter().map(|x| x.0).collect();
                match p {
                    0 => {
                        ups.send_batch(&mut b.clone());
                        adds.send_batch(&mut b.iter().map(|&(k, v)| (k, v as u32 & 7)).collect());
                    }
                    1 => news.send_batch(&mut b),
                    2 => rems.send_batch(&mut keys[..n / 3].to_vec()),
                    3 => gets.send_batch(&mut keys),
                    _ => cgets.send_batch(&mut keys),
                }
                ups.advance_to(t + 1);
                news.advance_to(t + 1);
                adds.advance_to(t + 1);
                rems.advance_to(t + 1);
                gets.advance_to(t + 1);
                cgets.advance_to(t + 1);
                while probe.less_than(&(t + 1)) {
                    worker.step();
                }
            }
        }
        drop((ups, adds, news, rems, gets, cgets));
        while worker.step_or_park(None) {}
        if let Some(e) = kv.take_error().or_else(|| counts.take_error()) {
            return Err(e);
        }

        // The model: each phase's batches of all workers, in worker order.
        let mut model: HashMap<u64, u64> = HashMap::new();
        let mut model_counts: HashMap<u64, u32> = HashMap::new();
        let mut wrong = Vec::new();
        let (news, gets, cgets) = (new_answers.borrow(), get_answers.borrow(), count_answers.borrow());
        let answers_at =
            |v: &[(u64, NewAnswer)], t: u64| -> Vec<NewAnswer> { v.iter().filter(|x| x.0 == t).map(|x| x.1).collect() };
        for r in 0..rounds {
            for p in 0..PHASES {
                let t = r as u64 * PHASES + p;
                for w in 0..ctx.peers {
                    let b = batch(w, r, p as usize, n);
                    let mine = w == ctx.index;
                    match p {
                        0 => {
                            for &(k, v) in &b {
                                model.insert(k, v);
                                *model_counts.entry(k).or_default() += v as u32 & 7;
                            }
                        }
                        1 => {
                            let want: Vec<((u64, u64), bool)> = b
                                .iter()
                                .map(|&(k, v)| {
                                    let new = !model.contains_key(&k);
                                    model.entry(k).or_insert(v);
                                    ((k, v), new)
                                })
                                .collect();
                            if mine && answers_at(&news, t) != want {
                                wrong.push(format!("insert_new answers at time {t}"));
                            }
                        }
                        2 => {
                            for &(k, _) in &b[..n / 3] {
                                model.remove(&k);
                            }
                        }
                        3 if mine => {
                            let got: Vec<(u64, Option<u64>)> = gets.iter().filter(|x| x.0 == t).map(|x| x.1).collect();
                            let want: Vec<(u64, Option<u64>)> =
                                b.iter().map(|&(k, _)| (k, model.get(&k).copied())).collect();
                            if got != want {
                                wrong.push(format!("get answers at time {t}: {} of {}", got.len(), want.len()));
                            }
                        }
                        4 if mine => {
                            let got: Vec<(u64, Option<u32>)> = cgets.iter().filter(|x| x.0 == t).map(|x| x.1).collect();
                            let want: Vec<(u64, Option<u32>)> =
                                b.iter().map(|&(k, _)| (k, model_counts.get(&k).copied())).collect();
                            if got != want {
                                wrong.push(format!("counter answers at time {t}"));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        let entries = kv.with_map(|m| m.entries())?;
        let counted = counts.with_map(|m| m.entries())?;
        let mut own: Vec<(u64, u64)> =
            model.iter().filter(|(k, _)| shard_of(*k, ctx.peers) == ctx.index).map(|(k, v)| (*k, *v)).collect();
        own.sort_unstable();
        let mut e = entries.clone();
        e.sort_unstable();
        if e != own {
            wrong.push(format!("shard {} holds {} entries, the model {}", ctx.index, e.len(), own.len()));
        }
        Ok(Outcome { index: ctx.index, wrong, entries, counts: counted })
    })
}

/// Asserts a model job's outcome: no wrong answers, every key on exactly one shard.
pub fn assert_outcome(outcomes: &[Outcome], peers: usize) {
    for o in outcomes {
        assert!(o.wrong.is_empty(), "worker {}: {:?}", o.index, o.wrong);
        assert!(!o.entries.is_empty() && !o.counts.is_empty(), "worker {} holds nothing", o.index);
        for (k, _) in &o.entries {
            assert_eq!(shard_of(k, peers), o.index, "key {k} on the wrong shard");
        }
    }
}
