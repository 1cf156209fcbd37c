//! The watched folders (`--ingest.dir`, repeatable) and the ingest collector
//! that exposes what they yielded: files that appear there (jemalloc
//! `prof_prefix` dumps, `HEAPPROFILE` dumps, ASan `log_path` files, Massif or
//! heaptrack outputs) are ingested once, and their results are kept.
//!
//! "Once" without a database: a file is moved into `<dir>/.ingested/` with its
//! outputs (`NAME.pb.gz`, `NAME.folded`, `NAME.svg`, `NAME.json`), or into
//! `<dir>/.failed/` with `NAME.error.txt`. A restart finds nothing new to do and
//! reloads the kept summaries from `.ingested/*.json`. Only the newest
//! `--ingest.keep` results are kept; older ones are deleted. A file is taken
//! only when it has not changed for `SETTLE` (a writer may still be busy).

use crate::ingest::{self, Sink};
use crate::options::ingest::Config;
use memleak_artifacts::symbolize::{SymbolPath, symbolize};
use memleak_signals::{Collection, Collector, CollectorSpec, MetricSpec, ScrapeContext};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

pub static FILES: MetricSpec = MetricSpec::counter(
    "memleak_ingest_files_total",
    "Files taken from the watched directories, by detected format and outcome (ingested, failed).",
    &["format", "outcome"],
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
    metrics: &[&FILES, &LEAKED, &IN_USE, &ERRORS],
};

/// How long a file must stay unchanged before it is taken.
const SETTLE: Duration = Duration::from_secs(2);
const DONE: &str = ".ingested";
const FAILED: &str = ".failed";

/// What is exposed for one kept artifact.
#[derive(Debug, Clone, PartialEq)]
struct Figures {
    format: String,
    leaked: Option<f64>,
    inuse: Option<f64>,
    errors: Option<f64>,
}

/// The kept results by (directory, file name), and the file counters.
#[derive(Debug, Default)]
struct Kept {
    results: BTreeMap<(PathBuf, String), Figures>,
    files: BTreeMap<(String, &'static str), u64>,
}

/// Starts the watcher thread; the returned collector exposes what it ingested.
pub fn start(config: Config) -> std::io::Result<IngestCollector> {
    let kept = Arc::new(Mutex::new(Kept::default()));
    for dir in &config.dirs {
        reload(dir, &mut kept.lock().unwrap_or_else(PoisonError::into_inner));
    }
    let thread_kept = Arc::clone(&kept);
    std::thread::Builder::new().name("ingest-watch".into()).spawn(move || {
        loop {
            for dir in &config.dirs {
                scan(dir, &config, &thread_kept);
            }
            std::thread::sleep(config.interval);
        }
    })?;
    Ok(IngestCollector { kept })
}

/// Reloads the summaries kept by an earlier run.
fn reload(dir: &Path, kept: &mut Kept) {
    let Ok(entries) = std::fs::read_dir(dir.join(DONE)) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        let format = json["format"].as_str().unwrap_or("unknown").to_owned();
        let totals = &json["totals"];
        kept.results.insert((dir.to_path_buf(), name.to_owned()), figures(&format, |k| totals[k].as_f64()));
    }
}

/// The figures exposed for an artifact, from its totals.
fn figures(format: &str, total: impl Fn(&str) -> Option<f64>) -> Figures {
    Figures {
        format: format.to_owned(),
        leaked: total("leaked_bytes"),
        inuse: total("inuse_bytes").or_else(|| total("peak_heap_bytes")),
        errors: total("errors"),
    }
}

fn scan(dir: &Path, config: &Config, kept: &Mutex<Kept>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return tracing::warn!(dir = %dir.display(), "cannot list the watched directory: {e}"),
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
        let settled = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).is_some_and(|age| age >= SETTLE);
        if !meta.is_file() || hidden || !settled {
            continue;
        }
        take(dir, &path, config, kept);
    }
    prune(&dir.join(DONE), config.keep, kept, dir);
}

fn take(dir: &Path, path: &Path, config: &Config, kept: &Mutex<Kept>) {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let done = dir.join(DONE);
    let symbols = SymbolPath { dirs: config.symbols.clone(), recorded_paths: true };
    let result = ingest::ingest_file(path).and_then(|mut ingested| {
        symbolize(&mut ingested.profiles, &symbols);
        std::fs::create_dir_all(&done)?;
        ingest::FolderSink { dir: done.clone() }.ship(path, &ingested)?;
        std::fs::rename(path, done.join(&name))?;
        Ok(ingested)
    });
    let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
    match result {
        Ok(ingested) => {
            tracing::info!(file = %path.display(), format = ingested.format, "ingested");
            *kept.files.entry((ingested.format.to_owned(), "ingested")).or_default() += 1;
            kept.results.insert((dir.to_path_buf(), name.clone()), figures(ingested.format, |k| ingested.total(k)));
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), "cannot ingest: {e:#}; moved to {FAILED}/");
            *kept.files.entry(("unknown".to_owned(), "failed")).or_default() += 1;
            let failed = dir.join(FAILED);
            let moved = std::fs::create_dir_all(&failed)
                .and_then(|()| std::fs::write(failed.join(format!("{name}.error.txt")), format!("{e:#}\n")))
                .and_then(|()| std::fs::rename(path, failed.join(&name)));
            if let Err(e) = moved {
                tracing::warn!(file = %path.display(), "cannot move the file out of the watched directory: {e}; it will be retried");
            }
        }
    }
}

/// Deletes the oldest kept results beyond `keep` (with their outputs).
fn prune(done: &Path, keep: usize, kept: &Mutex<Kept>, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(done) else { return };
    let mut summaries: Vec<(SystemTime, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().strip_suffix(".json")?.to_owned();
            Some((e.metadata().ok()?.modified().ok()?, name))
        })
        .collect();
    if summaries.len() <= keep {
        return;
    }
    summaries.sort();
    let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
    for (_, name) in summaries.iter().take(summaries.len() - keep) {
        for ext in ["", ".json", ".pb.gz", ".folded", ".svg"] {
            let _ = std::fs::remove_file(done.join(format!("{name}{ext}")));
        }
        kept.results.remove(&(dir.to_path_buf(), name.clone()));
    }
}

/// Exposes the watcher's results at scrape time.
#[derive(Debug)]
pub struct IngestCollector {
    kept: Arc<Mutex<Kept>>,
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
        for ((_, file), f) in &kept.results {
            for (spec, value) in [(&LEAKED, f.leaked), (&IN_USE, f.inuse), (&ERRORS, f.errors)] {
                if let Some(v) = value {
                    out.metrics.push(spec, &[&f.format, file], v);
                }
            }
        }
    }
}
