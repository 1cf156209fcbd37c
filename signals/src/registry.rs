//! The explicit list of scrape-time signal technologies (collectors). Artifact
//! parsers have theirs in `artifact::detect::FORMATS`.
//!
//! Adding a collector: its module, one line in `SIGNALS`, its fixtures, and its
//! construction in the exporter's `collectors.rs`. Adding a parser: its module,
//! one line in `FORMATS`, its fixtures.

use crate::model::MetricSpec;

/// Which roles a technology plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub collector: bool,
    pub parser: bool,
    pub capture: bool,
}

impl Roles {
    pub const COLLECTOR: Roles = Roles { collector: true, parser: false, capture: false };
}

/// The static description of one technology.
#[derive(Debug)]
pub struct SignalSpec {
    /// Module name, config key, `collector` label value and fixture folder name.
    pub id: &'static str,
    pub description: &'static str,
    pub roles: Roles,
    /// Whether its collector runs without `--collector.<id>`.
    pub enabled_by_default: bool,
    pub metrics: &'static [&'static MetricSpec],
}

/// Every technology, in the order their metrics appear on `/metrics`.
pub static SIGNALS: &[&SignalSpec] = &[
    &crate::psi::SIGNAL,
    &crate::host_memory::SIGNAL,
    &crate::process::SIGNAL,
    &crate::cgroup::SIGNAL,
    &crate::pmc::SIGNAL,
    &crate::page_faults::SIGNAL,
    &crate::memory_syscalls::SIGNAL,
];

/// Looks a technology up by id.
pub fn signal(id: &str) -> Option<&'static SignalSpec> {
    SIGNALS.iter().copied().find(|s| s.id == id)
}

/// Every metric spec of every technology.
pub fn all_metric_specs() -> impl Iterator<Item = (&'static SignalSpec, &'static MetricSpec)> {
    SIGNALS.iter().flat_map(|s| s.metrics.iter().map(move |m| (*s, *m)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MetricType;
    use std::collections::HashSet;

    const UNITS: &[&str] = &["bytes", "seconds", "ratio"];
    const UNITLESS_QUANTITIES: &[&str] =
        &["count", "processes", "threads", "mappings", "cgroups", "success", "groups", "supported"];

    #[test]
    fn metric_names_follow_the_conventions() {
        let mut seen = HashSet::new();
        for (signal, spec) in all_metric_specs() {
            assert!(seen.insert(spec.name), "{} declared twice", spec.name);
            let prefix = format!("memleak_{}_", signal.id);
            assert!(spec.name.starts_with(&prefix), "{} must start with {prefix}", spec.name);
            assert!(
                spec.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{} has characters outside [a-z0-9_]",
                spec.name
            );
            let suffix = spec.name.rsplit('_').next().unwrap_or_default();
            match spec.kind {
                MetricType::Counter => {
                    assert_eq!(suffix, "total", "counter {} must end in _total", spec.name)
                }
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
            assert!(spec.help.ends_with('.'), "help of {} must be a sentence", spec.name);
            for label in spec.labels {
                assert!(!label.starts_with("__") && !label.is_empty(), "bad label {label} on {}", spec.name);
            }
        }
    }

    #[test]
    fn signal_ids_are_unique_and_found() {
        let ids: HashSet<_> = SIGNALS.iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), SIGNALS.len());
        for s in SIGNALS {
            assert_eq!(signal(s.id).map(|f| f.id), Some(s.id));
        }
    }
}
