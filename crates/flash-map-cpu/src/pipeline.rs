//! The prefetch pipeline every pass over a batch runs through.
//!
//! A batch is known in full before it runs, so the addresses its keys will touch can be
//! computed ahead of use: while key `i` is processed, key `i + D`'s hash is computed and the
//! lines of its home slot (the state word, and per [`Fetch`] its key and value) are
//! fetched. The keys of a batch are independent, so a dozen cache misses stay in flight
//! instead of one dependent chain.
//!
//! Mostly one stage: the home slot's lines are fetched with its state word, as at load
//! factors of at most a half most keys sit in their home slot. Only lookups of records larger
//! than a line ([`Fetch::Found`]) read the fetched state words a few keys later, to fetch the
//! lines of the slot whose fingerprint matches: a second look that costs more instructions
//! than it saves on small records (BENCHMARKS.md, issue 13). Tables that stay cached are not
//! prefetched at all ([`Fetch::Nothing`]).

use std::ops::Range;

use flash_map_core::probe::{home, GROUP};
use flash_map_core::tuning::TUNING;
use flash_map_core::{Batch, KeyHasher};

use crate::exec::prefetch_read;
use crate::slots::RawTable;

/// What the pipeline fetches for a key ahead of its use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetch {
    /// The home slot's state word, per `keys` the first line of its key, and the lines of
    /// the first `values` bytes of its value (0: none). A lookup of keys that are mostly
    /// absent fetches neither (a missing key rarely matches a fingerprint, so its key and
    /// value lines are never read); claims fetch both (they write them when the slot is
    /// free).
    Home { keys: bool, values: usize },
    /// For lookups of large records in large tables: the home state word first, then, a few
    /// keys later, when that word is cached, the key line and the first `values` bytes of the
    /// value of the first slot whose fingerprint matches. A key displaced from its home slot
    /// by a few slots then still finds its lines fetched, where [`Fetch::Home`] would have
    /// fetched its neighbour's (a value of 128 bytes spans two lines of its own).
    Found { values: usize },
    /// Nothing: what the pass reads is small enough to stay cached ([`cached_bytes`]),
    /// where a prefetch costs more than the miss it saves.
    Nothing,
    /// For passes in partition order ([`crate::partition`]) by regions of `1 << shift`
    /// slots: no per-key prefetch, but a [`Sweep`] of the state and key (and, for `values`,
    /// value) lines a region ahead.
    Plain { values: bool, shift: u32 },
}

/// Runs `body(i, hash)` for `i` in `range`, in order, with a software prefetch:
/// [`TUNING`]`.prefetch_hash_ahead` keys ahead, the key is hashed and its home lines are
/// fetched (per `fetch`), and its hash is kept in a ring until its turn.
///
/// # Safety
/// `raw` views the live arrays of the table (as [`crate::CpuTable`]'s `raw()` makes it);
/// `range.end <= b.len()`; `b`'s keys hold `raw.key_size` bytes; for [`Fetch::Found`], nobody
/// writes the table during the pass (it reads state words; otherwise the pipeline only
/// hashes keys and prefetches, which never faults, and reads no table memory).
#[inline(always)]
pub(crate) unsafe fn staged(
    raw: &RawTable,
    hs: KeyHasher,
    b: &Batch<'_>,
    range: Range<usize>,
    fetch: Fetch,
    mut body: impl FnMut(usize, u64),
) {
    if let Fetch::Plain { values, shift } = fetch {
        // SAFETY: `plain`'s `# Safety` is this function's, and the arguments are passed on
        // as they came (`raw` the live table, `range` within the batch, keys of its size).
        unsafe { plain(raw, hs, b, range, values, shift, body) };
        return;
    }
    // SAFETY: `Ahead::new`'s `# Safety` is this function's, and the arguments are passed on
    // as they came; `KS` = 0 and the plan `DYNAMIC` hold for any table and fetch.
    let mut ahead = unsafe { Ahead::<0>::new(raw, hs, b, range.clone(), fetch) };
    for i in range {
        // SAFETY: `i` runs through `range` in order.
        let h = unsafe { ahead.next(i) };
        body(i, h);
    }
}

