#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Collectors over the fixture roots (`tests/fixtures/make-roots.py`): targeted
//! checks against the values the kernel files hold. The golden files of the whole
//! exposition (`tests/golden/`) are produced from the exporter's collector table, by
//! `exporter/tests/golden.rs`, so that no second list of collectors exists here.

use memleak_signals::cgroup::{self, CgroupCollector};
use memleak_signals::host_memory::HostMemoryCollector;
use memleak_signals::options::whole_match;
use memleak_signals::process::{self, GroupBy, ProcessCollector};
use memleak_signals::psi::PsiCollector;
use memleak_signals::{Collection, Collector, FsRoots, ProblemKind, ScrapeContext};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn root(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn run(collector: &mut dyn Collector) -> Collection {
    let mut out = Collection::default();
    collector.collect(&ScrapeContext::with_budget(Duration::from_secs(10)), &mut out);
    out
}

fn process_collector(roots: &FsRoots, group_by: GroupBy) -> ProcessCollector {
    let config = process::Config { group_by, ..process::Config::default() };
    ProcessCollector::new(roots, config).unwrap()
}

/// Reads `key:  N kB` from a fixture status file: the kernel's own number.
fn status_kb(root: &str, pid: u32, key: &str) -> f64 {
    let text = std::fs::read_to_string(self::root(root).join(format!("proc/{pid}/status"))).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{key}:"))).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() * 1024.0
}

fn stat_field(root: &str, pid: u32, field: usize) -> f64 {
    let text = std::fs::read_to_string(self::root(root).join(format!("proc/{pid}/stat"))).unwrap();
    let after = &text[text.rfind(')').unwrap() + 2..];
    after.split_whitespace().nth(field - 3).unwrap().parse().unwrap()
}

#[test]
fn process_groups_sum_their_members() {
    let roots = FsRoots::under(&root("root-v2"));
    let out = run(&mut process_collector(&roots, GroupBy::Comm));
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let m = &out.metrics;
    let g = [("group", "a_cachesvc")];
    assert_eq!(m.value("memleak_process_processes", &g), Some(2.0));
    let minflt = stat_field("root-v2", 20805, 10) + stat_field("root-v2", 20806, 10);
    assert_eq!(m.value("memleak_process_minor_faults_total", &g), Some(minflt));
    let anon = status_kb("root-v2", 20805, "RssAnon") + status_kb("root-v2", 20806, "RssAnon");
    assert_eq!(m.value("memleak_process_anon_bytes", &g), Some(anon));
    // stat's rss and status's VmRSS were read a moment apart: equal within a few pages.
    let vmrss = status_kb("root-v2", 20805, "VmRSS") + status_kb("root-v2", 20806, "VmRSS");
    let resident = m.value("memleak_process_resident_bytes", &g).unwrap();
    assert!((resident - vmrss).abs() <= 64.0 * 4096.0, "resident {resident} vs VmRSS {vmrss}");
    // Peak is the larger member's VmHWM, not a sum.
    assert_eq!(m.value("memleak_process_resident_peak_bytes", &g), Some(status_kb("root-v2", 20805, "VmHWM")));
    // Both members' maps: 24 mappings each; [heap] 380 kB (t3) + 132 kB (t1), README ground truth.
    assert_eq!(m.value("memleak_process_mappings", &g), Some(48.0));
    assert_eq!(m.value("memleak_process_heap_bytes", &g), Some((380.0 + 132.0) * 1024.0));
    // Start time: btime 1795595000 + 134940 ticks / 100 (both members started then).
    assert_eq!(m.value("memleak_process_start_time_seconds", &g), Some(1_795_595_000.0 + 1349.4));
    assert_eq!(m.value("memleak_process_processes", &[("group", "worker")]), Some(1.0));
    assert_eq!(m.value("memleak_process_processes", &[("group", "kthreadd")]), None, "kernel threads are left out");
}

#[test]
fn process_grouping_by_cgroup_and_pid() {
    let roots = FsRoots::under(&root("root-v2"));
    let by_cgroup = run(&mut process_collector(&roots, GroupBy::Cgroup)).metrics;
    assert_eq!(
        by_cgroup.value("memleak_process_processes", &[("group", "/system.slice/a_cachesvc.service")]),
        Some(2.0)
    );
    let by_pid = run(&mut process_collector(&roots, GroupBy::Pid)).metrics;
    let rss = by_pid.value("memleak_process_resident_bytes", &[("group", "a_cachesvc"), ("pid", "20806")]).unwrap();
    assert_eq!(rss, stat_field("root-v2", 20806, 24) * 4096.0);
}

#[test]
fn process_selection_by_cmdline_and_cgroup() {
    let roots = FsRoots::under(&root("root-v2"));
    let mut config = process::Config::default();
    config.selection.include_cgroup = Some(whole_match("test", "/system.slice/docker-.*").unwrap());
    let m = run(&mut ProcessCollector::new(&roots, config).unwrap()).metrics;
    assert_eq!(m.value("memleak_process_processes", &[("group", "worker")]), Some(1.0));
    assert_eq!(m.value("memleak_process_processes", &[("group", "a_cachesvc")]), None);
    let mut config = process::Config::default();
    config.selection.exclude_cmdline = Some(whole_match("test", ".*worker.*").unwrap());
    let m = run(&mut ProcessCollector::new(&roots, config).unwrap()).metrics;
    assert_eq!(m.value("memleak_process_processes", &[("group", "worker")]), None);
    assert_eq!(m.value("memleak_process_processes", &[("group", "a_cachesvc")]), Some(2.0));
}

#[test]
fn process_groups_are_capped() {
    let roots = FsRoots::under(&root("root-v2"));
    let config = process::Config { max_groups: 1, ..process::Config::default() };
    let m = run(&mut ProcessCollector::new(&roots, config).unwrap()).metrics;
    assert_eq!(m.value("memleak_process_processes", &[("group", "__other__")]), Some(3.0));
    assert_eq!(m.value("memleak_process_folded_groups", &[]), Some(2.0));
}

#[test]
fn cgroup_v2_values_and_attribution() {
    let roots = FsRoots::under(&root("root-v2"));
    let out = run(&mut CgroupCollector::new(&roots, cgroup::Config::default()));
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let m = &out.metrics;
    let svc = [("cgroup", "/system.slice/a_cachesvc.service")];
    const MIB: f64 = 1048576.0;
    assert_eq!(m.value("memleak_cgroup_usage_bytes", &svc), Some(64.0 * MIB));
    assert_eq!(m.value("memleak_cgroup_limit_bytes", &svc), Some(512.0 * MIB));
    assert_eq!(m.value("memleak_cgroup_high_bytes", &svc), Some(384.0 * MIB));
    assert_eq!(m.value("memleak_cgroup_anon_bytes", &svc), Some(48.0 * MIB));
    assert_eq!(m.value("memleak_cgroup_slab_unreclaimable_bytes", &svc), Some(MIB));
    assert_eq!(m.value("memleak_cgroup_events_total", &[svc[0], ("event", "oom_kill")]), Some(1.0));
    assert_eq!(m.value("memleak_cgroup_events_total", &[svc[0], ("event", "high")]), Some(7.0));
    assert_eq!(m.value("memleak_cgroup_psi_stall_seconds_total", &[svc[0], ("kind", "some")]), Some(2.5));
    assert_eq!(m.value("memleak_cgroup_usage_bytes", &[("unit", "a_cachesvc.service")]), Some(64.0 * MIB));
    assert_eq!(m.value("memleak_cgroup_limit_bytes", &[("cgroup", "/system.slice")]), None, "max means unlimited");
    assert_eq!(m.value("memleak_cgroup_usage_bytes", &[("container_runtime", "docker")]), Some(128.0 * MIB));
    let ctr = [("container_runtime", "containerd"), ("pod_uid", "8a4c2f3e-1b2d-4e5f-9a8b-7c6d5e4f3a2b")];
    assert_eq!(m.value("memleak_cgroup_events_total", &[ctr[0], ctr[1], ("event", "oom_kill")]), Some(2.0));
    // The root has no memory.current in v2, and the leaf has no memory files.
    assert_eq!(m.value("memleak_cgroup_usage_bytes", &[("cgroup", "/")]), None);
    assert_eq!(m.value("memleak_cgroup_usage_bytes", &[("cgroup", "/system.slice/a_cachesvc.service/leaf")]), None);
    assert_eq!(m.value("memleak_cgroup_cgroups", &[("version", "v2")]), Some(7.0));
}

#[test]
fn cgroup_v1_on_a_hybrid_host() {
    let roots = FsRoots::under(&root("root-v1"));
    let out = run(&mut CgroupCollector::new(&roots, cgroup::Config::default()));
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let m = &out.metrics;
    let api = [("cgroup", "/process_api")];
    // Values read off this project's VM (tests/fixtures/v1-memory.stat and make-roots.py).
    assert_eq!(m.value("memleak_cgroup_usage_bytes", &api), Some(924_712_960.0));
    assert_eq!(m.value("memleak_cgroup_limit_bytes", &api), None, "9223372036854771712 means unlimited");
    let stat = std::fs::read_to_string(root("v1-memory.stat")).unwrap();
    let key = |k: &str| stat.lines().find_map(|l| l.strip_prefix(&format!("{k} "))).unwrap().parse::<f64>().unwrap();
    // Hierarchical totals, as v2's memory.stat is hierarchical.
    assert_eq!(m.value("memleak_cgroup_anon_bytes", &api), Some(key("total_rss")));
    assert_eq!(m.value("memleak_cgroup_file_bytes", &api), Some(key("total_cache")));
    assert_eq!(m.value("memleak_cgroup_swap_bytes", &api), Some((926_117_888u64 - 924_712_960) as f64));
    assert_eq!(m.value("memleak_cgroup_limit_bytes", &[("container_runtime", "docker")]), Some(2048.0 * 1048576.0));
    // "/", "/process_api" and the container; "/docker" itself has no files.
    assert_eq!(m.value("memleak_cgroup_cgroups", &[("version", "v1")]), Some(3.0));
}

#[test]
fn cgroup_limits_and_filters() {
    let roots = FsRoots::under(&root("root-v2"));
    let config = cgroup::Config { max_cgroups: 2, ..cgroup::Config::default() };
    let m = run(&mut CgroupCollector::new(&roots, config)).metrics;
    assert_eq!(m.value("memleak_cgroup_cgroups", &[]), Some(2.0));
    assert_eq!(m.value("memleak_cgroup_skipped_cgroups", &[]), Some(5.0));
    let config = cgroup::Config {
        include: Some(whole_match("test", "/system.slice/.*").unwrap()),
        max_depth: 1,
        ..cgroup::Config::default()
    };
    let m = run(&mut CgroupCollector::new(&roots, config)).metrics;
    assert_eq!(m.value("memleak_cgroup_cgroups", &[]), Some(0.0), "depth 1 stops above the services");
}

#[test]
fn malformed_files_fail_only_their_collector() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    std::fs::create_dir_all(proc.join("pressure")).unwrap();
    std::fs::create_dir_all(proc.join("100")).unwrap();
    std::fs::create_dir_all(proc.join("101")).unwrap();
    std::fs::write(proc.join("pressure/memory"), "some avg10=zz\n").unwrap();
    std::fs::write(proc.join("meminfo"), "MemTotal: 100 kB\nMemAvailable: 50 kB\n").unwrap();
    std::fs::write(proc.join("vmstat"), "pgfault 1\n").unwrap();
    std::fs::write(proc.join("stat"), "btime 1\n").unwrap();
    std::fs::write(proc.join("100/stat"), "100 (ok) S 1 1 1 0 -1 0 5 0 6 0 0 0 0 0 20 0 1 0 10 4096 2 0\n").unwrap();
    std::fs::write(proc.join("100/status"), "VmRSS: 8 kB\n").unwrap();
    std::fs::write(proc.join("101/stat"), "101 (bad) S 1 1\n").unwrap();
    let cg = dir.path().join("sys/fs/cgroup");
    std::fs::create_dir_all(cg.join("a")).unwrap();
    std::fs::write(cg.join("cgroup.controllers"), "memory\n").unwrap();
    std::fs::write(cg.join("a/memory.current"), "12\n").unwrap();
    std::fs::write(cg.join("a/memory.stat"), "anon twelve\n").unwrap();
    let roots = FsRoots::under(dir.path());

    let psi = run(&mut PsiCollector::new(&roots));
    assert_eq!(psi.problems[0].kind, ProblemKind::Parse);
    assert!(psi.problems[0].to_string().contains("pressure/memory: line 1"), "{}", psi.problems[0]);
    assert!(run(&mut HostMemoryCollector::new(&roots)).problems.is_empty());

    let p = run(&mut process_collector(&roots, GroupBy::Comm));
    assert_eq!(p.problems.len(), 1);
    assert!(p.problems[0].to_string().contains("101/stat: truncated"), "{}", p.problems[0]);
    assert_eq!(p.metrics.value("memleak_process_minor_faults_total", &[("group", "ok")]), Some(5.0));

    let c = run(&mut CgroupCollector::new(&roots, cgroup::Config::default()));
    assert_eq!(c.problems.len(), 1);
    assert!(c.problems[0].to_string().contains("a/memory.stat: line 1"), "{}", c.problems[0]);
    assert_eq!(c.metrics.value("memleak_cgroup_usage_bytes", &[("cgroup", "/a")]), Some(12.0));
}

#[test]
fn missing_trees_are_unsupported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let roots = FsRoots::under(dir.path());
    for mut c in [
        Box::new(PsiCollector::new(&roots)) as Box<dyn Collector>,
        Box::new(process_collector(&roots, GroupBy::Comm)),
        Box::new(CgroupCollector::new(&roots, cgroup::Config::default())),
    ] {
        let out = run(c.as_mut());
        assert!(!out.problems.is_empty(), "{}", c.id());
        assert!(out.problems.iter().all(|p| !p.hint.is_empty()), "{}: {:?}", c.id(), out.problems);
    }
}
