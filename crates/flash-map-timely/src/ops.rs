//! The operators: route records to their shard as bytes, apply a timestamp's records as
//! one bulk call, and bring answers back to the worker that asked, in its order.
//!
//! ```text
//! input (this worker) --route--> chunks --Exchange(dest)--> apply on the shard
//!                                                              |
//!     answers, in asking order <--reassemble <--Exchange(src)--+ (answering operators)
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use flash_map::{shard_of, Counter, FlashMap, FlashMapError, Pod, MAX_BATCH};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::Stream;
use timely::order::TotalOrder;
use timely::progress::frontier::MutableAntichain;
use timely::progress::Timestamp;

use crate::error::Error;
use crate::shard::Shard;
use crate::wire::{Bytes, Chunk};

/// What one shard did with one timestamp's records (the output of the operators that do
/// not answer per record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The shard (worker index).
    pub shard: usize,
    /// Records applied.
    pub records: usize,
    /// Keys added (upsert, add) or removed (remove).
    pub changed: usize,
}

/// Operators on streams of `(key, value)` pairs, each backed by this worker's [`Shard`].
pub trait FlashOps<'s, T: Timestamp, K, V> {
    /// Upserts every pair: a key's last copy in a timestamp wins (copies sorted by sending
    /// worker, then arrival).
    fn flash_upsert(self, shard: &Shard<K, V>) -> Stream<'s, T, Vec<Applied>>;
    /// Adds every pair's value to its key's counter (absent keys start at 0).
    fn flash_add(self, shard: &Shard<K, V>) -> Stream<'s, T, Vec<Applied>>
    where
        V: Counter;
    /// Inserts the pairs whose keys are absent and answers, to the worker that sent each
    /// pair and in its order, whether that pair was new (of several copies of a new key in
    /// a timestamp, the first is).
    #[allow(clippy::type_complexity, reason = "the pair and its answer, as the caller sent it")]
    fn flash_insert_new(self, shard: &Shard<K, V>) -> Stream<'s, T, Vec<((K, V), bool)>>;
}

/// Operators on streams of keys, each backed by this worker's [`Shard`].
pub trait FlashKeyOps<'s, T: Timestamp, K> {
    /// Looks every key up and answers, to the worker that asked and in its order, with the
    /// key and its value.
    fn flash_get<V: Pod + Send + Sync>(self, shard: &Shard<K, V>) -> Stream<'s, T, Vec<(K, Option<V>)>>;
    /// Removes every key.
    fn flash_remove<V: Pod + Send + Sync>(self, shard: &Shard<K, V>) -> Stream<'s, T, Vec<Applied>>;
}

/// An input batch waiting for its answers: its items and the shard of each.
struct Pending<T, I> {
    time: T,
    seq: u64,
    items: Vec<I>,
    dests: Vec<u32>,
}

type Queue<T, I> = Rc<RefCell<Vec<Pending<T, I>>>>;

/// One bulk call on a shard over records `R` (keys or pairs). Returns how many keys changed
/// and `width` answer bytes per record.
type Apply<K, V, R> = Box<dyn FnMut(&mut FlashMap<K, V>, &[R]) -> Result<(usize, Vec<u8>), FlashMapError> + Send>;

/// Splits each input batch by destination shard into chunks of bytes.
fn route<'s, T, I, K, V>(
    stream: Stream<'s, T, Vec<I>>,
    shard: &Shard<K, V>,
    split: fn(&I) -> (&K, Option<&V>),
    pending: Option<Queue<T, I>>,
) -> Stream<'s, T, Vec<Chunk>>
where
    T: Timestamp + TotalOrder,
    I: Clone + 'static,
    K: Pod + Send + Sync,
    V: Pod + Send + Sync,
{
    let (me, peers) = (shard.index() as u32, shard.peers());
    let (ks, vs) = (size_of::<K>(), size_of::<V>());
    let mut seq = 0u64;
    stream.unary::<CapacityContainerBuilder<Vec<Chunk>>, _, _, _>(Pipeline, "FlashRoute", move |_, _| {
        move |input, output| {
            input.for_each(|cap, data| {
                // Totally ordered times: a message's stamp is its one time (none: no data).
                let Some(time) = cap.least().cloned() else { return };
                if data.is_empty() {
                    return;
                }
                seq += 1;
                let mut keys = vec![Vec::new(); peers];
                let mut vals = vec![Vec::new(); peers];
                let mut counts = vec![0u32; peers];
                let mut dests = Vec::with_capacity(if pending.is_some() { data.len() } else { 0 });
                for item in data.iter() {
                    let (k, v) = split(item);
                    let d = shard_of(k, peers);
                    keys[d].extend_from_slice(bytemuck::bytes_of(k));
                    if let Some(v) = v {
                        vals[d].extend_from_slice(bytemuck::bytes_of(v));
                    }
                    counts[d] += 1;
                    if pending.is_some() {
                        dests.push(d as u32);
                    }
                }
                let mut session = output.session(&cap);
                for (d, (k, v)) in keys.into_iter().zip(vals).enumerate() {
                    if counts[d] > 0 {
                        session.give(Chunk {
                            dest: d as u32,
                            src: me,
                            seq,
                            key_size: ks as u32,
                            value_size: vs as u32,
                            n: counts[d],
                            keys: Bytes(k),
                            vals: Bytes(v),
                            ok: true,
                        });
                    }
                }
                if let Some(q) = &pending {
                    q.borrow_mut().push(Pending { time, seq, items: std::mem::take(data), dests });
                }
            });
        }
    })
}

