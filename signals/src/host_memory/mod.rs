//! Host-wide memory accounting from `/proc/meminfo` and `/proc/vmstat`: the
//! fields that move when something leaks (anonymous memory, unreclaimable slab,
//! committed address space) and the kernel's fault, swap and OOM-kill counters.

use crate::collector::{Collection, Collector, ScrapeContext};
use crate::fsroot::{self, FsRoots};
use crate::kv;
use crate::model::{CollectorSpec, MetricSpec};
use crate::options::{Configurable, NoOptions};
use crate::problem::{Problem, ProblemKind};
use std::path::{Path, PathBuf};

pub static TOTAL: MetricSpec = MetricSpec::gauge("memleak_host_memory_total_bytes", "Usable RAM (MemTotal).", &[]);
pub static AVAILABLE: MetricSpec = MetricSpec::gauge(
    "memleak_host_memory_available_bytes",
    "Memory available for new work without swapping (MemAvailable).",
    &[],
);
pub static FREE: MetricSpec = MetricSpec::gauge("memleak_host_memory_free_bytes", "Unused RAM (MemFree).", &[]);
pub static ANON: MetricSpec = MetricSpec::gauge(
    "memleak_host_memory_anon_bytes",
    "Anonymous memory mapped into user page tables (AnonPages): where heap leaks land.",
    &[],
);
pub static SHMEM: MetricSpec =
    MetricSpec::gauge("memleak_host_memory_shmem_bytes", "Shared memory and tmpfs (Shmem).", &[]);
pub static SLAB: MetricSpec = MetricSpec::gauge("memleak_host_memory_slab_bytes", "Kernel slab caches (Slab).", &[]);
pub static SLAB_UNRECLAIMABLE: MetricSpec = MetricSpec::gauge(
    "memleak_host_memory_slab_unreclaimable_bytes",
    "Slab that cannot be reclaimed (SUnreclaim): where kernel object leaks land.",
    &[],
);
pub static COMMITTED: MetricSpec = MetricSpec::gauge(
    "memleak_host_memory_committed_bytes",
    "Address space committed by all processes (Committed_AS).",
    &[],
);
pub static COMMIT_LIMIT: MetricSpec = MetricSpec::gauge(
    "memleak_host_memory_commit_limit_bytes",
    "Commit limit under strict overcommit (CommitLimit).",
    &[],
);
pub static PAGE_TABLES: MetricSpec =
    MetricSpec::gauge("memleak_host_memory_page_tables_bytes", "Memory used by page tables (PageTables).", &[]);
pub static VMALLOC_USED: MetricSpec =
    MetricSpec::gauge("memleak_host_memory_vmalloc_used_bytes", "Kernel vmalloc area in use (VmallocUsed).", &[]);
pub static SWAP_TOTAL: MetricSpec =
    MetricSpec::gauge("memleak_host_memory_swap_total_bytes", "Swap space (SwapTotal).", &[]);
pub static SWAP_FREE: MetricSpec =
    MetricSpec::gauge("memleak_host_memory_swap_free_bytes", "Unused swap space (SwapFree).", &[]);
pub static PAGE_FAULTS: MetricSpec =
    MetricSpec::counter("memleak_host_memory_page_faults_total", "Page faults, minor and major (vmstat pgfault).", &[]);
pub static MAJOR_PAGE_FAULTS: MetricSpec = MetricSpec::counter(
    "memleak_host_memory_major_page_faults_total",
    "Page faults that needed I/O (vmstat pgmajfault).",
    &[],
);
pub static OOM_KILLS: MetricSpec = MetricSpec::counter(
    "memleak_host_memory_oom_kills_total",
    "Processes killed by the OOM killer (vmstat oom_kill).",
    &[],
);
pub static SWAP_IN: MetricSpec =
    MetricSpec::counter("memleak_host_memory_swap_in_pages_total", "Pages swapped in (vmstat pswpin).", &[]);
pub static SWAP_OUT: MetricSpec =
    MetricSpec::counter("memleak_host_memory_swap_out_pages_total", "Pages swapped out (vmstat pswpout).", &[]);

/// meminfo key → metric. Keys an older kernel lacks are skipped.
const MEMINFO: &[(&str, &MetricSpec)] = &[
    ("MemTotal", &TOTAL),
    ("MemAvailable", &AVAILABLE),
    ("MemFree", &FREE),
    ("AnonPages", &ANON),
    ("Shmem", &SHMEM),
    ("Slab", &SLAB),
    ("SUnreclaim", &SLAB_UNRECLAIMABLE),
    ("Committed_AS", &COMMITTED),
    ("CommitLimit", &COMMIT_LIMIT),
    ("PageTables", &PAGE_TABLES),
    ("VmallocUsed", &VMALLOC_USED),
    ("SwapTotal", &SWAP_TOTAL),
    ("SwapFree", &SWAP_FREE),
];

/// vmstat key → metric.
const VMSTAT: &[(&str, &MetricSpec)] = &[
    ("pgfault", &PAGE_FAULTS),
    ("pgmajfault", &MAJOR_PAGE_FAULTS),
    ("oom_kill", &OOM_KILLS),
    ("pswpin", &SWAP_IN),
    ("pswpout", &SWAP_OUT),
];

