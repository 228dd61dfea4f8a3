//! flash-map's GPU kernels, in Rust, for `nvptx64-nvidia-cuda`.
//!
//! One thread per batch entry (grid-stride loops), running the per-key algorithms of
//! `flash-map-core` — the very code the CPU engines run — through a [`Slots`]
//! implementation with device-scope PTX atomics. Built by `cargo xtask ptx` into
//! `crates/flash-map-cuda/ptx/flash_map_kernels.ptx`.
//!
//! Every kernel is panic-free: raw pointers, wrapping arithmetic, no slice indexing, so the
//! PTX has no unresolved `core::panicking` externs.
#![no_std]
#![feature(abi_ptx, stdarch_nvptx, asm_experimental_arch)]
#![allow(clippy::missing_safety_doc, clippy::too_many_arguments)]

mod atomics;
mod kernels;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // Unreachable by construction (no panicking paths); trap if it ever happens.
    // SAFETY: `trap` aborts the kernel.
    unsafe { core::arch::asm!("trap;") };
    loop {}
}
