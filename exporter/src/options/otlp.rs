//! The OTLP push's options (`--otlp.*`, YAML `otlp`), with the standard
//! `OTEL_EXPORTER_OTLP_*`, `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
//! variables filling what flags and file leave unset (flags win).

use memleak_signals::OptionError;
use memleak_signals::options::at_least_one;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// OTLP receiver to push metrics, logs and profiles to, e.g. http://collector:4317 (gRPC) or
    /// http://collector:4318 (HTTP); unset: no push [env OTEL_EXPORTER_OTLP_ENDPOINT].
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// grpc or http/protobuf [default: grpc; env OTEL_EXPORTER_OTLP_PROTOCOL].
    #[arg(long, value_name = "PROTOCOL")]
    pub protocol: Option<String>,

    /// Header sent with every export, KEY=VALUE (repeatable) [env OTEL_EXPORTER_OTLP_HEADERS].
    #[arg(long = "header", value_name = "KEY=VALUE")]
    #[serde(default)]
    pub headers: Vec<String>,

    /// PEM file of the CA that signed the receiver's certificate (https endpoints)
    /// [env OTEL_EXPORTER_OTLP_CERTIFICATE].
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// gzip or none [default: gzip; env OTEL_EXPORTER_OTLP_COMPRESSION].
    #[arg(long, value_name = "ALGORITHM")]
    pub compression: Option<String>,

    /// How often metrics are pushed [default: 60s; env OTEL_METRIC_EXPORT_INTERVAL, in ms].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,

    /// Longest time one export may take [default: 10s; env OTEL_EXPORTER_OTLP_TIMEOUT, in ms].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,

    /// Exports waiting per signal (metrics, logs, profiles) while the receiver is slow or down; past
    /// it new ones are dropped and counted [default: 32].
    #[arg(long, value_name = "N")]
    pub queue_size: Option<usize>,

    /// service.name of the resource [default: memleak-exporter; env OTEL_SERVICE_NAME].
    #[arg(long, value_name = "NAME")]
    pub service_name: Option<String>,
}

/// How exports travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// The OTLP push's settings; `None` from `resolve` when no endpoint is set.
#[derive(Debug, Clone)]
pub struct Config {
    pub endpoint: String,
    pub protocol: Protocol,
    pub headers: Vec<(String, String)>,
    pub ca_file: Option<PathBuf>,
    pub gzip: bool,
    pub interval: Duration,
    pub timeout: Duration,
    pub queue_size: usize,
    pub service_name: String,
    /// From OTEL_RESOURCE_ATTRIBUTES, in order.
    pub resource_attributes: Vec<(String, String)>,
}

impl memleak_signals::Options for Options {
    type Config = Option<Config>;

    fn resolve(self) -> Result<Option<Config>, OptionError> {
        self.resolve_with(|name| std::env::var(name).ok())
    }
}

