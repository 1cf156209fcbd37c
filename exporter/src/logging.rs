//! Structured logs on stderr, as logfmt (`ts=… level=info msg="…" key=value`) or JSON.

use crate::options::log;
use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber that writes the log on stderr.
pub fn init(config: &log::Config) {
    let builder = tracing_subscriber::fmt().with_max_level(config.level).with_writer(std::io::stderr);
    match config.format {
        log::Format::Json => builder.json().flatten_event(true).init(),
        log::Format::Logfmt => builder.event_format(Logfmt).init(),
    }
}

/// logfmt lines: `ts`, `level`, `target`, then the event's fields (`message` as `msg`).
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        write!(writer, "ts={ts} level={} target={}", meta.level().as_str().to_ascii_lowercase(), meta.target())?;
        let mut line = String::new();
        event.record(&mut FieldWriter { out: &mut line });
        writeln!(writer, "{line}")
    }
}

struct FieldWriter<'a> {
    out: &'a mut String,
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        push_pair(self.out, field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        push_pair(self.out, field.name(), &format!("{value:?}"));
    }
}

fn push_pair(out: &mut String, key: &str, value: &str) {
    let key = if key == "message" { "msg" } else { key };
    let _ = write!(out, " {key}=");
    if !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
        out.push_str(value);
    } else {
        let _ = write!(out, "{value:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        let mut out = String::new();
        push_pair(&mut out, "message", "scrape failed");
        push_pair(&mut out, "collector", "psi");
        push_pair(&mut out, "path", "");
        assert_eq!(out, " msg=\"scrape failed\" collector=psi path=\"\"");
    }
}
