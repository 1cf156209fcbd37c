//! The page-fault collector: its compiled object (unprivileged), and real
//! counts on this kernel (root, as CI runs): a child that touches N fresh
//! pages in a new cgroup is estimated at N within a period or two, its faults
//! land in the regions it touched, and every-fault mode counts them exactly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestCgroup, can_run_privileged, collect, compile, roots};
use memleak_bpf::{FaultConfig, FaultMode, PAGE_FAULTS, PageFaultSampler, built_with_bpf};
use std::io::{Read, Write};
use std::process::{Command, Stdio};

#[test]
fn the_object_holds_the_programs_and_maps_the_loader_expects() {
    if !built_with_bpf() {
        assert!(!common::ci(), "CI installs clang: the BPF objects must be built there");
        eprintln!("SKIP: built without clang (Debian package clang)");
        return;
    }
    let object = aya_obj::Object::parse(PAGE_FAULTS.bytes).unwrap();
    for program in ["page_fault_sample", "page_fault_user"] {
        assert!(object.programs.contains_key(program), "{program}: {:?}", object.programs.keys().collect::<Vec<_>>());
    }
    let shape = |name: &str| {
        let map = &object.maps[name];
        (map.map_type(), map.key_size(), map.value_size(), map.max_entries())
    };
    // An LRU hash (type 9) of cgroup id → runs, both u64, bounded at 4096 entries.
    assert_eq!(shape("page_fault_samples"), (9, 8, 8, 4096));
    // A ring buffer (27) of 1 MiB for region samples.
    assert_eq!(shape("fault_addresses"), (27, 0, 0, 1 << 20));
    // Per-CPU arrays (6) of u64: the countdown and the drop counter.
    assert_eq!(shape("region_countdown"), (6, 4, 8, 1));
    assert_eq!(shape("page_fault_counters"), (6, 4, 8, 1));
}

/// Runs `helper PAGES` in a new cgroup and returns the estimate for that cgroup.
fn estimate_for_child(mode: FaultMode, period: u64, pages: u64) -> (u64, String) {
    let dir = tempfile::tempdir().unwrap();
    let helper = compile("../signals/tests/helpers/touch_pages.c", dir.path());
    let cgroup = TestCgroup::new("faults");
    let mut sampler = PageFaultSampler::new(&roots(), FaultConfig { mode, period, max_cgroups: 64 });
    let first = collect(&mut sampler);
    assert!(first.problems.is_empty(), "{:?}", first.problems);

    let mut child = Command::new(&helper).arg(pages.to_string()).stdin(Stdio::piped()).spawn().unwrap();
    cgroup.adopt(child.id());
    child.stdin.take().unwrap().write_all(b"g").unwrap();
    assert!(child.wait().unwrap().success());

    let out = collect(&mut sampler);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let label = if mode == FaultMode::EveryFault { "1".to_owned() } else { period.to_string() };
    let estimate = out
        .metrics
        .value("memleak_page_faults_estimated_total", &[("cgroup", &cgroup.path), ("period", &label)])
        .unwrap_or_else(|| panic!("no estimate for {}", cgroup.path)) as u64;
    (estimate, cgroup.path.clone())
}

#[test]
fn a_child_touching_n_pages_is_estimated_within_two_periods() {
    if !can_run_privileged() {
        return;
    }
    const PAGES: u64 = 20_000;
    const PERIOD: u64 = 100;
    let (estimate, _) = estimate_for_child(FaultMode::Sampled, PERIOD, PAGES);
    eprintln!("sampled: estimated {estimate} page faults for {PAGES} touched pages (period {PERIOD})");
    // Samples fall every PERIOD faults per CPU; the runtime adds a few dozen faults on its way out.
    assert!(estimate + 2 * PERIOD >= PAGES && estimate <= PAGES + 2 * PERIOD + 64, "{estimate} for {PAGES}");
}

#[test]
fn every_fault_mode_counts_each_fault() {
    if !can_run_privileged() {
        return;
    }
    const PAGES: u64 = 5_000;
    let (counted, _) = estimate_for_child(FaultMode::EveryFault, 1000, PAGES);
    eprintln!("every-fault: counted {counted} page faults for {PAGES} touched pages");
    // Exactly the touched pages, plus the runtime's few user faults after the go byte (exit path).
    assert!((PAGES..=PAGES + 64).contains(&counted), "{counted} for {PAGES}");
}

#[test]
fn faults_are_attributed_to_the_regions_that_took_them() {
    if !can_run_privileged() {
        return;
    }
    const PAGES: u64 = 10_000;
    const PERIOD: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let helper = compile("tests/helpers/fault_regions.c", dir.path());
    let cgroup = TestCgroup::new("regions");
    let mut sampler =
        PageFaultSampler::new(&roots(), FaultConfig { mode: FaultMode::Sampled, period: PERIOD, max_cgroups: 64 });
    assert!(collect(&mut sampler).problems.is_empty());

    let mut child =
        Command::new(&helper).arg(PAGES.to_string()).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    cgroup.adopt(child.id());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"g").unwrap();
    let mut done = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut done).unwrap();
    // Scraped while the child is alive, so its maps are there to read.
    let out = collect(&mut sampler);
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert!(out.problems.is_empty(), "{:?}", out.problems);

    let region = |name: &str| {
        out.metrics
            .value(
                "memleak_page_faults_region_estimated_total",
                &[("cgroup", &cgroup.path), ("region", name), ("period", &PERIOD.to_string())],
            )
            .unwrap_or(0.0) as u64
    };
    let (heap, anon) = (region("heap"), region("anon"));
    eprintln!("regions: heap {heap}, anon {anon}, file {}, stack {}", region("file"), region("stack"));
    // Each region took PAGES faults; sampling is exact to a period or two per region.
    for (name, value) in [("heap", heap), ("anon", anon)] {
        assert!(value.abs_diff(PAGES) <= 3 * PERIOD, "{name}: {value} for {PAGES}");
    }
    assert!(region("file") + region("stack") <= 3 * PERIOD, "the child barely touches files or its stack");
}
