//! [`FlashMapBuilder`]: capacity, hashing, load factor, growth and backend choice.

use std::marker::PhantomData;

use flash_map_core::layout::DEFAULT_MAX_LOAD_FACTOR;
use flash_map_core::{HashStrategy, KeyHasher, TableLayout};

use crate::backend::{Backend, Engine};
use crate::error::{layout_error, FlashMapError, Result};
use crate::FlashMap;

/// Configures and builds a [`FlashMap`].
///
/// ```
/// use flash_map::{FlashMap, HashStrategy};
///
/// let m: FlashMap<[u8; 32], [u8; 64]> = FlashMap::builder(1_000)
///     .hash_strategy(HashStrategy::Murmur3)
///     .max_load_factor(0.75)
///     .auto_grow(true)
///     .force_cpu()
///     .build()?;
/// assert!(m.capacity() >= 1_000);
/// # Ok::<(), flash_map::FlashMapError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FlashMapBuilder<K, V> {
    pub(crate) capacity: usize,
    pub(crate) hash: HashStrategy,
    pub(crate) seed: Option<u128>,
    pub(crate) device_id: usize,
    pub(crate) force_cpu: bool,
    pub(crate) backend: Option<Backend>,
    pub(crate) max_load_factor: f64,
    pub(crate) auto_grow: bool,
    pub(crate) stream: crate::backend::StreamArg,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: bytemuck::Pod + Send + Sync, V: bytemuck::Pod + Send + Sync> FlashMapBuilder<K, V> {
    /// A builder for a map that holds at least `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        FlashMapBuilder {
            capacity,
            hash: HashStrategy::Identity,
            seed: None,
            device_id: 0,
            force_cpu: false,
            backend: None,
            max_load_factor: DEFAULT_MAX_LOAD_FACTOR,
            auto_grow: false,
            stream: Default::default(),
            _types: PhantomData,
        }
    }

    /// On the Cuda backend, queues the map's work on `stream` (a stream of the primary
    /// context of device [`device_id`](Self::device_id), from cudarc's
    /// `CudaContext::new(device_id)`) instead of on a new non-blocking stream of the map's
    /// own (feature `cuda`). Work the caller queues on the same stream is then ordered with
    /// the map's without events. A map on another backend ignores it; a stream of another
    /// context makes `build` fail.
    ///
    /// ```no_run
    /// # use flash_map::{Backend, FlashMap};
    /// use flash_map::cuda::CudaContext;
    /// let stream = CudaContext::new(0)?.new_stream()?;
    /// let map: FlashMap<u64, u64> =
    ///     FlashMap::builder(1 << 20).backend(Backend::Cuda).cuda_stream(stream.clone()).build()?;
    /// assert_eq!(map.cuda_stream()?, stream);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cuda")]
    pub fn cuda_stream(mut self, stream: std::sync::Arc<crate::cuda::CudaStream>) -> Self {
        self.stream = Some(stream);
        self
    }

    /// How keys are hashed (default [`HashStrategy::Identity`]).
    ///
    /// Whatever the strategy, keys with distinct hashes spread over the table like random
    /// keys (every strategy's hash is mixed in all 64 bits). If a batch meets keys
    /// that share their hash (more than
    /// [`COLLISION_LIMIT`](flash_map_core::probe::COLLISION_LIMIT) on one probe), the
    /// map rebuilds itself with a stronger strategy and runs the batch again, logging a
    /// warning: Identity → Murmur3 → SipHash13 (see [`FlashMap::bulk_insert`]).
    pub fn hash_strategy(mut self, hash: HashStrategy) -> Self {
        self.hash = hash;
        self
    }

    /// The 128-bit key of [`HashStrategy::SipHash13`] (ignored by the other strategies).
    /// Without it, each map draws a random key, as std's `HashMap` does; give one to make
    /// the table's layout reproducible. [`FlashMap::save`] stores it, so
    /// [`FlashMap::load`] restores the same table.
    ///
    /// ```
    /// use flash_map::{FlashMap, HashStrategy};
    /// let m: FlashMap<[u8; 16], u64> =
    ///     FlashMap::builder(1000).hash_strategy(HashStrategy::SipHash13).hash_seed(42).build()?;
    /// assert_eq!(m.hash_seed(), Some(42));
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn hash_seed(mut self, seed: u128) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The hasher a map built now gets: the strategy, with its key when keyed.
    pub(crate) fn hasher(&self) -> KeyHasher {
        hasher_for(self.hash, self.seed)
    }

    /// The CUDA device ordinal (default 0).
    pub fn device_id(mut self, device_id: usize) -> Self {
        self.device_id = device_id;
        self
    }

    /// Never use the GPU, even when one is available.
    pub fn force_cpu(mut self) -> Self {
        self.force_cpu = true;
        self
    }

    /// Use exactly this backend; [`build`](Self::build) fails if it cannot be used.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The maximum load factor, in (0, 1) (default 0.5). Validated by `build`.
    pub fn max_load_factor(mut self, lf: f64) -> Self {
        self.max_load_factor = lf;
        self
    }

    /// Grow (rehash into a larger table) when a batch does not fit, instead of failing
    /// with [`FlashMapError::TableFull`] (default false).
    pub fn auto_grow(mut self, on: bool) -> Self {
        self.auto_grow = on;
        self
    }

    pub(crate) fn layout(&self) -> Result<TableLayout> {
        TableLayout::for_capacity(
            self.capacity,
            self.max_load_factor,
            std::mem::size_of::<K>(),
            std::mem::size_of::<V>(),
        )
        .map_err(|e| layout_error(e, self.capacity, self.max_load_factor))
    }

    /// Builds the map on the chosen or best available backend.
    ///
    /// Without [`backend`](Self::backend): Cuda if compiled in and usable (unless
    /// [`force_cpu`](Self::force_cpu)), else Rayon if compiled in, else Serial. Why the GPU
    /// was skipped goes to the `log` facade at `info` level.
    ///
    /// On the CPU backends (Linux), every array of the table from 256 KiB on is committed
    /// here: its pages are faulted in now (in huge pages, from 2 MiB on, while the system
    /// gives them quickly; the rayon backend's arrays from 256 MiB on all its threads, in a
    /// pool of three or more), so that memory the system cannot give is an error from
    /// `build` rather than a fault during the first batch, and that batch does not pay for
    /// the faults. A huge page the system gives slowly (a virtual machine's host may take
    /// tens of milliseconds to supply one) sends the next parts to 4 KiB pages, so that slow
    /// huge pages cost a bounded share of a build. A process that wants none to wait on
    /// either takes its huge pages from those an administrator reserved
    /// ([`use_reserved_huge_pages`](crate::use_reserved_huge_pages)), or turns transparent
    /// huge pages off (`prctl(PR_SET_THP_DISABLE)` on Linux), and its tables then commit in
    /// 4 KiB pages. An array larger than half the available memory (free memory plus the
    /// page cache the kernel can reclaim) is mapped lazily instead. A dropped table's arrays
    /// are kept (32 MiB at most, in all) for the next table of the same shape, which then
    /// only zeroes their state words (the keys and values of empty slots are never read):
    /// rebuilding a table of one size again and again pays for its pages once. A build that
    /// needs that memory gets it back; [`release_spare_memory`](crate::release_spare_memory)
    /// gives it back at once.
    pub fn build(self) -> Result<FlashMap<K, V>> {
        let layout = self.layout()?;
        let backend = self.choose_backend()?;
        let engine = Engine::new(backend, layout, self.hasher(), self.device_id, self.stream)?;
        Ok(FlashMap::from_parts(engine, backend, self.auto_grow))
    }

    fn choose_backend(&self) -> Result<Backend> {
        if let Some(b) = self.backend {
            if !b.is_compiled() {
                let feature = match b {
                    Backend::Cuda => "cuda",
                    Backend::Rayon => "rayon",
                    Backend::Serial => "cpu-fallback",
                };
                return Err(FlashMapError::BackendUnavailable {
                    backend: b,
                    reason: format!("not compiled in; enable the `{feature}` feature of flash-map"),
                });
            }
            if b == Backend::Cuda {
                if let Err(reason) = cuda_usable(self.device_id) {
                    return Err(FlashMapError::BackendUnavailable { backend: b, reason });
                }
            }
            return Ok(b);
        }
        if Backend::Cuda.is_compiled() {
            if self.force_cpu {
                log::info!("flash-map: GPU skipped: force_cpu() was set");
            } else {
                match cuda_usable(self.device_id) {
                    Ok(()) => return Ok(Backend::Cuda),
                    Err(reason) => log::info!("flash-map: GPU skipped: {reason}"),
                }
            }
        } else {
            log::debug!("flash-map: GPU skipped: the `cuda` feature is not enabled");
        }
        if Backend::Rayon.is_compiled() {
            return Ok(Backend::Rayon);
        }
        if Backend::Serial.is_compiled() {
            return Ok(Backend::Serial);
        }
        Err(FlashMapError::BackendUnavailable {
            backend: Backend::Cuda,
            reason: "no GPU could be used and no CPU backend is compiled in; enable the \
                     `cpu-fallback` or `rayon` feature"
                .into(),
        })
    }
}

#[cfg(feature = "cuda")]
fn cuda_usable(device_id: usize) -> std::result::Result<(), String> {
    // Opens the device and loads the kernels (once per process), so a JIT failure also
    // falls back instead of failing later.
    flash_map_cuda::Gpu::get(device_id).map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(not(feature = "cuda"))]
fn cuda_usable(_device_id: usize) -> std::result::Result<(), String> {
    Err("the `cuda` feature is not enabled".into())
}

/// The hasher of `strategy`: keyed with `seed`, or with a fresh random key when the
/// strategy is keyed and no seed is given; unkeyed strategies get seed zero.
pub(crate) fn hasher_for(strategy: HashStrategy, seed: Option<u128>) -> KeyHasher {
    if !strategy.is_keyed() {
        return KeyHasher::plain(strategy);
    }
    let seed = seed.unwrap_or_else(random_seed);
    KeyHasher::new(strategy, [seed as u64, (seed >> 64) as u64])
}

/// A random 128-bit key, from the same source as std's `HashMap` keys (the operating
/// system's random numbers, drawn once per thread, then stepped per map).
fn random_seed() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x666c_6173_682d_6d61);
    let a = h.finish();
    h.write_u64(a);
    (a as u128) | ((h.finish() as u128) << 64)
}
