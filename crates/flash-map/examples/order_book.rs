//! Order book: u64 order id -> 32-byte order entry. Each tick inserts new orders, amends some
//! resting ones and cancels others, in batches; a shadow set checks every count.
//!
//! `cargo run --release -p flash-map --example order_book [-- TICKS ORDERS_PER_TICK]`
//! (defaults 1_000 20_000).

#[path = "common/mod.rs"]
mod common;

use std::collections::HashSet;

use bytemuck::{Pod, Zeroable};
use common::{arg, init_log, splitmix, Meter};
use flash_map::{FlashMap, HashStrategy};

/// A resting order: price in ticks, quantity, timestamp, side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct Order {
    price: u64,
    qty: u64,
    ts: u64,
    side: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_log();
    let ticks: u64 = arg(1, 1_000);
    let per_tick: u64 = arg(2, 20_000);
    // Order ids are sequential: Murmur3 spreads them (Identity would place consecutive ids
    // in consecutive slots and build long probe runs).
    let mut book: FlashMap<u64, Order> =
        FlashMap::builder(1 << 20).hash_strategy(HashStrategy::Murmur3).auto_grow(true).build()?;
    println!("{book:?}");
    let mut live: Vec<u64> = Vec::new();
    let mut shadow: HashSet<u64> = HashSet::new();
    let (mut ins_m, mut amend_m, mut cancel_m) = (Meter::default(), Meter::default(), Meter::default());
    let mut next_id = 1u64;
    for tick in 0..ticks {
        let new: Vec<(u64, Order)> = (0..per_tick / 2)
            .map(|j| {
                let id = next_id + j;
                let r = splitmix(id);
                (id, Order { price: 10_000 + r % 200, qty: 1 + r % 1_000, ts: tick, side: r & 1 })
            })
            .collect();
        next_id += per_tick / 2;
        let created = ins_m.time(new.len(), || book.bulk_insert(&new))?;
        assert_eq!(created, new.len());
        for (id, _) in &new {
            shadow.insert(*id);
            live.push(*id);
        }
        // Amend a quarter of the tick's volume: quantity changes on resting orders.
        let amends: Vec<(u64, Order)> = (0..per_tick / 4)
            .map(|j| {
                let id = live[(splitmix(tick << 20 | j) % live.len() as u64) as usize];
                (id, Order { price: 10_000, qty: j, ts: tick, side: 0 })
            })
            .collect();
        assert_eq!(amend_m.time(amends.len(), || book.bulk_insert(&amends))?, 0, "amends create nothing");
        // Cancel as many orders as arrived, oldest-biased, some of them twice.
        let mut cancels: Vec<u64> = Vec::with_capacity(per_tick as usize / 2);
        for j in 0..per_tick / 2 {
            let idx = (splitmix(!tick << 20 | j) % live.len() as u64) as usize;
            cancels.push(live[idx / 2]);
        }
        let expect = cancels.iter().filter(|id| shadow.remove(id)).count();
        let removed = cancel_m.time(cancels.len(), || book.bulk_remove(&cancels))?;
        assert_eq!(removed, expect, "tick {tick}: cancels");
        live.retain(|id| shadow.contains(id));
        assert_eq!(book.len(), shadow.len());
        if (tick + 1) % (ticks / 10).max(1) == 0 {
            println!("tick {:>5}: {} resting orders, insert {}", tick + 1, book.len(), ins_m.summary());
        }
    }
    let ids: Vec<u64> = live.clone();
    assert!(book.bulk_contains(&ids)?.iter().all(|&c| c), "every resting order is in the book");
    println!("inserts: {}\namends:  {}\ncancels: {}", ins_m.summary(), amend_m.summary(), cancel_m.summary());
    println!("verified: {} resting orders match the shadow book (backend {})", book.len(), book.backend());
    Ok(())
}
