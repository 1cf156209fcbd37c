//! The Alertmanager webhook's options (`--webhook.*`, YAML `webhook`).

use memleak_signals::OptionError;
use memleak_signals::options::at_least_one;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// File holding the bearer token that Alertmanager must send to POST /api/v1/alerts. Without it the
    /// webhook answers only when the exporter listens on loopback.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// Largest webhook request body accepted, in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
}

/// The webhook's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub token_file: Option<PathBuf>,
    pub max_body_bytes: usize,
}

impl memleak_signals::Options for Options {
    type Config = Config;

    fn resolve(self) -> Result<Config, OptionError> {
        Ok(Config {
            token_file: self.token_file,
            max_body_bytes: at_least_one("max_body_bytes", self.max_body_bytes, 1 << 20)?,
        })
    }
}
