//! The command line, assembled at run time from the exporter's own option
//! groups and the collector table, and its reading (with the config file)
//! into `Settings`.
//!
//! Precedence: a flag on the command line, then the config file, then the
//! default named in `--help`.

use crate::collectors::{COLLECTORS, Configured};
use crate::config_file::ConfigFile;
use crate::options::{self, Group, alertmanager, capture, ingest, log, otlp, paths, web, webhook};
use anyhow::Context;
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use memleak_signals::{FsRoots, Options};
use std::path::PathBuf;

const AFTER_HELP: &str = "Every flag can also be set in the YAML file given by --config.file; see the README.";

/// Memory-leak signals for Prometheus: PSI, host, process and cgroup memory, and more.
#[derive(Debug, Parser)]
#[command(name = "memleak-exporter", version, about, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Subcommand>,

    /// YAML configuration file; flags given on the command line win over it.
    #[arg(long = "config.file", value_name = "PATH")]
    config_file: Option<PathBuf>,

    /// Validate the flags and the configuration file, print the result, and exit.
    #[arg(long = "config.check")]
    config_check: bool,

    /// Start with every collector off, also those enabled by default; enable each one wanted with
    /// --collector.<id> (or `enabled: true` in its config file section).
    #[arg(long = "collector.disable-defaults", id = crate::collectors::DISABLE_DEFAULTS)]
    disable_defaults: bool,
}

/// Subcommands besides serving metrics.
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    // Its help comes from the format table: see `ingest_about` and `ingest::formats_help`.
    Ingest(crate::ingest::Args),
}

/// One of the exporter's own option groups.
struct Own {
    prefix: &'static str,
    section: &'static str,
    heading: &'static str,
}

impl Own {
    fn group(&self) -> Group {
        Group { prefix: self.prefix.into(), heading: self.heading.into(), section: vec![self.section] }
    }
}

const WEB: Own = Own { prefix: "web", section: "web", heading: "HTTP server" };
const WEBHOOK: Own = Own { prefix: "webhook", section: "webhook", heading: "Alertmanager webhook" };
const CAPTURE: Own = Own { prefix: "capture", section: "capture", heading: "Captures" };
const ALERTMANAGER: Own = Own { prefix: "alertmanager", section: "alertmanager", heading: "Alertmanager poller" };
const INGEST: Own = Own { prefix: "ingest", section: "ingest", heading: "Watched folders" };
const LOG: Own = Own { prefix: "log", section: "log", heading: "Logging" };
const PATHS: Own = Own { prefix: "path", section: "paths", heading: "File systems" };
const OTLP: Own = Own { prefix: "otlp", section: "otlp", heading: "OTLP push (metrics, logs, profiles)" };

/// The top-level keys of the config file.
const SECTIONS: [&str; 9] = [
    WEB.section,
    WEBHOOK.section,
    CAPTURE.section,
    ALERTMANAGER.section,
    INGEST.section,
    LOG.section,
    PATHS.section,
    OTLP.section,
    "collectors",
];

/// Everything the exporter needs to serve, validated.
#[derive(Debug)]
pub struct Settings {
    pub web: web::Config,
    pub webhook: webhook::Config,
    pub capture: capture::Config,
    /// The Alertmanager peers to poll, when any.
    pub alertmanager: Option<alertmanager::Config>,
    /// The process collector's grouping, which capture targets follow.
    pub process: memleak_signals::process::Config,
    /// The watched folders, when any.
    pub ingest: Option<ingest::Config>,
    pub log: log::Config,
    pub roots: FsRoots,
    /// The OTLP push, when an endpoint is set.
    pub otlp: Option<otlp::Config>,
    /// Every line of the collector table, configured; in table order.
    pub collectors: Vec<Configured>,
    /// (section, the options given there in the user's words) of the exporter's own groups.
    given: Vec<(String, String)>,
}