/// What a pass that reads `bytes` of table (its three arrays) fetches ahead: nothing when
/// those bytes stay cached ([`cached_bytes`]), else `home`.
pub(crate) fn fetch_for(bytes: usize, home: Fetch) -> Fetch {
    if bytes <= cached_bytes() {
        Fetch::Nothing
    } else {
        home
    }
}

/// What a lookup of mostly absent keys, which reads `bytes` of state bytes and nothing else,
/// fetches ahead: nothing when they fit a quarter of the L1 cache ([`cached_state_bytes`]),
/// else the home state bytes. The results the lookup writes pass through the L1 cache too,
/// and evict state bytes that would fill it (BENCHMARKS.md, issue 13, "one state byte per
/// slot").
pub(crate) fn fetch_for_states(bytes: usize) -> Fetch {
    if bytes <= cached_state_bytes() / 4 {
        Fetch::Nothing
    } else {
        Fetch::Home { keys: false, values: 0 }
    }
}

/// Bytes of table a pass may read and need no prefetch: a quarter of one core's L2 cache
/// as Linux reports it, else [`TUNING`]`.cached_table_bytes`. Public, hidden, only so that
/// the benches' floor prefetches where the engine does.
///
/// A batch rarely finds the table where the last one left it: the caller's own work runs
/// in between. Measured with a hashbrown table's pass between the batches, on a machine with
/// 2 MiB of L2 per core (BENCHMARKS.md, issue 13, "prefetch for tables the L2 cache holds"):
/// hits in `u64` tables of 0.6 and 1.3 MB gained from the prefetch, and only tables of up to
/// about 0.3 MB did not (there, slots of 160 bytes made fetching a key's lines cost as much
/// as it saved).
pub fn cached_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| cache_bytes(2).map_or(TUNING.cached_table_bytes, |l2| l2 / 4))
}

/// Bytes of state bytes a lookup of mostly absent keys may read and need no prefetch, times
/// four (`fetch_for_states`): the L1 data cache's size as Linux reports it, else
/// [`TUNING`]`.cached_state_bytes`. Public and hidden, as [`cached_bytes`]. Such a
/// lookup does little besides loading state words, so even state words that the L2 cache
/// holds gained from being fetched ahead (from 64 KiB of them on, in the same measurement).
pub fn cached_state_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| cache_bytes(1).unwrap_or(TUNING.cached_state_bytes))
}

/// Bytes of table that the last-level cache holds, so that passes over a batch in its own
/// order, with the per-key prefetch, find the lines they fetch there, and a partition (a
/// copy of the batch, and a merge of lookup results) costs more than it saves: half the
/// size of the largest data (or unified) cache of CPU 0 as Linux reports it, as the batch
/// and its results pass through that cache too; 0 where it does not say (then
/// [`TUNING`]`.min_regions` alone decides). See [`CpuTable::partition_shift`](crate::CpuTable).
///
/// A table of 8M `u64` pairs (285 MB) on a machine whose largest cache reads 300 MiB ran
/// its hits slower in batch order than partitioned (BENCHMARKS.md, issue 13, "one state
/// byte per slot").
pub(crate) fn last_level_cache_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| (2..=4).filter_map(cache_bytes).max().unwrap_or(0) / 2)
}

/// The size of the level-`level` data (or unified) cache of CPU 0, from sysfs; `None` where
/// the system does not say (and under Miri, which does not let a program read the host's
/// files).
pub(crate) fn cache_bytes(level: u32) -> Option<usize> {
    cache_sizes().get(level as usize).copied().flatten()
}

