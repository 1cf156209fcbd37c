//! The exporter's metrics about itself (`memleak_exporter_*`).

use memleak_signals::MetricSpec;

pub static BUILD_INFO: MetricSpec = MetricSpec::info(
    "memleak_exporter_build_info",
    "Always 1; labels carry the version and the allocator the exporter runs on.",
    &["version", "allocator"],
);
pub static COLLECTOR_DURATION: MetricSpec = MetricSpec::gauge(
    "memleak_exporter_collector_duration_seconds",
    "Time the collector took in this scrape.",
    &["collector"],
);
pub static COLLECTOR_SUCCESS: MetricSpec = MetricSpec::gauge(
    "memleak_exporter_collector_success",
    "1 when the collector met no problem in this scrape, 0 otherwise (see the log for what and how to fix it).",
    &["collector"],
);
pub static ERRORS: MetricSpec = MetricSpec::counter(
    "memleak_exporter_errors_total",
    "Problems met by collectors, by signal and type (read, permission, parse, unsupported, timeout).",
    &["signal", "type"],
);

/// Every self metric, for the README table and the naming test.
#[cfg_attr(not(test), allow(dead_code))]
pub static ALL: &[&MetricSpec] = &[&BUILD_INFO, &COLLECTOR_DURATION, &COLLECTOR_SUCCESS, &ERRORS];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        for spec in ALL {
            assert!(spec.name.starts_with("memleak_exporter_"), "{}", spec.name);
            let counter = spec.kind == memleak_signals::MetricType::Counter;
            assert_eq!(counter, spec.name.ends_with("_total"), "{}", spec.name);
            assert!(spec.help.ends_with('.') || spec.help.ends_with(')'), "{}", spec.name);
        }
    }
}
