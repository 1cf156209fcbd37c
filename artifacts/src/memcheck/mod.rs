//! Valgrind memcheck reports (`--xml=yes`, protocol 4, or the text log): one
//! record per loss record and per error, a leak profile, and the leak totals.
//!
//! Double counting: a definitely-lost record whose blocks point to others says
//! "102,400 (256 direct, 102,144 indirect) bytes", and the indirect bytes also
//! have their own record. The profile and the totals take only the direct part
//! of such a record, so per-site sums and totals match the LEAK SUMMARY.

mod text;
mod xml;

use crate::format::Format;
use crate::model::{ArtifactError, Frame, Ingested, LEAKED_OBJECTS, LEAKED_SPACE, Profile, Record, Sample, Severity};

const ID: &str = "memcheck";

fn sniff(head: &str) -> bool {
    (head.contains("<valgrindoutput>") && head.contains("<protocoltool>memcheck</protocoltool>")) || text::is_text(head)
}

/// One `<error>` element.
#[derive(Debug, Default, Clone)]
pub struct Error {
    pub kind: String,
    /// `<what>` or `<xwhat><text>`.
    pub what: String,
    pub leaked_bytes: Option<u64>,
    pub leaked_blocks: Option<u64>,
    /// Stacks in order; each after the first is described by the `<auxwhat>` before it.
    pub stacks: Vec<(String, Vec<Frame>)>,
    pub auxwhat: Vec<String>,
}

fn parse(text: &str) -> Result<Ingested, ArtifactError> {
    let report = if text.trim_start().starts_with('<') { xml::read(text)? } else { text::read(text)? };
    let mut out = Ingested::new(ID);
    out.attributes.extend(report.attributes);
    let mut leaks = Profile::new("leaks", vec![LEAKED_SPACE, LEAKED_OBJECTS]);
    let mut totals = [0u64; 8];
    for e in &report.errors {
        let Some(leak) = leak_kind(&e.kind) else {
            out.records.push(error_record(e));
            continue;
        };
        let bytes = e.leaked_bytes.unwrap_or(0);
        let blocks = e.leaked_blocks.unwrap_or(0);
        // Only the direct part of a record that also reports indirect bytes.
        let direct = direct_bytes(&e.what).unwrap_or(bytes);
        let slot = match leak {
            "definite" => 0,
            "indirect" => 2,
            "possible" => 4,
            _ => 6,
        };
        totals[slot] += direct;
        totals[slot + 1] += blocks;
        let stack = e.stacks.first().map(|(_, s)| s.clone()).unwrap_or_default();
        if leak != "reachable" {
            leaks.samples.push(Sample {
                stack: stack.clone(),
                values: vec![direct as i64, blocks as i64],
                labels: vec![("kind".into(), leak.into())],
            });
        }
        let mut r = Record::new(
            if leak == "reachable" { Severity::Info } else { Severity::Error },
            format!("leak.{leak}"),
            e.what.clone(),
        );
        r.bytes = Some(bytes);
        r.blocks = Some(blocks);
        r.stacks.push(("allocation".into(), stack));
        out.records.push(r);
    }
    for (i, name) in ["definite", "indirect", "possible", "reachable"].iter().enumerate() {
        out.totals.push((format!("{name}_bytes"), totals[2 * i] as f64));
        out.totals.push((format!("{name}_blocks"), totals[2 * i + 1] as f64));
    }
    out.totals.push(("leaked_bytes".into(), (totals[0] + totals[2] + totals[4]) as f64));
    out.totals.push(("leaked_blocks".into(), (totals[1] + totals[3] + totals[5]) as f64));
    out.totals.push(("errors".into(), out.records.iter().filter(|r| !r.kind.starts_with("leak.")).count() as f64));
    out.profiles.push(leaks);
    Ok(out)
}

fn leak_kind(kind: &str) -> Option<&'static str> {
    match kind {
        "Leak_DefinitelyLost" => Some("definite"),
        "Leak_IndirectlyLost" => Some("indirect"),
        "Leak_PossiblyLost" => Some("possible"),
        "Leak_StillReachable" => Some("reachable"),
        _ => None,
    }
}

/// `102,400 (256 direct, 102,144 indirect) bytes …` → 256.
fn direct_bytes(what: &str) -> Option<u64> {
    let open = what.find('(')?;
    let close = what[open..].find(')')? + open;
    let (direct, _) = what[open + 1..close].split_once(" direct")?;
    direct.replace(',', "").trim().parse().ok()
}

fn error_record(e: &Error) -> Record {
    let mut r = Record::new(Severity::Error, format!("memcheck.{}", e.kind), e.what.clone());
    for (i, (_, stack)) in e.stacks.iter().enumerate() {
        let role = if i == 0 {
            "access".to_owned()
        } else {
            let aux = e.auxwhat.get(i - 1).map(String::as_str).unwrap_or_default();
            if aux.contains("free'd") {
                "free".into()
            } else if aux.contains("alloc'd") {
                "allocation".into()
            } else {
                format!("aux{i}")
            }
        };
        r.stacks.push((role, stack.clone()));
    }
    for aux in &e.auxwhat {
        r.attributes.push(("auxwhat".into(), aux.clone()));
    }
    r
}

/// The memcheck line of the format table.
pub static FORMAT: Format = Format { id: ID, about: ABOUT, sniff, parse };

const ABOUT: &str = "Valgrind memcheck reports (--xml=yes or the text log): loss records and errors";

#[cfg(test)]
mod tests;
