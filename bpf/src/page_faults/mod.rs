//! The page_faults collector: page-fault attribution by eBPF, in two modes.
//!
//! - `sampled` (the default of this opt-in collector): a BPF program on the
//!   `page-faults` software perf event runs once every `period` faults and
//!   counts a sample for the faulting task's cgroup. Counts are estimates
//!   (samples × period) with the period as a label, so users know the resolution.
//! - `every-fault`: a program on the `exceptions:page_fault_user` tracepoint
//!   counts every user fault exactly (period 1); it costs far more, so it is
//!   meant for short windows.
//!
//! Either way, one run in `period` (sampled: every run) also sends the
//! faulting address to user space, which attributes it to a memory region
//! (heap, anonymous mapping, file, stack) from `/proc/PID/maps`, and its user
//! stack, which goes into a pprof profile served at `/debug/pprof/page_faults`.
//! Exact per-process counts stay with the `process` collector.

mod collector;
mod fault_stacks;
mod options;
mod region_drain;
mod regions;

pub use collector::PageFaultsCollector;
pub use fault_stacks::FaultProfile;
pub use options::Options;

use memleak_signals::{CollectorSpec, MetricSpec};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub static ESTIMATED: MetricSpec = MetricSpec::counter(
    "memleak_page_faults_estimated_total",
    "Page faults attributed to the cgroup by sampling (samples × period; period is the sampling period in faults, 1 in every-fault mode).",
    &["cgroup", "period"],
);
pub static BY_REGION: MetricSpec = MetricSpec::counter(
    "memleak_page_faults_region_estimated_total",
    "Sampled page faults by the memory region of the faulting address (heap, anon, file, stack, other; unmapped: gone by the time it was classified; exited: its process was), × the period.",
    &["cgroup", "region", "period"],
);
pub static TRACKED: MetricSpec = MetricSpec::gauge(
    "memleak_page_faults_tracked_cgroups",
    "Cgroups in the BPF map of sampled page faults (an LRU of 4096 entries).",
    &[],
);
pub static DROPPED: MetricSpec = MetricSpec::counter(
    "memleak_page_faults_region_dropped_total",
    "Sampled faults (× period, like the region counts) not attributed to a region (reason ring_full: the 4 MiB ring buffer filled between two drains; cgroup_cap: the cgroup came past the 4096 the exporter keeps).",
    &["reason"],
);

pub static PROFILE_DROPPED: MetricSpec = MetricSpec::counter(
    "memleak_page_faults_profile_dropped_total",
    "Sampled faults (× period) left out of /debug/pprof/page_faults (reason stack_cap: it holds 4096 distinct stacks already; no_stack: the kernel could not take the sample's user stack).",
    &["reason"],
);

pub static SPEC: CollectorSpec = CollectorSpec {
    id: "page_faults",
    about: "Page faults per cgroup and memory region (eBPF: sampled perf event, or every fault)",
    enabled_by_default: false,
    metrics: &[&ESTIMATED, &BY_REGION, &TRACKED, &DROPPED, &PROFILE_DROPPED],
};

/// How faults reach the program: `Sampled`, one run per `period` faults on the
/// `page-faults` perf event (always-on cost); `EveryFault`, one run per user
/// fault on the `exceptions:page_fault_user` tracepoint (exact, costly: for
/// short windows), one in `period` runs attributed to a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultMode {
    Sampled,
    EveryFault,
}

/// Settings of the page_faults collector.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub mode: FaultMode,
    /// Sampled mode: one sample every `period` faults (1000 costs ~5 % on a pure
    /// fault loop here, docs/benchmarks.md); every-fault mode: one fault in
    /// `period` is attributed to a region.
    pub period: u64,
    /// Most cgroups exported by name (the busiest); the rest are summed as `__other__`.
    pub max_cgroups: usize,
    /// How long every-fault mode stays on before the collector goes back to
    /// sampling (`None`: until the exporter stops).
    pub every_fault_window: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: FaultMode::Sampled,
            period: 1000,
            max_cgroups: 64,
            every_fault_window: Some(Duration::from_secs(600)),
        }
    }
}
