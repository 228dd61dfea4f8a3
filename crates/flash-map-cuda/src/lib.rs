//! GPU backend of flash-map: the Rust kernels of `kernels-rs`, as committed PTX, launched
//! through the CUDA driver API that cudarc loads at run time.
//!
//! | layer | module | what |
//! |---|---|---|
//! | FFI | `cudarc::driver::{sys, result}` | raw driver calls, each returning `Result` |
//! | device | `device` | driver presence, device probing, one context + module per device |
//! | memory | `mem` | owned device and pinned host buffers |
//! | table | `table` | [`CudaTable`]: the SoA table on the device and the bulk operations |
//!
//! Nothing here links against CUDA: the crate builds everywhere, and on a machine without a
//! driver [`probe_device`] returns [`CudaError::NoDriver`] instead of panicking (it checks
//! `is_culib_present()` before any other call). The PTX is embedded with `include_str!`;
//! no CUDA C and no run-time compilation (NVRTC) is involved.

mod device;
mod mem;
mod table;

pub use cudarc;
pub use device::{probe_device, DeviceInfo, Gpu};
pub use mem::DeviceBuf;
pub use table::{device_records, CudaTable, DeviceBatch};

/// The kernels, compiled from `kernels-rs` by `cargo xtask ptx` (do not edit by hand).
pub const PTX: &str = include_str!("../ptx/flash_map_kernels.ptx");

/// Errors of the GPU backend.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CudaError {
    /// `libcuda` could not be loaded.
    #[error("no CUDA driver found (libcuda.so could not be loaded); install the NVIDIA driver or use a CPU backend")]
    NoDriver,
    /// The requested device does not exist.
    #[error("CUDA device {requested} does not exist ({count} device(s) found); pick a device_id below {count}")]
    NoDevice {
        /// The ordinal asked for.
        requested: usize,
        /// Devices present.
        count: usize,
    },
    /// The device is older than the kernels support.
    #[error("CUDA device has compute capability {major}.{minor}; flash-map needs 7.0 (Volta) or newer")]
    Unsupported {
        /// Major compute capability.
        major: i32,
        /// Minor compute capability.
        minor: i32,
    },
    /// A driver call failed.
    #[error("CUDA driver call {op} failed: {msg}")]
    Driver {
        /// The operation.
        op: &'static str,
        /// The driver's error.
        msg: String,
    },
    /// Device memory ran out.
    #[error("could not allocate {bytes} bytes of GPU memory; ask for a smaller capacity or batch")]
    DeviceAlloc {
        /// Bytes requested.
        bytes: usize,
    },
    /// Pinned or ordinary host memory ran out.
    #[error("could not allocate {bytes} bytes of host memory")]
    HostAlloc {
        /// Bytes requested.
        bytes: usize,
    },
    /// A stream given to a table belongs to another device or context than the table's.
    #[error("the CUDA stream belongs to another context than device {device}'s primary context; make it from CudaContext::new({device})")]
    ForeignStream {
        /// The table's device.
        device: usize,
    },
    /// The batch's claims were refused (its new keys do not fit, or keys share their hash
    /// with too many others: rebuild with a stronger hash); nothing was
    /// changed.
    #[error("{0}")]
    Refused(flash_map_core::Refusal),
}

impl From<flash_map_core::Refusal> for CudaError {
    fn from(r: flash_map_core::Refusal) -> Self {
        CudaError::Refused(r)
    }
}

pub(crate) fn drv(op: &'static str) -> impl FnOnce(cudarc::driver::DriverError) -> CudaError {
    move |e| CudaError::Driver { op, msg: format!("{e:?}") }
}
