//! The collector table: one line per collector, from which the command line
//! (`--collector.<id>`, `--no-collector.<id>` and the collector's options),
//! `--help`, the YAML `collectors.<id>` sections and their `enabled` keys, the
//! landing page, the README's metric table and the naming test are derived.
//!
//! Adding a collector: its module (spec, metrics, `Options`, `Configurable`)
//! and one line below.

mod entry;
mod toggle;

pub use entry::{Configured, Entry, group};

use crate::config_file::ConfigFile;
use clap::ArgMatches;
use memleak_signals::Configurable;

use entry::line;
use memleak_bpf::{MemorySyscallsCollector, PageFaultsCollector};
use memleak_signals::cgroup::CgroupCollector;
use memleak_signals::host_memory::HostMemoryCollector;
use memleak_signals::pmc::PmcCollector;
use memleak_signals::process::ProcessCollector;
use memleak_signals::psi::PsiCollector;
use memleak_signals::{Collector, FsRoots, MetricSpec, ServedProfile};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The id of `--collector.disable-defaults`: no collector is on unless asked for.
pub const DISABLE_DEFAULTS: &str = "collector.disable-defaults";

/// Every collector, in the order their metrics appear on `/metrics`.
pub static COLLECTORS: &[&dyn Entry] = &[
    &line::<PsiCollector>(),
    &line::<HostMemoryCollector>(),
    &line::<ProcessCollector>(),
    &line::<CgroupCollector>(),
    &line::<PmcCollector>(),
    &line::<PageFaultsCollector>(),
    &line::<MemorySyscallsCollector>(),
];

/// The enabled collectors, and the profiles they serve.
pub struct Built {
    /// In table order.
    pub collectors: Vec<Box<dyn Collector>>,
    /// By collector id, for `/debug/pprof/<id>`.
    pub profiles: BTreeMap<&'static str, Arc<dyn ServedProfile>>,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.collectors.iter().map(|c| c.id()).collect();
        let profiles: Vec<&str> = self.profiles.keys().copied().collect();
        f.debug_struct("Built").field("collectors", &ids).field("profiles", &profiles).finish()
    }
}

/// The process collector's settings (enabled or not), for what else follows
/// the exporter's grouping: capture targets named by a `group` label.
pub fn process_settings(matches: &ArgMatches, file: &ConfigFile) -> anyhow::Result<memleak_signals::process::Config> {
    let group = group(<ProcessCollector as Configurable>::SPEC);
    let on_file =
        file.section::<toggle::Toggled<memleak_signals::process::Options>>(&group.section)?.map(|t| t.options);
    let command_line = crate::options::from_command_line::<memleak_signals::process::Options>(matches, &group)?;
    Ok(crate::options::settle_given(command_line, on_file, &group)?.config)
}

/// Builds the enabled collectors.
pub fn build(configured: Vec<Configured>, roots: &FsRoots) -> anyhow::Result<Built> {
    let mut built = Built { collectors: Vec::new(), profiles: BTreeMap::new() };
    for c in configured.into_iter().filter(|c| c.enabled) {
        let id = c.spec.id;
        let collector = c.build(roots).map_err(|e| anyhow::anyhow!("starting the {id} collector: {e}"))?;
        if let Some(profile) = collector.served_profile() {
            built.profiles.insert(id, profile);
        }
        built.collectors.push(collector);
    }
    Ok(built)
}

/// The id of the standard `process_*` self metrics, whose names are the ecosystem's, not ours.
pub const STANDARD_PROCESS: &str = "standard process";