/// Applies each complete timestamp's chunks on the shard as one bulk call (split only at
/// [`MAX_BATCH`]). With `width > 0`, replies to each chunk's sender with `width` answer
/// bytes per record; otherwise emits one summary chunk (`n` records, `seq` changed keys).
fn apply<'s, T, K, V, R>(
    chunks: Stream<'s, T, Vec<Chunk>>,
    shard: &Shard<K, V>,
    width: usize,
    with_values: bool,
    decode: fn(&Chunk, &mut Vec<R>),
    mut op: Apply<K, V, R>,
) -> Stream<'s, T, Vec<Chunk>>
where
    T: Timestamp + TotalOrder,
    K: Pod + Send + Sync,
    V: Pod + Send + Sync,
    R: Copy + Send + Sync + 'static,
{
    let shard = shard.clone();
    let (ks, vs) = (size_of::<K>(), size_of::<V>());
    let me = shard.index() as u32;
    let mut stash: Stash<T> = Vec::new();
    chunks.unary_frontier::<CapacityContainerBuilder<Vec<Chunk>>, _, _, _>(
        Exchange::new(|c: &Chunk| c.dest as u64),
        "FlashApply",
        move |_, _| {
            move |(input, frontier), output| {
                input.for_each(|cap, data| stash_chunks(&mut stash, &cap, data));
                let ready = ready_times(&mut stash, frontier);
                for (cap, mut chunks) in ready {
                    chunks.sort_by_key(|c| (c.src, c.seq));
                    let mut refused = Vec::new();
                    chunks.retain(|c| {
                        let fits = c.key_size as usize == ks
                            && (c.value_size as usize == vs)
                            && c.keys.0.len() == c.n as usize * ks
                            && c.vals.0.len() == if with_values { c.n as usize * vs } else { 0 };
                        if !fits {
                            refused.push(c.src);
                        }
                        fits
                    });
                    if !refused.is_empty() {
                        shard.fail(Error::Remote(format!(
                            "worker {me} got records of other sizes from workers {refused:?} (this shard: \
                             {ks}-byte keys, {vs}-byte values); they were dropped"
                        )));
                    }
                    let n: usize = chunks.iter().map(|c| c.n as usize).sum();
                    let mut records = Vec::with_capacity(n);
                    for c in &chunks {
                        decode(c, &mut records);
                    }
                    let mut changed = 0;
                    let mut answers = Vec::with_capacity(n * width);
                    let mut ok = true;
                    for part in records.chunks(MAX_BATCH) {
                        match shard.apply(|map| op(map, part)) {
                            Ok((c, a)) => {
                                changed += c;
                                answers.extend_from_slice(&a);
                            }
                            Err(e) => {
                                shard.fail(e.into());
                                ok = false;
                                break;
                            }
                        }
                    }
                    let mut session = output.session(&cap);
                    if width == 0 {
                        session.give(Chunk {
                            dest: me,
                            src: me,
                            seq: changed as u64,
                            key_size: ks as u32,
                            value_size: vs as u32,
                            n: n as u32,
                            keys: Bytes::default(),
                            vals: Bytes::default(),
                            ok,
                        });
                        continue;
                    }
                    let mut at = 0;
                    for c in chunks {
                        let len = c.n as usize * width;
                        let vals = if ok { answers[at..at + len].to_vec() } else { Vec::new() };
                        at += len;
                        session.give(Chunk {
                            dest: c.src,
                            src: me,
                            vals: Bytes(vals),
                            keys: Bytes::default(),
                            ok,
                            ..c
                        });
                    }
                }
            }
        },
    )
}

