//! The costly per-process reads (`status`, `smaps_rollup`, `maps`), refreshed
//! off the scrape path on their own bounded interval.
//!
//! Why: reading `/proc/PID/stat` for 1,000 processes costs ~10 ms here, `status`
//! ~15 ms and `smaps_rollup` ~50 ms (far more for large processes, whose page
//! tables the kernel walks). A scrape reads only `stat`; these details are
//! re-read by a background thread at most once per `--collector.process.detail-interval`,
//! started by a scrape (no scrapes, no work), and served from memory.

use super::ProcKey;
use super::maps::Region;
use crate::fsroot::{self, ReadError};
use crate::kv;
use crate::problem::{Problem, ProblemKind};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Memory details of one process, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Detail {
    pub anon: u64,
    pub file: u64,
    pub shmem: u64,
    pub swap: u64,
    pub data: u64,
    pub resident_peak: u64,
    /// From `smaps_rollup`; `None` when it is unreadable (no ptrace access) or disabled.
    pub pss: Option<u64>,
    pub pss_anon: Option<u64>,
    /// From `/proc/PID/maps`; `None` when unreadable.
    pub maps: Option<MapsSummary>,
    /// `smaps_rollup` or `maps` was denied: the exporter may not ptrace this process.
    pub denied: bool,
}

/// What `/proc/PID/maps` says about growth that RSS may hide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapsSummary {
    pub mappings: u64,
    /// Size of the brk area (`[heap]`): grows with every brk/sbrk.
    pub heap: u64,
    /// Virtual size of anonymous mappings (malloc's mmap'd arenas and large blocks).
    pub anon_mapped: u64,
}

/// Reads the details of the process whose directory is `dir`.
/// `Ok(None)`: the process exited meanwhile.
pub fn read(dir: &Path, with_pss: bool, buf: &mut Vec<u8>) -> Result<Option<Detail>, Problem> {
    let status_path = dir.join("status");
    match fsroot::read_into(&status_path, buf) {
        Ok(()) => {}
        Err(ReadError::Missing) => return Ok(None),
        Err(err) => return Err(err.to_problem(&status_path, "")),
    }
    let text = String::from_utf8_lossy(buf);
    let [anon, file, shmem, swap, data, hwm] =
        kv::lookup(&text, ["RssAnon", "RssFile", "RssShmem", "VmSwap", "VmData", "VmHWM"])
            .map_err(|e| Problem::new(ProblemKind::Parse, status_path.display(), e.to_string(), ""))?;
    if text.is_empty() {
        return Err(Problem::new(ProblemKind::Parse, status_path.display(), "empty file", ""));
    }
    let mut detail = Detail {
        // Kernel threads and zombies have none of these lines: no user memory.
        anon: anon.unwrap_or(0),
        file: file.unwrap_or(0),
        shmem: shmem.unwrap_or(0),
        swap: swap.unwrap_or(0),
        data: data.unwrap_or(0),
        resident_peak: hwm.unwrap_or(0),
        ..Detail::default()
    };
    if with_pss {
        let rollup_path = dir.join("smaps_rollup");
        // Denied (no ptrace access to that process) or absent (kernel < 4.14):
        // PSS is left out for this process; status still served the rest.
        let read = fsroot::read_into(&rollup_path, buf);
        detail.denied |= matches!(read, Err(ReadError::Denied(_)));
        if read.is_ok() {
            let text = String::from_utf8_lossy(buf);
            let [pss, pss_anon] = kv::lookup(&text, ["Pss", "Pss_Anon"])
                .map_err(|e| Problem::new(ProblemKind::Parse, rollup_path.display(), e.to_string(), ""))?;
            detail.pss = pss;
            detail.pss_anon = pss_anon;
        }
    }
    let maps = read_maps(&dir.join("maps"));
    detail.denied |= matches!(maps, Err(ReadError::Denied(_)));
    detail.maps = maps.ok();
    Ok(Some(detail))
}

/// Reads `maps` line by line without holding it (a big process has megabytes of it).
fn read_maps(path: &Path) -> Result<MapsSummary, ReadError> {
    let file = std::fs::File::open(path)?;
    let mut summary = MapsSummary::default();
    let mut reader = std::io::BufReader::with_capacity(16 * 1024, file);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(summary);
        }
        summary.mappings += 1;
        add_mapping(&line, &mut summary);
    }
}

fn add_mapping(line: &[u8], summary: &mut MapsSummary) {
    match super::maps::parse_line(line) {
        Some(m) if m.region == Region::Heap => summary.heap += m.size(),
        Some(m) if m.region == Region::Anon => summary.anon_mapped += m.size(),
        _ => {}
    }
}

/// The last refreshed details, shared between the collector and its refresher.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub details: HashMap<ProcKey, Detail>,
    pub taken_at: Option<Instant>,
    /// Problems met by the last refresh, reported by the next scrape.
    pub problems: Vec<Problem>,
    /// Processes of the last refresh whose `smaps_rollup` or `maps` was denied.
    pub denied: usize,
}

/// Owns the refresher thread; dropping it ends the thread.
#[derive(Debug)]
pub struct Refresher {
    shared: Arc<Mutex<Snapshot>>,
    requests: SyncSender<Vec<ProcKey>>,
    procfs: PathBuf,
    with_pss: bool,
}

