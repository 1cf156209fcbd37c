//! LeakSanitizer reports, standalone (`-fsanitize=leak`) or inside ASan
//! (`detect_leaks=1`), on stderr or in `log_path` files: one record per leak,
//! the SUMMARY totals, suppressed leaks, and a leak profile.

use crate::format::Format;
use crate::meter::{Meter, record_cost, sample_cost};
use crate::model::{ArtifactError, Ingested, LEAKED_OBJECTS, LEAKED_SPACE, Profile, Record, Sample, Severity};
use crate::sanitizer;

const ID: &str = "lsan";

fn sniff(head: &str) -> bool {
    head.contains("ERROR: LeakSanitizer: detected memory leaks")
}

fn parse(text: &str, meter: &mut Meter) -> Result<Ingested, ArtifactError> {
    let mut out = Ingested::new(ID);
    let mut leaks = Profile::new("leaks", vec![LEAKED_SPACE, LEAKED_OBJECTS]);
    let mut summary: Option<(u64, u64)> = None;
    let mut sums = [0u64; 4];
    let mut suppressed = (0u64, 0u64);
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).peekable();
    while let Some((n, line)) = lines.next() {
        let trimmed = line.trim();
        if let Some(pid) = trimmed.strip_prefix("==").and_then(|r| r.split_once("==ERROR: LeakSanitizer")) {
            if out.attributes.is_empty() {
                out.attributes.push(("pid".into(), meter.name(pid.0)));
            }
        } else if let Some((kind, bytes, objects)) = leak_header(trimmed) {
            let (bytes, objects) = (
                bytes.ok_or_else(|| malformed(n, "byte count is not a number"))?,
                objects.ok_or_else(|| malformed(n, "object count is not a number"))?,
            );
            let stack = sanitizer::stack(&mut lines, meter);
            if stack.is_empty() {
                return Err(ArtifactError::Truncated {
                    format: ID,
                    line: n,
                    message: "a leak without its stack".into(),
                });
            }
            let mut record =
                Record::new(Severity::Error, format!("leak.{kind}"), meter.name(trimmed.trim_end_matches(':')));
            record.bytes = Some(bytes);
            record.blocks = Some(objects);
            // report_objects=1 lists every leaked object after the stack (and a blank line).
            while lines.peek().is_some_and(|(_, l)| l.trim().is_empty()) {
                lines.next();
            }
            if lines.peek().is_some_and(|(_, l)| l.trim() == "Objects leaked above:") {
                lines.next();
                let mut listed = 0u64;
                while lines.peek().is_some_and(|(_, l)| l.trim_start().starts_with("0x")) {
                    lines.next();
                    listed += 1;
                }
                record.attributes.push(("objects_listed".into(), listed.to_string()));
            }
            let slot = if kind == "direct" { 0 } else { 2 };
            sums[slot] += bytes;
            sums[slot + 1] += objects;
            let sample = Sample {
                stack: stack.clone(),
                values: vec![bytes as i64, objects as i64],
                labels: vec![("kind".into(), kind.into())],
            };
            record.stacks.push(("allocation".into(), stack));
            // The sums above count every leak; past the budget only the details are left out.
            if meter.admit("leak records", sample_cost(&sample) + record_cost(&record)) {
                leaks.samples.push(sample);
                out.records.push(record);
            }
        } else if trimmed == "Suppressions used:" {
            suppressed = suppressions(&mut lines);
        } else if let Some(totals) = trimmed.strip_prefix("SUMMARY: ").and_then(summary_line) {
            summary = Some(totals);
        }
    }
    let Some((bytes, allocations)) = summary else {
        return Err(ArtifactError::Truncated {
            format: ID,
            line: text.lines().count(),
            message: "no `SUMMARY: … leaked in … allocation(s)` line: the report is cut short".into(),
        });
    };
    if bytes != sums[0] + sums[2] {
        let mut r = Record::new(
            Severity::Warn,
            "lsan.inconsistent",
            format!("SUMMARY says {bytes} bytes, the leak records add up to {}", sums[0] + sums[2]),
        );
        r.bytes = Some(bytes);
        out.records.push(r);
    }
    out.totals = vec![
        ("leaked_bytes".into(), bytes as f64),
        ("leaked_allocations".into(), allocations as f64),
        ("direct_bytes".into(), sums[0] as f64),
        ("direct_objects".into(), sums[1] as f64),
        ("indirect_bytes".into(), sums[2] as f64),
        ("indirect_objects".into(), sums[3] as f64),
        ("suppressed_bytes".into(), suppressed.1 as f64),
        ("suppressed_allocations".into(), suppressed.0 as f64),
    ];
    out.profiles.push(leaks);
    Ok(out)
}

/// `Direct leak of 307200 byte(s) in 200 object(s) allocated from:`
fn leak_header(line: &str) -> Option<(&'static str, Option<u64>, Option<u64>)> {
    let (kind, rest) = if let Some(r) = line.strip_prefix("Direct leak of ") {
        ("direct", r)
    } else if let Some(r) = line.strip_prefix("Indirect leak of ") {
        ("indirect", r)
    } else {
        return None;
    };
    let (bytes, rest) = rest.split_once(" byte(s) in ")?;
    let (objects, _) = rest.split_once(" object(s)")?;
    Some((kind, sanitizer::number(bytes), sanitizer::number(objects)))
}

/// `AddressSanitizer: 409600 byte(s) leaked in 600 allocation(s).`
fn summary_line(rest: &str) -> Option<(u64, u64)> {
    let (_, rest) = rest.split_once(": ")?;
    let (bytes, rest) = rest.split_once(" byte(s) leaked in ")?;
    let (allocations, _) = rest.split_once(" allocation(s)")?;
    Some((sanitizer::number(bytes)?, sanitizer::number(allocations)?))
}

/// The `count bytes template` table; returns (allocations, bytes) suppressed.
fn suppressions<'a>(lines: &mut std::iter::Peekable<impl Iterator<Item = (usize, &'a str)>>) -> (u64, u64) {
    let mut total = (0, 0);
    while let Some((_, line)) = lines.peek() {
        // Four words tell a row from anything else: a longer line is not one.
        let words: Vec<&str> = line.split_whitespace().take(4).collect();
        match words.as_slice() {
            ["count", "bytes", "template"] => {}
            [count, bytes, _template] => match (sanitizer::number(count), sanitizer::number(bytes)) {
                (Some(c), Some(b)) => {
                    total.0 += c;
                    total.1 += b;
                }
                _ => break,
            },
            _ => break,
        }
        lines.next();
    }
    total
}

fn malformed(line: usize, message: &str) -> ArtifactError {
    ArtifactError::Malformed { format: ID, line, message: message.into() }
}

/// The lsan line of the format table.
pub static FORMAT: Format = Format { id: ID, about: ABOUT, sniff, parse };

const ABOUT: &str = "LeakSanitizer reports (gcc, clang; stderr or log_path; suppressions, report_objects)";

#[cfg(test)]
mod tests;