/// The sizes of CPU 0's data (or unified) caches by level (1 to 4; index 0 unused), read
/// from sysfs in one scan, the first time a table is made: each scan is dozens of system
/// calls, and the first table's build paid for five of them.
fn cache_sizes() -> &'static [Option<usize>; 5] {
    static SIZES: std::sync::OnceLock<[Option<usize>; 5]> = std::sync::OnceLock::new();
    SIZES.get_or_init(|| {
        let mut sizes = [None; 5];
        if cfg!(miri) {
            return sizes;
        }
        let Ok(dir) = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache") else { return sizes };
        for e in dir.flatten() {
            let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok();
            let Some(level) = read("level").and_then(|l| l.trim().parse::<usize>().ok()) else { continue };
            if level >= sizes.len() || sizes[level].is_some() {
                continue;
            }
            match read("type") {
                Some(t) if t.trim() != "Instruction" => {}
                _ => continue,
            }
            sizes[level] = read("size").and_then(|s| parse_cache_size(&s));
        }
        sizes
    })
}

/// A sysfs cache size (`"2048K"`, `"1M"`, `"512"`) in bytes.
pub(crate) fn parse_cache_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (digits, unit) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1 << 10),
        b'M' => (&s[..s.len() - 1], 1 << 20),
        b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(unit).filter(|&b| b > 0)
}

/// Keys ahead of the one being processed whose hash is computed and home lines fetched.
const D: usize = TUNING.prefetch_hash_ahead;
/// [`Fetch::Found`]'s second stage runs this many keys ahead (by then the first stage's
/// state line has arrived).
const D2: usize = TUNING.prefetch_match_ahead;
/// In a dense table ([`crate::table::dense`]), [`Fetch::Found`]'s third stage runs this
/// many keys ahead: by then the second stage's line of the matching slot's value index has
/// arrived, and the stage reads it to fetch the value's lines.
const D3: usize = D2 / 2;
/// Hashes in flight: a power of two for a cheap index.
const RING: usize = D.next_power_of_two();
// The second stage reads key `i + D2`'s hash from the ring, which holds keys `i..i + D`.
const _: () = assert!(D2 < D && D <= RING);

/// Fetch plans that a pass may be compiled for ([`Ahead`]'s `P`), so that its cursor tests
/// none of the plan's choices per key: bits of what is fetched ahead, or [`DYNAMIC`](plan::DYNAMIC)
/// (the choices are run-time values, tested per key). [`per_plan`] makes the constant.
pub(crate) mod plan {
    /// The choices are tested per key.
    pub(crate) const DYNAMIC: u8 = 0xFF;
    /// Keys are hashed ahead and their home state words fetched.
    pub(crate) const ON: u8 = 1;
    /// The home slot's key line too.
    pub(crate) const KEYS: u8 = 2;
    /// The home slot's value lines too.
    pub(crate) const VALUES: u8 = 4;
    /// The second stage of [`super::Fetch::Found`].
    pub(crate) const FOUND: u8 = 8;
}

/// Evaluates `$body` with the constant `$p` set to the fetch plan `$plan` (a `u8` from
/// [`plan_of`]) when it is one of the plans listed (by default those lookups run with),
/// else to [`plan::DYNAMIC`]: the entry of a pass compiled per plan.
macro_rules! per_plan {
    ($plan:expr, $p:ident => $body:expr) => {
        per_plan!($plan, $p => $body; 0, ON, ON | KEYS, ON | KEYS | VALUES, ON | FOUND)
    };
    ($plan:expr, $p:ident => $body:expr; $($e:expr),*) => {{
        #[allow(unused_imports)]
        use $crate::pipeline::plan::{DYNAMIC, FOUND, KEYS, ON, VALUES};
        match $plan {
            $(x if x == $e => {
                const $p: u8 = $e;
                $body
            })*
            _ => {
                const $p: u8 = DYNAMIC;
                $body
            }
        }
    }};
}
pub(crate) use per_plan;

