//! Snapshots: `save` / `load` in a versioned, checksummed format.
//!
//! # Format (version 2, all integers little-endian)
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `FLASHMAP` |
//! | 4 | format version (`2`) |
//! | 4 | key size in bytes |
//! | 4 | value size in bytes |
//! | 4 | hash strategy code (0 Identity, 1 Murmur3, 2 SipHash13) |
//! | 8 | max load factor (`f64` bits) |
//! | 8 | capacity (entries) |
//! | 8 | number of entries `n` |
//! | 16 | the key of a keyed strategy (`k0`, `k1`; zero otherwise) |
//! | n × (key + value) | the entries, key bytes then value bytes |
//! | 4 | CRC-32 (IEEE) of every byte before it |
//!
//! Version 1 (flash-map 0.3.0) is the same without the 16-byte key, and with strategy code
//! 0 or 1 only; `load` reads both versions.
//!
//! `load` checks magic, version and sizes before reading entries, reads entries in bounded
//! chunks (a corrupt count cannot make it allocate more than the stream holds), verifies the
//! checksum before building anything, and returns [`FlashMapError::Snapshot`] for any
//! mismatch, truncation or corruption.

use std::io::{Read, Write};
use std::mem::size_of;

use flash_map_core::layout::MAX_SLOTS;
use flash_map_core::{BulkEngine, HashStrategy};

use crate::backend::dispatch;
use crate::error::{FlashMapError, Result};
use crate::{FlashMap, FlashMapBuilder};

const MAGIC: &[u8; 8] = b"FLASHMAP";
const VERSION: u32 = 2;
/// The header of version 1; version 2 adds [`SEED_LEN`] bytes after it.
const HEADER_LEN: usize = 48;
const SEED_LEN: usize = 16;
const CHUNK: usize = 1 << 20;

struct Header {
    key_size: usize,
    value_size: usize,
    hash: HashStrategy,
    max_load_factor: f64,
    capacity: usize,
    len: usize,
    /// The key of a keyed strategy (version 2; `None` in version 1).
    seed: Option<u128>,
    /// The format version read (1 or 2).
    version: u32,
}

fn bad(msg: impl Into<String>) -> FlashMapError {
    FlashMapError::Snapshot(msg.into())
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN + SEED_LEN] {
        let mut h = [0u8; HEADER_LEN + SEED_LEN];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&(self.key_size as u32).to_le_bytes());
        h[16..20].copy_from_slice(&(self.value_size as u32).to_le_bytes());
        h[20..24].copy_from_slice(&self.hash.code().to_le_bytes());
        h[24..32].copy_from_slice(&self.max_load_factor.to_bits().to_le_bytes());
        h[32..40].copy_from_slice(&(self.capacity as u64).to_le_bytes());
        h[40..48].copy_from_slice(&(self.len as u64).to_le_bytes());
        h[48..64].copy_from_slice(&self.seed.unwrap_or(0).to_le_bytes());
        h
    }

    fn decode(h: &[u8; HEADER_LEN], key_size: usize, value_size: usize) -> Result<Header> {
        let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes"));
        if &h[0..8] != MAGIC {
            return Err(bad("bad magic: not a flash-map snapshot"));
        }
        let version = u32_at(8);
        if version != 1 && version != VERSION {
            return Err(bad(format!("unsupported version {version}; this build reads versions 1 and {VERSION}")));
        }
        let (ks, vs) = (u32_at(12) as usize, u32_at(16) as usize);
        if ks != key_size || vs != value_size {
            return Err(bad(format!(
                "snapshot holds {ks}-byte keys and {vs}-byte values; this map has {key_size} and {value_size}"
            )));
        }
        let hash = HashStrategy::from_code(u32_at(20))
            .filter(|h| version > 1 || !h.is_keyed())
            .ok_or_else(|| bad(format!("unknown hash strategy code {} for version {version}", u32_at(20))))?;
        let max_load_factor = f64::from_bits(u64_at(24));
        if !(max_load_factor > 0.0 && max_load_factor < 1.0) {
            return Err(bad("max load factor out of range"));
        }
        let (capacity, len) = (u64_at(32), u64_at(40));
        if capacity == 0 || capacity >= MAX_SLOTS as u64 || len > capacity {
            return Err(bad(format!("inconsistent sizes: {len} entries, capacity {capacity}")));
        }
        Ok(Header {
            key_size: ks,
            value_size: vs,
            hash,
            max_load_factor,
            capacity: capacity as usize,
            len: len as usize,
            seed: None,
            version,
        })
    }
}

/// Reads the header, entries and checksum; returns the header and the raw entry bytes.
fn read_snapshot<R: Read>(mut r: R, key_size: usize, value_size: usize) -> Result<(Header, Vec<u8>)> {
    let truncated = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            bad("truncated snapshot")
        } else {
            FlashMapError::Io(e)
        }
    };
    let mut raw = [0u8; HEADER_LEN];
    r.read_exact(&mut raw).map_err(truncated)?;
    let mut header = Header::decode(&raw, key_size, value_size)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&raw);
    if header.version >= 2 {
        let mut seed = [0u8; SEED_LEN];
        r.read_exact(&mut seed).map_err(truncated)?;
        crc.update(&seed);
        header.seed = Some(u128::from_le_bytes(seed));
    }
    let total = header.len.checked_mul(key_size + value_size).ok_or_else(|| bad("entry count overflows"))?;
    // Grow with the data actually read, never by the header's word alone.
    let mut body = Vec::with_capacity(total.min(CHUNK));
    while body.len() < total {
        let want = (total - body.len()).min(CHUNK);
        let start = body.len();
        body.resize(start + want, 0);
        r.read_exact(&mut body[start..]).map_err(truncated)?;
    }
    crc.update(&body);
    let mut sum = [0u8; 4];
    r.read_exact(&mut sum).map_err(truncated)?;
    if u32::from_le_bytes(sum) != crc.finalize() {
        return Err(bad("checksum mismatch: the snapshot is corrupt"));
    }
    Ok((header, body))
}

