//! Per-cgroup memory: usage, limits, the memory.stat breakdown, memory events
//! (OOM kills, limit hits) and memory pressure, with container, pod and
//! systemd-unit labels derived from the path. Works on cgroup v2, on v1, and on
//! v1+v2 hybrids (the hierarchy that holds the memory controller is used).
//!
//! Cardinality: at most `max_cgroups` cgroups down to `max_depth` levels are
//! reported, in path order; `memleak_cgroup_skipped_cgroups` counts the rest.

pub mod attribution;
pub mod hierarchy;
mod options;
pub mod reading;

pub use options::Options;

use crate::collector::{Collection, Collector, ScrapeContext};
use crate::fsroot::FsRoots;
use crate::model::{CollectorSpec, MetricSet, MetricSpec};
use crate::options::Configurable;
use crate::problem::{Problem, ProblemKind};
use hierarchy::Hierarchy;
use regex::Regex;
use std::path::{Path, PathBuf};

const L: &[&str] = &["cgroup", "unit", "container_runtime", "container_id", "pod_uid"];

pub static USAGE: MetricSpec = MetricSpec::gauge(
    "memleak_cgroup_usage_bytes",
    "Memory charged to the cgroup (v2 memory.current, v1 memory.usage_in_bytes).",
    L,
);
pub static LIMIT: MetricSpec = MetricSpec::gauge(
    "memleak_cgroup_limit_bytes",
    "Hard memory limit (memory.max, memory.limit_in_bytes); absent when unlimited.",
    L,
);
pub static HIGH: MetricSpec =
    MetricSpec::gauge("memleak_cgroup_high_bytes", "Throttling threshold (v2 memory.high); absent when unlimited.", L);
pub static SWAP: MetricSpec = MetricSpec::gauge("memleak_cgroup_swap_bytes", "Swap used by the cgroup.", L);
pub static ANON: MetricSpec = MetricSpec::gauge(
    "memleak_cgroup_anon_bytes",
    "Anonymous memory (memory.stat anon, v1 total_rss): heap leaks grow it.",
    L,
);
pub static FILE: MetricSpec =
    MetricSpec::gauge("memleak_cgroup_file_bytes", "Page cache (memory.stat file, v1 total_cache).", L);
pub static KERNEL: MetricSpec = MetricSpec::gauge(
    "memleak_cgroup_kernel_bytes",
    "Kernel memory charged to the cgroup (memory.stat kernel, v1 kmem usage).",
    L,
);
pub static PAGE_FAULTS: MetricSpec = MetricSpec::counter(
    "memleak_cgroup_page_faults_total",
    "Page faults of the cgroup's tasks, minor and major, counted by the kernel (memory.stat pgfault, v1 total_pgfault).",
    L,
);
pub static MAJOR_PAGE_FAULTS: MetricSpec = MetricSpec::counter(
    "memleak_cgroup_major_page_faults_total",
    "Page faults of the cgroup's tasks that needed I/O (memory.stat pgmajfault, v1 total_pgmajfault).",
    L,
);
pub static SLAB_UNRECLAIMABLE: MetricSpec = MetricSpec::gauge(
    "memleak_cgroup_slab_unreclaimable_bytes",
    "Unreclaimable slab (memory.stat slab_unreclaimable).",
    L,
);
pub static SOCK: MetricSpec =
    MetricSpec::gauge("memleak_cgroup_sock_bytes", "Network socket buffers (memory.stat sock, v1 kmem.tcp usage).", L);
pub static SHMEM: MetricSpec =
    MetricSpec::gauge("memleak_cgroup_shmem_bytes", "Shared memory and tmpfs (memory.stat shmem).", L);
pub static EVENTS: MetricSpec = MetricSpec::counter(
    "memleak_cgroup_events_total",
    "Memory events (v2 memory.events: low, high, max, oom, oom_kill, oom_group_kill; v1: max from failcnt, oom_kill).",
    &["cgroup", "unit", "container_runtime", "container_id", "pod_uid", "event"],
);
pub static PSI_STALL: MetricSpec = MetricSpec::counter(
    "memleak_cgroup_psi_stall_seconds_total",
    "Wall time the cgroup's tasks stalled on memory (v2 memory.pressure).",
    &["cgroup", "unit", "container_runtime", "container_id", "pod_uid", "kind"],
);
pub static CGROUPS: MetricSpec =
    MetricSpec::gauge("memleak_cgroup_cgroups", "Cgroups reported in this scrape, by hierarchy version.", &["version"]);
pub static SKIPPED: MetricSpec = MetricSpec::gauge(
    "memleak_cgroup_skipped_cgroups",
    "Cgroups left out of this scrape because --collector.cgroup.max-cgroups was reached.",
    &[],
);

pub static SPEC: CollectorSpec = CollectorSpec {
    id: "cgroup",
    about: "Per-cgroup memory, events and pressure (cgroup v2, v1 or hybrid)",
    enabled_by_default: true,
    metrics: &[
        &USAGE,
        &LIMIT,
        &HIGH,
        &SWAP,
        &ANON,
        &FILE,
        &KERNEL,
        &SLAB_UNRECLAIMABLE,
        &PAGE_FAULTS,
        &MAJOR_PAGE_FAULTS,
        &SOCK,
        &SHMEM,
        &EVENTS,
        &PSI_STALL,
        &CGROUPS,
        &SKIPPED,
    ],
};

