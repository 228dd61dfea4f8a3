//! The kernels' bodies run on the host (one emulated thread, host atomics), driven the way
//! `flash-map-cuda` drives them and with the parameter structs it fills, against a
//! `std::collections::HashMap` model: the kernels' logic and their use of every field of the
//! ABI are checked without a GPU. (What this cannot check: the device's memory model with
//! many threads, and the host side's launches; those need a GPU run.)

extern crate std;

use std::collections::HashMap;
use std::vec;
use std::vec::Vec;

use flash_map_core::abi::*;
use flash_map_core::slot::EMPTY;
use flash_map_core::{HashStrategy, KeyHasher};

use crate::kernels::*;

/// A table of `u64 → u64` in host memory, with the buffers of one pass: a key array and a
/// value array, or (`records`) one array of 16-byte records, each a slot's key and then its
/// value, as `flash-map-cuda` lays out a `u64 → u64` table (`TableLayout::device_record`).
struct Table {
    states: Vec<u32>,
    keys: Vec<u8>,
    values: Vec<u8>,
    aux: Vec<u32>,
    hash: KeyHasher,
    records: bool,
}

/// Per-key buffers and counters of a pass.
struct Pass {
    pos: Vec<u32>,
    kind: Vec<u8>,
    found: Vec<u8>,
    out: Vec<u8>,
    counters: Vec<u32>,
}

fn addr<T>(v: &mut [T]) -> u64 {
    v.as_mut_ptr() as u64
}

impl Table {
    fn new(slots: usize, hash: KeyHasher, records: bool) -> Self {
        let layout = flash_map_core::TableLayout::with_slots(slots, 0.5, 8, 8).unwrap();
        assert_eq!(layout.device_record(), 16, "a u64 pair is one record on the GPU");
        let (keys, values) = if records { (slots * 16, 0) } else { (slots * 8, slots * 8) };
        Table {
            states: vec![EMPTY; slots],
            keys: vec![0; keys],
            values: vec![0; values],
            aux: vec![0; slots],
            hash,
            records,
        }
    }

    fn args(&mut self) -> TableArgs {
        let keys = addr(&mut self.keys);
        TableArgs {
            states: addr(&mut self.states),
            keys,
            values: if self.records { keys + 8 } else { addr(&mut self.values) },
            mask: self.states.len() as u64 - 1,
            key_size: 8,
            value_size: 8,
            hash: self.hash.strategy.code(),
            record: if self.records { 16 } else { 0 },
            seed: self.hash.seed,
        }
    }
}

impl Pass {
    fn new(n: usize) -> Self {
        Pass {
            pos: vec![0; n],
            kind: vec![0; n],
            found: vec![0; n],
            out: vec![0; n * 8],
            counters: vec![0; N_COUNTERS],
        }
    }

    fn claim_args(&mut self, t: &mut Table, mode: ClaimMode, budget: u64) -> ClaimArgs {
        ClaimArgs {
            pos: addr(&mut self.pos),
            kind: addr(&mut self.kind),
            aux: addr(&mut t.aux),
            counters: addr(&mut self.counters),
            budget,
            mode: mode as u32,
            _pad: 0,
        }
    }
}

/// A batch as two columns (keys and values apart, as a column store hands them over) or as
/// records (`(key, value)` pairs, the layout a host batch is uploaded in).
enum Layout {
    Columns,
    Records,
}

/// The batch's memory and its `BatchArgs`.
struct Batch {
    _mem: Vec<u64>,
    args: BatchArgs,
}

fn batch(pairs: &[(u64, u64)], layout: Layout) -> Batch {
    let n = pairs.len() as u64;
    match layout {
        Layout::Columns => {
            let mut mem: Vec<u64> = pairs.iter().map(|p| p.0).chain(pairs.iter().map(|p| p.1)).collect();
            let base = addr(&mut mem);
            let args = BatchArgs { keys: base, values: base + 8 * n, len: n, key_stride: 8, value_stride: 8 };
            Batch { _mem: mem, args }
        }
        Layout::Records => {
            let mut mem: Vec<u64> = pairs.iter().flat_map(|p| [p.1, p.0]).collect();
            let base = addr(&mut mem);
            // Value first, key second: the offsets matter, not only the strides.
            let args = BatchArgs { keys: base + 8, values: base, len: n, key_stride: 16, value_stride: 16 };
            Batch { _mem: mem, args }
        }
    }
}

