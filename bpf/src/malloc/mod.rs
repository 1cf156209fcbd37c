//! Allocation tracing of one live process with uprobes (capture kind
//! `ebpf-malloc`): its allocator's entry points are found in the symbol
//! tables of what it maps (`allocator`), `malloc_trace.bpf.c` records every
//! traced allocation by address with its user stack and time and forgets it
//! when freed (`probes`), an overhead governor keeps the target's added CPU
//! within a budget by attaching the allocation probes for only part of each
//! second (`governor`, with per-hit costs measured on this host by
//! `calibrate`), and what is still outstanding at the end becomes an in-use
//! profile ranked by allocation age (`report`).
//!
//! Bounds (fixed, in `memleak.h`): 262,144 outstanding allocations, 16,384
//! distinct stacks of 32 frames (with four code words each, from which
//! `callers` puts back a caller the walk skipped), 4,096 threads between an
//! allocation's entry and return; what does not fit is counted and stated in
//! the result.

mod allocator;
pub mod calibrate;
mod callers;
pub mod governor;
mod multi;
mod probes;
mod report;
mod window;

use memleak_artifacts::{Ingested, Record, Severity, ages, sites};
use memleak_signals::{Problem, ProblemKind};
use std::path::Path;
use std::time::Duration;

/// How a trace is run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// The target's added CPU allowed, as a share of one CPU (0.05: 5 %).
    pub budget: f64,
    /// Trace every allocation (no sampling); the budget still stops it.
    pub full: bool,
}

/// How a trace ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Elapsed,
    /// The caller's wait ended it (cancelled, the target exited), with its reason.
    Interrupted(String),
    /// Even the lowest sampling rate would cost more than the budget.
    OverBudget(String),
    /// The target forked a process: it carries the breakpoints, and the
    /// kernel traps it on every call until they go, so they went at once.
    Forked(String),
    /// The target exec'd: the maps froze then, and are named with its maps from the start.
    Exec(String),
}

/// A finished trace.
#[derive(Debug)]
pub struct Traced {
    pub ending: Ending,
    pub result: Ingested,
}

/// Ranked sites written as records.
const RECORDED_SITES: usize = 10;

