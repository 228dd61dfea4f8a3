//! [`CpuTable`] as a [`BulkEngine`]: the contract the umbrella crate drives (each bulk
//! operation's trait is implemented in its own module: `write`, `lookup`, `remove`).

use flash_map_core::{BulkEngine, KeyHasher, Ledger, TableLayout};

use crate::{CpuError, CpuTable};

impl BulkEngine for CpuTable {
    type Error = CpuError;

    fn layout(&self) -> &TableLayout {
        &self.layout
    }
    fn ledger(&self) -> Ledger {
        self.ledger
    }
    fn hasher(&self) -> KeyHasher {
        self.hash
    }
    fn for_each_entry(&self, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), CpuError> {
        CpuTable::for_each_entry(self, f);
        Ok(())
    }
    fn clear(&mut self) -> Result<(), CpuError> {
        CpuTable::clear(self);
        Ok(())
    }
    fn rebuild_with(&mut self, layout: TableLayout, hash: KeyHasher) -> Result<(), CpuError> {
        CpuTable::rebuild_with(self, layout, hash)
    }
    fn probe_lengths(&self, keys: &[u8]) -> Result<(u64, usize), CpuError> {
        Ok(CpuTable::probe_lengths(self, keys))
    }
    fn buffer_bytes(&self) -> usize {
        CpuTable::buffer_bytes(self)
    }
    fn release_buffers(&mut self) {
        CpuTable::release_buffers(self)
    }
}
