//! One watched folder across scans: its descriptors (opened once, reopened
//! only while unusable), a directory stream that resumes where the last scan
//! stopped (a huge folder is read a bounded slice at a time), the files that
//! did not parse waiting for their second try, and the bounds of each scan.

use super::kept::Kept;
use super::state::{self, Folders};
use super::take::{self, Outcome};
use crate::ingest::names;
use crate::latest_profiles::LatestProfiles;
use crate::options::ingest::Config;
use crate::otlp::OtlpSink;
use rustix::fs::{AtFlags, Dir, FileType, RenameFlags, Stat, renameat, renameat_with, statat, unlinkat};
use std::cell::Cell;
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// How long a file must have stayed unchanged (its change time, which a
/// writer cannot set) before it is taken: a writer may still be busy.
pub const SETTLE: Duration = Duration::from_secs(2);
/// Entries of the watched folder examined per scan.
const ENTRIES_PER_SCAN: usize = 4096;
/// Files taken per scan, oldest first…
const CLAIMS_PER_SCAN: usize = 32;
/// …and more while the scan has spent less than `CHEAP_SCAN` (refusals cost
/// little), up to this many: a flood of junk drains in few scans.
const MAX_CLAIMS_PER_SCAN: usize = 256;
const CHEAP_SCAN: Duration = Duration::from_secs(1);
/// Lines logged per scan about single files that failed or wait; the rest are summed up in one line.
const FILE_LINES_PER_SCAN: u32 = 8;
/// Files waiting for a second try at most; past it they fail at once.
const MAX_RETRIES: usize = 64;
/// Files that could not be moved, remembered so each is logged once.
const MAX_UNCLAIMABLE: usize = 4096;

/// What a scan needs besides its folder.
#[derive(Debug)]
pub struct Context<'a> {
    pub config: &'a Config,
    pub kept: &'a Mutex<Kept>,
    /// The folder's index in `config.dirs`.
    pub index: usize,
    pub euid: u32,
    /// Lines about single files this scan would log, shown or not (see `may_log`).
    pub file_lines: Cell<u32>,
    /// Where ingested artifacts are pushed too (OTLP logs and profiles).
    pub otlp: Option<&'a OtlpSink>,
    /// Where their profiles are served for profilers to scrape.
    pub latest: &'a LatestProfiles,
}

impl Context<'_> {
    /// Whether a line about one file may be logged now: the first few of a
    /// scan are; the others are counted and summed up at the end of the scan.
    pub fn may_log(&self) -> bool {
        self.file_lines.set(self.file_lines.get() + 1);
        self.file_lines.get() <= FILE_LINES_PER_SCAN
    }

    pub fn kept(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A second try comes this much later: six scans, and never before the settle time twice over.
    fn retry_after(&self) -> Duration {
        (self.config.interval * 6).max(SETTLE * 2)
    }
}

/// A file waiting for its second try.
#[derive(Debug)]
struct Retry {
    out: String,
    shown: String,
    due: Instant,
}

/// One watched folder.
#[derive(Debug)]
pub struct Folder {
    pub path: PathBuf,
    folders: Option<Folders>,
    entries: Option<Dir>,
    /// The problem last logged, so a lasting one is logged once.
    problem: Option<String>,
    retries: VecDeque<Retry>,
    /// (device, inode, change time) of files that could not be moved: with
    /// the change time, a new file on a reused inode is not mistaken for one.
    unclaimable: HashSet<(u64, u64, i64, i64)>,
    /// Set while the disk is full: no file is taken before this instant.
    disk_full_until: Option<Instant>,
}

impl Folder {
    pub fn new(path: PathBuf) -> Folder {
        Folder {
            path,
            folders: None,
            entries: None,
            problem: None,
            retries: VecDeque::new(),
            unclaimable: HashSet::new(),
            disk_full_until: None,
        }
    }

    /// Opens the folder unless it is open; whether it is usable.
    pub fn prepare(&mut self, ctx: &Context<'_>) -> bool {
        self.folders.is_some() || self.open(ctx)
    }

