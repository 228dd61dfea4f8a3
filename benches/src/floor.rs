//! The floor of the serial engine's layout, shared by `opcost` and `compare`: a loop as
//! tight as the engine's that touches the same memory in the same order, with none of its
//! bookkeeping. Where a goal of issue 13 is out of reach, the floor against hashbrown shows
//! whether the layout itself puts it there, and the engine against the floor how close it
//! gets.

use std::mem::size_of;

use flash_map_core::slot::{full_word, state_byte, tag_of, BYTE_TAG_MASK, TOMBSTONE};

use crate::Gen;

/// The floor of the engine's layout: the same arrays (state words, and keys and values side
/// by side in records or in two arrays, as the engine lays out a table of these sizes:
/// `flash_map_cpu::records`) of the same slot count, allocated by the engine's own allocator,
/// touched in the same order by a loop with none of the engine's bookkeeping (no
/// per-position records, no budget, no batch view): the Identity hash, the eight state bytes
/// at the home slot compared at once (the engine's group compare), then the key and value,
/// with the engine's prefetch plans: the lines the engine fetches, as many keys ahead, where
/// it fetches them ([`flash_map_cpu::cached_bytes`], [`flash_map_cpu::cached_state_bytes`],
/// the two stages of a lookup of large keys and values: `Plan::Found`). Keys whose group
/// of eight holds no empty slot fall back to a scalar probe (rare at the default load).
///
/// [`new`](Self::new) allocates the arrays and [`insert_all`](Self::insert_all) inserts
/// into them; [`get_all`](Self::get_all) writes `Vec<Option<V>>`, preparing fresh result
/// memory as the engine does ([`flash_map_cpu::prepare_results`]);
/// [`remove_all`](Self::remove_all) makes each found key's slot a tombstone.
pub struct Floor<K, V> {
    states: Fresh,
    /// The keys, or the records.
    keys: Fresh,
    /// The values (empty for records).
    values: Fresh,
    mask: usize,
    /// Bytes per record, or 0 (two arrays).
    record: usize,
    _kv: std::marker::PhantomData<(K, V)>,
}

/// `n` bytes of a table array as the engine allocates it ([`flash_map_cpu::AlignedBuf`]):
/// zeroed state bytes, and key and value bytes that may be a dropped array's
/// ([`flash_map_cpu::AlignedBuf::for_slots`]).
struct Fresh(flash_map_cpu::AlignedBuf);

impl Fresh {
    fn states(n: usize) -> Self {
        Fresh(flash_map_cpu::AlignedBuf::zeroed(n).expect("memory for the floor's state bytes"))
    }
    fn bytes(n: usize) -> Self {
        Fresh(flash_map_cpu::AlignedBuf::for_slots(n).expect("memory for the floor's keys and values"))
    }
}

impl std::ops::Deref for Fresh {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the buffer owns `len` bytes, initialised: zeroed, written since, or a
        // dropped array's bytes (`for_slots`), which are plain bytes whatever they hold.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr(), self.0.len()) }
    }
}

impl std::ops::DerefMut for Fresh {
    fn deref_mut(&mut self) -> &mut [u8] {
        let n = self.0.len();
        // SAFETY: as in `deref`; `&mut self` makes this the only view of the bytes.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr(), n) }
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
    mask: usize,
}

impl Lines {
    /// Prefetches, as the engine's first stage does, the home state bytes of hash `h` (the
    /// lines of the first and last byte of its group), per `keys` its key line, and the
    /// lines of the first `values` bytes of its value.
    #[inline(always)]
    fn prefetch(self, h: u64, keys: bool, values: usize) {
        let s = h as usize & self.mask;
        fetch(self.states.wrapping_add(s));
        fetch(self.states.wrapping_add(s + GROUP - 1));
        if keys {
            fetch(self.keys.wrapping_add(s * self.key_stride));
        }
        if values != 0 {
            fetch_lines(self.values.wrapping_add(s * self.value_stride), values);
        }
    }
}

/// The engine's group: state bytes compared at once at a key's home slot.
const GROUP: usize = 8;

/// What a lookup fetches ahead, as the engine decides it (`lookup_fetch` and `fetch_for` in
/// `flash-map-cpu`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Nothing: the table (or, for absent keys, its state bytes) stays cached.
    Nothing,
    /// The home lines: state bytes, per `keys` the key line, and the first `values` bytes
    /// of the value.
    Home { keys: bool, values: usize },
    /// The home state bytes, then, [`MATCH_AHEAD`] keys before use, the key line and the
    /// first `values` bytes of the value of the first slot of the home group whose
    /// fingerprint matches (for a key and value larger than a line).
    Found { values: usize },
}

