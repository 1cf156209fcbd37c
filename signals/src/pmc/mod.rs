//! Perf counters (`perf_event_open`, through perf-event2): page faults counted
//! by the kernel per cgroup v2 (all, minor, major; one counter per CPU), and
//! which hardware counters the PMU offers. Hardware counters (cycles,
//! instructions, LLC and dTLB load misses) are missing in most VMs, this one
//! included: they are reported as `memleak_pmc_supported{event} 0`, logged
//! once, and are not a failure.
//!
//! With `process_include`, processes whose command matches also get their own
//! counters (see `process`).
//!
//! Opt-in (`--collector.pmc`): a cgroup counter costs the kernel work on every
//! context switch into and out of that cgroup (measured in docs/benchmarks.md).
//! Bounded: at most `max_cgroups` cgroups, down to `max_depth` levels,
//! × CPUs × 3 counters (file descriptors); at most `max_processes` processes ×
//! 32 threads × 3 counters.

mod options;
mod process;

pub use options::Options;
pub use process::{MAX_THREADS, ProcessCounters, ProcessFaults};

use crate::collector::{Collection, Collector, ScrapeContext};
use crate::fsroot::FsRoots;
use crate::model::{CollectorSpec, MetricSpec};
use crate::options::Configurable;
use crate::problem::{Problem, ProblemKind};
use perf_event::events::{Cache, CacheId, CacheOp, CacheResult, Hardware, Software};
use perf_event::{Builder, Counter};
use regex::Regex;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

pub static SUPPORTED: MetricSpec = MetricSpec::gauge(
    "memleak_pmc_supported",
    "1 when the PMU offers the hardware event here, 0 when it does not (most VMs).",
    &["event"],
);
pub static CGROUP_FAULTS: MetricSpec = MetricSpec::counter(
    "memleak_pmc_cgroup_page_faults_total",
    "Page faults of the cgroup's tasks (kind all, minor, major) counted by perf software events since the exporter started watching the cgroup.",
    &["cgroup", "kind"],
);
pub static CGROUPS: MetricSpec = MetricSpec::gauge(
    "memleak_pmc_cgroups",
    "Cgroups with perf counters open (bounded by --collector.pmc.max-cgroups).",
    &[],
);
pub static PROCESS_FAULTS: MetricSpec = MetricSpec::counter(
    "memleak_pmc_process_page_faults_total",
    "Page faults of a selected process (--collector.pmc.process-include; kind all, minor, major) counted by perf software events since the exporter started watching it.",
    &["pid", "comm", "kind"],
);
pub static PROCESSES: MetricSpec = MetricSpec::gauge(
    "memleak_pmc_processes",
    "Processes with perf counters open (bounded by --collector.pmc.max-processes).",
    &[],
);
pub static UNCOUNTED_THREADS: MetricSpec = MetricSpec::gauge(
    "memleak_pmc_process_uncounted_threads",
    "Threads of a selected process that had no counter when it was first watched (past 32 per process); their faults are missing.",
    &["pid", "comm"],
);

pub static SPEC: CollectorSpec = CollectorSpec {
    id: "pmc",
    about: "Perf counters: page faults per cgroup v2, hardware counter support",
    enabled_by_default: false,
    metrics: &[&SUPPORTED, &CGROUP_FAULTS, &CGROUPS, &PROCESS_FAULTS, &PROCESSES, &UNCOUNTED_THREADS],
};

const KINDS: [&str; 3] = ["all", "minor", "major"];

/// Settings of the perf counter collector.
#[derive(Debug, Clone)]
pub struct Config {
    pub max_cgroups: usize,
    pub max_depth: usize,
    /// Processes (by command name, whole match) that get counters of their own.
    pub process_include: Option<Regex>,
    pub max_processes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { max_cgroups: 64, max_depth: 2, process_include: None, max_processes: 16 }
    }
}

struct CgroupCounters {
    _dir: File,
    /// One counter per CPU for each of `KINDS`.
    counters: [Vec<Counter>; 3],
}

impl std::fmt::Debug for CgroupCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CgroupCounters").field("cpus", &self.counters[0].len()).finish()
    }
}