/// Chunks held until the frontier passes their time, with a capability for it.
type Stash<T> = Vec<(Capability<T>, Vec<Chunk>)>;

fn stash_chunks<T: Timestamp + TotalOrder>(stash: &mut Stash<T>, cap: &InputCapability<T>, data: &mut Vec<Chunk>) {
    let Some(time) = cap.least() else { return };
    match stash.iter_mut().find(|(c, _)| c.time() == time) {
        Some((_, chunks)) => chunks.append(data),
        None => {
            if let Some(c) = cap.retain_least(0) {
                stash.push((c, std::mem::take(data)));
            }
        }
    }
}

/// Takes the stashed times the frontier has passed, earliest first.
fn ready_times<T: Timestamp + TotalOrder>(stash: &mut Stash<T>, frontier: &MutableAntichain<T>) -> Stash<T> {
    let (mut ready, rest): (Stash<T>, Stash<T>) =
        std::mem::take(stash).into_iter().partition(|(c, _)| !frontier.less_equal(c.time()));
    *stash = rest;
    ready.sort_by(|a, b| a.0.time().cmp(b.0.time()));
    ready
}

/// Turns the summary chunks of a non-answering operator into [`Applied`] records.
fn summaries<'s, T: Timestamp>(s: Stream<'s, T, Vec<Chunk>>) -> Stream<'s, T, Vec<Applied>> {
    s.unary::<CapacityContainerBuilder<Vec<Applied>>, _, _, _>(Pipeline, "FlashApplied", |_, _| {
        |input, output| {
            input.for_each(|cap, data| {
                let mut session = output.session(&cap);
                for c in data.drain(..) {
                    session.give(Applied { shard: c.src as usize, records: c.n as usize, changed: c.seq as usize });
                }
            })
        }
    })
}

/// Gathers a complete timestamp's replies and gives each waiting batch's answers, in the
/// batches' order and each batch's order.
fn reassemble<'s, T, I, A, K, V>(
    replies: Stream<'s, T, Vec<Chunk>>,
    shard: &Shard<K, V>,
    pending: Queue<T, I>,
    width: usize,
    answer: fn(&[u8]) -> A,
    failed: A,
) -> Stream<'s, T, Vec<(I, A)>>
where
    T: Timestamp + TotalOrder,
    I: Clone + 'static,
    A: Clone + 'static,
    K: Pod + Send + Sync,
    V: Pod + Send + Sync,
{
    let shard = shard.clone();
    let peers = shard.peers();
    let mut stash: Stash<T> = Vec::new();
    replies.unary_frontier::<CapacityContainerBuilder<Vec<(I, A)>>, _, _, _>(
        Exchange::new(|c: &Chunk| c.dest as u64),
        "FlashAnswers",
        move |_, _| {
            move |(input, frontier), output| {
                input.for_each(|cap, data| stash_chunks(&mut stash, &cap, data));
                let ready = ready_times(&mut stash, frontier);
                for (cap, chunks) in ready {
                    let mut by_batch: HashMap<(u64, u32), Chunk> =
                        chunks.into_iter().map(|c| ((c.seq, c.src), c)).collect();
                    let mut q = pending.borrow_mut();
                    let (mine, rest): (Vec<_>, Vec<_>) = q.drain(..).partition(|p| p.time == *cap.time());
                    *q = rest;
                    drop(q);
                    let mut session = output.session(&cap);
                    for p in mine {
                        // The batch's reply from each shard, with a cursor into its answers.
                        let mut from: Vec<Option<(Chunk, usize)>> =
                            (0..peers as u32).map(|d| by_batch.remove(&(p.seq, d)).map(|c| (c, 0))).collect();
                        let mut unanswered: Vec<u32> = Vec::new();
                        for (item, &d) in p.items.into_iter().zip(&p.dests) {
                            let a = match &mut from[d as usize] {
                                Some((c, at)) if c.ok && c.vals.0.len() >= (*at + 1) * width => {
                                    let a = answer(&c.vals.0[*at * width..(*at + 1) * width]);
                                    *at += 1;
                                    a
                                }
                                _ => {
                                    if !unanswered.contains(&d) {
                                        unanswered.push(d);
                                    }
                                    failed.clone()
                                }
                            };
                            session.give((item, a));
                        }
                        if !unanswered.is_empty() {
                            shard.fail(Error::Remote(format!(
                                "workers {unanswered:?} could not answer batch {} of worker {}; see their errors",
                                p.seq,
                                shard.index()
                            )));
                        }
                    }
                }
            }
        },
    )
}

