//! Command-line flags, merged with the optional config file into `Settings`.
//!
//! Precedence: a flag on the command line, then the config file, then the
//! default named in `--help`.

use crate::config::{self, FileConfig};
use crate::logging::LogFormat;
use anyhow::{Context, bail};
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser};
use memleak_signals::registry::{self, SIGNALS};
use memleak_signals::{FsRoots, cgroup, process};
use regex::Regex;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

const AFTER_HELP: &str = "\
Collectors (enable with --collector.<name>, disable with --no-collector.<name>):
  psi, host_memory, process, cgroup (enabled by default),
  pmc, page_faults, memory_syscalls (opt-in; their cost is in docs/benchmarks.md)

Every flag can also be set in the YAML file given by --config.file; see the README.";

/// Memory-leak signals for Prometheus: PSI, host, process and cgroup memory.
#[derive(Debug, Parser)]
#[command(name = "memleak-exporter", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Subcommand>,

    /// YAML configuration file; flags given on the command line win over it.
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,

    /// Validate the flags and the configuration file, print the result, and exit.
    #[arg(long = "config.check")]
    pub config_check: bool,

    /// Address to listen on for HTTP [default: :9487, i.e. every interface].
    #[arg(long = "web.listen-address", value_name = "HOST:PORT")]
    pub listen_address: Option<String>,

    /// Longest time a scrape may take; a lower X-Prometheus-Scrape-Timeout-Seconds wins [default: 10s].
    #[arg(long = "web.scrape-timeout", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub scrape_timeout: Option<Duration>,

    /// File holding the bearer token that Alertmanager must send to POST /api/v1/alerts. Without it the
    /// webhook answers only when the exporter listens on loopback.
    #[arg(long = "webhook.token-file", value_name = "PATH")]
    pub webhook_token_file: Option<PathBuf>,

    /// Largest webhook request body accepted, in bytes [default: 1048576].
    #[arg(long = "webhook.max-body-bytes", value_name = "BYTES")]
    pub webhook_max_body_bytes: Option<usize>,

    /// Directory whose new files are ingested once and exposed as memleak_ingest_* metrics; results
    /// and outputs are kept in DIR/.ingested, unreadable files go to DIR/.failed (repeatable).
    #[arg(long = "ingest.dir", value_name = "DIR")]
    pub ingest_dirs: Vec<PathBuf>,

    /// How often the watched directories are scanned [default: 10s].
    #[arg(long = "ingest.interval", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub ingest_interval: Option<Duration>,

    /// Most ingested results kept per directory; older ones are deleted [default: 100].
    #[arg(long = "ingest.keep", value_name = "N")]
    pub ingest_keep: Option<usize>,

    /// Folder holding binaries to symbolize heap dumps with, searched by file name (repeatable).
    #[arg(long = "ingest.symbols", value_name = "DIR")]
    pub ingest_symbols: Vec<PathBuf>,

    /// Log level: error, warn, info, debug or trace [default: info].
    #[arg(long = "log.level", value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Log format: logfmt or json [default: logfmt].
    #[arg(long = "log.format", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Root of the host's file system; sets procfs, sysfs and cgroupfs below it (for containers).
    #[arg(long = "path.rootfs", value_name = "PATH")]
    pub rootfs: Option<PathBuf>,

    /// procfs mount point [default: /proc, or ROOTFS/proc].
    #[arg(long = "path.procfs", value_name = "PATH")]
    pub procfs: Option<PathBuf>,

    /// sysfs mount point [default: /sys, or ROOTFS/sys].
    #[arg(long = "path.sysfs", value_name = "PATH")]
    pub sysfs: Option<PathBuf>,

    /// cgroup file system mount point [default: /sys/fs/cgroup, or ROOTFS/sys/fs/cgroup].
    #[arg(long = "path.cgroupfs", value_name = "PATH")]
    pub cgroupfs: Option<PathBuf>,

    /// How processes are summed into series: comm, cgroup or pid [default: comm].
    #[arg(long = "collector.process.group-by", value_name = "MODE")]
    pub process_group_by: Option<String>,

    /// Only processes whose command name (comm) matches this regex (whole name).
    #[arg(long = "collector.process.include-comm", value_name = "REGEX")]
    pub process_include_comm: Option<String>,

    /// Leave out processes whose command name matches this regex.
    #[arg(long = "collector.process.exclude-comm", value_name = "REGEX")]
    pub process_exclude_comm: Option<String>,

    /// Only processes whose command line (arguments joined by spaces) matches this regex.
    #[arg(long = "collector.process.include-cmdline", value_name = "REGEX")]
    pub process_include_cmdline: Option<String>,

    /// Leave out processes whose command line matches this regex.
    #[arg(long = "collector.process.exclude-cmdline", value_name = "REGEX")]
    pub process_exclude_cmdline: Option<String>,

    /// Only processes whose cgroup path matches this regex (e.g. '/system.slice/.*').
    #[arg(long = "collector.process.include-cgroup", value_name = "REGEX")]
    pub process_include_cgroup: Option<String>,

    /// Leave out processes whose cgroup path matches this regex.
    #[arg(long = "collector.process.exclude-cgroup", value_name = "REGEX")]
    pub process_exclude_cgroup: Option<String>,

    /// Report kernel threads too (they have no user memory) [default: false].
    #[arg(long = "collector.process.kernel-threads", value_name = "BOOL")]
    pub process_kernel_threads: Option<bool>,

    /// Most process groups reported; the smallest by RSS are summed into group="__other__" [default: 500].
    #[arg(long = "collector.process.max-groups", value_name = "N")]
    pub process_max_groups: Option<usize>,

    /// How often anon/file/shmem/swap/data/peak/PSS/mappings are re-read, off the scrape path; 0s turns them off [default: 30s].
    #[arg(long = "collector.process.detail-interval", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub process_detail_interval: Option<Duration>,

    /// Read PSS from smaps_rollup in the detail refresh (the costliest read) [default: true].
    #[arg(long = "collector.process.pss", value_name = "BOOL")]
    pub process_pss: Option<bool>,

    /// Only cgroups whose path matches this regex (whole path, e.g. '/kubepods.*').
    #[arg(long = "collector.cgroup.include", value_name = "REGEX")]
    pub cgroup_include: Option<String>,

    /// Leave out cgroups whose path matches this regex.
    #[arg(long = "collector.cgroup.exclude", value_name = "REGEX")]
    pub cgroup_exclude: Option<String>,

    /// Most cgroups (cgroup v2, in path order) with perf page-fault counters open [default: 64].
    #[arg(long = "collector.pmc.max-cgroups", value_name = "N")]
    pub pmc_max_cgroups: Option<usize>,

    /// Levels below the cgroup v2 root that get perf counters [default: 2].
    #[arg(long = "collector.pmc.max-depth", value_name = "N")]
    pub pmc_max_depth: Option<usize>,

    /// Processes whose command name (comm) matches this regex, whole, get page-fault counters of
    /// their own, labelled pid and comm (e.g. 'java|envoy') [default: none].
    #[arg(long = "collector.pmc.process-include", value_name = "REGEX")]
    pub pmc_process_include: Option<String>,

    /// Most processes with their own perf counters (each: up to 32 threads × 3 counters)
    /// [default: 16].
    #[arg(long = "collector.pmc.max-processes", value_name = "N")]
    pub pmc_max_processes: Option<usize>,

    /// Sampling period of the eBPF page-fault attribution: one sample every N faults; in
    /// every-fault mode, one fault in N is attributed to a memory region [default: 1000].
    #[arg(long = "collector.page_faults.period", value_name = "N")]
    pub page_faults_period: Option<u64>,

    /// How the eBPF page-fault collector sees faults: `sampled` (the page-faults perf event, one
    /// program run per period; always-on cost) or `every-fault` (the exceptions:page_fault_user
    /// tracepoint, exact counts, 10 % or more on fault-heavy loads: for short windows)
    /// [default: sampled].
    #[arg(long = "collector.page_faults.mode", value_name = "MODE")]
    pub page_faults_mode: Option<FaultModeArg>,

    /// How long every-fault mode lasts before the collector goes back to sampling; 0 keeps it on
    /// until the exporter stops [default: 10m].
    #[arg(long = "collector.page_faults.every-fault-window", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub page_faults_every_fault_window: Option<Duration>,

    /// Most cgroups the page-fault collector names (those with the most faults); the others are
    /// summed as cgroup="__other__" [default: 64].
    #[arg(long = "collector.page_faults.max-cgroups", value_name = "N")]
    pub page_faults_max_cgroups: Option<usize>,

    /// Most cgroups the brk/mmap/munmap/mremap collector names (those with the most calls); the
    /// others are summed as cgroup="__other__" [default: 64].
    #[arg(long = "collector.memory_syscalls.max-cgroups", value_name = "N")]
    pub memory_syscalls_max_cgroups: Option<usize>,

    /// Levels below the hierarchy root that are walked [default: 6].
    #[arg(long = "collector.cgroup.max-depth", value_name = "N")]
    pub cgroup_max_depth: Option<usize>,

    /// Most cgroups reported per scrape, in path order [default: 1000].
    #[arg(long = "collector.cgroup.max-cgroups", value_name = "N")]
    pub cgroup_max_cgroups: Option<usize>,
}

