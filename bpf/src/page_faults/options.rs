//! The page_faults collector's options: its flags (`--collector.page_faults.*`) and its YAML section.

use super::{Config, FaultMode};
use memleak_signals::OptionError;
use memleak_signals::options::at_least_one;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A sample's weight travels as 32 bits from the BPF program.
const MAX_PERIOD: u64 = 1_000_000_000;

#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Sampling period of the eBPF page-fault attribution: one sample every N faults; in
    /// every-fault mode, one fault in N is attributed to a memory region [default: 1000].
    #[arg(long, value_name = "N")]
    pub period: Option<u64>,

    /// How the eBPF page-fault collector sees faults: `sampled` (the page-faults perf event, one
    /// program run per period; always-on cost) or `every-fault` (the exceptions:page_fault_user
    /// tracepoint, exact counts, 10 % or more on fault-heavy loads: for short windows)
    /// [default: sampled].
    #[arg(long, value_name = "MODE")]
    pub mode: Option<FaultMode>,

    /// How long every-fault mode lasts before the collector goes back to sampling; 0 keeps it on
    /// until the exporter stops [default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub every_fault_window: Option<Duration>,

    /// Most cgroups the page-fault collector names (those with the most faults); the others are
    /// summed as cgroup="__other__" [default: 64].
    #[arg(long, value_name = "N")]
    pub max_cgroups: Option<usize>,
}

impl memleak_signals::Options for Options {
    type Config = Config;

    fn resolve(self) -> Result<Config, OptionError> {
        let defaults = Config::default();
        let period = match self.period {
            Some(0) => return Err(OptionError::new("period", "must be at least 1")),
            Some(p) if p > MAX_PERIOD => {
                return Err(OptionError::new("period", format!("must be at most {MAX_PERIOD}")));
            }
            Some(p) => p,
            None => defaults.period,
        };
        Ok(Config {
            mode: self.mode.unwrap_or(defaults.mode),
            period,
            max_cgroups: at_least_one("max_cgroups", self.max_cgroups, defaults.max_cgroups)?,
            every_fault_window: match self.every_fault_window {
                Some(Duration::ZERO) => None,
                Some(window) => Some(window),
                None => defaults.every_fault_window,
            },
        })
    }
}