/// What a cursor over `raw` fetches per `fetch` (not [`Fetch::Plain`]): whether it runs,
/// whether it fetches the key line, the value bytes, and the second stage's value bytes.
#[inline(always)]
fn choices(raw: &RawTable, fetch: Fetch) -> (bool, bool, usize, Option<usize>) {
    match fetch {
        // In a table of small records the value shares its key's line.
        Fetch::Home { keys, values } => (true, keys, if keys && raw.record != 0 { 0 } else { values }, None),
        Fetch::Found { values } => (true, false, 0, Some(values)),
        Fetch::Nothing | Fetch::Plain { .. } => (false, false, 0, None),
    }
}

/// The [`plan`] of a cursor over `raw` that fetches per `fetch`.
pub(crate) fn plan_of(raw: &RawTable, fetch: Fetch) -> u8 {
    let (on, keys, values, found) = choices(raw, fetch);
    (on as u8 * plan::ON)
        | (keys as u8 * plan::KEYS)
        | ((values != 0) as u8 * plan::VALUES)
        | (found.is_some() as u8 * plan::FOUND)
}

/// The prefetch of [`staged`] as a cursor, for loops that keep their body inline: `next(i)`
/// for each `i` of the range in order returns key `i`'s hash and fetches the home lines
/// of key `i + D`.
///
/// It holds its own copies of the table view and the batch view, not references to the
/// caller's: a reference stored in the cursor lets the compiler assume that the pass's
/// writes to the table may change the referenced view, so it would reload the key size
/// (constant in a pass compiled per key size) and the batch's layout for every key.
///
/// `KS` is the key size when the pass is compiled for one (0: the table's), `P` the fetch
/// [`plan`] when it is compiled for one.
pub(crate) struct Ahead<'a, const KS: usize, const P: u8 = { plan::DYNAMIC }> {
    raw: RawTable,
    hs: KeyHasher,
    b: Batch<'a>,
    end: usize,
    keys: bool,
    values: usize,
    /// Whether to fetch at all ([`Fetch::Nothing`]: each key is hashed when its turn comes).
    on: bool,
    /// [`Fetch::Found`]'s second stage: bytes of the matching slot's value to fetch, or
    /// `None`.
    found: Option<usize>,
    ring: [u64; RING],
    /// In a dense table, the slot the second stage found for each key in the ring (or
    /// `u32::MAX`), for the third stage.
    matched: [u32; RING],
}

impl<'a, const KS: usize, const P: u8> Ahead<'a, KS, P> {
    /// The key size: the constant `KS`, or the table's.
    #[inline(always)]
    fn key_size(&self) -> usize {
        if KS != 0 {
            KS
        } else {
            self.raw.key_size
        }
    }

    /// A choice of the cursor: `P`'s `bit` when the pass is compiled for a plan, else the
    /// run-time `choice`.
    #[inline(always)]
    fn chosen(choice: bool, bit: u8) -> bool {
        if P == plan::DYNAMIC {
            choice
        } else {
            P & bit != 0
        }
    }

    /// Whether keys are hashed ahead and fetched.
    #[inline(always)]
    fn on(&self) -> bool {
        Self::chosen(self.on, plan::ON)
    }

    /// Whether the key line is fetched.
    #[inline(always)]
    fn keys(&self) -> bool {
        Self::chosen(self.keys, plan::KEYS)
    }

    /// The value bytes fetched (0: none).
    #[inline(always)]
    fn values(&self) -> usize {
        if Self::chosen(self.values != 0, plan::VALUES) {
            self.values
        } else {
            0
        }
    }

    /// The second stage's value bytes, if it runs.
    #[inline(always)]
    fn found(&self) -> Option<usize> {
        self.found.filter(|_| Self::chosen(true, plan::FOUND))
    }

