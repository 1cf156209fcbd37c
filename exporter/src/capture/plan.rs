//! From an alert to a capture plan, or to the reason there is none: the
//! alert's status (a resolved alert cancels its capture), its host, its kind,
//! its target on this host, its duration, and the scheduler's limits. Each
//! alert of a batch gets its own outcome; none fails the others.

use super::Captures;
use super::kinds::{self, Refusal, Setup, Status};
use super::scheduler::Start;
use super::spool::Info;
use super::target::{Named, Unresolved};
use crate::self_metrics::CAPTURES;
use crate::webhook::payload::{AlertStatus, CaptureRequest};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// How the alert reached the exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Webhook,
    Alertmanager,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Webhook => "webhook",
            Via::Alertmanager => "alertmanager",
        }
    }
}

/// What became of one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub alertname: String,
    pub fingerprint: String,
    /// accepted, duplicate, not-this-host, no-such-target, invalid, unavailable, refused, cancelled, resolved.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The capture started or cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
}

impl Captures {
    /// Plans and starts (or cancels) the capture an alert asks for.
    pub fn handle(&self, request: &CaptureRequest, via: Via) -> Outcome {
        let outcome = |outcome: &'static str, reason: Option<String>, capture: Option<String>| Outcome {
            alertname: request.alertname.clone(),
            fingerprint: request.fingerprint.clone(),
            outcome,
            reason,
            capture,
        };
        let scheduler = match &self.scheduler {
            Ok(s) => s,
            Err(why) => {
                self.counters
                    .inc(&crate::self_metrics::CAPTURE_REJECTIONS, &[kinds::metric_label(&request.kind), "spool"]);
                return outcome("refused", Some(why.clone()), None);
            }
        };
        let reject = |reason: &'static str, name: &'static str, message: String| {
            scheduler.refused(
                kinds::metric_label(&request.kind),
                reason,
                &request.fingerprint,
                &request.alertname,
                &message,
            );
            outcome(name, Some(message), None)
        };
        if request.status == AlertStatus::Resolved {
            return match scheduler.cancel(&request.fingerprint, "the alert was resolved") {
                Some(id) => {
                    tracing::info!(fingerprint = %request.fingerprint, capture = %id, "alert resolved: cancelling its capture");
                    outcome("cancelled", None, Some(id))
                }
                None => outcome("resolved", None, None),
            };
        }
        if let Err(why) = self.host.check(&request.labels, via == Via::Webhook) {
            return reject("not_this_host", "not-this-host", why);
        }
        let Some(kind) = kinds::find(&request.kind) else {
            let known: Vec<&str> = kinds::KINDS.iter().map(|k| k.id).collect();
            return reject(
                "unknown_kind",
                "invalid",
                format!(
                    "capture kind {:?} is not built in this exporter; known kinds: {}",
                    request.kind,
                    known.join(", ")
                ),
            );
        };
        if let Some(why) = scheduler.duplicate(&request.fingerprint) {
            return reject("duplicate", "duplicate", why);
        }
        if let Some(why) = foreign_option(request, kind.id) {
            return reject("invalid", "invalid", why);
        }
        let duration = match duration(request, kind.default_duration, scheduler.limits().max_duration) {
            Ok(d) => d,
            Err(why) => return reject("invalid", "invalid", why),
        };
        let named = Named { group: request.group.clone(), cgroup: request.cgroup.clone(), pid: request.pid.clone() };
        let target = match self.resolver.resolve(&named) {
            Ok(t) => t,
            Err(Unresolved::Invalid(why)) => return reject("invalid", "invalid", why),
            Err(Unresolved::NoSuchTarget(why)) => return reject("no_such_target", "no-such-target", why),
        };
        let setup = Setup { context: &self.context, target: &target, annotations: &request.annotations };
        let run = match (kind.prepare)(&setup) {
            Ok(run) => run,
            Err(Refusal::Invalid(why)) => return reject("invalid", "invalid", why),
            Err(Refusal::Unavailable(why)) => {
                self.counters.inc(&CAPTURES, &[kind.id, "unavailable"]);
                tracing::info!(fingerprint = %request.fingerprint, alertname = %request.alertname, capture = kind.id, "nothing to capture: {why}");
                return outcome("unavailable", Some(why), None);
            }
        };
        let canonical = &target.named;
        let names = [("group", &canonical.group), ("cgroup", &canonical.cgroup), ("pid", &canonical.pid)]
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
            .collect();
        let info = Info {
            id: scheduler.next_id(),
            kind: kind.id.to_owned(),
            target: names,
            pids: target.pids(),
            fingerprint: request.fingerprint.clone(),
            labels: request.labels.clone(),
            via: via.as_str().to_owned(),
            status: Status::Running,
            reason: None,
            phase: "starting".into(),
            started: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            duration_seconds: duration.as_secs_f64(),
            elapsed_seconds: None,
            summary: None,
            files: Vec::new(),
        };
        match scheduler.start(Start { kind, run, info, target, duration }) {
            Ok(id) => outcome("accepted", None, Some(id)),
            Err(refused) => reject(
                refused.reason,
                if refused.reason == "duplicate" { "duplicate" } else { "refused" },
                refused.message,
            ),
        }
    }
}

