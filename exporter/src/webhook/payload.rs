//! Alertmanager's webhook payload (version 4) and its validation into capture
//! requests. Nothing from a request is ever used as a path or a command: the
//! target labels are only names that the capture work resolves itself.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The capture kinds an alert may ask for with its `capture` label. Severity
/// maps to the layers: warning → `allocator-profile` (layer 2), critical →
/// `ebpf-malloc` or `staleness` (layer 3). The capture work replaces this list
/// with its own capture types.
pub const CAPTURE_KINDS: &[&str] = &["allocator-profile", "ebpf-malloc", "staleness"];

/// The fields of Alertmanager's webhook JSON that we use (others are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub version: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub fingerprint: String,
}

/// Whether the alert started or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One validated request for a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRequest {
    pub alertname: String,
    /// One of `CAPTURE_KINDS`.
    pub kind: &'static str,
    pub status: AlertStatus,
    /// Process group (`group` label) the alert is about, if any.
    pub group: Option<String>,
    /// Cgroup path (`cgroup` label) the alert is about, if any.
    pub cgroup: Option<String>,
    /// The exporter instance whose series fired (`instance` label), if any.
    pub instance: Option<String>,
    pub fingerprint: String,
}

/// Labels that name a capture target; an alert needs at least one.
pub const TARGET_LABELS: &[&str] = &["group", "cgroup"];
/// Longest label value accepted.
const MAX_LABEL_VALUE: usize = 1024;
/// Most alerts accepted in one notification.
pub const MAX_ALERTS: usize = 1000;

/// Parses and validates a notification. The error lists every problem found.
pub fn validate(body: &[u8]) -> Result<Vec<CaptureRequest>, (u16, String)> {
    let payload: Payload = serde_json::from_slice(body).map_err(|e| {
        (
            400,
            format!(
                "malformed JSON at line {} column {}: {e}; expected an Alertmanager webhook (version 4)",
                e.line(),
                e.column()
            ),
        )
    })?;
    if payload.version != "4" {
        return Err((
            400,
            format!(
                "unsupported webhook version {:?}; this endpoint speaks Alertmanager's version \"4\"",
                payload.version
            ),
        ));
    }
    if payload.alerts.is_empty() {
        return Err((422, "the notification has no alerts".into()));
    }
    if payload.alerts.len() > MAX_ALERTS {
        return Err((
            413,
            format!("{} alerts in one notification; at most {MAX_ALERTS} are accepted", payload.alerts.len()),
        ));
    }
    let mut requests = Vec::with_capacity(payload.alerts.len());
    let mut problems = Vec::new();
    for (i, alert) in payload.alerts.iter().enumerate() {
        match request(alert) {
            Ok(r) => requests.push(r),
            Err(p) => problems.push(format!("alerts[{i}]: {p}")),
        }
    }
    if problems.is_empty() { Ok(requests) } else { Err((422, problems.join("; "))) }
}

fn request(alert: &Alert) -> Result<CaptureRequest, String> {
    if let Some((name, _)) = alert.labels.iter().find(|(_, v)| v.len() > MAX_LABEL_VALUE || v.contains('\0')) {
        return Err(format!("label {name:?} is longer than {MAX_LABEL_VALUE} bytes or contains NUL"));
    }
    let status = match alert.status.as_str() {
        "firing" => AlertStatus::Firing,
        "resolved" => AlertStatus::Resolved,
        other => return Err(format!("status {other:?} is neither \"firing\" nor \"resolved\"")),
    };
    let alertname = alert.labels.get("alertname").cloned().ok_or("label \"alertname\" is missing")?;
    let requested = alert.labels.get("capture").ok_or_else(|| {
        format!("label \"capture\" is missing on {alertname}; route only alerts with a capture label here (one of {CAPTURE_KINDS:?})")
    })?;
    let kind =
        CAPTURE_KINDS.iter().copied().find(|k| k == requested).ok_or_else(|| {
            format!("unknown capture kind {requested:?} on {alertname}; known kinds: {CAPTURE_KINDS:?}")
        })?;
    let label = |name: &str| alert.labels.get(name).filter(|v| !v.is_empty()).cloned();
    let (group, cgroup) = (label("group"), label("cgroup"));
    if group.is_none() && cgroup.is_none() {
        return Err(format!("{alertname} has no target label: it needs one of {TARGET_LABELS:?}"));
    }
    Ok(CaptureRequest {
        alertname,
        kind,
        status,
        group,
        cgroup,
        instance: label("instance"),
        fingerprint: alert.fingerprint.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(alerts: &str) -> String {
        format!(r#"{{"version":"4","status":"firing","receiver":"memleak","groupLabels":{{}},"alerts":[{alerts}]}}"#)
    }

    const GOOD: &str = r#"{"status":"firing","labels":{"alertname":"ProcessMemoryLeak","capture":"allocator-profile","group":"a_cachesvc","instance":"h:9487","severity":"warning"},"fingerprint":"abc"}"#;

    #[test]
    fn accepts_a_real_alertmanager_notification() {
        let requests = validate(payload(GOOD).as_bytes()).unwrap();
        assert_eq!(
            requests,
            [CaptureRequest {
                alertname: "ProcessMemoryLeak".into(),
                kind: "allocator-profile",
                status: AlertStatus::Firing,
                group: Some("a_cachesvc".into()),
                cgroup: None,
                instance: Some("h:9487".into()),
                fingerprint: "abc".into(),
            }]
        );
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        let cases: &[(&str, u16, &str)] = &[
            ("{", 400, "malformed JSON"),
            (r#"{"version":"3","alerts":[]}"#, 400, "unsupported webhook version"),
            (r#"{"version":"4","alerts":[]}"#, 422, "no alerts"),
            (r#"{"version":"4"}"#, 400, "missing field `alerts`"),
        ];
        for (body, code, needle) in cases {
            let (c, msg) = validate(body.as_bytes()).unwrap_err();
            assert_eq!((c, msg.contains(needle)), (*code, true), "{body}: {msg}");
        }
        let unknown = GOOD.replace("allocator-profile", "rm -rf");
        let (c, msg) = validate(payload(&unknown).as_bytes()).unwrap_err();
        assert_eq!(c, 422);
        assert!(msg.contains("unknown capture kind \"rm -rf\"") && msg.contains("ebpf-malloc"), "{msg}");
        let no_target = GOOD.replace(r#""group":"a_cachesvc","#, "");
        assert!(validate(payload(&no_target).as_bytes()).unwrap_err().1.contains("no target label"));
        let no_capture = GOOD.replace(r#""capture":"allocator-profile","#, "");
        assert!(validate(payload(&no_capture).as_bytes()).unwrap_err().1.contains("\"capture\" is missing"));
        let bad_status = GOOD.replace(r#""status":"firing""#, r#""status":"pending""#);
        assert!(validate(payload(&bad_status).as_bytes()).unwrap_err().1.contains("alerts[0]: status"));
        let long = GOOD.replace("a_cachesvc", &"x".repeat(2000));
        assert!(validate(payload(&long).as_bytes()).unwrap_err().1.contains("longer than"));
    }
}