/// Keys ahead of use at which [`Plan::Found`]'s second stage runs (the engine's
/// `TUNING.prefetch_match_ahead`).
const MATCH_AHEAD: usize = flash_map_core::tuning::TUNING.prefetch_match_ahead;

/// Fetches the lines of `[p, p + len)` (the first line always).
#[inline(always)]
fn fetch_lines(p: *const u8, len: usize) {
    let lead = p as usize & 63;
    let line = p.wrapping_sub(lead);
    let mut off = 0;
    while off < lead + len.max(1) {
        fetch(line.wrapping_add(off));
        off += 64;
    }
}

/// Fetches the line at `p` into the caches (x86_64; elsewhere nothing).
#[inline(always)]
fn fetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Calls `body(i, hash)` for `i` in `0..n` in order, each key hashed once, 16 keys ahead,
/// when `first` is given, which then also gets the hash; `second` (only with `first`) gets
/// it again [`MATCH_AHEAD`] keys ahead. One loop, so that `body` has one call site and is
/// inlined (with two, it was called once per key).
#[inline(always)]
fn hashed_ahead(
    n: usize,
    key: impl Fn(usize) -> u64,
    first: Option<impl Fn(u64)>,
    second: Option<impl Fn(u64)>,
    mut body: impl FnMut(usize, u64),
) {
    const D: usize = flash_map_core::tuning::TUNING.prefetch_hash_ahead;
    const { assert!(MATCH_AHEAD < D) };
    let mut ring = [0u64; D];
    if let Some(pf) = &first {
        for (i, r) in ring.iter_mut().enumerate().take(n) {
            *r = key(i);
            pf(*r);
        }
        if let Some(pf2) = &second {
            ring.iter().take(n.min(MATCH_AHEAD)).for_each(|&h| pf2(h));
        }
    }
    for i in 0..n {
        let h = match &first {
            Some(pf) => {
                let h = ring[i % D];
                if i + D < n {
                    ring[i % D] = key(i + D);
                    pf(ring[i % D]);
                }
                if let Some(pf2) = &second {
                    if i + MATCH_AHEAD < n {
                        pf2(ring[(i + MATCH_AHEAD) % D]);
                    }
                }
                h
            }
            None => key(i),
        };
        body(i, h);
    }
}

