//! A collection (`MetricSet`) as an OTLP metrics export: gauges as gauges,
//! counters as cumulative monotonic sums with real start times, histograms as
//! explicit-bucket histograms, names and units per `semconv`.
//!
//! A series' start time is when the exporter first saw it; it stays put across
//! pushes and moves to the push that sees the value fall (a reset). Series
//! absent from a collection are forgotten, so the memory follows the
//! collection's own (bounded) size.

use super::attributes::{int, scope, string};
use super::semconv::{self, Instrument};
use memleak_signals::{Family, MetricSet, Series};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, metric::Data, number_data_point::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::collections::HashMap;

type SeriesKey = (&'static str, Box<[Box<str>]>);

/// Start times of cumulative series, kept between pushes.
#[derive(Debug, Default)]
pub struct MetricsEncoder {
    starts: HashMap<SeriesKey, (u64, f64)>,
}

impl MetricsEncoder {
    /// The export of `set`, collected at `at_nanos` (Unix nanoseconds).
    pub fn encode(&mut self, set: &MetricSet, at_nanos: u64, resource: &Resource) -> ExportMetricsServiceRequest {
        let mut seen: HashMap<SeriesKey, (u64, f64)> = HashMap::with_capacity(self.starts.len());
        let mut metrics: Vec<Metric> = Vec::new();
        for family in set.families() {
            let mapping = semconv::mapping(family.spec);
            let data = match mapping.instrument {
                Instrument::Gauge => {
                    Data::Gauge(Gauge { data_points: self.points(family, at_nanos, Starts::None, &mapping, &mut seen) })
                }
                Instrument::UpDownCounter | Instrument::Counter => {
                    let monotonic = mapping.instrument == Instrument::Counter;
                    let starts = if monotonic { Starts::ResetOnDecrease } else { Starts::FirstSeen };
                    Data::Sum(Sum {
                        data_points: self.points(family, at_nanos, starts, &mapping, &mut seen),
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: monotonic,
                    })
                }
                Instrument::Histogram => Data::Histogram(Histogram {
                    data_points: self.histogram_points(family, at_nanos, &mapping, &mut seen),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            };
            // Families mapped to one convention (e.g. system.paging.operations in and out) share one metric.
            match metrics.iter_mut().find(|m| m.name == mapping.name) {
                Some(existing) => merge(existing, data),
                None => metrics.push(Metric {
                    name: mapping.name.to_owned(),
                    description: family.spec.help.to_owned(),
                    unit: mapping.unit.to_owned(),
                    metadata: Vec::new(),
                    data: Some(data),
                }),
            }
        }
        self.starts = seen;
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource.clone()),
                scope_metrics: vec![ScopeMetrics { scope: Some(scope()), metrics, schema_url: String::new() }],
                schema_url: String::new(),
            }],
        }
    }

    /// The start time of a cumulative series now at `value`.
    fn start(
        &self,
        key: SeriesKey,
        value: f64,
        at: u64,
        resets: bool,
        seen: &mut HashMap<SeriesKey, (u64, f64)>,
    ) -> u64 {
        let start = match self.starts.get(&key) {
            Some((start, last)) if value >= *last || !resets => *start,
            // Reset since the last push: the new run started after it.
            Some(_) => at.saturating_sub(1_000_000),
            None => at,
        };
        seen.insert(key, (start, value));
        start
    }

    fn points(
        &self,
        family: &Family,
        at: u64,
        starts: Starts,
        mapping: &semconv::Mapping,
        seen: &mut HashMap<SeriesKey, (u64, f64)>,
    ) -> Vec<NumberDataPoint> {
        family
            .samples
            .iter()
            .map(|sample| {
                let key = || (family.spec.name, sample.label_values.clone());
                let start = match starts {
                    Starts::ResetOnDecrease => self.start(key(), sample.value, at, true, seen),
                    Starts::FirstSeen => self.start(key(), sample.value, at, false, seen),
                    Starts::None => 0,
                };
                NumberDataPoint {
                    attributes: attributes(family.spec.labels, &sample.label_values, mapping.attributes),
                    start_time_unix_nano: start,
                    time_unix_nano: at,
                    exemplars: Vec::new(),
                    flags: 0,
                    value: Some(Value::AsDouble(sample.value)),
                }
            })
            .collect()
    }

    fn histogram_points(
        &self,
        family: &Family,
        at: u64,
        mapping: &semconv::Mapping,
        seen: &mut HashMap<SeriesKey, (u64, f64)>,
    ) -> Vec<HistogramDataPoint> {
        // The set holds each series as cumulative buckets, then _sum and _count.
        let mut order: Vec<&[Box<str>]> = Vec::new();
        let mut series: HashMap<&[Box<str>], HistogramParts> = HashMap::new();
        for sample in &family.samples {
            let entry = series.entry(&sample.label_values).or_insert_with(|| {
                order.push(&sample.label_values);
                (Vec::new(), 0.0, 0.0)
            });
            match sample.series {
                Series::Bucket(bound) => entry.0.push((bound, sample.value)),
                Series::Sum => entry.1 = sample.value,
                Series::Count => entry.2 = sample.value,
                Series::Plain => {}
            }
        }
        order
            .into_iter()
            .filter_map(|labels| {
                let (buckets, sum, count) = series.get(labels)?;
                let explicit_bounds: Vec<f64> = buckets.iter().map(|(b, _)| *b).filter(|b| b.is_finite()).collect();
                let mut previous = 0.0;
                let mut bucket_counts: Vec<u64> = buckets
                    .iter()
                    .map(|(_, cumulative)| {
                        let n = (cumulative - previous).max(0.0) as u64;
                        previous = *cumulative;
                        n
                    })
                    .collect();
                bucket_counts.resize(explicit_bounds.len() + 1, 0);
                let start = self.start((family.spec.name, labels.into()), *count, at, true, seen);
                Some(HistogramDataPoint {
                    attributes: attributes(family.spec.labels, labels, mapping.attributes),
                    start_time_unix_nano: start,
                    time_unix_nano: at,
                    count: *count as u64,
                    sum: Some(*sum),
                    bucket_counts,
                    explicit_bounds,
                    exemplars: Vec::new(),
                    flags: 0,
                    min: None,
                    max: None,
                })
            })
            .collect()
    }
}

