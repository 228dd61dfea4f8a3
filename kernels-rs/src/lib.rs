//! flash-map's GPU kernels, in Rust, for `nvptx64-nvidia-cuda`.
//!
//! One thread per batch entry (grid-stride loops), running the per-key algorithms of
//! `flash-map-core` — the very code the CPU engines run — through a [`Slots`]
//! implementation with device-scope PTX atomics. Built by `cargo xtask ptx` into
//! `crates/flash-map-cuda/ptx/flash_map_kernels.ptx`.
//!
//! Every kernel is panic-free: raw pointers, wrapping arithmetic, no slice indexing, so the
//! PTX has no unresolved `core::panicking` externs.
//!
//! On any other target the same code compiles without the entry points, with the device
//! atomics emulated by `core::sync::atomic` and a grid of one thread, so that host tests
//! (`cargo +nightly test` here) run every kernel's body on host memory with the parameter
//! structs the host fills: the kernels' logic and their use of the ABI are checked without
//! a GPU.
#![no_std]
#![cfg_attr(target_arch = "nvptx64", feature(abi_ptx, stdarch_nvptx, asm_experimental_arch))]
// On the host the passes have no entry points: only the tests call them.
#![cfg_attr(not(target_arch = "nvptx64"), allow(dead_code))]
#![allow(clippy::missing_safety_doc, clippy::too_many_arguments)]

mod atomics;
mod kernels;

#[cfg(test)]
mod host_tests;

#[cfg(target_arch = "nvptx64")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // Unreachable by construction (no panicking paths); trap if it ever happens.
    // SAFETY: `trap` aborts the kernel.
    unsafe { core::arch::asm!("trap;") };
    loop {}
}