/// Upsert as `CudaTable` runs it: claim (claimers write their value), then, if a key met
/// an existing slot, elect the last copy and let it write. Returns the new keys, or `None`
/// when the claims were refused and rolled back.
fn insert(t: &mut Table, b: &Batch, budget: u64) -> Option<u32> {
    let n = b.args.len as usize;
    let mut p = Pass::new(n);
    let c = p.claim_args(t, ClaimMode::WriteValue, budget);
    let table = t.args();
    // SAFETY (every pass below): the addresses are those of live host vectors sized for the
    // table and the batch.
    unsafe { pass_claim(ClaimParams { table, batch: b.args, claim: c }) };
    let cnt = &p.counters;
    if cnt[C_NO_ROOM] > 0 || cnt[C_COLLISIONS] > 0 {
        unsafe { pass_rollback(RollbackParams { table, claim: c, n: n as u64 }) };
        return None;
    }
    if cnt[C_EXISTING] > 0 {
        unsafe { pass_winner_last(ElectParams { claim: c, n: n as u64 }) };
        unsafe { pass_write_winners(WriteParams { table, batch: b.args, claim: c, out: 0 }) };
    }
    Some(p.counters[C_NEW])
}

/// `insert_new` as `CudaTable` runs it; returns the per-position flags.
fn insert_new(t: &mut Table, b: &Batch) -> Vec<u8> {
    let n = b.args.len as usize;
    let mut p = Pass::new(n);
    let c = p.claim_args(t, ClaimMode::MarkAux, u64::MAX);
    let table = t.args();
    let out = addr(&mut p.found);
    // SAFETY: as in `insert`.
    unsafe {
        pass_claim(ClaimParams { table, batch: b.args, claim: c });
        pass_winner_first(ElectParams { claim: c, n: n as u64 });
        pass_write_winners(WriteParams { table, batch: b.args, claim: c, out });
    }
    p.found
}

/// `add` as `CudaTable` runs it.
fn add(t: &mut Table, b: &Batch) -> u32 {
    let mut p = Pass::new(b.args.len as usize);
    let c = p.claim_args(t, ClaimMode::ZeroValue, u64::MAX);
    let table = t.args();
    // SAFETY: as in `insert`.
    unsafe {
        pass_claim(ClaimParams { table, batch: b.args, claim: c });
        pass_add(AddParams { table, batch: b.args, claim: c });
    }
    p.counters[C_NEW]
}

/// Looks up the keys of `b`; the values of hits.
fn get(t: &mut Table, b: &Batch) -> Vec<Option<u64>> {
    let n = b.args.len as usize;
    let mut p = Pass::new(n);
    let (found, out, counters) = (addr(&mut p.found), addr(&mut p.out), addr(&mut p.counters));
    // SAFETY: as in `insert`.
    unsafe { pass_find(FindParams { table: t.args(), batch: b.args, found, out, counters }) };
    let hits = p.found.iter().filter(|&&f| f == 1).count();
    assert_eq!(p.counters[C_HITS] as usize, hits, "the hit counter agrees with the flags");
    (0..n).map(|i| (p.found[i] == 1).then(|| u64::from_le_bytes(p.out[i * 8..][..8].try_into().unwrap()))).collect()
}

fn remove(t: &mut Table, b: &Batch) -> u32 {
    let mut p = Pass::new(b.args.len as usize);
    let counters = addr(&mut p.counters);
    // SAFETY: as in `insert`.
    unsafe { pass_remove(RemoveParams { table: t.args(), batch: b.args, counters }) };
    p.counters[C_REMOVED]
}

fn rnd(x: &mut u64) -> u64 {
    *x = flash_map_core::hash::fmix64(x.wrapping_add(0x9E37_79B9_7F4A_7C15));
    *x
}