/// Appends a chunk's keys (already checked to be `n` keys of `K`'s size).
fn decode_keys<K: Pod>(c: &Chunk, out: &mut Vec<K>) {
    out.extend(c.keys.0.chunks_exact(size_of::<K>()).map(bytemuck::pod_read_unaligned::<K>));
}

/// Appends a chunk's pairs (already checked to be `n` keys and `n` values).
fn decode_pairs<K: Pod, V: Pod>(c: &Chunk, out: &mut Vec<(K, V)>) {
    let keys = c.keys.0.chunks_exact(size_of::<K>()).map(bytemuck::pod_read_unaligned::<K>);
    let vals = c.vals.0.chunks_exact(size_of::<V>()).map(bytemuck::pod_read_unaligned::<V>);
    out.extend(keys.zip(vals));
}

impl<'s, T, K, V> FlashOps<'s, T, K, V> for Stream<'s, T, Vec<(K, V)>>
where
    T: Timestamp + TotalOrder,
    K: Pod + Send + Sync,
    V: Pod + Send + Sync,
{
    fn flash_upsert(self, shard: &Shard<K, V>) -> Stream<'s, T, Vec<Applied>> {
        let chunks = route(self, shard, |p: &(K, V)| (&p.0, Some(&p.1)), None);
        let op: Apply<K, V, (K, V)> = Box::new(|map, pairs| Ok((map.bulk_insert(pairs)?, Vec::new())));
        summaries(apply(chunks, shard, 0, true, decode_pairs, op))
    }

    fn flash_add(self, shard: &Shard<K, V>) -> Stream<'s, T, Vec<Applied>>
    where
        V: Counter,
    {
        let chunks = route(self, shard, |p: &(K, V)| (&p.0, Some(&p.1)), None);
        let op: Apply<K, V, (K, V)> = Box::new(|map, pairs| Ok((map.bulk_add(pairs)?, Vec::new())));
        summaries(apply(chunks, shard, 0, true, decode_pairs, op))
    }

    fn flash_insert_new(self, shard: &Shard<K, V>) -> Stream<'s, T, Vec<((K, V), bool)>> {
        let queue: Queue<T, (K, V)> = Rc::default();
        let chunks = route(self, shard, |p: &(K, V)| (&p.0, Some(&p.1)), Some(Rc::clone(&queue)));
        let op: Apply<K, V, (K, V)> = Box::new(|map, pairs| {
            let new = map.bulk_insert_new(pairs)?;
            Ok((new.iter().filter(|&&b| b).count(), new.into_iter().map(u8::from).collect()))
        });
        let replies = apply(chunks, shard, 1, true, decode_pairs, op);
        reassemble(replies, shard, queue, 1, |b| b[0] != 0, false)
    }
}

impl<'s, T, K> FlashKeyOps<'s, T, K> for Stream<'s, T, Vec<K>>
where
    T: Timestamp + TotalOrder,
    K: Pod + Send + Sync,
{
    fn flash_get<V: Pod + Send + Sync>(self, shard: &Shard<K, V>) -> Stream<'s, T, Vec<(K, Option<V>)>> {
        let queue: Queue<T, K> = Rc::default();
        let chunks = route(self, shard, |k: &K| (k, None), Some(Rc::clone(&queue)));
        let vs = size_of::<V>();
        let op: Apply<K, V, K> = Box::new(move |map, keys| {
            let got = map.bulk_get(keys)?;
            let mut out = Vec::with_capacity(got.len() * (1 + vs));
            for v in got {
                out.push(u8::from(v.is_some()));
                out.extend_from_slice(bytemuck::bytes_of(&v.unwrap_or_else(V::zeroed)));
            }
            Ok((0, out))
        });
        let replies = apply(chunks, shard, 1 + vs, false, decode_keys, op);
        reassemble(replies, shard, queue, 1 + vs, |b| (b[0] != 0).then(|| bytemuck::pod_read_unaligned(&b[1..])), None)
    }

    fn flash_remove<V: Pod + Send + Sync>(self, shard: &Shard<K, V>) -> Stream<'s, T, Vec<Applied>> {
        let chunks = route(self, shard, |k: &K| (k, None), None);
        let op: Apply<K, V, K> = Box::new(|map, keys| Ok((map.bulk_remove(keys)?, Vec::new())));
        summaries(apply(chunks, shard, 0, false, decode_keys, op))
    }
}