/// Traces process `pid` (under `procfs`) for `duration`. `wait(d)` sleeps for
/// `d` and says why the trace must end early (cancelled, the target exited).
pub fn trace(
    procfs: &Path,
    pid: u32,
    options: &Options,
    duration: Duration,
    wait: &mut dyn FnMut(Duration) -> Result<(), String>,
) -> Result<Traced, Problem> {
    if !crate::built_with_bpf() || crate::MALLOC_TRACE.bytes.is_empty() {
        return Err(Problem::new(
            ProblemKind::Unsupported,
            crate::MALLOC_TRACE.file,
            "this build has no BPF programs (clang was missing when it was built)",
            "install clang and rebuild",
        ));
    }
    // First what needs privileges (loading BPF), so that their lack is what an unprivileged exporter reports.
    let costs = calibrate::costs()?;
    let allocators = allocator::find(procfs, pid).map_err(|e| {
        // The caller names the process: said once.
        Problem::new(
            ProblemKind::Unsupported,
            "allocator",
            e,
            "a program that does not allocate with malloc (pure Go, for one) has none to probe: ask for the capture kind allocator-profile with a pprof_url annotation (Go's /debug/pprof/heap)",
        )
    })?;
    let comm = std::fs::read_to_string(procfs.join(pid.to_string()).join("comm")).unwrap_or_default();
    let start_maps = allocator::read_maps(procfs, pid).unwrap_or_default();
    let code = callers::Code::read(procfs, pid).map_err(|e| {
        Problem::new(
            ProblemKind::Read,
            format!("{}/{pid}/maps", procfs.display()),
            format!("cannot read the process's code ranges: {e}"),
            "the process must still run, and the exporter read its maps (root, or CAP_SYS_PTRACE)",
        )
    })?;
    let mut probes = probes::Probes::load(pid, &allocators, code)?;
    probes.attach_frees()?;

    let window = window::run(&mut probes, costs, options, duration, wait)?;
    let end_ns = window.end_ns;
    let counters = probes.counters();
    // After an exec its memory and maps are another image's: its stacks are named from the
    // files it mapped at the start, never from its memory.
    let exec = matches!(window.ending, Ending::Exec(_));
    let (maps, root) = match allocator::read_maps(procfs, pid) {
        Ok(maps) if !maps.is_empty() && !exec => (maps, procfs.join(pid.to_string()).join("root")),
        Ok(_) if exec => (start_maps, procfs.join(pid.to_string()).join("root")),
        _ => (start_maps, Path::new("/").to_path_buf()),
    };
    let (attached, elapsed) = (window.attached, window.elapsed);
    // Full mode does not sample: the allocated totals are counts, not estimates
    // (the time the links took to attach would otherwise scale them up).
    let (frees_attached, frees_all) = window.activity;
    // The share of the target's activity (its frees) sampled, when enough were counted (see `window`).
    let activity_share = (!options.full && frees_attached >= 100).then(|| frees_attached as f64 / frees_all as f64);
    let allocated_scale = match activity_share {
        _ if options.full => 1.0,
        Some(share) => 1.0 / share,
        None => elapsed.as_secs_f64() / attached.as_secs_f64().max(1e-6),
    };
    let memory = (!exec).then_some(pid);
    let report = report::read(&probes, &window.segments, end_ns, allocated_scale, &maps, &root, memory);
    drop(probes);

    let mut out = Ingested::new("ebpf-malloc");
    let profile = &report.profile;
    let mean_duty = attached.as_secs_f64() / elapsed.as_secs_f64().max(1e-6);
    out.totals.extend([
        ("inuse_bytes".to_owned(), profile.total(0) as f64),
        ("inuse_objects".to_owned(), profile.total(1) as f64),
        ("allocated_bytes".to_owned(), profile.total(2) as f64),
        ("allocated_objects".to_owned(), profile.total(3) as f64),
        ("traced_allocation_calls".to_owned(), counters.allocation_calls as f64),
        ("traced_free_calls".to_owned(), counters.free_calls as f64),
        ("outstanding_sampled".to_owned(), report.outstanding_sampled as f64),
        ("dropped_outstanding_full".to_owned(), counters.outstanding_full as f64),
        ("dropped_stacks".to_owned(), counters.stack_lost as f64),
        ("dropped_site_totals".to_owned(), counters.sites_full as f64),
        ("truncated_stacks".to_owned(), report.truncated_stacks as f64),
        ("stacks".to_owned(), report.stacks as f64),
        ("allocation_probe_share".to_owned(), mean_duty),
        ("attach_seconds".to_owned(), window.attaching.as_secs_f64()),
        ("longest_tick_seconds".to_owned(), window.longest_tick.as_secs_f64()),
        ("window_seconds".to_owned(), elapsed.as_secs_f64()),
        ("profiled_seconds".to_owned(), report.window_ns as f64 / 1e9),
        ("detach_seconds".to_owned(), window.detach.as_secs_f64()),
        ("estimated_overhead_cpu_mean".to_owned(), window.cost_cpu_seconds / elapsed.as_secs_f64().max(1e-6)),
        ("estimated_overhead_cpu_max".to_owned(), window.max_cost),
        ("budget_cpu".to_owned(), options.budget),
        ("calibrated_allocation_ns".to_owned(), costs.allocation_ns),
        ("calibrated_free_ns".to_owned(), costs.free_ns),
    ]);
    out.totals.extend(activity_share.map(|share| ("allocation_probe_activity_share".to_owned(), share)));
    let probed: Vec<String> = allocators
        .iter()
        .map(|a| {
            let symbols: Vec<&str> = a.entry_points.iter().map(|e| e.symbol).collect();
            format!("{} at {}: {}", a.name, a.module, symbols.join(", "))
        })
        .collect();
    out.attributes.extend([
        ("pid".to_owned(), pid.to_string()),
        ("comm".to_owned(), comm.trim_end().to_owned()),
        ("allocators".to_owned(), probed.join("; ")),
        ("sampling".to_owned(), sampling_note(options, mean_duty)),
        ("rank".to_owned(), ages::RANK.to_owned()),
    ]);
    if report.truncated_stacks > 0 {
        out.attributes.push((
            "truncated_stacks".to_owned(),
            format!(
                "{} of {} stacks end before main or a thread's start (label truncated_stack=true): code without frame pointers cuts the kernel's frame-pointer walk",
                report.truncated_stacks, report.stacks
            ),
        ));
    }
    if !report.unsymbolized.is_empty() {
        let modules: Vec<String> = report.unsymbolized.iter().map(|u| format!("{} ({})", u.module, u.reason)).collect();
        out.attributes.push(("unsymbolized".to_owned(), modules.join(", ")));
    }
    for (what, n) in [
        ("allocations not recorded: the outstanding map (262,144) was full", counters.outstanding_full),
        (
            "allocations recorded without a stack (stack map full or collision, or no readable frame)",
            counters.stack_lost,
        ),
        ("allocations left out of the allocated totals: the per-stack map (16,384) was full", counters.sites_full),
    ] {
        if n > 0 {
            out.left_out.push(format!("{n} {what}"));
        }
    }
    for (rank, (index, ages, spread)) in report.ranked.iter().take(RECORDED_SITES).enumerate() {
        let Some(sample) = profile.samples.get(*index) else { continue };
        let function = sites::site(&sample.stack).map_or_else(String::new, |f| f.function.clone());
        let mut record = Record::new(
            Severity::Info,
            "ebpf-malloc.site",
            format!(
                "#{} by age spread: {function} holds {} B in {} live objects made in {:.0} % of the window ({}), the oldest {:.1} s old",
                rank + 1,
                sample.values.first().copied().unwrap_or(0),
                sample.values.get(1).copied().unwrap_or(0),
                spread * 100.0,
                ages.shape(),
                ages.oldest_ns as f64 / 1e9
            ),
        );
        record.bytes = sample.values.first().and_then(|b| u64::try_from(*b).ok());
        record.blocks = sample.values.get(1).and_then(|b| u64::try_from(*b).ok());
        record.attributes = vec![
            ("rank".to_owned(), (rank + 1).to_string()),
            ("age_spread".to_owned(), format!("{spread:.2}")),
            ("age_shape".to_owned(), ages.shape()),
        ];
        record.stacks = vec![("allocation".to_owned(), sample.stack.clone())];
        out.records.push(record);
    }
    out.profiles.push(report.profile);
    Ok(Traced { ending: window.ending, result: out })
}

fn sampling_note(options: &Options, mean_duty: f64) -> String {
    if options.full {
        return "full: every allocation traced".to_owned();
    }
    format!(
        "allocation probes attached {:.1} % of the time on average (time-window sampling, the share set each cycle by the overhead governor within {:.1} % of one CPU, hits counted every 10 ms); in cycles of 5 s; each sampled allocation weighs the inverse of the share of its cycle's frees made while they were attached (of its time, when too few); frees traced throughout",
        mean_duty * 100.0,
        options.budget * 100.0
    )
}