/// `--collector.page_faults.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultModeArg {
    Sampled,
    EveryFault,
}

impl From<FaultModeArg> for memleak_bpf::FaultMode {
    fn from(mode: FaultModeArg) -> Self {
        match mode {
            FaultModeArg::Sampled => memleak_bpf::FaultMode::Sampled,
            FaultModeArg::EveryFault => memleak_bpf::FaultMode::EveryFault,
        }
    }
}

/// Subcommands besides serving metrics.
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    // Its help comes from the format table: see `ingest_about` and `ingest::formats_help`.
    Ingest {
        /// Folder for the outputs (created if missing).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Folder holding the binaries of a heap dump's process, searched by file name before the
        /// paths the dump records (repeatable).
        #[arg(long = "symbols", value_name = "DIR")]
        symbols: Vec<PathBuf>,
        /// Files to ingest.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// Everything the exporter needs to run, validated.
#[derive(Debug)]
pub struct Settings {
    /// A subcommand to run instead of the server.
    pub command: Option<Subcommand>,
    pub check_only: bool,
    pub listen: SocketAddr,
    pub scrape_timeout: Duration,
    pub webhook_token_file: Option<PathBuf>,
    pub webhook_max_body_bytes: usize,
    /// The watched directories, when any.
    pub watch: Option<crate::watch::WatchConfig>,
    pub log_level: tracing::Level,
    pub log_format: LogFormat,
    pub roots: FsRoots,
    /// Ids of enabled collectors, in registry order.
    pub enabled: Vec<&'static str>,
    pub process: process::Config,
    pub cgroup: cgroup::Config,
    pub pmc: memleak_signals::pmc::Config,
    pub page_faults: memleak_bpf::FaultConfig,
    pub memory_syscalls_max_cgroups: usize,
}

impl Settings {
    /// A short human-readable summary (for `--config.check` and the start-up log).
    pub fn summary(&self) -> String {
        format!(
            "listen={} collectors={} procfs={} cgroupfs={} process.group_by={:?} process.max_groups={} cgroup.max_cgroups={}",
            self.listen,
            self.enabled.join(","),
            self.roots.procfs.display(),
            self.roots.cgroupfs.display(),
            self.process.group_by,
            self.process.max_groups,
            self.cgroup.max_cgroups,
        )
    }
}

/// The command with one `--collector.X` / `--no-collector.X` pair per signal of the registry.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command()
        .mut_subcommand("ingest", |ingest| ingest.about(ingest_about()).after_help(crate::ingest::formats_help()));
    for signal in SIGNALS.iter().filter(|s| s.roles.collector) {
        let on = format!("collector.{}", signal.id);
        let off = format!("no-collector.{}", signal.id);
        cmd = cmd
            .arg(
                Arg::new(on.clone())
                    .long(on.clone())
                    .action(ArgAction::SetTrue)
                    .help(format!("Enable the {} collector: {}", signal.id, signal.description)),
            )
            .arg(
                Arg::new(off.clone())
                    .long(off)
                    .action(ArgAction::SetTrue)
                    .conflicts_with(on)
                    .help(format!("Disable the {} collector", signal.id)),
            );
    }
    cmd
}

