#![doc = include_str!("../../../README.md")]
//!
//! # Crate layout
//!
//! - [`FlashMap`] and [`FlashMapBuilder`]: the bulk API.
//! - [`Backend`]: Cuda, Rayon or Serial; chosen at `build()`.
//! - [`FlashMapError`]: every failure, with what to do about it.
//! - [`Counter`]: value types for [`FlashMap::bulk_add`].
//! - [`snapshot`]: the `save`/`load` format.
//! - [`AsyncFlashMap`] (feature `tokio`).

mod backend;
mod builder;
mod counter;
mod error;
mod map;
pub mod snapshot;

#[cfg(feature = "tokio")]
mod async_map;

#[cfg(feature = "tokio")]
pub use async_map::AsyncFlashMap;
pub use backend::Backend;
pub use builder::FlashMapBuilder;
pub use bytemuck::Pod;
pub use counter::Counter;
pub use error::{FlashMapError, Result};
pub use flash_map_core::HashStrategy;
pub use map::{FlashMap, MapStats, ProbeStats, MAX_BATCH};
