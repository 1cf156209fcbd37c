//! Allocator dumps the target writes itself: gperftools' HEAPPROFILE dumps,
//! one per signal (`HEAPPROFILESIGNAL`), and jemalloc's `prof_prefix` dumps
//! (written on its own interval). The folder is the operator's; the files in
//! it are the target's, so they are read like a watched folder's: through
//! the opened folder, `O_NOFOLLOW`, regular files only, size-capped.

use super::{diffed, partial};
use crate::capture::dir::Dir;
use crate::capture::kinds::{Finished, Job, Run, Status, Window};
use crate::capture::sources::DumpPrefix;
use memleak_artifacts::budget::Budget;
use memleak_artifacts::symbolize::{SymbolPath, symbolize};
use memleak_artifacts::{Profile, detect};
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

/// Largest dump read.
const MAX_DUMP_BYTES: u64 = Budget::WATCHED.file_bytes;
/// Most names looked at in the dump folder.
const MAX_ENTRIES: usize = 10_000;
/// How long a signalled target has to write its dump.
const DUMP_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct Dumps {
    pub prefix: DumpPrefix,
    /// gperftools: the signal that makes the target dump; jemalloc: none, it dumps by itself.
    pub signal: Option<i32>,
    /// The format id of the dumps (`tcmalloc`, `jemalloc`).
    pub format: &'static str,
}

impl Run for Dumps {
    fn run(self: Box<Self>, job: &Job) -> Finished {
        let dir = match Dir::open(&self.prefix.dir) {
            Ok(d) => d,
            Err(e) => return Finished::failed(format!("the dump folder of the target: {e}")),
        };
        let mut seen = self.dumps(&dir);
        let start = match self.signal {
            Some(signal) => self.signal_and_take(&dir, job, signal, &mut seen),
            // jemalloc dumps on its own: the newest dump is the start.
            None => self
                .newest(&dir, &seen)
                .ok_or_else(|| {
                    format!(
                        "no {}* dump in {} yet: set prof_prefix and lg_prof_interval in the target's MALLOC_CONF",
                        self.prefix.stem,
                        dir.shown().display()
                    )
                })
                .and_then(|name| self.parse(&dir, &name)),
        };
        let start = match start {
            Ok(p) => p,
            Err(e) => return Finished::failed(format!("the first dump: {e}")),
        };
        (job.window_open)();
        match job.window() {
            Window::Elapsed => {}
            Window::Cancelled(reason) => {
                return partial(self.format, Status::Cancelled, start, format!("cancelled: {reason}"));
            }
            // jemalloc may have written a dump before the exit: the end is still looked for.
            Window::Exited if self.signal.is_none() => {}
            Window::Exited => {
                let why = "the target exited during the window; the first dump is kept".to_owned();
                return partial(self.format, Status::Partial, start, why);
            }
        }
        let end = match self.signal {
            Some(signal) => self.signal_and_take(&dir, job, signal, &mut seen),
            None => {
                let fresh: Vec<String> = self.dumps(&dir).difference(&seen).cloned().collect();
                match self.newest(&dir, &fresh.iter().cloned().collect()) {
                    Some(name) => self.parse(&dir, &name),
                    None => Err("the target wrote no dump during the window (lg_prof_interval too long?)".into()),
                }
            }
        };
        match end {
            Ok(end) => diffed(self.format, &start, end, "every allocation is recorded by the heap profiler".into()),
            Err(e) => partial(self.format, Status::Partial, start, format!("the second dump: {e}; the first is kept")),
        }
    }
}

impl Dumps {
    /// Names of the dumps in the folder (`STEM…heap`).
    fn dumps(&self, dir: &Dir) -> BTreeSet<String> {
        dir.list(MAX_ENTRIES)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.starts_with(&self.prefix.stem) && n.ends_with(".heap"))
            .collect()
    }

    /// The most recently modified of `names`.
    fn newest(&self, dir: &Dir, names: &BTreeSet<String>) -> Option<String> {
        names.iter().filter_map(|n| Some((dir.stat(n).ok()?.modified().ok()?, n.clone()))).max().map(|(_, n)| n)
    }

    /// Sends `signal` to the target's processes and parses the first new dump that appears.
    fn signal_and_take(
        &self,
        dir: &Dir,
        job: &Job,
        signal: i32,
        seen: &mut BTreeSet<String>,
    ) -> Result<Profile, String> {
        let signalled = job.target.signal(signal);
        for why in &signalled.skipped {
            tracing::info!(signal, "not signalled: {why}");
        }
        if signalled.sent == 0 {
            return Err(format!("no process of the target was signalled: {}", signalled.skipped.join("; ")));
        }
        let until = Instant::now() + DUMP_WAIT;
        let mut last_error = String::from("no new dump appeared");
        while Instant::now() < until {
            let fresh: Vec<String> = self.dumps(dir).difference(seen).cloned().collect();
            for name in fresh {
                match self.parse(dir, &name) {
                    Ok(p) => {
                        seen.insert(name);
                        return Ok(p);
                    }
                    // Maybe still being written: tried again on the next round.
                    Err(e) => last_error = e,
                }
            }
            if job.cancel.sleep(Duration::from_millis(100)).is_err() {
                break;
            }
        }
        Err(format!(
            "{last_error} in {} within {}s of signal {signal} (is the target run with HEAPPROFILE={}/{} and HEAPPROFILESIGNAL={signal}?)",
            dir.shown().display(),
            DUMP_WAIT.as_secs(),
            self.prefix.dir.display(),
            self.prefix.stem,
        ))
    }

    fn parse(&self, dir: &Dir, name: &str) -> Result<Profile, String> {
        // The target writes its dumps: they get the watched folders' budget, and the
        // binaries they name are read only if the dump's owner could read them.
        let budget = Budget::WATCHED;
        let deadline = Instant::now() + budget.time;
        let owner = dir.stat(name).map_err(|e| format!("{name}: {e}"))?.uid();
        let bytes = dir.read(name, MAX_DUMP_BYTES).map_err(|e| format!("{name}: {e}"))?;
        let mut ingested = detect::ingest_read(bytes.as_slice(), Some(bytes.len() as u64), &budget, deadline)
            .map_err(|e| format!("{name}: {e}"))?;
        if ingested.format != self.format {
            return Err(format!("{name} is a {} file, not a {} dump", ingested.format, self.format));
        }
        let symbols = SymbolPath { dirs: Vec::new(), recorded_paths: true, readable_by: Some(owner) };
        symbolize(&mut ingested.profiles, &symbols, budget.parsed_bytes, deadline);
        ingested.profiles.into_iter().next().ok_or_else(|| format!("{name} holds no profile"))
    }
}
