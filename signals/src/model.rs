//! The metric model: metric and collector specifications, and the samples collectors emit.
//!
//! A metric name is never an ad-hoc string at an emit site: every family is
//! declared once as a `MetricSpec` static beside the code that fills it, and
//! listed in its collector's `CollectorSpec`; the exporter's collector table
//! gathers those for the naming test and the README's metric table.

/// The Prometheus type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Gauge,
    /// A counter; its name ends in `_total` (checked by a test).
    Counter,
    /// A constant 1 whose labels carry facts; its name ends in `_info`. A gauge
    /// in the Prometheus text format, OpenMetrics' `info` type in OpenMetrics.
    Info,
    /// Cumulative `_bucket{le}` counters with `_sum` and `_count`; pushed
    /// whole with `MetricSet::push_histogram`.
    Histogram,
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Gauge => "gauge",
            MetricType::Counter => "counter",
            MetricType::Info => "info",
            MetricType::Histogram => "histogram",
        }
    }
}

/// The static description of one metric family.
#[derive(Debug, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
    /// Label names, in the order that `Family::push` takes their values.
    pub labels: &'static [&'static str],
}

impl MetricSpec {
    pub const fn gauge(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        MetricSpec { name, help, kind: MetricType::Gauge, labels }
    }

    pub const fn info(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        MetricSpec { name, help, kind: MetricType::Info, labels }
    }

    pub const fn counter(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        MetricSpec { name, help, kind: MetricType::Counter, labels }
    }

    /// A histogram; `labels` leaves out `le`, which each bucket adds.
    pub const fn histogram(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        MetricSpec { name, help, kind: MetricType::Histogram, labels }
    }
}

/// The static description of one collector: its id and what `--help`, the
/// landing page and the README say about it.
#[derive(Debug)]
pub struct CollectorSpec {
    /// The module name, `--collector.<id>` flag, YAML `collectors.<id>` key,
    /// `collector` label value and metric name prefix (`memleak_<id>_`).
    pub id: &'static str,
    /// What it reports, and from where (one line).
    pub about: &'static str,
    /// Whether it runs without `--collector.<id>`.
    pub enabled_by_default: bool,
    /// Every family it emits, in emission order.
    pub metrics: &'static [&'static MetricSpec],
}

/// Which series of its family a sample is: the family's own name, or one of a
/// histogram's `_bucket` (with its upper bound), `_sum` and `_count`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Series {
    Plain,
    Bucket(f64),
    Sum,
    Count,
}

impl Series {
    pub fn suffix(self) -> &'static str {
        match self {
            Series::Plain => "",
            Series::Bucket(_) => "_bucket",
            Series::Sum => "_sum",
            Series::Count => "_count",
        }
    }
}

/// One sample: label values in the spec's label order, and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub label_values: Box<[Box<str>]>,
    pub value: f64,
    pub series: Series,
}

/// All samples of one family collected in one scrape.
#[derive(Debug)]
pub struct Family {
    pub spec: &'static MetricSpec,
    pub samples: Vec<Sample>,
}

impl Family {
    /// Adds a sample. `label_values` must match `spec.labels` in length and order.
    pub fn push(&mut self, label_values: &[&str], value: f64) {
        debug_assert_eq!(label_values.len(), self.spec.labels.len(), "wrong label count for {}", self.spec.name);
        self.push_series(label_values, value, Series::Plain);
    }

    fn push_series(&mut self, label_values: &[&str], value: f64, series: Series) {
        debug_assert_eq!(label_values.len(), self.spec.labels.len(), "wrong label count for {}", self.spec.name);
        let label_values = label_values.iter().map(|v| Box::<str>::from(*v)).collect();
        self.samples.push(Sample { label_values, value, series });
    }
}

/// A histogram's state: non-cumulative counts per upper bound (ascending, the
/// last may be `+Inf`), and the sum of observed values.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramValue<'a> {
    pub bounds: &'a [f64],
    pub counts: &'a [u64],
    pub sum: f64,
}

/// The metric families produced by one or more collectors, in emission order.
#[derive(Debug, Default)]
pub struct MetricSet {
    families: Vec<Family>,
}

impl MetricSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// The family for `spec`, created empty on first use.
    pub fn family(&mut self, spec: &'static MetricSpec) -> &mut Family {
        let index = match self.families.iter().position(|f| std::ptr::eq(f.spec, spec)) {
            Some(index) => index,
            None => {
                self.families.push(Family { spec, samples: Vec::new() });
                self.families.len() - 1
            }
        };
        &mut self.families[index]
    }

    /// Shorthand for a sample of a family.
    pub fn push(&mut self, spec: &'static MetricSpec, label_values: &[&str], value: f64) {
        self.family(spec).push(label_values, value);
    }

    /// Adds one histogram series: a cumulative `_bucket` per bound, a `+Inf`
    /// bucket if the bounds lack one, `_sum` and `_count`.
    pub fn push_histogram(&mut self, spec: &'static MetricSpec, label_values: &[&str], histogram: &HistogramValue) {
        debug_assert_eq!(spec.kind, MetricType::Histogram, "{} is not a histogram", spec.name);
        let family = self.family(spec);
        let mut cumulative = 0u64;
        for (bound, count) in histogram.bounds.iter().zip(histogram.counts) {
            cumulative += count;
            family.push_series(label_values, cumulative as f64, Series::Bucket(*bound));
        }
        let total: u64 = histogram.counts.iter().sum();
        if histogram.bounds.last().is_none_or(|b| b.is_finite()) {
            family.push_series(label_values, total as f64, Series::Bucket(f64::INFINITY));
        }
        family.push_series(label_values, histogram.sum, Series::Sum);
        family.push_series(label_values, total as f64, Series::Count);
    }

    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// Moves every family of `other` to the end of this set.
    pub fn append(&mut self, other: MetricSet) {
        for family in other.families {
            match self.families.iter_mut().find(|f| std::ptr::eq(f.spec, family.spec)) {
                Some(existing) => existing.samples.extend(family.samples),
                None => self.families.push(family),
            }
        }
    }

    /// The value of the first sample of `name` whose labels include all `labels`.
    /// Meant for tests and diagnostics, not for hot paths.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series_value(name, labels, Series::Plain)
    }

    /// Like `value`, for one series of a histogram (`Series::Bucket(le)`, `Sum`, `Count`).
    pub fn series_value(&self, name: &str, labels: &[(&str, &str)], series: Series) -> Option<f64> {
        let family = self.families.iter().find(|f| f.spec.name == name)?;
        family
            .samples
            .iter()
            .find(|s| {
                s.series == series
                    && labels.iter().all(|(k, v)| {
                        family.spec.labels.iter().position(|l| l == k).is_some_and(|i| &*s.label_values[i] == *v)
                    })
            })
            .map(|s| s.value)
    }
}
