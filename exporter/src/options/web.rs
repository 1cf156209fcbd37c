//! The HTTP server's options (`--web.*`, YAML `web`).

use memleak_signals::OptionError;
use memleak_signals::options::at_least_one;
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Open connections served at once unless `--web.max-connections` says otherwise; the systemd
/// unit's `LimitNOFILE` is sized from it (checked by the deploy tests).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Address to listen on for HTTP [default: :9487, i.e. every interface].
    #[arg(long, value_name = "HOST:PORT")]
    pub listen_address: Option<String>,

    /// Prometheus exporter-toolkit web configuration file: TLS, client certificates, basic auth
    /// (bcrypt), response headers; as node_exporter's flag. Re-read when it or a file it names changes.
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,

    /// Path under which the metrics are served [default: /metrics].
    #[arg(long, value_name = "PATH")]
    pub telemetry_path: Option<String>,

    /// Longest time a scrape may take; a lower X-Prometheus-Scrape-Timeout-Seconds wins [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub scrape_timeout: Option<Duration>,

    /// Longest wait for a request's headers, from the connection's opening or its previous response;
    /// so also how long an idle keep-alive connection stays open [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub header_timeout: Option<Duration>,

    /// Longest wait for a request's body once its headers arrived; a client that sends less than
    /// its Content-Length gets 408 and the connection is closed [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub body_timeout: Option<Duration>,

    /// Longest a response may wait for the client to take more of it; a client that stops
    /// reading is disconnected [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub write_timeout: Option<Duration>,

    /// Connections served at once (lowered to fit the open-file limit). When full, a new
    /// connection replaces the longest-waiting idle one of the address holding the most [default: 256].
    #[arg(long, value_name = "COUNT")]
    pub max_connections: Option<usize>,

    /// On SIGTERM or SIGINT, how long requests in progress may take to finish before the
    /// exporter exits anyway [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub shutdown_timeout: Option<Duration>,
}

/// The HTTP server's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The exporter-toolkit web configuration file, when given.
    pub config_file: Option<PathBuf>,
    pub telemetry_path: String,
    pub scrape_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

impl memleak_signals::Options for Options {
    type Config = Config;

    fn resolve(self) -> Result<Config, OptionError> {
        let listen = parse_listen(self.listen_address.as_deref().unwrap_or(":9487"))?;
        Ok(Config {
            listen,
            config_file: self.config_file,
            telemetry_path: telemetry_path(self.telemetry_path.as_deref().unwrap_or("/metrics"))?,
            scrape_timeout: positive("scrape_timeout", self.scrape_timeout, Duration::from_secs(10))?,
            header_timeout: positive("header_timeout", self.header_timeout, Duration::from_secs(5))?,
            body_timeout: positive("body_timeout", self.body_timeout, Duration::from_secs(10))?,
            write_timeout: positive("write_timeout", self.write_timeout, Duration::from_secs(10))?,
            max_connections: at_least_one("max_connections", self.max_connections, DEFAULT_MAX_CONNECTIONS)?,
            // Zero is allowed: exit as soon as the signal comes.
            shutdown_timeout: self.shutdown_timeout.unwrap_or(Duration::from_secs(5)),
        })
    }
}

/// Paths the exporter serves other things at: the metrics cannot take them.
const OTHER_ROUTES: &[&str] = &["/", "/-/", "/api/", "/debug/", "/ingested/"];

/// `/metrics`, `/probe/memleak`: an absolute path of plain characters, not another endpoint's.
fn telemetry_path(path: &str) -> Result<String, OptionError> {
    let invalid = |why: &str| OptionError::new("telemetry_path", format!("{path:?}: {why}"));
    if !path.starts_with('/') || path.len() < 2 {
        return Err(invalid("must start with / and name a path, such as /metrics"));
    }
    if !path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.')) || path.contains("//")
    {
        return Err(invalid("only letters, digits, and / _ - . (no doubled /) are allowed"));
    }
    if let Some(taken) = OTHER_ROUTES.iter().skip(1).find(|r| path.starts_with(*r) || format!("{path}/") == **r) {
        return Err(invalid(&format!("{taken} is where the exporter serves other endpoints")));
    }
    Ok(path.trim_end_matches('/').to_owned())
}

/// A duration that must be more than zero, or `default` when unset.
fn positive(key: &'static str, value: Option<Duration>, default: Duration) -> Result<Duration, OptionError> {
    match value {
        Some(d) if d.is_zero() => Err(OptionError::new(key, "must be more than 0s")),
        Some(d) => Ok(d),
        None => Ok(default),
    }
}

/// `:9487` means every interface; anything else is `host:port`.
fn parse_listen(text: &str) -> Result<SocketAddr, OptionError> {
    let full = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_owned() };
    let invalid = |why: String| OptionError::new("listen_address", format!("{text:?}: {why}"));
    full.to_socket_addrs()
        .map_err(|e| invalid(format!("{e}; use HOST:PORT such as :9487 or 127.0.0.1:9487")))?
        .next()
        .ok_or_else(|| invalid("resolves to no address".into()))
}
