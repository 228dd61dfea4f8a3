//! [`Shard`]: one worker's [`FlashMap`], on that worker's best backend, with snapshots by
//! worker index and a handshake that checks every worker holds the same types.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use flash_map::{Backend, FlashMap, FlashMapBuilder, HashStrategy, Pod};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::InputHandle;
use timely::worker::Worker;

use crate::cluster::WorkerCtx;
use crate::error::{Error, Result};

/// Snapshot file header: magic, format version, then index, peers, key size, value size.
const SNAP_MAGIC: [u8; 8] = *b"FMSHARD\0";
const SNAP_VERSION: u32 = 1;

/// One worker's shard of a distributed map: a [`FlashMap`] holding the keys that
/// [`flash_map::shard_of`] routes to this worker. The operators of [`crate::FlashOps`] apply
/// batches to it; [`with_map`](Self::with_map) reads it directly.
///
/// Cloning a `Shard` clones a handle to the same map (workers never share one).
pub struct Shard<K, V> {
    inner: Rc<Inner<K, V>>,
}

impl<K, V> Clone for Shard<K, V> {
    fn clone(&self) -> Self {
        Shard { inner: Rc::clone(&self.inner) }
    }
}

struct Inner<K, V> {
    map: RefCell<FlashMap<K, V>>,
    #[cfg(feature = "rayon")]
    pool: Option<rayon::ThreadPool>,
    index: usize,
    peers: usize,
    error: RefCell<Option<Error>>,
}

/// Options for the shards of a job: each worker builds its own with the same options.
#[derive(Clone, Debug)]
pub struct ShardBuilder<K, V> {
    capacity: usize,
    hash: Option<HashStrategy>,
    max_load_factor: Option<f64>,
    auto_grow: bool,
    backend: Option<Backend>,
    threads: Option<usize>,
    _types: std::marker::PhantomData<fn() -> (K, V)>,
}

impl<K: Pod + Send + Sync, V: Pod + Send + Sync> ShardBuilder<K, V> {
    /// Shards that start with room for `capacity` entries each and grow as needed.
    pub fn new(capacity: usize) -> Self {
        ShardBuilder {
            capacity,
            hash: None,
            max_load_factor: None,
            auto_grow: true,
            backend: None,
            threads: None,
            _types: std::marker::PhantomData,
        }
    }

    /// The table's hash strategy (see [`FlashMapBuilder::hash_strategy`]).
    pub fn hash_strategy(mut self, hash: HashStrategy) -> Self {
        self.hash = Some(hash);
        self
    }

    /// The table's maximum load factor (see [`FlashMapBuilder::max_load_factor`]).
    pub fn max_load_factor(mut self, lf: f64) -> Self {
        self.max_load_factor = Some(lf);
        self
    }

    /// Grow when a timestamp's batch does not fit (default true). With growth off, such a
    /// batch leaves the shard unchanged and is reported by [`Shard::take_error`].
    pub fn auto_grow(mut self, on: bool) -> Self {
        self.auto_grow = on;
        self
    }

