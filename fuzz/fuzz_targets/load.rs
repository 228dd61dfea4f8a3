//! `load` on arbitrary bytes: an error or a valid map, never a panic, an abort or a huge
//! allocation. Inputs that load must round-trip through `save`.
#![no_main]

use flash_map::{Backend, FlashMap, FlashMapBuilder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = FlashMapBuilder::<[u8; 3], u16>::new(1).backend(Backend::Serial).load(data) {
        let mut out = Vec::new();
        m.save(&mut out).unwrap();
        let back: FlashMap<[u8; 3], u16> = FlashMap::load(&out[..]).unwrap();
        let (mut a, mut b) = (m.entries().unwrap(), back.entries().unwrap());
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
});
