//! Helpers shared by the examples: deterministic data, timing, logging.
#![allow(dead_code, unreachable_pub)]

use std::time::Instant;

/// SplitMix64: a fast, well-mixed bijection on u64 (deterministic test data).
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A pseudo-random 32-byte value (a public key, a digest) for index `i` of stream `s`.
pub fn bytes32(s: u64, i: u64) -> [u8; 32] {
    let mut k = [0u8; 32];
    for (j, c) in k.chunks_exact_mut(8).enumerate() {
        c.copy_from_slice(&splitmix(s.wrapping_mul(0x1000_0000_0000) ^ (i << 2 | j as u64)).to_le_bytes());
    }
    k
}

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise.
pub fn init_log() {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).try_init();
}

/// The `i`-th command-line argument parsed, or `default`.
pub fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// Accumulates operations and time for a throughput line.
#[derive(Default)]
pub struct Meter {
    pub ops: u64,
    pub secs: f64,
}

impl Meter {
    /// Runs `f`, counting `ops` operations.
    pub fn time<T>(&mut self, ops: usize, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        self.secs += t.elapsed().as_secs_f64();
        self.ops += ops as u64;
        r
    }

    /// "N ops in T ms (R M ops/s)".
    pub fn summary(&self) -> String {
        format!(
            "{} ops in {:.1} ms ({:.2} M ops/s)",
            self.ops,
            self.secs * 1e3,
            self.ops as f64 / self.secs.max(1e-9) / 1e6
        )
    }
}
