//! The memory_syscalls collector: brk / mmap / munmap / mremap per cgroup,
//! from the syscall tracepoints. These are the calls a growing heap makes even
//! when RSS is noisy: calls, bytes mapped and unmapped, how far the program
//! break moved, and a histogram of mmap lengths.
//!
//! Opt-in (`--collector.memory_syscalls`): while any syscall tracepoint is
//! enabled, every syscall of every task takes the kernel's slow path; the cost
//! is measured in docs/benchmarks.md. Without it, the `process` collector's
//! kernel accounting (`VmData`, the `[heap]` size, anonymous mapped bytes)
//! shows the same growth at scrape time, for free.

mod collector;

pub use collector::MemorySyscallsCollector;

use memleak_signals::options::at_least_one;
use memleak_signals::{CollectorSpec, MetricSpec, OptionError};
use serde::{Deserialize, Serialize};

pub static CALLS: MetricSpec = MetricSpec::counter(
    "memleak_memory_syscalls_calls_total",
    "Successful brk, mmap, munmap and mremap calls of the cgroup's tasks since the exporter attached.",
    &["cgroup", "syscall"],
);
pub static FAILED: MetricSpec = MetricSpec::counter(
    "memleak_memory_syscalls_failed_total",
    "brk, mmap, munmap and mremap calls that failed (an error, or brk refusing to move).",
    &["cgroup", "syscall"],
);
pub static MAPPED: MetricSpec = MetricSpec::counter(
    "memleak_memory_syscalls_mapped_bytes_total",
    "Bytes mapped by successful mmap calls (kind anon or file).",
    &["cgroup", "kind"],
);
pub static UNMAPPED: MetricSpec = MetricSpec::counter(
    "memleak_memory_syscalls_unmapped_bytes_total",
    "Bytes unmapped by successful munmap calls.",
    &["cgroup"],
);
pub static BRK_MOVED: MetricSpec = MetricSpec::counter(
    "memleak_memory_syscalls_brk_moved_bytes_total",
    "Bytes the program break moved (direction grown or shrunk); a process's first brk call sets its baseline.",
    &["cgroup", "direction"],
);
pub static MREMAP_RESIZED: MetricSpec = MetricSpec::counter(
    "memleak_memory_syscalls_mremap_resized_bytes_total",
    "Bytes mappings grew or shrank by (direction) in successful mremap calls.",
    &["cgroup", "direction"],
);
pub static MMAP_SIZE: MetricSpec = MetricSpec::histogram(
    "memleak_memory_syscalls_mmap_size_bytes",
    "Lengths of successful mmap calls (buckets 4 KiB × 2^i up to 32 GiB).",
    &["cgroup"],
);
pub static TRACKED_CGROUPS: MetricSpec = MetricSpec::gauge(
    "memleak_memory_syscalls_tracked_cgroups",
    "Cgroups in the BPF statistics map (an LRU of 4096 entries).",
    &[],
);
pub static TRACKED_PROCESSES: MetricSpec = MetricSpec::gauge(
    "memleak_memory_syscalls_tracked_processes",
    "Processes whose program break the BPF map remembers (at most 65536; exited ones are removed).",
    &[],
);
pub static DROPPED: MetricSpec = MetricSpec::counter(
    "memleak_memory_syscalls_dropped_entries_total",
    "Entries lost to a full BPF map (map stats, an LRU of 4096 cgroups: the least recently used cgroup's counts were evicted and restart; map breaks, 65536 processes: a new process is not tracked and its brk moves are not counted).",
    &["map"],
);
pub static UNPAIRED: MetricSpec = MetricSpec::counter(
    "memleak_memory_syscalls_unpaired_exits_total",
    "Syscall exits whose entry was not seen (the call began before attaching), not counted.",
    &[],
);

pub static SPEC: CollectorSpec = CollectorSpec {
    id: "memory_syscalls",
    about: "brk/mmap/munmap/mremap calls, bytes and mmap sizes per cgroup (eBPF syscall tracepoints)",
    enabled_by_default: false,
    metrics: &[
        &CALLS,
        &FAILED,
        &MAPPED,
        &UNMAPPED,
        &BRK_MOVED,
        &MREMAP_RESIZED,
        &MMAP_SIZE,
        &TRACKED_CGROUPS,
        &TRACKED_PROCESSES,
        &DROPPED,
        &UNPAIRED,
    ],
};

/// Settings of the memory_syscalls collector.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Most cgroups exported by name (the busiest); the rest are summed as `__other__`.
    pub max_cgroups: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { max_cgroups: 64 }
    }
}

/// Its flags (`--collector.memory_syscalls.*`) and its YAML section.
#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Most cgroups the brk/mmap/munmap/mremap collector names (those with the most calls); the
    /// others are summed as cgroup="__other__" [default: 64].
    #[arg(long, value_name = "N")]
    pub max_cgroups: Option<usize>,
}

impl memleak_signals::Options for Options {
    type Config = Config;

    fn resolve(self) -> Result<Config, OptionError> {
        Ok(Config { max_cgroups: at_least_one("max_cgroups", self.max_cgroups, Config::default().max_cgroups)? })
    }
}
