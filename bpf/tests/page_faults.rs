//! The page-fault collector: its compiled object (unprivileged), and real
//! counts on this kernel (root, as CI runs): a child that touches N fresh
//! pages in a new cgroup is estimated at N within a period or two, its faults
//! land in the regions it touched, and every-fault mode counts them exactly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestCgroup, can_run_privileged, collect, compile, map_shape, parsed_object, roots};
use memleak_bpf::page_faults::{Config, FaultMode};
use memleak_bpf::{PAGE_FAULTS, PageFaultsCollector};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn the_object_holds_the_programs_and_maps_the_loader_expects() {
    let Some(object) = parsed_object(PAGE_FAULTS.bytes) else { return };
    for program in ["page_fault_sample", "page_fault_user"] {
        assert!(object.programs.contains_key(program), "{program}: {:?}", object.programs.keys().collect::<Vec<_>>());
    }
    // An LRU hash (type 9) of cgroup id → runs, both u64, bounded at 4096 entries.
    assert_eq!(map_shape(&object, "page_fault_samples"), (9, 8, 8, 4096));
    // A ring buffer (27) of 4 MiB for region samples with their stacks.
    assert_eq!(map_shape(&object, "fault_addresses"), (27, 0, 0, 4 << 20));
    // Per-CPU arrays (6) of u64: the countdown and the drop counter.
    assert_eq!(map_shape(&object, "region_countdown"), (6, 4, 8, 1));
    assert_eq!(map_shape(&object, "page_fault_counters"), (6, 4, 8, 1));
}

/// What the kernel itself counted for a child: its page faults while it was
/// in the test cgroup, and how many times it was switched out (each time it
/// runs again, the per-CPU sampling counter meets it at another phase).
struct KernelCount {
    faults_in_cgroup: u64,
    context_switches: u64,
}

/// Runs `helper PAGES` in a new cgroup; returns the estimate for that cgroup,
/// its path, and the kernel's own count of the child's faults.
fn estimate_for_child(mode: FaultMode, period: u64, pages: u64) -> (u64, String, KernelCount) {
    let dir = tempfile::tempdir().unwrap();
    let helper = compile("../signals/tests/helpers/touch_pages.c", dir.path());
    let cgroup = TestCgroup::new("faults");
    let mut sampler =
        PageFaultsCollector::new(&roots(), Config { mode, period, max_cgroups: 64, every_fault_window: None });
    let first = collect(&mut sampler);
    assert!(first.problems.is_empty(), "{:?}", first.problems);

    let mut child = Command::new(&helper).arg(pages.to_string()).stdin(Stdio::piped()).spawn().unwrap();
    cgroup.adopt(child.id());
    // Faults the child took before it joined the cgroup (exec, the loader) are not the cgroup's.
    let before = faults_so_far(child.id());
    child.stdin.take().unwrap().write_all(b"g").unwrap();
    let usage = wait_with_usage(&mut child);

    let out = collect(&mut sampler);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let label = if mode == FaultMode::EveryFault { "1".to_owned() } else { period.to_string() };
    let estimate = out
        .metrics
        .value("memleak_page_faults_estimated_total", &[("cgroup", &cgroup.path), ("period", &label)])
        .unwrap_or_else(|| panic!("no estimate for {}", cgroup.path)) as u64;
    let kernel = KernelCount {
        faults_in_cgroup: (usage.ru_minflt + usage.ru_majflt) as u64 - before,
        context_switches: (usage.ru_nvcsw + usage.ru_nivcsw) as u64,
    };
    (estimate, cgroup.path.clone(), kernel)
}

/// Minor + major faults of a live process, from /proc/PID/stat (fields 10 and 12).
fn faults_so_far(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    fields[7].parse::<u64>().unwrap() + fields[9].parse::<u64>().unwrap()
}

/// Reaps the child with wait4, which returns the kernel's accounting of its whole life.
fn wait_with_usage(child: &mut std::process::Child) -> libc::rusage {
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; the pid is our own unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4: {}", std::io::Error::last_os_error());
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status}");
    usage
}