impl<K: bytemuck::Pod + Send + Sync, V: bytemuck::Pod + Send + Sync> FlashMap<K, V> {
    /// Writes a snapshot of the map (see the [`snapshot`](crate::snapshot) module for the
    /// format).
    ///
    /// ```
    /// # use flash_map::FlashMap;
    /// let mut m: FlashMap<u64, [u8; 16]> = FlashMap::with_capacity(100)?;
    /// m.bulk_insert(&[(1, [7; 16]), (2, [8; 16])])?;
    /// let mut bytes = Vec::new();
    /// m.save(&mut bytes)?;
    /// let back: FlashMap<u64, [u8; 16]> = FlashMap::load(&bytes[..])?;
    /// assert_eq!(back.bulk_get(&[1, 2, 3])?, vec![Some([7; 16]), Some([8; 16]), None]);
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn save<W: Write>(&self, mut w: W) -> Result<()> {
        let layout = self.engine.layout();
        let header = Header {
            key_size: size_of::<K>(),
            value_size: size_of::<V>(),
            hash: self.hash_strategy(),
            max_load_factor: layout.max_load_factor,
            capacity: layout.capacity,
            len: self.len(),
            seed: self.hash_seed(),
            version: VERSION,
        }
        .encode();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        w.write_all(&header)?;
        let mut buf = Vec::with_capacity(CHUNK + size_of::<K>() + size_of::<V>());
        let mut result = Ok(());
        let entries = &mut |k: &[u8], v: &[u8]| {
            if result.is_err() {
                return;
            }
            buf.extend_from_slice(k);
            buf.extend_from_slice(v);
            if buf.len() >= CHUNK {
                crc.update(&buf);
                result = w.write_all(&buf);
                buf.clear();
            }
        };
        dispatch!(&self.engine, t => t.for_each_entry(entries))?;
        result?;
        crc.update(&buf);
        w.write_all(&buf)?;
        w.write_all(&crc.finalize().to_le_bytes())?;
        w.flush()?;
        Ok(())
    }

    /// Reads a snapshot written by [`save`](Self::save), with the hash strategy (and its
    /// key), load factor and capacity it was saved with, on the best available backend. The saved
    /// capacity is trusted (the table is allocated lazily, but a large one costs address
    /// space and time to scan); for snapshots from untrusted sources prefer
    /// [`FlashMapBuilder::load`], which sizes the table from your builder and the content.
    pub fn load<R: Read>(r: R) -> Result<Self> {
        let (h, body) = read_snapshot(r, size_of::<K>(), size_of::<V>())?;
        let mut b = FlashMapBuilder::new(h.capacity).hash_strategy(h.hash).max_load_factor(h.max_load_factor);
        if let Some(seed) = h.seed {
            b = b.hash_seed(seed);
        }
        let map = b.build()?;
        fill(map, &body)
    }
}

impl<K: bytemuck::Pod + Send + Sync, V: bytemuck::Pod + Send + Sync> FlashMapBuilder<K, V> {
    /// Reads a snapshot into a map built with this builder's options (backend, hash
    /// strategy, load factor, growth). The capacity is the builder's, raised to the number of
    /// entries if they need more: the snapshot's own capacity field is ignored, so a snapshot
    /// from an untrusted source cannot make the table larger than its content. (Use
    /// [`FlashMap::load`] to restore a trusted snapshot exactly as saved.)
    ///
    /// ```
    /// # use flash_map::{Backend, FlashMap, FlashMapBuilder};
    /// let mut m: FlashMap<u64, u64> = FlashMap::with_capacity(1 << 20)?;
    /// m.bulk_insert(&[(1, 2)])?;
    /// let mut bytes = Vec::new();
    /// m.save(&mut bytes)?;
    /// let small: FlashMap<u64, u64> = FlashMapBuilder::new(16).backend(Backend::Serial).load(&bytes[..])?;
    /// assert_eq!((small.capacity(), small.bulk_get(&[1])?), (16, vec![Some(2)]));
    /// # Ok::<(), flash_map::FlashMapError>(())
    /// ```
    pub fn load<R: Read>(mut self, r: R) -> Result<FlashMap<K, V>> {
        let (h, body) = read_snapshot(r, size_of::<K>(), size_of::<V>())?;
        self.capacity = self.capacity.max(h.len);
        fill(self.build()?, &body)
    }
}

fn fill<K: bytemuck::Pod + Send + Sync, V: bytemuck::Pod + Send + Sync>(
    mut map: FlashMap<K, V>,
    body: &[u8],
) -> Result<FlashMap<K, V>> {
    let rec = size_of::<K>() + size_of::<V>();
    let mut batch: Vec<(K, V)> = Vec::with_capacity((body.len() / rec).min(CHUNK));
    for chunk in body.chunks(rec * CHUNK) {
        batch.clear();
        batch.extend(chunk.chunks_exact(rec).map(|e| {
            let (k, v) = e.split_at(size_of::<K>());
            (bytemuck::pod_read_unaligned(k), bytemuck::pod_read_unaligned(v))
        }));
        map.bulk_insert(&batch)?;
    }
    Ok(map)
}
