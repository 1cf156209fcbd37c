//! `POST /api/v1/alerts`: Alertmanager's webhook receiver, where alerts ask for
//! captures. Every request is authenticated (a bearer token from
//! `--webhook.token-file`, or else the web configuration's basic auth or
//! verified client certificate) unless the exporter listens on loopback only, and
//! must declare a JSON body (`Content-Type: application/json`: a web page can
//! send text or form bodies to a loopback exporter without the browser asking
//! first, but not JSON); both are checked before the body is read. The body
//! is bounded in size and time; each alert is validated into a `CaptureRequest`
//! and handed to the capture planner. The answer is 200 with one outcome per
//! alert (a bad alert must not drop the good ones: Alertmanager never retries
//! a 4xx); only a request wrong as a whole gets a 4xx.

mod bodies;
pub mod payload;

use crate::capture::Captures;
use crate::capture::kinds::metric_label;
use crate::capture::plan::{Outcome, Via};
use crate::self_metrics::{CAPTURE_REJECTIONS, CAPTURE_REQUESTS, Counters, WEBHOOK_REQUESTS};
use crate::web_config::{Authenticated, WebConfig};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::sync::SemaphorePermit;

/// Longest token file read: a token is a line, not a file's worth.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// Who may call the webhook.
#[derive(Debug)]
pub enum Access {
    /// Requests must carry `Authorization: Bearer <token>`.
    Token(Vec<u8>),
    /// The exporter listens on loopback only: local callers need no token.
    LoopbackOnly,
    /// Listening beyond loopback without a token: only requests that `--web.config.file`
    /// authenticated (a basic-auth user, a verified client certificate) are answered.
    WebConfigOnly,
}

impl Access {
    /// Decides from the flags; a token file that cannot be read is a start-up error, and so is a
    /// token file beside basic-auth users (both need the Authorization header, which a request has once).
    pub fn from_settings(
        token_file: Option<&Path>,
        listen: SocketAddr,
        web: Option<&WebConfig>,
    ) -> anyhow::Result<Access> {
        if let (Some(path), Some(web)) = (token_file, web)
            && !web.users.is_empty()
        {
            anyhow::bail!(
                "--webhook.token-file {} and basic_auth_users of --web.config.file both need the request's \
                 Authorization header, and a request (Alertmanager's too) carries one: remove the token file \
                 (the webhook then takes the basic-auth users: set basic_auth in Alertmanager's webhook \
                 http_config), or the users",
                path.display()
            );
        }
        match token_file {
            Some(path) => {
                let text = crate::bounded_file::read_text(path, MAX_TOKEN_FILE_BYTES, "--webhook.token-file")?;
                let token = text.trim();
                if token.is_empty() {
                    anyhow::bail!("--webhook.token-file {} is empty; put the bearer token in it", path.display());
                }
                Ok(Access::Token(token.as_bytes().to_vec()))
            }
            None if listen.ip().is_loopback() => Ok(Access::LoopbackOnly),
            None => Ok(Access::WebConfigOnly),
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Access::Token(_) => "bearer token",
            Access::LoopbackOnly => "loopback only, no token",
            Access::WebConfigOnly => {
                "beyond loopback without --webhook.token-file: requests --web.config.file authenticated"
            }
        }
    }

