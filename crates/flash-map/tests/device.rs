//! The device-resident calls (feature `cuda`): errors on CPU maps everywhere; on a GPU
//! (`FLASH_MAP_TEST_CUDA=1`) a caller's stream, `TableFull` atomicity, checks of the
//! arguments, and two maps on one GPU running side by side while one of them is held back.
//! The random model runs (`tests/model.rs`, `tests/counters.rs`) send a third of their
//! batches on Cuda through these calls too.
#![cfg(feature = "cuda")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flash_map::cuda::{cudarc, CudaContext, CudaStream};
use flash_map::{Backend, FlashMap, FlashMapError};

/// The GPU, if the GPU tests were asked for (says so when they are skipped): one test at a
/// time, so that the test holding a stream back has the device to itself.
fn gpu() -> Option<std::sync::MutexGuard<'static, ()>> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if std::env::var("FLASH_MAP_TEST_CUDA").as_deref() != Ok("1") {
        eprintln!("SKIPPED: device-resident calls on a GPU (set FLASH_MAP_TEST_CUDA=1 on a GPU machine to run them)");
        return None;
    }
    Some(ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner()))
}

#[test]
fn device_calls_on_a_cpu_map_are_an_error() {
    for backend in Backend::compiled().into_iter().filter(|b| *b != Backend::Cuda) {
        let m: FlashMap<u64, u64> = FlashMap::builder(16).backend(backend).build().unwrap();
        assert!(matches!(m.cuda_stream(), Err(FlashMapError::NotOnDevice { backend: b }) if b == backend), "{backend}");
        assert!(matches!(m.cuda_synchronize(), Err(FlashMapError::NotOnDevice { .. })), "{backend}");
        let msg = m.cuda_stream().unwrap_err().to_string();
        assert!(msg.contains("Cuda backend") && msg.contains(&backend.to_string()), "{msg}");
    }
}

fn cuda_map(capacity: usize, stream: Option<Arc<CudaStream>>) -> FlashMap<u64, u64> {
    let b = FlashMap::builder(capacity).backend(Backend::Cuda);
    match stream {
        Some(s) => b.cuda_stream(s),
        None => b,
    }
    .build()
    .expect("a Cuda map")
}

#[test]
fn a_callers_stream_orders_the_maps_work() {
    let Some(_gpu) = gpu() else { return };
    let ctx = CudaContext::new(0).unwrap();
    let stream = ctx.new_stream().unwrap();
    let mut map = cuda_map(1 << 12, Some(Arc::clone(&stream)));
    assert_eq!(map.cuda_stream().unwrap(), stream);
    let mut host: FlashMap<u64, u64> = FlashMap::builder(1 << 12).backend(Backend::Serial).build().unwrap();
    // Duplicates (the last copy wins) and, in the lookups, absent keys.
    let keys: Vec<u64> = (0..3000u64).map(|i| common::splitmix(i % 2000)).collect();
    let values: Vec<u64> = (0..3000u64).collect();
    let (dk, dv) = (stream.clone_htod(&keys).unwrap(), stream.clone_htod(&values).unwrap());
    assert_eq!(map.bulk_insert_device(&dk, &dv).unwrap(), host.bulk_insert_columns(&keys, &values).unwrap());
    let probe: Vec<u64> = (0..4000u64).map(|i| common::splitmix(i % 2500)).collect();
    let dp = stream.clone_htod(&probe).unwrap();
    let mut out = stream.alloc_zeros::<u64>(5000).unwrap(); // longer than the batch
    let mut found = stream.alloc_zeros::<bool>(5000).unwrap();
    map.bulk_get_device(&dp, &mut out, &mut found).unwrap();
    // The copies below are queued on the same stream, after the lookup: no synchronize.
    let (out, found) = (stream.clone_dtoh(&out).unwrap(), stream.clone_dtoh(&found).unwrap());
    let want = host.bulk_get(&probe).unwrap();
    let got: Vec<Option<u64>> = (0..probe.len()).map(|i| found[i].then_some(out[i])).collect();
    assert_eq!(got, want);
    assert!(found[probe.len()..].iter().all(|&f| !f), "past the batch: untouched");
    // Add, insert_new and remove, against the host map.
    let fresh: Vec<u64> = (0..1000u64).map(|i| common::splitmix(i + 1500)).collect();
    let fv: Vec<u64> = fresh.iter().map(|k| k ^ 1).collect();
    let (dfk, dfv) = (stream.clone_htod(&fresh).unwrap(), stream.clone_htod(&fv).unwrap());
    let mut ins = stream.alloc_zeros::<bool>(fresh.len()).unwrap();
    let mut want_ins = vec![false; fresh.len()];
    assert_eq!(
        map.bulk_insert_new_device(&dfk, &dfv, &mut ins).unwrap(),
        host.bulk_insert_new_columns(&fresh, &fv, &mut want_ins).unwrap()
    );
    assert_eq!(stream.clone_dtoh(&ins).unwrap(), want_ins);
    assert_eq!(map.bulk_add_device(&dfk, &dfv).unwrap(), host.bulk_add_columns(&fresh, &fv).unwrap());
    // Counters with duplicate keys: every copy adds.
    assert_eq!(map.bulk_add_device(&dk, &dv).unwrap(), host.bulk_add_columns(&keys, &values).unwrap());
    assert_eq!(map.bulk_remove_device(&dp).unwrap(), host.bulk_remove(&probe).unwrap());
    let (mut a, mut b) = (map.entries().unwrap(), host.entries().unwrap());
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
}

