//! [`Error`]: every way a distributed job can fail, with what to do about it.

use std::path::PathBuf;
use std::time::Duration;

/// Errors of `flash-map-timely`. Every message says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command line or the hostfile could not be read.
    #[error("bad arguments: {0}")]
    Args(String),
    /// This process could not reach a peer process, or a peer did not answer, in time.
    #[error(
        "process {process} could not connect to process {peer} at {address} within {waited:?}: {reason}; \
         start every process of the job with the same hostfile (or -n) and its own -p"
    )]
    Connect {
        /// This process's index.
        process: usize,
        /// The peer it waited for.
        peer: usize,
        /// The peer's address.
        address: String,
        /// How long it waited.
        waited: Duration,
        /// The last error seen.
        reason: String,
    },
    /// The workers disagree on what the shard holds, or a peer did not answer in time.
    #[error("workers disagree: {0}")]
    Handshake(String),
    /// A shard snapshot is missing, from another job shape, or of other types.
    #[error("snapshot {path}: {reason}")]
    Snapshot {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A record batch could not be applied: it came from a worker of other types, or the
    /// shard that owns some of this worker's records failed their batch (that shard's
    /// worker has the cause).
    #[error("{0}")]
    Remote(String),
    /// The shard's map failed (for example, a batch did not fit and growth is off).
    #[error(transparent)]
    Map(#[from] flash_map::FlashMapError),
    /// Reading or writing a file failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// timely could not start the workers.
    #[error("timely: {0}")]
    Timely(String),
    /// A worker thread panicked.
    #[error("worker panicked: {0}")]
    WorkerPanicked(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
