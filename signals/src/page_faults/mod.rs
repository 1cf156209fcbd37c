//! Page-fault attribution by eBPF (the collector lives in the `memleak-bpf`
//! crate). Two modes:
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

use crate::model::MetricSpec;
use crate::registry::{Roles, SignalSpec};

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

pub static SIGNAL: SignalSpec = SignalSpec {
    id: "page_faults",
    description: "Page faults per cgroup and memory region (eBPF: sampled perf event, or every fault)",
    roles: Roles::COLLECTOR,
    enabled_by_default: false,
    metrics: &[&ESTIMATED, &BY_REGION, &TRACKED, &DROPPED, &PROFILE_DROPPED],
};
