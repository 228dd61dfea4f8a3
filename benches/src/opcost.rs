//! The steady-state cost of one operation, FlashMap Serial (or Rayon, with `OPCOST_RAYON=1`)
//! against hashbrown, in one
//! process on the same data: for engine work on small tables, where the compare binary's
//! cold memory and construction hide the instructions per key.
//!
//! `opcost w1|w2 PAIRS REPS OP...` with OP among `hit`, `miss`, `insert` (updates of present
//! keys), `remove` (of every key, from a table filled untimed), `remove_after_get` (the same
//! right after a lookup of every key: with `OPCOST_RAYON=1`, a mutation that follows a
//! parallel pass while rayon's threads still spin), `build` (a fresh table built
//! and filled), `fill` (the same, the build untimed) and `floor` (see [`Floor`]: its build,
//! split into allocation and fill, hit and miss); prints the minimum and median of
//! REPS runs of each and the ratio of the medians. FlashMap's lookups write into one kept
//! vector (`bulk_get_into`); with `OPCOST_FRESH=1` each returns a fresh one (`bulk_get`),
//! as hashbrown's collect does. `OPCOST_LOAD=0.875` builds FlashMap's
//! tables for that maximum load factor instead of the default 0.5. `ONLY_FLASH=1` skips hashbrown (for
//! instruction counts under callgrind: the difference between two REPS values, divided by
//! the keys, is the instructions per key).
use flash_map::{Backend, FlashMap};
use flash_map_benches::{data, Data, Gen, H};
use flash_map_core::slot::{full_word, state_byte, tag_of, BYTE_TAG_MASK};
use std::mem::{align_of, size_of};
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
    let mut fl = vec![];
    let mut hb = vec![];
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
    fl.sort_by(|a, b| a.partial_cmp(b).unwrap());
    hb.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{op} n={n}: flash min {:.3} med {:.3} | hashbrown min {:.3} med {:.3} | ratio(med) {:.2}",
        fl[0],
        fl[reps / 2],
        hb[0],
        hb[reps / 2],
        fl[reps / 2] / hb[reps / 2]
    );
}

/// The floor of the engine's layout: the same arrays (state words, and keys and values side
/// by side in records or in two arrays, as the engine lays out a table of these sizes:
/// `flash_map_cpu::records`) of the same slot count, allocated by the engine's own allocator,
/// touched in the same order by a loop with none of the engine's bookkeeping (no
/// per-position records, no budget, no batch view): the Identity hash, the eight state bytes
/// at the home slot compared at once (the engine's group compare), then the key and value,
/// with the engine's prefetch of the home lines 16 keys ahead (lookups only in tables beyond
/// 1 MiB). `build` allocates the arrays and inserts into them; `hit` and `miss` collect
/// `Vec<Option<V>>`. Keys whose group of eight holds no empty slot fall back to a scalar
/// probe (rare at the default load).
struct Floor<K, V> {
    states: Fresh<u8>,
    /// The keys, or the records.
    keys: Fresh<u8>,
    /// The values (empty for records).
    values: Fresh<u8>,
    mask: usize,
    /// Bytes per record, or 0 (two arrays).
    record: usize,
    _kv: std::marker::PhantomData<(K, V)>,
}

/// `n` `T`s in a table array as the engine allocates it ([`flash_map_cpu::AlignedBuf`]):
/// zeroed state bytes, and key and value bytes that may be a dropped array's
/// ([`flash_map_cpu::AlignedBuf::for_slots`]).
struct Fresh<T> {
    buf: flash_map_cpu::AlignedBuf,
    _t: std::marker::PhantomData<T>,
}

impl Fresh<u8> {
    fn states(n: usize) -> Self {
        Fresh::made(flash_map_cpu::AlignedBuf::zeroed(n))
    }
    fn bytes(n: usize) -> Self {
        Fresh::made(flash_map_cpu::AlignedBuf::for_slots(n))
    }
}

impl<T: Copy> Fresh<T> {
    fn made(buf: Result<flash_map_cpu::AlignedBuf, flash_map_cpu::CpuError>) -> Self {
        let buf = buf.expect("memory for the floor's arrays");
        assert!(align_of::<T>() <= 16, "the buffer is 16-byte aligned");
        Fresh { buf, _t: std::marker::PhantomData }
    }
}

impl<T> std::ops::Deref for Fresh<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the buffer holds `len / size_of::<T>()` `T`s (bytes), initialised
        // (zeroed, written since, or a former array's).
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr() as *const T, self.buf.len() / size_of::<T>()) }
    }
}

impl<T> std::ops::DerefMut for Fresh<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        let n = self.buf.len() / size_of::<T>();
        // SAFETY: as above, owned exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr() as *mut T, n) }
    }
}

