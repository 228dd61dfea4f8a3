//! One process, four workers: every operator against a HashMap model, snapshots by worker
//! index, and the handshake that refuses workers of other types.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{assert_outcome, model_job};
use flash_map_timely::timely::dataflow::operators::Probe;
use flash_map_timely::timely::dataflow::{InputHandle, ProbeHandle};
use flash_map_timely::{Cluster, Error, FlashKeyOps, FlashOps, ShardBuilder};

#[test]
fn four_workers_match_the_model() {
    let outcomes = model_job(Cluster::local(4), 4, 2_000).unwrap();
    assert_eq!(outcomes.len(), 4);
    assert_outcome(&outcomes, 4);
}

#[test]
fn one_worker_matches_the_model() {
    let outcomes = model_job(Cluster::local(1), 3, 1_000).unwrap();
    assert_outcome(&outcomes, 1);
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fmt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Upserts `(k, k * 3)` for k in 0..n from worker 0, then saves every shard.
fn fill_and_save(workers: usize, dir: PathBuf, n: u64) -> Vec<usize> {
    Cluster::local(workers)
        .run(move |worker, ctx| {
            let shard = ShardBuilder::<u64, u64>::new(16).build(worker, ctx)?;
            let mut input = InputHandle::new();
            worker.dataflow::<u64, _, _>(|scope| {
                input.to_stream(scope).flash_upsert(&shard);
            });
            if ctx.index == 0 {
                input.send_batch(&mut (0..n).map(|k| (k, k * 3)).collect());
            }
            drop(input);
            while worker.step_or_park(None) {}
            shard.save(&dir)?;
            Ok(shard.with_map(|m| m.len()))
        })
        .unwrap()
}

#[test]
fn snapshots_restart_a_job_of_the_same_shape_only() {
    let dir = temp_dir("snap");
    let lens = fill_and_save(4, dir.clone(), 10_000);
    assert_eq!(lens.iter().sum::<usize>(), 10_000);
    assert!(lens.iter().all(|&l| l > 2_000), "{lens:?}");

    // Same shape: every worker reloads its shard, and lookups from any worker find all.
    let d = dir.clone();
    let found = Cluster::local(4)
        .run(move |worker, ctx| {
            let shard = ShardBuilder::<u64, u64>::new(16).load(worker, ctx, &d)?;
            let mut input = InputHandle::new();
            let probe = ProbeHandle::new();
            let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let sink = got.clone();
            worker.dataflow::<u64, _, _>(|scope| {
                use flash_map_timely::timely::dataflow::operators::Inspect;
                input
                    .to_stream(scope)
                    .flash_get(&shard)
                    .probe_with(&probe)
                    .inspect(move |x| sink.borrow_mut().push(*x));
            });
            input.send_batch(&mut (ctx.index as u64..10_000).step_by(4).collect());
            drop(input);
            while worker.step_or_park(None) {}
            let ok = got.borrow().iter().filter(|(k, v)| *v == Some(k * 3)).count();
            Ok((shard.with_map(|m| m.len()), ok))
        })
        .unwrap();
    assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), lens);
    assert_eq!(found.iter().map(|f| f.1).sum::<usize>(), 10_000);

    // Another worker count: a clear error naming both shapes.
    let d = dir.clone();
    let err = Cluster::local(2)
        .run(move |worker, ctx| ShardBuilder::<u64, u64>::new(16).load(worker, ctx, &d).map(|_| ()))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Snapshot { .. }) && msg.contains("[4] workers") && msg.contains("has 2"), "{msg}");

    // Other value type: refused before reading a byte of the table.
    let d = dir.clone();
    let err = Cluster::local(4)
        .run(move |worker, ctx| ShardBuilder::<u64, u32>::new(16).load(worker, ctx, &d).map(|_| ()))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Snapshot { .. }) && msg.contains("8-byte values") && msg.contains("4-byte values"),
        "{msg}"
    );

    // One damaged snapshot: an error on every worker (not a panic), and no worker goes on
    // into a dataflow that would wait forever for the one that failed.
    let f = dir.join("shard-00001-of-00004.fmshard");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let d = dir.clone();
    let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = errors.clone();
    let err = Cluster::local(4)
        .run(move |worker, ctx| {
            let shard = ShardBuilder::<u64, u64>::new(16)
                .load(worker, ctx, &d)
                .inspect_err(|e| seen.lock().unwrap().push((ctx.index, e.to_string())))?;
            let mut input = InputHandle::new();
            worker.dataflow::<u64, _, _>(|scope| {
                input.to_stream(scope).flash_upsert(&shard);
            });
            input.send((1u64, 1u64));
            Ok(())
        })
        .unwrap_err();
    let mut errors = errors.lock().unwrap().clone();
    errors.sort();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(matches!(err, Error::Remote(_)) && err.to_string().contains("worker 1"), "{err}");
    assert!(errors[1].1.contains("shard-00001-of-00004"), "{errors:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn workers_of_other_types_are_refused_by_the_handshake() {
    let t = Instant::now();
    let err = Cluster::local(2)
        .handshake_timeout(Duration::from_secs(20))
        .run(|worker, ctx| {
            if ctx.index == 0 {
                ShardBuilder::<u64, u32>::new(16).build(worker, ctx).map(|_| ())
            } else {
                ShardBuilder::<u64, u64>::new(16).build(worker, ctx).map(|_| ())
            }
        })
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Handshake(_)) && msg.contains("4-byte values") && msg.contains("8-byte values"),
        "{msg}"
    );
    assert!(t.elapsed() < Duration::from_secs(20), "the mismatch is found at once, not at the timeout");
}

