//! The shared model harness: seeded random batches checked against `std::collections::HashMap`.
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};

use flash_map::{Backend, FlashMap, FlashMapError, HashStrategy, Pod};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The backends to test: every compiled one, Cuda only when `FLASH_MAP_TEST_CUDA=1`. The
/// rayon engine runs its mutations in parallel always, as on a machine with many cores: on
/// a small one it would run them serially, and the tests would not exercise its parallel
/// passes (`tests/rayon.rs` keeps the default).
pub fn backends() -> Vec<Backend> {
    flash_map::set_rayon_serial_mutations(false);
    let mut v = Vec::new();
    for b in Backend::compiled() {
        if b == Backend::Cuda && std::env::var("FLASH_MAP_TEST_CUDA").as_deref() != Ok("1") {
            eprintln!("SKIPPED: Cuda backend (set FLASH_MAP_TEST_CUDA=1 on a GPU machine to run it)");
            continue;
        }
        v.push(b);
    }
    assert!(!v.is_empty(), "no backend to test");
    v
}

/// Runs the ignored test `name` of this test executable in a child process, with `child`
/// set to 1 and `env` set too, and checks that it passed and printed `checked {backend}
/// {what}` for every CPU backend of [`backends`]: for checks that change the whole process
/// (a memory limit, a huge-page policy). Returns the child's output.
#[cfg(target_os = "linux")]
pub fn run_in_child(name: &str, child: &str, env: &[(&str, &str)], what: &str) -> String {
    let exe = std::env::current_exe().expect("test executable");
    let out = std::process::Command::new(exe)
        .args(["--exact", name, "--ignored", "--nocapture", "--test-threads=1"])
        .env(child, "1")
        .envs(env.iter().copied())
        .output()
        .expect("run the child");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child failed:\n{text}");
    for b in backends() {
        if b != Backend::Cuda {
            assert!(text.contains(&format!("checked {b} {what}")), "child did not check {b}:\n{text}");
        }
    }
    text
}

/// `field` of a `/proc` file in kB (`VmRSS:` of `/proc/self/status`, `AnonHugePages:` of
/// `/proc/self/smaps_rollup`), in bytes, read as the crate reads them.
#[cfg(target_os = "linux")]
pub fn proc_bytes(path: &str, field: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    flash_map_cpu::meminfo_bytes(&text, field).unwrap_or_else(|| panic!("{field} in {path}"))
}

/// Builds a `u64 -> u64` map for `capacity` entries on `b` and checks that `build` left its
/// table resident: resident memory grew by at least nine tenths of its bytes (one state
/// byte, a key and a value per slot). Returns the map.
#[cfg(target_os = "linux")]
pub fn build_resident(b: Backend, capacity: usize) -> FlashMap<u64, u64> {
    let resident = || proc_bytes("/proc/self/status", "VmRSS:");
    let before = resident();
    let m: FlashMap<u64, u64> = FlashMap::builder(capacity).backend(b).build().expect("build");
    let grown = resident().saturating_sub(before);
    let table = m.stats().slots * (1 + 8 + 8);
    assert!(grown >= table * 9 / 10, "{b}: {grown} bytes became resident for a {table}-byte table");
    m
}

/// A deterministic Pod value from an id: every byte depends on the id.
pub fn from_id<T: Pod>(id: u64) -> T {
    let mut t = T::zeroed();
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x1234_5678;
    for (j, b) in bytemuck::bytes_of_mut(&mut t).iter_mut().enumerate() {
        if j % 8 == 0 {
            x = splitmix(x);
        }
        *b = (x >> ((j % 8) * 8)) as u8;
    }
    t
}

pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn b<T: Pod>(t: &T) -> Vec<u8> {
    bytemuck::bytes_of(t).to_vec()
}

/// Options of one model run.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub backend: Backend,
    pub hash: HashStrategy,
    pub capacity: usize,
    pub rounds: usize,
    pub max_batch: usize,
    pub seed: u64,
    pub auto_grow: bool,
    /// The map's maximum load factor (the default is 0.5).
    pub load: f64,
}

