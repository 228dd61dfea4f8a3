//! Removals: each present key's slot becomes a tombstone; the ledger counts them and the
//! table compacts when they pile up.

use flash_map_core::probe::remove;
use flash_map_core::{Batch, Remove};

use crate::ops::Mutation;
use crate::pipeline::{fetch_for, per_plan, plan_of, staged, Ahead, Fetch};
#[cfg(feature = "rayon")]
use crate::slots::AtomicSlots;
use crate::slots::{per_hash, per_key_size, with_key_size, with_strategy};
use crate::{CpuError, CpuTable, Exec};

impl CpuTable {
    fn remove_in_order(&mut self, b: &Batch<'_>, shift: Option<u32>) -> usize {
        let raw = self.raw();
        let hs = self.hash;
        let fetch = match shift {
            Some(shift) => Fetch::Plain { values: false, shift },
            None => fetch_for(self.table_bytes(), Fetch::Home { keys: true, values: 0 }),
        };
        match self.exec {
            Exec::Serial => per_hash!(hs, ID => per_key_size!(self.layout.key_size, KS => {
                let (raw, hs) = (with_key_size::<KS>(raw), with_strategy::<ID>(hs));
                let s = raw.plain();
                let mut n = 0;
                if let Fetch::Plain { .. } = fetch {
                    let pass = |i, h| {
                        // SAFETY: `i < b.len()`, keys valid.
                        let gone = unsafe { remove(&s, h, b.key(i)) };
                        n += gone as usize;
                    };
                    // SAFETY: `raw` is this table's, written by this thread alone; the
                    // batch's keys have the table's key size (checked by `remove`).
                    unsafe { staged(&raw, hs, b, 0..b.len(), fetch, pass) };
                    return n;
                }
                // Compiled for the plans of a removal: nothing (a cached table) or the home
                // key line.
                per_plan!(plan_of(&raw, fetch), P => {
                    // SAFETY: as above.
                    let mut ahead = unsafe { Ahead::<KS, P>::new(&raw, hs, b, 0..b.len(), fetch) };
                    for i in 0..b.len() {
                        // SAFETY: `i` runs through the batch in order; keys valid.
                        n += unsafe { remove(&s, ahead.next(i), b.key(i)) } as usize;
                    }
                    n
                }; 0, ON | KEYS)
            })),
            #[cfg(feature = "rayon")]
            Exec::Rayon => {
                let s = AtomicSlots(raw);
                self.exec.sum_chunks(b.len(), |range| {
                    let mut n = 0;
                    let pass = |i, h| {
                        // SAFETY: as above; other threads swap state words meanwhile, so the
                        // search reads them atomically too (`probe::remove`), and the swap is
                        // a CAS, so one remover wins.
                        let gone = unsafe { remove(&s, h, b.key(i)) };
                        n += gone as usize;
                    };
                    // SAFETY: as above (the prefetch reads no table memory); `range` is
                    // within the batch.
                    unsafe { staged(&raw, hs, b, range, fetch, pass) };
                    n
                })
            }
        }
    }
}

impl Remove for CpuTable {
    /// Removes every key of `b`; returns how many distinct keys were present.
    fn remove(&mut self, b: &Batch<'_>) -> Result<usize, CpuError> {
        self.check_shape(b, false);
        let removed =
            self.partitioned(b, Mutation::Remove, false, |t, b, r| Ok(t.remove_in_order(b, r.map(|r| r.shift))))?;
        self.ledger.removed(removed);
        self.compact_if_needed();
        Ok(removed)
    }
}
