//! Driver presence, device probing, and the per-device context and kernel module.

use flash_map_core::abi::{Kernel, KernelParams};
use flash_map_core::tuning::TUNING;
use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{result, sys, CudaContext, CudaStream};

use crate::{drv, CudaError, PTX};

/// What [`probe_device`] found.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// The device's name.
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Streaming multiprocessors.
    pub sm_count: i32,
    /// Device memory in bytes.
    pub total_mem: usize,
}

fn driver_present() -> bool {
    // SAFETY: only tries to open the library; no driver call is made.
    unsafe { sys::is_culib_present() }
}

/// Checks that device `device_id` can run the kernels, without allocating on it.
pub fn probe_device(device_id: usize) -> Result<DeviceInfo, CudaError> {
    if !driver_present() {
        return Err(CudaError::NoDriver);
    }
    result::init().map_err(drv("cuInit"))?;
    let count = result::device::get_count().map_err(drv("cuDeviceGetCount"))? as usize;
    if device_id >= count {
        return Err(CudaError::NoDevice { requested: device_id, count });
    }
    let dev = result::device::get(device_id as i32).map_err(drv("cuDeviceGet"))?;
    let attr = |a| {
        // SAFETY: `dev` is a valid device handle.
        unsafe { result::device::get_attribute(dev, a) }.map_err(drv("cuDeviceGetAttribute"))
    };
    use sys::CUdevice_attribute::*;
    let major = attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
    let minor = attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
    if major < 7 {
        return Err(CudaError::Unsupported { major, minor });
    }
    let sm_count = attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    let name = result::device::get_name(dev).map_err(drv("cuDeviceGetName"))?;
    // SAFETY: valid device handle.
    let total_mem = unsafe { result::device::total_mem(dev) }.map_err(drv("cuDeviceTotalMem"))?;
    Ok(DeviceInfo { name, compute_capability: (major, minor), sm_count, total_mem })
}

/// The kernels of the module, indexed by [`Kernel`].
pub(crate) struct Funcs([sys::CUfunction; Kernel::ALL.len()]);

/// One device: its primary context (cudarc's [`CudaContext`], so that cudarc's buffers and
/// streams of the same device work with the tables) and the loaded kernel module. Shared by
/// every table on the device, created once per process.
pub struct Gpu {
    cuda: Arc<CudaContext>,
    module: sys::CUmodule,
    pub(crate) funcs: Funcs,
    pub(crate) sm_count: u32,
    /// The device's name.
    pub info: DeviceInfo,
}

// SAFETY: the module and function handles are driver handles, usable from any thread once
// the context is current (every entry point calls `bind`); the context is `Send + Sync`.
unsafe impl Send for Gpu {}
// SAFETY: as above; nothing in a `Gpu` changes after `open`, and the driver serialises
// launches on one stream.
unsafe impl Sync for Gpu {}

impl Gpu {
    /// The shared handle for device `ordinal`, loading the module on first use.
    pub fn get(ordinal: usize) -> Result<Arc<Gpu>, CudaError> {
        static GPUS: OnceLock<Mutex<HashMap<usize, Arc<Gpu>>>> = OnceLock::new();
        let mut map = GPUS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = map.get(&ordinal) {
            return Ok(Arc::clone(g));
        }
        let g = Arc::new(Gpu::open(ordinal)?);
        map.insert(ordinal, Arc::clone(&g));
        Ok(g)
    }

