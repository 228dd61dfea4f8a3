//! [`Backend`] and the engine behind a map.

use flash_map_core::{Batch, KeyHasher, TableLayout};
use flash_map_cpu::{CounterKind, CpuTable, Exec};

use crate::error::{FlashMapError, Result};

/// Where a map's bulk operations run.
///
/// ```
/// use flash_map::{Backend, FlashMap};
/// let m: FlashMap<u64, u64> = FlashMap::builder(10).backend(Backend::Serial).build()?;
/// assert_eq!(m.backend(), Backend::Serial);
/// assert_eq!(Backend::Serial.to_string(), "Serial");
/// assert!(Backend::compiled().contains(&Backend::Serial));
/// # Ok::<(), flash_map::FlashMapError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// CUDA kernels on an NVIDIA GPU (feature `cuda`).
    Cuda,
    /// All CPU cores through rayon (feature `rayon`).
    Rayon,
    /// One CPU core (feature `cpu-fallback`, on by default).
    Serial,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Cuda => "Cuda",
            Backend::Rayon => "Rayon",
            Backend::Serial => "Serial",
        })
    }
}

impl Backend {
    /// Whether this backend is compiled into this build.
    pub const fn is_compiled(self) -> bool {
        match self {
            Backend::Cuda => cfg!(feature = "cuda"),
            Backend::Rayon => cfg!(feature = "rayon"),
            Backend::Serial => cfg!(feature = "cpu-fallback"),
        }
    }

    /// The backends compiled in, in order of preference.
    pub fn compiled() -> Vec<Backend> {
        [Backend::Cuda, Backend::Rayon, Backend::Serial].into_iter().filter(|b| b.is_compiled()).collect()
    }
}

/// The engine a map drives.
// One engine per map: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Engine {
    Cpu(CpuTable),
    #[cfg(feature = "cuda")]
    Cuda(flash_map_cuda::CudaTable),
}

#[cfg(feature = "cuda")]
impl From<flash_map_cuda::CudaError> for FlashMapError {
    fn from(e: flash_map_cuda::CudaError) -> Self {
        use flash_map_cuda::CudaError as C;
        match e {
            C::TableFull { len, new, capacity } => FlashMapError::TableFull { len, new, capacity },
            C::Collisions { keys } => FlashMapError::HashCollisions { keys },
            C::HostAlloc { bytes } | C::DeviceAlloc { bytes } => FlashMapError::AllocationFailed { bytes },
            other => FlashMapError::Cuda(other.to_string()),
        }
    }
}

impl Engine {
    /// Makes an engine of `backend`, which must be compiled in.
    pub(crate) fn new(backend: Backend, layout: TableLayout, hash: KeyHasher, device_id: usize) -> Result<Engine> {
        let _ = device_id;
        match backend {
            #[cfg(feature = "cuda")]
            Backend::Cuda => Ok(Engine::Cuda(flash_map_cuda::CudaTable::new(layout, hash, device_id)?)),
            #[cfg(feature = "rayon")]
            Backend::Rayon => Ok(Engine::Cpu(CpuTable::new(layout, hash, Exec::Rayon)?)),
            Backend::Serial => Ok(Engine::Cpu(CpuTable::new(layout, hash, Exec::Serial)?)),
            #[allow(unreachable_patterns)]
            other => Err(FlashMapError::BackendUnavailable { backend: other, reason: "not compiled in".into() }),
        }
    }

