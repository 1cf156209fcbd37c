//! What the watched folders yielded, as the collector exposes it: the figures
//! of each kept result, files counted by format and outcome, failures by
//! reason, whether each folder is usable; and the figures reloaded from the
//! kept summaries after a restart (only their first lines are read: the
//! summary writer puts one top-level key per line, `format` and `totals` early).

use rustix::fs::{Dir, FileType, Mode, OFlags, fstat, openat};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;

/// What is exposed for one kept result.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub format: String,
    pub leaked: Option<f64>,
    pub inuse: Option<f64>,
    pub errors: Option<f64>,
}

impl Figures {
    /// The figures of an artifact of `format`, from its named totals.
    pub fn from_totals(format: &str, total: impl Fn(&str) -> Option<f64>) -> Figures {
        Figures {
            format: format.to_owned(),
            leaked: total("leaked_bytes"),
            inuse: total("inuse_bytes").or_else(|| total("peak_heap_bytes")),
            errors: total("errors"),
        }
    }
}

/// The watcher's results, shared with the collector.
#[derive(Debug, Default)]
pub struct Kept {
    /// By (folder index, output name).
    pub results: BTreeMap<(usize, String), Figures>,
    /// By (format, outcome).
    pub files: BTreeMap<(String, &'static str), u64>,
    /// Files moved to .failed, by reason.
    pub failures: BTreeMap<&'static str, u64>,
    /// By folder index: whether the folder and its state folders are usable.
    pub usable: BTreeMap<usize, bool>,
}

#[derive(Debug, Deserialize)]
struct Totals {
    leaked_bytes: Option<f64>,
    inuse_bytes: Option<f64>,
    peak_heap_bytes: Option<f64>,
    errors: Option<f64>,
}

/// The figures of every summary kept in `.ingested` (`NAME.json`, at most `max_bytes` each).
pub fn reload(ingested: &OwnedFd, max_bytes: u64) -> Vec<(String, Figures)> {
    let Ok(mut entries) = Dir::read_from(ingested) else { return Vec::new() };
    let mut out = Vec::new();
    while let Some(Ok(entry)) = entries.read() {
        let Ok(file_name) = entry.file_name().to_str() else { continue };
        let Some(name) = file_name.strip_suffix(".json").filter(|n| !n.starts_with('.') && !n.is_empty()) else {
            continue;
        };
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let Ok(fd) = openat(ingested, file_name, flags, Mode::empty()) else { continue };
        let regular = fstat(&fd).is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::RegularFile);
        if !regular {
            continue;
        }
        let Some((format, t)) = head(std::fs::File::from(fd).take(max_bytes)) else { continue };
        let figures = Figures::from_totals(&format, |k| match k {
            "leaked_bytes" => t.leaked_bytes,
            "inuse_bytes" => t.inuse_bytes,
            "peak_heap_bytes" => t.peak_heap_bytes,
            "errors" => t.errors,
            _ => None,
        });
        out.push((name.to_owned(), figures));
    }
    out
}

/// The `format` and `totals` lines of a summary, read no further than they are.
fn head(summary: impl Read) -> Option<(String, Totals)> {
    let (mut format, mut totals) = (None, None);
    for line in BufReader::new(summary).lines() {
        let line = line.ok()?;
        let field = line.trim_start();
        let value = |key: &str| field.strip_prefix(key).map(|v| v.trim_end().trim_end_matches(','));
        if let Some(v) = value("\"format\": ") {
            format = serde_json::from_str::<String>(v).ok();
        } else if let Some(v) = value("\"totals\": ") {
            totals = serde_json::from_str::<Totals>(v).ok();
        }
        if format.is_some() && totals.is_some() {
            break;
        }
    }
    Some((format?, totals?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_reloaded_from_their_first_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut ingested = memleak_artifacts::Ingested::new("memcheck");
        ingested.totals = vec![("leaked_bytes".into(), 409_600.0), ("errors".into(), 0.0)];
        for i in 0..1000 {
            ingested.records.push(memleak_artifacts::Record::new(
                memleak_artifacts::Severity::Info,
                "k",
                format!("r{i}"),
            ));
        }
        let mut summary = Vec::new();
        memleak_artifacts::encode::summary::write_json(&mut summary, "a", &ingested, &[]).unwrap();
        assert!(summary.len() > 4096);
        std::fs::write(dir.path().join("a.json"), &summary).unwrap();
        // Its totals come after the first 4 KiB: not read.
        let late = format!("{{\n  \"pad\": \"{}\",\n  \"format\": \"x\",\n  \"totals\": {{}}\n}}\n", "x".repeat(5000));
        std::fs::write(dir.path().join("big.json"), late).unwrap();
        std::fs::write(dir.path().join(".a.json.tmp"), &summary).unwrap();
        let fd = rustix::fs::open(dir.path(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let got = reload(&fd, 4096);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "a");
        assert_eq!((got[0].1.leaked, got[0].1.errors, got[0].1.inuse), (Some(409_600.0), Some(0.0), None));
    }
}
