//! Privileged (root, as CI runs): perf page-fault counters of a real cgroup v2
//! count the faults of a child that touches exactly N fresh pages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use memleak_signals::pmc::{self, PmcCollector};
use memleak_signals::{Collection, Collector, FsRoots, ScrapeContext};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const PAGES: u64 = 5000;
/// Faults the C runtime takes between the move into the cgroup and exit.
const TOLERANCE: u64 = 64;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn v2_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").is_file())
}

/// Removes the test cgroup when dropped.
struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn compile_helper(dir: &Path) -> PathBuf {
    compile_helper_as(dir, "touch_pages")
}

fn compile_helper_as(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/touch_pages.c");
    let status = Command::new("cc").arg("-O1").arg("-o").arg(&out).arg(source).status();
    assert!(status.is_ok_and(|s| s.success()), "cc (gcc) is needed to build the test helper");
    out
}

fn collect(c: &mut PmcCollector) -> Collection {
    let mut out = Collection::default();
    c.collect(&ScrapeContext::with_budget(Duration::from_secs(5)), &mut out);
    out
}

#[test]
fn cgroup_page_fault_counters_count_a_child_exactly() {
    if !is_root() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI runs as root: this test must run there");
        eprintln!("SKIP: needs root for perf cgroup counters and a test cgroup");
        return;
    }
    let root =
        v2_root().expect("a cgroup v2 hierarchy (cgroup.controllers) at /sys/fs/cgroup or /sys/fs/cgroup/unified");
    let name = format!("memleak-pmc-test-{}", std::process::id());
    let cgroup = TestCgroup(root.join(&name));
    std::fs::create_dir(&cgroup.0).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let helper = compile_helper(dir.path());
    let roots = FsRoots { procfs: "/proc".into(), sysfs: "/sys".into(), cgroupfs: root.clone() };
    // The test cgroup is a child of the root: one level, and room for every other top-level cgroup.
    let config = pmc::Config { max_depth: 1, max_cgroups: 4096, ..pmc::Config::default() };
    let mut collector = PmcCollector::new(&roots, config);
    let before = collect(&mut collector);
    assert!(before.problems.is_empty(), "{:?}", before.problems);
    assert!(before.metrics.value("memleak_pmc_cgroups", &[]).is_some_and(|n| n >= 1.0));
    let path = format!("/{name}");
    assert_eq!(
        before.metrics.value("memleak_pmc_cgroup_page_faults_total", &[("cgroup", &path), ("kind", "minor")]),
        Some(0.0)
    );

    let mut child = Command::new(&helper).arg(PAGES.to_string()).stdin(Stdio::piped()).spawn().unwrap();
    std::fs::write(cgroup.0.join("cgroup.procs"), child.id().to_string()).unwrap();
    child.stdin.take().unwrap().write_all(b"g").unwrap();
    assert!(child.wait().unwrap().success());

    let after = collect(&mut collector);
    let minor =
        after.metrics.value("memleak_pmc_cgroup_page_faults_total", &[("cgroup", &path), ("kind", "minor")]).unwrap()
            as u64;
    let all =
        after.metrics.value("memleak_pmc_cgroup_page_faults_total", &[("cgroup", &path), ("kind", "all")]).unwrap()
            as u64;
    eprintln!("perf counted {minor} minor faults for {PAGES} touched pages");
    assert!((PAGES..=PAGES + TOLERANCE).contains(&minor), "{minor} minor faults for {PAGES} touched pages");
    assert!(all >= minor, "all {all} < minor {minor}");
    // This VM has no hardware PMU: every hardware event is reported unsupported, not as a failure.
    assert!(after.problems.is_empty(), "{:?}", after.problems);
    assert!(after.metrics.value("memleak_pmc_supported", &[("event", "cycles")]).is_some());
}

#[test]
fn without_cgroup_v2_the_collector_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let roots = FsRoots::under(dir.path());
    let out = collect(&mut PmcCollector::new(&roots, pmc::Config::default()));
    assert_eq!(out.problems.len(), 1);
    assert!(out.problems[0].to_string().contains("no cgroup v2 hierarchy"), "{}", out.problems[0]);
}

#[test]
fn a_selected_process_is_counted_exactly_and_forgotten_when_it_exits() {
    if !is_root() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI runs as root: this test must run there");
        eprintln!("SKIP: needs root for perf counters on another process");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A command name no other process has, so the selection picks this child only.
    let name = format!("pmcprobe{}", std::process::id() % 10_000);
    let helper = compile_helper_as(dir.path(), &name);
    let mut child = Command::new(&helper)
        .args([&PAGES.to_string(), "stay"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let roots = FsRoots { procfs: "/proc".into(), sysfs: "/sys".into(), cgroupfs: "/nonexistent".into() };
    let config = pmc::Config { process_include: Some(regex::Regex::new(&name).unwrap()), ..pmc::Config::default() };
    let mut collector = PmcCollector::new(&roots, config);
    let pid = child.id().to_string();
    let faults = |out: &Collection, kind: &str| {
        out.metrics.value("memleak_pmc_process_page_faults_total", &[("pid", &pid), ("comm", &name), ("kind", kind)])
    };
    // Counters open on the first scrape, while the child waits for its go byte.
    let before = collect(&mut collector);
    assert_eq!(before.metrics.value("memleak_pmc_processes", &[]), Some(1.0));
    assert_eq!(faults(&before, "minor"), Some(0.0));

    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"g").unwrap();
    let mut done = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut done).unwrap();
    let during = collect(&mut collector);
    let minor = faults(&during, "minor").unwrap() as u64;
    eprintln!("perf counted {minor} minor faults of pid {pid} for {PAGES} touched pages");
    assert!((PAGES..=PAGES + TOLERANCE).contains(&minor), "{minor} minor faults for {PAGES} touched pages");
    assert_eq!(faults(&during, "major"), Some(0.0));

    drop(stdin);
    assert!(child.wait().unwrap().success());
    let after = collect(&mut collector);
    assert_eq!(after.metrics.value("memleak_pmc_processes", &[]), Some(0.0), "an exited process loses its counters");
    assert_eq!(faults(&after, "minor"), None);
}
