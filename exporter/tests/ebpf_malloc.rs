//! Capture kind `ebpf-malloc` through the capture loop on real processes
//! (root, CI): program A traced until it exits (ground truth in the
//! fixtures' README), the exporter's own statically linked jemalloc, the
//! overhead governor against a malloc-heavy loop, and an exporter without
//! CAP_BPF. The SIGKILL test is in ebpf_malloc_kill.rs (it counts the
//! kernel's programs, so no other capture may run beside it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod ebpf_malloc_support;

use common::{Exporter, Guard, request};
use ebpf_malloc_support::*;
use memleak_artifacts::pprof_decode;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn program_a_traced_until_it_exits_names_the_leak_in_every_output() {
    if !privileged() {
        return;
    }
    let exporter = Exporter::start(&[]);
    let mut child = program_a(30_000); // 400 iterations of ~30 ms: 12 s
    let pid = child.id();
    let reaper = std::thread::spawn(move || child.wait());
    let labels = json!({ "group": "a_cachesvc", "pid": pid.to_string() });
    let annotations = json!({ "capture_duration": "60s", "ebpf_malloc_mode": "full" });
    let id = start_capture(&exporter, alert("m1", labels, annotations));
    let done = wait_for(&exporter, &id, "finished", finished);
    reaper.join().unwrap().unwrap();
    // It exits after its 400 iterations, long before the window's end: partial, with what it held.
    assert_eq!(done["status"], "partial", "{done}");
    assert!(done["reason"].as_str().unwrap().contains("exited"), "{done}");
    let summary = &done["summary"];
    assert_eq!(summary["top_sites"][0]["function"], "leak_request_buffer", "{summary}");
    assert!(summary["attributes"]["allocators"].as_str().unwrap().starts_with("glibc"), "{summary}");
    assert_eq!(summary["attributes"]["comm"], "a_cachesvc");

    let (status, profile) = request(exporter.port, "GET", &format!("/api/v1/captures/{id}/profile.pb.gz"), "", "");
    assert_eq!(status, 200);
    let profile = pprof_decode::decode(&profile).unwrap().profile;
    assert_eq!(profile.sample_types[0].kind, "inuse_space", "the default sample type");
    let held = |function: &str| -> (i64, i64) {
        profile
            .samples
            .iter()
            .filter(|s| s.stack.first().is_some_and(|f| f.function == function))
            .fold((0, 0), |(b, n), s| (b + s.values[0], n + s.values[1]))
    };
    let (leak_bytes, leaks) = held("leak_request_buffer");
    let (cache_bytes, entries) = held("leaky_cache_insert");
    // The program's own sizes, and its pace: one cache entry every iteration, a
    // leaked request buffer every other one; the trace began after a few iterations.
    assert_eq!((leak_bytes, cache_bytes), (1536 * leaks, 256 * entries));
    assert!((entries - 2 * leaks).abs() <= 2 && (10..=400).contains(&entries), "{entries} entries, {leaks} leaks");
    assert_eq!(held("handle_request").0, 0, "the scratch buffers are all freed");

    let (_, svg) = request(exporter.port, "GET", &format!("/api/v1/captures/{id}/flamegraph.svg"), "", "");
    assert!(String::from_utf8(svg).unwrap().contains("leak_request_buffer"));
    let record = &summary["records"][0];
    assert_eq!(record["kind"], "capture.ebpf-malloc");
    assert_eq!(record["attributes"]["site.0.function"], "leak_request_buffer");
}

