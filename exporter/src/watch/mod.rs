//! The watched folders (`--ingest.dir`, repeatable) and the ingest collector
//! that exposes what they yielded: files that appear there (jemalloc
//! `prof_prefix` dumps, `HEAPPROFILE` dumps, ASan `log_path` files, Massif or
//! heaptrack outputs) are ingested once, and their results are kept.
//!
//! Whoever may write into a watched folder is not trusted (see the README's
//! trust model): the folder is used by descriptor (`state`), a file is moved
//! into the exporter's private state folder before it is opened and checked
//! (`take`), read within a budget, and its outputs are written under names
//! the exporter chose (`crate::ingest::outputs`). "Once" needs no database:
//! a file ends in `.ingested/` with its outputs or in `.failed/` with its
//! reason; a restart reloads the kept summaries (`kept`); both folders stay
//! within `--ingest.keep` and `--ingest.keep-bytes` (`prune`).

mod folder;
mod kept;
mod prune;
mod state;
mod take;

use crate::latest_profiles::LatestProfiles;
use crate::options::ingest::Config;
use crate::otlp::OtlpSink;
use folder::{Context, Folder};
use kept::Kept;
use memleak_signals::{Collection, Collector, CollectorSpec, MetricSpec, ScrapeContext};
use std::sync::{Arc, Mutex, PoisonError};

pub static FILES: MetricSpec = MetricSpec::counter(
    "memleak_ingest_files_total",
    "Files taken from the watched directories, by detected format and outcome (ingested, failed).",
    &["format", "outcome"],
);
pub static FAILURES: MetricSpec = MetricSpec::counter(
    "memleak_ingest_failures_total",
    "Files moved to .failed, by reason (symlink, fifo, device, hard_link, empty, file_too_large, \
     decompressed_too_large, compression_ratio, parsed_too_large, output_too_large, timeout, interrupted, \
     unknown_format, malformed, truncated, directory, unwritable, …); disk_full counts files left in place for \
     a later try because the state folders' disk was full.",
    &["reason"],
);
pub static USABLE: MetricSpec = MetricSpec::gauge(
    "memleak_ingest_dir_usable",
    "1 when the watched directory and its state folders can be used; 0 when one is missing or refused (a \
     symbolic link, another owner, writable by others: the log says which).",
    &["dir"],
);
pub static LEAKED: MetricSpec = MetricSpec::gauge(
    "memleak_ingest_leaked_bytes",
    "Leaked bytes reported by a kept ingested artifact (memcheck, LSan, heaptrack).",
    &["format", "file"],
);
pub static IN_USE: MetricSpec = MetricSpec::gauge(
    "memleak_ingest_inuse_bytes",
    "In-use bytes of a kept ingested heap profile (jemalloc, gperftools) or Massif's peak.",
    &["format", "file"],
);
pub static ERRORS: MetricSpec = MetricSpec::gauge(
    "memleak_ingest_error_records",
    "Memory errors (ASan, memcheck) reported by a kept ingested artifact.",
    &["format", "file"],
);

/// The watched folders' metrics. Not a line of the collector table: it runs
/// when `--ingest.dir` names a folder, and has no `--collector.ingest` flag.
pub static SPEC: CollectorSpec = CollectorSpec {
    id: "ingest",
    about: "What was ingested from the watched folders (--ingest.dir)",
    enabled_by_default: false,
    metrics: &[&FILES, &FAILURES, &USABLE, &LEAKED, &IN_USE, &ERRORS],
};

/// Starts the watcher thread; the returned collector exposes what it ingested,
/// `otlp` (when pushing) receives every ingested artifact, and `latest` keeps their profiles.
pub fn start(config: Config, otlp: Option<OtlpSink>, latest: Arc<LatestProfiles>) -> std::io::Result<IngestCollector> {
    let kept = Arc::new(Mutex::new(Kept::default()));
    let euid = rustix::process::geteuid().as_raw();
    let mut folders: Vec<Folder> = config.dirs.iter().cloned().map(Folder::new).collect();
    // Opened before serving, so the kept results are exposed from the first
    // scrape; files are taken by the thread, so a slow one delays no start.
    for (index, folder) in folders.iter_mut().enumerate() {
        folder.prepare(&Context {
            config: &config,
            kept: &kept,
            index,
            euid,
            file_lines: Default::default(),
            otlp: otlp.as_ref(),
            latest: &latest,
        });
    }
    let dirs = config.dirs.iter().map(|d| d.display().to_string()).collect();
    let thread_kept = Arc::clone(&kept);
    std::thread::Builder::new().name("ingest-watch".into()).spawn(move || {
        loop {
            for (index, folder) in folders.iter_mut().enumerate() {
                folder.scan(&Context {
                    config: &config,
                    kept: &thread_kept,
                    index,
                    euid,
                    file_lines: Default::default(),
                    otlp: otlp.as_ref(),
                    latest: &latest,
                });
            }
            std::thread::sleep(config.interval);
        }
    })?;
    Ok(IngestCollector { kept, dirs })
}

/// Exposes the watcher's results at scrape time.
#[derive(Debug)]
pub struct IngestCollector {
    kept: Arc<Mutex<Kept>>,
    /// The watched folders, as configured (the `dir` label).
    dirs: Vec<String>,
}

impl Collector for IngestCollector {
    fn id(&self) -> &'static str {
        SPEC.id
    }

    fn collect(&mut self, _ctx: &ScrapeContext, out: &mut Collection) {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        for ((format, outcome), count) in &kept.files {
            out.metrics.push(&FILES, &[format, outcome], *count as f64);
        }
        for (reason, count) in &kept.failures {
            out.metrics.push(&FAILURES, &[reason], *count as f64);
        }
        for (index, usable) in &kept.usable {
            if let Some(dir) = self.dirs.get(*index) {
                out.metrics.push(&USABLE, &[dir], if *usable { 1.0 } else { 0.0 });
            }
        }
        for ((_, file), f) in &kept.results {
            for (spec, value) in [(&LEAKED, f.leaked), (&IN_USE, f.inuse), (&ERRORS, f.errors)] {
                if let Some(v) = value {
                    out.metrics.push(spec, &[&f.format, file], v);
                }
            }
        }
    }
}