pub static SPEC: CollectorSpec = CollectorSpec {
    id: "host_memory",
    about: "Host memory accounting (/proc/meminfo, /proc/vmstat)",
    enabled_by_default: true,
    metrics: &[
        &TOTAL,
        &AVAILABLE,
        &FREE,
        &ANON,
        &SHMEM,
        &SLAB,
        &SLAB_UNRECLAIMABLE,
        &COMMITTED,
        &COMMIT_LIMIT,
        &PAGE_TABLES,
        &VMALLOC_USED,
        &SWAP_TOTAL,
        &SWAP_FREE,
        &PAGE_FAULTS,
        &MAJOR_PAGE_FAULTS,
        &OOM_KILLS,
        &SWAP_IN,
        &SWAP_OUT,
    ],
};

/// Reads meminfo and vmstat at scrape time.
#[derive(Debug)]
pub struct HostMemoryCollector {
    meminfo: PathBuf,
    vmstat: PathBuf,
}

impl HostMemoryCollector {
    pub fn new(roots: &FsRoots) -> Self {
        HostMemoryCollector { meminfo: roots.procfs.join("meminfo"), vmstat: roots.procfs.join("vmstat") }
    }
}

impl Configurable for HostMemoryCollector {
    const SPEC: &'static CollectorSpec = &SPEC;
    type Options = NoOptions;

    fn build(roots: &FsRoots, (): ()) -> std::io::Result<Self> {
        Ok(HostMemoryCollector::new(roots))
    }
}

impl Collector for HostMemoryCollector {
    fn id(&self) -> &'static str {
        SPEC.id
    }

    fn collect(&mut self, _ctx: &ScrapeContext, out: &mut Collection) {
        // The two files are independent: a broken one does not hide the other.
        read_table(&self.meminfo, MEMINFO, "MemTotal", out);
        read_table(&self.vmstat, VMSTAT, "pgfault", out);
    }
}

/// Emits the metrics of `table` found in the file; `required` must be present,
/// or the file is taken as truncated or foreign.
fn read_table(path: &Path, table: &[(&str, &'static MetricSpec)], required: &str, out: &mut Collection) {
    let text = match fsroot::read_text(path) {
        Ok(text) => text,
        Err(err) => {
            return out.problem(err.to_problem(path, "is procfs mounted at --path.procfs?"));
        }
    };
    let entries = match kv::parse_all(&text) {
        Ok(entries) => entries,
        Err(err) => {
            return out.problem(Problem::new(ProblemKind::Parse, path.display(), err.to_string(), ""));
        }
    };
    if !entries.iter().any(|(key, _)| *key == required) {
        return out.problem(Problem::new(
            ProblemKind::Parse,
            path.display(),
            format!("no `{required}` line: empty, truncated or not a kernel file"),
            "",
        ));
    }
    for (key, spec) in table {
        if let Some((_, value)) = entries.iter().find(|(k, _)| k == key) {
            out.metrics.push(spec, &[], *value as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect_from(dir: &Path) -> Collection {
        let roots = FsRoots { procfs: dir.to_path_buf(), sysfs: dir.into(), cgroupfs: dir.into() };
        let mut out = Collection::default();
        HostMemoryCollector::new(&roots)
            .collect(&ScrapeContext::with_budget(std::time::Duration::from_secs(5)), &mut out);
        out
    }

    #[test]
    fn reads_the_fixture_vmstat_counters() {
        let dir = tempfile::tempdir().unwrap();
        // The vmstat of the fixture capture, and a meminfo taken on the same kind of VM.
        std::fs::copy("tests/fixtures/proc-snapshots/t1/vmstat", dir.path().join("vmstat")).unwrap();
        std::fs::copy("tests/fixtures/meminfo", dir.path().join("meminfo")).unwrap();
        let out = collect_from(dir.path());
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        // Values from the fixture files, read by eye: pgfault 47751216, pgmajfault 7276, oom_kill 0.
        assert_eq!(out.metrics.value("memleak_host_memory_page_faults_total", &[]), Some(47_751_216.0));
        assert_eq!(out.metrics.value("memleak_host_memory_major_page_faults_total", &[]), Some(7276.0));
        assert_eq!(out.metrics.value("memleak_host_memory_oom_kills_total", &[]), Some(0.0));
        let total = out.metrics.value("memleak_host_memory_total_bytes", &[]).unwrap();
        let available = out.metrics.value("memleak_host_memory_available_bytes", &[]).unwrap();
        assert!(available > 0.0 && available <= total);
    }

    #[test]
    fn a_broken_meminfo_does_not_hide_vmstat() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("meminfo"), "MemTotal:  12 kB\nMemFree: garbage\n").unwrap();
        std::fs::write(dir.path().join("vmstat"), "pgfault 10\npgmajfault 2\n").unwrap();
        let out = collect_from(dir.path());
        assert_eq!(out.problems.len(), 1);
        assert_eq!(out.problems[0].kind, ProblemKind::Parse);
        assert!(out.problems[0].to_string().contains("meminfo: line 2"), "{}", out.problems[0]);
        assert_eq!(out.metrics.value("memleak_host_memory_page_faults_total", &[]), Some(10.0));
    }

    #[test]
    fn empty_and_missing_files_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("meminfo"), "").unwrap();
        let out = collect_from(dir.path());
        let kinds: Vec<_> = out.problems.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, vec![ProblemKind::Parse, ProblemKind::Unsupported]);
        assert!(out.problems[0].detail.contains("MemTotal"));
    }
}
