//! The watched folders' options (`--ingest.*`, YAML `ingest`).

use memleak_artifacts::Budget;
use memleak_signals::OptionError;
use memleak_signals::options::at_least_one;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Directory whose new files are ingested once and exposed as memleak_ingest_* metrics; results
    /// and outputs are kept in DIR/.ingested, unreadable files go to DIR/.failed (repeatable).
    #[arg(long = "dir", value_name = "DIR")]
    #[serde(default)]
    pub dirs: Vec<PathBuf>,

    /// How often the watched directories are scanned [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,

    /// Most ingested results kept per directory, and most failed files; older ones are deleted
    /// [default: 100].
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,

    /// Most bytes of disk the kept results of a directory may use, and its failed files
    /// [default: 268435456].
    #[arg(long, value_name = "BYTES")]
    pub keep_bytes: Option<u64>,

    /// Folder holding binaries to symbolize heap dumps with, searched by file name (repeatable).
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub symbols: Vec<PathBuf>,

    /// Largest file taken, as stored; a larger one goes to .failed unread [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    pub max_file_bytes: Option<u64>,

    /// Largest text after decompression, held in memory while parsed [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    pub max_decompressed_bytes: Option<u64>,

    /// Largest decompressed-to-compressed ratio (past the first MiB) [default: 500].
    #[arg(long, value_name = "N")]
    pub max_ratio: Option<u64>,

    /// Memory for a file's parsed stacks, samples and records, for one binary's symbol tables
    /// and for its debug info; past it the rest is left out and the summary says so [default: 8388608].
    #[arg(long, value_name = "BYTES")]
    pub max_parsed_bytes: Option<u64>,

    /// Largest outputs of one file, all together [default: 33554432].
    #[arg(long, value_name = "BYTES")]
    pub max_output_bytes: Option<u64>,

    /// Longest time one file may take [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// The watched folders' settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub dirs: Vec<PathBuf>,
    pub interval: Duration,
    pub keep: usize,
    pub keep_bytes: u64,
    pub symbols: Vec<PathBuf>,
    pub budget: Budget,
}

impl memleak_signals::Options for Options {
    /// `None`: no folder is watched.
    type Config = Option<Config>;

    fn resolve(self) -> Result<Option<Config>, OptionError> {
        if self.dirs.is_empty() {
            return Ok(None);
        }
        let d = Budget::WATCHED;
        let positive = |key: &'static str, value: Option<u64>, default: u64| match value {
            Some(0) => Err(OptionError::new(key, "must be at least 1")),
            other => Ok(other.unwrap_or(default)),
        };
        let time = match self.timeout {
            Some(t) if t.is_zero() => return Err(OptionError::new("timeout", "must be longer than 0s")),
            other => other.unwrap_or(d.time),
        };
        Ok(Some(Config {
            dirs: self.dirs,
            interval: self.interval.unwrap_or(Duration::from_secs(10)),
            keep: at_least_one("keep", self.keep, 100)?,
            keep_bytes: positive("keep_bytes", self.keep_bytes, 256 << 20)?,
            symbols: self.symbols,
            budget: Budget {
                file_bytes: positive("max_file_bytes", self.max_file_bytes, d.file_bytes)?,
                decompressed_bytes: positive(
                    "max_decompressed_bytes",
                    self.max_decompressed_bytes,
                    d.decompressed_bytes,
                )?,
                ratio: positive("max_ratio", self.max_ratio, d.ratio)?,
                parsed_bytes: positive("max_parsed_bytes", self.max_parsed_bytes, d.parsed_bytes)?,
                output_bytes: positive("max_output_bytes", self.max_output_bytes, d.output_bytes)?,
                time,
            },
        }))
    }
}
