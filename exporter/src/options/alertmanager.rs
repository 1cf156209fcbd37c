//! The Alertmanager poller's options (`--alertmanager.*`, YAML `alertmanager`).

use crate::capture::http::Url;
use memleak_signals::OptionError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Alertmanager to poll for active alerts with a capture label that name this host (repeatable:
    /// every peer of an HA cluster), e.g. http://alertmanager:9093.
    #[arg(long = "url", value_name = "URL")]
    #[serde(default)]
    pub urls: Vec<String>,

    /// How often Alertmanager is polled [default: 15s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
}

/// The poller's settings; `None` when no Alertmanager is named.
#[derive(Debug, Clone)]
pub struct Config {
    pub urls: Vec<Url>,
    pub interval: Duration,
}

impl memleak_signals::Options for Options {
    type Config = Option<Config>;

    fn resolve(self) -> Result<Option<Config>, OptionError> {
        if self.urls.is_empty() {
            return Ok(None);
        }
        let urls = self.urls.iter().map(|u| Url::parse(u.trim_end_matches('/'))).collect::<Result<Vec<_>, _>>();
        let interval = self.interval.unwrap_or(Duration::from_secs(15));
        if interval < Duration::from_millis(100) {
            return Err(OptionError::new("interval", "must be at least 100ms"));
        }
        Ok(Some(Config { urls: urls.map_err(|e| OptionError::new("urls", e))?, interval }))
    }
}