    /// One scan: open the folder if it is not yet, give due files their second
    /// try, take what has settled, and prune the state folders.
    pub fn scan(&mut self, ctx: &Context<'_>) {
        if !self.prepare(ctx) {
            return;
        }
        let Some(folders) = self.folders.take() else { return };
        self.retry_due(ctx, &folders);
        self.take_settled(ctx, &folders);
        prune(ctx, &folders);
        self.folders = Some(folders);
        let unlogged = ctx.file_lines.get().saturating_sub(FILE_LINES_PER_SCAN);
        if unlogged > 0 {
            tracing::warn!(
                dir = %self.path.display(),
                files = unlogged,
                "more files failed or wait for a second try than are logged one by one in a scan: their reasons \
                 are in .failed/*.error.txt, the counts in memleak_ingest_failures_total"
            );
        }
    }

    /// Opens the folder and its state folders; on success recovers what an
    /// earlier run left and reloads its kept results.
    fn open(&mut self, ctx: &Context<'_>) -> bool {
        match state::open_folders(&self.path, ctx.euid) {
            Ok(folders) => {
                if self.problem.take().is_some() {
                    tracing::info!(dir = %self.path.display(), "the watched directory is usable again");
                }
                self.recover(ctx, &folders);
                let reloaded = super::kept::reload(folders.ingested.fd(), ctx.config.budget.output_bytes);
                let mut kept = ctx.kept();
                for (name, figures) in reloaded {
                    kept.results.insert((ctx.index, name), figures);
                }
                kept.usable.insert(ctx.index, true);
                drop(kept);
                self.entries = Dir::read_from(&folders.watched).ok();
                self.folders = Some(folders);
                true
            }
            Err(problem) => {
                if self.problem.as_ref() != Some(&problem) {
                    tracing::error!(dir = %self.path.display(), "not ingesting from this directory: {problem}");
                }
                self.problem = Some(problem);
                ctx.kept().usable.insert(ctx.index, false);
                false
            }
        }
    }

