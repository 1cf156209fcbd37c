//! The pmc collector's options: its flags (`--collector.pmc.*`) and its YAML section.

use super::Config;
use crate::options::{OptionError, at_least_one, optional_match};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Most cgroups (cgroup v2, in path order) with perf page-fault counters open [default: 64].
    #[arg(long, value_name = "N")]
    pub max_cgroups: Option<usize>,

    /// Levels below the cgroup v2 root that get perf counters [default: 2].
    #[arg(long, value_name = "N")]
    pub max_depth: Option<usize>,

    /// Processes whose command name (comm) matches this regex, whole, get page-fault counters of
    /// their own, labelled pid and comm (e.g. 'java|envoy') [default: none].
    #[arg(long, value_name = "REGEX")]
    pub process_include: Option<String>,

    /// Most processes with their own perf counters (each: up to 32 threads × 3 counters)
    /// [default: 16].
    #[arg(long, value_name = "N")]
    pub max_processes: Option<usize>,
}

impl crate::options::Options for Options {
    type Config = Config;

    fn resolve(self) -> Result<Config, OptionError> {
        let defaults = Config::default();
        Ok(Config {
            max_cgroups: at_least_one("max_cgroups", self.max_cgroups, defaults.max_cgroups)?,
            max_depth: self.max_depth.unwrap_or(defaults.max_depth),
            process_include: optional_match("process_include", self.process_include.as_deref())?,
            max_processes: at_least_one("max_processes", self.max_processes, defaults.max_processes)?,
        })
    }
}
