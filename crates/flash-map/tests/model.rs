//! Model tests: every backend against std's HashMap, many key/value sizes, both hashes.

mod common;
use common::{all_backends, all_backends_at};

#[test]
fn key1_value4() {
    all_backends::<[u8; 1], u32>(128, 300, 64, 1);
}

#[test]
fn key3_value5() {
    all_backends::<[u8; 3], [u8; 5]>(512, 300, 300, 2);
}

#[test]
fn key8_value8() {
    all_backends::<u64, u64>(1024, 300, 600, 3);
}

#[test]
fn key13_value8() {
    all_backends::<[u8; 13], u64>(700, 300, 500, 4);
}

#[test]
fn key32_value128() {
    all_backends::<[u8; 32], [u8; 128]>(1024, 250, 600, 5);
}

#[test]
fn key64_value4096() {
    all_backends::<[u8; 64], [u8; 4096]>(64, 200, 60, 6);
}

#[test]
fn key16_unit_value() {
    all_backends::<[u32; 4], ()>(256, 300, 200, 7);
}

#[test]
fn large_batches_cross_parallel_chunks() {
    // Batches above the rayon split size, with heavy duplication.
    all_backends::<u64, [u8; 12]>(20_000, 40, 30_000, 8);
}

#[test]
fn high_load_with_removals_keeps_the_headroom_rule() {
    // At load factor 0.95 the headroom is 1/20 of the slots: inserts after removals used
    // to use up its empty slots (issue 11); the harness checks the rule after every call.
    all_backends_at::<u64, u32>(3800, 300, 1500, 9, 0.95);
    all_backends_at::<[u8; 16], u64>(1000, 300, 400, 10, 0.99);
}