/// Where a floor's home lines lie, copied out so that the prefetch does not borrow the table.
#[derive(Clone, Copy)]
struct Lines {
    states: *const u8,
    keys: *const u8,
    values: *const u8,
    key_stride: usize,
    value_stride: usize,
    /// Whether a value shares its key's line (records), so that fetching one fetches both.
    together: bool,
    mask: usize,
}

impl Lines {
    /// Prefetches the home state and key lines of hash `h` and, for `values`, its value line.
    #[inline(always)]
    fn prefetch(self, h: u64, values: bool) {
        use std::arch::x86_64::*;
        let s = h as usize & self.mask;
        // SAFETY: prefetches never fault.
        unsafe {
            _mm_prefetch(self.states.wrapping_add(s) as *const i8, _MM_HINT_T0);
            _mm_prefetch(self.keys.wrapping_add(s * self.key_stride) as *const i8, _MM_HINT_T0);
            if values && !self.together {
                _mm_prefetch(self.values.wrapping_add(s * self.value_stride) as *const i8, _MM_HINT_T0);
            }
        }
    }
}

/// Calls `body(i, hash)` for `i` in `0..n` in order, each key hashed once, 16 keys ahead,
/// when `prefetch` is given, which then also gets the hash.
#[inline(always)]
fn hashed_ahead(
    n: usize,
    key: impl Fn(usize) -> u64,
    prefetch: Option<impl Fn(u64)>,
    mut body: impl FnMut(usize, u64),
) {
    const D: usize = 16;
    let Some(pf) = prefetch else {
        (0..n).for_each(|i| body(i, key(i)));
        return;
    };
    let mut ring = [0u64; D];
    for (i, r) in ring.iter_mut().enumerate().take(n) {
        *r = key(i);
        pf(*r);
    }
    for i in 0..n {
        let h = ring[i % D];
        if i + D < n {
            ring[i % D] = key(i + D);
            pf(ring[i % D]);
        }
        body(i, h);
    }
}

