//! Valgrind Massif (`massif.out.<pid>`): heap snapshots over time, with the
//! allocation tree of detailed snapshots. The peak snapshot becomes an
//! `inuse_space` profile; every snapshot's heap, extra-heap and stack bytes
//! become a record, and the peak and the last snapshot become totals.

mod tree;

use crate::format::Format;
use crate::model::{ArtifactError, INUSE_SPACE, Ingested, Profile, Record, Severity};

const ID: &str = "massif";

/// Massif files start with `desc:` and have `time_unit:` and `snapshot=` lines.
fn sniff(head: &str) -> bool {
    head.starts_with("desc:") && head.contains("\ntime_unit:") && head.contains("snapshot=")
}

#[derive(Debug, Default)]
struct Snapshot {
    index: u64,
    time: u64,
    heap: u64,
    extra: u64,
    stacks: u64,
    tree: Option<tree::Node>,
    peak: bool,
}

fn parse(text: &str) -> Result<Ingested, ArtifactError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).peekable();
    let mut cmd = String::new();
    let mut time_unit = String::new();
    let mut snapshots: Vec<Snapshot> = Vec::new();
    while let Some((n, line)) = lines.next() {
        if line.starts_with("desc:") || line.starts_with('#') {
            continue;
        } else if let Some(v) = line.strip_prefix("cmd: ") {
            cmd = v.to_owned();
        } else if let Some(v) = line.strip_prefix("time_unit: ") {
            time_unit = v.to_owned();
        } else if let Some(v) = line.strip_prefix("snapshot=") {
            let index = number(v, n)?;
            snapshots.push(Snapshot { index, ..Snapshot::default() });
        } else if let Some((key, value)) = line.split_once('=') {
            let s = snapshots.last_mut().ok_or_else(|| malformed(n, format!("{key}= before the first snapshot")))?;
            match key {
                "time" => s.time = number(value, n)?,
                "mem_heap_B" => s.heap = number(value, n)?,
                "mem_heap_extra_B" => s.extra = number(value, n)?,
                "mem_stacks_B" => s.stacks = number(value, n)?,
                "heap_tree" => match value {
                    "empty" => {}
                    "detailed" | "peak" => {
                        s.peak = value == "peak";
                        s.tree = Some(tree::read(&mut lines, n)?);
                    }
                    other => return Err(malformed(n, format!("unknown heap_tree kind {other:?}"))),
                },
                _ => {}
            }
        }
    }
    if snapshots.is_empty() {
        return Err(ArtifactError::Truncated { format: ID, line: text.lines().count(), message: "no snapshot".into() });
    }
    let mut out = Ingested::new(ID);
    for s in &snapshots {
        let mut r = Record::new(Severity::Info, "massif.snapshot", format!("snapshot {}: heap {} B", s.index, s.heap));
        r.bytes = Some(s.heap);
        r.attributes = vec![
            ("snapshot".into(), s.index.to_string()),
            (format!("time_{time_unit}"), s.time.to_string()),
            ("heap_extra_bytes".into(), s.extra.to_string()),
            ("stacks_bytes".into(), s.stacks.to_string()),
        ];
        out.records.push(r);
    }
    // Massif marks the peak only among detailed snapshots; without one, the largest heap wins.
    let peak = snapshots.iter().find(|s| s.peak).or_else(|| snapshots.iter().max_by_key(|s| s.heap));
    let last = snapshots.last();
    if let Some(peak) = peak {
        out.totals.push(("peak_heap_bytes".into(), peak.heap as f64));
        out.totals.push(("peak_heap_extra_bytes".into(), peak.extra as f64));
        out.totals.push(("peak_stacks_bytes".into(), peak.stacks as f64));
    }
    if let Some(last) = last {
        out.totals.push(("last_heap_bytes".into(), last.heap as f64));
    }
    out.totals.push(("snapshots".into(), snapshots.len() as f64));
    let detailed = peak.filter(|s| s.tree.is_some()).or_else(|| snapshots.iter().rev().find(|s| s.tree.is_some()));
    if let Some(tree) = detailed.and_then(|s| s.tree.as_ref()) {
        let mut profile = Profile::new("peak", vec![INUSE_SPACE]);
        tree::leaves(tree, &mut profile.samples);
        out.profiles.push(profile);
    }
    out.attributes.push(("command".into(), cmd));
    Ok(out)
}

fn number(text: &str, line: usize) -> Result<u64, ArtifactError> {
    text.trim().parse().map_err(|_| malformed(line, format!("expected a number, found {text:?}")))
}

fn malformed(line: usize, message: String) -> ArtifactError {
    ArtifactError::Malformed { format: ID, line, message }
}

/// The massif line of the format table.
pub static FORMAT: Format = Format { id: ID, about: ABOUT, sniff, parse };

const ABOUT: &str = "Valgrind Massif (massif.out.PID): heap snapshots over time; the peak's allocation tree";

#[cfg(test)]
mod tests;
