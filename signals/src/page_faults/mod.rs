//! Sampled page-fault attribution by eBPF (the collector lives in the
//! `memleak-bpf` crate): a BPF program on the `page-faults` software perf event,
//! run once every `period` faults, counts samples per cgroup. Counts are
//! estimates (samples × period) with the period as a label, so users know the
//! resolution; exact per-process counts stay with the `process` collector.

use crate::model::MetricSpec;
use crate::registry::{Roles, SignalSpec};

pub static ESTIMATED: MetricSpec = MetricSpec::counter(
    "memleak_page_faults_estimated_total",
    "Page faults attributed to the cgroup by sampling (samples × period; period is the sampling period in faults).",
    &["cgroup", "period"],
);
pub static TRACKED: MetricSpec = MetricSpec::gauge(
    "memleak_page_faults_tracked_cgroups",
    "Cgroups in the BPF map of sampled page faults (an LRU of 4096 entries).",
    &[],
);

pub static SIGNAL: SignalSpec = SignalSpec {
    id: "page_faults",
    description: "Sampled page faults per cgroup (eBPF on the page-faults perf event)",
    roles: Roles::COLLECTOR,
    enabled_by_default: false,
    metrics: &[&ESTIMATED, &TRACKED],
};