/// Every metric family the exporter can serve, with the id its name starts
/// with (`memleak_<id>_`, or `STANDARD_PROCESS`): its own, the watched folders', then the table's.
pub fn metric_families() -> impl Iterator<Item = (&'static str, &'static MetricSpec)> {
    let own = crate::self_metrics::ALL.iter().map(|m| ("exporter", *m));
    let own = own.chain(crate::process_self::ALL.iter().map(|m| (STANDARD_PROCESS, *m)));
    let ingest = crate::watch::SPEC.metrics.iter().map(|m| (crate::watch::SPEC.id, *m));
    let table = COLLECTORS.iter().flat_map(|e| e.spec().metrics.iter().map(move |m| (e.spec().id, *m)));
    own.chain(ingest).chain(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use memleak_signals::MetricType;
    use std::collections::HashSet;

    const UNITS: &[&str] = &["bytes", "seconds", "ratio"];
    const UNITLESS_QUANTITIES: &[&str] = &[
        "count",
        "processes",
        "threads",
        "mappings",
        "cgroups",
        "success",
        "groups",
        "supported",
        "records",
        "usable",
    ];

    #[test]
    fn metric_names_follow_the_conventions() {
        let mut seen = HashSet::new();
        for (id, spec) in metric_families() {
            assert!(seen.insert(spec.name), "{} declared twice", spec.name);
            if id == STANDARD_PROCESS {
                // client_golang's process collector: its names, types and units, checked by promtool in e2e.
                assert!(spec.name.starts_with("process_"), "{}", spec.name);
                continue;
            }
            let prefix = format!("memleak_{id}_");
            assert!(spec.name.starts_with(&prefix), "{} must start with {prefix}", spec.name);
            assert!(
                spec.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{} has characters outside [a-z0-9_]",
                spec.name
            );
            let suffix = spec.name.rsplit('_').next().unwrap_or_default();
            match spec.kind {
                MetricType::Counter => assert_eq!(suffix, "total", "counter {} must end in _total", spec.name),
                MetricType::Info => assert_eq!(suffix, "info", "info metric {} must end in _info", spec.name),
                MetricType::Histogram => {
                    assert!(UNITS.contains(&suffix), "histogram {} must end in a base unit", spec.name)
                }
                MetricType::Gauge => assert!(
                    suffix != "total" && (UNITS.contains(&suffix) || UNITLESS_QUANTITIES.contains(&suffix)),
                    "gauge {} must end in a base unit or a known count word",
                    spec.name
                ),
            }
            assert!(spec.help.ends_with('.') || spec.help.ends_with(')'), "help of {} must be a sentence", spec.name);
            for label in spec.labels {
                assert!(!label.starts_with("__") && !label.is_empty(), "bad label {label} on {}", spec.name);
            }
        }
    }

    /// The folders under `crate_dir/src/` whose `mod.rs` declares a collector's `SPEC`, found by
    /// reading the sources: a module nobody declared in `lib.rs` is found too.
    fn collector_modules(crate_dir: &str) -> Vec<String> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(crate_dir).join("src");
        let mut found: Vec<String> = std::fs::read_dir(&src)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|dir| {
                std::fs::read_to_string(dir.join("mod.rs"))
                    .is_ok_and(|text| text.lines().any(|l| l.starts_with("pub static SPEC: CollectorSpec")))
            })
            .map(|dir| dir.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        found.sort();
        found
    }

    #[test]
    fn every_collector_module_has_its_table_line() {
        let ids: HashSet<&str> = COLLECTORS.iter().map(|e| e.spec().id).collect();
        let modules: Vec<String> = ["signals", "bpf"].iter().flat_map(|c| collector_modules(c)).collect();
        assert!(modules.len() >= 7, "the scan found the collector modules: {modules:?}");
        for module in &modules {
            assert!(
                ids.contains(module.as_str()),
                "the collector module {module} has no line in COLLECTORS (exporter/src/collectors/mod.rs), \
                 or its id differs from its folder's name"
            );
        }
        assert_eq!(modules.len(), ids.len(), "a table line without a module of its id: {ids:?} vs {modules:?}");
    }

    #[test]
    fn ids_are_unique_and_not_taken_by_the_exporter_or_the_watched_folders() {
        let ids: HashSet<&str> = COLLECTORS.iter().map(|e| e.spec().id).collect();
        assert_eq!(ids.len(), COLLECTORS.len());
        assert!(!ids.contains(crate::watch::SPEC.id) && !ids.contains("exporter"));
    }
}