    /// A cursor over `range` of `b` that fetches per `fetch` (not [`Fetch::Plain`]); hashes
    /// and fetches the range's first keys.
    ///
    /// # Safety
    /// As [`staged`].
    ///
    /// # Panics
    /// If `KS` is neither 0 nor the table's key size, or `P` neither
    /// [`DYNAMIC`](plan::DYNAMIC) nor `fetch`'s plan.
    #[inline(always)]
    pub(crate) unsafe fn new(raw: &RawTable, hs: KeyHasher, b: &Batch<'a>, range: Range<usize>, fetch: Fetch) -> Self {
        assert!(KS == 0 || KS == raw.key_size, "a pass compiled for another key size");
        assert!(P == plan::DYNAMIC || P == plan_of(raw, fetch), "a pass compiled for another fetch plan");
        let (on, keys, values, found) = choices(raw, fetch);
        let (raw, b) = (*raw, *b);
        let mut a =
            Ahead { raw, hs, b, end: range.end, keys, values, on, found, ring: [0; RING], matched: [u32::MAX; RING] };
        if !on {
            return a;
        }
        for i in range.start..(range.start + D).min(range.end) {
            // SAFETY: `i < end <= b.len()` (the contract).
            a.ring[i % RING] = unsafe { ahead(&raw, hs, &b, i, a.key_size(), keys, values) };
        }
        if let Some(v) = found {
            for i in range.start..(range.start + D2).min(range.end) {
                // SAFETY: nobody writes the table during a `Found` pass (the contract).
                a.matched[i % RING] = unsafe { fetch_match(&raw, a.ring[i % RING], v) };
            }
            if raw.is_dense() {
                for i in range.start..(range.start + D3).min(range.end) {
                    // SAFETY: as above; the slot came from the second stage.
                    unsafe { fetch_dense_value(&raw, a.matched[i % RING], v) };
                }
            }
        }
        a
    }

    /// Key `i`'s hash; fetches key `i + D`'s lines.
    ///
    /// # Safety
    /// Called for each `i` of the range given to [`new`](Self::new), in order.
    #[inline(always)]
    pub(crate) unsafe fn next(&mut self, i: usize) -> u64 {
        if !self.on() {
            // SAFETY: `i < end <= b.len()` (`new`'s contract).
            return unsafe { self.hs.hash(self.b.key(i), self.key_size()) };
        }
        let h = self.ring[i % RING];
        if i + D < self.end {
            // SAFETY: `i + D < end <= b.len()` (`new`'s contract).
            self.ring[(i + D) % RING] =
                unsafe { ahead(&self.raw, self.hs, &self.b, i + D, self.key_size(), self.keys(), self.values()) };
        }
        if let Some(v) = self.found() {
            if i + D2 < self.end {
                // SAFETY: as in `new`; key `i + D2`'s hash is in the ring (`D2 < D`).
                self.matched[(i + D2) % RING] = unsafe { fetch_match(&self.raw, self.ring[(i + D2) % RING], v) };
            }
            if self.raw.is_dense() && i + D3 < self.end {
                // SAFETY: as in `new`; key `i + D3`'s slot was found by the second stage
                // `D2 - D3` keys ago.
                unsafe { fetch_dense_value(&self.raw, self.matched[(i + D3) % RING], v) };
            }
        }
        h
    }
}

/// Hashes key `i` of `b` (keys of `ks` bytes) and fetches its home lines: the lines of the
/// first and the last state word of the group of eight that a probe compares at once (the
/// same line, unless the group crosses into the next), per `keys` the first line of the home
/// slot's key, and the lines of the first `values` bytes of its value. Returns the hash.
///
/// Both state lines are fetched without a test: whether a group crosses a line depends on
/// the hash, so a branch on it went the unexpected way for a large share of keys, and its
/// mispredictions cost more than a second prefetch of a line mostly already on its way
/// (BENCHMARKS.md, issue 13, "a branch taken out of the prefetch").
///
/// # Safety
/// `i < b.len()`; `b`'s keys hold `ks` bytes, the table's key size.
#[inline(always)]
unsafe fn ahead(raw: &RawTable, hs: KeyHasher, b: &Batch<'_>, i: usize, ks: usize, keys: bool, values: usize) -> u64 {
    // SAFETY: `i < b.len()`, whose keys hold `ks` bytes (the contract).
    let h = unsafe { hs.hash(b.key(i), ks) };
    let slot = home(h, raw.mask);
    // Prefetches never fault, so the addresses need no bounds (`wrapping_add`).
    prefetch_read(raw.states.wrapping_add(slot));
    prefetch_read(raw.states.wrapping_add(slot + GROUP - 1));
    if keys {
        prefetch_read(raw.keys.wrapping_add(slot * raw.key_stride));
    }
    if values != 0 {
        fetch_value(raw, slot, values);
    }
    h
}

