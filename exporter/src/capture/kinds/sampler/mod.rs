//! Capture kind `sampler` (layer 3, cheap): uprobes on the cooperative sampler's markers in the target's processes for the window only; the sampled blocks allocated in the window and still outstanding at its end, scaled to unbiased in-use bytes and blocks per stack, with their ages.
//!
//! With the alert's annotation `reachability: "true"`, each process is paused at the end of the
//! window for a conservative scan (`reachability`, bounded by `--capture.reachability.max-pause`)
//! that marks the blocks nothing points to as definitely leaked.
//!
//! The mean is the one the sampler uses, read from its counters in the process's memory
//! (`library_stats`); from its environment only for a sampler without them. At most
//! `MAX_PROCESSES` processes are probed (each probe set has its own table).
//!
//! What naming the stacks needs (the maps, the process's root) is taken when the window opens and
//! used when the process is gone at its end (the usual end of a leaking service: an OOM kill).

mod estimate;
mod library_stats;
mod locate;
mod reachability;
mod stacks;

use super::{Finished, Job, Kind, Refusal, Run, Setup, Status, Window};
use estimate::{Block, OldestAndMedian};
use locate::Markers;
use memleak_artifacts::Ingested;
use memleak_artifacts::symbolize::Symbolizer;
use memleak_bpf::sampler_markers::{MarkerProbes, SampledBlock, SampledKey};
use stacks::{ElfNames, Names, Space};
use std::path::Path;
use std::time::Duration;

pub static KIND: Kind = Kind {
    id: "sampler",
    about: "Uprobes on the cooperative sampler's markers (libmemleak_sampler.so or the GlobalAlloc wrapper) for the window: outstanding sampled allocations by stack, scaled, with ages",
    default_duration: Duration::from_secs(60),
    prepare,
};

/// Most processes probed in one capture.
const MAX_PROCESSES: usize = 8;
/// Largest `/proc/PID/maps` read to name stacks.
const MAX_MAPS_BYTES: u64 = 16 << 20;

fn procfs() -> &'static Path {
    // Uprobes act on the host's real processes: the real /proc, whatever --path.procfs says.
    Path::new("/proc")
}

fn prepare(setup: &Setup) -> Result<Box<dyn Run>, Refusal> {
    let mut found = Vec::new();
    let mut without = Vec::new();
    for pid in setup.target.pids() {
        match locate::markers(procfs(), pid) {
            Ok(m) if found.len() < MAX_PROCESSES => found.push(m),
            Ok(_) => without.push(format!("process {pid}: past the {MAX_PROCESSES} probed")),
            Err(why) => without.push(why),
        }
    }
    let reachability = match setup.annotations.get("reachability").map(String::as_str) {
        None | Some("false") => None,
        Some("true") => Some(setup.context.reachability_max_pause),
        Some(other) => {
            return Err(Refusal::Invalid(format!("annotation reachability={other:?}: give \"true\" or \"false\"")));
        }
    };
    if found.is_empty() {
        return Err(Refusal::Unavailable(format!(
            "no process of {} runs the sampler: {}",
            setup.target.named.describe(),
            without.join("; ")
        )));
    }
    Ok(Box::new(Capture { markers: found, left_out: without, reachability }))
}

#[derive(Debug)]
struct Capture {
    markers: Vec<Markers>,
    left_out: Vec<String>,
    /// The longest pause of a reachability scan, when one is asked for.
    reachability: Option<Duration>,
}