/// Settings of the cgroup collector.
#[derive(Debug, Clone)]
pub struct Config {
    /// Only cgroups whose path matches (whole path, e.g. `/system.slice/.*`).
    pub include: Option<Regex>,
    pub exclude: Option<Regex>,
    /// Levels below the root that are walked (the root is level 0).
    pub max_depth: usize,
    pub max_cgroups: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { include: None, exclude: None, max_depth: 6, max_cgroups: 1000 }
    }
}

/// Walks the memory hierarchy at scrape time.
#[derive(Debug)]
pub struct CgroupCollector {
    cgroupfs: PathBuf,
    config: Config,
}

impl CgroupCollector {
    pub fn new(roots: &FsRoots, config: Config) -> Self {
        CgroupCollector { cgroupfs: roots.cgroupfs.clone(), config }
    }

    fn selected(&self, path: &str) -> bool {
        self.config.include.as_ref().is_none_or(|r| r.is_match(path))
            && !self.config.exclude.as_ref().is_some_and(|r| r.is_match(path))
    }
}

impl Configurable for CgroupCollector {
    const SPEC: &'static CollectorSpec = &SPEC;
    type Options = Options;

    fn build(roots: &FsRoots, config: Config) -> std::io::Result<Self> {
        Ok(CgroupCollector::new(roots, config))
    }
}

impl Collector for CgroupCollector {
    fn id(&self) -> &'static str {
        SPEC.id
    }

    fn collect(&mut self, ctx: &ScrapeContext, out: &mut Collection) {
        // Discovered on every scrape: cheap, and a remount or a controller
        // enabled later is picked up without a restart.
        let hierarchy = match hierarchy::discover(&self.cgroupfs) {
            Ok(h) => h,
            Err(reason) => {
                return out.problem(Problem::new(
                    ProblemKind::Unsupported,
                    self.cgroupfs.display(),
                    reason,
                    "mount cgroup2 (or the v1 memory controller) and point --path.cgroupfs at it",
                ));
            }
        };
        let mut walk = Walk { reported: 0, skipped: 0, visited: 0 };
        let mut stack = vec![(hierarchy.root.clone(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            if ctx.expired() {
                out.timed_out(hierarchy.root.display(), walk.visited, walk.visited + stack.len() + 1);
                break;
            }
            walk.visited += 1;
            let path = relative(&hierarchy.root, &dir);
            if self.selected(&path) {
                if walk.reported >= self.config.max_cgroups {
                    walk.skipped += usize::from(reading::has_memory(hierarchy.version, &dir));
                } else if emit(&hierarchy, &dir, &path, out) {
                    walk.reported += 1;
                }
            }
            if depth < self.config.max_depth {
                push_children(&dir, depth + 1, &mut stack);
            }
        }
        out.metrics.push(&CGROUPS, &[hierarchy.version.as_str()], walk.reported as f64);
        out.metrics.push(&SKIPPED, &[], walk.skipped as f64);
    }
}

#[derive(Debug)]
struct Walk {
    reported: usize,
    skipped: usize,
    visited: usize,
}

/// Pushes child directories in reverse name order, so they pop in name order.
fn push_children(dir: &Path, depth: usize, stack: &mut Vec<(PathBuf, usize)>) {
    // A cgroup removed since it was listed simply has no children.
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<PathBuf> =
        entries.filter_map(|e| e.ok()).filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect();
    children.sort_unstable_by(|a, b| b.cmp(a));
    stack.extend(children.into_iter().map(|c| (c, depth)));
}

/// `/` for the root, `/a/b` below it.
fn relative(root: &Path, dir: &Path) -> String {
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    format!("/{}", rel.to_string_lossy())
}

/// Reads and emits one cgroup; false when it has no memory accounting.
fn emit(hierarchy: &Hierarchy, dir: &Path, path: &str, out: &mut Collection) -> bool {
    let Some(r) = reading::read(hierarchy.version, dir, &mut out.problems) else {
        return false;
    };
    let a = attribution::attribute(path);
    let labels = [path, a.unit.as_str(), a.container_runtime.as_str(), a.container_id.as_str(), a.pod_uid.as_str()];
    let m = &mut out.metrics;
    m.push(&USAGE, &labels, r.usage as f64);
    let optional: [(&'static MetricSpec, Option<u64>); 11] = [
        (&LIMIT, r.limit),
        (&HIGH, r.high),
        (&SWAP, r.swap),
        (&ANON, r.anon),
        (&FILE, r.file),
        (&KERNEL, r.kernel),
        (&SLAB_UNRECLAIMABLE, r.slab_unreclaimable),
        (&SOCK, r.sock),
        (&SHMEM, r.shmem),
        (&PAGE_FAULTS, r.page_faults),
        (&MAJOR_PAGE_FAULTS, r.major_page_faults),
    ];
    for (spec, value) in optional {
        if let Some(v) = value {
            m.push(spec, &labels, v as f64);
        }
    }
    emit_keyed(m, &EVENTS, &labels, r.events.iter().map(|(e, v)| (*e, *v as f64)));
    if let Some(p) = &r.pressure {
        emit_keyed(m, &PSI_STALL, &labels, p.lines().map(|(kind, line)| (kind, line.total_seconds())));
    }
    true
}

/// Samples whose labels are the cgroup's plus one more.
fn emit_keyed<'a>(
    m: &mut MetricSet,
    spec: &'static MetricSpec,
    labels: &[&str; 5],
    values: impl Iterator<Item = (&'a str, f64)>,
) {
    for (extra, value) in values {
        let [a, b, c, d, e] = *labels;
        m.push(spec, &[a, b, c, d, e, extra], value);
    }
}