    /// Use exactly this backend on every worker instead of choosing (see [`Self::build`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Threads of each worker's rayon engine (default: the process's cores divided by its
    /// workers; 1 means the serial engine).
    pub fn threads_per_worker(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// Builds this worker's shard, then checks with every other worker (within the
    /// context's handshake timeout) that they built shards of the same key and value sizes
    /// and that none failed: a failure anywhere is an error on every worker, so that no
    /// worker goes on to wait for one that gave up.
    ///
    /// The backend, unless [`backend`](Self::backend) names one: with the `cuda` feature
    /// and GPUs in this node, worker *i*'s shard lives on GPU *i* mod (number of GPUs);
    /// otherwise a rayon engine on this worker's share of the process's cores
    /// (`cores / workers in the process`), or the serial engine when that share is one
    /// core. Workers never all spread over every core.
    pub fn build(self, worker: &mut Worker, ctx: &WorkerCtx) -> Result<Shard<K, V>> {
        let (b, threads) = self.map_builder(ctx);
        let map = b.build().map_err(Error::from);
        handshake::<K, V>(worker, ctx, map.as_ref().err())?;
        Ok(Shard::new(map?, threads, ctx))
    }

    /// Like [`build`](Self::build), then fills the shard from the snapshot this worker's
    /// index saved in `dir` with [`Shard::save`]. Fails with [`Error::Snapshot`] when the
    /// file is missing, was written by a job with another number of workers, or holds
    /// other key or value sizes; when another worker's load fails, this one fails too, with
    /// [`Error::Remote`].
    pub fn load(self, worker: &mut Worker, ctx: &WorkerCtx, dir: &Path) -> Result<Shard<K, V>> {
        let (b, threads) = self.map_builder(ctx);
        let map = Self::read_snapshot(b, ctx, dir);
        handshake::<K, V>(worker, ctx, map.as_ref().err())?;
        Ok(Shard::new(map?, threads, ctx))
    }

    fn read_snapshot(b: FlashMapBuilder<K, V>, ctx: &WorkerCtx, dir: &Path) -> Result<FlashMap<K, V>> {
        let path = snapshot_path(dir, ctx.index, ctx.peers);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Snapshot { path, reason: missing_reason(dir, ctx.peers) })
            }
            Err(e) => return Err(Error::Snapshot { path, reason: e.to_string() }),
        };
        let mut r = BufReader::new(file);
        let mut h = [0u8; 28];
        r.read_exact(&mut h).map_err(|e| Error::Snapshot { path: path.clone(), reason: format!("no header: {e}") })?;
        let word = |i: usize| u32::from_le_bytes([h[8 + 4 * i], h[9 + 4 * i], h[10 + 4 * i], h[11 + 4 * i]]) as usize;
        let bad = |reason: String| Error::Snapshot { path: path.clone(), reason };
        if h[..8] != SNAP_MAGIC {
            return Err(bad("not a flash-map-timely shard snapshot".into()));
        }
        if word(0) != SNAP_VERSION as usize {
            return Err(bad(format!("format version {} (this build reads {SNAP_VERSION})", word(0))));
        }
        if (word(1), word(2)) != (ctx.index, ctx.peers) {
            return Err(bad(format!(
                "it is shard {} of {}, this worker is {} of {}",
                word(1),
                word(2),
                ctx.index,
                ctx.peers
            )));
        }
        let (ks, vs) = (std::mem::size_of::<K>(), std::mem::size_of::<V>());
        if (word(3), word(4)) != (ks, vs) {
            return Err(bad(format!(
                "it holds {}-byte keys and {}-byte values; this job's shard holds {ks}-byte keys and {vs}-byte values",
                word(3),
                word(4)
            )));
        }
        b.load(r).map_err(|e| bad(e.to_string()))
    }

    fn map_builder(&self, ctx: &WorkerCtx) -> (FlashMapBuilder<K, V>, usize) {
        let mut b = FlashMapBuilder::new(self.capacity).auto_grow(self.auto_grow);
        if let Some(h) = self.hash {
            b = b.hash_strategy(h);
        }
        if let Some(lf) = self.max_load_factor {
            b = b.max_load_factor(lf);
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = self.threads.unwrap_or((cores / ctx.threads.max(1)).max(1));
        if let Some(backend) = self.backend {
            return (b.backend(backend), threads);
        }
        if let Some(gpus) = gpus().filter(|&g| g > 0) {
            let device = ctx.index % gpus;
            log::info!("flash-map-timely: worker {} uses GPU {device} of {gpus}", ctx.index);
            return (b.backend(Backend::Cuda).device_id(device), 1);
        }
        if threads >= 2 && Backend::Rayon.is_compiled() {
            (b.backend(Backend::Rayon), threads)
        } else {
            (b.backend(Backend::Serial), 1)
        }
    }
}

/// GPUs this process can use (`None` without the `cuda` feature), found once per process.
fn gpus() -> Option<usize> {
    if !Backend::Cuda.is_compiled() {
        return None;
    }
    static GPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    Some(*GPUS.get_or_init(|| {
        (0..64)
            .take_while(|&d| FlashMapBuilder::<u8, u8>::new(1).backend(Backend::Cuda).device_id(d).build().is_ok())
            .count()
    }))
}

fn snapshot_path(dir: &Path, index: usize, peers: usize) -> PathBuf {
    dir.join(format!("shard-{index:05}-of-{peers:05}.fmshard"))
}

/// Why this worker's snapshot is missing: other job shapes' files, or none at all.
fn missing_reason(dir: &Path, peers: usize) -> String {
    let mut others: Vec<usize> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let of = name.strip_prefix("shard-")?.strip_suffix(".fmshard")?.split("-of-").nth(1)?;
            of.parse::<usize>().ok()
        })
        .filter(|&p| p != peers)
        .collect();
    others.sort_unstable();
    others.dedup();
    if others.is_empty() {
        format!("no snapshot of a {peers}-worker job here; save one with Shard::save first")
    } else {
        format!(
            "the snapshots here were saved by a job of {others:?} workers, this job has {peers}; \
             restart with that many workers (shards are not re-split)"
        )
    }
}

/// A worker's handshake: its index, key size, value size, the job's worker count, and
/// why it could not build its shard, if it could not.
type Greeting = (u32, u64, u64, u32, Option<String>);