/// What `ingest` does, naming the formats of the format table.
fn ingest_about() -> String {
    let ids: Vec<&str> = memleak_artifacts::FORMATS.iter().map(|f| f.id).collect();
    format!(
        "Convert the output of memory tools ({}; detected from the content) into a pprof profile \
         (NAME.pb.gz), collapsed stacks (NAME.folded), a flame graph (NAME.svg) and a JSON summary \
         (NAME.json) in --out; without --out, print a summary with the top leak sites",
        ids.join(", ")
    )
}

/// Parses the process's arguments.
pub fn parse() -> anyhow::Result<Settings> {
    let matches = command().try_get_matches().unwrap_or_else(|e| e.exit());
    settings_from(&matches)
}

/// Builds settings from parsed arguments (and the config file they name).
pub fn settings_from(matches: &ArgMatches) -> anyhow::Result<Settings> {
    let cli = Cli::from_arg_matches(matches).context("parsing flags")?;
    let file = match &cli.config_file {
        Some(path) => config::load(path)?,
        None => FileConfig::default(),
    };
    merge(cli, file, matches)
}

fn merge(cli: Cli, file: FileConfig, matches: &ArgMatches) -> anyhow::Result<Settings> {
    let listen_text = cli.listen_address.or(file.web.listen_address).unwrap_or_else(|| ":9487".into());
    let listen = parse_listen(&listen_text)?;
    let scrape_timeout = cli.scrape_timeout.or(file.web.scrape_timeout).unwrap_or(Duration::from_secs(10));
    if scrape_timeout.is_zero() {
        bail!("--web.scrape-timeout must be more than 0s");
    }
    let webhook_token_file = cli.webhook_token_file.or(file.webhook.token_file);
    let webhook_max_body_bytes =
        positive("webhook.max-body-bytes", cli.webhook_max_body_bytes.or(file.webhook.max_body_bytes), 1 << 20)?;
    let ingest_dirs = if cli.ingest_dirs.is_empty() { file.ingest.dirs.clone() } else { cli.ingest_dirs.clone() };
    let watch = (!ingest_dirs.is_empty())
        .then(|| -> anyhow::Result<crate::watch::WatchConfig> {
            Ok(crate::watch::WatchConfig {
                dirs: ingest_dirs,
                interval: cli.ingest_interval.or(file.ingest.interval).unwrap_or(Duration::from_secs(10)),
                keep: positive("ingest.keep", cli.ingest_keep.or(file.ingest.keep), 100)?,
                symbols: if cli.ingest_symbols.is_empty() {
                    file.ingest.symbols.clone()
                } else {
                    cli.ingest_symbols.clone()
                },
            })
        })
        .transpose()?;
    let level_text = cli.log_level.or(file.log.level).unwrap_or_else(|| "info".into());
    let log_level = level_text.parse::<tracing::Level>().map_err(|_| {
        anyhow::anyhow!("--log.level: unknown level {level_text:?}; use error, warn, info, debug or trace")
    })?;
    let format_text = cli.log_format.or(file.log.format).unwrap_or_else(|| "logfmt".into());
    let log_format = LogFormat::parse(&format_text)
        .ok_or_else(|| anyhow::anyhow!("--log.format: unknown format {format_text:?}; use logfmt or json"))?;

    let rootfs = cli.rootfs.or(file.paths.rootfs);
    let base = rootfs.as_deref().map(FsRoots::under).unwrap_or_default();
    let roots = FsRoots {
        procfs: cli.procfs.or(file.paths.procfs).unwrap_or(base.procfs),
        sysfs: cli.sysfs.or(file.paths.sysfs).unwrap_or(base.sysfs),
        cgroupfs: cli.cgroupfs.or(file.paths.cgroupfs).unwrap_or(base.cgroupfs),
    };

    let enabled = registry::SIGNALS
        .iter()
        .filter(|s| s.roles.collector)
        .filter(|s| {
            if matches.get_flag(&format!("collector.{}", s.id)) {
                true
            } else if matches.get_flag(&format!("no-collector.{}", s.id)) {
                false
            } else {
                file.collectors.enabled(s.id).unwrap_or(s.enabled_by_default)
            }
        })
        .map(|s| s.id)
        .collect();

    let pf = file.collectors.process.unwrap_or_default();
    let group_by_text = cli.process_group_by.or(pf.group_by).unwrap_or_else(|| "comm".into());
    let group_by = process::GroupBy::parse(&group_by_text).ok_or_else(|| {
        anyhow::anyhow!("--collector.process.group-by: unknown mode {group_by_text:?}; use comm, cgroup or pid")
    })?;
    let selection = process::Selection {
        include_comm: regex("collector.process.include-comm", cli.process_include_comm.or(pf.include_comm))?,
        exclude_comm: regex("collector.process.exclude-comm", cli.process_exclude_comm.or(pf.exclude_comm))?,
        include_cmdline: regex(
            "collector.process.include-cmdline",
            cli.process_include_cmdline.or(pf.include_cmdline),
        )?,
        exclude_cmdline: regex(
            "collector.process.exclude-cmdline",
            cli.process_exclude_cmdline.or(pf.exclude_cmdline),
        )?,
        include_cgroup: regex("collector.process.include-cgroup", cli.process_include_cgroup.or(pf.include_cgroup))?,
        exclude_cgroup: regex("collector.process.exclude-cgroup", cli.process_exclude_cgroup.or(pf.exclude_cgroup))?,
        kernel_threads: cli.process_kernel_threads.or(pf.kernel_threads).unwrap_or(false),
    };
    let defaults = process::Config::default();
    let process = process::Config {
        group_by,
        selection,
        max_groups: positive(
            "collector.process.max-groups",
            cli.process_max_groups.or(pf.max_groups),
            defaults.max_groups,
        )?,
        detail_interval: cli.process_detail_interval.or(pf.detail_interval).unwrap_or(defaults.detail_interval),
        pss: cli.process_pss.or(pf.pss).unwrap_or(defaults.pss),
    };

    let cf = file.collectors.cgroup.unwrap_or_default();
    let defaults = cgroup::Config::default();
    let cgroup = cgroup::Config {
        include: regex("collector.cgroup.include", cli.cgroup_include.or(cf.include))?,
        exclude: regex("collector.cgroup.exclude", cli.cgroup_exclude.or(cf.exclude))?,
        max_depth: cli.cgroup_max_depth.or(cf.max_depth).unwrap_or(defaults.max_depth),
        max_cgroups: positive(
            "collector.cgroup.max-cgroups",
            cli.cgroup_max_cgroups.or(cf.max_cgroups),
            defaults.max_cgroups,
        )?,
    };

    let pf = file.collectors.pmc.unwrap_or_default();
    let pmc_defaults = memleak_signals::pmc::Config::default();
    let pmc = memleak_signals::pmc::Config {
        include: None,
        max_cgroups: positive(
            "collector.pmc.max-cgroups",
            cli.pmc_max_cgroups.or(pf.max_cgroups),
            pmc_defaults.max_cgroups,
        )?,
        max_depth: cli.pmc_max_depth.or(pf.max_depth).unwrap_or(pmc_defaults.max_depth),
        process_include: regex("collector.pmc.process-include", cli.pmc_process_include.or(pf.process_include))?,
        max_processes: positive(
            "collector.pmc.max-processes",
            cli.pmc_max_processes.or(pf.max_processes),
            pmc_defaults.max_processes,
        )?,
    };

    let page_faults_file = file.collectors.page_faults.unwrap_or_default();
    let page_faults_period = match cli.page_faults_period.or(page_faults_file.period) {
        Some(0) => bail!("--collector.page_faults.period must be at least 1"),
        Some(p) if p > MAX_FAULT_PERIOD => bail!("--collector.page_faults.period must be at most {MAX_FAULT_PERIOD}"),
        Some(p) => p,
        None => 1000,
    };
    let page_faults = memleak_bpf::FaultConfig {
        mode: cli.page_faults_mode.or(page_faults_file.mode).unwrap_or(FaultModeArg::Sampled).into(),
        period: page_faults_period,
        max_cgroups: positive(
            "collector.page_faults.max-cgroups",
            cli.page_faults_max_cgroups.or(page_faults_file.max_cgroups),
            64,
        )?,
        every_fault_window: match cli.page_faults_every_fault_window.or(page_faults_file.every_fault_window) {
            Some(Duration::ZERO) => None,
            Some(window) => Some(window),
            None => Some(Duration::from_secs(600)),
        },
    };
    let memory_syscalls_max_cgroups = positive(
        "collector.memory_syscalls.max-cgroups",
        cli.memory_syscalls_max_cgroups.or(file.collectors.memory_syscalls.and_then(|m| m.max_cgroups)),
        64,
    )?;

    Ok(Settings {
        command: cli.command,
        check_only: cli.config_check,
        listen,
        scrape_timeout,
        webhook_token_file,
        webhook_max_body_bytes,
        watch,
        log_level,
        log_format,
        roots,
        enabled,
        process,
        cgroup,
        pmc,
        page_faults,
        memory_syscalls_max_cgroups,
    })
}

