//! Both eBPF collectors over many scrapes of real cgroups that come and go
//! (root, as CI runs): children that fault pages and make brk/mmap/munmap/
//! mremap calls run in cgroups created and removed between scrapes, with at
//! most two cgroups named so cgroups cross into and out of `__other__`. Every
//! `_total` series (and histogram bucket) must never fall while it exists, a
//! removed cgroup's series must be gone at the next scrape, and the calls the
//! children made must all be counted somewhere.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
// Shared with the process collector's churn test; this one does not count series.
#[allow(dead_code)]
#[path = "../../signals/tests/support/counter_audit.rs"]
mod counter_audit;

use common::{TestCgroup, can_run_privileged, collect, compile, roots};
use counter_audit::CounterAudit;
use memleak_bpf::page_faults::{Config as FaultsConfig, FaultMode};
use memleak_bpf::{MemorySyscallsCollector, PageFaultsCollector, memory_syscalls};
use memleak_signals::{Collection, Collector, MetricSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const FAMILIES: [&str; 8] = [
    "memleak_page_faults_estimated_total",
    "memleak_page_faults_region_estimated_total",
    "memleak_memory_syscalls_calls_total",
    "memleak_memory_syscalls_failed_total",
    "memleak_memory_syscalls_mapped_bytes_total",
    "memleak_memory_syscalls_unmapped_bytes_total",
    "memleak_memory_syscalls_brk_moved_bytes_total",
    "memleak_memory_syscalls_mmap_size_bytes",
];

/// Runs `binary args` in `cgroup` until it exits.
fn run_in(cgroup: &TestCgroup, binary: &Path, args: &[&str]) {
    let mut child = Command::new(binary).args(args).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    cgroup.adopt(child.id());
    child.stdin.take().unwrap().write_all(b"g").unwrap();
    assert!(child.wait().unwrap().success());
}

fn scrape(collector: &mut dyn Collector) -> Collection {
    let out = collect(collector);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    out
}

/// Whether any series of the audited families names `path`.
fn names_cgroup(metrics: &MetricSet, path: &str) -> bool {
    metrics.families().iter().filter(|f| FAMILIES.contains(&f.spec.name)).any(|f| {
        let at = f.spec.labels.iter().position(|l| *l == "cgroup").unwrap();
        f.samples.iter().any(|s| &*s.label_values[at] == path)
    })
}

#[test]
fn cgroup_series_never_fall_and_removed_cgroups_leave_at_once() {
    if !can_run_privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let touch = compile("../signals/tests/helpers/touch_pages.c", dir.path());
    let calls = compile("tests/helpers/memory_calls.c", dir.path());
    let config = FaultsConfig { mode: FaultMode::Sampled, period: 100, max_cgroups: 2, every_fault_window: None };
    let mut faults = PageFaultsCollector::new(&roots(), config);
    let mut syscalls = MemorySyscallsCollector::new(&roots(), memory_syscalls::Config { max_cgroups: 2 });
    let mut audits: Vec<CounterAudit> = FAMILIES.iter().map(|f| CounterAudit::new(f)).collect();
    let mut cgroups: Vec<TestCgroup> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    let mut calls_before = None;
    const ROUNDS: usize = 60;
    for round in 0..ROUNDS {
        if round % 3 == 0 {
            cgroups.push(TestCgroup::new("churn"));
        }
        let cgroup = &cgroups[round % cgroups.len()];
        let pages = (1 + round % 5) * 400;
        run_in(cgroup, &touch, &[&pages.to_string()]);
        run_in(cgroup, &calls, &[]);
        if round % 4 == 3 && cgroups.len() > 1 {
            let gone = cgroups.remove(0);
            removed.push(gone.path.clone());
            drop(gone);
        }
        let mut metrics = scrape(&mut faults).metrics;
        metrics.append(scrape(&mut syscalls).metrics);
        for path in &removed {
            assert!(!names_cgroup(&metrics, path), "round {round}: {path} was removed before this scrape");
        }
        for audit in &mut audits {
            audit.scrape(&metrics);
        }
        // The children's calls are counted from the first scrape on.
        calls_before.get_or_insert(audits[2].total());
    }
    for audit in &audits {
        assert!(audit.falls.is_empty(), "{} falls:\n{}", audit.falls.len(), audit.falls.join("\n"));
    }
    // memory_calls.c makes 15 successful calls (5 mmap, 5 munmap, 4 brk, 1 mremap) per run;
    // the rest of the host adds its own.
    let counted = audits[2].total() - calls_before.unwrap_or_default();
    assert!(counted >= 15.0 * (ROUNDS - 1) as f64, "{counted} calls counted");
    assert!(removed.len() >= 10, "{} cgroups removed", removed.len());
}
