//! The optional YAML configuration file (`--config.file`). Every key mirrors a
//! command-line flag; a flag given on the command line wins over the file.
//! Unknown keys and wrong types are errors that name the key, line and column.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub web: WebFile,
    #[serde(default)]
    pub webhook: WebhookFile,
    #[serde(default)]
    pub ingest: IngestFile,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default)]
    pub paths: PathsFile,
    #[serde(default)]
    pub collectors: CollectorsFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebFile {
    pub listen_address: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub scrape_timeout: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookFile {
    pub token_file: Option<PathBuf>,
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestFile {
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    pub keep: Option<usize>,
    #[serde(default)]
    pub symbols: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    pub level: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsFile {
    pub rootfs: Option<PathBuf>,
    pub procfs: Option<PathBuf>,
    pub sysfs: Option<PathBuf>,
    pub cgroupfs: Option<PathBuf>,
}

/// One entry per signal id with a collector.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorsFile {
    pub psi: Option<ToggleFile>,
    pub host_memory: Option<ToggleFile>,
    pub process: Option<ProcessFile>,
    pub cgroup: Option<CgroupFile>,
    pub pmc: Option<PmcFile>,
    pub page_faults: Option<PageFaultsFile>,
    pub memory_syscalls: Option<MemorySyscallsFile>,
}

impl CollectorsFile {
    /// `enabled` of the collector `id`, if the file sets it.
    pub fn enabled(&self, id: &str) -> Option<bool> {
        match id {
            "psi" => self.psi.as_ref()?.enabled,
            "host_memory" => self.host_memory.as_ref()?.enabled,
            "process" => self.process.as_ref()?.enabled,
            "cgroup" => self.cgroup.as_ref()?.enabled,
            "pmc" => self.pmc.as_ref()?.enabled,
            "page_faults" => self.page_faults.as_ref()?.enabled,
            "memory_syscalls" => self.memory_syscalls.as_ref()?.enabled,
            _ => None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToggleFile {
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessFile {
    pub enabled: Option<bool>,
    pub group_by: Option<String>,
    pub include_comm: Option<String>,
    pub exclude_comm: Option<String>,
    pub include_cmdline: Option<String>,
    pub exclude_cmdline: Option<String>,
    pub include_cgroup: Option<String>,
    pub exclude_cgroup: Option<String>,
    pub kernel_threads: Option<bool>,
    pub max_groups: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub detail_interval: Option<Duration>,
    pub pss: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupFile {
    pub enabled: Option<bool>,
    pub include: Option<String>,
    pub exclude: Option<String>,
    pub max_depth: Option<usize>,
    pub max_cgroups: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PmcFile {
    pub enabled: Option<bool>,
    pub max_cgroups: Option<usize>,
    pub max_depth: Option<usize>,
    pub process_include: Option<String>,
    pub max_processes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageFaultsFile {
    pub enabled: Option<bool>,
    pub period: Option<u64>,
    pub mode: Option<crate::cli::FaultModeArg>,
    pub max_cgroups: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub every_fault_window: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySyscallsFile {
    pub enabled: Option<bool>,
    pub max_cgroups: Option<usize>,
}

/// Reads and parses the file; the error names the file, key, line and column.
pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
}

pub fn parse(text: &str) -> Result<FileConfig, serde_norway::Error> {
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_norway::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file() {
        let text = "web:\n  listen_address: 127.0.0.1:9999\n  scrape_timeout: 5s\n\
                    collectors:\n  psi:\n    enabled: false\n  process:\n    group_by: cgroup\n    detail_interval: 1m\n";
        let c = parse(text).unwrap();
        assert_eq!(c.web.listen_address.as_deref(), Some("127.0.0.1:9999"));
        assert_eq!(c.web.scrape_timeout, Some(Duration::from_secs(5)));
        assert_eq!(c.collectors.enabled("psi"), Some(false));
        assert_eq!(c.collectors.enabled("cgroup"), None);
        assert_eq!(c.collectors.process.unwrap().detail_interval, Some(Duration::from_secs(60)));
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key_and_line() {
        let err = parse("collectors:\n  process:\n    grop_by: comm\n").unwrap_err().to_string();
        assert!(err.contains("grop_by") && err.contains("line 3"), "{err}");
        let err = parse("collectors:\n  cgroup:\n    max_depth: deep\n").unwrap_err().to_string();
        assert!(err.contains("max_depth") || err.contains("invalid type"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(parse("").is_ok());
    }
}
