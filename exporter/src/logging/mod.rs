//! Structured logs on stderr, as logfmt (`ts=… level=info target=… msg="…" key=value`)
//! or JSON, safe whatever they carry and wherever they go: values are escaped
//! and bounded (`escape`), each place that logs is rate-limited (`limiter`),
//! and lines leave through a bounded queue whose writer shrugs off a slow or
//! broken stderr (`sink`). Debug and trace lines, asked for by a person
//! watching, are not rate-limited.

mod escape;
mod limiter;
mod sink;

use crate::options::log::{Config, Format};
use limiter::{Limiter, Suppressed};
use sink::Sink;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The installed log, for `flush`.
static LOG: OnceLock<Arc<Log>> = OnceLock::new();

/// Installs the global subscriber that writes the log on stderr (and takes the `log` crate's records too).
pub fn init(config: &Config) {
    let limiter = Arc::new(Limiter::default());
    let dropped = Arc::new(AtomicU64::new(0));
    let ticker = {
        let (limiter, dropped, format) = (Arc::clone(&limiter), Arc::clone(&dropped), config.format);
        Box::new(move |everything: bool| {
            let suppressed = if everything { limiter.take_all() } else { limiter.take_quiet(Instant::now()) };
            let mut lines: Vec<String> = suppressed.iter().map(|s| suppressed_line(format, s)).collect();
            let lost = dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                lines.push(dropped_line(format, lost));
            }
            lines
        })
    };
    let log = Arc::new(Log { format: config.format, limiter, sink: Sink::start(ticker, dropped) });
    let layer = LineLayer(Arc::clone(&log)).with_filter(LevelFilter::from_level(config.level));
    if tracing_subscriber::registry().with(layer).try_init().is_ok() {
        let _ = LOG.set(log);
    }
}

/// Writes what is queued, with the counts of lines suppressed so far (before exiting).
pub fn flush() {
    if let Some(log) = LOG.get() {
        log.sink.flush(Duration::from_secs(1));
    }
}

struct Log {
    format: Format,
    limiter: Arc<Limiter>,
    sink: Sink,
}

/// The layer that turns events into lines.
struct LineLayer(Arc<Log>);

impl<S: Subscriber> Layer<S> for LineLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut suppressed = 0;
        if *metadata.level() <= Level::INFO {
            match self.0.limiter.admit(metadata, Instant::now()) {
                Some(count) => suppressed = count,
                None => return,
            }
        }
        let mut line = Line::start(self.0.format, *metadata.level(), metadata.target());
        event.record(&mut line);
        if suppressed > 0 {
            line.number("suppressed", &suppressed.to_string());
        }
        self.0.sink.send(line.finish());
    }
}

/// One line being written.
struct Line {
    format: Format,
    out: String,
    target: &'static str,
}

impl Line {
    fn start(format: Format, level: Level, target: &'static str) -> Line {
        let now = SystemTime::now();
        let mut out = String::with_capacity(256);
        match format {
            Format::Logfmt => {
                out.push_str(&format!("ts={} level={}", humantime::format_rfc3339_millis(now), level_lower(level)));
                out.push_str(" target=");
                escape::logfmt_value(&mut out, target);
            }
            Format::Json => {
                out.push_str(&format!(
                    "{{\"timestamp\":\"{}\",\"level\":\"{level}\"",
                    humantime::format_rfc3339_micros(now)
                ));
            }
        }
        Line { format, out, target }
    }

    fn text(&mut self, key: &str, value: &str) {
        match self.format {
            Format::Logfmt => {
                self.out.push(' ');
                self.out.push_str(if key == "message" { "msg" } else { key });
                self.out.push('=');
                escape::logfmt_value(&mut self.out, value);
            }
            Format::Json => {
                self.out.push(',');
                escape::json_string(&mut self.out, key);
                self.out.push(':');
                escape::json_string(&mut self.out, value);
            }
        }
    }

    /// A number or a boolean, bare in both formats.
    fn number(&mut self, key: &str, value: &str) {
        match self.format {
            Format::Logfmt => {
                self.out.push(' ');
                self.out.push_str(key);
                self.out.push('=');
                self.out.push_str(value);
            }
            Format::Json => {
                self.out.push(',');
                escape::json_string(&mut self.out, key);
                self.out.push(':');
                self.out.push_str(value);
            }
        }
    }

    fn finish(mut self) -> String {
        if self.format == Format::Json {
            self.out.push_str(",\"target\":");
            escape::json_string(&mut self.out, self.target);
            self.out.push('}');
        }
        self.out.push('\n');
        self.out
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field.name(), &format!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field.name(), &value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field.name(), &value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field.name(), &value.to_string());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: those are written as text.
        if value.is_finite() {
            self.number(field.name(), &value.to_string())
        } else {
            self.text(field.name(), &value.to_string())
        }
    }
}

fn level_lower(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// The line that reports what a quiet callsite did not write.
fn suppressed_line(format: Format, s: &Suppressed) -> String {
    let mut line = Line::start(format, *s.metadata.level(), s.metadata.target());
    line.text(
        "message",
        "log lines suppressed by the rate limit (a burst of 50, then 1 a second, per place in the code)",
    );
    let at = format!("{}:{}", s.metadata.file().unwrap_or("?"), s.metadata.line().unwrap_or(0));
    line.text("source", &at);
    line.number("suppressed", &s.count.to_string());
    line.finish()
}

/// The line that reports lines the queue had no room for.
fn dropped_line(format: Format, count: u64) -> String {
    let mut line = Line::start(format, Level::WARN, module_path!());
    line.text("message", "log lines dropped: stderr did not take them as fast as they came");
    line.number("dropped", &count.to_string());
    line.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_escape_and_bound_what_they_carry_in_both_formats() {
        for format in [Format::Logfmt, Format::Json] {
            let (lines, _guard) = capture(format);
            let hostile = format!("\u{1b}]0;pwned\u{7}\n{}", "x".repeat(1 << 20));
            tracing::warn!(peer = %hostile, n = 3, "rejected: {hostile}");
            let text = lines();
            assert_eq!(text.lines().count(), 1, "{format:?}: one line");
            assert!(text.len() < 2 * escape::MAX_VALUE_BYTES + 300, "{format:?}: {} bytes", text.len());
            assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{format:?}: {text:?}");
            if format == Format::Json {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["level"], "WARN");
                assert_eq!(v["n"], 3);
                assert!(v["peer"].as_str().unwrap().starts_with("\u{1b}]0;pwned\u{7}\nxxx"));
            } else {
                assert!(
                    text.contains(" level=warn ")
                        && text.contains(" n=3")
                        && text.contains(" peer=\"\\x1b]0;pwned\\x07\\nxxx")
                );
            }
        }
    }

    /// Captures what the layer writes, for a test on this thread.
    fn capture(format: Format) -> (impl Fn() -> String, tracing::subscriber::DefaultGuard) {
        let limiter = Arc::new(Limiter::default());
        let dropped = Arc::new(AtomicU64::new(0));
        let out = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let log = Arc::new(Log { format, limiter, sink: Sink::collecting(Arc::clone(&out), dropped) });
        let guard = tracing_subscriber::registry().with(LineLayer(log)).set_default();
        (move || out.lock().unwrap().concat(), guard)
    }
}
