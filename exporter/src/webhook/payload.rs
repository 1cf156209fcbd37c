//! Alertmanager's webhook payload (version 4) and its validation into capture
//! requests, alert by alert: a bad alert is an outcome of its own, and only a
//! notification wrong as a whole is an error. Nothing from a request is ever
//! used as a path or a command: the target labels are only names that the
//! capture planner resolves itself.

use serde::Deserialize;
use std::collections::BTreeMap;

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
    pub annotations: BTreeMap<String, String>,
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
    /// The `capture` label: a kind of the capture-kind table, checked by the planner.
    pub kind: String,
    pub status: AlertStatus,
    /// Process group (`group` label) the alert is about, if any.
    pub group: Option<String>,
    /// Cgroup path (`cgroup` label) the alert is about, if any.
    pub cgroup: Option<String>,
    /// A process id (`pid` label), if any.
    pub pid: Option<String>,
    /// The exporter instance whose series fired (`instance` label), if any.
    pub instance: Option<String>,
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    /// `capture_duration`, `pprof_url`, … (read by the planner and the capture kinds).
    pub annotations: BTreeMap<String, String>,
}

/// An alert that is not a valid capture request, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub alertname: String,
    pub fingerprint: String,
    pub reason: String,
}

/// Labels that name a capture target; an alert needs at least one.
pub const TARGET_LABELS: &[&str] = &["group", "cgroup", "pid"];
/// Longest label or annotation value accepted.
const MAX_LABEL_VALUE: usize = 1024;
/// Longest fingerprint accepted (Alertmanager's are 16 hex digits).
const MAX_FINGERPRINT: usize = 64;
/// Longest label name accepted.
const MAX_LABEL_NAME: usize = 128;
/// Most alerts accepted in one notification.
pub const MAX_ALERTS: usize = 1000;

/// Parses a notification and validates each alert. The error is for a notification wrong as a whole.
pub fn validate(body: &[u8]) -> Result<Vec<Result<CaptureRequest, Invalid>>, (u16, String)> {
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
    Ok(payload
        .alerts
        .iter()
        .enumerate()
        .map(|(i, alert)| {
            request(alert).map_err(|reason| Invalid {
                alertname: alert.labels.get("alertname").cloned().unwrap_or_default(),
                fingerprint: alert.fingerprint.clone(),
                reason: format!("alerts[{i}]: {reason}"),
            })
        })
        .collect())
}

/// Label names as Alertmanager sends them (never empty, never a control
/// character: it only sends `[a-zA-Z_][a-zA-Z0-9_]*`, or UTF-8 names in its
/// UTF-8 mode) and values without NUL (which no target name may hold).
fn check_labels(labels: &BTreeMap<String, String>, what: &str) -> Result<(), String> {
    for (name, value) in labels {
        if name.is_empty() || name.len() > MAX_LABEL_NAME || name.chars().any(char::is_control) {
            return Err(format!(
                "{what} name {} is empty, longer than {MAX_LABEL_NAME} bytes, or holds a control character (NUL included)",
                quoted(name)
            ));
        }
        if value.len() > MAX_LABEL_VALUE || value.contains('\0') {
            return Err(format!("{what} {} is longer than {MAX_LABEL_VALUE} bytes or contains NUL", quoted(name)));
        }
    }
    Ok(())
}

/// A name from the request as a message shows it: quoted, escaped, at most 64 characters.
fn quoted(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((at, _)) => format!("{:?}…", &name[..at]),
        None => format!("{name:?}"),
    }
}

