//! memcheck's text output (`--log-file` or stderr), read into the same
//! `Error` records as the XML: loss records and errors with their stacks.

use super::Error;
use super::report::Report;
use crate::meter::Meter;
use crate::model::ArtifactError;
use crate::valgrind;

/// `==19450== Memcheck, a memory error detector`
pub fn is_text(head: &str) -> bool {
    head.lines().take(3).any(|l| strip(l).is_some_and(|b| b.starts_with("Memcheck, a memory error detector")))
}

/// The body of a `==PID== …` line.
fn strip(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("==")?;
    let (pid, body) = rest.split_once("==")?;
    pid.bytes().all(|b| b.is_ascii_digit()).then(|| body.strip_prefix(' ').unwrap_or(body))
}

/// Reads a whole log into `report`, each error handed over as soon as it ends.
pub fn read(text: &str, report: &mut Report, meter: &mut Meter) -> Result<(), ArtifactError> {
    let mut current: Option<Error> = None;
    let mut finished = false;
    for line in text.lines() {
        let Some(body) = strip(line) else { continue };
        if body.trim().is_empty() {
            if let Some(e) = current.take() {
                report.error(e, meter);
            }
            continue;
        }
        let indent = body.len() - body.trim_start().len();
        let t = body.trim();
        if let Some(cmd) = t.strip_prefix("Command: ") {
            report.attribute("command", meter.name(cmd));
        } else if t.starts_with("ERROR SUMMARY:") {
            finished = true;
        } else if let Some((kind, bytes, blocks)) = summary_line(t) {
            report.summary_line(kind, bytes, blocks);
        } else if t.starts_with("All heap blocks were freed") {
            report.no_leaks();
        } else if let Some(frame) = t.strip_prefix("at ").or_else(|| t.strip_prefix("by ")) {
            if let Some(e) = current.as_mut() {
                if t.starts_with("at ") || e.stacks.is_empty() {
                    e.new_stack();
                }
                if let Some((_, stack)) = e.stacks.last_mut() {
                    meter.push_frame(stack, valgrind::frame(frame));
                }
            }
        } else if indent >= 1 && current.is_some() {
            // ` Address 0x… is 8 bytes inside a block of size 256 free'd`, ` Block was alloc'd at`
            if let Some(e) = current.as_mut() {
                e.add_auxwhat(meter.name(t));
            }
        } else if indent == 0 {
            if let Some(e) = current.take() {
                report.error(e, meter);
            }
            current = error_header(t, meter);
        }
    }
    if let Some(e) = current.take() {
        report.error(e, meter);
    }
    if !finished {
        return Err(ArtifactError::Truncated {
            format: super::ID,
            line: text.lines().count(),
            message: "no ERROR SUMMARY line: valgrind was killed or the log is incomplete".into(),
        });
    }
    Ok(())
}

/// A LEAK SUMMARY line: `definitely lost: 10,080 bytes in 12 blocks` → ("definite", 10080, 12).
fn summary_line(t: &str) -> Option<(&'static str, u64, u64)> {
    let (label, rest) = t.split_once(": ")?;
    let kind = match label {
        "definitely lost" => "definite",
        "indirectly lost" => "indirect",
        "possibly lost" => "possible",
        "still reachable" => "reachable",
        _ => return None,
    };
    let (bytes, rest) = rest.split_once(" bytes in ")?;
    let blocks = rest.strip_suffix(" blocks")?;
    let number = |s: &str| s.replace(',', "").trim().parse().ok();
    Some((kind, number(bytes)?, number(blocks)?))
}

/// A loss record or an error's first line; summaries and notes are not.
fn error_header(t: &str, meter: &mut Meter) -> Option<Error> {
    if let Some((amount, rest)) = t.split_once(" bytes in ") {
        let (blocks, rest) = rest.split_once(" blocks are ")?;
        let kind = [
            ("definitely lost", "Leak_DefinitelyLost"),
            ("indirectly lost", "Leak_IndirectlyLost"),
            ("possibly lost", "Leak_PossiblyLost"),
            ("still reachable", "Leak_StillReachable"),
        ]
        .iter()
        .find(|(text, _)| rest.starts_with(text))?
        .1;
        let total = amount.split_whitespace().next()?.replace(',', "").parse().ok();
        return Some(Error {
            kind: kind.into(),
            what: meter.name(t),
            leaked_bytes: total,
            leaked_blocks: blocks.replace(',', "").parse().ok(),
            ..Error::default()
        });
    }
    let kind = [
        ("Invalid read", "InvalidRead"),
        ("Invalid write", "InvalidWrite"),
        ("Invalid free", "InvalidFree"),
        ("Mismatched free", "MismatchedFree"),
        ("Conditional jump or move depends on uninitialised", "UninitCondition"),
        ("Use of uninitialised value", "UninitValue"),
        ("Syscall param", "SyscallParam"),
        ("Source and destination overlap", "Overlap"),
        ("Argument 'size' of function", "FishyValue"),
    ]
    .iter()
    .find(|(text, _)| t.starts_with(text))?
    .1;
    Some(Error { kind: kind.into(), what: meter.name(t), ..Error::default() })
}
