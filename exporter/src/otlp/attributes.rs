//! Small builders of OTLP key-values, the resource and the instrumentation scope.

use crate::options::otlp::Config;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;

pub fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        key_strindex: 0,
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
    }
}

pub fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        key_strindex: 0,
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(value)) }),
    }
}

pub fn strings(key: &str, values: impl IntoIterator<Item = String>) -> KeyValue {
    let values = values.into_iter().map(|v| AnyValue { value: Some(any_value::Value::StringValue(v)) }).collect();
    KeyValue {
        key: key.to_owned(),
        key_strindex: 0,
        value: Some(AnyValue { value: Some(any_value::Value::ArrayValue(ArrayValue { values })) }),
    }
}

/// The scope every export names.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "memleak-exporter".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }
}

/// host.name, service.name, service.instance.id (`host:port`, like Prometheus' instance label,
/// stable across restarts), service.version, then OTEL_RESOURCE_ATTRIBUTES' others.
pub fn resource(config: &Config, host: &str, port: u16) -> Resource {
    let mut attributes = vec![
        string("service.name", &config.service_name),
        string("service.instance.id", &format!("{host}:{port}")),
        string("service.version", env!("CARGO_PKG_VERSION")),
        string("host.name", host),
    ];
    for (key, value) in &config.resource_attributes {
        if !attributes.iter().any(|kv| &kv.key == key) {
            attributes.push(string(key, value));
        }
    }
    Resource { attributes, dropped_attributes_count: 0, entity_refs: Vec::new() }
}

/// The host's name as the kernel knows it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
