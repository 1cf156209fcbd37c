//! Perf page-fault counters for selected processes (`--collector.pmc.process-include`):
//! one counter per thread and kind (all, minor, major), opened with `inherit`
//! so threads the process starts later are counted too. Processes are
//! re-discovered at most every `RESCAN`; one that exits (or whose pid is
//! reused) loses its counters at the next scrape.
//!
//! Bounded: at most `max_processes` processes × `MAX_THREADS` threads × 3
//! kinds file descriptors. Threads past the cap are not counted, and
//! `memleak_pmc_process_uncounted_threads` says how many.

use crate::process::ProcKey;
use crate::process::stat;
use perf_event::events::Software;
use perf_event::{Builder, Counter};
use regex::Regex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Threads of one process that get counters.
pub const MAX_THREADS: usize = 32;
/// How often the process list is walked again for new matches.
const RESCAN: Duration = Duration::from_secs(30);

const EVENTS: [Software; 3] = [Software::PAGE_FAULTS, Software::PAGE_FAULTS_MIN, Software::PAGE_FAULTS_MAJ];

struct Watched {
    comm: String,
    /// Per kind, one counter per thread.
    counters: [Vec<Counter>; 3],
    uncounted_threads: usize,
}

/// What one scrape reports about one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessFaults {
    pub pid: u32,
    pub comm: String,
    /// all, minor, major
    pub faults: [u64; 3],
    pub uncounted_threads: usize,
}

/// The selected processes and their counters.
pub struct ProcessCounters {
    procfs: PathBuf,
    include: Regex,
    max_processes: usize,
    watched: BTreeMap<ProcKey, Watched>,
    last_scan: Option<Instant>,
}

impl std::fmt::Debug for ProcessCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessCounters").field("include", &self.include).field("watched", &self.watched.len()).finish()
    }
}

/// The identity and command of a live process, `None` once it is gone.
fn identify(procfs: &Path, pid: u32) -> Option<(ProcKey, String)> {
    let line = std::fs::read(procfs.join(pid.to_string()).join("stat")).ok()?;
    let stat = stat::parse(&line).ok()?;
    (!stat.kernel_thread).then_some((ProcKey { pid, start_ticks: stat.start_ticks }, stat.comm))
}

impl ProcessCounters {
    pub fn new(procfs: PathBuf, include: Regex, max_processes: usize) -> Self {
        ProcessCounters { procfs, include, max_processes, watched: BTreeMap::new(), last_scan: None }
    }

    /// Drops exited processes, opens counters for new matches (bounded), and
    /// reads them all. An error is the first failure to open counters.
    pub fn scrape(&mut self) -> (Vec<ProcessFaults>, Option<(PathBuf, std::io::Error)>) {
        let procfs = self.procfs.clone();
        self.watched.retain(|key, _| identify(&procfs, key.pid).is_some_and(|(now, _)| now == *key));
        let mut error = None;
        if self.last_scan.is_none_or(|t| t.elapsed() >= RESCAN) {
            self.last_scan = Some(Instant::now());
            error = self.discover();
        }
        let report = self
            .watched
            .iter_mut()
            .map(|(key, w)| {
                let mut faults = [0u64; 3];
                for (total, counters) in faults.iter_mut().zip(w.counters.iter_mut()) {
                    *total = counters.iter_mut().filter_map(|c| c.read().ok()).sum();
                }
                ProcessFaults { pid: key.pid, comm: w.comm.clone(), faults, uncounted_threads: w.uncounted_threads }
            })
            .collect();
        (report, error)
    }

    fn discover(&mut self) -> Option<(PathBuf, std::io::Error)> {
        let Ok(entries) = std::fs::read_dir(&self.procfs) else { return None };
        let mut pids: Vec<u32> = entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
        pids.sort_unstable();
        for pid in pids {
            if self.watched.len() >= self.max_processes {
                break;
            }
            let Some((key, comm)) = identify(&self.procfs, pid) else { continue };
            if self.watched.contains_key(&key) || !self.include.is_match(&comm) {
                continue;
            }
            let dir = self.procfs.join(pid.to_string());
            match open(&dir) {
                Ok((counters, uncounted_threads)) => {
                    self.watched.insert(key, Watched { comm, counters, uncounted_threads });
                }
                // Gone between the listing and the open.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) || e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Some((dir, e)),
            }
        }
        None
    }
}

/// Counters for the first `MAX_THREADS` threads of the process in `dir`.
fn open(dir: &Path) -> std::io::Result<([Vec<Counter>; 3], usize)> {
    let mut tids: Vec<u32> =
        std::fs::read_dir(dir.join("task"))?.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    tids.sort_unstable();
    let uncounted = tids.len().saturating_sub(MAX_THREADS);
    tids.truncate(MAX_THREADS);
    let mut counters: [Vec<Counter>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for (slot, event) in counters.iter_mut().zip(EVENTS) {
        for &tid in &tids {
            let built = Builder::new(event).observe_pid(tid as i32).any_cpu().inherit(true).build();
            match built {
                Ok(mut counter) => {
                    counter.enable()?;
                    slot.push(counter);
                }
                // A thread that ended meanwhile.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok((counters, uncounted))
}