impl Options {
    /// Resolves with `env` standing for the process environment (tests pass their own).
    pub fn resolve_with(self, env: impl Fn(&str) -> Option<String>) -> Result<Option<Config>, OptionError> {
        let Some(endpoint) = self.endpoint.or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT")) else {
            return Ok(None);
        };
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(OptionError::new(
                "endpoint",
                format!("{endpoint:?}: must start with http:// or https://, e.g. http://localhost:4317"),
            ));
        }
        let protocol = match self.protocol.or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL")).as_deref() {
            None | Some("grpc") => Protocol::Grpc,
            Some("http/protobuf") => Protocol::HttpProtobuf,
            Some(other) => {
                return Err(OptionError::new(
                    "protocol",
                    format!("{other:?}: use grpc or http/protobuf (http/json is not supported)"),
                ));
            }
        };
        let mut headers = Vec::new();
        if self.headers.is_empty() {
            for pair in
                env("OTEL_EXPORTER_OTLP_HEADERS").unwrap_or_default().split(',').filter(|p| !p.trim().is_empty())
            {
                headers.push(header(pair.trim(), true)?);
            }
        } else {
            for pair in &self.headers {
                headers.push(header(pair, false)?);
            }
        }
        let gzip = match self.compression.or_else(|| env("OTEL_EXPORTER_OTLP_COMPRESSION")).as_deref() {
            None | Some("gzip") => true,
            Some("none") => false,
            Some(other) => return Err(OptionError::new("compression", format!("{other:?}: use gzip or none"))),
        };
        let millis = |name: &'static str, key: &'static str| -> Result<Option<Duration>, OptionError> {
            env(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map(Duration::from_millis)
                        .map_err(|_| OptionError::new(key, format!("{name}={v:?}: must be milliseconds, e.g. 10000")))
                })
                .transpose()
        };
        let interval = match self.interval {
            Some(i) => i,
            None => millis("OTEL_METRIC_EXPORT_INTERVAL", "interval")?.unwrap_or(Duration::from_secs(60)),
        };
        let timeout = match self.timeout {
            Some(t) => t,
            None => millis("OTEL_EXPORTER_OTLP_TIMEOUT", "timeout")?.unwrap_or(Duration::from_secs(10)),
        };
        if interval.is_zero() || timeout.is_zero() {
            return Err(OptionError::new("interval", "interval and timeout must be more than 0s"));
        }
        let ca_file = self.ca_file.or_else(|| env("OTEL_EXPORTER_OTLP_CERTIFICATE").map(PathBuf::from));
        let mut resource_attributes = Vec::new();
        for pair in env("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default().split(',').filter(|p| !p.trim().is_empty()) {
            resource_attributes.push(header(pair.trim(), true).map_err(|_| {
                OptionError::new("resource_attributes", format!("OTEL_RESOURCE_ATTRIBUTES: {pair:?} is not KEY=VALUE"))
            })?);
        }
        let service_name = self
            .service_name
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .or_else(|| resource_attributes.iter().find(|(k, _)| k == "service.name").map(|(_, v)| v.clone()))
            .unwrap_or_else(|| "memleak-exporter".to_owned());
        Ok(Some(Config {
            endpoint,
            protocol,
            headers,
            ca_file,
            gzip,
            interval,
            timeout,
            queue_size: at_least_one("queue_size", self.queue_size, 32)?,
            service_name,
            resource_attributes,
        }))
    }
}

/// `KEY=VALUE`; the environment's form is percent-encoded (W3C baggage style).
fn header(pair: &str, percent_encoded: bool) -> Result<(String, String), OptionError> {
    let (key, value) = pair
        .split_once('=')
        .filter(|(k, _)| !k.trim().is_empty())
        .ok_or_else(|| OptionError::new("header", format!("{pair:?}: use KEY=VALUE")))?;
    let decode = |s: &str| if percent_encoded { percent_decode(s.trim()) } else { s.trim().to_owned() };
    Ok((decode(key), decode(value)))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(options: Options, env: &[(&str, &str)]) -> Result<Option<Config>, OptionError> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        options.resolve_with(|k| env.get(k).cloned())
    }

    #[test]
    fn no_endpoint_means_no_push() {
        assert!(resolve(Options::default(), &[]).unwrap().is_none());
    }

    #[test]
    fn the_standard_variables_fill_what_flags_leave_unset_and_flags_win() {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b,tenant=t1"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,service.name=from-attrs"),
        ];
        let c = resolve(Options::default(), &env).unwrap().unwrap();
        assert_eq!(c.endpoint, "http://env:4318");
        assert_eq!(c.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.headers, vec![("api-key".into(), "a b".into()), ("tenant".into(), "t1".into())]);
        assert!(!c.gzip);
        assert_eq!(c.interval, Duration::from_secs(5));
        assert_eq!(c.service_name, "from-attrs");
        let flags = Options {
            endpoint: Some("http://flag:4317".into()),
            protocol: Some("grpc".into()),
            headers: vec!["x=1".into()],
            interval: Some(Duration::from_secs(2)),
            service_name: Some("svc".into()),
            ..Options::default()
        };
        let c = resolve(flags, &env).unwrap().unwrap();
        assert_eq!((c.endpoint.as_str(), c.protocol), ("http://flag:4317", Protocol::Grpc));
        assert_eq!(c.headers, vec![("x".into(), "1".into())]);
        assert_eq!((c.interval, c.service_name.as_str()), (Duration::from_secs(2), "svc"));
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        let bad = |o: Options| resolve(o, &[]).unwrap_err().to_string();
        assert!(bad(Options { endpoint: Some("collector:4317".into()), ..Options::default() }).contains("http://"));
        let with = |f: fn(&mut Options)| {
            let mut o = Options { endpoint: Some("http://c:4317".into()), ..Options::default() };
            f(&mut o);
            o
        };
        assert!(bad(with(|o| o.protocol = Some("http/json".into()))).contains("grpc or http/protobuf"));
        assert!(bad(with(|o| o.headers = vec!["novalue".into()])).contains("KEY=VALUE"));
        assert!(bad(with(|o| o.compression = Some("zstd".into()))).contains("gzip or none"));
    }
}
