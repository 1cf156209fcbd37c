//! A finished capture over OTLP: one log record of its outcome (with the
//! alert's fingerprint and labels) and its profiles, all carrying the capture's
//! id, kind and target as attributes.

use super::OtlpSink;
use crate::capture::kinds::Status;
use crate::capture::spool::Info;
use memleak_artifacts::{Ingested, Record, Severity};

/// Alert labels carried per record; Alertmanager's are few, a crafted alert's are cut here.
const MAX_LABELS: usize = 32;

/// Ships the outcome of the capture `info` and the profiles of its `result`.
pub fn ship(sink: &OtlpSink, info: &Info, result: Option<&Ingested>) {
    let context = context(info);
    sink.ship_log(&outcome(info), &context);
    for profile in result.map(|r| r.profiles.as_slice()).unwrap_or_default() {
        sink.ship_profile(profile, &context);
    }
}

fn context(info: &Info) -> Vec<(String, String)> {
    let mut context = vec![
        ("memleak.capture.id".to_owned(), info.id.clone()),
        ("memleak.capture.kind".to_owned(), info.kind.clone()),
        ("memleak.alert.fingerprint".to_owned(), info.fingerprint.clone()),
    ];
    context
        .extend(info.target.iter().take(MAX_LABELS).map(|(k, v)| (format!("memleak.capture.target.{k}"), v.clone())));
    context.extend(info.labels.iter().take(MAX_LABELS).map(|(k, v)| (format!("memleak.alert.label.{k}"), v.clone())));
    context
}

fn outcome(info: &Info) -> Record {
    let severity = match info.status {
        Status::Done | Status::Running => Severity::Info,
        Status::Partial | Status::Cancelled => Severity::Warn,
        Status::Failed => Severity::Error,
    };
    let mut message =
        format!("capture {} ({}) of {}: {}", info.id, info.kind, info.target_text(), info.status.as_str());
    if let Some(reason) = &info.reason {
        message.push_str(&format!(": {reason}"));
    }
    let mut record = Record::new(severity, format!("capture.{}", info.status.as_str()), message);
    record.attributes.push(("memleak.capture.status".into(), info.status.as_str().into()));
    if let Some(seconds) = info.elapsed_seconds {
        record.attributes.push(("memleak.capture.elapsed_seconds".into(), format!("{seconds:.1}")));
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn an_outcome_names_the_capture_its_alert_and_why_it_ended() {
        let info = Info {
            id: "c-7".into(),
            kind: "allocator-profile".into(),
            target: BTreeMap::from([("group".to_owned(), "a_cachesvc".to_owned())]),
            pids: vec![42],
            fingerprint: "f00d".into(),
            labels: (0..100).map(|i| (format!("l{i:03}"), "v".to_owned())).collect(),
            via: "webhook".into(),
            status: Status::Partial,
            reason: Some("the target exited".into()),
            phase: "finished".into(),
            started: "2026-11-29T12:00:00Z".into(),
            duration_seconds: 60.0,
            elapsed_seconds: Some(12.0),
            summary: None,
            files: Vec::new(),
        };
        let record = outcome(&info);
        assert_eq!((record.severity, record.kind.as_str()), (Severity::Warn, "capture.partial"));
        assert!(record.message.contains("c-7") && record.message.ends_with("the target exited"), "{}", record.message);
        let context = context(&info);
        assert!(context.contains(&("memleak.alert.fingerprint".into(), "f00d".into())));
        assert!(context.contains(&("memleak.capture.target.group".into(), "a_cachesvc".into())));
        assert_eq!(context.iter().filter(|(k, _)| k.starts_with("memleak.alert.label.")).count(), MAX_LABELS);
    }
}
