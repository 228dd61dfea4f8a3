//! The steady-state cost of one operation, FlashMap Serial (or Rayon, with `OPCOST_RAYON=1`)
//! against hashbrown, in one
//! process on the same data: for engine work on small tables, where the compare binary's
//! cold memory and construction hide the instructions per key.
//!
//! `opcost w1|w2 PAIRS REPS OP...` with OP among `hit`, `miss`, `insert` (updates of present
//! keys), `remove` (of every key, from a table filled untimed), `remove_after_get` (the same
//! right after a lookup of every key: with `OPCOST_RAYON=1`, a mutation that follows a
//! parallel pass while rayon's threads still spin), `build` (a fresh table built
//! and filled), `fill` (the same, the build untimed), `add` (W2 only: every pair's value
//! added to the counter of its key, all present, against hashbrown's `entry` loop) and
//! `floor` (see [`Floor`]: its build, split into allocation and fill, hit, miss and
//! remove); prints the minimum and median of
//! REPS runs of each and the ratio of the medians. FlashMap's lookups write into one kept
//! vector (`bulk_get_into`); with `OPCOST_FRESH=1` each returns a fresh one (`bulk_get`),
//! as hashbrown's collect does. `OPCOST_LOAD=0.875` builds FlashMap's
//! tables for that maximum load factor instead of the default 0.5. `ONLY_FLASH=1` skips hashbrown (for
//! instruction counts under callgrind: the difference between two REPS values, divided by
//! the keys, is the instructions per key).
use flash_map::{Backend, FlashMap};
use flash_map_benches::floor::Floor;
use flash_map_benches::{data, Data, Gen, H};
use std::time::Instant;

/// The FlashMap backend measured: Serial, or Rayon with `OPCOST_RAYON=1`.
fn backend() -> Backend {
    if std::env::var_os("OPCOST_RAYON").is_some() {
        Backend::Rayon
    } else {
        Backend::Serial
    }
}

/// A FlashMap for `n` pairs on [`backend`], at the maximum load factor `OPCOST_LOAD` when
/// set (else the default, 0.5): how much of a gap is the table's size.
fn map<K: Gen, V: Gen>(n: usize) -> FlashMap<K, V> {
    let mut b = FlashMap::<K, V>::builder(n).backend(backend());
    if let Some(lf) = std::env::var("OPCOST_LOAD").ok().and_then(|v| v.parse().ok()) {
        b = b.max_load_factor(lf);
    }
    b.build().unwrap()
}

fn t<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let s = Instant::now();
    let r = f();
    (s.elapsed().as_secs_f64() * 1e3, r)
}

fn go<K: Gen, V: Gen>(d: &Data<K, V>, reps: usize, op: &str) {
    let n = d.pairs.len();
    let (mut fl, mut hb) = (vec![], vec![]);
    let mut m = map::<K, V>(n);
    m.bulk_insert(&d.pairs).unwrap();
    let mut h = hashbrown::HashMap::<K, V, H>::with_capacity_and_hasher(n, H::default());
    for (k, v) in &d.pairs {
        h.insert(*k, *v);
    }
    let mut out = Vec::new();
    let fresh = std::env::var_os("OPCOST_FRESH").is_some();
    for _ in 0..reps {
        let (a, _) = match op {
            "hit" | "miss" => {
                let keys = if op == "hit" { &d.keys } else { &d.absent };
                if fresh {
                    t(|| std::hint::black_box(m.bulk_get(keys).unwrap()).len())
                } else {
                    t(|| {
                        m.bulk_get_into(keys, &mut out).unwrap();
                        out.len()
                    })
                }
            }
            "insert" => t(|| m.bulk_insert(&d.pairs).unwrap()),
            "fill" => {
                let mut m = map::<K, V>(n);
                t(|| m.bulk_insert(&d.pairs).unwrap())
            }
            "remove" => {
                let mut m = map::<K, V>(n);
                m.bulk_insert(&d.pairs).unwrap();
                t(|| m.bulk_remove(&d.keys).unwrap())
            }
            "remove_after_get" => {
                let mut m = map::<K, V>(n);
                m.bulk_insert(&d.pairs).unwrap();
                m.bulk_get_into(&d.keys, &mut out).unwrap();
                t(|| m.bulk_remove(&d.keys).unwrap())
            }
            _ => t(|| {
                let mut m = map::<K, V>(n);
                m.bulk_insert(&d.pairs).unwrap()
            }),
        };
        fl.push(a);
        if std::env::var_os("ONLY_FLASH").is_some() {
            hb.push(0.0);
            continue;
        }
        let (b, _) = match op {
            "hit" => t(|| {
                let v: Vec<_> = d.keys.iter().map(|k| h.get(k).copied()).collect();
                // Kept, so that the optimizer cannot drop the lookups (it did for hits).
                std::hint::black_box(v).len()
            }),
            "miss" => t(|| {
                let v: Vec<_> = d.absent.iter().map(|k| h.get(k).copied()).collect();
                std::hint::black_box(v).len()
            }),
            "insert" => t(|| {
                for (k, v) in &d.pairs {
                    h.insert(*k, *v);
                }
                0
            }),
            "fill" => {
                let mut h = hashbrown::HashMap::<K, V, H>::with_capacity_and_hasher(n, H::default());
                t(|| {
                    for (k, v) in &d.pairs {
                        h.insert(*k, *v);
                    }
                    h.len()
                })
            }
            "remove" | "remove_after_get" => {
                let mut h = hashbrown::HashMap::<K, V, H>::with_capacity_and_hasher(n, H::default());
                for (k, v) in &d.pairs {
                    h.insert(*k, *v);
                }
                t(|| d.keys.iter().filter(|k| h.remove(*k).is_some()).count())
            }
            _ => t(|| {
                let mut h = hashbrown::HashMap::<K, V, H>::with_capacity_and_hasher(n, H::default());
                for (k, v) in &d.pairs {
                    h.insert(*k, *v);
                }
                h.len()
            }),
        };
        hb.push(b);
    }
    report(op, n, fl, hb);
}