    fn open(ordinal: usize) -> Result<Gpu, CudaError> {
        let info = probe_device(ordinal)?;
        // The device's primary context, made current on this thread (released when the last
        // `Arc` of it is dropped).
        let cuda = CudaContext::new(ordinal).map_err(drv("cuDevicePrimaryCtxRetain"))?;
        let src = CString::new(PTX).map_err(|_| CudaError::Driver { op: "embed PTX", msg: "NUL in PTX".into() })?;
        // SAFETY: `src` is a NUL-terminated PTX image that outlives the call.
        let module = unsafe { result::module::load_data(src.as_ptr() as *const c_void) }
            .map_err(drv("cuModuleLoadData (PTX JIT)"))?;
        let f = |name: &str| {
            // SAFETY: `module` is loaded; names are the kernels' `#[no_mangle]` names.
            unsafe { result::module::get_function(module, CString::new(name).expect("no NUL")) }
                .map_err(drv("cuModuleGetFunction"))
        };
        let mut funcs = Funcs([std::ptr::null_mut(); Kernel::ALL.len()]);
        for k in Kernel::ALL {
            funcs.0[k as usize] = f(k.name())?;
        }
        log::info!(
            "flash-map: CUDA device {ordinal}: {} (sm_{}{}, {} SMs, {} MiB)",
            info.name,
            info.compute_capability.0,
            info.compute_capability.1,
            info.sm_count,
            info.total_mem >> 20
        );
        Ok(Gpu { cuda, module, funcs, sm_count: info.sm_count.max(1) as u32, info })
    }

    /// The device's primary context, as cudarc's safe API holds it: buffers and streams made
    /// from it (or from any other `CudaContext::new` of the same device) work with the
    /// tables of this device.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.cuda
    }

    /// A new non-blocking stream of this device: no work of another stream (the null
    /// stream included) waits for it, or it for them.
    pub fn new_stream(&self) -> Result<Arc<CudaStream>, CudaError> {
        self.cuda.new_stream().map_err(drv("cuStreamCreate"))
    }

    /// Whether `stream` belongs to this device's primary context.
    pub fn owns(&self, stream: &CudaStream) -> bool {
        stream.context().cu_ctx() == self.cuda.cu_ctx()
    }

    /// Makes this device's context current on the calling thread.
    pub(crate) fn bind(&self) -> Result<(), CudaError> {
        self.cuda.bind_to_thread().map_err(drv("cuCtxSetCurrent"))
    }

    /// Launches kernel `k` on `stream` over `n` items (grid-stride loops inside the kernels)
    /// with its one parameter `p`, copied by value. It returns once the launch is queued.
    ///
    /// # Safety
    /// Every device address in `p` is valid, in this context, for what `k` does with it
    /// (`flash_map_core::abi` documents each field), and stays so until the launch has
    /// completed on `stream`, a stream of this context; no work outside `stream` writes the
    /// memory the kernel reads or touches the memory it writes until then.
    ///
    /// # Panics
    /// If `P` is not `k`'s parameter type.
    pub(crate) unsafe fn launch<P: KernelParams>(
        &self,
        stream: &CudaStream,
        k: Kernel,
        n: usize,
        p: &P,
    ) -> Result<(), CudaError> {
        assert!(P::accepts(k), "{} does not take this parameter", k.name());
        if n == 0 {
            return Ok(());
        }
        const BLOCK: usize = TUNING.gpu_block;
        let blocks = n.div_ceil(BLOCK).min(self.sm_count as usize * TUNING.gpu_blocks_per_sm).max(1) as u32;
        let mut args = [p as *const P as *mut c_void];
        // SAFETY: `k`'s one parameter is a `P` (`KernelParams`, checked above), which the
        // driver copies from `p` during the call; the device addresses in it are valid in
        // this context until the launch completes on `stream`, and `stream` is a live
        // stream of this context, both as `# Safety` requires, so the kernel touches only
        // memory it may.
        unsafe {
            result::launch_kernel(
                self.funcs.0[k as usize],
                (blocks, 1, 1),
                (BLOCK as u32, 1, 1),
                0,
                stream.cu_stream(),
                &mut args,
            )
        }
        .map_err(drv("cuLaunchKernel"))
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        let _ = self.bind();
        // SAFETY: the module was loaded in `open` and is unloaded once; errors on teardown
        // are ignored. The context is released when `cuda` drops, after this.
        let _ = unsafe { result::module::unload(self.module) };
    }
}
