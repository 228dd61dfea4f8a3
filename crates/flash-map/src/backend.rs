//! [`Backend`] and the engine behind a map.

use flash_map_core::{BulkEngine, KeyHasher, Ledger, TableLayout};
use flash_map_cpu::{CpuTable, Exec};

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

/// The engine a map drives: a table of one backend, all driven through the
/// [`BulkEngine`] contract (see `dispatch!`).
// One engine per map: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Engine {
    Cpu(CpuTable),
    #[cfg(feature = "cuda")]
    Cuda(flash_map_cuda::CudaTable),
}

/// Runs `$body` with `$t` bound to the map's engine, whichever it is, converting its error:
/// `dispatch!(self.engine, t => t.insert(&b))`. The one place that names the engines; an
/// operation of the [`BulkEngine`] contract needs no code here.
macro_rules! dispatch {
    ($engine:expr, $t:ident => $body:expr) => {
        $crate::backend::dispatch!(@raw $engine, $t => $body.map_err($crate::FlashMapError::from))
    };
    (@raw $engine:expr, $t:ident => $body:expr) => {
        match $engine {
            $crate::backend::Engine::Cpu($t) => $body,
            #[cfg(feature = "cuda")]
            $crate::backend::Engine::Cuda($t) => $body,
        }
    };
}
pub(crate) use dispatch;

#[cfg(feature = "cuda")]
impl From<flash_map_cuda::CudaError> for FlashMapError {
    fn from(e: flash_map_cuda::CudaError) -> Self {
        use flash_map_cuda::CudaError as C;
        match e {
            C::Refused(r) => r.into(),
            C::HostAlloc { bytes } | C::DeviceAlloc { bytes } => FlashMapError::AllocationFailed { bytes },
            other => FlashMapError::Cuda(other.to_string()),
        }
    }
}

/// The stream a Cuda map is to queue its work on (`None`: a new one of its own); nothing
/// without the `cuda` feature.
#[cfg(feature = "cuda")]
pub(crate) type StreamArg = Option<std::sync::Arc<flash_map_cuda::cudarc::driver::CudaStream>>;
/// The stream a Cuda map is to queue its work on; nothing without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
#[derive(Clone, Debug, Default)]
pub(crate) struct StreamArg;

impl Engine {
    /// Makes an engine of `backend`, which must be compiled in; a Cuda engine queues its work
    /// on `stream`.
    pub(crate) fn new(
        backend: Backend,
        layout: TableLayout,
        hash: KeyHasher,
        device_id: usize,
        stream: StreamArg,
    ) -> Result<Engine> {
        let _ = (device_id, &stream);
        match backend {
            #[cfg(feature = "cuda")]
            Backend::Cuda => Ok(Engine::Cuda(flash_map_cuda::CudaTable::on_stream(layout, hash, device_id, stream)?)),
            #[cfg(feature = "rayon")]
            Backend::Rayon => Ok(Engine::Cpu(CpuTable::new(layout, hash, Exec::Rayon)?)),
            Backend::Serial => Ok(Engine::Cpu(CpuTable::new(layout, hash, Exec::Serial)?)),
            #[allow(unreachable_patterns)]
            other => Err(FlashMapError::BackendUnavailable { backend: other, reason: "not compiled in".into() }),
        }
    }

    /// The engine's table layout.
    pub(crate) fn layout(&self) -> TableLayout {
        dispatch!(@raw self, t => *t.layout())
    }

    /// Live entries and tombstones.
    pub(crate) fn ledger(&self) -> Ledger {
        dispatch!(@raw self, t => t.ledger())
    }

    /// The hash strategy with its key.
    pub(crate) fn hasher(&self) -> KeyHasher {
        dispatch!(@raw self, t => t.hasher())
    }
}