/// Runs random insert / insert_new / get / contains / remove / entries / clear batches
/// against a std HashMap model and checks every result, `len()` after every batch, and
/// that a failed batch left the map unchanged. Returns a log of all results, so callers
/// can compare backends with each other.
pub fn model_run<K: Pod + Send + Sync, V: Pod + Send + Sync>(r: Run) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(r.seed);
    let mut map: FlashMap<K, V> = FlashMap::builder(r.capacity)
        .backend(r.backend)
        .hash_strategy(r.hash)
        .auto_grow(r.auto_grow)
        .max_load_factor(r.load)
        .build()
        .unwrap_or_else(|e| panic!("build {:?}: {e}", r.backend));
    assert_eq!(map.backend(), r.backend);
    // On Cuda, a third of the batches go through the device-resident calls, with buffers
    // on a stream of the caller's; on every backend another third through the column calls.
    #[cfg(feature = "cuda")]
    let dev = (r.backend == Backend::Cuda).then(dev::Dev::new);
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let pool = (r.capacity as u64 * 3 / 2).max(4);
    let mut log = Vec::new();
    let mut fulls = 0;
    for round in 0..r.rounds {
        let n = rng.gen_range(0..=r.max_batch);
        let ctx = format!("{:?} {:?} seed {} round {round}", r.backend, r.hash, r.seed);
        let op = rng.gen_range(0..100);
        let cap = map.capacity();
        // 0: pairs and vectors, 1: host columns, 2: device columns (Cuda only).
        let form = round % 3;
        #[cfg(feature = "cuda")]
        let dev = if form == 2 { dev.as_ref() } else { None };
        if op < 35 {
            let pairs: Vec<(K, V)> = (0..n).map(|_| (from_id(rng.gen_range(0..pool)), from_id(rng.gen()))).collect();
            let distinct_new: HashSet<Vec<u8>> =
                pairs.iter().map(|p| b(&p.0)).filter(|k| !model.contains_key(k)).collect();
            let (keys, values): (Vec<K>, Vec<V>) = pairs.iter().copied().unzip();
            let res = match form {
                #[cfg(feature = "cuda")]
                2 if dev.is_some() => dev.expect("cuda").insert(&mut map, &keys, &values),
                1 => map.bulk_insert_columns(&keys, &values),
                _ => map.bulk_insert(&pairs),
            };
            if model.len() + distinct_new.len() > cap && !r.auto_grow {
                assert!(matches!(res, Err(FlashMapError::TableFull { .. })), "{ctx}: {res:?}");
                fulls += 1;
                log.push("insert full".to_string());
            } else {
                assert_eq!(res.as_ref().ok(), Some(&distinct_new.len()), "{ctx}: {res:?}");
                for (k, v) in &pairs {
                    model.insert(b(k), b(v));
                }
                log.push(format!("insert {}", distinct_new.len()));
            }
        } else if op < 45 {
            let pairs: Vec<(K, V)> = (0..n).map(|_| (from_id(rng.gen_range(0..pool)), from_id(rng.gen()))).collect();
            let mut expect = Vec::with_capacity(n);
            let mut fresh = HashSet::new();
            for (k, _) in &pairs {
                let kb = b(k);
                expect.push(!model.contains_key(&kb) && fresh.insert(kb));
            }
            let (keys, values): (Vec<K>, Vec<V>) = pairs.iter().copied().unzip();
            let res = match form {
                #[cfg(feature = "cuda")]
                2 if dev.is_some() => dev.expect("cuda").insert_new(&mut map, &keys, &values),
                1 => {
                    let mut inserted = vec![false; n];
                    map.bulk_insert_new_columns(&keys, &values, &mut inserted).map(|count| {
                        assert_eq!(count, inserted.iter().filter(|&&x| x).count(), "{ctx}");
                        inserted
                    })
                }
                _ => map.bulk_insert_new(&pairs),
            };
            if model.len() + fresh.len() > cap && !r.auto_grow {
                assert!(matches!(res, Err(FlashMapError::TableFull { .. })), "{ctx}: {res:?}");
                fulls += 1;
                log.push("insert_new full".to_string());
            } else {
                let got = res.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                assert_eq!(got, expect, "{ctx}");
                for ((k, v), e) in pairs.iter().zip(&expect) {
                    if *e {
                        model.insert(b(k), b(v));
                    }
                }
                log.push(format!("insert_new {:?}", got.iter().filter(|x| **x).count()));
            }
        } else if op < 70 {
            let keys: Vec<K> = (0..n).map(|_| from_id(rng.gen_range(0..pool * 2))).collect();
            let got = match form {
                #[cfg(feature = "cuda")]
                2 if dev.is_some() => dev.expect("cuda").get(&map, &keys),
                1 => {
                    let (mut values, mut found) = (vec![V::zeroed(); n], vec![false; n]);
                    let hits = map.bulk_get_columns(&keys, &mut values, &mut found);
                    let hits = hits.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    assert_eq!(hits, found.iter().filter(|&&f| f).count(), "{ctx}");
                    // The values of misses are left as they were.
                    assert!(values.iter().zip(&found).all(|(v, f)| *f || b(v) == b(&V::zeroed())), "{ctx}");
                    Ok(values.into_iter().zip(found).map(|(v, f)| f.then_some(v)).collect())
                }
                _ => map.bulk_get(&keys),
            }
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(got.len(), n);
            for (k, g) in keys.iter().zip(&got) {
                assert_eq!(g.as_ref().map(b), model.get(&b(k)).cloned(), "{ctx}");
            }
            let hits = got.iter().filter(|g| g.is_some()).count();
            let has = match form {
                #[cfg(feature = "cuda")]
                2 if dev.is_some() => dev.expect("cuda").contains(&map, &keys),
                1 => {
                    let mut found = vec![true; n];
                    map.bulk_contains_into(&keys, &mut found).map(|()| found)
                }
                _ => map.bulk_contains(&keys),
            }
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(has, got.iter().map(|g| g.is_some()).collect::<Vec<_>>(), "{ctx}");
            log.push(format!("get {hits}"));
        } else if op < 93 {
            let keys: Vec<K> = (0..n).map(|_| from_id(rng.gen_range(0..pool * 2))).collect();
            let distinct: HashSet<Vec<u8>> = keys.iter().map(b).collect();
            let expect = distinct.iter().filter(|k| model.remove(*k).is_some()).count();
            let got = match form {
                #[cfg(feature = "cuda")]
                2 if dev.is_some() => dev.expect("cuda").remove(&mut map, &keys),
                _ => map.bulk_remove(&keys),
            }
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(got, expect, "{ctx}");
            log.push(format!("remove {got}"));
        } else if op < 98 {
            let mut got: Vec<(Vec<u8>, Vec<u8>)> = map.entries().unwrap().iter().map(|(k, v)| (b(k), b(v))).collect();
            got.sort();
            let mut want: Vec<(Vec<u8>, Vec<u8>)> = model.clone().into_iter().collect();
            want.sort();
            assert_eq!(got, want, "{ctx}: entries");
            log.push(format!("entries {}", got.len()));
        } else {
            map.clear().unwrap();
            model.clear();
            assert_eq!(map.capacity(), cap, "{ctx}: clear keeps capacity");
            log.push("clear".into());
        }
        assert_eq!(map.len(), model.len(), "{ctx}: len");
        assert!(map.len() <= map.capacity());
        assert_headroom(&map, &ctx);
    }
    // The sequence must have exercised the full-table path unless growth was on.
    if !r.auto_grow && r.rounds >= 200 {
        assert!(fulls > 0, "{:?}: no TableFull was hit; the test lost its edge", r);
    }
    log
}

