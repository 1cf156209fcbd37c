//! What the HTTP server refuses before any route sees a request: counted by reason in
//! `memleak_exporter_http_refused_total`, and logged at warn at most once a minute per reason, with
//! how many were refused since the last line (a flood of bad clients must not flood the log, and one
//! bad client must still be seen).

use crate::self_metrics::{Counters, HTTP_REFUSED};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Shortest time between two log lines of one reason.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Why a connection or a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Basic auth of the web configuration failed; answered 401.
    Unauthorized,
    /// The TLS handshake failed.
    TlsHandshake,
    /// No TLS handshake within `--web.header-timeout`.
    TlsTimeout,
    /// A plain HTTP request on the TLS port; answered 400.
    PlainHttp,
    /// The connection limit is reached and every connection of the address is mid-request; 503.
    ConnectionLimit,
    /// A connection closed at the limit to admit one of another address.
    Evicted,
}

impl Reason {
    const ALL: [Reason; 6] = [
        Reason::Unauthorized,
        Reason::TlsHandshake,
        Reason::TlsTimeout,
        Reason::PlainHttp,
        Reason::ConnectionLimit,
        Reason::Evicted,
    ];

    /// The value of the metric's `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Unauthorized => "unauthorized",
            Reason::TlsHandshake => "tls_handshake",
            Reason::TlsTimeout => "tls_timeout",
            Reason::PlainHttp => "plain_http",
            Reason::ConnectionLimit => "connection_limit",
            Reason::Evicted => "evicted",
        }
    }

    /// What happened, and what the client's owner can do about it.
    fn message(self) -> &'static str {
        match self {
            Reason::Unauthorized => {
                "request refused with 401: no or wrong basic-auth credentials for --web.config.file's basic_auth_users (check the scraper's basic_auth)"
            }
            Reason::TlsHandshake => {
                "TLS handshake failed (check the client's CA for the server certificate, its client certificate when client_auth_type asks for one, and the TLS versions and cipher suites of --web.config.file)"
            }
            Reason::TlsTimeout => "TLS handshake not done within --web.header-timeout; connection closed",
            Reason::PlainHttp => {
                "plain HTTP request on the TLS port, answered 400 (the client needs https, e.g. `scheme: https` in Prometheus' scrape config)"
            }
            Reason::ConnectionLimit => {
                "connection refused with 503: --web.max-connections is reached and every connection of this address is mid-request"
            }
            Reason::Evicted => {
                "connection limit reached; closed a connection of the address holding the most to admit a new one"
            }
        }
    }

    fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// When each reason was last logged, and how many refusals were not logged since.
#[derive(Debug, Clone, Copy, Default)]
struct LastLine {
    at: Option<Instant>,
    unlogged: u64,
}

/// The counter and the rate-limited log of refusals; one per server.
#[derive(Debug)]
pub struct Refusals {
    counters: Arc<Counters>,
    last: Mutex<[LastLine; Reason::ALL.len()]>,
}

impl Refusals {
    pub fn new(counters: Arc<Counters>) -> Refusals {
        Refusals { counters, last: Mutex::new([LastLine::default(); Reason::ALL.len()]) }
    }

    /// Counts a refusal of `peer`, and logs it unless its reason was logged within the last minute.
    /// `detail` is what the refusal alone can tell (the TLS library's error, the address evicted).
    pub fn refused(&self, reason: Reason, peer: SocketAddr, detail: &str) {
        self.counters.inc(&HTTP_REFUSED, &[reason.label()]);
        if let Some(unlogged) = self.due(reason, Instant::now()) {
            tracing::warn!(
                peer = %peer,
                detail,
                refused_since_last_line = unlogged,
                metric = "memleak_exporter_http_refused_total",
                "{}",
                reason.message()
            );
        }
    }

    /// `Some(refusals not logged since the last line)` when `reason` is to be logged at `now`.
    fn due(&self, reason: Reason, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let line = &mut last[reason.index()];
        if line.at.is_some_and(|at| now.saturating_duration_since(at) < LOG_EVERY) {
            line.unlogged += 1;
            return None;
        }
        let unlogged = line.unlogged;
        *line = LastLine { at: Some(now), unlogged: 0 };
        Some(unlogged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memleak_signals::MetricSet;

    #[test]
    fn every_refusal_counts_and_each_reason_is_logged_once_a_minute_with_what_it_held_back() {
        let counters = Arc::new(Counters::default());
        let refusals = Refusals::new(Arc::clone(&counters));
        let start = Instant::now();
        assert_eq!(refusals.due(Reason::Unauthorized, start), Some(0));
        assert_eq!(refusals.due(Reason::Unauthorized, start + Duration::from_secs(1)), None);
        assert_eq!(refusals.due(Reason::Unauthorized, start + Duration::from_secs(59)), None);
        // Another reason has its own minute.
        assert_eq!(refusals.due(Reason::TlsHandshake, start + Duration::from_secs(2)), Some(0));
        assert_eq!(refusals.due(Reason::Unauthorized, start + LOG_EVERY), Some(2));
        assert_eq!(refusals.due(Reason::Unauthorized, start + LOG_EVERY), None);

        let peer: SocketAddr = "192.0.2.7:4242".parse().unwrap();
        for _ in 0..3 {
            refusals.refused(Reason::PlainHttp, peer, "");
        }
        refusals.refused(Reason::Evicted, peer, "");
        let mut set = MetricSet::new();
        counters.emit(&HTTP_REFUSED, &mut set);
        assert_eq!(set.value("memleak_exporter_http_refused_total", &[("reason", "plain_http")]), Some(3.0));
        assert_eq!(set.value("memleak_exporter_http_refused_total", &[("reason", "evicted")]), Some(1.0));
        assert_eq!(set.value("memleak_exporter_http_refused_total", &[("reason", "unauthorized")]), None);
    }
}