/// Validates one alert (from the webhook or the Alertmanager API).
pub fn request(alert: &Alert) -> Result<CaptureRequest, String> {
    check_labels(&alert.labels, "label")?;
    check_labels(&alert.annotations, "annotation")?;
    let fingerprint = &alert.fingerprint;
    if fingerprint.is_empty()
        || fingerprint.len() > MAX_FINGERPRINT
        || !fingerprint.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "fingerprint {} is not Alertmanager's (letters and digits only, at most {MAX_FINGERPRINT}; Alertmanager sends 16 hex digits)",
            quoted(&alert.fingerprint)
        ));
    }
    let status = match alert.status.as_str() {
        "firing" => AlertStatus::Firing,
        "resolved" => AlertStatus::Resolved,
        other => return Err(format!("status {other:?} is neither \"firing\" nor \"resolved\"")),
    };
    let alertname = alert.labels.get("alertname").cloned().ok_or("label \"alertname\" is missing")?;
    let kind = alert.labels.get("capture").filter(|k| !k.is_empty()).cloned().ok_or_else(|| {
        format!("label \"capture\" is missing on {alertname}; route only alerts with a capture label here")
    })?;
    let label = |name: &str| alert.labels.get(name).filter(|v| !v.is_empty()).cloned();
    let (group, cgroup, pid) = (label("group"), label("cgroup"), label("pid"));
    if group.is_none() && cgroup.is_none() && pid.is_none() {
        return Err(format!("{alertname} has no target label: it needs one of {TARGET_LABELS:?}"));
    }
    Ok(CaptureRequest {
        alertname,
        kind,
        status,
        group,
        cgroup,
        pid,
        instance: label("instance"),
        fingerprint: alert.fingerprint.clone(),
        labels: alert.labels.clone(),
        annotations: alert.annotations.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(alerts: &str) -> String {
        format!(r#"{{"version":"4","status":"firing","receiver":"memleak","groupLabels":{{}},"alerts":[{alerts}]}}"#)
    }

    const GOOD: &str = r#"{"status":"firing","labels":{"alertname":"ProcessMemoryLeak","capture":"allocator-profile","group":"a_cachesvc","instance":"h:9487","severity":"warning"},"annotations":{"capture_duration":"1m"},"fingerprint":"abc"}"#;

    #[test]
    fn accepts_a_real_alertmanager_notification() {
        let requests = validate(payload(GOOD).as_bytes()).unwrap();
        let r = requests[0].as_ref().unwrap();
        assert_eq!(
            (r.alertname.as_str(), r.kind.as_str(), r.status),
            ("ProcessMemoryLeak", "allocator-profile", AlertStatus::Firing)
        );
        assert_eq!(
            (r.group.as_deref(), r.cgroup.as_deref(), r.instance.as_deref()),
            (Some("a_cachesvc"), None, Some("h:9487"))
        );
        assert_eq!(r.annotations["capture_duration"], "1m");
        assert_eq!(r.fingerprint, "abc");
    }

    #[test]
    fn a_request_wrong_as_a_whole_is_an_error() {
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
    }

    #[test]
    fn each_bad_alert_is_its_own_outcome() {
        let reason = |alert: String| {
            let all = validate(payload(&format!("{GOOD},{alert}")).as_bytes()).unwrap();
            assert!(all[0].is_ok(), "the good alert stays good");
            all[1].clone().unwrap_err().reason
        };
        assert!(reason(GOOD.replace(r#""group":"a_cachesvc","#, "")).contains("no target label"));
        assert!(reason(GOOD.replace(r#""capture":"allocator-profile","#, "")).contains("\"capture\" is missing"));
        assert!(reason(GOOD.replace(r#""status":"firing""#, r#""status":"pending""#)).contains("alerts[1]: status"));
        assert!(reason(GOOD.replace("a_cachesvc", &"x".repeat(2000))).contains("longer than"));
        assert!(reason(GOOD.replace(r#""fingerprint":"abc""#, r#""fingerprint":"../x""#)).contains("fingerprint"));
        assert!(reason(GOOD.replace(r#""fingerprint":"abc""#, r#""fingerprint":"""#)).contains("fingerprint"), "empty");
        assert!(reason(GOOD.replace(r#""1m""#, r#""a\u0000b""#)).contains("annotation"));
        // An unknown kind is the planner's to judge (against the capture-kind table).
        assert!(validate(payload(&GOOD.replace("allocator-profile", "rm -rf")).as_bytes()).unwrap()[0].is_ok());
    }

    #[test]
    fn label_names_and_values_alertmanager_never_sends_are_refused_with_the_alert_index() {
        let cases = [
            (r#""gr\u0000oup":"x","#, "label name \"gr\\0oup\" is empty"),
            (r#""":"x","#, "label name \"\" is empty"),
            (r#""a\u001b[31m":"x","#, "label name \"a\\u{1b}[31m\""),
            (r#""a\nb":"x","#, "control character"),
            (r#""note":"x\u0000y","#, "label \"note\" is longer than 1024 bytes or contains NUL"),
        ];
        for (extra, needle) in cases {
            let bad = GOOD.replace(r#"{"alertname""#, &format!(r#"{{{extra}"alertname""#));
            let all = validate(payload(&format!("{GOOD},{bad}")).as_bytes()).unwrap();
            assert!(all[0].is_ok(), "the good alert stays good");
            let reason = all[1].clone().unwrap_err().reason;
            assert!(reason.starts_with("alerts[1]: ") && reason.contains(needle), "{extra}: {reason}");
        }
        let huge_name = GOOD.replace(r#""group""#, &format!("{:?}", "g".repeat(1 << 20)));
        let reason = validate(payload(&huge_name).as_bytes()).unwrap()[0].clone().unwrap_err().reason;
        assert!(reason.len() < 300 && reason.contains("longer than 128 bytes"), "{}", &reason[..reason.len().min(300)]);
    }
}