/// Fetches the lines of the first `values` bytes of slot `slot`'s value; in a dense table,
/// whose value lies where the slot's index says, the index's line instead (a claim writes
/// it; a lookup reads it first).
#[inline(always)]
fn fetch_value(raw: &RawTable, slot: usize, values: usize) {
    if raw.is_dense() {
        prefetch_read(raw.index.wrapping_add(slot) as *const u8);
    } else {
        prefetch_lines(raw.values.wrapping_add(slot * raw.value_stride), values);
    }
}

/// [`Fetch::Found`]'s second stage for a key of hash `h`: fetches the key line and the first
/// `values` bytes of the value (in a dense table, the line of the value index) of the first
/// slot of its home group whose fingerprint matches (none when the group crosses the
/// table's end, or none matches). Returns that slot, or `u32::MAX`.
///
/// # Safety
/// `raw` views a table nobody writes meanwhile.
#[inline(always)]
unsafe fn fetch_match(raw: &RawTable, h: u64, values: usize) -> u32 {
    use flash_map_core::slot::full_word;
    use flash_map_core::Slots;
    let slot = home(h, raw.mask);
    if !<flash_map_core::probe::ByteSlots as Slots>::GROUPED || slot + 8 > raw.mask + 1 {
        return u32::MAX;
    }
    // The first matching slot, even past an empty one (where the key cannot lie): a fetch
    // that is rarely needless, for fewer instructions than the test.
    let s = raw.plain();
    // SAFETY: the group lies inside the table (checked), which nobody writes (the contract).
    let cand = unsafe { s.matching(slot, full_word(s.tag(h))) };
    if cand != 0 {
        let t = slot + cand.trailing_zeros() as usize;
        prefetch_read(raw.keys.wrapping_add(t * raw.key_stride));
        fetch_value(raw, t, values);
        // Slot numbers fit a `u32` (`MAX_SLOTS`).
        return t as u32;
    }
    u32::MAX
}

/// [`Fetch::Found`]'s third stage in a dense table: fetches the first `values` bytes of the
/// value of `slot` (from the second stage: a full slot, or `u32::MAX` for none), reading
/// the slot's value index, whose line the second stage fetched.
///
/// # Safety
/// `raw` views a dense table nobody writes meanwhile; `slot` is `u32::MAX` or a full slot.
#[inline(always)]
unsafe fn fetch_dense_value(raw: &RawTable, slot: u32, values: usize) {
    if slot != u32::MAX {
        // SAFETY: a full slot's value index was given when it was claimed: below `vcap`
        // (the contract), and nobody writes it meanwhile.
        prefetch_lines(unsafe { raw.value_ptr(slot as usize) }, values);
    }
}

/// The one-stage loop of [`Fetch::Plain`].
///
/// # Safety
/// As [`staged`].
#[inline(always)]
unsafe fn plain(
    raw: &RawTable,
    hs: KeyHasher,
    b: &Batch<'_>,
    range: Range<usize>,
    values: bool,
    shift: u32,
    mut body: impl FnMut(usize, u64),
) {
    let mut sweep = Sweep::new(raw, b.len(), shift);
    for i in range {
        // SAFETY: `i < end <= b.len()` indexes the batch.
        let h = unsafe { hs.hash(b.key(i), raw.key_size) };
        sweep.step(raw, h, true, values);
        body(i, h);
    }
}