/// A sample's weight travels as 32 bits from the BPF program.
const MAX_FAULT_PERIOD: u64 = 1_000_000_000;

fn regex(flag: &str, pattern: Option<String>) -> anyhow::Result<Option<Regex>> {
    pattern
        .map(|p| process::full_match(&p).map_err(|e| anyhow::anyhow!("--{flag}: invalid regex {p:?}: {e}")))
        .transpose()
}

fn positive(flag: &str, value: Option<usize>, default: usize) -> anyhow::Result<usize> {
    match value {
        Some(0) => bail!("--{flag} must be at least 1"),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

/// `:9487` means every interface; anything else is `host:port`.
pub fn parse_listen(text: &str) -> anyhow::Result<SocketAddr> {
    let full = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_owned() };
    full.to_socket_addrs()
        .map_err(|e| {
            anyhow::anyhow!("--web.listen-address {text:?}: {e}; use HOST:PORT such as :9487 or 127.0.0.1:9487")
        })?
        .next()
        .ok_or_else(|| anyhow::anyhow!("--web.listen-address {text:?}: resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> anyhow::Result<Settings> {
        let mut argv = vec!["memleak-exporter"];
        argv.extend_from_slice(args);
        settings_from(&command().try_get_matches_from(argv)?)
    }

    #[test]
    fn defaults_are_sane() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.listen, "0.0.0.0:9487".parse().unwrap());
        assert_eq!(s.enabled, ["psi", "host_memory", "process", "cgroup"]);
        assert_eq!(s.roots, FsRoots::default());
        assert_eq!(s.process.group_by, process::GroupBy::Comm);
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yml");
        std::fs::write(&path, "web:\n  listen_address: 127.0.0.1:1111\ncollectors:\n  psi:\n    enabled: false\n  process:\n    max_groups: 7\n").unwrap();
        let p = path.to_str().unwrap();
        let s = settings(&["--config.file", p, "--web.listen-address", "127.0.0.1:2222"]).unwrap();
        assert_eq!(s.listen.port(), 2222);
        assert_eq!(s.process.max_groups, 7);
        assert!(!s.enabled.contains(&"psi"));
        let s = settings(&["--config.file", p, "--collector.psi"]).unwrap();
        assert!(s.enabled.contains(&"psi"));
    }

    #[test]
    fn rootfs_moves_every_path() {
        let s = settings(&["--path.rootfs", "/host", "--path.cgroupfs", "/cg"]).unwrap();
        assert_eq!(s.roots.procfs, PathBuf::from("/host/proc"));
        assert_eq!(s.roots.sysfs, PathBuf::from("/host/sys"));
        assert_eq!(s.roots.cgroupfs, PathBuf::from("/cg"));
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, needle) in [
            (&["--collector.process.group-by", "user"][..], "group-by"),
            (&["--collector.process.include-comm", "("][..], "include-comm"),
            (&["--collector.process.max-groups", "0"][..], "max-groups"),
            (&["--log.level", "loud"][..], "log.level"),
            (&["--web.listen-address", "nowhere"][..], "listen-address"),
        ] {
            let err = format!("{:#}", settings(args).unwrap_err());
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        assert!(settings(&["--collector.psi", "--no-collector.psi"]).is_err());
    }
}
