//! One [`FlashMap`](flash_map::FlashMap) shard per timely dataflow worker: a map that spans
//! threads, processes and hosts, fed in bulk.
//!
//! - [`Cluster`] runs the workers: threads of one process, or processes on several hosts
//!   (timely's `-w`, `-n`, `-p`, `-h`), connected within a deadline.
//! - [`ShardBuilder`] gives each worker its [`Shard`] on its best backend, after checking
//!   that every worker holds the same key and value types; shards save and load snapshots
//!   by worker index.
//! - [`FlashOps`] adds operators to timely streams: `flash_add`, `flash_upsert`,
//!   `flash_insert_new`, `flash_remove` and `flash_get`. Each routes records with
//!   [`flash_map::shard_of`] as byte buffers, one per destination, and applies a
//!   timestamp's records on each shard as **one bulk call** once the frontier passes it.
//!   `flash_insert_new` and `flash_get` send their answers back to the asking worker, in
//!   the order it asked.
//!
//! Order: an operator applies its timestamps in order, and within a timestamp the records
//! sorted by the worker that sent them, then in the order that worker received them, so
//! results never depend on thread timing. Operators are independent of each other, even on
//! one shard: a lookup operator may run ahead of an update operator. To make lookups see
//! some updates, send them once the updates' probe has passed those updates' time, as
//! below (timely's usual way to sequence work).
//!
//! ```
//! use flash_map_timely::{Cluster, FlashKeyOps, FlashOps, ShardBuilder};
//! use timely::dataflow::{InputHandle, ProbeHandle};
//! use timely::dataflow::operators::{Capture, Probe};
//! use timely::dataflow::operators::capture::Extract;
//!
//! let counts = Cluster::local(2).run(|worker, ctx| {
//!     let shard = ShardBuilder::<u64, u32>::new(1024).build(worker, ctx)?;
//!     let (mut adds, mut asks) = (InputHandle::new(), InputHandle::new());
//!     let probe = ProbeHandle::new();
//!     let answers = worker.dataflow::<u64, _, _>(|scope| {
//!         adds.to_stream(scope).flash_add(&shard).probe_with(&probe);
//!         asks.to_stream(scope).flash_get(&shard).probe_with(&probe).capture()
//!     });
//!     // Time 0: every worker counts its words.
//!     adds.send_batch(&mut vec![(7u64, 1u32), (9, 1), (7, 1)]);
//!     adds.advance_to(1);
//!     asks.advance_to(1);
//!     while probe.less_than(&1) {
//!         worker.step();
//!     }
//!     // Time 1, after every shard has applied time 0: worker 0 asks for two words.
//!     if ctx.index == 0 {
//!         asks.send_batch(&mut vec![7u64, 8]);
//!     }
//!     drop((adds, asks));
//!     while worker.step_or_park(None) {}
//!     if let Some(e) = shard.take_error() { return Err(e) }
//!     Ok(answers.extract().into_iter().flat_map(|(_, v)| v).collect::<Vec<_>>())
//! })?;
//! // Two workers each added 7 twice: worker 0 hears 4; 8 was never added.
//! assert_eq!(counts[0], vec![(7, Some(4)), (8, None)]);
//! assert!(counts[1].is_empty());
//! # Ok::<(), flash_map_timely::Error>(())
//! ```

mod cluster;
mod error;
mod ops;
mod shard;
mod wire;

pub use cluster::{Cluster, WorkerCtx};
pub use error::{Error, Result};
pub use ops::{Applied, FlashKeyOps, FlashOps};
pub use shard::{Shard, ShardBuilder};
pub use timely;
