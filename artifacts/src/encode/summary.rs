//! Summaries of an ingested artifact: JSON (format, totals, top sites, every
//! record with its stacks) and the few lines a person reads in a terminal.

use crate::model::Ingested;
use crate::sites;
use serde_json::{Value, json};
use std::fmt::Write as _;

/// Top sites listed in summaries.
pub const TOP_SITES: usize = 10;

/// The JSON summary of the artifact named `name`.
pub fn json(name: &str, ingested: &Ingested) -> Value {
    let totals: serde_json::Map<String, Value> = ingested.totals.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let attributes: serde_json::Map<String, Value> =
        ingested.attributes.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let top = ingested.profiles.first().map(|p| {
        sites::top(p, 0, TOP_SITES)
            .into_iter()
            .map(|s| {
                let values: serde_json::Map<String, Value> =
                    p.sample_types.iter().zip(&s.values).map(|(t, v)| (t.kind.to_owned(), json!(v))).collect();
                json!({ "function": s.frame.function, "file": s.frame.file, "line": s.frame.line, "values": values })
            })
            .collect::<Vec<_>>()
    });
    let records: Vec<Value> = ingested
        .records
        .iter()
        .map(|r| {
            let stacks: Vec<Value> = r
                .stacks
                .iter()
                .map(|(role, frames)| {
                    let frames: Vec<String> = frames.iter().map(|f| f.to_string()).collect();
                    json!({ "role": role, "frames": frames })
                })
                .collect();
            let attributes: serde_json::Map<String, Value> =
                r.attributes.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            json!({
                "severity": r.severity.as_str(), "kind": r.kind, "message": r.message,
                "bytes": r.bytes, "blocks": r.blocks, "attributes": attributes, "stacks": stacks,
            })
        })
        .collect();
    json!({
        "file": name,
        "format": ingested.format,
        "totals": totals,
        "attributes": attributes,
        "profiles": ingested.profiles.iter().map(|p| json!({ "name": p.name, "samples": p.samples.len(),
            "sample_types": p.sample_types.iter().map(|t| format!("{}/{}", t.kind, t.unit)).collect::<Vec<_>>() })).collect::<Vec<_>>(),
        "top_sites": top,
        "records": records,
    })
}

/// What a person reads in a terminal: the artifact `name`, its format, totals and top sites.
pub fn text(name: &str, ingested: &Ingested) -> String {
    let mut s = format!("{name} ({})\n", ingested.format);
    for (k, v) in &ingested.totals {
        let _ = writeln!(s, "  {k:<24} {v}");
    }
    if let Some(p) = ingested.profiles.first() {
        let unit = p.sample_types.first().map_or("", |t| t.kind);
        let _ = writeln!(s, "  top sites by {unit}:");
        for site in sites::top(p, 0, TOP_SITES) {
            let values: Vec<String> =
                p.sample_types.iter().zip(&site.values).map(|(t, v)| format!("{v} {}", t.unit)).collect();
            let _ = writeln!(s, "    {:<40} {}", site.frame.to_string(), values.join(", "));
        }
    }
    let errors = ingested.records.iter().filter(|r| !r.kind.starts_with("leak.") && r.kind != "massif.snapshot");
    for r in errors {
        let _ = writeln!(s, "  {} {}: {}", r.severity.as_str(), r.kind, r.message);
    }
    s
}