#[test]
fn bad_arguments_are_errors() {
    let args = |a: &[&str]| Cluster::from_args(a.iter().map(|s| s.to_string()));
    assert!(matches!(args(&["-w", "x"]), Err(Error::Args(_))));
    assert!(matches!(args(&["-w"]), Err(Error::Args(_))));
    assert!(matches!(args(&["-n", "2", "-p", "2"]), Err(Error::Args(_))));
    assert!(matches!(args(&["-n", "2", "-h", "/nonexistent/hosts"]), Err(Error::Args(_))));
    assert!(matches!(args(&["--connect-timeout", "-1"]), Err(Error::Args(_))));
    let (c, rest) = args(&["-w", "3", "x", "-n", "2", "-p", "1"]).unwrap();
    assert_eq!((c.workers(), c.processes(), rest), (6, 2, vec!["x".to_string()]));
}

#[test]
fn a_failed_batch_leaves_the_shard_unchanged_and_is_reported() {
    // Shards of 16 entries that may not grow; a timestamp of 1000 keys cannot fit.
    let out = Cluster::local(2)
        .run(|worker, ctx| {
            let shard = ShardBuilder::<u64, u64>::new(16).auto_grow(false).build(worker, ctx)?;
            let (mut ups, mut news) = (InputHandle::new(), InputHandle::new());
            let probe = ProbeHandle::new();
            let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let sink = got.clone();
            worker.dataflow::<u64, _, _>(|scope| {
                use flash_map_timely::timely::dataflow::operators::Inspect;
                ups.to_stream(scope).flash_upsert(&shard).probe_with(&probe);
                news.to_stream(scope).flash_insert_new(&shard).inspect(move |x| sink.borrow_mut().push(*x));
            });
            ups.send_batch(&mut (0..10u64).map(|k| (k, k)).collect());
            ups.advance_to(1);
            news.advance_to(1);
            while probe.less_than(&1) {
                worker.step();
            }
            let small = shard.take_error().map(|e| e.to_string());
            news.send_batch(&mut (100..1100u64).map(|k| (k, k)).collect());
            drop((ups, news));
            while worker.step_or_park(None) {}
            let answers = got.borrow().len();
            let new = got.borrow().iter().filter(|x| x.1).count();
            Ok((small, shard.take_error().map(|e| e.to_string()), shard.with_map(|m| m.len()), answers, new))
        })
        .unwrap();
    let held: usize = out.iter().map(|o| o.2).sum();
    assert_eq!(held, 10, "the fitting batch applied, the failed one left no trace: {out:?}");
    for (small, err, _, answers, new) in &out {
        assert_eq!(small, &None, "10 keys fit");
        let err = err.as_deref().unwrap_or("");
        assert!(err.contains("table full") || err.contains("could not answer"), "{err}");
        assert_eq!((*answers, *new), (1000, 0), "every record answered, none claimed new");
    }
}