/// Annotations that are options of one kind only.
const KIND_OPTIONS: &[(&str, &str)] =
    &[("reachability", "sampler"), ("ebpf_malloc_mode", "ebpf-malloc"), ("pprof_url", "allocator-profile")];

/// Why the request names an option of another kind: asked of a kind that would ignore it, it would
/// not do what the alert's author meant.
fn foreign_option(request: &CaptureRequest, kind: &str) -> Option<String> {
    KIND_OPTIONS.iter().find(|(annotation, of)| *of != kind && request.annotations.contains_key(*annotation)).map(
        |(annotation, of)| {
            format!(
                "annotation {annotation} is an option of {of} captures, which a {kind} capture would ignore: remove it, or ask for capture={of}"
            )
        },
    )
}

/// The window: the `capture_duration` annotation (cut to the maximum), or the kind's default.
fn duration(request: &CaptureRequest, default: Duration, max: Duration) -> Result<Duration, String> {
    let Some(text) = request.annotations.get("capture_duration") else { return Ok(default.min(max)) };
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("capture_duration {text:?} is not a duration (e.g. 2m): {e}"))?;
    if d.is_zero() {
        return Err("capture_duration must be more than 0s".into());
    }
    Ok(d.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn asking(kind: &str, annotations: &[(&str, &str)]) -> CaptureRequest {
        CaptureRequest {
            alertname: "A".into(),
            kind: kind.into(),
            status: AlertStatus::Firing,
            group: Some("svc".into()),
            cgroup: None,
            pid: None,
            instance: None,
            fingerprint: "0123456789abcdef".into(),
            labels: BTreeMap::new(),
            annotations: annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn an_option_of_another_kind_is_refused_naming_the_kind_it_belongs_to() {
        let why = foreign_option(&asking("staleness", &[("reachability", "true")]), "staleness").unwrap();
        assert!(why.contains("annotation reachability is an option of sampler captures"), "{why}");
        assert!(foreign_option(&asking("sampler", &[("reachability", "true")]), "sampler").is_none());
        assert!(foreign_option(&asking("sampler", &[("pprof_url", "http://x")]), "sampler").is_some());
        assert!(foreign_option(&asking("ebpf-malloc", &[("ebpf_malloc_mode", "full")]), "ebpf-malloc").is_none());
        // Annotations no kind owns (a summary, a runbook URL) are the alert's business.
        assert!(
            foreign_option(&asking("sampler", &[("summary", "x"), ("capture_duration", "1m")]), "sampler").is_none()
        );
    }
}
