//! Packet deduplication: 32-byte packet hashes arrive in batches with repeats (within a
//! batch and across batches); `bulk_insert_new` keeps the first sighting and flags the rest.
//! The duplicate rate found is checked against the generator's truth.
//!
//! `cargo run --release -p flash-map --example packet_dedup [-- BATCHES BATCH_SIZE]`
//! (defaults 100 100_000).

#[path = "common/mod.rs"]
mod common;

use common::{arg, bytes32, init_log, splitmix, Meter};
use flash_map::FlashMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_log();
    let batches: u64 = arg(1, 100);
    let size: u64 = arg(2, 100_000);
    let mut seen: FlashMap<[u8; 32], u64> = FlashMap::builder((batches * size) as usize).build()?;
    println!("{seen:?}");
    let mut meter = Meter::default();
    let (mut packets, mut dups_found, mut dups_true) = (0u64, 0u64, 0u64);
    let mut fresh = 0u64; // flows emitted so far: flow ids 0..fresh have been seen
    for b in 0..batches {
        // About 30% of packets repeat an earlier flow (retransmits, multicast copies).
        let mut batch = Vec::with_capacity(size as usize);
        for j in 0..size {
            let r = splitmix(b << 32 | j);
            if fresh > 0 && r % 10 < 3 {
                let flow = splitmix(r) % fresh;
                batch.push((bytes32(7, flow), b));
                dups_true += 1;
            } else {
                batch.push((bytes32(7, fresh), b));
                fresh += 1;
            }
        }
        let first = meter.time(batch.len(), || seen.bulk_insert_new(&batch))?;
        dups_found += first.iter().filter(|&&f| !f).count() as u64;
        packets += size;
        if (b + 1) % (batches / 10).max(1) == 0 {
            println!("batch {:>4}: {packets} packets, {} distinct, {}", b + 1, seen.len(), meter.summary());
        }
    }
    assert_eq!(dups_found, dups_true, "duplicates found = duplicates generated");
    assert_eq!(seen.len() as u64, fresh);
    println!(
        "verified: duplicate rate {:.2}% ({dups_found} of {packets}) matches the generator; backend {}",
        100.0 * dups_found as f64 / packets as f64,
        seen.backend()
    );
    Ok(())
}
