//! The exporter's metrics about itself (`memleak_exporter_*`), and the counters
//! that live between scrapes.

use memleak_signals::{MetricSet, MetricSpec};
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

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
    "Problems met by collectors, by collector and type (read, permission, parse, unsupported, timeout, panic).",
    &["collector", "type"],
);
pub static WEBHOOK_REQUESTS: MetricSpec = MetricSpec::counter(
    "memleak_exporter_webhook_requests_total",
    "Requests to the Alertmanager webhook (POST /api/v1/alerts), by HTTP status code.",
    &["code"],
);
pub static CAPTURE_REQUESTS: MetricSpec = MetricSpec::counter(
    "memleak_exporter_capture_requests_total",
    "Alerts accepted by the webhook, by capture kind and alert status (firing, resolved).",
    &["kind", "status"],
);

/// Every self metric, for the README table and the naming test (`collectors::metric_families`).
pub static ALL: &[&MetricSpec] =
    &[&BUILD_INFO, &COLLECTOR_DURATION, &COLLECTOR_SUCCESS, &ERRORS, &WEBHOOK_REQUESTS, &CAPTURE_REQUESTS];

/// Counters kept between scrapes. Label values come from fixed sets (collector
/// ids, problem kinds, status codes, capture kinds), so the map stays small.
#[derive(Debug, Default)]
pub struct Counters {
    values: Mutex<BTreeMap<(&'static str, Vec<String>), u64>>,
}

impl Counters {
    pub fn inc(&self, spec: &'static MetricSpec, labels: &[&str]) {
        let key = (spec.name, labels.iter().map(|l| (*l).to_owned()).collect());
        *self.values.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default() += 1;
    }

    /// Adds every counter of `spec` to `set`.
    pub fn emit(&self, spec: &'static MetricSpec, set: &mut MetricSet) {
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        for ((name, labels), value) in values.iter() {
            if *name == spec.name {
                let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
                set.push(spec, &labels, *value as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_by_labels() {
        let c = Counters::default();
        c.inc(&ERRORS, &["psi", "parse"]);
        c.inc(&ERRORS, &["psi", "parse"]);
        c.inc(&WEBHOOK_REQUESTS, &["202"]);
        let mut set = MetricSet::new();
        c.emit(&ERRORS, &mut set);
        assert_eq!(set.value("memleak_exporter_errors_total", &[("collector", "psi")]), Some(2.0));
        assert_eq!(set.value("memleak_exporter_webhook_requests_total", &[]), None);
    }
}