/// Counts page faults per cgroup with perf software events.
#[derive(Debug)]
pub struct PmcCollector {
    cgroupfs: PathBuf,
    sysfs: PathBuf,
    /// `kernel.perf_event_paranoid`, quoted in the hints.
    paranoid: PathBuf,
    config: Config,
    hardware: Option<Vec<(&'static str, bool)>>,
    cgroups: BTreeMap<String, CgroupCounters>,
    processes: Option<ProcessCounters>,
}

impl PmcCollector {
    pub fn new(roots: &FsRoots, config: Config) -> Self {
        let processes = config
            .process_include
            .clone()
            .map(|include| ProcessCounters::new(roots.procfs.clone(), include, config.max_processes));
        PmcCollector {
            cgroupfs: roots.cgroupfs.clone(),
            sysfs: roots.sysfs.clone(),
            paranoid: roots.procfs.join("sys/kernel/perf_event_paranoid"),
            config,
            hardware: None,
            cgroups: BTreeMap::new(),
            processes,
        }
    }

    fn collect_processes(&mut self, out: &mut Collection) {
        let Some(processes) = self.processes.as_mut() else { return };
        let (report, error) = processes.scrape();
        if let Some((dir, err)) = error {
            out.problem(open_problem(&dir, &err, Counted::Process, &self.paranoid));
        }
        for p in &report {
            let pid = p.pid.to_string();
            for (kind, faults) in KINDS.iter().zip(p.faults) {
                out.metrics.push(&PROCESS_FAULTS, &[&pid, &p.comm, kind], faults as f64);
            }
            if p.uncounted_threads > 0 {
                out.metrics.push(&UNCOUNTED_THREADS, &[&pid, &p.comm], p.uncounted_threads as f64);
            }
        }
        out.metrics.push(&PROCESSES, &[], report.len() as f64);
    }

    /// The cgroup v2 root: the mount itself, or `unified/` on a hybrid host.
    fn v2_root(&self) -> Option<PathBuf> {
        [self.cgroupfs.clone(), self.cgroupfs.join("unified")]
            .into_iter()
            .find(|p| p.join("cgroup.controllers").is_file())
    }

    fn probe_hardware() -> Vec<(&'static str, bool)> {
        let ll_miss = Cache { which: CacheId::LL, operation: CacheOp::READ, result: CacheResult::MISS };
        let dtlb_miss = Cache { which: CacheId::DTLB, operation: CacheOp::READ, result: CacheResult::MISS };
        let result: Vec<(&'static str, bool)> = [
            ("cycles", Builder::new(Hardware::CPU_CYCLES)),
            ("instructions", Builder::new(Hardware::INSTRUCTIONS)),
            ("llc_load_misses", Builder::new(ll_miss)),
            ("dtlb_load_misses", Builder::new(dtlb_miss)),
        ]
        .iter()
        .map(|(name, builder)| (*name, builder.build().is_ok()))
        .collect();
        let missing: Vec<&str> = result.iter().filter(|(_, ok)| !ok).map(|(n, _)| *n).collect();
        if !missing.is_empty() {
            tracing::info!(
                events = missing.join(","),
                "hardware perf counters are not available here (virtual machine or no PMU access); reported as memleak_pmc_supported 0"
            );
        }
        result
    }

    fn online_cpus(&self) -> Vec<usize> {
        let text = std::fs::read_to_string(self.sysfs.join("devices/system/cpu/online")).unwrap_or_default();
        let mut cpus = Vec::new();
        for part in text.trim().split(',').filter(|p| !p.is_empty()) {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                cpus.extend(a..=b.min(a + 4096));
            }
        }
        if cpus.is_empty() { (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect() } else { cpus }
    }

