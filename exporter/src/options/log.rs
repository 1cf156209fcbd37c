//! The log's options (`--log.*`, YAML `log`).

use memleak_signals::OptionError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Log level [default: info].
    #[arg(long, value_name = "LEVEL")]
    pub level: Option<Level>,

    /// Log format [default: logfmt].
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<Format>,
}

/// How much is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// How each log line is written: logfmt (`ts=… level=info msg="…" key=value`) or one JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Logfmt,
    Json,
}

/// The log's settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub level: tracing::Level,
    pub format: Format,
}

impl memleak_signals::Options for Options {
    type Config = Config;

    fn resolve(self) -> Result<Config, OptionError> {
        let level = match self.level.unwrap_or(Level::Info) {
            Level::Error => tracing::Level::ERROR,
            Level::Warn => tracing::Level::WARN,
            Level::Info => tracing::Level::INFO,
            Level::Debug => tracing::Level::DEBUG,
            Level::Trace => tracing::Level::TRACE,
        };
        Ok(Config { level, format: self.format.unwrap_or(Format::Logfmt) })
    }
}