impl<K: Gen, V: Gen> Floor<K, V> {
    /// Empty arrays for `n` pairs at the default load factor, laid out as the engine lays
    /// out a table of these sizes, from the engine's allocator.
    pub fn new(n: usize) -> Self {
        let l = flash_map_core::TableLayout::for_capacity(n, 0.5, size_of::<K>(), size_of::<V>()).unwrap();
        let record = flash_map_cpu::records(&l);
        // In the engine's order: state bytes first.
        let states = Fresh::states(l.slots);
        let (keys, values) = if record != 0 {
            (Fresh::bytes(l.slots * record), Fresh::bytes(0))
        } else {
            (Fresh::bytes(l.slots * size_of::<K>()), Fresh::bytes(l.slots * size_of::<V>()))
        };
        Floor { states, keys, values, mask: l.slots - 1, record, _kv: std::marker::PhantomData }
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
    /// Inserts `pairs`, whose keys are distinct and absent (nothing checks it).
    pub fn insert_all(&mut self, pairs: &[(K, V)]) {
        let l = self.lines();
        // Claims into an empty table fetch their home lines at every size, as the engine's:
        // state bytes, key line and the value's first line.
        let pf = Some(|h| l.prefetch(h, true, 1));
        hashed_ahead(
            pairs.len(),
            |i| Self::hash(&pairs[i].0),
            pf,
            None::<fn(u64)>,
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
    /// The slot of key `k` of hash `h`, if present: the group of eight state bytes at its
    /// home slot, then slot by slot past it while no empty slot has ended the probe.
    #[inline(always)]
    fn find(&self, l: Lines, h: u64, k: &K) -> Option<usize> {
        let w = full_word(tag_of(h) & BYTE_TAG_MASK);
        let at = h as usize & self.mask;
        let (mut m, empty) = self.group(l, at, w);
        if empty != 0 {
            m &= (1 << empty.trailing_zeros()) - 1;
        }
        while m != 0 {
            let s = (at + m.trailing_zeros() as usize) & self.mask;
            if self.key(l, s) == *k {
                return Some(s);
            }
            m &= m - 1;
        }
        if empty != 0 {
            return None;
        }
        let mut s = at + 8;
        while self.states[s & self.mask] != 0 {
            if self.states[s & self.mask] == state_byte(w) && self.key(l, s & self.mask) == *k {
                return Some(s & self.mask);
            }
            s += 1;
        }
        None
    }

    /// What a lookup of keys mostly present (`hits`) or mostly absent fetches ahead, as the
    /// engine decides: for hits, nothing in a table of at most
    /// [`flash_map_cpu::cached_bytes`], else the home lines, or [`Plan::Found`] for a key and
    /// value (up to `TUNING.value_prefetch_bytes`) larger than a line; for absent keys,
    /// nothing while the state bytes fit a quarter of [`flash_map_cpu::cached_state_bytes`],
    /// else the home state bytes.
    fn lookup_plan(&self, hits: bool) -> Plan {
        if !hits {
            return if self.mask < flash_map_cpu::cached_state_bytes() / 4 {
                Plan::Nothing
            } else {
                Plan::Home { keys: false, values: 0 }
            };
        }
        if self.bytes() <= flash_map_cpu::cached_bytes() {
            return Plan::Nothing;
        }
        let values = size_of::<V>().min(flash_map_core::tuning::TUNING.value_prefetch_bytes);
        if size_of::<K>() + values > 64 {
            Plan::Found { values }
        } else {
            Plan::Home { keys: true, values }
        }
    }
    /// [`Plan::Found`]'s second stage for hash `h`: the key line and the first `values`
    /// bytes of the value of the first slot of its home group whose fingerprint matches
    /// (none where the group crosses the table's end, or none matches).
    #[inline(always)]
    fn fetch_match(&self, l: Lines, h: u64, values: usize) {
        let at = h as usize & self.mask;
        if at + GROUP > self.mask + 1 {
            return;
        }
        let (m, _) = self.group(l, at, full_word(tag_of(h) & BYTE_TAG_MASK));
        if m != 0 {
            let s = at + m.trailing_zeros() as usize;
            fetch(l.keys.wrapping_add(s * l.key_stride));
            fetch_lines(l.values.wrapping_add(s * l.value_stride), values);
        }
    }
    /// Looks up `keys` into `out` (cleared first), with the engine's prefetch for keys that
    /// are mostly present (`hits`) or mostly absent (as the engine decides: see `lookup_plan`).
    pub fn get_all(&self, keys: &[K], out: &mut Vec<Option<V>>, hits: bool) {
        out.clear();
        let kept = out.capacity();
        out.reserve_exact(keys.len());
        if out.capacity() != kept {
            // Fresh memory, prepared as the engine prepares its results.
            flash_map_cpu::prepare_results(out.as_mut_ptr(), keys.len() * size_of::<Option<V>>(), false);
        }
        let l = self.lines();
        let plan = self.lookup_plan(hits);
        let first = match plan {
            Plan::Nothing => None,
            Plan::Home { keys, values } => Some((keys, values)),
            Plan::Found { .. } => Some((false, 0)),
        }
        .map(|(keys, values)| move |h| l.prefetch(h, keys, values));
        let second = match plan {
            Plan::Found { values } => Some(move |h| self.fetch_match(l, h, values)),
            _ => None,
        };
        let res = out.spare_capacity_mut();
        hashed_ahead(
            keys.len(),
            |i| Self::hash(&keys[i]),
            first,
            second,
            |i, h| {
                res[i].write(self.find(l, h, &keys[i]).map(|s| self.value(l, s)));
            },
        );
        // SAFETY: the loop wrote every one of the `keys.len()` results (reserved above).
        unsafe { out.set_len(keys.len()) };
    }

    /// Removes `keys`, each found key's slot becoming a tombstone, with the engine's prefetch
    /// of the home state and key lines (in a table that the L2 cache does not hold easily);
    /// returns how many were found.
    pub fn remove_all(&mut self, keys: &[K]) -> usize {
        let l = self.lines();
        let pf = (self.bytes() > flash_map_cpu::cached_bytes()).then_some(|h| l.prefetch(h, true, 0));
        let mut n = 0;
        hashed_ahead(
            keys.len(),
            |i| Self::hash(&keys[i]),
            pf,
            None::<fn(u64)>,
            |i, h| {
                if let Some(s) = self.find(l, h, &keys[i]) {
                    self.states[s] = state_byte(TOMBSTONE);
                    n += 1;
                }
            },
        );
        n
    }
}

fn bytemuck_bytes<K: Gen>(k: &K) -> &[u8] {
    // SAFETY: a Pod key is plain bytes.
    unsafe { std::slice::from_raw_parts(k as *const K as *const u8, size_of::<K>()) }
}

#[cfg(test)]
mod tests {
    use super::Floor;
    use crate::{data, Gen};

    /// The floor against `std::collections::HashMap`: every key found with its value, no
    /// absent key found, every key removed once and then gone; for a table whose groups wrap
    /// at its end (a few slots) and a larger one, for `u64` pairs (records) and W1's pairs
    /// (two arrays).
    fn model<K: Gen, V: Gen>(n: usize) {
        let d = data::<K, V>(n);
        let want: std::collections::HashMap<K, V> = d.pairs.iter().copied().collect();
        let mut f = Floor::<K, V>::new(n);
        f.insert_all(&d.pairs);
        let mut out = Vec::new();
        f.get_all(&d.keys, &mut out, true);
        assert!(d.keys.iter().zip(&out).all(|(k, v)| want.get(k) == v.as_ref()), "a hit went wrong");
        f.get_all(&d.absent, &mut out, false);
        assert!(out.iter().all(Option::is_none), "an absent key was found");
        assert_eq!(f.remove_all(&d.keys[..n / 2]), n / 2);
        assert_eq!(f.remove_all(&d.keys[..n / 2]), 0, "removed keys were found again");
        f.get_all(&d.keys, &mut out, true);
        for (i, (k, v)) in d.keys.iter().zip(&out).enumerate() {
            let expect = if i < n / 2 { None } else { want.get(k) };
            assert!(expect == v.as_ref(), "key {i} after the removals");
        }
    }

    #[test]
    fn the_floor_keeps_what_a_map_keeps() {
        model::<u64, u64>(3);
        model::<u64, u64>(5000);
        model::<[u8; 32], [u8; 128]>(7);
        model::<[u8; 32], [u8; 128]>(2000);
    }
}