/// Slots a sweep fetches per step: the slots of one line of 4-byte state words, for which it
/// was measured (their state bytes are a quarter of a line).
const SWEEP: usize = TUNING.sweep_slots;

/// The prefetch of the one-stage loops that run a batch in partition order
/// ([`crate::partition`]): a sequential sweep of the table one region ahead of the keys.
///
/// Within a region the keys' home slots are random, so, unaided, the first key to touch
/// each line of a region waits for memory. But the regions come in order: while the keys
/// of region `r` run, the sweep fetches region `r + 1`'s lines front to back, one group of
/// 16 slots (their state bytes, and the key and value bytes of those slots) every
/// [`every`](Self::every) keys, the pace at which the batch itself moves through the
/// table. The lines a key needs are thus fetched about one region before it runs, and no
/// per-key prefetch is needed.
///
/// Measured on 8M `u64` keys (table of 16M slots, regions of 16K slots), the sweep beat a
/// prefetch of each key's home lines 16 keys ahead on absent and present keys alike; a
/// sweep twice as fast was slower, as was no prefetch at all (BENCHMARKS.md, "A sweep one
/// region ahead").
pub(crate) struct Sweep {
    /// The next slot to fetch (a multiple of 16 when regions are: real tables' regions
    /// hold thousands of slots).
    next: usize,
    /// Region of a slot = `slot >> shift`.
    shift: u32,
    /// Keys per group of 16 slots in the batch (at least 1).
    every: usize,
    /// Keys left before the next group.
    count: usize,
}

impl Sweep {
    /// A sweep for a batch of `n` keys in partition order by regions of `1 << shift`
    /// slots.
    pub(crate) fn new(raw: &RawTable, n: usize, shift: u32) -> Self {
        let every = (n.saturating_mul(SWEEP) / (raw.mask + 1)).max(1);
        Sweep { next: 0, shift, every, count: every }
    }

    /// Steps past a key of hash `hash`: every [`every`](Self::every) keys, fetches the next
    /// 16 slots' state line, and (per `keys` and `values`) their key and value bytes, if
    /// they lie in the region after the key's.
    #[inline(always)]
    pub(crate) fn step(&mut self, raw: &RawTable, hash: u64, keys: bool, values: bool) {
        self.count -= 1;
        if self.count != 0 {
            return;
        }
        self.count = self.every;
        let r = home(hash, raw.mask) >> self.shift;
        // A sweep that fell behind (a crowded region) skips to the next region; one ahead
        // (a sparse region) waits.
        self.next = self.next.max((r + 1) << self.shift);
        if self.next >= (r + 2) << self.shift || self.next > raw.mask {
            return;
        }
        let slot = self.next;
        self.next += SWEEP;
        prefetch_read(raw.states.wrapping_add(slot));
        if raw.record != 0 {
            // Records: keys and values lie together.
            if keys || values {
                prefetch_lines(raw.keys.wrapping_add(slot * raw.record), SWEEP * raw.record);
            }
            return;
        }
        if keys {
            prefetch_lines(raw.keys.wrapping_add(slot * raw.key_size), SWEEP * raw.key_size);
        }
        if values {
            prefetch_lines(raw.values.wrapping_add(slot * raw.value_size), SWEEP * raw.value_size);
        }
    }
}

/// Prefetches every line that the `len` bytes from `p` touch (the first line always).
/// Public, hidden, only so that the benches' floor fetches as the engine does.
#[inline(always)]
pub fn prefetch_lines(p: *const u8, len: usize) {
    // The first line always (for `len` 0 a needless fetch, which is harmless: a prefetch
    // never faults), then any others, without a loop for the common single line. Pointer
    // arithmetic, not integers cast back to pointers, so the addresses keep their provenance.
    prefetch_read(p);
    let lead = p as usize & 63;
    let line = p.wrapping_sub(lead);
    let mut off = 64;
    while off < lead + len {
        prefetch_read(line.wrapping_add(off));
        off += 64;
    }
}
