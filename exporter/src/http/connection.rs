//! One connection's service in front of the routes: it marks the connection
//! busy for the length of each request (idle connections are the first to
//! give way, see `admission`), gives each request body its deadline, and turns
//! a body that missed it into 408 with the connection closed, whatever the
//! route answered. With `--web.config.file` it authenticates every request
//! before any route sees it (401 with `WWW-Authenticate: Basic` when basic
//! auth fails) and adds the configured response headers to every answer.

use super::admission::{Busy, Ticket};
use super::body::TimedBody;
use super::refusals::{Reason, Refusals};
use crate::web_config::{Authenticated, Source};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::ServiceExt;

#[derive(Debug, Clone)]
pub struct ConnectionService {
    pub app: Router,
    pub ticket: Arc<Ticket>,
    pub body_timeout: Duration,
    pub peer: SocketAddr,
    /// The web configuration, when `--web.config.file` is given.
    pub web: Option<Arc<Source>>,
    /// The connection's client certificate was verified against the web config's client CA.
    pub client_verified: bool,
    pub refusals: Arc<Refusals>,
}

type Reply = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Reply;

    fn call(&self, request: Request<Incoming>) -> Reply {
        let busy = self.ticket.busy();
        let (parts, body) = request.into_parts();
        let (method, path) = (parts.method.clone(), parts.uri.path().to_owned());
        let (body, expired) = if http_body::Body::is_end_stream(&body) {
            (Body::new(body), None)
        } else {
            let (timed, expired) = TimedBody::new(body, self.body_timeout);
            (Body::new(timed), Some(expired))
        };
        let app = self.app.clone();
        let (peer, limit) = (self.peer, self.body_timeout);
        let (web, client_verified) = (self.web.clone(), self.client_verified);
        let refusals = Arc::clone(&self.refusals);
        Box::pin(async move {
            let mut request = Request::from_parts(parts, body);
            let config = web.as_ref().map(|w| w.current());
            let refused = match (&web, &config) {
                (Some(web), Some(config)) if !config.users.is_empty() => {
                    let given = request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
                    if web.verifier.check(&config.users, given).await {
                        request.extensions_mut().insert(Authenticated);
                        None
                    } else {
                        refusals.refused(Reason::Unauthorized, peer, "");
                        Some(unauthorized())
                    }
                }
                _ => {
                    if client_verified {
                        request.extensions_mut().insert(Authenticated);
                    }
                    None
                }
            };
            let mut response = match refused {
                Some(refused) => refused,
                None => {
                    let Ok(answer) = app.oneshot(request).await;
                    answer
                }
            };
            if let Some(config) = &config {
                for (name, value) in &config.headers {
                    response.headers_mut().insert(name.clone(), value.clone());
                }
            }
            if expired.is_some_and(|e| e.load(Ordering::Relaxed)) {
                if response.status() != StatusCode::REQUEST_TIMEOUT {
                    tracing::warn!(
                        peer = %peer, method = %method, path,
                        "request body incomplete after {limit:?} (--web.body-timeout); answered 408 and closed the connection"
                    );
                    response = Response::new(Body::from(format!(
                        "the request body did not arrive within {limit:?}; send all the bytes its Content-Length announces\n"
                    )));
                    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
                }
                // The rest of the body may still come: the connection cannot be reused.
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| Body::new(UntilSent { body, busy: Some(busy) })))
        })
    }
}

/// What the exporter-toolkit answers to missing or wrong credentials.
fn unauthorized() -> Response<Body> {
    let mut response = Response::new(Body::from("Unauthorized\n"));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// A response body that keeps its connection busy until it has been sent.
struct UntilSent {
    body: Body,
    busy: Option<Busy>,
}

impl http_body::Body for UntilSent {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.busy = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