/// Prints the minimum and median of FlashMap's and hashbrown's times for `op`, and the
/// ratio of the medians.
fn report(op: &str, n: usize, mut fl: Vec<f64>, mut hb: Vec<f64>) {
    fl.sort_by(|a, b| a.partial_cmp(b).unwrap());
    hb.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = fl.len() / 2;
    println!(
        "{op} n={n}: flash min {:.3} med {:.3} | hashbrown min {:.3} med {:.3} | ratio(med) {:.2}",
        fl[0],
        fl[m],
        hb[0],
        hb[m],
        fl[m] / hb[m]
    );
}

/// `add` (W2 only: `u64` counters): the batch's values added to a table that holds every
/// key already (`bulk_add`), against hashbrown's per-key `entry` loop on its own table.
fn add(d: &Data<u64, u64>, reps: usize) {
    let n = d.pairs.len();
    let mut m = map::<u64, u64>(n);
    m.bulk_insert(&d.pairs).unwrap();
    let mut h = hashbrown::HashMap::<u64, u64, H>::with_capacity_and_hasher(n, H::default());
    h.extend(d.pairs.iter().copied());
    let (mut fl, mut hb) = (vec![], vec![]);
    for _ in 0..reps {
        fl.push(t(|| m.bulk_add(&d.pairs).unwrap()).0);
        if std::env::var_os("ONLY_FLASH").is_some() {
            hb.push(0.0);
            continue;
        }
        hb.push(
            t(|| {
                for (k, v) in &d.pairs {
                    let c = h.entry(*k).or_insert(0);
                    *c = c.wrapping_add(*v);
                }
            })
            .0,
        );
    }
    report("add", n, fl, hb);
}

fn floor<K: Gen, V: Gen>(d: &Data<K, V>, reps: usize) {
    let n = d.pairs.len();
    let mut times: [Vec<f64>; 6] = Default::default();
    let mut out = Vec::new();
    for _ in 0..reps {
        let (t0, mut f) = t(|| Floor::<K, V>::new(n));
        let (t1, _) = t(|| f.insert_all(&d.pairs));
        let (t2, _) = t(|| f.get_all(&d.keys, &mut out, true));
        assert!(out.iter().zip(&d.pairs).all(|(o, p)| *o == Some(p.1)), "floor: wrong hit");
        let (t3, _) = t(|| f.get_all(&d.absent, &mut out, false));
        assert!(out.iter().all(Option::is_none), "floor: wrong miss");
        let (t4, gone) = t(|| f.remove_all(&d.keys));
        assert_eq!(gone, n, "floor: wrong removal count");
        for (v, x) in times.iter_mut().zip([t0 + t1, t0, t1, t2, t3, t4]) {
            v.push(x);
        }
    }
    for (name, mut v) in ["build", "alloc", "fill", "hit", "miss", "remove"].into_iter().zip(times) {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("floor {name} n={n}: min {:.3} med {:.3}", v[0], v[reps / 2]);
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let w = a[1].as_str();
    let n: usize = a[2].parse().unwrap();
    let reps: usize = a[3].parse().unwrap();
    let ops: Vec<&str> = a[4..].iter().map(|s| s.as_str()).collect();
    if w == "w2" {
        let d = data::<u64, u64>(n);
        for o in &ops {
            if *o == "floor" {
                floor(&d, reps)
            } else if *o == "add" {
                add(&d, reps)
            } else {
                go(&d, reps, o)
            }
        }
    } else {
        let d = data::<[u8; 32], [u8; 128]>(n);
        for o in &ops {
            assert!(*o != "add", "add runs on W2 (counters) only");
            if *o == "floor" {
                floor(&d, reps)
            } else {
                go(&d, reps, o)
            }
        }
    }
}