impl Run for Capture {
    fn run(self: Box<Self>, job: &Job) -> Finished {
        let mut probed = Vec::new();
        let mut left_out = self.left_out;
        for m in self.markers {
            match MarkerProbes::attach(&m.binary, locate::probe_offset(&m), &[m.pid]) {
                Ok(probes) => probed.push((m, probes)),
                Err(problem) => left_out.push(format!("process {}: {problem}", m.pid)),
            }
        }
        if probed.is_empty() {
            return Finished::failed(format!("no probe could be attached: {}", left_out.join("; ")));
        }
        let at_open: Vec<AtOpen> = probed.iter().map(|(m, _)| AtOpen::take(m)).collect();
        (job.window_open)();
        let window = job.window();
        for (_, probes) in &mut probed {
            probes.close();
        }
        let now = boot_ns();
        let mut blocks = Vec::new();
        let mut out = Ingested::new("sampler");
        let (mut allocs, mut frees, mut table_full, mut library_dropped) = (0, 0, 0, 0);
        let mut means = Vec::new();
        let mut pauses = Vec::new();
        for ((m, probes), at_open) in probed.iter().zip(&at_open) {
            match (at_open.dropped, m.stats.map(|address| library_stats::read(m.pid, address))) {
                (Some(before), Some(Ok(now))) => library_dropped += now.dropped.saturating_sub(before),
                (None, _) | (_, None) => left_out.push(format!(
                    "process {}: the samples its sampler dropped are unknown (its counters were unreadable at the window's opening)",
                    m.pid
                )),
                (_, Some(Err(e))) => {
                    left_out.push(format!("process {}: the samples its sampler dropped are unknown: {e}", m.pid))
                }
            }
            let counters = probes.counters();
            allocs += counters.allocs;
            frees += counters.frees;
            table_full += counters.table_full;
            let pid = u64::from(m.pid);
            let mine = |all: Vec<(SampledKey, SampledBlock)>| -> Vec<(u64, SampledBlock)> {
                all.into_iter().filter(|(k, _)| k.tgid == pid).map(|(k, b)| (k.ptr, b)).collect()
            };
            // With a scan, the table is read while the process is stopped, so both agree.
            let mut read = None;
            let mut referenced = None;
            match (self.reachability, m.table) {
                (Some(max_pause), Some(table)) => {
                    let (outcome, _) = reachability::scan(procfs(), m.pid, max_pause, &[table], || {
                        let blocks = probes.outstanding().map(mine);
                        let ranges = blocks.as_ref().map(|b| b.iter().map(|(ptr, b)| (*ptr, b.size)).collect()).unwrap_or_default();
                        read = Some(blocks);
                        ranges
                    });
                    if let Some(why) = &outcome.skipped {
                        left_out.push(format!("process {}: reachability not concluded: {why}", m.pid));
                    }
                    referenced = outcome.referenced.clone();
                    pauses.push(outcome);
                }
                (Some(_), None) => left_out.push(format!(
                    "process {}: reachability skipped: the sampler's table of pointers is not in {}'s symbols (stripped?)",
                    m.pid, m.mapped_path
                )),
                (None, _) => {}
            }
            let outstanding = match read.unwrap_or_else(|| probes.outstanding().map(mine)) {
                Ok(o) => o,
                Err(problem) => {
                    left_out.push(format!("process {}: {problem}", m.pid));
                    continue;
                }
            };
            // A process gone (or a zombie) has no maps left: those of the window's opening name it.
            let space = match (read_maps(m.pid), &at_open.maps) {
                (Ok(text), _) if !text.is_empty() => Space::parse(&text, &m.mapped_path),
                (_, Ok(text)) => {
                    left_out.push(format!(
                        "process {}: its stacks are named with its maps of the window's opening (it is gone)",
                        m.pid
                    ));
                    Space::parse(text, &m.mapped_path)
                }
                (_, Err(e)) => {
                    left_out.push(format!("process {}: its stacks are unnamed, its maps are unreadable ({e})", m.pid));
                    Space::default()
                }
            };
            let root = at_open.root(m.pid);
            let mut names = ElfNames { space: &space, root: root.clone(), symbolizer: Symbolizer::default() };
            let follows_call =
                |ip: u64| memleak_bpf::return_address::follows_call(Some(m.pid), space.files(), &root, ip);
            for (i, (_, block)) in outstanding.iter().enumerate() {
                let addresses = stacks::addresses(block.stack(), block.words(), &space, &follows_call);
                blocks.push(Block {
                    stack: names.name(&addresses),
                    size: block.size,
                    age: now.saturating_sub(block.boot_ns) as f64 / 1e9,
                    definitely_leaked: referenced.as_ref().and_then(|r| r.get(i)).map(|r| !r),
                });
            }
            means.push(m.mean);
            out.attributes.push((format!("process.{}.mean", m.pid), m.mean_source.clone()));
            out.attributes.push((format!("process.{}.markers", m.pid), m.mapped_path.clone()));
            out.attributes.push((format!("process.{}.probe_offset", m.pid), locate::probe_offset(m).to_string()));
        }
        // One mean for the profile: processes sampled with different means are each weighted by
        // the first's (said in the attributes); services of one group share their environment.
        let mean = means.first().copied().unwrap_or(locate::DEFAULT_MEAN);
        if means.iter().any(|&m| m != mean) {
            left_out.push(format!("processes run with different means {means:?}: all weighted with {mean}"));
        }
        let sampled = blocks.len();
        let (profile, totals) = estimate::profile(blocks, mean, &OldestAndMedian);
        out.totals.extend([
            ("estimated_inuse_bytes".to_owned(), totals.all.bytes.round()),
            ("estimated_inuse_blocks".to_owned(), totals.all.blocks.round()),
            ("sampled_outstanding_blocks".to_owned(), sampled as f64),
            ("sampled_allocations".to_owned(), allocs as f64),
            ("sampled_frees".to_owned(), frees as f64),
            ("table_full_drops".to_owned(), table_full as f64),
            ("library_table_full_drops".to_owned(), library_dropped as f64),
            ("mean_bytes".to_owned(), mean as f64),
        ]);
        // Totals of a scan only where one concluded: a 0 there would read as measured.
        if pauses.iter().any(|o| o.referenced.is_some()) {
            out.totals.extend([
                ("definitely_leaked_bytes".to_owned(), totals.definitely_leaked.bytes.round()),
                ("definitely_leaked_blocks".to_owned(), totals.definitely_leaked.blocks.round()),
                ("referenced_bytes".to_owned(), totals.referenced.bytes.round()),
                ("referenced_blocks".to_owned(), totals.referenced.blocks.round()),
            ]);
        }
        if !pauses.is_empty() {
            let longest = pauses.iter().map(|o| o.pause).max().unwrap_or_default();
            let longest_wait = pauses.iter().map(|o| o.detach_wait).max().unwrap_or_default();
            out.totals.extend([
                (
                    "reachability_concluded_processes".to_owned(),
                    pauses.iter().filter(|o| o.referenced.is_some()).count() as f64,
                ),
                ("reachability_pause_seconds".to_owned(), longest.as_secs_f64()),
                ("reachability_detach_wait_seconds".to_owned(), longest_wait.as_secs_f64()),
                ("reachability_scanned_bytes".to_owned(), pauses.iter().map(|o| o.scanned_bytes).sum::<u64>() as f64),
                ("reachability_threads".to_owned(), pauses.iter().map(|o| o.threads).sum::<usize>() as f64),
            ]);
        }
        out.attributes.push((
            "weighting".into(),
            format!("each sampled block weighs size / (1 - exp(-size / {mean})) bytes (jemalloc's estimator)"),
        ));
        if table_full > 0 {
            left_out.push(format!("{table_full} sampled allocations were not kept: the probe's table was full"));
        }
        if library_dropped > 0 {
            left_out.push(format!(
                "{library_dropped} sampled allocations were never reported: the sampler's own table of live sampled \
                 pointers was full (estimates miss them; a larger MEMLEAK_SAMPLER_MEAN_BYTES samples fewer)"
            ));
        }
        out.left_out = left_out;
        out.profiles.push(profile);
        let (status, reason) = match window {
            Window::Elapsed => (Status::Done, None),
            Window::Cancelled(why) => (Status::Cancelled, Some(why)),
            Window::Exited => (Status::Partial, Some("the target exited before the window ended".to_owned())),
        };
        Finished { status, reason, result: Some(out) }
    }
}