    /// Cgroup paths below `root`, in path order, bounded.
    fn list(&self, root: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut stack = vec![(root.to_path_buf(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let rel = format!("/{}", dir.strip_prefix(root).unwrap_or(&dir).to_string_lossy());
            if depth > 0 {
                found.push(rel);
            }
            if depth < self.config.max_depth
                && let Ok(entries) = std::fs::read_dir(&dir)
            {
                let mut children: Vec<PathBuf> =
                    entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect();
                children.sort_unstable_by(|a, b| b.cmp(a));
                stack.extend(children.into_iter().map(|c| (c, depth + 1)));
            }
        }
        found.sort();
        found.truncate(self.config.max_cgroups);
        found
    }

    fn open(dir: &Path, cpus: &[usize]) -> std::io::Result<CgroupCounters> {
        let file = File::open(dir)?;
        let mut counters: [Vec<Counter>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for (slot, event) in
            counters.iter_mut().zip([Software::PAGE_FAULTS, Software::PAGE_FAULTS_MIN, Software::PAGE_FAULTS_MAJ])
        {
            for &cpu in cpus {
                let mut counter = Builder::new(event).observe_cgroup(&file).one_cpu(cpu).build()?;
                counter.enable()?;
                slot.push(counter);
            }
        }
        Ok(CgroupCounters { _dir: file, counters })
    }
}

impl Configurable for PmcCollector {
    const SPEC: &'static CollectorSpec = &SPEC;
    type Options = Options;

    fn build(roots: &FsRoots, config: Config) -> std::io::Result<Self> {
        Ok(PmcCollector::new(roots, config))
    }
}

impl Collector for PmcCollector {
    fn id(&self) -> &'static str {
        SPEC.id
    }

    fn collect(&mut self, _ctx: &ScrapeContext, out: &mut Collection) {
        for (event, ok) in self.hardware.get_or_insert_with(Self::probe_hardware).iter() {
            out.metrics.push(&SUPPORTED, &[event], if *ok { 1.0 } else { 0.0 });
        }
        // Processes first: they need no cgroup v2 hierarchy.
        self.collect_processes(out);
        let Some(root) = self.v2_root() else {
            return out.problem(Problem::new(
                ProblemKind::Unsupported,
                self.cgroupfs.display(),
                "no cgroup v2 hierarchy (cgroup.controllers) to count page faults in",
                "mount cgroup2 (or point --path.cgroupfs at it)",
            ));
        };
        let wanted = self.list(&root);
        self.cgroups.retain(|path, _| wanted.contains(path));
        // Online CPUs are read only when a cgroup needs counters, not on every scrape.
        let mut cpus: Option<Vec<usize>> = None;
        for path in &wanted {
            if self.cgroups.contains_key(path) {
                continue;
            }
            let cpus = cpus.get_or_insert_with(|| self.online_cpus());
            let dir = root.join(path.trim_start_matches('/'));
            match Self::open(&dir, cpus) {
                Ok(c) => {
                    self.cgroups.insert(path.clone(), c);
                }
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(err) => {
                    out.problem(open_problem(&dir, &err, Counted::Cgroup, &self.paranoid));
                    break;
                }
            }
        }
        for (path, c) in &mut self.cgroups {
            for (kind, counters) in KINDS.iter().zip(c.counters.iter_mut()) {
                let total: u64 = counters.iter_mut().filter_map(|counter| counter.read().ok()).sum();
                out.metrics.push(&CGROUP_FAULTS, &[path, kind], total as f64);
            }
        }
        out.metrics.push(&CGROUPS, &[], self.cgroups.len() as f64);
    }
}

/// What a counter counts, for the hint of a refusal.
#[derive(Debug, Clone, Copy)]
enum Counted {
    Cgroup,
    Process,
}

/// A refused open, with what the kernel really requires (checked on Linux 6.18
/// as `nobody` at each perf_event_paranoid from -1 to 4): a cgroup counter is
/// CPU-wide, which needs CAP_PERFMON unless paranoid <= 0; a process counter
/// (user space only, as perf-event2 opens them) needs ptrace-read access to the
/// process: the same user, or CAP_PERFMON or CAP_SYS_PTRACE, at any paranoid
/// value. Some distributions' kernels (Debian's) refuse everything without
/// CAP_PERFMON at paranoid 3.
fn open_problem(dir: &Path, err: &std::io::Error, counted: Counted, paranoid: &Path) -> Problem {
    let kind = match err.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => ProblemKind::Permission,
        _ => ProblemKind::Unsupported,
    };
    let now = std::fs::read_to_string(paranoid)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .map_or_else(|| "unknown here".to_owned(), |v| format!("{v} here"));
    let hint = match counted {
        Counted::Cgroup => {
            format!("per-cgroup counters need CAP_PERFMON (or root), or kernel.perf_event_paranoid <= 0 (it is {now})")
        }
        Counted::Process => format!(
            "counting another user's process needs CAP_PERFMON or CAP_SYS_PTRACE (kernel.perf_event_paranoid is {now}; at 3 some kernels also need CAP_PERFMON for the exporter's own user)"
        ),
    };
    Problem::new(kind, dir.display(), format!("cannot open perf counters: {err}"), hint)
}