impl Settings {
    /// Ids of the enabled collectors, in table order.
    pub fn enabled(&self) -> Vec<&'static str> {
        self.collectors.iter().filter(|c| c.enabled).map(|c| c.spec.id).collect()
    }

    /// What will run, and every option given, in the user's words (for `--config.check`).
    pub fn summary(&self) -> String {
        let mut text = format!(
            "listen={} collectors={} procfs={} sysfs={} cgroupfs={}",
            self.web.listen,
            self.enabled().join(","),
            self.roots.procfs.display(),
            self.roots.sysfs.display(),
            self.roots.cgroupfs.display(),
        );
        let collectors = self.collectors.iter().map(|c| (format!("collectors.{}", c.spec.id), c.given.clone()));
        for (section, given) in self.given.iter().cloned().chain(collectors).filter(|(_, given)| !given.is_empty()) {
            text.push_str(&format!("\n{section}: {given}"));
        }
        text
    }
}

/// What the user asked for.
#[derive(Debug)]
pub struct Invocation {
    /// A subcommand to run instead of the server.
    pub command: Option<Subcommand>,
    pub check_only: bool,
    pub settings: Settings,
}

/// The whole command: the exporter's flags, its option groups, and the collector table's.
pub fn command() -> Command {
    let cmd = Cli::command()
        .next_line_help(true)
        .mut_subcommand("ingest", |ingest| ingest.about(ingest_about()).after_help(crate::ingest::formats_help()));
    let cmd = options::augment::<web::Options>(cmd, &WEB.group());
    let cmd = options::augment::<webhook::Options>(cmd, &WEBHOOK.group());
    let cmd = options::augment::<capture::Options>(cmd, &CAPTURE.group());
    let cmd = options::augment::<alertmanager::Options>(cmd, &ALERTMANAGER.group());
    let cmd = options::augment::<ingest::Options>(cmd, &INGEST.group());
    let cmd = options::augment::<log::Options>(cmd, &LOG.group());
    let cmd = options::augment::<paths::Options>(cmd, &PATHS.group());
    let cmd = options::augment::<otlp::Options>(cmd, &OTLP.group());
    COLLECTORS.iter().fold(cmd, |cmd, entry| entry.augment(cmd))
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

/// Parses the process's arguments (exiting with clap's message when they do not parse).
pub fn parse() -> anyhow::Result<Invocation> {
    let matches = command().try_get_matches().unwrap_or_else(|e| e.exit());
    invocation_from(&matches)
}

/// Builds the invocation from parsed arguments (and the config file they name).
pub fn invocation_from(matches: &ArgMatches) -> anyhow::Result<Invocation> {
    let cli = Cli::from_arg_matches(matches).context("parsing flags")?;
    let file = match &cli.config_file {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let ids: Vec<&str> = COLLECTORS.iter().map(|e| e.spec().id).collect();
    file.check_keys(&SECTIONS, &ids)?;
    let mut given = Vec::new();
    let web = settle_own::<web::Options>(matches, &file, &WEB, &mut given)?;
    let webhook = settle_own::<webhook::Options>(matches, &file, &WEBHOOK, &mut given)?;
    let capture = settle_own::<capture::Options>(matches, &file, &CAPTURE, &mut given)?;
    let alertmanager = settle_own::<alertmanager::Options>(matches, &file, &ALERTMANAGER, &mut given)?;
    let process = crate::collectors::process_settings(matches, &file)?;
    let ingest = settle_own::<ingest::Options>(matches, &file, &INGEST, &mut given)?;
    let log = settle_own::<log::Options>(matches, &file, &LOG, &mut given)?;
    let roots = settle_own::<paths::Options>(matches, &file, &PATHS, &mut given)?;
    let otlp = settle_own::<otlp::Options>(matches, &file, &OTLP, &mut given)?;
    let collectors = COLLECTORS.iter().map(|e| e.configure(matches, &file)).collect::<anyhow::Result<Vec<_>>>()?;
    let settings =
        Settings { web, webhook, capture, alertmanager, process, ingest, log, roots, otlp, collectors, given };
    Ok(Invocation { command: cli.command, check_only: cli.config_check, settings })
}

/// One of the exporter's own groups, settled; what the user gave is noted in `given`.
fn settle_own<O: Options>(
    matches: &ArgMatches,
    file: &ConfigFile,
    own: &Own,
    given: &mut Vec<(String, String)>,
) -> anyhow::Result<O::Config> {
    let settled = options::settle::<O>(matches, file, &own.group())?;
    given.push((own.section.to_owned(), settled.given));
    Ok(settled.config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> anyhow::Result<Settings> {
        let mut argv = vec!["memleak-exporter"];
        argv.extend_from_slice(args);
        Ok(invocation_from(&command().try_get_matches_from(argv)?)?.settings)
    }

    fn given<'a>(s: &'a Settings, id: &str) -> &'a str {
        s.collectors.iter().find(|c| c.spec.id == id).map_or("", |c| c.given.as_str())
    }

    #[test]
    fn defaults_are_sane() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.web.listen, "0.0.0.0:9487".parse().unwrap());
        assert_eq!(s.enabled(), ["psi", "host_memory", "process", "cgroup"]);
        assert_eq!(s.roots, FsRoots::default());
        assert_eq!(s.log.level, tracing::Level::INFO);
        assert!(s.ingest.is_none());
        assert_eq!(s.summary().lines().count(), 1, "nothing given: {}", s.summary());
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yml");
        let yaml = "web:\n  listen_address: 127.0.0.1:1111\ncollectors:\n  psi:\n    enabled: false\n  process:\n    max_groups: 7\n    group_by: pid\n";
        std::fs::write(&path, yaml).unwrap();
        let p = path.to_str().unwrap();
        let s = settings(&["--config.file", p, "--web.listen-address", "127.0.0.1:2222"]).unwrap();
        assert_eq!(s.web.listen.port(), 2222);
        assert_eq!(given(&s, "process"), "group_by=pid max_groups=7");
        assert!(!s.enabled().contains(&"psi"));
        let s = settings(&["--config.file", p, "--collector.psi", "--collector.process.group-by", "cgroup"]).unwrap();
        assert!(s.enabled().contains(&"psi"));
        assert_eq!(given(&s, "process"), "group_by=cgroup max_groups=7");
        assert!(s.summary().contains("\ncollectors.process: group_by=cgroup max_groups=7"), "{}", s.summary());
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
            (&["--collector.process.group-by", "user"][..], "--collector.process.group-by"),
            (&["--collector.process.include-comm", "(java"][..], "--collector.process.include-comm"),
            (&["--collector.process.max-groups", "0"][..], "--collector.process.max-groups"),
            (&["--collector.page_faults.period", "0"][..], "--collector.page_faults.period"),
            (&["--ingest.dir", "/d", "--ingest.keep", "0"][..], "--ingest.keep"),
            (&["--log.level", "loud"][..], "--log.level"),
            (&["--web.listen-address", "nowhere"][..], "--web.listen-address"),
        ] {
            let err = format!("{:#}", settings(args).unwrap_err());
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        let err = format!("{:#}", settings(&["--collector.process.include-comm", "(java"]).unwrap_err());
        assert!(err.contains("\"(java\"") && !err.contains("^(?:"), "the user's own regex: {err}");
        assert!(settings(&["--collector.psi", "--no-collector.psi"]).is_err());
    }

    #[test]
    fn help_is_grouped_by_collector_and_the_command_passes_clap_checks() {
        let cmd = command();
        cmd.clone().debug_assert();
        let help = cmd.term_width(200).render_help().to_string();
        let at = |needle: &str| help.find(needle).unwrap_or_else(|| panic!("--help lacks {needle}"));
        let process = at("Collector process (enabled by default):");
        let cgroup = at("Collector cgroup (enabled by default):");
        assert!(process < at("--collector.process.group-by") && at("--collector.process.group-by") < cgroup);
        assert!(process < at("--no-collector.process\n") && at("--no-collector.process\n") < cgroup);
        assert!(at("Collector pmc (opt-in):") < at("--collector.pmc.max-cgroups"));
        assert!(at("HTTP server:") < at("--web.listen-address"));
    }
}
