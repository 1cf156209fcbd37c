//! The watched folders' options (`--ingest.*`, YAML `ingest`).

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

    /// Most ingested results kept per directory; older ones are deleted [default: 100].
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,

    /// Folder holding binaries to symbolize heap dumps with, searched by file name (repeatable).
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub symbols: Vec<PathBuf>,
}

/// The watched folders' settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub dirs: Vec<PathBuf>,
    pub interval: Duration,
    pub keep: usize,
    pub symbols: Vec<PathBuf>,
}

impl memleak_signals::Options for Options {
    /// `None`: no folder is watched.
    type Config = Option<Config>;

    fn resolve(self) -> Result<Option<Config>, OptionError> {
        if self.dirs.is_empty() {
            return Ok(None);
        }
        Ok(Some(Config {
            dirs: self.dirs,
            interval: self.interval.unwrap_or(Duration::from_secs(10)),
            keep: at_least_one("keep", self.keep, 100)?,
            symbols: self.symbols,
        }))
    }
}
