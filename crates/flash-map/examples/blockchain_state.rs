//! Blockchain state: 32-byte pubkey -> 128-byte account. Load N accounts, commit B blocks of
//! U updates each with `bulk_insert` (existing accounts change, new ones appear), then save a
//! snapshot, reload it and verify every account.
//!
//! `cargo run --release -p flash-map --example blockchain_state [-- ACCOUNTS BLOCKS UPDATES]`
//! (defaults 1_000_000 100 10_000).

#[path = "common/mod.rs"]
mod common;

use common::{arg, bytes32, init_log, splitmix, Meter};
use flash_map::FlashMap;

type Pubkey = [u8; 32];
type Account = [u8; 128];

/// An account: lamports, nonce, owner, data — encoded in 128 bytes.
fn account(lamports: u64, nonce: u64, owner: &Pubkey) -> Account {
    let mut a = [0u8; 128];
    a[..8].copy_from_slice(&lamports.to_le_bytes());
    a[8..16].copy_from_slice(&nonce.to_le_bytes());
    a[16..48].copy_from_slice(owner);
    a
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_log();
    let accounts: usize = arg(1, 1_000_000);
    let blocks: usize = arg(2, 100);
    let updates: usize = arg(3, 10_000);
    let owner = bytes32(9, 0);

    // Room for the genesis accounts plus every account the blocks may create.
    let mut state: FlashMap<Pubkey, Account> = FlashMap::builder(accounts + blocks * updates).build()?;
    println!("{state:?}");
    let mut meter = Meter::default();
    let genesis: Vec<(Pubkey, Account)> =
        (0..accounts as u64).map(|i| (bytes32(1, i), account(1_000 + i, 0, &owner))).collect();
    let created = meter.time(accounts, || state.bulk_insert(&genesis))?;
    assert_eq!(created, accounts);
    println!("genesis: {accounts} accounts, {}", meter.summary());

    let mut commits = Meter::default();
    let mut new_accounts = 0usize;
    let mut next_new = 0u64;
    for block in 0..blocks as u64 {
        // 90% of a block's writes touch existing accounts, 10% create accounts.
        let changes: Vec<(Pubkey, Account)> = (0..updates as u64)
            .map(|j| {
                let r = splitmix(block << 32 | j);
                if r % 10 == 0 {
                    next_new += 1;
                    (bytes32(2, next_new), account(r % 1_000, block, &owner))
                } else {
                    (bytes32(1, r % accounts as u64), account(r % 1_000_000, block + 1, &owner))
                }
            })
            .collect();
        new_accounts += commits.time(updates, || state.bulk_insert(&changes))?;
        if (block + 1) % 10 == 0 || block + 1 == blocks as u64 {
            println!("block {:>4}: {} accounts, {}", block + 1, state.len(), commits.summary());
        }
    }
    assert_eq!(new_accounts as u64, next_new, "every created account is new");
    assert_eq!(state.len(), accounts + new_accounts);

    let mut snapshot = Vec::new();
    let t = std::time::Instant::now();
    state.save(&mut snapshot)?;
    let saved = t.elapsed();
    let t = std::time::Instant::now();
    let reloaded: FlashMap<Pubkey, Account> = FlashMap::load(&snapshot[..])?;
    let loaded = t.elapsed();
    println!(
        "snapshot: {:.1} MiB, saved in {saved:.1?}, reloaded in {loaded:.1?} on {}",
        snapshot.len() as f64 / (1 << 20) as f64,
        reloaded.backend()
    );

    let keys: Vec<Pubkey> =
        (0..accounts as u64).map(|i| bytes32(1, i)).chain((1..=next_new).map(|i| bytes32(2, i))).collect();
    let (a, b) = (state.bulk_get(&keys)?, reloaded.bulk_get(&keys)?);
    assert!(a.iter().all(Option::is_some), "every account is present");
    assert_eq!(a, b, "the reloaded state equals the committed state");
    println!("verified: {} accounts identical after save and reload (backend {})", keys.len(), state.backend());
    Ok(())
}
