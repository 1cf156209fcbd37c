//! The page-fault sampler: its compiled object (unprivileged), and real
//! attribution on this kernel (root, as CI runs): a child that touches N fresh
//! pages in a new cgroup is estimated at N within one sampling period.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use memleak_bpf::{PAGE_FAULTS_OBJECT, PageFaultSampler, built_with_bpf};
use memleak_signals::{Collection, Collector, FsRoots, ScrapeContext};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

#[test]
fn the_object_holds_the_program_and_map_the_loader_expects() {
    if !built_with_bpf() {
        assert!(!ci(), "CI installs clang: the BPF objects must be built there");
        eprintln!("SKIP: built without clang (Debian package clang)");
        return;
    }
    let object = aya_obj::Object::parse(PAGE_FAULTS_OBJECT).unwrap();
    assert!(object.programs.contains_key("page_fault_sample"), "{:?}", object.programs.keys().collect::<Vec<_>>());
    let map = &object.maps["page_fault_samples"];
    // An LRU hash (type 9) of cgroup id → samples, both u64, bounded at 4096 entries.
    assert_eq!((map.map_type(), map.key_size(), map.value_size(), map.max_entries()), (9, 8, 8, 4096));
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn collect(c: &mut PageFaultSampler) -> Collection {
    let mut out = Collection::default();
    c.collect(&ScrapeContext::with_budget(Duration::from_secs(5)), &mut out);
    out
}

#[test]
fn a_child_touching_n_pages_is_estimated_within_one_period() {
    if !is_root() || !built_with_bpf() {
        assert!(!ci(), "CI is root and has clang: this test must run there");
        eprintln!("SKIP: needs root and a build with clang");
        return;
    }
    const PAGES: u64 = 20_000;
    const PERIOD: u64 = 100;
    let v2 = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").is_file())
        .unwrap();
    let name = format!("memleak-bpf-test-{}", std::process::id());
    let cgroup = TestCgroup(v2.join(&name));
    std::fs::create_dir(&cgroup.0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("touch_pages");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../signals/tests/helpers/touch_pages.c");
    assert!(Command::new("cc").arg("-O1").arg("-o").arg(&helper).arg(source).status().unwrap().success());

    let roots = FsRoots { procfs: "/proc".into(), sysfs: "/sys".into(), cgroupfs: v2.clone() };
    let mut sampler = PageFaultSampler::new(&roots, PERIOD);
    let first = collect(&mut sampler);
    assert!(first.problems.is_empty(), "{:?}", first.problems);

    let mut child = Command::new(&helper).arg(PAGES.to_string()).stdin(Stdio::piped()).spawn().unwrap();
    std::fs::write(cgroup.0.join("cgroup.procs"), child.id().to_string()).unwrap();
    child.stdin.take().unwrap().write_all(b"g").unwrap();
    assert!(child.wait().unwrap().success());

    let out = collect(&mut sampler);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let path = format!("/{name}");
    let estimate = out
        .metrics
        .value("memleak_page_faults_estimated_total", &[("cgroup", &path), ("period", &PERIOD.to_string())])
        .unwrap_or_else(|| panic!("no estimate for {path}")) as u64;
    eprintln!("estimated {estimate} page faults for {PAGES} touched pages (period {PERIOD})");
    // Samples fall every PERIOD faults per CPU; the runtime adds a few dozen faults.
    assert!(estimate + 2 * PERIOD >= PAGES && estimate <= PAGES + 2 * PERIOD + 64, "{estimate} for {PAGES}");
}
