//! Per-process-group memory: resident and virtual size and page faults on every
//! scrape; anonymous/file/shmem/swap, data segment, peak RSS, PSS, mapping
//! counts, the brk heap and anonymous mappings from a background refresh (see `detail`).
//!
//! Cardinality: processes are summed into groups (named by rules, else by comm,
//! cgroup, systemd unit, container, or one per pid when the user selected them), and at most `max_groups` groups are
//! reported; the smallest by resident memory are folded into `group="__other__"`.

mod collector;
pub mod detail;
pub mod group;
pub mod maps;
pub mod naming;
mod options;
pub mod select;
pub mod stat;

pub use collector::ProcessCollector;
pub use options::Options;
pub use select::Selection;

use crate::model::{CollectorSpec, MetricSpec};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A process: its pid and its start time, so a reused pid is another process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcKey {
    pub pid: u32,
    pub start_ticks: u64,
}

/// How processes are summed into series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One group per command name (`comm`), like process-exporter's `{{.Comm}}`.
    Comm,
    /// One group per cgroup path (the memory controller's hierarchy).
    Cgroup,
    /// One series per process, labelled `group` (comm) and `pid`: select the
    /// processes with the include rules, as `max_groups` still caps the output.
    Pid,
    /// One group per systemd unit (`nginx.service`, `session-2.scope`); processes outside any by comm.
    Unit,
    /// One group per container (its 12-digit short id); processes outside any by comm.
    Container,
}

/// Settings of the process collector.
#[derive(Debug, Clone)]
pub struct Config {
    pub group_by: GroupBy,
    /// Naming rules, tried before `group_by`.
    pub naming: naming::Naming,
    pub selection: Selection,
    /// At most this many groups are reported (the rest are folded into `__other__`).
    pub max_groups: usize,
    /// How often details are re-read; zero turns them off.
    pub detail_interval: Duration,
    /// Whether details include PSS from `smaps_rollup` (the costliest read).
    pub pss: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            group_by: GroupBy::Comm,
            naming: naming::Naming::default(),
            selection: Selection::default(),
            max_groups: 500,
            detail_interval: Duration::from_secs(30),
            pss: true,
        }
    }
}

const L: &[&str] = &["group", "pid"];

pub static PROCESSES: MetricSpec = MetricSpec::gauge("memleak_process_processes", "Processes in the group.", L);
pub static THREADS: MetricSpec = MetricSpec::gauge("memleak_process_threads", "Threads of the group's processes.", L);
pub static RESIDENT: MetricSpec =
    MetricSpec::gauge("memleak_process_resident_bytes", "Resident set size (stat rss), read on every scrape.", L);
pub static VIRTUAL: MetricSpec = MetricSpec::gauge(
    "memleak_process_virtual_bytes",
    "Virtual address space size (stat vsize), read on every scrape.",
    L,
);
pub static MINOR_FAULTS: MetricSpec = MetricSpec::counter(
    "memleak_process_minor_faults_total",
    "Minor page faults (stat minflt), including those of members that have exited.",
    L,
);
pub static MAJOR_FAULTS: MetricSpec = MetricSpec::counter(
    "memleak_process_major_faults_total",
    "Major page faults (stat majflt), including those of members that have exited.",
    L,
);
pub static START_TIME: MetricSpec = MetricSpec::gauge(
    "memleak_process_start_time_seconds",
    "Start time of the group's oldest process, seconds since the epoch: a change means a restart.",
    L,
);
pub static ANON: MetricSpec = MetricSpec::gauge(
    "memleak_process_anon_bytes",
    "Resident anonymous memory (status RssAnon): heap leaks grow it.",
    L,
);
pub static FILE: MetricSpec =
    MetricSpec::gauge("memleak_process_file_bytes", "Resident file-backed memory (status RssFile).", L);
pub static SHMEM: MetricSpec =
    MetricSpec::gauge("memleak_process_shmem_bytes", "Resident shared memory (status RssShmem).", L);
pub static SWAP: MetricSpec =
    MetricSpec::gauge("memleak_process_swap_bytes", "Swapped-out anonymous memory (status VmSwap).", L);
pub static DATA: MetricSpec = MetricSpec::gauge(
    "memleak_process_data_bytes",
    "Data segment and anonymous private mappings (status VmData): grows with brk and mmap even when RSS is noisy.",
    L,
);
pub static RESIDENT_PEAK: MetricSpec = MetricSpec::gauge(
    "memleak_process_resident_peak_bytes",
    "Largest peak resident set size (status VmHWM) among the group's processes.",
    L,
);
pub static PSS: MetricSpec = MetricSpec::gauge(
    "memleak_process_pss_bytes",
    "Proportional set size (smaps_rollup Pss) of the processes whose smaps_rollup was readable.",
    L,
);
pub static PSS_ANON: MetricSpec = MetricSpec::gauge(
    "memleak_process_pss_anon_bytes",
    "Anonymous part of the proportional set size (smaps_rollup Pss_Anon).",
    L,
);
pub static MAPPINGS: MetricSpec =
    MetricSpec::gauge("memleak_process_mappings", "Memory mappings (lines of /proc/PID/maps).", L);
pub static HEAP: MetricSpec = MetricSpec::gauge(
    "memleak_process_heap_bytes",
    "Size of the brk area ([heap] in /proc/PID/maps): the kernel's own account of heap growth through brk.",
    L,
);
pub static ANON_MAPPED: MetricSpec = MetricSpec::gauge(
    "memleak_process_anon_mapped_bytes",
    "Virtual size of unnamed anonymous mappings (/proc/PID/maps): malloc's mmap'd arenas and large blocks.",
    L,
);
pub static DETAIL_AGE: MetricSpec = MetricSpec::gauge(
    "memleak_process_detail_age_seconds",
    "Age of the anon/file/shmem/swap/data/peak/PSS/mappings values, refreshed every detail interval.",
    &[],
);
pub static DETAILS_DENIED: MetricSpec = MetricSpec::gauge(
    "memleak_process_details_denied_processes",
    "Selected processes whose smaps_rollup or maps the last detail refresh could not read (no ptrace access: another user's process); their PSS and mapping values are missing.",
    &[],
);
pub static FOLDED_GROUPS: MetricSpec = MetricSpec::gauge(
    "memleak_process_folded_groups",
    "Groups folded into group=\"__other__\" because more than the maximum number of groups exist.",
    &[],
);

pub static SPEC: CollectorSpec = CollectorSpec {
    id: "process",
    about: "Per-process-group memory and page faults (/proc/PID/stat, status, smaps_rollup, maps)",
    enabled_by_default: true,
    metrics: &[
        &PROCESSES,
        &THREADS,
        &RESIDENT,
        &VIRTUAL,
        &MINOR_FAULTS,
        &MAJOR_FAULTS,
        &START_TIME,
        &ANON,
        &FILE,
        &SHMEM,
        &SWAP,
        &DATA,
        &RESIDENT_PEAK,
        &PSS,
        &PSS_ANON,
        &MAPPINGS,
        &HEAP,
        &ANON_MAPPED,
        &DETAIL_AGE,
        &DETAILS_DENIED,
        &FOLDED_GROUPS,
    ],
};