#[test]
fn a_child_touching_n_pages_is_estimated_within_its_sampling_error() {
    if !can_run_privileged() {
        return;
    }
    const PAGES: u64 = 20_000;
    const PERIOD: u64 = 100;
    let (estimate, _, kernel) = estimate_for_child(FaultMode::Sampled, PERIOD, PAGES);
    eprintln!(
        "sampled: estimated {estimate}, kernel counted {} faults in {} run segments (period {PERIOD})",
        kernel.faults_in_cgroup,
        kernel.context_switches + 1
    );
    assert!(kernel.faults_in_cgroup >= PAGES, "the child touched {PAGES} fresh pages: {}", kernel.faults_in_cgroup);
    // The counter is per CPU and counts every task's faults: each time the child
    // runs again it meets the countdown at an arbitrary phase, so each run
    // segment adds less than one period of error either way (plus one for the
    // last sample). Other processes' faults do not move the bound, only the phase.
    let bound = (kernel.context_switches + 2) * PERIOD;
    assert!(
        estimate.abs_diff(kernel.faults_in_cgroup) <= bound,
        "{estimate} for {} kernel-counted faults (bound {bound})",
        kernel.faults_in_cgroup
    );
}

#[test]
fn every_fault_mode_counts_each_fault() {
    if !can_run_privileged() {
        return;
    }
    const PAGES: u64 = 5_000;
    let (counted, _, kernel) = estimate_for_child(FaultMode::EveryFault, 1000, PAGES);
    eprintln!("every-fault: counted {counted} page faults; the kernel counted {}", kernel.faults_in_cgroup);
    // The tracepoint sees every fault taken in user mode; the kernel's count also
    // holds the few taken in kernel mode on the child's memory (a read() into a
    // fresh buffer on the way out), so it may only be a little larger.
    assert!(counted >= PAGES && counted <= kernel.faults_in_cgroup, "{counted} of {}", kernel.faults_in_cgroup);
    assert!(kernel.faults_in_cgroup - counted <= 64, "{counted} of {}", kernel.faults_in_cgroup);
}

/// What one run of `fault_regions` gave: the faults per region, the fault
/// profile of its cgroup, and how many times the child was switched out
/// while faulting (each switch re-phases the per-CPU sampling countdown).
struct RegionRun {
    regions: Vec<(String, u64)>,
    profile: memleak_artifacts::Profile,
    context_switches: u64,
}

impl RegionRun {
    /// How far a sampled count of one region may be from the truth: less than
    /// a period per run segment of the child, plus one for the last sample.
    fn bound(&self) -> u64 {
        (self.context_switches + 2) * REGION_PERIOD
    }
}

/// Runs `fault_regions PAGES` in a new cgroup; `before_exit` runs while the
/// child, done faulting, is still alive.
fn regions_of_child(period: u64, pages: u64, before_exit: impl FnOnce(&mut PageFaultsCollector)) -> RegionRun {
    regions_and_profile_of_child(period, pages, |helper| Command::new(helper), before_exit)
}

