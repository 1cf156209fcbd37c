//! Encoders from the model to the Prometheus exposition formats.
//!
//! Written by hand rather than through a client library because our families
//! are rebuilt on every scrape from `/proc` and `/sys`: a registry of
//! long-lived metric objects would only add copies.

use crate::model::{Family, MetricSet, MetricType, Series};
use std::fmt::Write as _;

/// The exposition format chosen by content negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    PrometheusText,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    pub const PROMETHEUS_CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";
    pub const OPENMETRICS_CONTENT_TYPE: &'static str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// Picks the format from an HTTP `Accept` header: OpenMetrics when a
    /// range names it with a weight above zero and at least that of the text
    /// format; the text format otherwise, and for anything that does not parse.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else { return Format::PrometheusText };
        let (mut openmetrics, mut text) = (0.0_f32, 0.0_f32);
        // Bounded: hyper caps the header; the ranges beyond 32 are not looked at.
        for range in accept.split(',').take(32) {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let weight = parts
                .filter_map(|p| p.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, q)| q.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)));
            let Some(weight) = weight else { continue };
            if media.eq_ignore_ascii_case("application/openmetrics-text") {
                openmetrics = openmetrics.max(weight);
            } else if ["text/plain", "text/*", "*/*"].iter().any(|m| media.eq_ignore_ascii_case(m)) {
                text = text.max(weight);
            }
        }
        if openmetrics > 0.0 && openmetrics >= text { Format::OpenMetrics } else { Format::PrometheusText }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => Self::PROMETHEUS_CONTENT_TYPE,
            Format::OpenMetrics => Self::OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Encodes `set` in `format`. Families without samples are left out.
