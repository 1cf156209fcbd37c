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
use rustix::fs::{AtFlags, Dir, FileType, Stat, renameat, statat, unlinkat};
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// How long a file must have stayed unchanged (its change time, which a
/// writer cannot set) before it is taken: a writer may still be busy.
pub const SETTLE: Duration = Duration::from_secs(2);
/// Entries of the watched folder examined per scan.
const ENTRIES_PER_SCAN: usize = 4096;
/// Files taken per scan.
const CLAIMS_PER_SCAN: usize = 32;
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
    /// Where ingested artifacts are pushed too (OTLP logs and profiles).
    pub otlp: Option<&'a OtlpSink>,
    /// Where their profiles are served for profilers to scrape.
    pub latest: &'a LatestProfiles,
}

impl Context<'_> {
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
                let message = "the exporter stopped while ingesting this file (it may have crashed or run out of \
                               memory on it); it is not tried again";
                take::fail(ctx, folders, &name, out, out, "interrupted", "unknown", message);
            } else if let Some(out) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".retry")) {
                let due = Instant::now() + ctx.retry_after();
                self.retries.push_back(Retry { out: out.to_owned(), shown: out.to_owned(), due });
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
                take::ingest_claimed(ctx, folders, &retry.out, &retry.shown, 2);
                crate::ingest::memory::release();
            }
        }
        self.retries = later;
    }

    /// Reads the next slice of the watched folder and takes what has settled.
    fn take_settled(&mut self, ctx: &Context<'_>, folders: &Folders) {
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
                if candidates.len() >= CLAIMS_PER_SCAN {
                    break;
                }
            }
        }
        for (name, stat) in candidates {
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
        match renameat(&folders.watched, name, folders.ingested.fd(), &work) {
            Ok(()) => {}
            Err(rustix::io::Errno::NOENT) => return,
            Err(e) => {
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
        let outcome = take::ingest_claimed(ctx, folders, &out, &shown, 1);
        crate::ingest::memory::release();
        // After each file, not each scan: 32 files' outputs must not pile up before the bounds apply.
        prune(ctx, folders);
        if outcome == Outcome::Retry {
            if self.retries.len() >= MAX_RETRIES {
                let from = take::retry_name(&out);
                let message = "it does not parse, and too many files are already waiting for a second try";
                take::fail(ctx, folders, &from, &out, &shown, "malformed", "unknown", message);
            } else {
                self.retries.push_back(Retry { out, shown, due: Instant::now() + ctx.retry_after() });
            }
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