/// Voluntary plus involuntary context switches of a live process, from /proc/PID/status.
fn context_switches_so_far(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter(|line| line.starts_with("voluntary_ctxt_switches:") || line.starts_with("nonvoluntary_ctxt_switches:"))
        .map(|line| line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum()
}

/// As `regions_of_child`, with the fault profile of the child's cgroup;
/// `launch` makes the command that runs the helper.
fn regions_and_profile_of_child(
    period: u64,
    pages: u64,
    launch: impl FnOnce(&Path) -> Command,
    before_exit: impl FnOnce(&mut PageFaultsCollector),
) -> RegionRun {
    let dir = tempfile::tempdir().unwrap();
    let helper = compile("tests/helpers/fault_regions.c", dir.path());
    let cgroup = TestCgroup::new("regions");
    let mut sampler = PageFaultsCollector::new(
        &roots(),
        Config { mode: FaultMode::Sampled, period, max_cgroups: 64, every_fault_window: None },
    );
    assert!(collect(&mut sampler).problems.is_empty());

    let mut child =
        launch(&helper).arg(pages.to_string()).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    cgroup.adopt(child.id());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"g").unwrap();
    let mut done = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut done).unwrap();
    let context_switches = context_switches_so_far(child.id());
    before_exit(&mut sampler);
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let out = collect(&mut sampler);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let regions = ["heap", "anon", "file", "stack", "exited", "unmapped"]
        .iter()
        .map(|region| {
            let labels = [("cgroup", cgroup.path.as_str()), ("region", region), ("period", &period.to_string())];
            let value = out.metrics.value("memleak_page_faults_region_estimated_total", &labels).unwrap_or(0.0);
            ((*region).to_owned(), value as u64)
        })
        .collect();
    let mut profile = sampler.profile().profile_for(&roots().cgroupfs);
    profile.samples.retain(|s| s.labels.iter().any(|(k, v)| k == "cgroup" && *v == cgroup.path));
    RegionRun { regions, profile, context_switches }
}

fn region(regions: &[(String, u64)], name: &str) -> u64 {
    regions.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)
}

const REGION_PAGES: u64 = 10_000;
const REGION_PERIOD: u64 = 100;

fn assert_heap_and_anon(run: &RegionRun) {
    let (regions, bound) = (&run.regions, run.bound());
    eprintln!("regions: {regions:?} ({} context switches, bound {bound})", run.context_switches);
    // Each region took REGION_PAGES faults; sampling is exact to a period per run segment.
    for name in ["heap", "anon"] {
        let value = region(regions, name);
        assert!(value.abs_diff(REGION_PAGES) <= bound, "{name}: {value} for {REGION_PAGES} (bound {bound})");
    }
    assert!(region(regions, "file") + region(regions, "stack") <= bound, "the child barely touches files");
}

#[test]
fn faults_are_attributed_to_the_regions_and_stacks_that_took_them() {
    if !can_run_privileged() {
        return;
    }
    // Scraped while the child is alive, so its maps are there to read.
    let run = regions_and_profile_of_child(
        REGION_PERIOD,
        REGION_PAGES,
        |helper| Command::new(helper),
        |sampler| {
            assert!(collect(sampler).problems.is_empty());
        },
    );
    assert_heap_and_anon(&run);
    assert_stacks_named(&run);
}

/// The profile names the functions that touched the pages, above main (frame pointers).
fn assert_stacks_named(run: &RegionRun) {
    let (profile, bound) = (&run.profile, run.bound() as i64);
    for (region, function) in [("heap", "touch_heap_pages"), ("anon", "touch_anon_pages")] {
        let faults: i64 = profile
            .samples
            .iter()
            .filter(|s| s.labels.iter().any(|(k, v)| k == "region" && v == region))
            .filter(|s| s.stack.first().is_some_and(|f| f.function == function))
            .filter(|s| s.stack.iter().any(|f| f.function == "main"))
            .map(|s| s.values[0])
            .sum();
        eprintln!("profile: {faults} {region} faults in {function} ← main");
        if faults.abs_diff(REGION_PAGES as i64) > bound as u64 {
            let stacks: Vec<_> = profile
                .samples
                .iter()
                .filter(|s| s.labels.iter().any(|(k, v)| k == "region" && v == region))
                .map(|s| (s.values[0], s.stack.iter().map(|f| f.function.as_str()).collect::<Vec<_>>()))
                .collect();
            panic!("{region}: {faults} in {function} (bound {bound}); the region's samples: {stacks:?}");
        }
    }
}

