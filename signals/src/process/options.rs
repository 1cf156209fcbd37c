//! The process collector's options: its flags (`--collector.process.*`) and its YAML section.

use super::naming::{NameRule, Naming};
use super::{Config, GroupBy, Selection};
use crate::options::{OptionError, at_least_one, optional_match};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// How processes are summed into series: comm, cgroup, unit (systemd), container or pid [default: comm].
    #[arg(long, value_name = "MODE")]
    pub group_by: Option<GroupBy>,

    /// Naming rules (config file only, process-exporter's `process_names`): the first rule
    /// whose regexes match names the process's group; unmatched processes follow `group_by`.
    #[arg(skip)]
    #[serde(default)]
    pub names: Vec<NameRule>,

    /// Only processes whose command name (comm) matches this regex (whole name).
    #[arg(long, value_name = "REGEX")]
    pub include_comm: Option<String>,

    /// Leave out processes whose command name matches this regex.
    #[arg(long, value_name = "REGEX")]
    pub exclude_comm: Option<String>,

    /// Only processes whose command line (arguments joined by spaces) matches this regex.
    #[arg(long, value_name = "REGEX")]
    pub include_cmdline: Option<String>,

    /// Leave out processes whose command line matches this regex.
    #[arg(long, value_name = "REGEX")]
    pub exclude_cmdline: Option<String>,

    /// Only processes whose cgroup path matches this regex (e.g. '/system.slice/.*').
    #[arg(long, value_name = "REGEX")]
    pub include_cgroup: Option<String>,

    /// Leave out processes whose cgroup path matches this regex.
    #[arg(long, value_name = "REGEX")]
    pub exclude_cgroup: Option<String>,

    /// Report kernel threads too (they have no user memory) [default: false].
    #[arg(long, value_name = "BOOL")]
    pub kernel_threads: Option<bool>,

    /// Most process groups reported; the smallest by RSS are summed into group="__other__" [default: 500].
    #[arg(long, value_name = "N")]
    pub max_groups: Option<usize>,

    /// How often anon/file/shmem/swap/data/peak/PSS/mappings are re-read, off the scrape path; 0s turns them off [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub detail_interval: Option<Duration>,

    /// Read PSS from smaps_rollup in the detail refresh (the costliest read) [default: true].
    #[arg(long, value_name = "BOOL")]
    pub pss: Option<bool>,
}

impl crate::options::Options for Options {
    type Config = Config;

    fn resolve(self) -> Result<Config, OptionError> {
        let defaults = Config::default();
        Ok(Config {
            group_by: self.group_by.unwrap_or(defaults.group_by),
            naming: Naming::compile(&self.names)?,
            selection: Selection {
                include_comm: optional_match("include_comm", self.include_comm.as_deref())?,
                exclude_comm: optional_match("exclude_comm", self.exclude_comm.as_deref())?,
                include_cmdline: optional_match("include_cmdline", self.include_cmdline.as_deref())?,
                exclude_cmdline: optional_match("exclude_cmdline", self.exclude_cmdline.as_deref())?,
                include_cgroup: optional_match("include_cgroup", self.include_cgroup.as_deref())?,
                exclude_cgroup: optional_match("exclude_cgroup", self.exclude_cgroup.as_deref())?,
                kernel_threads: self.kernel_threads.unwrap_or(defaults.selection.kernel_threads),
            },
            max_groups: at_least_one("max_groups", self.max_groups, defaults.max_groups)?,
            detail_interval: self.detail_interval.unwrap_or(defaults.detail_interval),
            pss: self.pss.unwrap_or(defaults.pss),
        })
    }
}