impl<K: Gen, V: Gen> Floor<K, V> {
    fn new(n: usize) -> Self {
        let l = flash_map_core::TableLayout::for_capacity(n, 0.5, size_of::<K>(), size_of::<V>()).unwrap();
        let record = flash_map_cpu::records(&l);
        let (keys, values) = if record != 0 {
            (Fresh::bytes(l.slots * record), Fresh::bytes(0))
        } else {
            (Fresh::bytes(l.slots * size_of::<K>()), Fresh::bytes(l.slots * size_of::<V>()))
        };
        Floor { states: Fresh::states(l.slots), keys, values, mask: l.slots - 1, record, _kv: std::marker::PhantomData }
    }
    fn bytes(&self) -> usize {
        (self.mask + 1) * (1 + size_of::<K>() + size_of::<V>())
    }
    fn lines(&self) -> Lines {
        let (keys, record) = (self.keys.as_ptr(), self.record);
        Lines {
            states: self.states.as_ptr(),
            keys,
            values: if record != 0 { keys.wrapping_add(size_of::<K>()) } else { self.values.as_ptr() },
            key_stride: if record != 0 { record } else { size_of::<K>() },
            value_stride: if record != 0 { record } else { size_of::<V>() },
            together: record != 0,
            mask: self.mask,
        }
    }
    /// The engine's Identity hash of `k`.
    #[inline(always)]
    fn hash(k: &K) -> u64 {
        flash_map_core::KeyHasher::plain(flash_map_core::HashStrategy::Identity).hash_bytes(bytemuck_bytes(k))
    }
    /// Slot `s`'s key (`s <= mask`).
    #[inline(always)]
    fn key(&self, l: Lines, s: usize) -> K {
        // SAFETY: `s <= mask`: inside the key (or record) array; any bytes are a Pod value.
        unsafe { std::ptr::read_unaligned(l.keys.add(s * l.key_stride) as *const K) }
    }
    /// Slot `s`'s value (`s <= mask`).
    #[inline(always)]
    fn value(&self, l: Lines, s: usize) -> V {
        // SAFETY: as in `key`.
        unsafe { std::ptr::read_unaligned(l.values.add(s * l.value_stride) as *const V) }
    }
    /// The state bytes at `at..at + 8` (wrapping) that hold the word `w`, and those that are
    /// empty.
    #[inline(always)]
    fn group(&self, l: Lines, at: usize, w: u32) -> (u32, u32) {
        use flash_map_core::Slots;
        if at + 8 > self.mask + 1 {
            let m = |x: u8| (0..8).fold(0u32, |a, j| a | ((self.states[(at + j) & self.mask] == x) as u32) << j);
            return (m(state_byte(w)), m(0));
        }
        // SAFETY: the arrays hold `mask + 1` slots of keys `key_stride` bytes apart, read
        // only here (no claims, so the hasher is never asked); `at + 8 <= slots`.
        let g = unsafe {
            flash_map_core::probe::ByteSlots::strided(
                self.states.as_ptr() as *mut u8,
                l.keys as *mut u8,
                self.mask,
                size_of::<K>(),
                l.key_stride,
                flash_map_core::KeyHasher::plain(flash_map_core::HashStrategy::Identity),
            )
            .group(at, w)
        };
        (g.matching, g.empty)
    }
    fn insert_all(&mut self, pairs: &[(K, V)]) {
        let l = self.lines();
        let pf = Some(|h| l.prefetch(h, true));
        hashed_ahead(
            pairs.len(),
            |i| Self::hash(&pairs[i].0),
            pf,
            |i, h| {
                let (k, v) = &pairs[i];
                let w = full_word(tag_of(h) & BYTE_TAG_MASK);
                let at = h as usize & self.mask;
                let (_, empty) = self.group(l, at, w);
                let mut s = if empty != 0 { at + empty.trailing_zeros() as usize } else { at + 8 };
                while self.states[s & self.mask] != 0 {
                    s += 1;
                }
                let s = s & self.mask;
                self.states[s] = state_byte(w);
                // SAFETY: `s <= mask`: inside the arrays, written by this thread alone.
                unsafe {
                    std::ptr::write_unaligned(l.keys.add(s * l.key_stride) as *mut K, *k);
                    std::ptr::write_unaligned(l.values.add(s * l.value_stride) as *mut V, *v);
                }
            },
        );
    }
    fn get_all(&self, keys: &[K], out: &mut Vec<Option<V>>, hits: bool) {
        out.clear();
        let l = self.lines();
        let pf = (self.bytes() > (1 << 20)).then_some(|h| l.prefetch(h, hits));
        hashed_ahead(
            keys.len(),
            |i| Self::hash(&keys[i]),
            pf,
            |i, h| {
                let k = &keys[i];
                let w = full_word(tag_of(h) & BYTE_TAG_MASK);
                let at = h as usize & self.mask;
                let (mut m, empty) = self.group(l, at, w);
                if empty != 0 {
                    m &= (1 << empty.trailing_zeros()) - 1;
                }
                let mut r = None;
                while m != 0 {
                    let s = (at + m.trailing_zeros() as usize) & self.mask;
                    if self.key(l, s) == *k {
                        r = Some(self.value(l, s));
                        break;
                    }
                    m &= m - 1;
                }
                if r.is_none() && empty == 0 {
                    let mut s = at + 8;
                    while self.states[s & self.mask] != 0 {
                        if self.states[s & self.mask] == state_byte(w) && self.key(l, s & self.mask) == *k {
                            r = Some(self.value(l, s & self.mask));
                            break;
                        }
                        s += 1;
                    }
                }
                out.push(r);
            },
        );
    }
}

fn bytemuck_bytes<K: Gen>(k: &K) -> &[u8] {
    // SAFETY: a Pod key is plain bytes.
    unsafe { std::slice::from_raw_parts(k as *const K as *const u8, size_of::<K>()) }
}

fn floor<K: Gen, V: Gen>(d: &Data<K, V>, reps: usize) {
    let n = d.pairs.len();
    let (mut b, mut al, mut fi, mut hi, mut mi) = (vec![], vec![], vec![], vec![], vec![]);
    let mut out = Vec::new();
    for _ in 0..reps {
        let (t0, mut f) = t(|| Floor::<K, V>::new(n));
        let (t1, _) = t(|| f.insert_all(&d.pairs));
        al.push(t0);
        let (t2, _) = t(|| f.get_all(&d.keys, &mut out, true));
        assert!(out.iter().zip(&d.pairs).all(|(o, p)| *o == Some(p.1)), "floor: wrong hit");
        let (t3, _) = t(|| f.get_all(&d.absent, &mut out, false));
        assert!(out.iter().all(Option::is_none), "floor: wrong miss");
        b.push(t0 + t1);
        fi.push(t1);
        hi.push(t2);
        mi.push(t3);
    }
    for (name, mut v) in [("build", b), ("alloc", al), ("fill", fi), ("hit", hi), ("miss", mi)] {
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
            } else {
                go(&d, reps, o)
            }
        }
    } else {
        let d = data::<[u8; 32], [u8; 128]>(n);
        for o in &ops {
            if *o == "floor" {
                floor(&d, reps)
            } else {
                go(&d, reps, o)
            }
        }
    }
}
