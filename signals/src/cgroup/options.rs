//! The cgroup collector's options: its flags (`--collector.cgroup.*`) and its YAML section.

use super::Config;
use crate::options::{OptionError, at_least_one, optional_match};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Only cgroups whose path matches this regex (whole path, e.g. '/kubepods.*').
    #[arg(long, value_name = "REGEX")]
    pub include: Option<String>,

    /// Leave out cgroups whose path matches this regex.
    #[arg(long, value_name = "REGEX")]
    pub exclude: Option<String>,

    /// Levels below the hierarchy root that are walked [default: 6].
    #[arg(long, value_name = "N")]
    pub max_depth: Option<usize>,

    /// Most cgroups reported per scrape, in path order [default: 1000].
    #[arg(long, value_name = "N")]
    pub max_cgroups: Option<usize>,
}

impl crate::options::Options for Options {
    type Config = Config;

    fn resolve(self) -> Result<Config, OptionError> {
        let defaults = Config::default();
        Ok(Config {
            include: optional_match("include", self.include.as_deref())?,
            exclude: optional_match("exclude", self.exclude.as_deref())?,
            max_depth: self.max_depth.unwrap_or(defaults.max_depth),
            max_cgroups: at_least_one("max_cgroups", self.max_cgroups, defaults.max_cgroups)?,
        })
    }
}
