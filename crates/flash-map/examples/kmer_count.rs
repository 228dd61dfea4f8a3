//! k-mer counting: every 31-mer of a DNA sequence, 2-bit encoded in a u64, counted with
//! `bulk_add` in batches; prints the most frequent k-mers. Reads a FASTA file given as the
//! first argument, or generates a sequence with repeats when none is given. Counts are
//! checked against a std HashMap on the same k-mers.
//!
//! `cargo run --release -p flash-map --example kmer_count [-- FILE.fa | - BASES]`
//! (default: 5_000_000 generated bases).

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;

use common::{arg, init_log, splitmix, Meter};
use flash_map::{FlashMap, HashStrategy};

const K: usize = 31;
const BATCH: usize = 1 << 20;

fn encode(b: u8) -> Option<u64> {
    match b {
        b'A' | b'a' => Some(0),
        b'C' | b'c' => Some(1),
        b'G' | b'g' => Some(2),
        b'T' | b't' => Some(3),
        _ => None,
    }
}

/// A generated genome: random bases with some segments copied from earlier (repeats).
fn generate(n: usize) -> Vec<u8> {
    let mut s = Vec::with_capacity(n);
    let mut i = 0u64;
    while s.len() < n {
        let r = splitmix(i);
        i += 1;
        if s.len() > 1000 && r % 50 == 0 {
            let start = (splitmix(r) % (s.len() as u64 - 500)) as usize;
            let seg: Vec<u8> = s[start..start + 200].to_vec();
            s.extend_from_slice(&seg);
        } else {
            s.push(b"ACGT"[(r >> 7) as usize & 3]);
        }
    }
    s.truncate(n);
    s
}

fn read_fasta(path: &str) -> std::io::Result<Vec<u8>> {
    let text = std::fs::read(path)?;
    let mut seq = Vec::with_capacity(text.len());
    for line in text.split(|&b| b == b'\n') {
        if !line.starts_with(b">") {
            seq.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
        }
    }
    Ok(seq)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_log();
    let seq = match std::env::args().nth(1) {
        Some(p) if p != "-" => read_fasta(&p)?,
        _ => generate(arg(2, 5_000_000)),
    };
    println!("{} bases", seq.len());
    let mask = (1u64 << (2 * K)) - 1;
    // Overlapping k-mers share most of their bits: hash every byte with Murmur3.
    let mut counts: FlashMap<u64, u32> =
        FlashMap::builder(1 << 16).hash_strategy(HashStrategy::Murmur3).auto_grow(true).build()?;
    let mut model: HashMap<u64, u32> = HashMap::new();
    let mut meter = Meter::default();
    let mut batch: Vec<(u64, u32)> = Vec::with_capacity(BATCH);
    let (mut kmer, mut valid) = (0u64, 0usize);
    let mut total = 0usize;
    for &b in &seq {
        match encode(b) {
            Some(x) => {
                kmer = ((kmer << 2) | x) & mask;
                valid += 1;
            }
            None => valid = 0, // N or other: restart the window
        }
        if valid >= K {
            batch.push((kmer, 1));
            *model.entry(kmer).or_default() += 1;
        }
        if batch.len() == BATCH {
            total += batch.len();
            meter.time(batch.len(), || counts.bulk_add(&batch))?;
            batch.clear();
            println!("{total} k-mers counted, {} distinct, {}", counts.len(), meter.summary());
        }
    }
    total += batch.len();
    meter.time(batch.len(), || counts.bulk_add(&batch))?;
    println!("{total} k-mers, {} distinct: {}", counts.len(), meter.summary());

    let mut top = counts.entries()?;
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let decode = |k: u64| -> String { (0..K).rev().map(|i| b"ACGT"[(k >> (2 * i)) as usize & 3] as char).collect() };
    println!("top k-mers:");
    for (k, c) in top.iter().take(5) {
        println!("  {} {c}", decode(*k));
    }
    assert_eq!(counts.len(), model.len());
    assert!(top.iter().all(|(k, c)| model.get(k) == Some(c)), "counts equal a std HashMap's");
    println!("verified: {} distinct k-mer counts equal a std HashMap's (backend {})", model.len(), counts.backend());
    Ok(())
}
