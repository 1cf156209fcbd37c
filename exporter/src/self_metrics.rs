//! The exporter's metrics about itself (`memleak_exporter_*`), and the counters
//! that live between scrapes.

use memleak_signals::model::HistogramValue;
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
    "Valid capture requests received (webhook or Alertmanager polling), by capture kind (unknown: not in the table) and alert status (firing, resolved).",
    &["kind", "status"],
);

pub static CAPTURES: MetricSpec = MetricSpec::counter(
    "memleak_exporter_captures_total",
    "Captures finished, by kind and outcome (done, partial, failed, cancelled), and alerts whose target offered nothing to capture (unavailable).",
    &["kind", "outcome"],
);
pub static CAPTURE_REJECTIONS: MetricSpec = MetricSpec::counter(
    "memleak_exporter_capture_rejections_total",
    "Alerts that started no capture, by kind and reason (duplicate, not_this_host, no_such_target, invalid, unknown_kind, concurrency, cooldown, busy, rate, spool).",
    &["kind", "reason"],
);
pub static CAPTURE_DURATION: MetricSpec = MetricSpec::histogram(
    "memleak_exporter_capture_duration_seconds",
    "How long finished captures ran, by kind.",
    &["kind"],
);
/// Upper bounds of `CAPTURE_DURATION`'s buckets.
pub const CAPTURE_DURATION_BOUNDS: &[f64] = &[1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];
pub static OTLP_SENT: MetricSpec = MetricSpec::counter(
    "memleak_exporter_otlp_sent_total",
    "Items the OTLP receiver accepted, by signal (metrics: data points, logs: records, profiles: profiles).",
    &["signal"],
);
pub static OTLP_DROPPED: MetricSpec = MetricSpec::counter(
    "memleak_exporter_otlp_dropped_total",
    "Items not delivered over OTLP, by signal and reason (queue_full: the receiver was slow or down and the \
     queue was full; rejected: a non-retryable answer; retries_exhausted: retryable failures for too long; \
     limit: past the bound on one export).",
    &["signal", "reason"],
);
pub static HTTP_REFUSED: MetricSpec = MetricSpec::counter(
    "memleak_exporter_http_refused_total",
    "Connections and requests the HTTP server refused before any route, by reason (unauthorized: basic auth \
     failed, answered 401; tls_handshake: the TLS handshake failed; tls_timeout: no handshake within \
     --web.header-timeout; plain_http: plain HTTP on the TLS port, answered 400; connection_limit: refused \
     at --web.max-connections, answered 503; evicted: closed at the limit to admit another address).",
    &["reason"],
);

/// Every self metric, for the README table and the naming test (`collectors::metric_families`).
pub static ALL: &[&MetricSpec] = &[
    &BUILD_INFO,
    &COLLECTOR_DURATION,
    &COLLECTOR_SUCCESS,
    &ERRORS,
    &WEBHOOK_REQUESTS,
    &CAPTURE_REQUESTS,
    &CAPTURES,
    &CAPTURE_REJECTIONS,
    &CAPTURE_DURATION,
    &OTLP_SENT,
    &OTLP_DROPPED,
    &HTTP_REFUSED,
];

/// A series of the counters: its metric name and label values.
type Series = (&'static str, Vec<String>);

/// Counters kept between scrapes. Label values come from fixed sets (collector
/// ids, problem kinds, status codes, capture kinds), so the map stays small.
#[derive(Debug, Default)]
pub struct Counters {
    values: Mutex<BTreeMap<(&'static str, Vec<String>), u64>>,
    /// Histograms (of `CAPTURE_DURATION_BOUNDS`): counts per bucket and the sum.
    histograms: Mutex<BTreeMap<Series, (Vec<u64>, f64)>>,
}

impl Counters {
    pub fn inc(&self, spec: &'static MetricSpec, labels: &[&str]) {
        self.add(spec, labels, 1);
    }

    pub fn add(&self, spec: &'static MetricSpec, labels: &[&str], n: u64) {
        let key = (spec.name, labels.iter().map(|l| (*l).to_owned()).collect());
        *self.values.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default() += n;
    }

    /// Observes `value` in the histogram `spec` (buckets `CAPTURE_DURATION_BOUNDS`).
    pub fn observe(&self, spec: &'static MetricSpec, labels: &[&str], value: f64) {
        let key = (spec.name, labels.iter().map(|l| (*l).to_owned()).collect());
        let mut histograms = self.histograms.lock().unwrap_or_else(PoisonError::into_inner);
        let (counts, sum) = histograms.entry(key).or_insert_with(|| (vec![0; CAPTURE_DURATION_BOUNDS.len() + 1], 0.0));
        let bucket = CAPTURE_DURATION_BOUNDS.iter().position(|b| value <= *b).unwrap_or(CAPTURE_DURATION_BOUNDS.len());
        counts[bucket] += 1;
        *sum += value;
    }

    /// Adds every histogram series of `spec` to `set`.
    pub fn emit_histogram(&self, spec: &'static MetricSpec, set: &mut MetricSet) {
        let histograms = self.histograms.lock().unwrap_or_else(PoisonError::into_inner);
        let mut bounds = CAPTURE_DURATION_BOUNDS.to_vec();
        bounds.push(f64::INFINITY);
        for ((name, labels), (counts, sum)) in histograms.iter() {
            if *name == spec.name {
                let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
                set.push_histogram(spec, &labels, &HistogramValue { bounds: &bounds, counts, sum: *sum });
            }
        }
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