    /// What an earlier run left under private names: a file it was ingesting
    /// (it may have crashed on it) goes to `.failed`, never to be tried again;
    /// a file waiting for its second try gets it; temporaries go.
    fn recover(&mut self, ctx: &Context<'_>, folders: &Folders) {
        for dir in [folders.ingested.fd(), folders.failed.fd()] {
            for name in private_names(dir) {
                if name.ends_with(".tmp") {
                    let _ = unlinkat(dir, name.as_str(), AtFlags::empty());
                }
            }
        }
        for name in private_names(folders.ingested.fd()) {
            if let Some(out) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".work")) {
                let shown = take::recorded_source(folders, out).unwrap_or_else(|| out.to_owned());
                if take::is_directory(folders, &name) {
                    take::give_back_directory(ctx, folders, &name, out.as_bytes(), out, &shown);
                    continue;
                }
                let message = "the exporter stopped while ingesting this file (it may have crashed or run out of \
                               memory on it); it is not tried again";
                take::fail(ctx, folders, &name, out, &shown, "interrupted", "unknown", message);
            } else if let Some(out) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".retry")) {
                let due = Instant::now() + ctx.retry_after();
                let shown = take::recorded_source(folders, out).unwrap_or_else(|| out.to_owned());
                self.retries.push_back(Retry { out: out.to_owned(), shown, due });
            }
        }
        // Original names of files no longer waiting (a file given up on above, or a leftover).
        for name in private_names(folders.ingested.fd()) {
            if let Some(out) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".source"))
                && !self.retries.iter().any(|r| r.out == out)
            {
                take::forget_source(folders, out);
            }
        }
    }

    /// Second tries whose time has come, of files that have stopped changing.
    fn retry_due(&mut self, ctx: &Context<'_>, folders: &Folders) {
        let now = Instant::now();
        let mut later = VecDeque::new();
        while let Some(retry) = self.retries.pop_front() {
            let name = take::retry_name(&retry.out);
            let stat = statat(folders.ingested.fd(), name.as_str(), AtFlags::SYMLINK_NOFOLLOW);
            if retry.due > now || stat.as_ref().is_ok_and(|s| !settled(s)) {
                later.push_back(retry);
                continue;
            }
            let work = take::work_name(&retry.out);
            if renameat(folders.ingested.fd(), &name, folders.ingested.fd(), &work).is_ok() {
                let outcome = take::ingest_claimed(ctx, folders, &retry.out, &retry.shown, 2);
                crate::ingest::memory::release();
                self.note_disk(ctx, &outcome, &retry.shown);
                if outcome == Outcome::DiskFull
                    && renameat(folders.ingested.fd(), &work, folders.ingested.fd(), &name).is_ok()
                {
                    later.push_back(Retry { due: now + ctx.retry_after(), ..retry });
                    continue;
                }
                take::forget_source(folders, &retry.out);
            }
        }
        self.retries = later;
    }

    /// Reads the next slice of the watched folder and takes what has settled.
    fn take_settled(&mut self, ctx: &Context<'_>, folders: &Folders) {
        if self.disk_full_until.is_some_and(|until| Instant::now() < until) {
            return;
        }
        let Some(entries) = self.entries.as_mut() else {
            self.entries = Dir::read_from(&folders.watched).ok();
            return;
        };
        let mut candidates = Vec::new();
        for _ in 0..ENTRIES_PER_SCAN {
            let Some(Ok(entry)) = entries.read() else {
                // The end (or an error): the next scan starts over.
                entries.rewind();
                break;
            };
            let name = entry.file_name().to_bytes();
            // Dot names: the state folders, and writers' own temporaries.
            if name.starts_with(b".") || entry.file_type() == FileType::Directory {
                continue;
            }
            if let Some(stat) = ready(folders, &self.unclaimable, name) {
                candidates.push((name.to_vec(), stat));
            }
        }
        // Oldest first (by change time, which the writer cannot set back): files
        // that came later, however many, never delay one that was there before.
        candidates.sort_by_key(|(_, stat)| (stat.st_ctime, stat.st_ctime_nsec));
        let started = Instant::now();
        for (taken, (name, stat)) in candidates.into_iter().enumerate() {
            let enough = taken >= MAX_CLAIMS_PER_SCAN || (taken >= CLAIMS_PER_SCAN && started.elapsed() > CHEAP_SCAN);
            if enough || self.disk_full_until.is_some_and(|until| Instant::now() < until) {
                break;
            }
            self.take_one(ctx, folders, &name, &stat);
        }
    }

    /// Claims `name` and ingests it.
    fn take_one(&mut self, ctx: &Context<'_>, folders: &Folders, name: &[u8], stat: &Stat) {
        let shown = names::escaped(name);
        let stem = names::stem(name);
        let out = names::unique(&stem, |n| take::taken(folders, n))
            .or_else(|| Some(format!("{stem}~{:x}", stat.st_ino)).filter(|n| !take::taken(folders, n)));
        let Some(out) = out else {
            tracing::warn!(file = shown, "no free output name for it; it stays where it is");
            return;
        };
        let work = take::work_name(&out);
        take::record_source(folders, &out, &shown);
        match renameat(&folders.watched, name, folders.ingested.fd(), &work) {
            Ok(()) => {}
            Err(rustix::io::Errno::NOENT) => return take::forget_source(folders, &out),
            Err(e) => {
                take::forget_source(folders, &out);
                if self.unclaimable.len() >= MAX_UNCLAIMABLE {
                    self.unclaimable.clear();
                }
                self.unclaimable.insert(identity(stat));
                tracing::warn!(
                    file = shown,
                    "cannot move it out of the watched directory: {e} (the exporter must own the directory, or \
                     have CAP_FOWNER when it is sticky); it is left where it is"
                );
                return;
            }
        }
        // What was checked is not what was claimed when the writer swapped it in between.
        if take::is_directory(folders, &work) {
            take::give_back_directory(ctx, folders, &work, name, &out, &shown);
            return take::forget_source(folders, &out);
        }
        let outcome = take::ingest_claimed(ctx, folders, &out, &shown, 1);
        crate::ingest::memory::release();
        self.note_disk(ctx, &outcome, &shown);
        if outcome == Outcome::DiskFull {
            // Un-claimed: back under its own name (never replacing a newer file), else waiting as a second try.
            let back = renameat_with(folders.ingested.fd(), &work, &folders.watched, name, RenameFlags::NOREPLACE);
            if back.is_ok() {
                return take::forget_source(folders, &out);
            }
            if renameat(folders.ingested.fd(), &work, folders.ingested.fd(), take::retry_name(&out)).is_ok() {
                let due = Instant::now() + ctx.retry_after();
                self.retries.push_back(Retry { out, shown, due });
            }
            return;
        }
        // After each file, not each scan: 32 files' outputs must not pile up before the bounds apply.
        prune(ctx, folders);
        if outcome != Outcome::Retry {
            take::forget_source(folders, &out);
        } else {
            if self.retries.len() >= MAX_RETRIES {
                let from = take::retry_name(&out);
                let message = "it does not parse, and too many files are already waiting for a second try";
                take::fail(ctx, folders, &from, &out, &shown, "malformed", "unknown", message);
                take::forget_source(folders, &out);
            } else {
                self.retries.push_back(Retry { out, shown, due: Instant::now() + ctx.retry_after() });
            }
        }
    }
}