#[test]
fn a_device_batch_that_does_not_fit_changes_nothing() {
    let Some(_gpu) = gpu() else { return };
    let mut map = cuda_map(1000, None);
    let stream = map.cuda_stream().unwrap();
    let first: Vec<u64> = (0..900).collect();
    let d = stream.clone_htod(&first).unwrap();
    assert_eq!(map.bulk_insert_device(&d, &d).unwrap(), 900);
    let before = map.entries().unwrap();
    let more: Vec<u64> = (500..1200).collect(); // 300 new keys: 1200 > 1024
    let dm = stream.clone_htod(&more).unwrap();
    let dz = stream.alloc_zeros::<u64>(more.len()).unwrap();
    let capacity = map.capacity();
    assert!(
        matches!(map.bulk_insert_device(&dm, &dz), Err(FlashMapError::TableFull { capacity: c, .. }) if c == capacity)
    );
    let mut flags = stream.alloc_zeros::<bool>(more.len()).unwrap();
    assert!(matches!(map.bulk_insert_new_device(&dm, &dz, &mut flags), Err(FlashMapError::TableFull { .. })));
    assert!(matches!(map.bulk_add_device(&dm, &dz), Err(FlashMapError::TableFull { .. })));
    let mut after = map.entries().unwrap();
    let mut before = before;
    before.sort_unstable();
    after.sort_unstable();
    assert_eq!(after, before, "a refused batch leaves the map as it was");
    // Bad arguments are errors, not panics.
    let short = stream.alloc_zeros::<u64>(10).unwrap();
    assert!(matches!(map.bulk_insert_device(&dm, &short), Err(FlashMapError::ColumnLengths { keys: 700, other: 10 })));
    let mut short_out = stream.alloc_zeros::<u64>(10).unwrap();
    assert!(matches!(map.bulk_get_device(&dm, &mut short_out, &mut flags), Err(FlashMapError::ColumnLengths { .. })));
    assert_eq!(map.len(), 900);
}

/// A stream held back on the device until `release` is called: by `cuStreamWaitValue32`
/// on a device flag where the driver supports it, else by a host function that waits.
struct Hold {
    flag: cudarc::driver::sys::CUdeviceptr,
    host: Option<Box<AtomicBool>>,
    releaser: Arc<CudaStream>,
}

