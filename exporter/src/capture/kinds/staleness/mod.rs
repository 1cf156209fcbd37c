//! Capture kind `staleness` (SWAT / Sleigh-style): clears the target's referenced bits (`/proc/PID/clear_refs`, value 1), waits the window, then reads per mapping from `/proc/PID/smaps` how many resident bytes were not referenced since: memory a program never touches again is the signature of a leak.
//!
//! Side effects: clearing the bits makes every resident page of the target look cold to page
//! reclaim for the window (under memory pressure the kernel may evict or swap more of the
//! target than it would have), and costs a walk of its page tables with a TLB flush (measured
//! per capture: `clear_refs_seconds`). Nothing is stopped and nothing is traced.

mod smaps;

use super::{Finished, Job, Kind, Refusal, Run, Setup, Status, Window};
use memleak_artifacts::{Frame, Ingested, Profile, Sample, ValueType};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub static KIND: Kind = Kind {
    id: "staleness",
    about: "Referenced bits cleared at the start of the window, resident bytes not referenced by its end, per mapping",
    default_duration: Duration::from_secs(60),
    prepare,
};

/// Most processes of one capture.
const MAX_PROCESSES: usize = 8;
/// Largest smaps read (about 1 KiB a mapping).
const MAX_SMAPS_BYTES: u64 = 64 << 20;

const SAMPLE_TYPES: [ValueType; 2] =
    [ValueType { kind: "stale_space", unit: "bytes" }, ValueType { kind: "resident_space", unit: "bytes" }];

fn proc_dir(pid: u32) -> PathBuf {
    // The host's processes' bits: the real /proc, whatever --path.procfs says.
    Path::new("/proc").join(pid.to_string())
}

fn prepare(setup: &Setup) -> Result<Box<dyn Run>, Refusal> {
    let pids: Vec<u32> = setup.target.pids().into_iter().take(MAX_PROCESSES).collect();
    let writable: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&pid| std::fs::OpenOptions::new().write(true).open(proc_dir(pid).join("clear_refs")).is_ok())
        .collect();
    if writable.is_empty() {
        return Err(Refusal::Unavailable(format!(
            "cannot write /proc/PID/clear_refs of any process of {} (needs the same user as the target or \
             CAP_SYS_PTRACE, and a kernel with CONFIG_PROC_PAGE_MONITOR)",
            setup.target.named.describe()
        )));
    }
    Ok(Box::new(Staleness { pids: writable }))
}

#[derive(Debug)]
struct Staleness {
    pids: Vec<u32>,
}

impl Run for Staleness {
    fn run(self: Box<Self>, job: &Job) -> Finished {
        let mut left_out = Vec::new();
        let mut cleared = Vec::new();
        let started = Instant::now();
        for &pid in &self.pids {
            // Only a process still the one resolved (its pidfd) has its bits cleared.
            let same = job.target.processes.iter().any(|p| p.pid == pid && p.is_same_at(Path::new("/proc")));
            match same.then(|| std::fs::write(proc_dir(pid).join("clear_refs"), b"1")) {
                Some(Ok(())) => cleared.push(pid),
                Some(Err(e)) => left_out.push(format!("process {pid}: clear_refs: {e}")),
                None => left_out.push(format!("process {pid} has exited")),
            }
        }
        let clear_seconds = started.elapsed().as_secs_f64();
        if cleared.is_empty() {
            return Finished::failed(format!("no process's referenced bits could be cleared: {}", left_out.join("; ")));
        }
        (job.window_open)();
        let window = job.window();
        let mut profile = Profile::new("stale", SAMPLE_TYPES.to_vec());
        let (mut resident, mut referenced, mut stale, mut stale_anon) = (0u64, 0u64, 0u64, 0u64);
        for &pid in &cleared {
            let text = match read_bounded(&proc_dir(pid).join("smaps")) {
                Ok((t, cut)) => {
                    if cut {
                        left_out.push(format!("process {pid}: smaps past {MAX_SMAPS_BYTES} bytes left out"));
                    }
                    t
                }
                Err(e) => {
                    left_out.push(format!("process {pid}: smaps: {e}"));
                    continue;
                }
            };
            for usage in smaps::parse(&text) {
                resident += usage.rss;
                referenced += usage.referenced;
                stale += usage.stale();
                stale_anon += usage.stale_anonymous();
                if usage.rss == 0 {
                    continue;
                }
                let name = if usage.name.is_empty() {
                    format!("anon:{:x}-{:x}", usage.start, usage.end)
                } else {
                    usage.name.clone()
                };
                profile.samples.push(Sample {
                    stack: vec![Frame::function(name), Frame::function(format!("pid {pid}"))],
                    values: vec![
                        i64::try_from(usage.stale()).unwrap_or(i64::MAX),
                        i64::try_from(usage.rss).unwrap_or(i64::MAX),
                    ],
                    labels: vec![
                        ("pid".into(), pid.to_string()),
                        ("range".into(), format!("{:x}-{:x}", usage.start, usage.end)),
                        ("perms".into(), usage.perms.clone()),
                        ("anonymous_bytes".into(), usage.anonymous.to_string()),
                    ],
                });
            }
        }
        profile.samples.sort_by(|a, b| b.values[0].cmp(&a.values[0]));
        let mut out = Ingested::new("staleness");
        out.totals.extend([
            ("stale_bytes".to_owned(), stale as f64),
            ("stale_anonymous_bytes".to_owned(), stale_anon as f64),
            ("resident_bytes".to_owned(), resident as f64),
            ("referenced_bytes".to_owned(), referenced as f64),
            ("clear_refs_seconds".to_owned(), clear_seconds),
            ("processes".to_owned(), cleared.len() as f64),
        ]);
        out.attributes.push((
            "method".into(),
            "referenced bits cleared (clear_refs 1) at the window's start; stale = Rss - Referenced per mapping of smaps at its end".into(),
        ));
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

/// The text (paths may be any bytes) and whether it was cut at `MAX_SMAPS_BYTES`.
fn read_bounded(path: &Path) -> std::io::Result<(String, bool)> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(MAX_SMAPS_BYTES).read_to_end(&mut bytes)?;
    let cut = bytes.len() as u64 >= MAX_SMAPS_BYTES;
    Ok((String::from_utf8_lossy(&bytes).into_owned(), cut))
}
