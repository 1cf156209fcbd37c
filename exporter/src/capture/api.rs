//! The captures API: `GET /api/v1/captures` (the list, `?fingerprint=` for one
//! alert's), `/api/v1/captures/{id}`
//! (one capture with its full summary) and its files (`profile.pb.gz`,
//! `end.pb.gz`, `flamegraph.svg`, `folded`, `summary.json`). Profiles reveal
//! code paths, so the webhook's authentication applies: a bearer token (or the
//! web configuration's authentication) unless the exporter listens on loopback only.

use super::Captures;
use crate::web_config::Authenticated;
use crate::webhook::Access;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// The list's filter.
#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    fingerprint: Option<String>,
}

/// What the API's handlers share.
#[derive(Debug, Clone)]
pub struct Api {
    pub access: Arc<Access>,
    pub captures: Arc<Captures>,
}

fn error(status: StatusCode, message: String) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "status": "error", "error": message }).to_string(),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The spool, once the caller is allowed; the error is the answer's status and message.
fn spool(
    api: &Api,
    headers: &HeaderMap,
    web: Option<Extension<Authenticated>>,
) -> Result<Arc<super::spool::Spool>, (StatusCode, String)> {
    api.access.check(headers, web.is_some())?;
    match &api.captures.scheduler {
        Ok(s) => Ok(Arc::clone(s.spool())),
        Err(why) => Err((StatusCode::SERVICE_UNAVAILABLE, why.clone())),
    }
}

/// `GET /api/v1/captures[?fingerprint=FP]`: every capture in the spool (or the alert's), newest first.
pub async fn list(
    State(api): State<Api>,
    headers: HeaderMap,
    web: Option<Extension<Authenticated>>,
    Query(query): Query<ListQuery>,
) -> Response {
    match spool(&api, &headers, web) {
        Ok(spool) => {
            let mut captures = spool.list();
            if let Some(fingerprint) = &query.fingerprint {
                captures.retain(|c| &c.fingerprint == fingerprint);
            }
            let body = json!({ "status": "ok", "captures": captures });
            ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        Err((status, message)) => error(status, message),
    }
}

/// `GET /api/v1/captures/{id}`: the capture and its full summary.
pub async fn one(
    State(api): State<Api>,
    headers: HeaderMap,
    web: Option<Extension<Authenticated>>,
    Path(id): Path<String>,
) -> Response {
    let spool = match spool(&api, &headers, web) {
        Ok(s) => s,
        Err((status, message)) => return error(status, message),
    };
    let Some(info) = spool.get(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no capture {id:?}; GET /api/v1/captures lists them"));
    };
    let summary = spool.read(&id, "summary.json").and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let body = json!({ "status": "ok", "capture": info, "summary": summary });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// `GET /api/v1/captures/{id}/{file}`: one output file.
pub async fn file(
    State(api): State<Api>,
    headers: HeaderMap,
    web: Option<Extension<Authenticated>>,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    let spool = match spool(&api, &headers, web) {
        Ok(s) => s,
        Err((status, message)) => return error(status, message),
    };
    let content_type = match name.as_str() {
        "profile.pb.gz" | "end.pb.gz" => "application/octet-stream",
        "flamegraph.svg" => "image/svg+xml",
        "folded" => "text/plain; charset=utf-8",
        "summary.json" => "application/json",
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "no file {name:?}: a capture serves profile.pb.gz, end.pb.gz, flamegraph.svg, folded, summary.json"
                ),
            );
        }
    };
    let read = tokio::task::spawn_blocking(move || spool.read(&id, &name).ok_or((id, name))).await;
    match read {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Ok(Err((id, name))) => {
            error(StatusCode::NOT_FOUND, format!("capture {id:?} has no {name} (yet, or it was evicted)"))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the spool failed: {e}")),
    }
}