impl Refresher {
    pub fn start(procfs: PathBuf, with_pss: bool) -> std::io::Result<Self> {
        let shared = Arc::new(Mutex::new(Snapshot::default()));
        // Capacity 1: while one refresh runs, at most one more waits; others are dropped.
        let (requests, receiver) = mpsc::sync_channel::<Vec<ProcKey>>(1);
        let thread_shared = Arc::clone(&shared);
        let thread_procfs = procfs.clone();
        std::thread::Builder::new().name("process-detail".into()).spawn(move || {
            while let Ok(keys) = receiver.recv() {
                let fresh = refresh(&thread_procfs, with_pss, &keys);
                *thread_shared.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
            }
        })?;
        Ok(Refresher { shared, requests, procfs, with_pss })
    }

    /// Refreshes now, on the caller's thread (the first scrape, so that it is complete).
    pub fn refresh_now(&self, keys: &[ProcKey]) {
        let fresh = refresh(&self.procfs, self.with_pss, keys);
        *self.lock() = fresh;
    }

    /// Asks the thread for a refresh unless one is already queued.
    pub fn request(&self, keys: Vec<ProcKey>) {
        match self.requests.try_send(keys) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!("process detail refresher has stopped")
            }
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn refresh(procfs: &Path, with_pss: bool, keys: &[ProcKey]) -> Snapshot {
    let mut snapshot = Snapshot { details: HashMap::with_capacity(keys.len()), ..Snapshot::default() };
    let mut buf = Vec::with_capacity(4096);
    let mut dir = procfs.to_path_buf();
    for key in keys {
        dir.push(key.pid.to_string());
        match read(&dir, with_pss, &mut buf) {
            Ok(Some(detail)) => {
                snapshot.denied += usize::from(detail.denied);
                snapshot.details.insert(*key, detail);
            }
            Ok(None) => {}
            Err(problem) => snapshot.problems.push(problem),
        }
        dir.pop();
    }
    snapshot.taken_at = Some(Instant::now());
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fixture_process_details() {
        // t3 of ../shared/fixtures/proc. README ground truth: RssAnon ~352 kB ("differs by a
        // few pages from run to run"; this file says 356), VmData 472 kB.
        let dir = tempfile::tempdir().unwrap();
        for f in ["status", "smaps_rollup"] {
            std::fs::copy(format!("tests/fixtures/proc-snapshots/t3/{f}"), dir.path().join(f)).unwrap();
        }
        std::fs::copy("tests/fixtures/proc-snapshots/t3/maps", dir.path().join("maps")).unwrap();
        let d = read(dir.path(), true, &mut Vec::new()).unwrap().unwrap();
        assert!(d.anon.abs_diff(352 * 1024) <= 4 * 4096, "anon {}", d.anon);
        assert_eq!(d.data, 472 * 1024);
        // README ground truth: [heap] is 380 kB at t3; 24 mappings in its smaps.
        let maps = d.maps.unwrap();
        assert_eq!((maps.mappings, maps.heap), (24, 380 * 1024));
        // Three unnamed anonymous mappings: 12 + 52 + 8 KiB.
        assert_eq!(maps.anon_mapped, (12 + 52 + 8) * 1024);
        assert!(d.resident_peak >= 1508 * 1024, "VmHWM is at least the VmRSS 1508 kB");
        // PSS of a process sharing libc is well below its RSS, and its anon part ~ RssAnon.
        let pss = d.pss.unwrap();
        assert!(pss > 0 && pss < 1508 * 1024);
        assert!(d.pss_anon.unwrap().abs_diff(d.anon) <= 16 * 1024);
        let without = read(dir.path(), false, &mut Vec::new()).unwrap().unwrap();
        assert_eq!(without.pss, None);
    }

    #[test]
    fn anonymous_memory_grows_at_the_leak_rate() {
        // README: the program leaks ~100 KiB/s; snapshots are ~1 s apart (timeline.txt).
        let anon: Vec<u64> = ["t1", "t2", "t3"]
            .iter()
            .map(|t| {
                let dir = std::path::Path::new("tests/fixtures/proc-snapshots").join(t);
                read(&dir, false, &mut Vec::new()).unwrap().unwrap().anon
            })
            .collect();
        for pair in anon.windows(2) {
            let growth = pair[1] - pair[0];
            assert!((80 * 1024..=130 * 1024).contains(&growth), "growth {growth} B/s in {anon:?}");
        }
    }

    #[test]
    fn the_brk_heap_grows_with_the_leak() {
        // README: [heap] 132 → 256 → 380 kB across t1..t3.
        let heaps: Vec<u64> = ["t1", "t2", "t3"]
            .iter()
            .map(|t| read_maps(&Path::new("tests/fixtures/proc-snapshots").join(t).join("maps")).unwrap().heap)
            .collect();
        assert_eq!(heaps, [132 * 1024, 256 * 1024, 380 * 1024]);
    }

    #[test]
    fn a_vanished_process_is_not_a_problem_but_garbage_is() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join("gone"), true, &mut Vec::new()), Ok(None));
        std::fs::write(dir.path().join("status"), "Name:\tx\nRssAnon:\tlots kB\n").unwrap();
        let problem = read(dir.path(), true, &mut Vec::new()).unwrap_err();
        assert_eq!(problem.kind, ProblemKind::Parse);
        assert!(problem.to_string().contains("status: line 2"), "{problem}");
        std::fs::write(dir.path().join("status"), "").unwrap();
        assert!(read(dir.path(), true, &mut Vec::new()).is_err());
    }
}
