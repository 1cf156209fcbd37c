//! How Prometheus names become OTLP metrics: the OpenTelemetry semantic
//! convention where one exists (with the attributes it adds), else the
//! Prometheus name itself; units in UCUM; and the attributes derived from labels.
//!
//! `docs/otlp.md` holds the generated table of every family
//! (`UPDATE_README=1 cargo test -p memleak-exporter --lib otlp_table` rewrites it).

use memleak_signals::{MetricSpec, MetricType};

/// The OTLP instrument a family becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instrument {
    Gauge,
    /// A cumulative, non-monotonic sum (semantic conventions' UpDownCounter).
    UpDownCounter,
    /// A cumulative, monotonic sum.
    Counter,
    Histogram,
}

impl Instrument {
    fn as_str(self) -> &'static str {
        match self {
            Instrument::Gauge => "gauge",
            Instrument::UpDownCounter => "sum (non-monotonic)",
            Instrument::Counter => "sum (monotonic, cumulative)",
            Instrument::Histogram => "histogram",
        }
    }
}

/// A semantic convention a family maps to.
#[derive(Debug)]
struct Convention {
    prometheus: &'static str,
    name: &'static str,
    unit: &'static str,
    instrument: Instrument,
    attributes: &'static [(&'static str, &'static str)],
}

const fn convention(
    prometheus: &'static str,
    name: &'static str,
    unit: &'static str,
    instrument: Instrument,
    attributes: &'static [(&'static str, &'static str)],
) -> Convention {
    Convention { prometheus, name, unit, instrument, attributes }
}

use Instrument::{Counter, UpDownCounter};

/// What the exporter's own `process_*` families add: whose process they describe.
const OWN_PROCESS: &[(&str, &str)] = &[("process.executable.name", "memleak-exporter")];

/// The families with a semantic convention. Process families are sums over a
/// group (one process with `--collector.process.group-by=pid`).
static CONVENTIONS: &[Convention] = &[
    convention("memleak_host_memory_total_bytes", "system.memory.limit", "By", UpDownCounter, &[]),
    convention(
        "memleak_host_memory_free_bytes",
        "system.memory.usage",
        "By",
        UpDownCounter,
        &[("system.memory.state", "free")],
    ),
    convention("memleak_host_memory_available_bytes", "system.memory.linux.available", "By", UpDownCounter, &[]),
    convention(
        "memleak_host_memory_slab_unreclaimable_bytes",
        "system.memory.linux.slab.usage",
        "By",
        UpDownCounter,
        &[("linux.memory.slab.state", "unreclaimable")],
    ),
    convention(
        "memleak_host_memory_swap_free_bytes",
        "system.paging.usage",
        "By",
        UpDownCounter,
        &[("system.paging.state", "free")],
    ),
    convention(
        "memleak_host_memory_major_page_faults_total",
        "system.paging.faults",
        "{fault}",
        Counter,
        &[("system.paging.fault.type", "major")],
    ),
    convention(
        "memleak_host_memory_swap_in_pages_total",
        "system.paging.operations",
        "{operation}",
        Counter,
        &[("system.paging.direction", "in")],
    ),
    convention(
        "memleak_host_memory_swap_out_pages_total",
        "system.paging.operations",
        "{operation}",
        Counter,
        &[("system.paging.direction", "out")],
    ),
    // The exporter's own standard process metrics: the same conventions, its own process named
    // (the resource says which exporter), so they never read as a monitored group's.
    convention("process_cpu_seconds_total", "process.cpu.time", "s", Counter, OWN_PROCESS),
    convention("process_resident_memory_bytes", "process.memory.usage", "By", UpDownCounter, OWN_PROCESS),
    convention("process_virtual_memory_bytes", "process.memory.virtual", "By", UpDownCounter, OWN_PROCESS),
    convention(
        "process_open_fds",
        "process.unix.file_descriptor.count",
        "{file_descriptor}",
        UpDownCounter,
        OWN_PROCESS,
    ),
    convention("memleak_process_resident_bytes", "process.memory.usage", "By", UpDownCounter, &[]),
    convention("memleak_process_virtual_bytes", "process.memory.virtual", "By", UpDownCounter, &[]),
    convention("memleak_process_threads", "process.thread.count", "{thread}", UpDownCounter, &[]),
    convention(
        "memleak_process_minor_faults_total",
        "process.paging.faults",
        "{fault}",
        Counter,
        &[("system.paging.fault.type", "minor")],
    ),
    convention(
        "memleak_process_major_faults_total",
        "process.paging.faults",
        "{fault}",
        Counter,
        &[("system.paging.fault.type", "major")],
    ),
];