/// What is taken of a process when the window opens: its library's drop count so far, and what
/// naming its stacks needs if it is gone at the end.
struct AtOpen {
    dropped: Option<u64>,
    maps: Result<String, std::io::Error>,
    /// `/proc/PID/root`, held open: `/proc/self/fd/N` reaches its files after the process exits.
    root: Option<std::fs::File>,
}

impl AtOpen {
    fn take(m: &Markers) -> AtOpen {
        AtOpen {
            dropped: m.stats.and_then(|address| library_stats::read(m.pid, address).ok()).map(|s| s.dropped),
            maps: read_maps(m.pid),
            root: std::fs::File::open(stacks::root(procfs(), m.pid)).ok(),
        }
    }

    fn root(&self, pid: u32) -> std::path::PathBuf {
        use std::os::fd::AsRawFd;
        match &self.root {
            Some(root) => Path::new("/proc/self/fd").join(root.as_raw_fd().to_string()),
            None => stacks::root(procfs(), pid),
        }
    }
}

/// `/proc/PID/maps`, at most `MAX_MAPS_BYTES`.
fn read_maps(pid: u32) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(procfs().join(pid.to_string()).join("maps"))?;
    let mut text = String::new();
    file.take(MAX_MAPS_BYTES).read_to_string(&mut text)?;
    Ok(text)
}

/// `CLOCK_BOOTTIME` in nanoseconds (the probe's clock).
fn boot_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}
