//! The floor of the serial engine's layout, shared by `opcost` and `compare`: a loop as
//! tight as the engine's that touches the same memory in the same order, with none of its
//! bookkeeping. Where a goal of issue 13 is out of reach, the floor against hashbrown shows
//! whether the layout itself puts it there, and the engine against the floor how close it
//! gets.

use std::mem::size_of;

use flash_map_core::slot::{full_word, state_byte, tag_of, BYTE_TAG_MASK, TOMBSTONE};

use flash_map_cpu::prefetch_lines as fetch_lines;

use crate::Gen;

/// The floor of the engine's layout: the same arrays (state words, and keys and values side
/// by side in records, in two arrays, or with dense values behind a per-slot index, as the
/// engine lays out a table of these sizes: `flash_map_cpu::records`,
/// `flash_map_cpu::dense_values`) of the same slot count, allocated by the engine's own allocator,
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
    /// For dense values ([`other`](Self::other)): per slot, the `u32` index of its value in `values`,
    /// which holds the table's capacity of values in the order they came (else empty).
    index: Fresh,
    /// Values written to a dense table so far.
    next: usize,
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
    /// The value indices of a dense table, else null.
    index: *const u8,
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
        if !self.index.is_null() {
            // A dense table's value lies elsewhere: its index's line instead.
            if values != 0 {
                fetch(self.index.wrapping_add(4 * s));
            }
        } else if values != 0 {
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

/// Keys ahead of use at which a dense-value table's lookup fetches the value lines of
/// the slot whose index the second stage fetched.
const VALUE_AHEAD: usize = 4;

/// Fetches the line at `p` into the caches, as the engine fetches one.
#[inline(always)]
fn fetch(p: *const u8) {
    fetch_lines(p, 1);
}

/// Calls `body(i, hash)` for `i` in `0..n` in order, each key hashed once, 16 keys ahead,
/// when `first` is given, which then also gets the hash; `second` (only with `first`) gets
/// it again [`MATCH_AHEAD`] keys ahead, and `third` (likewise) [`VALUE_AHEAD`] keys ahead.
/// One loop, so that `body` has one call site and is inlined (with two, it was called once
/// per key).
#[inline(always)]
fn hashed_ahead(
    n: usize,
    key: impl Fn(usize) -> u64,
    first: Option<impl Fn(u64)>,
    second: Option<impl Fn(u64)>,
    third: Option<impl Fn(u64)>,
    mut body: impl FnMut(usize, u64),
) {
    const D: usize = flash_map_core::tuning::TUNING.prefetch_hash_ahead;
    const { assert!(VALUE_AHEAD < MATCH_AHEAD && MATCH_AHEAD < D) };
    let mut ring = [0u64; D];
    if let Some(pf) = &first {
        for (i, r) in ring.iter_mut().enumerate().take(n) {
            *r = key(i);
            pf(*r);
        }
        if let Some(pf2) = &second {
            ring.iter().take(n.min(MATCH_AHEAD)).for_each(|&h| pf2(h));
        }
        if let Some(pf3) = &third {
            ring.iter().take(n.min(VALUE_AHEAD)).for_each(|&h| pf3(h));
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
                if let Some(pf3) = &third {
                    if i + VALUE_AHEAD < n {
                        pf3(ring[(i + VALUE_AHEAD) % D]);
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
    /// Empty arrays for `n` pairs at the default load factor, laid out as the serial engine
    /// lays out a table of these sizes, from the engine's allocator: records, two arrays,
    /// or dense values ([`flash_map_cpu::dense_values`]).
    pub fn new(n: usize) -> Self {
        Self::made(n, Self::engine_dense(n), false)
    }
    /// The rayon engine's layout for `n` pairs: as [`new`](Self::new)'s, but with records
    /// at every size where key and value fit one (the rayon engine keeps them at every size;
    /// the serial engine only for tables the cache holds). For
    /// [`get_all_par`](Self::get_all_par), the floor of the rayon engine's lookups.
    pub fn rayon(n: usize) -> Self {
        Self::made(n, Self::engine_dense(n), true)
    }
    /// The other value layout than the serial engine's at this size, to measure what it
    /// would gain: dense values where the engine keeps a value per slot, and a value per slot
    /// where it keeps them densely. Dense values: the state bytes and keys per slot as in two
    /// arrays, and, instead of a value per slot, a `u32` index per slot into an array of the
    /// table's capacity of values, written in the order they come (half the value bytes at
    /// the default load factor, for four bytes per slot). A hit reads the index, then the
    /// value: lookups fetch the matching slot's key and index lines, and a few keys later
    /// its value's lines.
    pub fn other(n: usize) -> Self {
        Self::made(n, !Self::engine_dense(n), false)
    }
    /// Whether the serial engine keeps `n` pairs' values densely.
    fn engine_dense(n: usize) -> bool {
        let l = flash_map_core::TableLayout::for_capacity(n, 0.5, size_of::<K>(), size_of::<V>()).unwrap();
        flash_map_cpu::dense_values(&l).is_some()
    }
    /// Arrays for `n` pairs: dense values, or records where the serial engine (or, for
    /// `rayon`, the rayon engine) keeps them, else two arrays.
    fn made(n: usize, dense: bool, rayon: bool) -> Self {
        let l = flash_map_core::TableLayout::for_capacity(n, 0.5, size_of::<K>(), size_of::<V>()).unwrap();
        let record = match (dense, rayon) {
            (true, _) => 0,
            (false, true) => l.record_bytes(64),
            (false, false) => flash_map_cpu::records(&l),
        };
        // The engine's slack for the holes of rayon's claims, where it keeps dense values.
        let dense_values = flash_map_cpu::dense_values(&l).unwrap_or(l.capacity);
        // In the engine's order: state bytes first.
        let states = Fresh::states(l.slots);
        let (keys, values) = if record != 0 {
            (Fresh::bytes(l.slots * record), Fresh::bytes(0))
        } else if dense {
            (Fresh::bytes(l.slots * size_of::<K>()), Fresh::bytes(dense_values * size_of::<V>()))
        } else {
            (Fresh::bytes(l.slots * size_of::<K>()), Fresh::bytes(l.slots * size_of::<V>()))
        };
        let index = Fresh::bytes(if dense { 4 * l.slots } else { 0 });
        Floor { states, keys, values, mask: l.slots - 1, record, index, next: 0, _kv: std::marker::PhantomData }
    }
    fn is_dense(&self) -> bool {
        !self.index.is_empty()
    }
    fn bytes(&self) -> usize {
        self.states.len() + self.keys.len() + self.values.len() + self.index.len()
    }
    fn lines(&self) -> Lines {
        let (keys, record) = (self.keys.as_ptr(), self.record);
        Lines {
            states: self.states.as_ptr(),
            keys,
            values: if record != 0 { keys.wrapping_add(size_of::<K>()) } else { self.values.as_ptr() },
            key_stride: if record != 0 { record } else { size_of::<K>() },
            value_stride: if record != 0 { record } else { size_of::<V>() },
            index: if self.is_dense() { self.index.as_ptr() } else { std::ptr::null() },
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
        // SAFETY: as in `key`; a dense table's full slot holds the index of a value written
        // (below `next`, at most the capacity that `values` holds).
        unsafe {
            let at =
                if l.index.is_null() { s } else { std::ptr::read_unaligned(l.index.add(4 * s) as *const u32) as usize };
            std::ptr::read_unaligned(l.values.add(at * l.value_stride) as *const V)
        }
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
                let at = if l.index.is_null() {
                    s
                } else {
                    assert!(self.next < self.values.len() / size_of::<V>(), "more pairs than the capacity");
                    self.next += 1;
                    // SAFETY: `s <= mask`: inside the index array (4 bytes per slot).
                    unsafe { std::ptr::write_unaligned(l.index.add(4 * s) as *mut u32, (self.next - 1) as u32) };
                    self.next - 1
                };
                // SAFETY: `s <= mask`, and `at` is `s` or below the values' capacity
                // (checked): inside the arrays, written by this thread alone.
                unsafe {
                    std::ptr::write_unaligned(l.keys.add(s * l.key_stride) as *mut K, *k);
                    std::ptr::write_unaligned(l.values.add(at * l.value_stride) as *mut V, *v);
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
        if size_of::<K>() + values > 64 || self.is_dense() {
            Plan::Found { values }
        } else {
            Plan::Home { keys: true, values }
        }
    }
    /// The first slot of the home group of hash `h` whose fingerprint matches, where the
    /// group does not cross the table's end (the slot a lookup's later stages fetch for).
    #[inline(always)]
    fn matching_slot(&self, l: Lines, h: u64) -> Option<usize> {
        let at = h as usize & self.mask;
        if at + GROUP > self.mask + 1 {
            return None;
        }
        let (m, _) = self.group(l, at, full_word(tag_of(h) & BYTE_TAG_MASK));
        (m != 0).then(|| at + m.trailing_zeros() as usize)
    }
    /// [`Plan::Found`]'s second stage for hash `h`: the key line of the
    /// [`matching_slot`](Self::matching_slot), and the first `values` bytes of its value (the
    /// line of its index, in a dense table).
    #[inline(always)]
    fn fetch_match(&self, l: Lines, h: u64, values: usize) {
        if let Some(s) = self.matching_slot(l, h) {
            fetch(l.keys.wrapping_add(s * l.key_stride));
            if l.index.is_null() {
                fetch_lines(l.values.wrapping_add(s * l.value_stride), values);
            } else {
                fetch(l.index.wrapping_add(4 * s));
            }
        }
    }
    /// A dense table's third stage for hash `h`, [`VALUE_AHEAD`] keys before use: the lines
    /// of the first `values` bytes of the value of the [`matching_slot`](Self::matching_slot),
    /// whose index the second stage fetched.
    #[inline(always)]
    fn fetch_value(&self, l: Lines, h: u64, values: usize) {
        if let Some(s) = self.matching_slot(l, h) {
            // SAFETY: `s <= mask`: inside the index array; the index of a slot not yet
            // written is whatever the array holds, and a prefetch never faults.
            let i = unsafe { std::ptr::read_unaligned(l.index.add(4 * s) as *const u32) } as usize;
            fetch_lines(l.values.wrapping_add(i * l.value_stride), values);
        }
    }
    /// Looks up `keys` into `out` (cleared first), with the engine's prefetch for keys that
    /// are mostly present (`hits`) or mostly absent (as the engine decides: see `lookup_plan`).
    pub fn get_all(&self, keys: &[K], out: &mut Vec<Option<V>>, hits: bool) {
        let plan = self.lookup_plan(hits);
        let res = Self::results(keys.len(), out, false);
        self.get_range(keys, res, plan);
        // SAFETY: `get_range` wrote every one of the `keys.len()` results (reserved).
        unsafe { out.set_len(keys.len()) };
    }

    /// [`get_all`](Self::get_all) on rayon's threads, as the rayon engine runs a lookup:
    /// results prepared on all of them (`flash_map_cpu::prepare_results`), then the keys in
    /// tasks of `TUNING.rayon_min_len`, each in order with the same prefetch. Always in
    /// parallel, even for batches that the engine looks up on the calling thread: what two
    /// threads could do with this layout.
    pub fn get_all_par(&self, keys: &[K], out: &mut Vec<Option<V>>, hits: bool) {
        use rayon::prelude::*;
        const TASK: usize = flash_map_core::tuning::TUNING.rayon_min_len;
        let plan = self.lookup_plan(hits);
        let res = Self::results(keys.len(), out, true);
        res.par_chunks_mut(TASK).zip(keys.par_chunks(TASK)).for_each(|(res, keys)| self.get_range(keys, res, plan));
        // SAFETY: the tasks wrote every one of the `keys.len()` results (reserved).
        unsafe { out.set_len(keys.len()) };
    }

    /// `out` cleared, with room for `n` results (fresh memory prepared as the engine
    /// prepares its results, on rayon's threads for `parallel`): the room to write.
    fn results(n: usize, out: &mut Vec<Option<V>>, parallel: bool) -> &mut [std::mem::MaybeUninit<Option<V>>] {
        out.clear();
        let kept = out.capacity();
        out.reserve_exact(n);
        if out.capacity() != kept {
            flash_map_cpu::prepare_results(out.as_mut_ptr(), n * size_of::<Option<V>>(), parallel);
        }
        &mut out.spare_capacity_mut()[..n]
    }

    /// Looks up `keys` in order into `res` (as many), fetching ahead per `plan`.
    fn get_range(&self, keys: &[K], res: &mut [std::mem::MaybeUninit<Option<V>>], plan: Plan) {
        let l = self.lines();
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
        let third = match plan {
            Plan::Found { values } if self.is_dense() => Some(move |h| self.fetch_value(l, h, values)),
            _ => None,
        };
        hashed_ahead(
            keys.len(),
            |i| Self::hash(&keys[i]),
            first,
            second,
            third,
            |i, h| {
                res[i].write(self.find(l, h, &keys[i]).map(|s| self.value(l, s)));
            },
        );
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
    /// (two arrays or dense values), in the serial engine's layout, the other one
    /// ([`Floor::other`]) and the rayon engine's ([`Floor::rayon`]); lookups on one thread
    /// and on rayon's ([`Floor::get_all_par`]) agree.
    fn model<K: Gen, V: Gen>(n: usize) {
        let d = data::<K, V>(n);
        let want: std::collections::HashMap<K, V> = d.pairs.iter().copied().collect();
        for other in [false, true] {
            model_of::<K, V>(n, &d, &want, Some(other));
        }
        model_of::<K, V>(n, &d, &want, None);
    }

    /// The model test of one layout: the serial engine's (`Some(false)`), the other one
    /// (`Some(true)`), or the rayon engine's (`None`).
    fn model_of<K: Gen, V: Gen>(
        n: usize,
        d: &crate::Data<K, V>,
        want: &std::collections::HashMap<K, V>,
        other: Option<bool>,
    ) {
        let mut f = match other {
            Some(true) => Floor::<K, V>::other(n),
            Some(false) => Floor::<K, V>::new(n),
            None => Floor::<K, V>::rayon(n),
        };
        f.insert_all(&d.pairs);
        let mut out = Vec::new();
        f.get_all(&d.keys, &mut out, true);
        let mut par = Vec::new();
        f.get_all_par(&d.keys, &mut par, true);
        assert!(par == out, "the parallel lookup disagrees");
        assert!(d.keys.iter().zip(&out).all(|(k, v)| want.get(k) == v.as_ref()), "a hit went wrong");
        f.get_all(&d.absent, &mut out, false);
        assert!(out.iter().all(Option::is_none), "an absent key was found");
        f.get_all_par(&d.absent, &mut par, false);
        assert!(par.len() == d.absent.len() && par.iter().all(Option::is_none), "an absent key was found in parallel");
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
        // Several tasks of the parallel lookup.
        model::<[u8; 32], [u8; 128]>(3 * flash_map_core::tuning::TUNING.rayon_min_len + 5);
    }
}
