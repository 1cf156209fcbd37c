//! The exporter's options: one struct per group of knobs, at once its
//! command-line flags and its YAML section, declared once (`web`, `webhook`,
//! `capture`, `alertmanager`, `ingest`, `log`, `paths` here; each collector's beside its code), and the
//! generic machinery that puts a group on the command line, reads it back,
//! lays it over the file's section and resolves it.
//!
//! A group's flags are `--<prefix>.<field in kebab case>`: the options struct
//! names its fields, this module adds the prefix (so `group_by` of the process
//! collector is `--collector.process.group-by` and `collectors.process.group_by`).
//! clap needs globally unique argument ids, so each argument is added to the
//! main command under its full flag name, and the group is read back by
//! parsing what the user gave for it with the struct's own derived parser.

pub mod alertmanager;
pub mod capture;
pub mod ingest;
pub mod log;
pub mod otlp;
pub mod paths;
pub mod web;
pub mod webhook;

use crate::config_file::ConfigFile;
use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};
use memleak_signals::{OptionError, Options};
use serde_json::Value;
use std::ffi::OsString;

/// Where one options struct lives: its flags' prefix, its `--help` heading, its YAML section.
#[derive(Debug, Clone)]
pub struct Group {
    /// `web`, `collector.process`: flags are `--<prefix>.<key>`.
    pub prefix: String,
    pub heading: String,
    /// `["web"]`, `["collectors", "process"]`.
    pub section: Vec<&'static str>,
}

/// A group resolved: its settings, and the options the user gave, in their words.
#[derive(Debug)]
pub struct Settled<C> {
    pub config: C,
    pub given: String,
}

/// Adds the arguments of `O` to `cmd` under `group`'s prefix and heading.
/// A boolean option is a switch, as in Prometheus' exporters: `--flag` turns
/// it on, `--no-flag` off (`--flag=false` works too).
pub fn augment<O: Options>(cmd: Command, group: &Group) -> Command {
    let own = O::augment_args(Command::new("group"));
    let mut cmd = cmd;
    for arg in own.get_arguments() {
        let flag = flag(group, long_of(arg));
        // The order the group's own command gave it is reset, so the group is listed where it is added.
        let mut arg =
            arg.clone().id(flag.clone()).long(flag.clone()).help_heading(group.heading.clone()).display_order(None);
        if is_switch(&arg) {
            let off = format!("no-{flag}");
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            // `=` only: a switch never takes the next word (a subcommand, a file) as its value.
            arg = arg
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .help(format!("{help}; --{off} turns it off"));
            cmd = cmd.arg(
                clap::Arg::new(off.clone()).long(off).action(clap::ArgAction::SetTrue).conflicts_with(flag).hide(true),
            );
        }
        cmd = cmd.arg(arg);
    }
    cmd
}

/// A boolean option: its values are exactly `true` and `false`.
fn is_switch(arg: &clap::Arg) -> bool {
    let values: Vec<String> = arg.get_possible_values().iter().map(|v| v.get_name().to_owned()).collect();
    values == ["true", "false"]
}

/// The group's options as given on the command line (unset fields: not given there).
pub fn from_command_line<O: Options>(matches: &ArgMatches, group: &Group) -> anyhow::Result<O> {
    let own = O::augment_args(Command::new(group.prefix.clone()).no_binary_name(true));
    let mut argv: Vec<OsString> = Vec::new();
    for arg in own.get_arguments() {
        let long = long_of(arg);
        let global = flag(group, long);
        if is_switch(arg) && matches.try_get_one::<bool>(&format!("no-{global}")).ok().flatten() == Some(&true) {
            argv.push(OsString::from(format!("--{long}=false")));
            continue;
        }
        if matches.value_source(&global) != Some(ValueSource::CommandLine) {
            continue;
        }
        for value in matches.get_raw(&global).into_iter().flatten() {
            // `--key=value`: a value that starts with `-` stays a value.
            let mut word = OsString::from(format!("--{long}="));
            word.push(value);
            argv.push(word);
        }
    }
    let parsed = own.try_get_matches_from(argv).with_context(|| format!("reading the --{}.* flags", group.prefix))?;
    O::from_arg_matches(&parsed).with_context(|| format!("reading the --{}.* flags", group.prefix))
}

/// Reads the group from the command line and the file, the command line winning key by key, and resolves it.
pub fn settle<O: Options>(
    matches: &ArgMatches,
    file: &ConfigFile,
    group: &Group,
) -> anyhow::Result<Settled<O::Config>> {
    let on_file = file.section::<O>(&group.section)?;
    settle_given(from_command_line::<O>(matches, group)?, on_file, group)
}

/// `settle` from the two sources already read.
pub fn settle_given<O: Options>(command_line: O, file: Option<O>, group: &Group) -> anyhow::Result<Settled<O::Config>> {
    let options = match file {
        Some(file) => {
            overlay(command_line, file).with_context(|| format!("merging --{}.* over the file", group.prefix))?
        }
        None => command_line,
    };
    let given = in_words(&options);
    let config = options.resolve().map_err(|e| named::<O>(group, e))?;
    Ok(Settled { config, given })
}

/// The file's options with every field the command line sets replaced by the command line's.
fn overlay<O: Options>(command_line: O, file: O) -> Result<O, serde_json::Error> {
    let mut merged = serde_json::to_value(file)?;
    if let (Value::Object(base), Value::Object(over)) = (&mut merged, serde_json::to_value(command_line)?) {
        base.extend(over.into_iter().filter(|(_, v)| is_set(v)));
    }
    serde_json::from_value(merged)
}

/// Unset options serialize as null (an `Option`) or `[]` (a list).
fn is_set(value: &Value) -> bool {
    !(value.is_null() || value.as_array().is_some_and(Vec::is_empty))
}