    pub(crate) fn layout(&self) -> TableLayout {
        match self {
            Engine::Cpu(t) => *t.layout(),
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => *t.layout(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Engine::Cpu(t) => t.len(),
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => t.len(),
        }
    }

    pub(crate) fn tombstones(&self) -> usize {
        match self {
            Engine::Cpu(t) => t.tombstones(),
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => t.tombstones(),
        }
    }

    pub(crate) fn insert(&mut self, b: &Batch<'_>) -> Result<usize> {
        match self {
            Engine::Cpu(t) => Ok(t.insert(b)?),
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => Ok(t.insert(b)?),
        }
    }

    pub(crate) fn insert_new(&mut self, b: &Batch<'_>, out: &mut [bool]) -> Result<usize> {
        match self {
            Engine::Cpu(t) => Ok(t.insert_new(b, out)?),
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => Ok(t.insert_new(b, out)?),
        }
    }

    pub(crate) fn add(&mut self, b: &Batch<'_>, kind: CounterKind) -> Result<usize> {
        match self {
            Engine::Cpu(t) => Ok(t.add(b, kind)?),
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => {
                let wide = matches!(kind, CounterKind::U64);
                Ok(t.add(b, wide)?)
            }
        }
    }

    /// Looks up `b`, calling `put(i, value)` once per position.
    pub(crate) fn get<F: Fn(usize, Option<*const u8>) + Sync>(&self, b: &Batch<'_>, put: &F) -> Result<()> {
        // Generic, not `dyn`: the per-key store inlines into the engine's loop.
        struct Sink<'a, F>(&'a F);
        impl<F: Fn(usize, Option<*const u8>) + Sync> flash_map_cpu::GetSink for Sink<'_, F> {
            unsafe fn put(&self, i: usize, v: Option<*const u8>) {
                (self.0)(i, v)
            }
        }
        match self {
            Engine::Cpu(t) => {
                t.get(b, &Sink(put));
                Ok(())
            }
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => {
                let vs = t.layout().value_size;
                // Filling the caller's vector is host work (page faults included): spread it
                // over the cores when rayon is compiled in.
                #[cfg(feature = "rayon")]
                let exec = Exec::Rayon;
                #[cfg(not(feature = "rayon"))]
                let exec = Exec::Serial;
                Ok(t.get_chunks(b, |first, found, vals| {
                    exec.for_each(found.len(), |j| {
                        put(first + j, (found[j] != 0).then(|| vals[j * vs..].as_ptr()));
                    })
                })?)
            }
        }
    }

    pub(crate) fn contains(&self, b: &Batch<'_>, out: &mut [bool]) -> Result<()> {
        match self {
            Engine::Cpu(t) => {
                t.contains(b, out);
                Ok(())
            }
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => Ok(t.contains(b, out)?),
        }
    }

    pub(crate) fn remove(&mut self, b: &Batch<'_>) -> Result<usize> {
        match self {
            Engine::Cpu(t) => Ok(t.remove(b)?),
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => Ok(t.remove(b)?),
        }
    }

    pub(crate) fn for_each_entry(&self, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        match self {
            Engine::Cpu(t) => {
                t.for_each_entry(f);
                Ok(())
            }
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => Ok(t.for_each_entry(f)?),
        }
    }

    pub(crate) fn clear(&mut self) -> Result<()> {
        match self {
            Engine::Cpu(t) => {
                t.clear();
                Ok(())
            }
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => Ok(t.clear()?),
        }
    }

    /// Host bytes of the CPU engines' working buffers (0 on Cuda).
    pub(crate) fn buffer_bytes(&self) -> usize {
        match self {
            Engine::Cpu(t) => t.buffer_bytes(),
            #[cfg(feature = "cuda")]
            Engine::Cuda(_) => 0,
        }
    }

    /// Frees the CPU engines' working buffers (nothing on Cuda).
    pub(crate) fn release_buffers(&mut self) {
        match self {
            Engine::Cpu(t) => t.release_buffers(),
            #[cfg(feature = "cuda")]
            Engine::Cuda(_) => {}
        }
    }

    /// Rehashes into `layout` (same or larger); on failure the engine is unchanged.
    pub(crate) fn rebuild(&mut self, layout: TableLayout) -> Result<()> {
        let hash = self.hasher();
        self.rebuild_with(layout, hash)
    }

    /// Rehashes into `layout` with `hash` from now on; on failure the engine is unchanged.
    pub(crate) fn rebuild_with(&mut self, layout: TableLayout, hash: KeyHasher) -> Result<()> {
        match self {
            Engine::Cpu(t) => Ok(t.rebuild_with(layout, hash)?),
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => Ok(t.rebuild_with(layout, hash)?),
        }
    }

    /// Sum and maximum of the slots that lookups of `keys` visit.
    pub(crate) fn probe_lengths(&self, keys: &[u8]) -> Result<(u64, usize)> {
        match self {
            Engine::Cpu(t) => Ok(t.probe_lengths(keys)),
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => Ok(t.probe_lengths(keys)?),
        }
    }

    /// The hash strategy with its key.
    pub(crate) fn hasher(&self) -> KeyHasher {
        match self {
            Engine::Cpu(t) => t.hasher(),
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => t.hasher(),
        }
    }
}
