//! Host-wide memory accounting from `/proc/meminfo` and `/proc/vmstat`: the
//! fields that move when something leaks (anonymous memory, unreclaimable slab,
//! committed address space) and the kernel's fault, swap and OOM-kill counters.

use crate::fsroot::{self, FsRoots};
use crate::kv;
use crate::model::MetricSpec;
use crate::problem::{Problem, ProblemKind};
use crate::registry::{Roles, SignalSpec};
use crate::roles::{Collection, Collector, ScrapeContext};
use std::path::{Path, PathBuf};

macro_rules! gauge {
    ($name:ident, $metric:literal, $help:literal) => {
        pub static $name: MetricSpec = MetricSpec::gauge($metric, $help, &[]);
    };
}
macro_rules! counter {
    ($name:ident, $metric:literal, $help:literal) => {
        pub static $name: MetricSpec = MetricSpec::counter($metric, $help, &[]);
    };
}

gauge!(TOTAL, "memleak_host_memory_total_bytes", "Usable RAM (MemTotal).");
gauge!(
    AVAILABLE,
    "memleak_host_memory_available_bytes",
    "Memory available for new work without swapping (MemAvailable)."
);
gauge!(FREE, "memleak_host_memory_free_bytes", "Unused RAM (MemFree).");
gauge!(
    ANON,
    "memleak_host_memory_anon_bytes",
    "Anonymous memory mapped into user page tables (AnonPages): where heap leaks land."
);
gauge!(SHMEM, "memleak_host_memory_shmem_bytes", "Shared memory and tmpfs (Shmem).");
gauge!(SLAB, "memleak_host_memory_slab_bytes", "Kernel slab caches (Slab).");
gauge!(
    SLAB_UNRECLAIMABLE,
    "memleak_host_memory_slab_unreclaimable_bytes",
    "Slab that cannot be reclaimed (SUnreclaim): where kernel object leaks land."
);
gauge!(COMMITTED, "memleak_host_memory_committed_bytes", "Address space committed by all processes (Committed_AS).");
gauge!(COMMIT_LIMIT, "memleak_host_memory_commit_limit_bytes", "Commit limit under strict overcommit (CommitLimit).");
gauge!(PAGE_TABLES, "memleak_host_memory_page_tables_bytes", "Memory used by page tables (PageTables).");
gauge!(VMALLOC_USED, "memleak_host_memory_vmalloc_used_bytes", "Kernel vmalloc area in use (VmallocUsed).");
gauge!(SWAP_TOTAL, "memleak_host_memory_swap_total_bytes", "Swap space (SwapTotal).");
gauge!(SWAP_FREE, "memleak_host_memory_swap_free_bytes", "Unused swap space (SwapFree).");
counter!(PAGE_FAULTS, "memleak_host_memory_page_faults_total", "Page faults, minor and major (vmstat pgfault).");
counter!(
    MAJOR_PAGE_FAULTS,
    "memleak_host_memory_major_page_faults_total",
    "Page faults that needed I/O (vmstat pgmajfault)."
);
counter!(OOM_KILLS, "memleak_host_memory_oom_kills_total", "Processes killed by the OOM killer (vmstat oom_kill).");
counter!(SWAP_IN, "memleak_host_memory_swap_in_pages_total", "Pages swapped in (vmstat pswpin).");
counter!(SWAP_OUT, "memleak_host_memory_swap_out_pages_total", "Pages swapped out (vmstat pswpout).");

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

pub static SIGNAL: SignalSpec = SignalSpec {
    id: "host_memory",
    description: "Host memory accounting (/proc/meminfo, /proc/vmstat)",
    roles: Roles::COLLECTOR,
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

impl Collector for HostMemoryCollector {
    fn id(&self) -> &'static str {
        SIGNAL.id
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
            return out.problem(Problem::new(ProblemKind::Parse, path, err.to_string(), ""));
        }
    };
    if !entries.iter().any(|(key, _)| *key == required) {
        return out.problem(Problem::new(
            ProblemKind::Parse,
            path,
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