pub fn encode(set: &MetricSet, format: Format) -> String {
    let mut out = String::with_capacity(64 * 1024);
    for family in set.families() {
        if !family.samples.is_empty() {
            encode_family(&mut out, family, format);
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn encode_family(out: &mut String, family: &Family, format: Format) {
    let spec = family.spec;
    // OpenMetrics names a counter family without its `_total` suffix and an
    // info family without `_info`; the text format has no info type.
    let (family_name, type_name) = match (format, spec.kind) {
        (Format::OpenMetrics, MetricType::Counter) => {
            (spec.name.strip_suffix("_total").unwrap_or(spec.name), "counter")
        }
        (Format::OpenMetrics, MetricType::Info) => (spec.name.strip_suffix("_info").unwrap_or(spec.name), "info"),
        (Format::PrometheusText, MetricType::Info) => (spec.name, "gauge"),
        (_, kind) => (spec.name, kind.as_str()),
    };
    out.push_str("# HELP ");
    out.push_str(family_name);
    out.push(' ');
    escape_help(out, spec.help);
    out.push_str("\n# TYPE ");
    out.push_str(family_name);
    out.push(' ');
    out.push_str(type_name);
    out.push('\n');
    for sample in &family.samples {
        out.push_str(spec.name);
        out.push_str(sample.series.suffix());
        let le = match sample.series {
            Series::Bucket(bound) => Some(bound),
            _ => None,
        };
        let mut first = true;
        out.push('{');
        for (name, value) in spec.labels.iter().zip(sample.label_values.iter()) {
            // An empty value means "no such label" in Prometheus; leave it out.
            if value.is_empty() {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(name);
            out.push_str("=\"");
            escape_label_value(out, value);
            out.push('"');
        }
        if let Some(bound) = le {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str("le=\"");
            write_bound(out, bound, format);
            out.push('"');
        }
        if first {
            // No label at all: drop the brace again.
            out.pop();
        } else {
            out.push('}');
        }
        out.push(' ');
        write_value(out, sample.value);
        out.push('\n');
    }
}

/// A bucket bound: `+Inf`, or a number (OpenMetrics wants a float's canonical
/// form, `4096.0`; the text format's convention is `4096`).
fn write_bound(out: &mut String, bound: f64, format: Format) {
    if bound.is_infinite() {
        out.push_str("+Inf");
    } else if bound.fract() == 0.0 && bound.abs() < 1e15 {
        let _ = write!(out, "{}", bound as i64);
        if format == Format::OpenMetrics {
            out.push_str(".0");
        }
    } else {
        let _ = write!(out, "{bound}");
    }
}

fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        // Integral values (byte counts, counters) print without a fraction.
        let _ = write!(out, "{}", value as i64);
    } else {
        let _ = write!(out, "{value}");
    }
}

fn escape_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HistogramValue, MetricSpec};

    static BYTES: MetricSpec = MetricSpec::gauge("memleak_test_bytes", "Test \\ help\nline.", &["group", "pid"]);
    static FAULTS: MetricSpec = MetricSpec::counter("memleak_test_faults_total", "Faults.", &[]);
    static BUILD: MetricSpec = MetricSpec::info("memleak_test_build_info", "Build.", &["version"]);

    fn sample_set() -> MetricSet {
        let mut set = MetricSet::new();
        set.push(&BYTES, &["we\"ird\\\n", ""], 1304.0 * 1024.0);
        set.push(&BYTES, &["", ""], 0.5);
        set.push(&FAULTS, &[], f64::INFINITY);
        set
    }

    #[test]
    fn prometheus_text_escapes_and_drops_empty_labels() {
        let text = encode(&sample_set(), Format::PrometheusText);
        assert_eq!(
            text,
            "# HELP memleak_test_bytes Test \\\\ help\\nline.\n\
             # TYPE memleak_test_bytes gauge\n\
             memleak_test_bytes{group=\"we\\\"ird\\\\\\n\"} 1335296\n\
             memleak_test_bytes 0.5\n\
             # HELP memleak_test_faults_total Faults.\n\
             # TYPE memleak_test_faults_total counter\n\
             memleak_test_faults_total +Inf\n"
        );
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let text = encode(&sample_set(), Format::OpenMetrics);
        assert!(text.contains("# TYPE memleak_test_faults counter\nmemleak_test_faults_total +Inf\n"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn info_is_a_gauge_in_text_and_info_in_openmetrics() {
        let mut set = MetricSet::new();
        set.push(&BUILD, &["1.0"], 1.0);
        assert!(encode(&set, Format::PrometheusText).contains("# TYPE memleak_test_build_info gauge\n"));
        let om = encode(&set, Format::OpenMetrics);
        assert!(om.contains("# TYPE memleak_test_build info\nmemleak_test_build_info{version=\"1.0\"} 1\n"), "{om}");
    }

    static SIZES: MetricSpec = MetricSpec::histogram("memleak_test_size_bytes", "Sizes.", &["cgroup"]);

    #[test]
    fn histograms_are_cumulative_with_inf_sum_and_count() {
        let mut set = MetricSet::new();
        let histogram = HistogramValue { bounds: &[4096.0, 65536.0], counts: &[2, 1], sum: 73728.0 };
        set.push_histogram(&SIZES, &["/a"], &histogram);
        let text = encode(&set, Format::PrometheusText);
        assert_eq!(
            text,
            "# HELP memleak_test_size_bytes Sizes.\n\
             # TYPE memleak_test_size_bytes histogram\n\
             memleak_test_size_bytes_bucket{cgroup=\"/a\",le=\"4096\"} 2\n\
             memleak_test_size_bytes_bucket{cgroup=\"/a\",le=\"65536\"} 3\n\
             memleak_test_size_bytes_bucket{cgroup=\"/a\",le=\"+Inf\"} 3\n\
             memleak_test_size_bytes_sum{cgroup=\"/a\"} 73728\n\
             memleak_test_size_bytes_count{cgroup=\"/a\"} 3\n"
        );
        let om = encode(&set, Format::OpenMetrics);
        assert!(om.contains("memleak_test_size_bytes_bucket{cgroup=\"/a\",le=\"4096.0\"} 2\n"), "{om}");
        assert_eq!(set.series_value("memleak_test_size_bytes", &[("cgroup", "/a")], Series::Count), Some(3.0));
    }

    #[test]
    fn negotiation_prefers_openmetrics_only_when_asked() {
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
        assert_eq!(Format::negotiate(Some("text/plain;version=0.0.4")), Format::PrometheusText);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")),
            Format::OpenMetrics
        );
        // What Prometheus 2.42 sends.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        for text in [
            "application/openmetrics-text;q=0",
            "application/openmetrics-text;q=0.2,text/plain;q=0.9",
            "application/openmetrics-text;q=NaN",
            "application/openmetrics-text;q=1e308",
            "application/openmetrics-text;q=-1",
            "*/*",
            "",
            ";;;,,,=;q",
        ] {
            assert_eq!(Format::negotiate(Some(text)), Format::PrometheusText, "{text}");
        }
        assert_eq!(Format::negotiate(Some("Application/OpenMetrics-Text; Q=0.9, */*;q=0.1")), Format::OpenMetrics);
    }
}
