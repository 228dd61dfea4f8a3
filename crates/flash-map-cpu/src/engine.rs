//! [`CpuTable`] as a [`BulkEngine`]: the contract the umbrella crate drives.

use flash_map_core::{Batch, BulkEngine, CounterKind, GetSink, KeyHasher, Ledger, TableLayout};

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
    fn insert(&mut self, b: &Batch<'_>) -> Result<usize, CpuError> {
        CpuTable::insert(self, b)
    }
    fn insert_new(&mut self, b: &Batch<'_>, out: &mut [bool]) -> Result<usize, CpuError> {
        CpuTable::insert_new(self, b, out)
    }
    fn add(&mut self, b: &Batch<'_>, kind: CounterKind) -> Result<usize, CpuError> {
        CpuTable::add(self, b, kind)
    }
    fn get<S: GetSink>(&self, b: &Batch<'_>, sink: &S) -> Result<(), CpuError> {
        CpuTable::get(self, b, sink);
        Ok(())
    }
    fn contains(&self, b: &Batch<'_>, out: &mut [bool]) -> Result<(), CpuError> {
        CpuTable::contains(self, b, out);
        Ok(())
    }
    fn remove(&mut self, b: &Batch<'_>) -> Result<usize, CpuError> {
        CpuTable::remove(self, b)
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