/// Every worker sends its greeting to every other and waits for theirs, so that a job
/// whose workers disagree on the types, or one of whose workers failed to build its shard,
/// fails at once on every worker, instead of misreading bytes or waiting forever later.
fn handshake<K: Pod, V: Pod>(worker: &mut Worker, ctx: &WorkerCtx, failed: Option<&Error>) -> Result<()> {
    let mine: Greeting = (
        ctx.index as u32,
        size_of::<K>() as u64,
        size_of::<V>() as u64,
        ctx.peers as u32,
        failed.map(|e| e.to_string()),
    );
    let got: Rc<RefCell<Vec<Greeting>>> = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&got);
    let mut input = InputHandle::new();
    worker.dataflow::<u64, _, _>(|scope| {
        input.to_stream(scope).sink(
            Exchange::new(|m: &(u32, Greeting)| m.0 as u64),
            "FlashMapHandshake",
            move |(i, _)| {
                i.for_each(|_, data| sink.borrow_mut().extend(data.drain(..).map(|(_, m)| m)));
            },
        );
    });
    for dest in 0..ctx.peers as u32 {
        input.send((dest, mine.clone()));
    }
    input.close();
    let deadline = Instant::now() + ctx.handshake_timeout;
    while got.borrow().len() < ctx.peers {
        if Instant::now() >= deadline {
            return Err(Error::Handshake(format!(
                "worker {} heard from {} of {} workers within {:?}; are all processes running?",
                ctx.index,
                got.borrow().len(),
                ctx.peers,
                ctx.handshake_timeout
            )));
        }
        worker.step_or_park(Some(std::time::Duration::from_millis(10)));
    }
    let mut got = got.borrow().clone();
    got.sort_by_key(|g| g.0);
    for (idx, ks, vs, peers, _) in &got {
        if (*ks, *vs, *peers) != (mine.1, mine.2, mine.3) {
            return Err(Error::Handshake(format!(
                "worker {idx} holds {ks}-byte keys and {vs}-byte values in a job of {peers} workers; \
                 worker {} holds {}-byte keys and {}-byte values in a job of {}: run the same program everywhere",
                ctx.index, mine.1, mine.2, mine.3
            )));
        }
    }
    if failed.is_some() {
        // The caller returns this worker's own failure, with its type.
        return Ok(());
    }
    match got.iter().find_map(|g| Some((g.0, g.4.as_ref()?))) {
        Some((idx, why)) => Err(Error::Remote(format!("worker {idx} could not build its shard: {why}"))),
        None => Ok(()),
    }
}

impl<K: Pod + Send + Sync, V: Pod + Send + Sync> Shard<K, V> {
    fn new(map: FlashMap<K, V>, threads: usize, ctx: &WorkerCtx) -> Self {
        #[cfg(feature = "rayon")]
        let pool = (map.backend() == Backend::Rayon)
            .then(|| rayon::ThreadPoolBuilder::new().num_threads(threads).build().ok())
            .flatten();
        #[cfg(not(feature = "rayon"))]
        let _ = threads;
        log::debug!("flash-map-timely: worker {} shard on {} backend", ctx.index, map.backend());
        Shard {
            inner: Rc::new(Inner {
                map: RefCell::new(map),
                #[cfg(feature = "rayon")]
                pool,
                index: ctx.index,
                peers: ctx.peers,
                error: RefCell::new(None),
            }),
        }
    }

    /// This shard's worker index.
    pub fn index(&self) -> usize {
        self.inner.index
    }

    /// Shards (workers) in the job.
    pub fn peers(&self) -> usize {
        self.inner.peers
    }

    /// The backend this shard runs on.
    pub fn backend(&self) -> Backend {
        self.inner.map.borrow().backend()
    }

    /// Runs `f` on the shard's map, on the shard's own threads.
    pub fn with_map<R: Send>(&self, f: impl FnOnce(&FlashMap<K, V>) -> R + Send) -> R {
        let map = self.inner.map.borrow();
        let map: &FlashMap<K, V> = &map;
        self.in_pool(|| f(map))
    }

    /// Runs `f` mutably on the map (what the operators do).
    pub(crate) fn apply<R: Send>(&self, f: impl FnOnce(&mut FlashMap<K, V>) -> R + Send) -> R {
        let mut map = self.inner.map.borrow_mut();
        let map: &mut FlashMap<K, V> = &mut map;
        self.in_pool(|| f(map))
    }

    fn in_pool<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        #[cfg(feature = "rayon")]
        if let Some(pool) = &self.inner.pool {
            return pool.install(f);
        }
        f()
    }

    /// Records the first failure of an operator (they cannot return errors).
    pub(crate) fn fail(&self, e: Error) {
        log::error!("flash-map-timely: worker {}: {e}", self.inner.index);
        self.inner.error.borrow_mut().get_or_insert(e);
    }

    /// The first error an operator met on this shard, if any (a failed batch leaves the
    /// shard as it was before that batch). Check it when the dataflow has finished.
    pub fn take_error(&self) -> Option<Error> {
        self.inner.error.borrow_mut().take()
    }

    /// Saves the shard to `dir/shard-<index>-of-<peers>.fmshard` (written to a temporary
    /// file and renamed, so a failed save leaves the last snapshot intact). Every worker
    /// saves its own; [`ShardBuilder::load`] restarts a job of the same shape from them.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let path = snapshot_path(dir, self.inner.index, self.inner.peers);
        let tmp = path.with_extension("fmshard.tmp");
        let mut w = BufWriter::new(File::create(&tmp)?);
        w.write_all(&SNAP_MAGIC)?;
        for x in [SNAP_VERSION as usize, self.inner.index, self.inner.peers, size_of::<K>(), size_of::<V>()] {
            w.write_all(&(x as u32).to_le_bytes())?;
        }
        self.inner.map.borrow().save(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}