#[test]
fn the_exporter_itself_is_traced_through_its_static_jemalloc() {
    if !privileged() {
        return;
    }
    // A second exporter as the target: Rust, jemalloc linked into the executable.
    let target = Exporter::start(&[]);
    let port = target.port;
    let tracing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let scraping = std::sync::Arc::clone(&tracing);
    let scrapes = std::thread::spawn(move || {
        while scraping.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = request(port, "GET", "/metrics", "", "");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let mut wait = |d: Duration| -> Result<(), String> {
        std::thread::sleep(d);
        Ok(())
    };
    let options = memleak_bpf::malloc::Options { budget: 1.0, full: true };
    let traced =
        memleak_bpf::malloc::trace(Path::new("/proc"), target.pid(), &options, Duration::from_secs(2), &mut wait)
            .unwrap();
    tracing.store(false, std::sync::atomic::Ordering::Relaxed);
    scrapes.join().unwrap();
    let result = traced.result;
    let allocators = &result.attributes.iter().find(|(n, _)| n == "allocators").unwrap().1;
    assert!(allocators.starts_with("jemalloc (linked into memleak-exporter)"), "{allocators}");
    assert!(allocators.contains("mallocx") && allocators.contains("sdallocx"), "{allocators}");
    let profile = &result.profiles[0];
    assert!(profile.total(3) > 0, "the scrapes allocated: {:?}", result.totals);
    // Named from the executable's own symbols, demangled.
    assert!(
        profile.samples.iter().any(|s| s.stack.iter().any(|f| f.function.starts_with("memleak_signals::"))),
        "{:?}",
        profile.samples.iter().map(|s| &s.stack).collect::<Vec<_>>()
    );
}

#[test]
fn a_malloc_heavy_loop_is_stopped_early_by_the_governor_and_ends_partial() {
    if !privileged() {
        return;
    }
    // 100 million malloc/free pairs: about ten seconds of CPU, millions of calls a second.
    let run = |exporter: Option<&Exporter>| churn_loop(exporter, 100_000_000, "g1");
    let (bare, bare_sys, _) = run(None);
    let exporter = Exporter::start(&["--capture.ebpf-malloc.budget", "5"]);
    let (traced, traced_sys, done) = run(Some(&exporter));
    let done = done.unwrap();
    assert_eq!(done["status"], "partial", "{done}");
    assert!(done["reason"].as_str().unwrap().contains("overhead governor"), "{done}");
    // Its CPU time against the same loop untraced. Uprobe traps are charged to
    // the target's system time, which the loop (no system calls) otherwise
    // hardly uses: the added system time is what the capture cost it, at most
    // 5 % of the loop's run. (The user part swings by more than that on a
    // loaded 2-core host, traced or not.)
    eprintln!(
        "malloc_churn: untraced {bare:.3} s CPU ({bare_sys:.3} s system), under the capture {traced:.3} s ({traced_sys:.3} s system)"
    );
    // The probes stop trapping as soon as their links are closed (one
    // uprobe_multi link per program: the breakpoints go first, then one grace
    // period), so the budget covers the whole capture: the loop's added system
    // time is at most the budget's share of its run. The tolerance is the
    // untraced run's own system time (page faults, timer ticks), which varies
    // by up to that much between two runs on a loaded host.
    let totals = &done["summary"]["totals"];
    let detach = totals["detach_seconds"].as_f64().unwrap();
    let added = traced_sys - bare_sys;
    eprintln!("the capture's probes took {detach:.3} s to detach; system time up {added:.3} s over {traced:.3} s");
    assert!(
        added <= 0.05 * traced + bare_sys,
        "the capture added {added:.3} s of system time to a {traced:.3} s loop: over 5 % plus {bare_sys:.3} s"
    );
    // What the governor controls: it stops a 60 s window early, when even its
    // lowest rate would cost the loop more than the budget.
    let elapsed = done["elapsed_seconds"].as_f64().unwrap();
    assert!(elapsed < 30.0, "the governor let a capture over its budget run {elapsed} s of 60: {done}");
}

/// Runs the churn helper for `iterations` malloc/free pairs (16 B to 4 KiB),
/// under a capture of `exporter` opened before the loop starts when there is
/// one: the loop's CPU seconds, the system part of them, and the finished capture.
fn churn_loop(
    exporter: Option<&Exporter>,
    iterations: u64,
    fingerprint: &str,
) -> (f64, f64, Option<serde_json::Value>) {
    let mut child = Command::new(churn())
        .args([&iterations.to_string(), "1000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let id = exporter.map(|e| {
        let labels = json!({ "group": "malloc_churn", "pid": child.id().to_string() });
        let id = start_capture(e, alert(fingerprint, labels, json!({ "capture_duration": "60s" })));
        wait_for(e, &id, "in its window", |c| c["phase"] == "window" || finished(c));
        id
    });
    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    drop(child.stdin.take());
    child.wait().unwrap();
    let field = |n: usize| -> f64 { line.split_whitespace().nth(n).unwrap().parse::<f64>().unwrap() / 1e9 };
    let done = exporter.zip(id).map(|(e, id)| wait_for(e, &id, "finished", finished));
    (field(4), field(6), done)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[test]
fn a_malloc_loop_shorter_than_a_second_pays_no_more_than_the_budget() {
    if !privileged() {
        return;
    }
    // 4 million pairs: 0.2 to 0.5 s of CPU here. The capture opens while the
    // loop waits, so the governor's first measurement sees a quiet target and
    // plans to attach everything: the loop starts under every probe.
    const PAIRS: u64 = 4_000_000;
    const RUNS: usize = 5;
    const BUDGET: f64 = 0.05; // the default
    let exporter = Exporter::start(&["--capture.cooldown=0s", "--capture.max-per-hour=1000"]);
    let (mut bare_sys, mut traced_cpu, mut traced_sys, mut worst) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let (_, sys, _) = churn_loop(None, PAIRS, "");
        bare_sys.push(sys);
        let (cpu, sys, done) = churn_loop(Some(&exporter), PAIRS, &format!("short{run}"));
        let done = done.unwrap();
        // What the governor controls: it stops the capture (the frees alone are over the budget).
        assert_eq!(done["status"], "partial", "{done}");
        assert!(done["reason"].as_str().unwrap().contains("stopped by the overhead governor"), "{done}");
        let totals = &done["summary"]["totals"];
        let (tick, detach) =
            (totals["longest_tick_seconds"].as_f64().unwrap(), totals["detach_seconds"].as_f64().unwrap());
        // The worst this capture may cost a loop that starts anywhere in its
        // window, from the governor's design (bpf/src/malloc/window.rs):
        // - started in the 10 ms measurement (a tick: at most `tick`), the
        //   loop is traced by every probe until it ends;
        // - the first attached part is planned from the measurement: within
        //   the budget, or quiet (the loop was not there, or it was over the
        //   budget: the lowest share, planned quiet). Its allowance fills at
        //   twice the plan, or at the budget when that is more: at most twice
        //   the budget, holding 100 ms of it. The loop spends that, then at
        //   most the tick that overdraws it (`tick`), before the allocation
        //   probes go;
        // - the detached part's allowance (the frees alone, of the same plan:
        //   at most twice the budget over 100 ms again) lets it spend as
        //   much, then the tick that overdraws it ends the trace;
        // - the probes trap until they are gone (`detach`, which also counts
        //   the grace periods after the breakpoints went).
        // Each of these is wall time, which bounds a single-threaded loop's CPU.
        worst.push(3.0 * tick + 2.0 * (2.0 * BUDGET * 0.1) + detach);
        traced_cpu.push(cpu);
        traced_sys.push(sys);
    }
    // Uprobe traps are charged to the target's system time, which this loop
    // (no system calls) otherwise hardly has: the added system time is what
    // the capture cost it. (Its user time swings by more than the budget
    // between two runs on a loaded 2-core host.) Every traced run against the
    // untraced runs' median: within the budget's share of the run plus the
    // worst above and the untraced runs' own spread (page faults, timer ticks).
    let bare = median(bare_sys.clone());
    let spread = bare_sys.iter().copied().fold(0.0, f64::max) - bare_sys.iter().copied().fold(f64::MAX, f64::min);
    eprintln!(
        "short loop: untraced system {bare_sys:?}; traced CPU {traced_cpu:?}, system {traced_sys:?}; worst allowed beyond the budget {worst:?}; spread {spread:.4} s"
    );
    for ((cpu, sys), worst) in traced_cpu.iter().zip(&traced_sys).zip(&worst) {
        let added = sys - bare;
        assert!(
            added <= BUDGET * cpu + worst + spread,
            "the capture added {added:.4} s of system time to a {cpu:.3} s loop: over 5 % plus {worst:.4} + {spread:.4} s"
        );
    }
}

#[test]
fn without_cap_bpf_the_capture_fails_clearly_and_the_exporter_goes_on() {
    if !privileged() {
        return;
    }
    let target = Guard(program_a(20_000));
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let spool = dir.path().join("spool");
    let Some(exporter) = Exporter::start_as_nobody(&["--capture.dir", spool.to_str().unwrap()]) else { return };
    let labels = json!({ "group": "a_cachesvc", "pid": target.0.id().to_string() });
    let id = start_capture(&exporter, alert("n1", labels, json!({ "capture_duration": "5s" })));
    let done = wait_for(&exporter, &id, "finished", finished);
    assert_eq!(done["status"], "failed", "{done}");
    let reason = done["reason"].as_str().unwrap();
    assert!(reason.contains("CAP_BPF and CAP_PERFMON"), "{reason}");
    assert!(exporter.metrics().contains("memleak_exporter_build_info"), "the exporter goes on");
}

#[test]
fn a_target_killed_before_its_window_opens_is_said_to_have_exited_and_nothing_else() {
    if !privileged() {
        return;
    }
    let exporter = Exporter::start(&[]);
    let mut target = Guard(program_a(20_000));
    let labels = json!({ "group": "a_cachesvc", "pid": target.0.id().to_string() });
    let id = start_capture(&exporter, alert("k1", labels, json!({ "capture_duration": "5s" })));
    // The first capture of an exporter calibrates first (20,000 probed calls): the window is not open yet.
    target.0.kill().unwrap();
    target.0.wait().unwrap();
    let done = wait_for(&exporter, &id, "finished", finished);
    assert_eq!(done["status"], "failed", "{done}");
    // Not the allocator lookup's complaint about a process without malloc (and its Go hint).
    assert_eq!(done["reason"], format!("process {} exited before its window opened", target.0.id()), "{done}");
}

#[test]
fn a_pure_go_target_fails_naming_its_pid_once_and_the_allocator_profile_kind() {
    if !privileged() {
        return;
    }
    // The Go service of the capture tests: no cgo, its runtime allocates without malloc.
    let Some(go) = common::require_tool("go", "golang-go") else { return };
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-cache");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ebpf-malloc-go");
    std::fs::create_dir_all(&dir).unwrap();
    let binary = dir.join("leakysvc"); // its command name is the alert's group
    let built = Command::new(go)
        .args(["build", "-o"])
        .arg(&binary)
        .arg(common::repo("exporter/tests/helpers/leakysvc.go"))
        .env("GOCACHE", &cache)
        .env("GOPATH", cache.join("gopath"))
        .env("HOME", &cache)
        .env("GO111MODULE", "off")
        .env("CGO_ENABLED", "0")
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let mut child = Command::new(&binary).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut address = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut address).unwrap();
    let target = Guard(child);
    let pid = target.0.id().to_string();
    let exporter = Exporter::start(&[]);
    let labels = json!({ "group": "leakysvc", "pid": pid });
    let id = start_capture(&exporter, alert("go1", labels, json!({ "capture_duration": "5s" })));
    let done = wait_for(&exporter, &id, "finished", finished);
    assert_eq!(done["status"], "failed", "{done}");
    let reason = done["reason"].as_str().unwrap();
    assert_eq!(reason.matches(&pid).count(), 1, "the pid once: {reason}");
    assert!(reason.contains("no object that defines malloc and free"), "{reason}");
    assert!(reason.contains("allocator-profile") && reason.contains("pprof_url"), "{reason}");
}