/// What one family becomes in OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub name: &'static str,
    pub unit: &'static str,
    pub instrument: Instrument,
    pub attributes: &'static [(&'static str, &'static str)],
}

/// The OTLP metric of a family.
pub fn mapping(spec: &MetricSpec) -> Mapping {
    if let Some(c) = CONVENTIONS.iter().find(|c| c.prometheus == spec.name) {
        return Mapping { name: c.name, unit: c.unit, instrument: c.instrument, attributes: c.attributes };
    }
    let instrument = match spec.kind {
        MetricType::Gauge | MetricType::Info => Instrument::Gauge,
        MetricType::Counter => Instrument::Counter,
        MetricType::Histogram => Instrument::Histogram,
    };
    Mapping { name: spec.name, unit: unit_of(spec.name), instrument, attributes: &[] }
}

/// The UCUM unit named by the Prometheus suffix; empty when the name has none.
fn unit_of(name: &str) -> &'static str {
    let base = name.strip_suffix("_total").unwrap_or(name);
    if base.ends_with("_bytes") {
        "By"
    } else if base.ends_with("_seconds") {
        "s"
    } else if base.ends_with("_ratio") {
        "1"
    } else {
        ""
    }
}

/// The semantic-convention attribute a label also gives, when there is one.
/// `group` is a command name, or a cgroup path with `--collector.process.group-by=cgroup`.
pub fn derived_attribute(label: &str, value: &str) -> Option<&'static str> {
    match label {
        "pid" => Some("process.pid"),
        "comm" => Some("process.executable.name"),
        "group" if value.starts_with('/') => Some("process.linux.cgroup"),
        "group" if value != "__other__" => Some("process.executable.name"),
        "container_id" => Some("container.id"),
        "container_runtime" => Some("container.runtime.name"),
        "pod_uid" => Some("k8s.pod.uid"),
        _ => None,
    }
}

/// The Markdown table of every family's OTLP form.
pub fn table(families: &[&MetricSpec]) -> String {
    let mut out =
        String::from("| Prometheus | OTLP metric | unit | instrument | attributes added |\n|---|---|---|---|---|\n");
    for spec in families {
        let m = mapping(spec);
        let attributes: Vec<String> = m.attributes.iter().map(|(k, v)| format!("`{k}={v}`")).collect();
        let unit = if m.unit.is_empty() { String::new() } else { format!("`{}`", m.unit) };
        out.push_str(&format!(
            "| `{}` | `{}` | {unit} | {} | {} |\n",
            spec.name,
            m.name,
            m.instrument.as_str(),
            attributes.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors;

    #[test]
    fn every_convention_names_an_existing_family_of_a_compatible_type() {
        let families: Vec<_> = collectors::metric_families().collect();
        for c in CONVENTIONS {
            let spec = families.iter().find(|(_, s)| s.name == c.prometheus).map(|(_, s)| *s);
            let spec = spec.unwrap_or_else(|| panic!("{} is mapped but no collector emits it", c.prometheus));
            let counter = spec.kind == MetricType::Counter;
            assert_eq!(
                counter,
                c.instrument == Counter,
                "{}: a counter maps to a monotonic sum, and only a counter",
                c.prometheus
            );
        }
    }

    #[test]
    fn units_come_from_the_suffix() {
        assert_eq!(unit_of("memleak_cgroup_usage_bytes"), "By");
        assert_eq!(unit_of("memleak_psi_stall_seconds_total"), "s");
        assert_eq!(unit_of("memleak_psi_stall_ratio"), "1");
        assert_eq!(unit_of("memleak_cgroup_events_total"), "");
    }

    #[test]
    fn otlp_table_in_docs_is_current() {
        let families: Vec<&MetricSpec> = collectors::metric_families().map(|(_, s)| s).collect();
        let body = table(&families);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/otlp.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let (begin, end) = ("<!-- otlp-metrics:begin -->\n", "<!-- otlp-metrics:end -->");
        let start = text.find(begin).unwrap() + begin.len();
        let stop = text[start..].find(end).unwrap() + start;
        let updated = format!("{}{body}{}", &text[..start], &text[stop..]);
        if std::env::var_os("UPDATE_README").is_some() {
            std::fs::write(&path, updated).unwrap();
        } else {
            assert!(
                updated == text,
                "docs/otlp.md's table is stale: run UPDATE_README=1 cargo test -p memleak-exporter --lib otlp_table"
            );
        }
    }
}
