//! GPU-resident database index: a hash index over table A's join column (hashed to 32 bytes)
//! -> row id, probed by every row of table B (a hash join). The join is verified against a
//! sort-merge join of the same tables.
//!
//! `cargo run --release -p flash-map --example db_index_join [-- ROWS_A ROWS_B]`
//! (defaults 2_000_000 4_000_000).

#[path = "common/mod.rs"]
mod common;

use common::{arg, bytes32, init_log, splitmix, Meter};
use flash_map::FlashMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_log();
    let rows_a: u64 = arg(1, 2_000_000);
    let rows_b: u64 = arg(2, 4_000_000);
    // Table A: a unique join column (a customer id), hashed to 32 bytes, and its row id.
    let a: Vec<([u8; 32], u64)> = (0..rows_a).map(|row| (bytes32(3, splitmix(row) % (rows_a * 4)), row)).collect();
    let mut index: FlashMap<[u8; 32], u64> = FlashMap::builder(rows_a as usize).build()?;
    println!("{index:?}");
    let mut build = Meter::default();
    let inserted = build.time(a.len(), || index.bulk_insert(&a))?;
    println!("index built over {rows_a} rows ({inserted} distinct keys): {}", build.summary());

    // Table B: foreign keys drawn from the same domain, so about a quarter match.
    let b: Vec<[u8; 32]> = (0..rows_b).map(|row| bytes32(3, splitmix(row ^ 0xB) % (rows_a * 4))).collect();
    let mut probe = Meter::default();
    let matches = probe.time(b.len(), || index.bulk_get(&b))?;
    let joined: Vec<(u64, u64)> =
        matches.iter().enumerate().filter_map(|(rb, m)| m.map(|ra| (ra, rb as u64))).collect();
    println!("probe of {rows_b} rows: {} matches, {}", joined.len(), probe.summary());

    // Sort-merge join of the same tables (the last row wins for repeated keys in A, as in
    // the index).
    let mut sa: Vec<([u8; 32], u64)> = a.clone();
    sa.sort_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)));
    sa.dedup_by(|x, y| x.0 == y.0);
    let mut sb: Vec<([u8; 32], u64)> = b.iter().enumerate().map(|(i, k)| (*k, i as u64)).collect();
    sb.sort();
    let mut merge = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < sa.len() && j < sb.len() {
        match sa[i].0.cmp(&sb[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                merge.push((sa[i].1, sb[j].1));
                j += 1;
            }
        }
    }
    let mut hashed = joined.clone();
    hashed.sort_by_key(|p| p.1);
    merge.sort_by_key(|p| p.1);
    assert_eq!(hashed, merge, "hash join = sort-merge join");
    println!("verified: {} join rows equal a sort-merge join (backend {})", merge.len(), index.backend());
    Ok(())
}