/// `group_by=cgroup max_groups=7`: the set options as the user wrote them, by key, without
/// secrets: URLs lose their user and password, `headers` their values.
fn in_words<O: Options>(options: &O) -> String {
    let Ok(Value::Object(fields)) = serde_json::to_value(options) else { return String::new() };
    let mut words: Vec<String> = fields
        .iter()
        .filter(|(_, v)| is_set(v))
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={}", otlp::redacted_url(s)),
            Value::Array(items) if k == "headers" => {
                let names: Vec<String> = items
                    .iter()
                    .map(|i| {
                        let name = i.as_str().and_then(|h| h.split_once('=')).map_or("", |(name, _)| name.trim());
                        format!("{name}=<redacted>")
                    })
                    .collect();
                format!("{k}={}", names.join(","))
            }
            Value::Array(items) => {
                let items: Vec<String> =
                    items.iter().map(|i| i.as_str().map_or_else(|| flow(i), str::to_owned)).collect();
                format!("{k}={}", items.join(","))
            }
            other => format!("{k}={}", flow(other)),
        })
        .collect();
    words.sort();
    words.join(" ")
}

/// `value` as the config file would say it, in YAML's flow style (`{name: "x", cmdline: "y"}`):
/// what the user wrote, not serde's JSON.
fn flow(value: &Value) -> String {
    match value {
        Value::Object(fields) => {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {}", flow(v))).collect();
            format!("{{{}}}", fields.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(flow).collect::<Vec<_>>().join(", ")),
        // JSON's string quoting is YAML's double-quoted style.
        other => other.to_string(),
    }
}

/// A resolve error naming the flag and the YAML key of the field.
fn named<O: Options>(group: &Group, err: OptionError) -> anyhow::Error {
    if err.key == OptionError::ENVIRONMENT {
        return anyhow::anyhow!("environment: {}", err.message);
    }
    let own = O::augment_args(Command::new("group"));
    let long = own.get_arguments().find(|a| a.get_id() == err.key).map_or(err.key, long_of);
    anyhow::anyhow!(
        "--{} ({}.{} in the config file): {}",
        flag(group, long),
        group.section.join("."),
        err.key,
        err.message
    )
}

/// An option's flag within its group: its `long`, or its id when it has none.
fn long_of(arg: &clap::Arg) -> &str {
    arg.get_long().unwrap_or(arg.get_id().as_str())
}

fn flag(group: &Group, long: &str) -> String {
    format!("{}.{long}", group.prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::path::PathBuf;

    /// A group of every shape of option.
    #[derive(Debug, Default, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        /// A count.
        #[arg(long)]
        max_things: Option<usize>,
        /// A pattern.
        #[arg(long)]
        include: Option<String>,
        /// Folders (repeatable).
        #[arg(long = "dir")]
        #[serde(default)]
        dirs: Vec<PathBuf>,
    }

    impl Options for Sample {
        type Config = Sample;

        fn resolve(self) -> Result<Sample, OptionError> {
            match self.max_things {
                Some(0) => Err(OptionError::new("max_things", "must be at least 1")),
                _ => Ok(self),
            }
        }
    }

    fn group() -> Group {
        Group { prefix: "thing".into(), heading: "Thing".into(), section: vec!["things", "thing"] }
    }

    fn settle_from(args: &[&str], yaml: &str) -> anyhow::Result<Settled<Sample>> {
        let cmd = augment::<Sample>(Command::new("t").no_binary_name(true), &group());
        let matches = cmd.try_get_matches_from(args)?;
        settle::<Sample>(&matches, &ConfigFile::from_text(yaml), &group())
    }

    #[test]
    fn the_summary_shows_no_password_and_no_header_value() {
        let given = in_words(&otlp::Options {
            endpoint: Some("http://u:pw@host:4317".into()),
            headers: vec!["authorization=Bearer s3cr3t".into(), "tenant=a".into()],
            ..otlp::Options::default()
        });
        assert_eq!(given, "endpoint=http://host:4317 headers=authorization=<redacted>,tenant=<redacted>");
    }

    #[test]
    fn flags_take_the_prefix_and_the_heading() {
        let cmd = augment::<Sample>(Command::new("t"), &group());
        let longs: Vec<_> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
        assert_eq!(longs, ["thing.max-things", "thing.include", "thing.dir"]);
        assert!(cmd.get_arguments().all(|a| a.get_help_heading() == Some("Thing")));
    }

    #[test]
    fn the_command_line_wins_key_by_key_over_the_file() {
        let yaml = "things:\n  thing:\n    max_things: 3\n    include: a\n    dirs: [/f]\n";
        let s = settle_from(&["--thing.include=-b", "--thing.dir", "/x", "--thing.dir", "/y"], yaml).unwrap();
        let dirs = vec![PathBuf::from("/x"), PathBuf::from("/y")];
        assert_eq!(s.config, Sample { max_things: Some(3), include: Some("-b".into()), dirs: dirs.clone() });
        assert_eq!(s.given, "dirs=/x,/y include=-b max_things=3");
        let s = settle_from(&[], yaml).unwrap();
        assert_eq!(s.config.dirs, [PathBuf::from("/f")]);
        assert_eq!(settle_from(&[], "").unwrap().config, Sample::default());
    }

    #[test]
    fn errors_name_the_flag_and_the_key() {
        let err = format!("{:#}", settle_from(&["--thing.max-things", "0"], "").unwrap_err());
        assert_eq!(err, "--thing.max-things (things.thing.max_things in the config file): must be at least 1");
        let err = format!("{:#}", settle_from(&[], "things:\n  thing:\n    colour: red\n").unwrap_err());
        assert!(err.contains("unknown field `colour`") && err.contains("line 3"), "{err}");
    }
}
