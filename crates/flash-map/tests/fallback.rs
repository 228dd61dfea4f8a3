//! Backend choice: the GPU is used when it can be, else the fall-back is chosen and the
//! reason is logged (never printed).

use std::sync::Mutex;

use flash_map::{Backend, FlashMap, FlashMapError};

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;
impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        LOG.lock().unwrap().push(format!("{} {}", r.level(), r.args()));
    }
    fn flush(&self) {}
}

fn gpu_expected() -> bool {
    std::env::var("FLASH_MAP_TEST_CUDA").as_deref() == Ok("1")
}

#[test]
fn default_build_picks_the_best_backend_and_logs_why() {
    log::set_boxed_logger(Box::new(Capture)).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let m: FlashMap<u64, u64> = FlashMap::with_capacity(10).unwrap();
    let expected = if cfg!(feature = "cuda") && gpu_expected() {
        Backend::Cuda
    } else if cfg!(feature = "rayon") {
        Backend::Rayon
    } else {
        Backend::Serial
    };
    assert_eq!(m.backend(), expected);
    let log = LOG.lock().unwrap().join("\n");
    if cfg!(feature = "cuda") && !gpu_expected() {
        assert!(log.contains("GPU skipped"), "the reason for skipping the GPU must be logged: {log}");
    }
    if cfg!(feature = "cuda") {
        // force_cpu is honoured and logged.
        let m: FlashMap<u64, u64> = FlashMap::builder(10).force_cpu().build().unwrap();
        assert_ne!(m.backend(), Backend::Cuda);
        assert!(LOG.lock().unwrap().iter().any(|l| l.contains("force_cpu")));
    }
}

#[test]
fn forcing_cuda_without_a_usable_gpu_is_a_clear_error() {
    if gpu_expected() {
        eprintln!("SKIPPED: a GPU is expected here (FLASH_MAP_TEST_CUDA=1)");
        return;
    }
    let r = FlashMap::<u64, u64>::builder(10).backend(Backend::Cuda).build();
    match r {
        Err(FlashMapError::BackendUnavailable { backend: Backend::Cuda, reason }) => {
            if cfg!(feature = "cuda") {
                assert!(reason.contains("CUDA") || reason.contains("device"), "{reason}");
            } else {
                assert!(reason.contains("`cuda` feature"), "{reason}");
            }
        }
        other => panic!("expected BackendUnavailable, got {other:?}"),
    }
    // A bad device id is an error too, never a panic.
    let r = FlashMap::<u64, u64>::builder(10).backend(Backend::Cuda).device_id(99).build();
    assert!(matches!(r, Err(FlashMapError::BackendUnavailable { .. })));
}
