//! Summaries of an ingested artifact: JSON (format, totals, top sites, what
//! the budget left out, every record with its stacks), written as it goes
//! (one record in memory at a time), and the few lines a person reads in a terminal.

use crate::model::{Ingested, Profile, Record};
use crate::sites;
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::io::{self, Write};

/// Top sites listed in summaries.
pub const TOP_SITES: usize = 10;

/// Widest site column of the text summary; longer names push their numbers right.
const SITE_COLUMN: usize = 72;

/// Writes the JSON summary of the artifact named `name` to `out`; `extra`
/// fields (facts of the caller, such as where the file came from) follow `file`.
pub fn write_json(mut out: impl Write, name: &str, ingested: &Ingested, extra: &[(&str, Value)]) -> io::Result<()> {
    let pairs = |items: &[(String, String)]| -> Map<String, Value> {
        items.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
    };
    let totals: Map<String, Value> = ingested.totals.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let top = ingested.profiles.first().map(|p| {
        sites::top(p, p.main_index(), TOP_SITES)
            .into_iter()
            .map(|s| {
                let values: Map<String, Value> =
                    p.sample_types.iter().zip(&s.values).map(|(t, v)| (t.kind.to_owned(), json!(v))).collect();
                json!({ "function": s.frame.function, "file": s.frame.file, "line": s.frame.line, "values": values })
            })
            .collect::<Vec<_>>()
    });
    let profiles: Vec<Value> = ingested
        .profiles
        .iter()
        .map(|p| {
            json!({ "name": p.name, "samples": p.samples.len(),
                "sample_types": p.sample_types.iter().map(|t| format!("{}/{}", t.kind, t.unit)).collect::<Vec<_>>() })
        })
        .collect();
    let mut fields = vec![("file", json!(name))];
    fields.extend(extra.iter().cloned());
    fields.extend([
        ("format", json!(ingested.format)),
        ("totals", Value::Object(totals)),
        ("attributes", Value::Object(pairs(&ingested.attributes))),
        ("profiles", json!(profiles)),
        ("top_sites", json!(top)),
        ("left_out", json!(ingested.left_out)),
        ("hints", json!(ingested.hints)),
    ]);
    out.write_all(b"{\n")?;
    for (key, value) in fields {
        write!(out, "  {}: ", json!(key))?;
        serde_json::to_writer(&mut out, &value)?;
        out.write_all(b",\n")?;
    }
    out.write_all(b"  \"records\": [")?;
    for (i, record) in ingested.records.iter().enumerate() {
        out.write_all(if i == 0 { b"\n    " } else { b",\n    " })?;
        serde_json::to_writer(&mut out, &record_json(record))?;
    }
    out.write_all(b"\n  ]\n}\n")?;
    out.flush()
}

fn record_json(r: &Record) -> Value {
    let stacks: Vec<Value> = r
        .stacks
        .iter()
        .map(|(role, frames)| {
            let frames: Vec<String> = frames.iter().map(|f| f.to_string()).collect();
            json!({ "role": role, "frames": frames })
        })
        .collect();
    let attributes: Map<String, Value> = r.attributes.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    json!({
        "severity": r.severity.as_str(), "kind": r.kind, "message": r.message,
        "bytes": r.bytes, "blocks": r.blocks, "attributes": attributes, "stacks": stacks,
    })
}

/// What a person reads in a terminal: the artifact `name`, its format, totals and top sites.
pub fn text(name: &str, ingested: &Ingested) -> String {
    let mut s = format!("{name} ({})\n", ingested.format);
    for (k, v) in &ingested.totals {
        let _ = writeln!(s, "  {k:<24} {v}");
    }
    if let Some(p) = ingested.profiles.first() {
        sites_table(&mut s, p);
    }
    let errors = ingested.records.iter().filter(|r| !r.kind.starts_with("leak.") && r.kind != "massif.snapshot");
    for r in errors {
        let _ = writeln!(s, "  {} {}: {}", r.severity.as_str(), r.kind, r.message);
    }
    for note in &ingested.left_out {
        let _ = writeln!(s, "  left out: {note}");
    }
    for hint in &ingested.hints {
        let _ = writeln!(s, "  hint: {hint}");
    }
    s
}

/// The top sites of `p` by its main sample type, under a header naming each
/// column's sample type and unit, numbers right-aligned.
fn sites_table(s: &mut String, p: &Profile) {
    let main = p.main_index();
    let top = sites::top(p, main, TOP_SITES);
    let by = p.sample_types.get(main).map_or("", |t| t.kind);
    let _ = writeln!(s, "  top sites by {by}:");
    if top.is_empty() {
        let _ = writeln!(s, "    (none)");
        return;
    }
    let headers: Vec<String> = p.sample_types.iter().map(|t| format!("{} ({})", t.kind, t.unit)).collect();
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| top.iter().map(|site| digits(site.values.get(i))).max().unwrap_or(0).max(h.len()))
        .collect();
    let names: Vec<String> = top.iter().map(|site| site.frame.to_string()).collect();
    let name_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).clamp(4, SITE_COLUMN);
    let _ = write!(s, "    {:<name_width$}", "site");
    for (h, w) in headers.iter().zip(&widths) {
        let _ = write!(s, "  {h:>w$}");
    }
    s.push('\n');
    for (site, name) in top.iter().zip(&names) {
        let _ = write!(s, "    {name:<name_width$}");
        for (v, w) in site.values.iter().zip(&widths) {
            let _ = write!(s, "  {v:>w$}");
        }
        s.push('\n');
    }
}

fn digits(v: Option<&i64>) -> usize {
    v.map_or(0, |v| v.to_string().len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Frame, Severity};

    #[test]
    fn the_json_summary_is_one_valid_document() {
        let mut ingested = Ingested::new("lsan");
        ingested.totals.push(("leaked_bytes".into(), 96.0));
        ingested.left_out.push("3 leak records left out".into());
        for i in 0..3 {
            let mut r = Record::new(Severity::Error, "leak.direct", format!("leak {i} \"quoted\""));
            r.stacks.push(("allocation".into(), vec![Frame::function("f")]));
            ingested.records.push(r);
        }
        let mut out = Vec::new();
        write_json(&mut out, "a.log", &ingested, &[("source_name", json!("a\\xff.log"))]).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!((v["file"].as_str(), v["source_name"].as_str()), (Some("a.log"), Some("a\\xff.log")));
        assert_eq!(v["totals"]["leaked_bytes"], 96.0);
        assert_eq!(v["records"].as_array().unwrap().len(), 3);
        assert_eq!(v["records"][2]["message"], "leak 2 \"quoted\"");
        assert_eq!(v["left_out"][0], "3 leak records left out");
        let mut empty = Vec::new();
        write_json(&mut empty, "b", &Ingested::new("asan"), &[]).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&empty).unwrap()["records"], json!([]));
    }
}
