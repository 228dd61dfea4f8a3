#![doc = include_str!("../../../README.md")]
//!
//! # Crate layout
//!
//! - [`FlashMap`] and [`FlashMapBuilder`]: the bulk API.
//! - [`Backend`]: Cuda, Rayon or Serial; chosen at `build()`.
//! - [`FlashMapError`]: every failure, with what to do about it.
//! - [`Counter`]: value types for [`FlashMap::bulk_add`].
//! - [`release_spare_memory`]: gives back the memory that dropped CPU tables leave for the
//!   next table of their size.
//! - [`use_reserved_huge_pages`]: has CPU tables take their large arrays from the huge pages
//!   an administrator reserved (Linux's `hugetlb` pool), so that builds never wait on the
//!   system to make huge pages.
//! - [`snapshot`]: the `save`/`load` format.
//! - [`AsyncFlashMap`] (feature `tokio`).
//! - [`cuda`] (feature `cuda`): the cudarc types of the device-resident calls
//!   (`bulk_insert_device`, `bulk_get_device`, ...), ordered on the map's stream.

mod backend;
mod builder;
mod counter;
#[cfg(feature = "cuda")]
mod device;
mod error;
mod map;
pub mod snapshot;

#[cfg(feature = "tokio")]
mod async_map;

#[cfg(feature = "tokio")]
pub use async_map::AsyncFlashMap;

/// cudarc's safe types that the device-resident calls take (feature `cuda`), re-exported so
/// that a caller's buffers and streams come from the same cudarc as the map's.
#[cfg(feature = "cuda")]
pub mod cuda {
    pub use flash_map_cuda::cudarc;
    pub use flash_map_cuda::cudarc::driver::{
        CudaContext, CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, DeviceRepr, DeviceSlice,
        ValidAsZeroBits,
    };
}
pub use backend::Backend;
pub use builder::FlashMapBuilder;
pub use bytemuck::Pod;
pub use counter::Counter;
pub use error::{FlashMapError, Result};
pub use flash_map_core::HashStrategy;
pub use flash_map_cpu::release_spare_memory;
#[doc(hidden)]
pub use flash_map_cpu::set_rayon_serial_mutations;
pub use map::{FlashMap, MapStats, ProbeStats, MAX_BATCH};

/// Which of `shards` shards owns `key`: for spreading one logical map over several
/// [`FlashMap`]s (workers, processes, GPUs), as `flash-map-timely` does.
///
/// Returns a value in `0..shards` (0 when `shards` is 0 or 1). It is a fixed function of
/// the key's bytes, the same in every process, and independent of the slot the key takes
/// in its shard's table at every table size and with every [`HashStrategy`]: routing by
/// the table's own hash (`hash % shards`) would leave each shard on `1/shards` of its home
/// slots and make probing collapse, this does not.
///
/// ```
/// let shards = 4;
/// let keys: Vec<u64> = (0..10_000).collect();
/// let mut per_shard = vec![0usize; shards];
/// for k in &keys {
///     per_shard[flash_map::shard_of(k, shards)] += 1;
/// }
/// assert!(per_shard.iter().all(|&n| n > 2_300 && n < 2_700));
/// assert_eq!(flash_map::shard_of(&42u64, shards), flash_map::shard_of(&42u64, shards));
/// ```
#[inline]
pub fn shard_of<K: Pod>(key: &K, shards: usize) -> usize {
    flash_map_core::hash::shard_of(bytemuck::bytes_of(key), shards)
}

/// Has the CPU tables built from now on, in this process, take their large arrays (those
/// that would get transparent huge pages, from 1 MiB) from the huge pages an administrator
/// reserved (Linux's `hugetlb` pool, `vm.nr_hugepages`) while the pool has enough free
/// pages, and from ordinary memory where it has not; `false` (the default) turns it off.
/// Returns whether it was on.
///
/// A build then never waits on the system (or a virtual machine's host) to make a huge
/// page: it pays only for the kernel zeroing the pool's pages, and its table gets huge
/// pages every time. Each array is reserved in full when it is mapped, so a pool too small
/// for it means ordinary memory for that array, never a fault later. Opt-in, because the
/// pool may be meant for another program. Arrays kept from dropped tables
/// ([`release_spare_memory`]) are handed out again as they are, from the pool or not.
/// Linux only; elsewhere it does nothing and returns `false`. BENCHMARKS.md has builds
/// with and without it.
///
/// ```
/// // With pages reserved beforehand, e.g. `sysctl vm.nr_hugepages=512` (1 GiB of
/// // 2 MiB pages); without them the table is built from ordinary memory all the same.
/// let was = flash_map::use_reserved_huge_pages(true);
/// let mut m: flash_map::FlashMap<u64, u64> = flash_map::FlashMap::builder(1 << 18).force_cpu().build()?;
/// assert_eq!(m.bulk_insert(&[(1, 10), (2, 20)])?, 2);
/// assert_eq!(m.bulk_get(&[2])?, vec![Some(20)]);
/// flash_map::use_reserved_huge_pages(was);
/// # Ok::<(), flash_map::FlashMapError>(())
/// ```
pub fn use_reserved_huge_pages(on: bool) -> bool {
    flash_map_cpu::use_reserved_huge_pages(on)
}