#[test]
fn the_background_drain_attributes_faults_of_a_process_that_exits_before_the_scrape() {
    if !can_run_privileged() {
        return;
    }
    // No scrape while the child lives: it stays 3 s (more than one drain interval) and exits.
    let run = regions_of_child(REGION_PERIOD, REGION_PAGES, |_| {
        std::thread::sleep(std::time::Duration::from_secs(3));
    });
    assert_heap_and_anon(&run);
    assert!(region(&run.regions, "exited") <= run.bound(), "classified while it lived");
}

/// Faults `pages` fresh pages in this process: a new anonymous mapping, not
/// the allocator, which may hand back memory that is already faulted in.
fn touch_pages_here(pages: usize) -> usize {
    let len = pages * 4096;
    // SAFETY: a private anonymous mapping of `len` bytes, written within bounds, then unmapped.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let bytes = p.cast::<u8>();
        for page in 0..pages {
            bytes.add(page * 4096).write_volatile(1);
        }
        let touched = (0..pages).filter(|page| bytes.add(page * 4096).read_volatile() == 1).count();
        libc::munmap(p, len);
        touched
    }
}

#[test]
fn every_fault_mode_ends_after_its_window() {
    if !can_run_privileged() {
        return;
    }
    // Long enough for the load, the touches and a scrape on a busy machine (a
    // 3 s window once ran out at load 14, 6.2 s in).
    let window = std::time::Duration::from_secs(15);
    let config = Config { mode: FaultMode::EveryFault, period: 100, max_cgroups: 64, every_fault_window: Some(window) };
    let mut sampler = PageFaultsCollector::new(&roots(), config);
    let has_period = |out: &memleak_signals::Collection, period: &str| {
        out.metrics.value("memleak_page_faults_estimated_total", &[("period", period)]).is_some()
    };
    let estimates = |out: &memleak_signals::Collection| {
        let family = out.metrics.families().iter().find(|f| f.spec.name == "memleak_page_faults_estimated_total");
        format!("{:?}", family.map(|f| &f.samples))
    };
    let started = std::time::Instant::now();
    assert!(collect(&mut sampler).problems.is_empty());
    // The window started during that first collection, so it has ended by `loaded + window`.
    let loaded = std::time::Instant::now();
    assert_eq!(touch_pages_here(2000), 2000);
    let during = collect(&mut sampler);
    let took = started.elapsed();
    assert!(
        has_period(&during, "1") && !has_period(&during, "100"),
        "every fault counted during the window ({took:?} in): {}",
        estimates(&during)
    );

    std::thread::sleep(
        (loaded + window + std::time::Duration::from_secs(1)).saturating_duration_since(std::time::Instant::now()),
    );
    assert!(collect(&mut sampler).problems.is_empty(), "reloaded in sampled mode");
    assert_eq!(touch_pages_here(20_000), 20_000);
    let after = collect(&mut sampler);
    assert!(after.problems.is_empty(), "{:?}", after.problems);
    assert!(
        has_period(&after, "100") && !has_period(&after, "1"),
        "sampling again after the window: {}",
        estimates(&after)
    );
}

#[test]
fn a_process_in_another_mount_namespace_is_symbolized_through_its_root() {
    if !can_run_privileged() {
        return;
    }
    // The helper runs from a tmpfs mounted in its own mount namespace only: the
    // exporter cannot open it by the path the process maps it from, only through
    // /proc/PID/root, as for a process in a container.
    let private = tempfile::tempdir().unwrap();
    let launch = |helper: &Path| {
        let script = format!(
            "mount -t tmpfs none {dir} && cp {helper} {dir}/ && exec {dir}/fault_regions \"$0\"",
            dir = private.path().display(),
            helper = helper.display()
        );
        let mut command = Command::new("unshare");
        command.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
        command
    };
    let run = regions_and_profile_of_child(REGION_PERIOD, REGION_PAGES, launch, |sampler| {
        assert!(collect(sampler).problems.is_empty());
    });
    assert!(!private.path().join("fault_regions").exists(), "the binary is not visible from here");
    assert_heap_and_anon(&run);
    assert_stacks_named(&run);
}
