//! The HTTP serve loop: accepts connections under the limits (`admission`),
//! serves each with hyper under its timeouts, and on shutdown lets requests in
//! progress finish until a deadline, then closes whatever is left.
//!
//! The routes are an `axum::Router` built elsewhere (`server`); every route
//! gets the same connection limits, and request bodies their deadline, here.
//!
//! Timeouts, each bounding what a client alone can hold:
//! - headers (`--web.header-timeout`): hyper's header-read timer. In hyper
//!   1.12 it starts when the connection is first read and again as soon as a
//!   response has been sent (the connection goes back to reading the next
//!   head), so one timer bounds a slow-loris head and an idle keep-alive
//!   connection alike; it closes without answering.
//! - body (`--web.body-timeout`): `body::TimedBody`, 408 and close.
//! - writes (`--web.write-timeout`): `stall::WriteStall`, a response the client
//!   stops reading.
//! - TLS handshake (with `--web.config.file`): the header timeout too, counted
//!   from the accept, so a client that opens a connection and sends nothing
//!   is closed like a slow-loris head; meanwhile its connection counts in
//!   `admission` (idle) like any other.

mod accept;
pub mod admission;
pub mod body;
mod connection;
pub mod refusals;
mod stall;

use crate::options::web;
use crate::web_config::Source;
use admission::{Admission, Decision};
use axum::Router;
use connection::ConnectionService;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use refusals::{Reason, Refusals};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Bytes of a request's head (request line and headers) read before answering 431.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The limits every connection is served under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

impl Limits {
    pub fn from_config(web: &web::Config) -> Limits {
        Limits {
            header_timeout: web.header_timeout,
            body_timeout: web.body_timeout,
            write_timeout: web.write_timeout,
            max_connections: web.max_connections,
            shutdown_timeout: web.shutdown_timeout,
        }
    }
}

/// Serves `app` on `listener` (under the web configuration `web`, when given) until `shutdown`
/// completes, then drains within the deadline. What is refused before any route is told to
/// `refusals`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    web: Option<Arc<Source>>,
    refusals: Arc<Refusals>,
    shutdown: impl Future<Output = ()>,
) {
    let cap = accept::fit_to_open_files(limits.max_connections);
    let admission = Admission::new(cap);
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut pause = accept::Pause::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = tokio::time::sleep_until(pause.until()), if pause.active() => pause.end(),
            accepted = listener.accept(), if !pause.active() => match accepted {
                Ok((stream, peer)) => {
                    pause.clear();
                    if let Some(ticket) = admit(&admission, &refusals, peer, &stream) {
                        let service = ConnectionService {
                            app: app.clone(),
                            ticket,
                            body_timeout: limits.body_timeout,
                            peer,
                            web: web.clone(),
                            client_verified: false,
                            refusals: Arc::clone(&refusals),
                        };
                        connections.spawn(serve_connection(stream, service, limits, stopping.clone()));
                    }
                }
                Err(err) => pause.after(&err),
            },
        }
    }
    drop(listener);
    drain(connections, &stop, limits.shutdown_timeout).await;
}

/// Decides on a new connection; a refused one is told why and closed.
fn admit(
    admission: &Arc<Admission>,
    refusals: &Refusals,
    peer: SocketAddr,
    stream: &TcpStream,
) -> Option<Arc<admission::Ticket>> {
    match admission.admit(peer.ip()) {
        Decision::Admitted { ticket, replaced } => {
            if let Some(replaced) = replaced {
                let was = if replaced.was_idle { "idle" } else { "mid-request" };
                let detail = format!("closed a {was} connection of {} (cap {})", replaced.peer, admission.cap());
                refusals.refused(Reason::Evicted, peer, &detail);
            }
            Some(Arc::new(ticket))
        }
        Decision::Refused { held } => {
            let detail = format!("this address holds {held} connections (cap {})", admission.cap());
            refusals.refused(Reason::ConnectionLimit, peer, &detail);
            // Best effort, never waiting: the client learns why before the close.
            let body = "too many connections from your address; retry later\n";
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.try_write(answer.as_bytes());
            None
        }
    }
}

/// Serves one connection, after its TLS handshake when the web configuration asks for TLS.
async fn serve_connection(
    stream: TcpStream,
    mut service: ConnectionService,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) {
    let config = service.web.as_ref().map(|web| web.current());
    let Some(tls) = config.as_ref().and_then(|c| c.tls.as_ref()) else {
        return serve_io(stream, service, limits, stopping).await;
    };
    let ticket = Arc::clone(&service.ticket);
    let peer = service.peer;
    let acceptor = TlsAcceptor::from(Arc::clone(&tls.config));
    let handshake = tokio::time::timeout(limits.header_timeout, async move {
        refuse_plain_http(&stream).await?;
        acceptor.accept(stream).await.map_err(|e| (Reason::TlsHandshake, e.to_string()))
    });
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err((reason, why))) => {
                service.refusals.refused(reason, peer, &why);
                return;
            }
            Err(_) => {
                service.refusals.refused(Reason::TlsTimeout, peer, "");
                return;
            }
        },
        () = ticket.evicted() => return,
        () = async { drop(stopping.wait_for(|stop| *stop).await) } => return,
    };
    service.client_verified = tls.verifies_clients && stream.get_ref().1.peer_certificates().is_some();
    drop(config);
    serve_io(stream, service, limits, stopping).await;
}

/// A request in plain HTTP on the TLS port (a scrape config without `scheme: https`) is answered
/// 400 saying so, as Go's servers do, instead of a TLS alert the client cannot read.
async fn refuse_plain_http(stream: &TcpStream) -> Result<(), (Reason, String)> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if first[0].is_ascii_uppercase() => {
            let body = "Client sent an HTTP request to an HTTPS server.\n";
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            // Best effort, never waiting: the connection closes either way.
            let _ = stream.try_write(answer.as_bytes());
            // What the client sent is taken first (64 KiB at most, never waiting): a close with
            // unread bytes is a reset, which can discard the answer before the client reads it.
            let mut sink = [0u8; 16 * 1024];
            for _ in 0..4 {
                if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
                    break;
                }
            }
            Err((Reason::PlainHttp, String::new()))
        }
        Ok(_) => Ok(()),
        Err(e) => Err((Reason::TlsHandshake, e.to_string())),
    }
}

async fn serve_io<S>(stream: S, service: ConnectionService, limits: Limits, mut stopping: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ticket = Arc::clone(&service.ticket);
    let peer = service.peer;
    let io = TokioIo::new(stall::WriteStall::new(stream, limits.write_timeout));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let outcome = tokio::select! {
        outcome = connection.as_mut() => Some(outcome),
        () = ticket.evicted() => None,
        () = async { drop(stopping.wait_for(|stop| *stop).await) } => {
            // Idle connections close now; a request in progress may finish (until `drain` gives up).
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                outcome = connection.as_mut() => Some(outcome),
                () = ticket.evicted() => None,
            }
        }
    };
    if let Some(Err(err)) = outcome {
        // Clients end connections in all sorts of ways; none of them is the exporter's problem.
        tracing::debug!(peer = %peer, error = %err, "connection ended");
    }
}

/// Tells every connection to finish and waits for them, at most `deadline`.
async fn drain(mut connections: JoinSet<()>, stop: &watch::Sender<bool>, deadline: Duration) {
    let _ = stop.send(true);
    let open = connections.len();
    let all_done = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(deadline, all_done).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            of = open,
            "connections still open after --web.shutdown-timeout {deadline:?}; closing them"
        );
        connections.abort_all();
    }
}