extern "C" fn wait_for_flag(user: *mut std::ffi::c_void) {
    // SAFETY: `user` is the `AtomicBool` boxed in `Hold`, which outlives the held stream's
    // work (`Hold::release` is called, and the stream synchronized, before it drops).
    let flag = unsafe { &*(user as *const AtomicBool) };
    while !flag.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

impl Hold {
    fn new(held: &CudaStream, ctx: &Arc<CudaContext>) -> Hold {
        use cudarc::driver::{result, sys};
        ctx.bind_to_thread().unwrap();
        // SAFETY: the context is current; freed in `Drop`.
        let flag = unsafe { result::malloc_sync(4) }.unwrap();
        // SAFETY: 4 bytes just allocated.
        unsafe { result::memset_d8_sync(flag, 0, 4) }.unwrap();
        let releaser = ctx.new_stream().unwrap();
        // SAFETY: a live stream and a device word of this context that stays allocated until
        // the stream has passed the wait (`release`, then a synchronize, before `Drop`).
        let waited = unsafe {
            sys::cuStreamWaitValue32_v2(
                held.cu_stream(),
                flag,
                1,
                sys::CUstreamWaitValue_flags::CU_STREAM_WAIT_VALUE_GEQ as u32,
            )
        };
        let host = if waited == sys::CUresult::CUDA_SUCCESS {
            eprintln!("held by cuStreamWaitValue32");
            None
        } else {
            eprintln!("cuStreamWaitValue32: {waited:?}; held by a host function instead");
            let b = Box::new(AtomicBool::new(false));
            // SAFETY: the callback only reads the boxed flag, which outlives it (see
            // `wait_for_flag`), and makes no CUDA call.
            let r = unsafe {
                sys::cuLaunchHostFunc(
                    held.cu_stream(),
                    Some(wait_for_flag),
                    &*b as *const AtomicBool as *mut std::ffi::c_void,
                )
            };
            assert_eq!(r, sys::CUresult::CUDA_SUCCESS);
            Some(b)
        };
        Hold { flag, host, releaser }
    }

    fn release(&self) {
        use cudarc::driver::sys;
        match &self.host {
            Some(b) => b.store(true, Ordering::Release),
            None => {
                // SAFETY: the flag word of this context, written on another stream.
                let r = unsafe { sys::cuStreamWriteValue32_v2(self.releaser.cu_stream(), self.flag, 1, 0) };
                assert_eq!(r, sys::CUresult::CUDA_SUCCESS);
            }
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let _ = self.releaser.synchronize();
        // SAFETY: allocated in `new`; the held stream has passed the wait (synchronized by
        // the test before the `Hold` drops).
        let _ = unsafe { cudarc::driver::result::free_sync(self.flag) };
    }
}

#[test]
fn two_maps_on_one_gpu_run_side_by_side() {
    let Some(_gpu) = gpu() else { return };
    let n = 1 << 16;
    let keys: Vec<u64> = (0..n as u64).map(common::splitmix).collect();
    let values: Vec<u64> = (0..n as u64).collect();
    let mut a = cuda_map(n, None);
    let mut b = cuda_map(n, None);
    let (sa, sb) = (a.cuda_stream().unwrap(), b.cuda_stream().unwrap());
    assert_ne!(sa, sb, "each map has a stream of its own");
    let (ka, va) = (sa.clone_htod(&keys).unwrap(), sa.clone_htod(&values).unwrap());
    let (kb, vb) = (sb.clone_htod(&keys).unwrap(), sb.clone_htod(&values).unwrap());
    a.bulk_insert_device(&ka, &va).unwrap();
    b.bulk_insert_device(&kb, &vb).unwrap();
    let (mut oa, mut fa) = (sa.alloc_zeros::<u64>(n).unwrap(), sa.alloc_zeros::<bool>(n).unwrap());
    let (mut ob, mut fb) = (sb.alloc_zeros::<u64>(n).unwrap(), sb.alloc_zeros::<bool>(n).unwrap());
    a.cuda_synchronize().unwrap();
    b.cuda_synchronize().unwrap();

    let hold = Hold::new(&sa, sa.context());
    // Queued behind the hold: it returns at once and does not run.
    a.bulk_get_device(&ka, &mut oa, &mut fa).unwrap();
    let a_done = sa.record_event(None).unwrap();
    // Map B, from another thread, completes while map A's stream is held.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            b.bulk_get_device(&kb, &mut ob, &mut fb).unwrap();
            b.cuda_synchronize().unwrap();
            tx.send(()).unwrap();
        });
        let r = rx.recv_timeout(Duration::from_secs(20));
        let a_ran = a_done.is_complete();
        hold.release();
        assert!(r.is_ok(), "map B's lookup did not complete while map A's stream was held");
        assert!(!a_ran, "map A's lookup ran although its stream was held");
    });
    a.cuda_synchronize().unwrap();
    drop(hold);
    for (o, f, s) in [(&oa, &fa, &sa), (&ob, &fb, &sb)] {
        assert_eq!(s.clone_dtoh(o).unwrap(), values);
        assert!(s.clone_dtoh(f).unwrap().iter().all(|&x| x));
    }
}
