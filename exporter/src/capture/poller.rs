//! The Alertmanager poller (`--alertmanager.url`, repeatable for the peers of
//! an HA cluster): fleet routing without a relay. Every interval it asks each
//! peer's v2 API for the active alerts that carry a `capture` label (not
//! silenced, not inhibited), merges them by fingerprint, and hands each new
//! one to the same planner as the webhook (so the two deduplicate); one refused
//! for a passing reason is planned again on later polls. An alert
//! that leaves the active set (resolved, expired, silenced) cancels the
//! capture it started.

use super::http::{self, Limits, Url};
use super::plan::Via;
use crate::options::alertmanager::Config;
use crate::webhook::payload::{self, Alert};
use crate::webhook::{self, Webhook};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Outcomes planned again on the next poll while the alert stays active.
const TRANSIENT: &[&str] = &["refused", "unavailable"];
/// Most alerts read from one answer.
const MAX_ALERTS: usize = 10_000;
const LIMITS: Limits = Limits {
    connect_timeout: Duration::from_secs(3),
    read_timeout: Duration::from_secs(10),
    deadline: Duration::from_secs(20),
    max_body_bytes: 16 << 20,
};

/// One alert of `GET /api/v2/alerts`.
#[derive(Debug, Deserialize)]
struct Gettable {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    status: GettableStatus,
}

#[derive(Debug, Default, Deserialize)]
struct GettableStatus {
    #[serde(default)]
    state: String,
}

/// Starts polling on a thread of its own.
pub fn start(config: Config, hook: Webhook) -> std::io::Result<()> {
    std::thread::Builder::new().name("alertmanager-poller".into()).spawn(move || run(&config, &hook)).map(|_| ())
}

fn run(config: &Config, hook: &Webhook) {
    // Fingerprints seen active in the last answered poll.
    let mut active: BTreeSet<String> = BTreeSet::new();
    // Active fingerprints whose outcome is final (planned, or refused for good).
    let mut settled: BTreeSet<String> = BTreeSet::new();
    let mut unreachable = false;
    loop {
        match poll(&config.urls) {
            Ok(alerts) => {
                if unreachable {
                    tracing::info!("Alertmanager answers again");
                    unreachable = false;
                }
                let now: BTreeSet<String> = alerts.keys().cloned().collect();
                for fingerprint in active.difference(&now) {
                    if let Ok(s) = &hook.captures.scheduler
                        && let Some(id) = s.cancel(fingerprint, "the alert is no longer active in Alertmanager")
                    {
                        tracing::info!(fingerprint = %fingerprint, capture = %id, "alert no longer active: cancelling its capture");
                    }
                }
                for (fingerprint, alert) in &alerts {
                    if !settled.contains(fingerprint) {
                        let outcome = webhook::plan(hook, &to_request(alert), Via::Alertmanager);
                        // A refusal for a passing reason (concurrency, rate, cooldown, spool, a
                        // target not yet offering a profile) is tried again on the next poll.
                        if !TRANSIENT.contains(&outcome.outcome) {
                            settled.insert(fingerprint.clone());
                        }
                    }
                }
                settled.retain(|f| now.contains(f));
                active = now;
            }
            Err(why) => {
                if !unreachable {
                    tracing::warn!("cannot poll Alertmanager: {why}; running captures go on, and polling is retried");
                    unreachable = true;
                }
            }
        }
        std::thread::sleep(config.interval);
    }
}

/// The active capture alerts of every peer, by fingerprint; an error when no peer answered.
fn poll(urls: &[Url]) -> Result<BTreeMap<String, Alert>, String> {
    let mut merged = BTreeMap::new();
    let mut errors = Vec::new();
    let mut answered = false;
    for base in urls {
        let url = Url {
            target: format!(
                "{}/api/v2/alerts?active=true&silenced=false&inhibited=false&unprocessed=false&filter=capture%3D~%22.%2B%22",
                base.target.trim_end_matches('/')
            ),
            ..base.clone()
        };
        // The operator named these peers; their redirects are not followed elsewhere.
        let body = match http::get(&url, LIMITS, None) {
            Ok(b) => b,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let alerts: Vec<Gettable> = match serde_json::from_slice(&body) {
            Ok(a) => a,
            Err(e) => {
                errors.push(format!("{url}: not Alertmanager's v2 alert list: {e}"));
                continue;
            }
        };
        answered = true;
        for a in alerts.into_iter().filter(|a| a.status.state == "active").take(MAX_ALERTS) {
            merged.entry(a.fingerprint.clone()).or_insert(Alert {
                status: "firing".into(),
                labels: a.labels,
                annotations: a.annotations,
                fingerprint: a.fingerprint,
            });
        }
    }
    if answered { Ok(merged) } else { Err(errors.join("; ")) }
}

fn to_request(alert: &Alert) -> Result<payload::CaptureRequest, payload::Invalid> {
    payload::request(alert).map_err(|reason| payload::Invalid {
        alertname: alert.labels.get("alertname").cloned().unwrap_or_default(),
        fingerprint: alert.fingerprint.clone(),
        reason,
    })
}
