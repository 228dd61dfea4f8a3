//! A GPU-resident database index (feature `cuda`): the index is built from device columns
//! (table A's join column, hashed to 32 bytes, and its row ids), then probed by a stream of
//! join batches of table B that are already in GPU memory, as earlier operators of a GPU
//! query would leave them. Keys, results and the index never cross PCIe; only the match
//! counts come back, and at the end one copy of the results for the check. Every result is
//! checked against the same join run on the host.
//!
//! `cargo run --release -p flash-map --example gpu_join --features cuda,rayon [-- ROWS_A BATCHES BATCH_ROWS]`
//! (defaults 4_000_000 16 1_000_000). Without a GPU it says so and exits.

#[path = "common/mod.rs"]
mod common;

use common::{arg, bytes32, init_log, splitmix, Meter};
use flash_map::{Backend, FlashMap};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_log();
    let rows_a: u64 = arg(1, 4_000_000);
    let batches: u64 = arg(2, 16);
    let batch_rows: u64 = arg(3, 1_000_000);
    let mut index: FlashMap<[u8; 32], u64> = match FlashMap::builder(rows_a as usize).backend(Backend::Cuda).build() {
        Ok(m) => m,
        Err(e) => {
            println!("no usable CUDA device ({e}); this example needs one: see quickstart for the CPU backends");
            return Ok(());
        }
    };
    let stream = index.cuda_stream()?;
    println!("{index:?}");

    // Table A's columns, as a GPU query would hold them.
    let keys_a: Vec<[u8; 32]> = (0..rows_a).map(|row| bytes32(3, splitmix(row) % (rows_a * 4))).collect();
    let rows: Vec<u64> = (0..rows_a).collect();
    let (d_keys_a, d_rows) = (stream.clone_htod(&keys_a)?, stream.clone_htod(&rows)?);
    let mut build = Meter::default();
    let distinct = build.time(keys_a.len(), || index.bulk_insert_device(&d_keys_a, &d_rows))?;
    index.cuda_synchronize()?;
    println!("index built from device columns over {rows_a} rows ({distinct} distinct keys): {}", build.summary());

    // Table B's join batches, already on the device; about a quarter of the rows match.
    let probes: Vec<Vec<[u8; 32]>> = (0..batches)
        .map(|b| (0..batch_rows).map(|r| bytes32(3, splitmix((b << 32 | r) ^ 0xB) % (rows_a * 4))).collect())
        .collect();
    let d_probes = probes.iter().map(|p| stream.clone_htod(p)).collect::<Result<Vec<_>, _>>()?;
    let mut d_rows_out = stream.alloc_zeros::<u64>(batch_rows as usize)?;
    let mut d_found = stream.alloc_zeros::<bool>(batch_rows as usize)?;
    index.cuda_synchronize()?;

    let mut probe = Meter::default();
    let mut last = (Vec::new(), Vec::new());
    for (b, d) in d_probes.iter().enumerate() {
        probe.time(d.len(), || -> Result<(), flash_map::FlashMapError> {
            index.bulk_get_device(d, &mut d_rows_out, &mut d_found)?;
            index.cuda_synchronize()
        })?;
        if b + 1 == d_probes.len() {
            last = (stream.clone_dtoh(&d_found)?, stream.clone_dtoh(&d_rows_out)?);
        }
        if b % 4 == 3 {
            log::info!("probed {} of {batches} batches: {}", b + 1, probe.summary());
        }
    }
    println!("probe of {batches} device-resident batches of {batch_rows} rows: {}", probe.summary());

    // The check: the same index on the host, the last batch probed there.
    let mut host: FlashMap<[u8; 32], u64> = FlashMap::builder(rows_a as usize).force_cpu().build()?;
    host.bulk_insert_columns(&keys_a, &rows)?;
    let want = host.bulk_get(probes.last().map_or(&[][..], |p| &p[..]))?;
    let (found, got_rows) = last;
    let got: Vec<Option<u64>> = found.iter().zip(&got_rows).map(|(&f, &r)| f.then_some(r)).collect();
    assert_eq!(got, want, "device join = host join");
    let matches = want.iter().filter(|m| m.is_some()).count();
    println!("verified: the last batch's {matches} matches equal the host's (backend {})", index.backend());
    Ok(())
}
