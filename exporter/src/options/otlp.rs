//! The OTLP push's options (`--otlp.*`, YAML `otlp`), with the standard
//! `OTEL_EXPORTER_OTLP_*`, `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
//! variables filling what flags and file leave unset (flags win), and the
//! signal-specific `OTEL_EXPORTER_OTLP_{METRICS,LOGS,PROFILES}_*` ones winning
//! over the generic ones.

use memleak_signals::OptionError;
use memleak_signals::options::at_least_one;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Exports queued per signal at most: each holds a whole push (a metrics push of
/// 2,000 series is ~200 KB), so this bounds the queue at a few hundred MB.
const MAX_QUEUE_SIZE: usize = 1024;
/// The shortest push interval: every push collects and encodes every signal.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// OTLP receiver to push metrics, logs and profiles to, e.g. http://collector:4317 (gRPC) or
    /// http://collector:4318 (HTTP); unset: no push [env OTEL_EXPORTER_OTLP_ENDPOINT; every
    /// setting also per signal, e.g. OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: see docs/otlp.md].
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

    /// How often metrics and the collectors' profiles are pushed [default: 60s; env
    /// OTEL_METRIC_EXPORT_INTERVAL, in ms].
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

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Metrics,
    Logs,
    Profiles,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Metrics, Signal::Logs, Signal::Profiles];

    /// As the `signal` label of `memleak_exporter_otlp_*` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
            Signal::Profiles => "profiles",
        }
    }

    /// The `OTEL_EXPORTER_OTLP_<S>_*` part.
    fn variable(self) -> &'static str {
        match self {
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
            Signal::Profiles => "PROFILES",
        }
    }

    /// The path a generic HTTP endpoint gets for this signal.
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
            Signal::Profiles => "/v1development/profiles",
        }
    }
}

/// Where and how one signal's exports travel.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// gRPC: the receiver's URL; HTTP: the full URL exports are posted to.
    pub url: String,
    pub protocol: Protocol,
    pub headers: Vec<(String, String)>,
    pub ca_file: Option<PathBuf>,
    pub gzip: bool,
    pub timeout: Duration,
}

/// The OTLP push's settings; `None` from `resolve` when no endpoint is set.
#[derive(Debug, Clone)]
pub struct Config {
    pub metrics: Export,
    pub logs: Export,
    pub profiles: Export,
    pub interval: Duration,
    pub queue_size: usize,
    pub service_name: String,
    /// From OTEL_RESOURCE_ATTRIBUTES, in order.
    pub resource_attributes: Vec<(String, String)>,
}

impl Config {
    pub fn export(&self, signal: Signal) -> &Export {
        match signal {
            Signal::Metrics => &self.metrics,
            Signal::Logs => &self.logs,
            Signal::Profiles => &self.profiles,
        }
    }
}

impl memleak_signals::Options for Options {
    type Config = Option<Config>;

    fn resolve(self) -> Result<Option<Config>, OptionError> {
        self.resolve_with(|name| std::env::var(name).ok())
    }
}

/// One setting's value with where it came from, for error messages: the flag, or the variable read.
struct Found {
    value: String,
    from: String,
}

