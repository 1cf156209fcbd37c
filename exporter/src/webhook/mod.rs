//! `POST /api/v1/alerts`: Alertmanager's webhook receiver, where alerts ask for
//! captures. Every request is authenticated (a bearer token from
//! `--webhook.token-file`) unless the exporter listens on loopback only; the body
//! is bounded; each alert is validated into a `CaptureRequest` and handed to
//! the capture planner. The answer is 200 with one outcome per alert (a bad
//! alert must not drop the good ones: Alertmanager never retries a 4xx); only
//! a request wrong as a whole gets a 4xx.

pub mod payload;

use crate::capture::Captures;
use crate::capture::kinds::metric_label;
use crate::capture::plan::{Outcome, Via};
use crate::self_metrics::{CAPTURE_REJECTIONS, CAPTURE_REQUESTS, Counters, WEBHOOK_REQUESTS};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Who may call the webhook.
#[derive(Debug)]
pub enum Access {
    /// Requests must carry `Authorization: Bearer <token>`.
    Token(Vec<u8>),
    /// The exporter listens on loopback only: local callers need no token.
    LoopbackOnly,
    /// Listening beyond loopback without a token: the webhook refuses everything.
    Disabled,
}

impl Access {
    /// Decides from the flags; a token file that cannot be read is a start-up error.
    pub fn from_settings(token_file: Option<&Path>, listen: SocketAddr) -> anyhow::Result<Access> {
        match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read --webhook.token-file {}: {e}", path.display()))?;
                let token = text.trim();
                if token.is_empty() {
                    anyhow::bail!("--webhook.token-file {} is empty; put the bearer token in it", path.display());
                }
                Ok(Access::Token(token.as_bytes().to_vec()))
            }
            None if listen.ip().is_loopback() => Ok(Access::LoopbackOnly),
            None => Ok(Access::Disabled),
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Access::Token(_) => "bearer token",
            Access::LoopbackOnly => "loopback only, no token",
            Access::Disabled => "disabled: listening beyond loopback without --webhook.token-file",
        }
    }

    /// Whether the request may be answered (the webhook and the captures API share this).
    pub fn check(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        match self {
            Access::LoopbackOnly => Ok(()),
            Access::Disabled => Err((
                StatusCode::FORBIDDEN,
                "the webhook is disabled: the exporter listens beyond loopback and no --webhook.token-file is set"
                    .into(),
            )),
            Access::Token(expected) => {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .ok_or((StatusCode::UNAUTHORIZED, "missing `Authorization: Bearer <token>` header".to_owned()))?;
                if bool::from(given.trim().as_bytes().ct_eq(expected)) {
                    Ok(())
                } else {
                    Err((StatusCode::UNAUTHORIZED, "wrong bearer token".into()))
                }
            }
        }
    }
}

/// What the webhook handler needs.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub access: Arc<Access>,
    pub counters: Arc<Counters>,
    pub captures: Arc<Captures>,
}

/// The handler of `POST /api/v1/alerts`.
pub async fn receive(State(hook): State<Webhook>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    // Planning resolves targets in /proc and writes to the spool: off the async threads.
    let planned = {
        let hook = hook.clone();
        tokio::task::spawn_blocking(move || handle(&hook, &headers, body)).await
    };
    let outcome = planned.unwrap_or_else(|e| Err((StatusCode::INTERNAL_SERVER_ERROR, format!("planning failed: {e}"))));
    let (status, json) = match outcome {
        Ok(outcomes) => (StatusCode::OK, serde_json::json!({ "status": "ok", "outcomes": outcomes })),
        Err((status, message)) => {
            tracing::warn!(code = status.as_u16(), "webhook request rejected: {message}");
            (status, serde_json::json!({ "status": "error", "error": message }))
        }
    };
    hook.counters.inc(&WEBHOOK_REQUESTS, &[status.as_str()]);
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], json.to_string()).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn handle(
    hook: &Webhook,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<Outcome>, (StatusCode, String)> {
    hook.access.check(headers)?;
    let body =
        body.map_err(|rejection| (rejection.status(), format!("cannot read the body: {}", rejection.body_text())))?;
    let requests = payload::validate(&body)
        .map_err(|(code, message)| (StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST), message))?;
    Ok(requests.iter().map(|r| plan(hook, r, Via::Webhook)).collect())
}

/// Logs and counts one alert, and hands a valid one to the planner (the poller does the same).
pub fn plan(hook: &Webhook, request: &Result<payload::CaptureRequest, payload::Invalid>, via: Via) -> Outcome {
    match request {
        Ok(r) => {
            hook.counters.inc(&CAPTURE_REQUESTS, &[metric_label(&r.kind), r.status.as_str()]);
            tracing::info!(
                alertname = %r.alertname,
                capture = %r.kind,
                status = r.status.as_str(),
                group = r.group.as_deref().unwrap_or(""),
                cgroup = r.cgroup.as_deref().unwrap_or(""),
                instance = r.instance.as_deref().unwrap_or(""),
                fingerprint = %r.fingerprint,
                via = via.as_str(),
                "capture requested"
            );
            // The planner logs its decision once, with the fingerprint.
            hook.captures.handle(r, via)
        }
        Err(invalid) => {
            hook.counters.inc(&CAPTURE_REJECTIONS, &["unknown", "invalid"]);
            tracing::warn!(fingerprint = %invalid.fingerprint, alertname = %invalid.alertname, "alert refused: {}", invalid.reason);
            Outcome {
                alertname: invalid.alertname.clone(),
                fingerprint: invalid.fingerprint.clone(),
                outcome: "invalid",
                reason: Some(invalid.reason.clone()),
                capture: None,
            }
        }
    }
}