/// Every pass against the model, on column and record batches, with every hash strategy, on
/// tables of two arrays and of records: upserts with duplicates (last copy wins), insert-new
/// (first new copy wins), removals, a refused batch rolled back, and a rehash into a larger
/// table of the other layout.
#[test]
fn kernel_passes_match_the_model() {
    for (round, (hash, records)) in [
        KeyHasher::plain(HashStrategy::Identity),
        KeyHasher::plain(HashStrategy::Murmur3),
        KeyHasher::new(HashStrategy::SipHash13, [5, 6]),
    ]
    .into_iter()
    .flat_map(|h| [(h, false), (h, true)])
    .enumerate()
    {
        let mut x = round as u64 / 2 + 1;
        let mut t = Table::new(1024, hash, records);
        let mut model: HashMap<u64, u64> = HashMap::new();
        for step in 0..40 {
            let layout = if step % 2 == 0 { Layout::Columns } else { Layout::Records };
            let pairs: Vec<(u64, u64)> = (0..60).map(|_| (rnd(&mut x) % 700, rnd(&mut x))).collect();
            let b = batch(&pairs, layout);
            match step % 4 {
                0 | 1 if model.len() < 400 => {
                    let fresh = pairs
                        .iter()
                        .map(|p| p.0)
                        .filter(|k| !model.contains_key(k))
                        .collect::<std::collections::HashSet<_>>();
                    assert_eq!(insert(&mut t, &b, u64::MAX), Some(fresh.len() as u32), "{round}/{step}: new keys");
                    model.extend(pairs.iter().copied());
                }
                2 => {
                    let mut seen = std::collections::HashSet::new();
                    let want: Vec<u8> =
                        pairs.iter().map(|p| (!model.contains_key(&p.0) && seen.insert(p.0)) as u8).collect();
                    assert_eq!(insert_new(&mut t, &b), want, "{round}/{step}: first new copies win");
                    for (p, w) in pairs.iter().zip(&want) {
                        if *w == 1 {
                            model.insert(p.0, p.1);
                        }
                    }
                }
                _ => {
                    let distinct: std::collections::HashSet<u64> = pairs.iter().map(|p| p.0).collect();
                    let gone = distinct.iter().filter(|k| model.remove(k).is_some()).count();
                    assert_eq!(remove(&mut t, &b) as usize, gone, "{round}/{step}: removals");
                }
            }
            let probe: Vec<(u64, u64)> = (0..800).map(|k| (k, 0)).collect();
            let got = get(&mut t, &batch(&probe, Layout::Columns));
            for (k, g) in got.iter().enumerate() {
                assert_eq!(*g, model.get(&(k as u64)).copied(), "{round}/{step}: key {k}");
            }
        }
        // A batch that does not fit its budget is refused and rolled back: nothing changes.
        let states = t.states.clone();
        let over: Vec<(u64, u64)> = (0..50).map(|i| (10_000 + i, i)).collect();
        assert_eq!(insert(&mut t, &batch(&over, Layout::Records), 10), None);
        assert_eq!(t.states, states, "{round}: rollback restores every state word");
        assert!(t.aux.iter().all(|&a| a == 0), "{round}: election words are zero between passes");
        // Rehash into a table twice the size, of the other layout.
        let mut big = Table::new(2048, hash, !records);
        let old = t.args();
        // SAFETY: both tables are live host vectors.
        unsafe { pass_rehash(RehashParams { table: big.args(), old }) };
        let probe: Vec<(u64, u64)> = (0..800).map(|k| (k, 0)).collect();
        let got = get(&mut big, &batch(&probe, Layout::Records));
        for (k, g) in got.iter().enumerate() {
            assert_eq!(*g, model.get(&(k as u64)).copied(), "{round}: rehashed key {k}");
        }
    }
}

/// Counters: every copy of a key adds, new keys start at zero, in both table layouts.
#[test]
fn kernel_add_sums_every_copy() {
    for records in [false, true] {
        let mut t = Table::new(256, KeyHasher::plain(HashStrategy::Identity), records);
        // A slot's leftover bytes must not count: a counter claimed new starts at zero.
        t.keys.fill(0xAB);
        t.values.fill(0xAB);
        let pairs: Vec<(u64, u64)> = (0..200).map(|i| (i % 7, i)).collect();
        assert_eq!(add(&mut t, &batch(&pairs, Layout::Columns)), 7);
        assert_eq!(add(&mut t, &batch(&pairs, Layout::Records)), 0);
        let keys: Vec<(u64, u64)> = (0..8).map(|k| (k, 0)).collect();
        let got = get(&mut t, &batch(&keys, Layout::Columns));
        for k in 0..8u64 {
            let want: u64 = (0..200).filter(|i| i % 7 == k).sum::<u64>() * 2;
            assert_eq!(got[k as usize], (k < 7).then_some(want), "records {records}, key {k}");
        }
    }
}
