//! Metric specifications and the samples collectors emit.
//!
//! A metric name is never an ad-hoc string at an emit site: every family is
//! declared once as a `MetricSpec` constant beside the code that fills it, and
//! `registry::all_metric_specs` lists them so tests can check the naming
//! conventions and the README's metric table.

/// The Prometheus type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Gauge,
    /// A counter; its name ends in `_total` (checked by a test).
    Counter,
    /// A constant 1 whose labels carry facts; its name ends in `_info`. A gauge
    /// in the Prometheus text format, OpenMetrics' `info` type in OpenMetrics.
    Info,
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Gauge => "gauge",
            MetricType::Counter => "counter",
            MetricType::Info => "info",
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
}

/// One sample: label values in the spec's label order, and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub label_values: Box<[Box<str>]>,
    pub value: f64,
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
        self.samples.push(Sample { label_values: label_values.iter().map(|v| Box::<str>::from(*v)).collect(), value });
    }
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
        let family = self.families.iter().find(|f| f.spec.name == name)?;
        family
            .samples
            .iter()
            .find(|s| {
                labels.iter().all(|(k, v)| {
                    family.spec.labels.iter().position(|l| l == k).is_some_and(|i| &*s.label_values[i] == *v)
                })
            })
            .map(|s| s.value)
    }
}