/// The rule every call leaves behind: the empty slots number at least half the headroom
/// (`slots − capacity`), or there are no tombstones (and never more than an eighth of the
/// slots of them).
pub fn assert_headroom<K: Pod + Send + Sync, V: Pod + Send + Sync>(map: &FlashMap<K, V>, ctx: &str) {
    let s = map.stats();
    let empty = s.slots - s.len - s.tombstones;
    assert!(
        s.tombstones == 0 || empty >= (s.slots - s.capacity) / 2,
        "{ctx}: {empty} empty slots, {} tombstones, headroom {}",
        s.tombstones,
        s.slots - s.capacity
    );
    assert!(s.tombstones <= s.slots / 8, "{ctx}: {s:?}");
}

/// Runs the model over every backend and checks they all logged identical results.
pub fn all_backends<K: Pod + Send + Sync, V: Pod + Send + Sync>(
    capacity: usize,
    rounds: usize,
    max_batch: usize,
    seed: u64,
) {
    all_backends_at::<K, V>(capacity, rounds, max_batch, seed, 0.5)
}

/// [`all_backends`] at maximum load factor `load`.
pub fn all_backends_at<K: Pod + Send + Sync, V: Pod + Send + Sync>(
    capacity: usize,
    rounds: usize,
    max_batch: usize,
    seed: u64,
    load: f64,
) {
    for hash in [HashStrategy::Identity, HashStrategy::Murmur3, HashStrategy::SipHash13] {
        let mut first: Option<(Backend, Vec<String>)> = None;
        for backend in backends() {
            let log =
                model_run::<K, V>(Run { backend, hash, capacity, rounds, max_batch, seed, auto_grow: false, load });
            match &first {
                None => first = Some((backend, log)),
                Some((b0, l0)) => assert_eq!(l0, &log, "{backend:?} differs from {b0:?}"),
            }
        }
    }
}

/// The device-resident calls on batches of any Pod key and value type: the host batch is
/// copied into byte buffers on a stream of the caller's (not the map's), which are then
/// viewed as `K` and `V` columns.
#[cfg(feature = "cuda")]
pub mod dev {
    use std::sync::Arc;

    use flash_map::cuda::{CudaContext, CudaSlice, CudaStream};
    use flash_map::{FlashMap, Pod, Result};

    /// A caller's stream on device 0.
    pub struct Dev {
        pub stream: Arc<CudaStream>,
    }

    /// `v`'s bytes in a device buffer of at least one byte.
    fn bytes<T: Pod>(s: &Arc<CudaStream>, v: &[T]) -> CudaSlice<u8> {
        let raw: &[u8] = bytemuck::cast_slice(v);
        if raw.is_empty() {
            s.alloc_zeros::<u8>(1).expect("alloc")
        } else {
            s.clone_htod(raw).expect("upload")
        }
    }