    /// Whether the request may be answered (the webhook and the captures API share this);
    /// `authenticated`: the web configuration authenticated it (see `web_config::Authenticated`).
    pub fn check(&self, headers: &HeaderMap, authenticated: bool) -> Result<(), (StatusCode, String)> {
        match self {
            Access::LoopbackOnly => addressed_to_loopback(headers),
            Access::WebConfigOnly if authenticated => Ok(()),
            Access::WebConfigOnly => Err((
                StatusCode::FORBIDDEN,
                "the webhook is disabled: the exporter listens beyond loopback, no --webhook.token-file is set and \
                 --web.config.file authenticated no one (basic_auth_users, or RequireAndVerifyClientCert)"
                    .into(),
            )),
            Access::Token(expected) => {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim_start().split_once(' '))
                    // The scheme is case-insensitive (RFC 9110, 11.1).
                    .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then_some(token))
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

/// A loopback exporter answers only requests addressed to a loopback name: a web page whose
/// domain an attacker rebinds to 127.0.0.1 (DNS rebinding) is same-origin with it and could post
/// JSON, but its requests name the attacker's domain in `Host` (and `Origin`).
fn addressed_to_loopback(headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
    for name in [header::HOST, header::ORIGIN] {
        let Some(value) = headers.get(&name) else { continue };
        let text = value.to_str().unwrap_or("");
        let authority = if name == header::ORIGIN {
            text.strip_prefix("http://").or_else(|| text.strip_prefix("https://")).unwrap_or("")
        } else {
            text
        };
        if !is_loopback_authority(authority) {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "{name} {:?} is not a loopback name: this exporter listens on loopback only and answers requests \
                     addressed to localhost, 127.0.0.1 or [::1] (a rebound domain must not reach it)",
                    text.chars().take(100).collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

/// `HOST[:PORT]` whose host is `localhost` (or a name under it, RFC 6761) or a loopback address.
fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(h, _)| h),
        None => match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        },
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// What the webhook handler needs.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub access: Arc<Access>,
    pub counters: Arc<Counters>,
    pub captures: Arc<Captures>,
    /// `--webhook.max-body-bytes`, reserved from the shared budget when a request sends no length.
    pub max_body_bytes: usize,
}

/// The handler of `POST /api/v1/alerts`.
pub async fn receive(State(hook): State<Webhook>, request: Request) -> Response {
    let outcome = match read(&hook, request).await {
        Ok((body, room)) => {
            // Planning resolves targets in /proc and writes to the spool: off the async threads.
            let hook = hook.clone();
            tokio::task::spawn_blocking(move || {
                let outcomes = handle(&hook, &body);
                drop((body, room));
                outcomes
            })
            .await
            .unwrap_or_else(|e| Err((StatusCode::INTERNAL_SERVER_ERROR, format!("planning failed: {e}"))))
        }
        Err(refused) => Err(refused),
    };
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
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("accept-post"), HeaderValue::from_static("application/json"));
    }
    response
}

/// The body of an authorized request declared JSON, read within the route's
/// DefaultBodyLimit, the connection's body deadline and the memory budget
/// (whose reservation is held as long as the body is).
async fn read(hook: &Webhook, request: Request) -> Result<(Bytes, SemaphorePermit<'static>), (StatusCode, String)> {
    hook.access.check(request.headers(), request.extensions().get::<Authenticated>().is_some())?;
    crate::headers::require_json(request.headers()).map_err(|why| (StatusCode::UNSUPPORTED_MEDIA_TYPE, why))?;
    let room = bodies::reserve(request.headers(), hook.max_body_bytes)?;
    let body = Bytes::from_request(request, &()).await.map_err(|rejection| {
        let status =
            if crate::http::body::timed_out(&rejection) { StatusCode::REQUEST_TIMEOUT } else { rejection.status() };
        (status, format!("cannot read the body: {}", rejection.body_text()))
    })?;
    Ok((body, room))
}

fn handle(hook: &Webhook, body: &[u8]) -> Result<Vec<Outcome>, (StatusCode, String)> {
    let requests = payload::validate(body)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_loopback_exporter_answers_only_requests_addressed_to_loopback() {
        let access = Access::LoopbackOnly;
        for host in ["127.0.0.1:9487", "localhost", "LOCALHOST:1", "[::1]:9487", "127.1.2.3", "app.localhost:80"] {
            assert!(access.check(&with(&[(header::HOST, host)]), false).is_ok(), "{host}");
        }
        assert!(access.check(&HeaderMap::new(), false).is_ok(), "HTTP/1.0 without a Host");
        for host in
            ["attacker.example", "attacker.example:9487", "127.0.0.1.attacker.example", "[::2]:1", "", "10.0.0.1"]
        {
            let (status, why) = access.check(&with(&[(header::HOST, host)]), false).unwrap_err();
            assert!(status == StatusCode::FORBIDDEN && why.contains("not a loopback name"), "{host}: {why}");
        }
        let rebound = with(&[(header::HOST, "127.0.0.1:9487"), (header::ORIGIN, "http://attacker.example")]);
        assert!(access.check(&rebound, false).is_err(), "a foreign Origin");
        assert!(access.check(&with(&[(header::ORIGIN, "null")]), false).is_err());
        assert!(access.check(&with(&[(header::ORIGIN, "http://localhost:3000")]), false).is_ok());
    }
}