impl Options {
    /// Resolves with `env` standing for the process environment (tests pass their own).
    ///
    /// Precedence, per setting: the flag (or YAML key), then the signal's own variable
    /// (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, ...), then the generic one
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`, ...), then the default. A generic HTTP endpoint (flag or
    /// variable) gets `/v1/<signal>` appended; a signal's own endpoint is used as is.
    pub fn resolve_with(self, env: impl Fn(&str) -> Option<String>) -> Result<Option<Config>, OptionError> {
        let env = |name: String| env(&name).map(|value| Found { value, from: name });
        let any_endpoint = self.endpoint.is_some()
            || env("OTEL_EXPORTER_OTLP_ENDPOINT".into()).is_some()
            || Signal::ALL.iter().any(|s| env(format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", s.variable())).is_some());
        if !any_endpoint {
            return Ok(None);
        }
        let exports = Signal::ALL.map(|signal| self.export(signal, &env));
        let [metrics, logs, profiles] = exports;
        let interval = match self.interval {
            Some(i) => i,
            None => millis(env("OTEL_METRIC_EXPORT_INTERVAL".into()), "interval")?.unwrap_or(Duration::from_secs(60)),
        };
        if interval < MIN_INTERVAL {
            return Err(OptionError::new("interval", "must be at least 100ms (every push collects every signal)"));
        }
        let mut resource_attributes = Vec::new();
        let listed = env("OTEL_RESOURCE_ATTRIBUTES".into()).map(|f| f.value).unwrap_or_default();
        for (n, pair) in listed.split(',').filter(|p| !p.trim().is_empty()).enumerate() {
            resource_attributes.push(key_value(pair.trim(), true, n + 1).map_err(|why| {
                OptionError::environment(format!(
                    "OTEL_RESOURCE_ATTRIBUTES: {why} (a comma-separated list of KEY=VALUE, \
                     e.g. deployment.environment=prod,service.namespace=shop)"
                ))
            })?);
        }
        let service_name = self
            .service_name
            .or_else(|| env("OTEL_SERVICE_NAME".into()).map(|f| f.value))
            .or_else(|| resource_attributes.iter().find(|(k, _)| k == "service.name").map(|(_, v)| v.clone()))
            .unwrap_or_else(|| "memleak-exporter".to_owned());
        Ok(Some(Config {
            metrics: metrics?,
            logs: logs?,
            profiles: profiles?,
            interval,
            queue_size: match at_least_one("queue_size", self.queue_size, 32)? {
                n if n > MAX_QUEUE_SIZE => {
                    return Err(OptionError::new(
                        "queue_size",
                        format!("at most {MAX_QUEUE_SIZE} exports per signal (each holds a whole push)"),
                    ));
                }
                n => n,
            },
            service_name,
            resource_attributes,
        }))
    }

    /// One signal's export settings.
    fn export(&self, signal: Signal, env: &impl Fn(String) -> Option<Found>) -> Result<Export, OptionError> {
        let own = |setting: &str| env(format!("OTEL_EXPORTER_OTLP_{}_{setting}", signal.variable()));
        let generic = |setting: &str| env(format!("OTEL_EXPORTER_OTLP_{setting}"));
        let flag = |value: &Option<String>, name: &str| {
            value.clone().map(|value| Found { value, from: format!("--otlp.{name}") })
        };
        let pick = |value: &Option<String>, name: &str, setting: &str| {
            own(setting).or_else(|| flag(value, name)).or_else(|| generic(setting))
        };
        let protocol = match pick(&self.protocol, "protocol", "PROTOCOL") {
            None => Protocol::Grpc,
            Some(f) if f.value == "grpc" => Protocol::Grpc,
            Some(f) if f.value == "http/protobuf" => Protocol::HttpProtobuf,
            Some(f) => {
                return Err(invalid(
                    "protocol",
                    &f.from,
                    format!("{}={:?}: use grpc or http/protobuf (http/json is not supported)", f.from, f.value),
                ));
            }
        };
        // Only a generic endpoint is a base that the signal's path is appended to.
        let (endpoint, is_base) = match (own("ENDPOINT"), flag(&self.endpoint, "endpoint"), generic("ENDPOINT")) {
            (Some(f), _, _) => (f, false),
            (None, Some(f), _) => (f, true),
            (None, None, Some(f)) => (f, true),
            // The specification's defaults, for a signal left without an endpoint of its own.
            (None, None, None) => {
                let value = match protocol {
                    Protocol::Grpc => "http://localhost:4317",
                    Protocol::HttpProtobuf => "http://localhost:4318",
                };
                (Found { value: value.to_owned(), from: "the default".to_owned() }, true)
            }
        };
        check_endpoint(&endpoint)?;
        let url = match protocol {
            Protocol::HttpProtobuf if is_base => {
                format!("{}{}", endpoint.value.trim_end_matches('/'), signal.http_path())
            }
            Protocol::Grpc => endpoint.value.trim_end_matches('/').to_owned(),
            Protocol::HttpProtobuf => endpoint.value,
        };
        // The variables' form: a comma-separated, percent-encoded list; an error names the variable.
        // Header values are credentials: errors name the variable and the key, never a value.
        let listed = |f: Found| -> Result<Vec<(String, String)>, OptionError> {
            f.value
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .enumerate()
                .map(|(n, p)| {
                    header(p.trim(), true, n + 1)
                        .map_err(|e| invalid("header", &f.from, format!("{}: {}", f.from, e.message)))
                })
                .collect()
        };
        let headers: Vec<(String, String)> = match own("HEADERS") {
            Some(f) => listed(f)?,
            None if !self.headers.is_empty() => {
                self.headers.iter().enumerate().map(|(n, p)| header(p, false, n + 1)).collect::<Result<_, _>>()?
            }
            None => generic("HEADERS").map(listed).transpose()?.unwrap_or_default(),
        };
        let gzip = match pick(&self.compression, "compression", "COMPRESSION") {
            None => true,
            Some(f) if f.value == "gzip" => true,
            Some(f) if f.value == "none" => false,
            Some(f) => {
                return Err(invalid("compression", &f.from, format!("{}={:?}: use gzip or none", f.from, f.value)));
            }
        };
        let timeout = match self.timeout {
            Some(t) => t,
            None => {
                millis(own("TIMEOUT").or_else(|| generic("TIMEOUT")), "timeout")?.unwrap_or(Duration::from_secs(10))
            }
        };
        if timeout.is_zero() {
            return Err(OptionError::new("timeout", "must be more than 0s"));
        }
        let ca_file = self
            .ca_file
            .clone()
            .or_else(|| own("CERTIFICATE").or_else(|| generic("CERTIFICATE")).map(|f| PathBuf::from(f.value)));
        Ok(Export { url, protocol, headers, ca_file, gzip, timeout })
    }
}

/// An invalid setting: named by its flag when it came from one, by its variable (in `message`)
/// when it came from the environment, which no flag sets.
fn invalid(key: &'static str, from: &str, message: String) -> OptionError {
    if from.starts_with("OTEL_") { OptionError::environment(message) } else { OptionError::new(key, message) }
}

/// A variable in milliseconds, as the specification has them.
fn millis(found: Option<Found>, key: &'static str) -> Result<Option<Duration>, OptionError> {
    found
        .map(|f| {
            f.value.trim().parse::<u64>().map(Duration::from_millis).map_err(|_| {
                invalid(key, &f.from, format!("{}={:?}: must be milliseconds, e.g. 10000", f.from, f.value))
            })
        })
        .transpose()
}

/// Refuses an endpoint the transport could not use, so that it fails the start, not every push.
/// The value is shown without its userinfo, which may hold a password.
fn check_endpoint(endpoint: &Found) -> Result<(), OptionError> {
    let refuse = |why: String| {
        Err(invalid(
            "endpoint",
            &endpoint.from,
            format!("{}={:?}: {why}", endpoint.from, redacted_url(&endpoint.value)),
        ))
    };
    if !(endpoint.value.starts_with("http://") || endpoint.value.starts_with("https://")) {
        return refuse("must start with http:// or https://, e.g. http://localhost:4317".into());
    }
    let url = match reqwest::Url::parse(&endpoint.value) {
        Ok(url) => url,
        Err(e) => return refuse(format!("{e}, e.g. http://localhost:4317")),
    };
    // The signal's path is appended to the endpoint: a query or fragment would swallow it.
    if url.query().is_some() || url.fragment().is_some() {
        return refuse("must not have a query (?...) or a fragment (#...), e.g. http://collector:4318/base".into());
    }
    if url.port() == Some(0) {
        return refuse("port 0 is not a port a receiver listens on, e.g. http://localhost:4317".into());
    }
    Ok(())
}

/// `url` without the user and password of its authority, for logs and messages.
pub fn redacted_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// The `n`th `KEY=VALUE` pair; the environment's form is percent-encoded (W3C baggage style).
/// Errors name the pair by its key (or position), never by its value.
fn header(pair: &str, percent_encoded: bool, n: usize) -> Result<(String, String), OptionError> {
    let (key, value) = key_value(pair, percent_encoded, n).map_err(|e| OptionError::new("header", e))?;
    // Checked here, not at the first push: a header the transport cannot send would otherwise
    // pass --config.check and stop the exporter at start.
    if reqwest::header::HeaderName::from_bytes(key.as_bytes()).is_err() {
        return Err(OptionError::new(
            "header",
            format!("{key:?} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"),
        ));
    }
    if reqwest::header::HeaderValue::from_str(&value).is_err() {
        let fix = if percent_encoded {
            "it decodes to a line break or control character, which no header may carry: remove it"
        } else {
            "a header may not carry line breaks or control characters"
        };
        return Err(OptionError::new("header", format!("the value of {key:?} is not a valid header value ({fix})")));
    }
    Ok((key, value))
}

/// The `n`th `KEY=VALUE`, trimmed, percent-decoded when the form is the variables'.
fn key_value(pair: &str, percent_encoded: bool, n: usize) -> Result<(String, String), String> {
    let Some((key, value)) = pair.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
        return Err(format!("pair {n} is not KEY=VALUE"));
    };
    if !percent_encoded {
        return Ok((key.trim().to_owned(), value.trim().to_owned()));
    }
    let key = percent_decode(key.trim()).map_err(|why| format!("the key of pair {n} {why}"))?;
    let value = percent_decode(value.trim()).map_err(|why| format!("the value of {key:?} {why}"))?;
    Ok((key, value))
}

/// Decodes `%XX`; a `%` without two hex digits, or bytes that are not UTF-8, are errors.
fn percent_decode(text: &str) -> Result<String, &'static str> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or("has a '%' not followed by two hex digits (write a literal '%' as %25)")?;
        out.push(hex);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| "percent-decodes to bytes that are not UTF-8")
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
        assert_eq!(c.metrics.url, "http://env:4318/v1/metrics");
        assert_eq!(c.logs.url, "http://env:4318/v1/logs");
        assert_eq!(c.profiles.url, "http://env:4318/v1development/profiles");
        assert_eq!(c.metrics.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.logs.headers, vec![("api-key".into(), "a b".into()), ("tenant".into(), "t1".into())]);
        assert!(!c.profiles.gzip);
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
        for signal in Signal::ALL {
            let e = c.export(signal);
            assert_eq!((e.url.as_str(), e.protocol), ("http://flag:4317", Protocol::Grpc), "{signal:?}");
            assert_eq!(e.headers, vec![("x".into(), "1".into())]);
        }
        assert_eq!((c.interval, c.service_name.as_str()), (Duration::from_secs(2), "svc"));
    }

    #[test]
    fn a_signals_own_variables_win_over_the_generic_ones_and_its_endpoint_is_used_as_is() {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "tenant=all"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/generic-ca.pem"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "https://loki-gw:3100/otlp/v1/logs"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "X-Scope-OrgID=team%2Fa"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "7000"),
            ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "/etc/loki-ca.pem"),
            ("OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT", "http://pyroscope:4040"),
            ("OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
        ];
        let c = resolve(Options::default(), &env).unwrap().unwrap();
        // Logs: every setting its own, the endpoint untouched.
        assert_eq!(c.logs.url, "https://loki-gw:3100/otlp/v1/logs");
        assert_eq!(c.logs.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.logs.headers, vec![("X-Scope-OrgID".into(), "team/a".into())]);
        assert!(!c.logs.gzip);
        assert_eq!(c.logs.timeout, Duration::from_secs(7));
        assert_eq!(c.logs.ca_file.as_deref(), Some(std::path::Path::new("/etc/loki-ca.pem")));
        // Metrics: its own protocol, the generic endpoint (gRPC: no path), headers, timeout and CA.
        assert_eq!((c.metrics.url.as_str(), c.metrics.protocol), ("http://generic:4318", Protocol::Grpc));
        assert_eq!(c.metrics.headers, vec![("tenant".into(), "all".into())]);
        assert_eq!(c.metrics.timeout, Duration::from_secs(3));
        assert!(c.metrics.gzip);
        assert_eq!(c.metrics.ca_file.as_deref(), Some(std::path::Path::new("/etc/generic-ca.pem")));
        assert_eq!((c.profiles.url.as_str(), c.profiles.protocol), ("http://pyroscope:4040", Protocol::Grpc));
        // A flag is as generic as its variable: a signal's own variable wins over it, so that
        // `--otlp.endpoint` for all and OTEL_EXPORTER_OTLP_LOGS_* for logs do not mix.
        let flags = Options {
            compression: Some("gzip".into()),
            endpoint: Some("http://flag:4318".into()),
            ..Options::default()
        };
        let c = resolve(flags, &env).unwrap().unwrap();
        assert!(!c.logs.gzip, "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION=none beats --otlp.compression");
        assert_eq!(
            (c.logs.url.as_str(), c.logs.protocol),
            ("https://loki-gw:3100/otlp/v1/logs", Protocol::HttpProtobuf)
        );
        assert!(c.metrics.gzip);
        assert_eq!((c.metrics.url.as_str(), c.metrics.protocol), ("http://flag:4318", Protocol::Grpc));
    }

    #[test]
    fn a_bad_header_variable_is_named_in_the_error_with_the_pair_but_never_a_value() {
        let bad = |headers: &str| {
            let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_EXPORTER_OTLP_HEADERS", headers)];
            resolve(Options::default(), &env).unwrap_err().to_string()
        };
        let err = bad("a=b,,=c");
        assert!(err.contains("OTEL_EXPORTER_OTLP_HEADERS") && err.contains("pair 2"), "{err}");
        let err = bad("authorization=Bearer%20s3cr3t,bad key=1");
        assert!(err.contains("OTEL_EXPORTER_OTLP_HEADERS") && err.contains("\"bad key\""), "{err}");
        assert!(!err.contains("s3cr3t") && !err.contains("=1"), "a value leaked: {err}");
        let err = bad("authorization=s3cr3t%0D%0Ax: y");
        assert!(err.contains("decodes to a line break") && !err.contains("s3cr3t"), "{err}");
        let flag = Options {
            endpoint: Some("http://c:4317".into()),
            headers: vec!["a=s3cr\n3t".into()],
            ..Options::default()
        };
        let err = resolve(flag, &[]).unwrap_err().to_string();
        assert!(err.contains("\"a\"") && !err.contains("s3cr") && !err.contains("percent-encode"), "{err}");
    }

    #[test]
    fn bad_percent_encoding_is_refused_in_headers_and_resource_attributes() {
        for variable in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_LOGS_HEADERS", "OTEL_RESOURCE_ATTRIBUTES"] {
            for (value, why) in [("a=%ZZ", "two hex digits"), ("b=%FF", "not UTF-8"), ("c=50%", "two hex digits")] {
                let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), (variable, value)];
                let err = resolve(Options::default(), &env).unwrap_err().to_string();
                assert!(err.contains(variable) && err.contains(why), "{variable}={value}: {err}");
            }
        }
        let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_RESOURCE_ATTRIBUTES", "k=%C3%A9%25")];
        assert_eq!(
            resolve(Options::default(), &env).unwrap().unwrap().resource_attributes,
            vec![("k".into(), "é%".into())]
        );
    }

    #[test]
    fn an_endpoint_with_a_query_a_fragment_or_port_0_is_refused_and_never_shown_with_its_password() {
        for bad in ["http://h:4318/base?x=1", "http://h:4318/base#frag", "http://h:0", "https://u:pw@h:0/x"] {
            let err = resolve(Options { endpoint: Some(bad.into()), ..Options::default() }, &[]).unwrap_err();
            assert_eq!(err.key, "endpoint", "{bad}: {}", err.message);
            assert!(!err.message.contains("pw"), "{}", err.message);
        }
        let env = [("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://h:4318/v1/metrics?x")];
        assert!(resolve(Options::default(), &env).unwrap_err().message.contains("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"));
    }

    #[test]
    fn redacted_urls_lose_user_and_password_only() {
        assert_eq!(redacted_url("http://u:pw@host:4317"), "http://host:4317");
        assert_eq!(redacted_url("https://u@h/p@q"), "https://h/p@q");
        assert_eq!(redacted_url("http://a:b@c@h:1/x"), "http://h:1/x");
        assert_eq!(redacted_url("http://host:4317/v1/logs"), "http://host:4317/v1/logs");
        assert_eq!(redacted_url("collector:4317"), "collector:4317");
    }

    #[test]
    fn the_queue_and_the_interval_are_bounded() {
        let with = |queue_size, interval| Options {
            endpoint: Some("http://collector:4317".into()),
            queue_size,
            interval,
            ..Options::default()
        };
        let err = resolve(with(Some(1_000_000_000), None), &[]).unwrap_err();
        assert!(format!("{err:?}").contains("at most 1024"), "{err:?}");
        let err = resolve(with(None, Some(Duration::from_millis(10))), &[]).unwrap_err();
        assert!(format!("{err:?}").contains("at least 100ms"), "{err:?}");
        assert!(resolve(with(Some(1024), Some(Duration::from_millis(100))), &[]).unwrap().is_some());
    }

    #[test]
    fn one_signals_endpoint_alone_turns_the_push_on_and_the_others_get_the_default() {
        let c = resolve(
            Options::default(),
            &[
                ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:4318/custom"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.metrics.url, "http://m:4318/custom");
        assert_eq!(c.logs.url, "http://localhost:4318/v1/logs");
        let bad = resolve(Options::default(), &[("OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT", "pyroscope:4040")]);
        let why = bad.unwrap_err().to_string();
        assert!(why.contains("OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT") && why.contains("http://"), "{why}");
        let bad = resolve(
            Options::default(),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "10s")],
        );
        let why = bad.unwrap_err().to_string();
        assert!(why.contains("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT") && why.contains("milliseconds"), "{why}");
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

    #[test]
    fn what_the_transport_could_not_use_is_refused_at_start_and_environment_errors_name_the_variable() {
        let flag = |o: Options| resolve(o, &[]).unwrap_err();
        let endpoint = |e: &str| Options { endpoint: Some(e.into()), ..Options::default() };
        for bad in ["http://localhost:99999", "http://", "https://[::1"] {
            let err = flag(endpoint(bad));
            assert_eq!(err.key, "endpoint", "{bad}: {}", err.message);
        }
        let header = |h: &str| Options { headers: vec![h.into()], ..endpoint("http://localhost:4317") };
        let err = flag(header("a=b\r\nx: y"));
        assert!(err.key == "header" && err.message.contains("not a valid header value"), "{}", err.message);
        let err = flag(header("bad key=v"));
        assert!(err.message.contains("not a valid header name"), "{}", err.message);
        // From a variable: named by the variable, with no flag to blame.
        let env = |k: &str, v: &str| resolve(endpoint("http://localhost:4317"), &[(k, v)]).unwrap_err();
        for (variable, value) in [
            ("OTEL_EXPORTER_OTLP_HEADERS", "k=v\nz"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://h:70000"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ("OTEL_RESOURCE_ATTRIBUTES", "a=1,b"),
        ] {
            let err = env(variable, value);
            assert!(err.key == OptionError::ENVIRONMENT && err.message.contains(variable), "{variable}: {err:?}");
        }
        // Percent-encoded line breaks are values a header may not carry either.
        assert!(env("OTEL_EXPORTER_OTLP_HEADERS", "k=a%0Db").message.contains("not a valid header value"));
    }
}
