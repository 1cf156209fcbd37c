//! One line of the collector table: a collector type, erased behind `Entry`
//! so the table is one static list, with everything derived from it: its
//! option group and on/off flags on the command line, its YAML section, and
//! its construction.

use super::toggle::Toggled;
use crate::config_file::ConfigFile;
use crate::options::{self, Group};
use clap::{Arg, ArgAction, ArgMatches, Command};
use memleak_signals::{Collector, CollectorSpec, Configurable, FsRoots};
use std::fmt;
use std::marker::PhantomData;

/// What the exporter does with a line of the table.
pub trait Entry: Sync {
    fn spec(&self) -> &'static CollectorSpec;

    /// Adds the collector's `--collector.<id>` / `--no-collector.<id>` flags and its options.
    fn augment(&self, cmd: Command) -> Command;

    /// Reads its options from the command line over the file, and whether it is enabled.
    fn configure(&self, matches: &ArgMatches, file: &ConfigFile) -> anyhow::Result<Configured>;
}

/// The line of the table for the collector `C`.
pub struct Line<C>(PhantomData<fn() -> C>);

/// `&line::<PsiCollector>()`: how the table names a collector.
pub const fn line<C: Configurable>() -> Line<C> {
    Line(PhantomData)
}

/// The flags, heading and YAML section of a collector's options.
pub fn group(spec: &CollectorSpec) -> Group {
    let state = if spec.enabled_by_default { "enabled by default" } else { "opt-in" };
    Group {
        prefix: format!("collector.{}", spec.id),
        heading: format!("Collector {} ({state})", spec.id),
        section: vec!["collectors", spec.id],
    }
}

impl<C: Configurable> Entry for Line<C> {
    fn spec(&self) -> &'static CollectorSpec {
        C::SPEC
    }

    fn augment(&self, cmd: Command) -> Command {
        let spec = C::SPEC;
        let group = group(spec);
        let (on, off) = (format!("collector.{}", spec.id), format!("no-collector.{}", spec.id));
        let cmd = cmd
            .arg(
                Arg::new(on.clone())
                    .long(on.clone())
                    .action(ArgAction::SetTrue)
                    .help(format!("Enable the {} collector: {}", spec.id, spec.about))
                    .help_heading(group.heading.clone()),
            )
            .arg(
                Arg::new(off.clone())
                    .long(off)
                    .action(ArgAction::SetTrue)
                    .conflicts_with(on)
                    .help(format!("Disable the {} collector", spec.id))
                    .help_heading(group.heading.clone()),
            );
        options::augment::<C::Options>(cmd, &group)
    }

    fn configure(&self, matches: &ArgMatches, file: &ConfigFile) -> anyhow::Result<Configured> {
        let spec = C::SPEC;
        let group = group(spec);
        let section = file.section::<Toggled<C::Options>>(&group.section)?;
        let (in_file, on_file) = match section {
            Some(Toggled { enabled, options }) => (enabled, Some(options)),
            None => (None, None),
        };
        let enabled = if matches.get_flag(&format!("collector.{}", spec.id)) {
            true
        } else if matches.get_flag(&format!("no-collector.{}", spec.id)) {
            false
        } else {
            let by_default = spec.enabled_by_default && !matches.get_flag(super::DISABLE_DEFAULTS);
            in_file.unwrap_or(by_default)
        };
        let command_line = options::from_command_line::<C::Options>(matches, &group)?;
        let settled = options::settle_given(command_line, on_file, &group)?;
        let config = settled.config;
        Ok(Configured {
            spec,
            enabled,
            given: settled.given,
            build: Box::new(move |roots| Ok(Box::new(C::build(roots, config)?) as Box<dyn Collector>)),
        })
    }
}

/// A collector's settings, validated; built only when enabled.
pub struct Configured {
    pub spec: &'static CollectorSpec,
    pub enabled: bool,
    /// The options the user gave (command line over file), in their words.
    pub given: String,
    build: Build,
}

/// Builds the collector from its resolved settings, which it holds.
type Build = Box<dyn FnOnce(&FsRoots) -> std::io::Result<Box<dyn Collector>> + Send>;

impl Configured {
    pub fn build(self, roots: &FsRoots) -> std::io::Result<Box<dyn Collector>> {
        (self.build)(roots)
    }
}

impl fmt::Debug for Configured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Configured")
            .field("id", &self.spec.id)
            .field("enabled", &self.enabled)
            .field("given", &self.given)
            .finish_non_exhaustive()
    }
}
