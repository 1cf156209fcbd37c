//! Driving one capture through the webhook and the captures API (the sampler and staleness kinds' tests).

use super::{Exporter, request};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// An alert asking for a capture of `kind`, with extra `labels` and `annotations` (`capture_duration`, …).
pub fn alert(kind: &str, fingerprint: &str, labels: Value, annotations: Value) -> Value {
    let mut all = json!({ "alertname": "ProcessMemoryLeak", "capture": kind, "severity": "warning" });
    all.as_object_mut().unwrap().extend(labels.as_object().unwrap().clone());
    json!({ "status": "firing", "labels": all, "annotations": annotations, "fingerprint": fingerprint })
}

/// The state letter of `/proc/PID/status` (`S`, `R`, `t` for a ptrace stop…), or `None` once gone.
pub fn state(pid: u32) -> Option<char> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("State:")).and_then(|s| s.trim().chars().next())
}

/// POSTs one alert to the webhook; its outcome.
pub fn post(exporter: &Exporter, alert: Value) -> Value {
    post_all(exporter, &[alert])[0].clone()
}

/// POSTs alerts to the webhook in one notification; the outcomes of its 200 answer.
pub fn post_all(exporter: &Exporter, alerts: &[Value]) -> Vec<Value> {
    let body = json!({ "version": "4", "status": "firing", "receiver": "memleak", "alerts": alerts }).to_string();
    let (status, reply) = request(exporter.port, "POST", "/api/v1/alerts", "", &body);
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(status, 200, "{reply}");
    reply["outcomes"].as_array().unwrap().clone()
}

/// The capture's entry in the captures list (status, phase, short summary).
pub fn capture(exporter: &Exporter, id: &str) -> Value {
    let (status, body) = request(exporter.port, "GET", "/api/v1/captures", "", "");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let list: Value = serde_json::from_slice(&body).unwrap();
    list["captures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not listed"))
}

/// The capture's full summary (totals, top sites, records).
pub fn summary(exporter: &Exporter, id: &str) -> Value {
    let (status, body) = request(exporter.port, "GET", &format!("/api/v1/captures/{id}"), "", "");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice::<Value>(&body).unwrap()["summary"].clone()
}

/// Waits (60 s at most) until `done` holds for capture `id`.
pub fn wait_for(exporter: &Exporter, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    poll(exporter, id, what, || capture(exporter, id), done)
}

/// Fetches capture `id` with `fetch` until `done` holds (60 s at most: a hang fails the test).
pub fn poll(
    exporter: &Exporter,
    id: &str,
    what: &str,
    fetch: impl Fn() -> Value,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = fetch();
        if done(&c) {
            return c;
        }
        assert!(Instant::now() < deadline, "capture {id} never became {what}: {c}\n{}", exporter.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the tests that need root can run; under CI=true (which runs as root) they must.
pub fn privileged(what: &str) -> bool {
    if super::is_root() {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI runs as root: {what} must run there");
    eprintln!("SKIP: {what} needs root");
    false
}