impl Folder {
    /// Logs a full disk once when it fills and once when it has room again; pauses taking files meanwhile.
    fn note_disk(&mut self, ctx: &Context<'_>, outcome: &Outcome, shown: &str) {
        match (outcome, self.disk_full_until.is_some()) {
            (Outcome::DiskFull, was_full) => {
                if !was_full {
                    tracing::warn!(
                        dir = %self.path.display(),
                        file = shown,
                        "the disk (or quota) of the state folders is full: outputs cannot be written; the file is \
                         left for a later try, and one file is tried every {} s until there is room",
                        ctx.retry_after().as_secs()
                    );
                }
                self.disk_full_until = Some(Instant::now() + ctx.retry_after());
            }
            (_, true) => {
                tracing::info!(dir = %self.path.display(), "the state folders have room again: ingesting resumes");
                self.disk_full_until = None;
            }
            (_, false) => {}
        }
    }
}

/// The entry's own status (a link is not followed) when it is to be taken
/// now: a regular file that is not empty and has settled, or anything else
/// but a folder (refused at once, unread); not one that could not be moved.
fn ready(folders: &Folders, unclaimable: &HashSet<(u64, u64, i64, i64)>, name: &[u8]) -> Option<Stat> {
    let stat = statat(&folders.watched, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    let ready = match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => false,
        FileType::RegularFile => stat.st_size > 0 && settled(&stat),
        _ => true,
    };
    (ready && !unclaimable.contains(&identity(&stat))).then_some(stat)
}

/// A file as met: (device, inode, change time).
fn identity(stat: &Stat) -> (u64, u64, i64, i64) {
    (stat.st_dev, stat.st_ino, stat.st_ctime, i64::try_from(stat.st_ctime_nsec).unwrap_or(0))
}

/// Keeps both state folders within `--ingest.keep` and `--ingest.keep-bytes`.
fn prune(ctx: &Context<'_>, folders: &Folders) {
    let config = ctx.config;
    let removed = super::prune::prune(folders.ingested.fd(), config.keep, config.keep_bytes);
    if !removed.is_empty() {
        let mut kept = ctx.kept();
        for name in removed {
            kept.results.remove(&(ctx.index, name));
        }
    }
    super::prune::prune(folders.failed.fd(), config.keep, config.keep_bytes);
}

/// Names starting with a dot in `dir` (the exporter's private names).
fn private_names(dir: &std::os::fd::OwnedFd) -> Vec<String> {
    let Ok(mut entries) = Dir::read_from(dir) else { return Vec::new() };
    let mut names = Vec::new();
    while let Some(Ok(entry)) = entries.read() {
        if let Ok(name) = entry.file_name().to_str()
            && name.starts_with('.')
            && name != "."
            && name != ".."
        {
            names.push(name.to_owned());
        }
    }
    names
}

/// Whether the file has not changed (data or metadata) for `SETTLE`; a
/// change time far in the future (the clock was set back) counts as settled.
fn settled(stat: &Stat) -> bool {
    let changed =
        Duration::new(u64::try_from(stat.st_ctime).unwrap_or(0), u32::try_from(stat.st_ctime_nsec).unwrap_or(0));
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    now.abs_diff(changed) >= SETTLE
}
