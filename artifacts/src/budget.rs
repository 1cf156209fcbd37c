//! What ingesting one artifact may cost: caps on the input as stored, on its
//! decompression, on the parsed model, on the outputs, and on the time taken.
//!
//! The cheap checks come first: the stored size is known before reading, the
//! decompressed size and ratio are checked while inflating (a bomb is refused
//! after at most `decompressed_bytes`, not after it is all inflated), the
//! model is metered while it is built (see `meter`), the outputs while they
//! are written.

use std::time::Duration;

/// The caps for one artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Largest input as stored (compressed or not); checked before reading.
    pub file_bytes: u64,
    /// Largest text after decompression: it is held in memory while parsed.
    pub decompressed_bytes: u64,
    /// Largest decompressed-to-compressed ratio, checked once `RATIO_FROM_BYTES` are inflated.
    pub ratio: u64,
    /// Memory of the parsed model (stacks, samples, records, totals): past it
    /// the rest is left out and the summary says what and how much.
    pub parsed_bytes: u64,
    /// All outputs of one artifact together (profile, collapsed stacks, flame graph, summary).
    pub output_bytes: u64,
    /// Wall time from opening the input to its last output.
    pub time: Duration,
}

/// Below this many inflated bytes the ratio is not checked: small files compress
/// far beyond any sane ratio (a few kilobytes of zeros) and cost nothing.
pub const RATIO_FROM_BYTES: u64 = 1 << 20;

const MIB: u64 = 1 << 20;

impl Budget {
    /// The watched folders' budget, sized for the shipped unit's `MemoryMax=64M`
    /// (measured: see the README's trust model section).
    pub const WATCHED: Budget = Budget {
        file_bytes: 64 * MIB,
        decompressed_bytes: 16 * MIB,
        ratio: 500,
        parsed_bytes: 8 * MIB,
        output_bytes: 32 * MIB,
        time: Duration::from_secs(60),
    };

    /// The `ingest` command's budget: a person runs it on a workstation, on files they chose.
    pub const COMMAND: Budget = Budget {
        file_bytes: 4096 * MIB,
        decompressed_bytes: 1024 * MIB,
        ratio: 500,
        parsed_bytes: 1024 * MIB,
        output_bytes: 2048 * MIB,
        time: Duration::from_secs(30 * 60),
    };
}

impl Default for Budget {
    fn default() -> Budget {
        Budget::COMMAND
    }
}
