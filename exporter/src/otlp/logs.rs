//! Records of the artifacts model (leak records, sanitizer errors, capture
//! outcomes, OOM kills, collector degradations) as OTLP log records: severity,
//! body, the record's kind as the event name, its figures, attributes and
//! stacks as attributes. Bounded: a body, a stack and an export have caps.

use super::attributes::{int, scope, string, strings};
use memleak_artifacts::{Record, Severity};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// Records in one export; an artifact with more has the rest dropped and counted.
pub const MAX_RECORDS: usize = 1000;
/// Frames kept per stack (innermost first).
const MAX_FRAMES: usize = 64;
/// Bytes of a body or attribute value.
const MAX_TEXT: usize = 4096;

/// One log record of `record`, at `at_nanos`, with `context` (e.g. the artifact's file and format).
pub fn log_record(record: &Record, context: &[(String, String)], at_nanos: u64) -> LogRecord {
    let mut attributes = vec![string("memleak.record.kind", &record.kind)];
    if let Some(bytes) = record.bytes {
        attributes.push(int("memleak.bytes", i64::try_from(bytes).unwrap_or(i64::MAX)));
    }
    if let Some(blocks) = record.blocks {
        attributes.push(int("memleak.blocks", i64::try_from(blocks).unwrap_or(i64::MAX)));
    }
    for (key, value) in context.iter().chain(&record.attributes) {
        if !attributes.iter().any(|kv| &kv.key == key) {
            attributes.push(string(key, bounded(value)));
        }
    }
    for (name, frames) in &record.stacks {
        let frames = frames.iter().take(MAX_FRAMES).map(|f| bounded(&f.to_string()).to_owned());
        attributes.push(strings(&format!("memleak.stack.{name}"), frames));
    }
    let (number, text) = severity(record.severity);
    LogRecord {
        time_unix_nano: at_nanos,
        observed_time_unix_nano: at_nanos,
        severity_number: number as i32,
        severity_text: text.to_owned(),
        body: Some(AnyValue { value: Some(any_value::Value::StringValue(bounded(&record.message).to_owned())) }),
        attributes,
        dropped_attributes_count: 0,
        flags: 0,
        trace_id: Vec::new(),
        span_id: Vec::new(),
        event_name: record.kind.clone(),
    }
}

/// The export of `records` under `resource`.
pub fn request(records: Vec<LogRecord>, resource: &Resource) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource.clone()),
            scope_logs: vec![ScopeLogs { scope: Some(scope()), log_records: records, schema_url: String::new() }],
            schema_url: String::new(),
        }],
    }
}

fn severity(severity: Severity) -> (SeverityNumber, &'static str) {
    match severity {
        Severity::Info => (SeverityNumber::Info, "INFO"),
        Severity::Warn => (SeverityNumber::Warn, "WARN"),
        Severity::Error => (SeverityNumber::Error, "ERROR"),
    }
}

/// At most `MAX_TEXT` bytes, cut at a character boundary.
fn bounded(text: &str) -> &str {
    if text.len() <= MAX_TEXT {
        return text;
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use memleak_artifacts::Frame;

    #[test]
    fn a_leak_record_keeps_its_figures_context_and_stacks() {
        let mut record = Record::new(Severity::Error, "leak.definite", "307200 bytes in 3 blocks are definitely lost");
        record.bytes = Some(307_200);
        record.blocks = Some(3);
        let deep: Vec<Frame> = (0..100).map(|i| Frame::function(format!("f{i}"))).collect();
        record.stacks.push(("allocation".into(), deep));
        let log = log_record(&record, &[("memleak.artifact.format".into(), "memcheck".into())], 7);
        assert_eq!((log.severity_number, log.severity_text.as_str()), (SeverityNumber::Error as i32, "ERROR"));
        assert_eq!(log.event_name, "leak.definite");
        let get = |k: &str| {
            log.attributes.iter().find(|kv| kv.key == k).and_then(|kv| kv.value.clone()).and_then(|v| v.value)
        };
        assert_eq!(get("memleak.bytes"), Some(any_value::Value::IntValue(307_200)));
        assert_eq!(get("memleak.artifact.format"), Some(any_value::Value::StringValue("memcheck".into())));
        let Some(any_value::Value::ArrayValue(stack)) = get("memleak.stack.allocation") else { panic!("no stack") };
        assert_eq!(stack.values.len(), MAX_FRAMES, "stacks are bounded");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let text = "é".repeat(MAX_TEXT);
        assert!(bounded(&text).len() <= MAX_TEXT && bounded(&text).len() >= MAX_TEXT - 1);
    }
}