/// A histogram series as the set holds it: (bound, cumulative count) per bucket, sum, count.
type HistogramParts = (Vec<(f64, f64)>, f64, f64);

/// Which data points carry a start time, and when it moves.
#[derive(Debug, Clone, Copy)]
enum Starts {
    None,
    FirstSeen,
    ResetOnDecrease,
}

fn merge(existing: &mut Metric, data: Data) {
    match (&mut existing.data, data) {
        (Some(Data::Gauge(a)), Data::Gauge(b)) => a.data_points.extend(b.data_points),
        (Some(Data::Sum(a)), Data::Sum(b)) => a.data_points.extend(b.data_points),
        (Some(Data::Histogram(a)), Data::Histogram(b)) => a.data_points.extend(b.data_points),
        // A convention table mistake; a test checks that merged families agree.
        _ => {}
    }
}

/// The labels (empty ones are absent, as in Prometheus), the attributes they
/// imply by semantic convention, and the convention's own.
fn attributes(names: &[&str], values: &[Box<str>], fixed: &[(&str, &str)]) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(names.len() * 2 + fixed.len());
    for (name, value) in names.iter().zip(values) {
        if value.is_empty() {
            continue;
        }
        out.push(string(name, value));
        match semconv::derived_attribute(name, value) {
            Some("process.pid") => {
                if let Ok(pid) = value.parse::<i64>() {
                    out.push(int("process.pid", pid));
                }
            }
            Some(key) => out.push(string(key, value)),
            None => {}
        }
    }
    out.extend(fixed.iter().map(|(k, v)| string(k, v)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use memleak_signals::{HistogramValue, MetricSpec};

    static FAULTS: MetricSpec = MetricSpec::counter("memleak_process_minor_faults_total", "Faults.", &["group", "pid"]);
    static RSS: MetricSpec = MetricSpec::gauge("memleak_cgroup_usage_bytes", "Usage.", &["cgroup", "container_id"]);
    static SIZES: MetricSpec = MetricSpec::histogram("memleak_test_size_bytes", "Sizes.", &[]);

    fn encode(encoder: &mut MetricsEncoder, faults: f64, at: u64) -> Vec<Metric> {
        let mut set = MetricSet::new();
        set.push(&FAULTS, &["nginx", ""], faults);
        set.push(&RSS, &["/docker/abc", "abc"], 4096.0);
        let histogram = HistogramValue { bounds: &[1.0, 10.0], counts: &[2, 3, 1], sum: 30.0 };
        set.push_histogram(&SIZES, &[], &histogram);
        let request = encoder.encode(&set, at, &Resource::default());
        request.resource_metrics[0].scope_metrics[0].metrics.clone()
    }

    fn sum_point(metrics: &[Metric], name: &str) -> NumberDataPoint {
        match &metrics.iter().find(|m| m.name == name).unwrap().data {
            Some(Data::Sum(s)) => {
                assert!(s.is_monotonic);
                s.data_points[0].clone()
            }
            other => panic!("{name} is not a sum: {other:?}"),
        }
    }

    #[test]
    fn counters_keep_their_first_seen_start_until_they_reset() {
        let mut encoder = MetricsEncoder::default();
        let first = sum_point(&encode(&mut encoder, 10.0, 1_000_000_000), "process.paging.faults");
        assert_eq!((first.start_time_unix_nano, first.value), (1_000_000_000, Some(Value::AsDouble(10.0))));
        let second = sum_point(&encode(&mut encoder, 15.0, 2_000_000_000), "process.paging.faults");
        assert_eq!(second.start_time_unix_nano, 1_000_000_000, "stable across pushes");
        let reset = sum_point(&encode(&mut encoder, 3.0, 3_000_000_000), "process.paging.faults");
        assert!(reset.start_time_unix_nano > 2_000_000_000 && reset.start_time_unix_nano < 3_000_000_000);
        let keys: Vec<&str> = reset.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["group", "process.executable.name", "system.paging.fault.type"], "the empty pid is absent");
    }

    #[test]
    fn gauges_carry_container_attributes_and_histograms_their_buckets() {
        let metrics = encode(&mut MetricsEncoder::default(), 1.0, 5);
        let usage = metrics.iter().find(|m| m.name == "memleak_cgroup_usage_bytes").unwrap();
        assert_eq!(usage.unit, "By");
        let Some(Data::Gauge(g)) = &usage.data else { panic!("not a gauge") };
        assert!(g.data_points[0].attributes.iter().any(|kv| kv.key == "container.id"));
        let sizes = metrics.iter().find(|m| m.name == "memleak_test_size_bytes").unwrap();
        let Some(Data::Histogram(h)) = &sizes.data else { panic!("not a histogram") };
        let p = &h.data_points[0];
        assert_eq!((p.explicit_bounds.clone(), p.bucket_counts.clone()), (vec![1.0, 10.0], vec![2, 3, 1]));
        assert_eq!((p.count, p.sum), (6, Some(30.0)));
    }
}