    fn read<T: Pod>(s: &Arc<CudaStream>, d: &CudaSlice<u8>, n: usize) -> Vec<T> {
        if size_of::<T>() == 0 {
            return vec![T::zeroed(); n];
        }
        let raw = s.clone_dtoh(d).expect("download");
        raw.chunks_exact(size_of::<T>().max(1)).take(n).map(bytemuck::pod_read_unaligned).collect()
    }

    impl Dev {
        pub fn new() -> Self {
            let ctx = CudaContext::new(0).expect("CUDA device 0");
            Dev { stream: ctx.new_stream().expect("stream") }
        }

        pub fn insert<K: Pod + Send + Sync, V: Pod + Send + Sync>(
            &self,
            map: &mut FlashMap<K, V>,
            keys: &[K],
            values: &[V],
        ) -> Result<usize> {
            let (dk, dv) = (bytes(&self.stream, keys), bytes(&self.stream, values));
            // SAFETY: the buffers hold the bytes of `keys.len()` keys and values of Pod types,
            // any bit pattern of which is valid; device allocations are 256-byte aligned.
            let (k, v) = unsafe {
                (dk.transmute::<K>(keys.len()).expect("fits"), dv.transmute::<V>(values.len()).expect("fits"))
            };
            map.bulk_insert_device(&k, &v)
        }

        pub fn insert_new<K: Pod + Send + Sync, V: Pod + Send + Sync>(
            &self,
            map: &mut FlashMap<K, V>,
            keys: &[K],
            values: &[V],
        ) -> Result<Vec<bool>> {
            let n = keys.len();
            let (dk, dv) = (bytes(&self.stream, keys), bytes(&self.stream, values));
            let mut inserted = self.stream.alloc_zeros::<bool>(n.max(1)).expect("alloc");
            // SAFETY: as in `insert`.
            let (k, v) = unsafe { (dk.transmute::<K>(n).expect("fits"), dv.transmute::<V>(n).expect("fits")) };
            let count = map.bulk_insert_new_device(&k, &v, &mut inserted)?;
            let mut out = self.stream.clone_dtoh(&inserted).expect("download");
            out.truncate(n);
            assert_eq!(count, out.iter().filter(|&&x| x).count());
            Ok(out)
        }

        pub fn get<K: Pod + Send + Sync, V: Pod + Send + Sync>(
            &self,
            map: &FlashMap<K, V>,
            keys: &[K],
        ) -> Result<Vec<Option<V>>> {
            let n = keys.len();
            let dk = bytes(&self.stream, keys);
            // Results start as a pattern that no lookup writes to a miss.
            let poison = vec![V::zeroed(); n];
            let mut dv = bytes(&self.stream, &poison);
            let mut found = self.stream.alloc_zeros::<bool>(n.max(1)).expect("alloc");
            {
                // SAFETY: as in `insert`.
                let k = unsafe { dk.transmute::<K>(n).expect("fits") };
                // SAFETY: as above, for `n` values.
                let mut v = unsafe { dv.transmute_mut::<V>(n).expect("fits") };
                map.bulk_get_device(&k, &mut v, &mut found)?;
            }
            let found = self.stream.clone_dtoh(&found).expect("download");
            let values: Vec<V> = read(&self.stream, &dv, n);
            assert!(values
                .iter()
                .zip(&found)
                .all(|(v, f)| *f || bytemuck::bytes_of(v) == bytemuck::bytes_of(&V::zeroed())));
            Ok(values.into_iter().zip(found).map(|(v, f)| f.then_some(v)).collect())
        }

        pub fn contains<K: Pod + Send + Sync, V: Pod + Send + Sync>(
            &self,
            map: &FlashMap<K, V>,
            keys: &[K],
        ) -> Result<Vec<bool>> {
            let n = keys.len();
            let dk = bytes(&self.stream, keys);
            let mut found = self.stream.alloc_zeros::<bool>(n.max(1)).expect("alloc");
            // SAFETY: as in `insert`.
            let k = unsafe { dk.transmute::<K>(n).expect("fits") };
            map.bulk_contains_device(&k, &mut found)?;
            let mut out = self.stream.clone_dtoh(&found).expect("download");
            out.truncate(n);
            Ok(out)
        }

        pub fn remove<K: Pod + Send + Sync, V: Pod + Send + Sync>(
            &self,
            map: &mut FlashMap<K, V>,
            keys: &[K],
        ) -> Result<usize> {
            let dk = bytes(&self.stream, keys);
            // SAFETY: as in `insert`.
            let k = unsafe { dk.transmute::<K>(keys.len()).expect("fits") };
            map.bulk_remove_device(&k)
        }
    }
}
