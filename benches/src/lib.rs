//! What the compare binary and the criterion benches share: the peers' hasher, the key
//! and value generator, the data of one workload, and the floor of the engine's layout.

use std::hash::{BuildHasherDefault, Hasher};

pub mod floor;

use flash_map::Pod;

/// First 8 bytes of the key, through fmix64.
#[derive(Default, Clone, Copy)]
pub struct Fmix(u64);
impl Hasher for Fmix {
    fn finish(&self) -> u64 {
        let mut k = self.0;
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        // Arrays hash their length first (a usize via write_usize), then their bytes.
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(b);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }
    fn write_usize(&mut self, _: usize) {}
}
/// The peers' hasher: the cheapest sound one for random keys.
pub type H = BuildHasherDefault<Fmix>;

/// splitmix64: the keys and values of every workload are its outputs.
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A key or value type the workloads generate.
pub trait Gen: Pod + Eq + std::hash::Hash + Send + Sync {
    /// The value for `seed` (distinct seeds give distinct values with overwhelming
    /// probability).
    fn gen(seed: u64) -> Self;
}
impl Gen for u64 {
    fn gen(seed: u64) -> Self {
        splitmix(seed)
    }
}
impl<const N: usize> Gen for [u8; N] {
    fn gen(seed: u64) -> Self {
        let mut a = [0u8; N];
        for (j, c) in a.chunks_mut(8).enumerate() {
            let v = splitmix(seed.wrapping_mul(31).wrapping_add(j as u64)).to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
        a
    }
}

/// One workload's data: `n` pairs, their keys, and as many keys that are absent.
pub struct Data<K, V> {
    /// The pairs to insert.
    pub pairs: Vec<(K, V)>,
    /// Their keys, in the same order.
    pub keys: Vec<K>,
    /// Keys not among `keys`.
    pub absent: Vec<K>,
}

/// `n` pairs of splitmix64 outputs (seeded by position), and `n` absent keys.
pub fn data<K: Gen, V: Gen>(n: usize) -> Data<K, V> {
    let pairs: Vec<(K, V)> = (0..n as u64).map(|i| (K::gen(i), V::gen(i ^ 0xABCD))).collect();
    let keys = pairs.iter().map(|p| p.0).collect();
    let absent = (0..n as u64).map(|i| K::gen(i + (1 << 40))).collect();
    Data { pairs, keys, absent }
}

/// Gives back to the system the memory that earlier runs freed, so that the engine run next
/// starts with none, as in a fresh process: the arrays FlashMap keeps from dropped tables
/// ([`flash_map::release_spare_memory`]) and the allocator's free memory in every arena
/// (glibc's `malloc_trim`); and makes FlashMap's paces of commits in huge pages start over
/// ([`flash_map_cpu::forget_commit_paces`]), so that no engine (the floor commits its
/// results as the engine does) starts from what a slow huge page of the one before it
/// showed. Without this, each engine ran in the memory that the one before
/// it freed, and its times depended on that one: the floor's lookups took half as long
/// right after the serial engine as the serial engine's right after DashMap.
///
/// Then, for `flush` > 0, it faults in and unmaps `flush` bytes of fresh memory, so that the
/// pages the system hands out next are those, whichever engine ran before: pages that were
/// neither the last engine's nor in the caches. Without this, an engine that ran right
/// after one of its own footprint found that one's pages at hand, hot in the caches, and
/// built its table in about half the time of the engine before it (BENCHMARKS.md, issue 13,
/// "every engine from the same cold memory").
pub fn cold_start(flush: usize) {
    flash_map::release_spare_memory();
    flash_map_cpu::forget_commit_paces();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free memory of the allocator to the system; no
    // allocation is touched.
    unsafe {
        libc::malloc_trim(0);
    }
    #[cfg(target_os = "linux")]
    if let Some(p) = (flush > 0).then(|| flash_map_cpu::anonymous_mapping(flush)).flatten() {
        flash_map_cpu::commit_for_writes(p, flush, false);
        // SAFETY: `p` is the start of this function's own mapping of `flush` bytes, which
        // nothing else refers to.
        unsafe { libc::munmap(p as *mut libc::c_void, flush) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = flush;
}
