//! The Prometheus exporter-toolkit web configuration (`--web.config.file`, as
//! node_exporter reads it): TLS with client certificates, basic auth with
//! bcrypt hashes and extra response headers, for every endpoint.
//!
//! Read strictly (an unknown key is an error naming it). While serving, the
//! file and every file it names are checked (a `stat` each) on each new
//! connection and request, and re-read when one changed: a rotated
//! certificate or a new user takes effect without a restart. A re-read that
//! fails keeps the previous configuration and logs why, once per change;
//! whether the listener speaks TLS at all is decided at start.

mod basic_auth;
mod client_certs;
mod format;
mod response_headers;
mod tls;

use axum::http::{HeaderName, HeaderValue};
use basic_auth::Users;
pub use basic_auth::Verifier;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
pub use tls::Tls;

/// Largest web configuration file read.
const MAX_BYTES: u64 = 1 << 20;

/// Marks a request the web configuration authenticated (a basic-auth user, or
/// a client certificate verified against `client_ca_file`).
#[derive(Debug, Clone, Copy)]
pub struct Authenticated;

/// The web configuration, loaded and checked.
#[derive(Debug)]
pub struct WebConfig {
    pub tls: Option<Tls>,
    pub users: Users,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The file and every file it names, to see when one changes.
    files: Vec<PathBuf>,
}

impl WebConfig {
    /// Reads and checks the file; the error names the file and the key.
    pub fn load(path: &Path) -> anyhow::Result<WebConfig> {
        let text = crate::bounded_file::read_text(path, MAX_BYTES, "--web.config.file")?;
        let shown = path.display();
        let invalid = |why: String| anyhow::anyhow!("--web.config.file {shown}: {why}");
        let file = format::parse(&text).map_err(invalid)?;
        if file.rate_limit.is_some() {
            return Err(invalid(
                "rate_limit is not supported: the exporter bounds clients with --web.max-connections and its timeouts"
                    .into(),
            ));
        }
        if file.http_server_config.as_ref().and_then(|h| h.http2) == Some(true) {
            return Err(invalid("http_server_config.http2: the exporter serves HTTP/1.1 only; set it to false".into()));
        }
        let headers =
            file.http_server_config.map(|h| response_headers::parse(&h.headers)).transpose().map_err(invalid)?;
        let users = Users::parse(file.basic_auth_users.unwrap_or_default()).map_err(invalid)?;
        if users.highest_cost() > basic_auth::SLOW_COST {
            tracing::warn!(
                file = %shown,
                cost = users.highest_cost(),
                "basic_auth_users: a bcrypt cost above {} makes each password check slow, and checks run one at a time: \
                 wrong passwords sent in a loop delay scrapes by seconds; use cost 10 or less (see docs/web-config.md)",
                basic_auth::SLOW_COST
            );
        }
        let mut files = vec![path.to_owned()];
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = match &file.tls_server_config {
            Some(t) => tls::build(t, dir, &mut files).map_err(|why| invalid(format!("tls_server_config: {why}")))?,
            None => None,
        };
        Ok(WebConfig { tls, users, headers: headers.unwrap_or_default(), files })
    }

    /// Whether every request it admits is authenticated (so that the webhook may answer beyond loopback).
    pub fn authenticates(&self) -> bool {
        !self.users.is_empty() || self.tls.as_ref().is_some_and(|t| t.requires_verified_client)
    }

    /// `TLS, client certificates verified, 2 basic-auth users`: for the start-up line and --config.check.
    pub fn describe(&self) -> String {
        let mut parts = vec![
            match &self.tls {
                Some(t) if t.requires_verified_client => "TLS, client certificates required and verified",
                Some(t) if t.verifies_clients => "TLS, client certificates verified when given",
                Some(_) => "TLS",
                None => "plain HTTP",
            }
            .to_owned(),
        ];
        if !self.users.is_empty() {
            parts.push(format!("basic auth ({} users)", self.users.len()));
        }
        if !self.headers.is_empty() {
            parts.push(format!("{} response headers", self.headers.len()));
        }
        parts.join(", ")
    }
}

/// The web configuration while serving: re-read when one of its files changed.
#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    pub verifier: Verifier,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    seen: Vec<Stamp>,
    current: Arc<WebConfig>,
}

/// What a file looks like from outside: (device, inode, size, mtime, ctime), or that it is gone.
type Stamp = Option<(u64, u64, u64, i64, i64, i64, i64)>;

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()))
        })
        .collect()
}

impl Source {
    pub fn new(path: &Path, loaded: WebConfig) -> Source {
        let seen = stamps(&loaded.files);
        Source {
            path: path.to_owned(),
            verifier: Verifier::default(),
            state: Mutex::new(State { seen, current: Arc::new(loaded) }),
        }
    }

    /// The configuration now: the last one read, re-read first when one of its files changed.
    pub fn current(&self) -> Arc<WebConfig> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = stamps(&state.current.files);
        if now == state.seen {
            return Arc::clone(&state.current);
        }
        // Whatever comes of it, this state of the files is not read again.
        state.seen = now;
        match WebConfig::load(&self.path) {
            Ok(fresh) if fresh.tls.is_some() != state.current.tls.is_some() => tracing::warn!(
                file = %self.path.display(),
                "--web.config.file changed whether the listener speaks TLS, which takes a restart; still serving the previous configuration"
            ),
            Ok(fresh) => {
                tracing::info!(file = %self.path.display(), config = fresh.describe(), "--web.config.file re-read");
                state.seen = stamps(&fresh.files);
                state.current = Arc::new(fresh);
            }
            Err(err) => tracing::warn!(
                error = format!("{err:#}"),
                "--web.config.file changed but cannot be used; still serving the previous configuration"
            ),
        }
        Arc::clone(&state.current)
    }
}
