//! Valgrind Massif (`massif.out.<pid>`): heap snapshots over time, with the
//! allocation tree of detailed snapshots. The peak snapshot becomes an
//! `inuse_space` profile; every snapshot's heap, extra-heap and stack bytes
//! become a record, and the peak and the last snapshot become totals.

mod tree;

use crate::format::Format;
use crate::meter::{Meter, record_cost};
use crate::model::{ArtifactError, INUSE_SPACE, Ingested, Profile, Record, Severity};

const ID: &str = "massif";

/// Massif files start with `desc:` and have `time_unit:` and `snapshot=` lines.
fn sniff(head: &str) -> bool {
    head.starts_with("desc:") && head.contains("\ntime_unit:") && head.contains("snapshot=")
}

/// One snapshot's figures; `seq` is its position in the file.
#[derive(Debug, Default, Clone, Copy)]
struct Snapshot {
    seq: usize,
    index: u64,
    time: u64,
    heap: u64,
    extra: u64,
    stacks: u64,
    detailed: bool,
    peak: bool,
}

/// The snapshots that matter once the file is read, and the trees they may
/// need: the one marked peak, the largest, the last, the last detailed one.
/// Other trees are dropped as soon as they cannot be chosen any more.
#[derive(Debug, Default)]
struct Chosen {
    count: usize,
    marked_peak: Option<Snapshot>,
    largest: Option<Snapshot>,
    last: Option<Snapshot>,
    last_detailed: Option<Snapshot>,
    /// (snapshot seq, tree, what the meter charged for it)
    trees: Vec<(usize, tree::Node, u64)>,
}

impl Chosen {
    fn add(&mut self, s: Snapshot, tree: Option<(tree::Node, u64)>, meter: &mut Meter) {
        self.count += 1;
        if s.peak && self.marked_peak.is_none() {
            self.marked_peak = Some(s);
        }
        // The last of equal maxima wins, as `Iterator::max_by_key` does.
        if self.largest.is_none_or(|l| s.heap >= l.heap) {
            self.largest = Some(s);
        }
        self.last = Some(s);
        if let Some((node, cost)) = tree {
            self.last_detailed = Some(s);
            self.trees.push((s.seq, node, cost));
        }
        let needed: Vec<usize> =
            [self.marked_peak, self.largest, self.last_detailed].iter().flatten().map(|s| s.seq).collect();
        self.trees.retain(|(seq, _, cost)| {
            let keep = needed.contains(seq);
            if !keep {
                meter.release(*cost);
            }
            keep
        });
    }

    fn tree(&self, seq: usize) -> Option<&tree::Node> {
        self.trees.iter().find(|(s, _, _)| *s == seq).map(|(_, node, _)| node)
    }
}

fn parse(text: &str, meter: &mut Meter) -> Result<Ingested, ArtifactError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).peekable();
    let mut out = Ingested::new(ID);
    let mut cmd = String::new();
    let mut time_unit = String::new();
    let mut chosen = Chosen::default();
    let mut current: Option<(Snapshot, Option<(tree::Node, u64)>)> = None;
    while let Some((n, line)) = lines.next() {
        if line.starts_with("desc:") || line.starts_with('#') {
            continue;
        } else if let Some(v) = line.strip_prefix("cmd: ") {
            cmd = meter.name(v);
        } else if let Some(v) = line.strip_prefix("time_unit: ") {
            time_unit = meter.name(v);
        } else if let Some(v) = line.strip_prefix("snapshot=") {
            let index = number(v, n)?;
            if let Some((done, tree)) = current.take() {
                finish(&mut out, &mut chosen, done, tree, &time_unit, meter);
            }
            current = Some((Snapshot { seq: chosen.count, index, ..Snapshot::default() }, None));
        } else if let Some((key, value)) = line.split_once('=') {
            let (s, tree) =
                current.as_mut().ok_or_else(|| malformed(n, format!("{key}= before the first snapshot")))?;
            match key {
                "time" => s.time = number(value, n)?,
                "mem_heap_B" => s.heap = number(value, n)?,
                "mem_heap_extra_B" => s.extra = number(value, n)?,
                "mem_stacks_B" => s.stacks = number(value, n)?,
                "heap_tree" => match value {
                    "empty" => {}
                    "detailed" | "peak" => {
                        s.peak = value == "peak";
                        s.detailed = true;
                        if let Some((_, cost)) = tree.take() {
                            meter.release(cost);
                        }
                        *tree = Some(tree::read(&mut lines, n, meter)?);
                    }
                    other => return Err(malformed(n, format!("unknown heap_tree kind {:?}", meter.name(other)))),
                },
                _ => {}
            }
        }
    }
    if let Some((done, tree)) = current.take() {
        finish(&mut out, &mut chosen, done, tree, &time_unit, meter);
    }
    if chosen.count == 0 {
        return Err(ArtifactError::Truncated { format: ID, line: text.lines().count(), message: "no snapshot".into() });
    }
    // Massif marks the peak only among detailed snapshots; without one, the largest heap wins.
    let peak = chosen.marked_peak.or(chosen.largest);
    if let Some(peak) = peak {
        out.totals.push(("peak_heap_bytes".into(), peak.heap as f64));
        out.totals.push(("peak_heap_extra_bytes".into(), peak.extra as f64));
        out.totals.push(("peak_stacks_bytes".into(), peak.stacks as f64));
    }
    if let Some(last) = chosen.last {
        out.totals.push(("last_heap_bytes".into(), last.heap as f64));
    }
    out.totals.push(("snapshots".into(), chosen.count as f64));
    let detailed = peak.filter(|s| s.detailed).or(chosen.last_detailed);
    if let Some((snapshot, tree)) = detailed.and_then(|s| Some((s, chosen.tree(s.seq)?))) {
        // What the profile's sites add up to: the peak's heap, or the last detailed snapshot's.
        out.totals.push(("profile_heap_bytes".into(), snapshot.heap as f64));
        let mut profile = Profile::new("peak", vec![INUSE_SPACE]);
        tree::leaves(tree, &mut profile.samples, meter);
        out.profiles.push(profile);
    }
    out.attributes.push(("command".into(), cmd));
    Ok(out)
}

/// A snapshot read whole: its record (when the budget allows) and its place among the chosen.
fn finish(
    out: &mut Ingested,
    chosen: &mut Chosen,
    s: Snapshot,
    tree: Option<(tree::Node, u64)>,
    time_unit: &str,
    meter: &mut Meter,
) {
    let mut r = Record::new(Severity::Info, "massif.snapshot", format!("snapshot {}: heap {} B", s.index, s.heap));
    r.bytes = Some(s.heap);
    r.attributes = vec![
        ("snapshot".into(), s.index.to_string()),
        (format!("time_{time_unit}"), s.time.to_string()),
        ("heap_extra_bytes".into(), s.extra.to_string()),
        ("stacks_bytes".into(), s.stacks.to_string()),
    ];
    if meter.admit("snapshot records", record_cost(&r)) {
        out.records.push(r);
    }
    chosen.add(s, tree, meter);
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
