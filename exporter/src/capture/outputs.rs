//! A finished capture's outputs in the spool (pprof, collapsed stacks, flame
//! graph, JSON summary) through the artifact encoders, and its log record:
//! what was captured, from which alert, and the top sites with their bytes
//! (the record an OTLP logs sink ships).

use super::spool::{Info, Spool};
use memleak_artifacts::encode::{flamegraph, folded, pprof, summary};
use memleak_artifacts::{Ingested, Record, Severity, sites};
use serde_json::{Value, json};

/// Top sites named in the log record.
const RECORD_SITES: usize = 5;

/// Writes the outputs of `result`; returns the files written and the summary for the captures list.
pub fn write(spool: &Spool, info: &Info, result: &Ingested) -> std::io::Result<(Vec<String>, Value)> {
    let mut result = result.clone();
    result.records.insert(0, record(info, &result));
    let mut files = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        spool.write(&info.id, name, bytes)?;
        files.push(name.to_owned());
        Ok(())
    };
    let title = format!("{} {}", info.kind, info.target_text());
    if let Some(main) = result.profiles.first() {
        put("profile.pb.gz", &pprof::encode(main, &title))?;
        let collapsed = folded::encode(main, main.main_index());
        put("folded", collapsed.as_bytes())?;
        let svg = flamegraph::encode(main, &title, &collapsed).map_err(std::io::Error::other)?;
        if !svg.is_empty() {
            put("flamegraph.svg", &svg)?;
        }
    }
    if let Some(end) = result.profiles.iter().find(|p| p.name == "end") {
        put("end.pb.gz", &pprof::encode(end, &title))?;
    }
    let mut written = Vec::new();
    summary::write_json(&mut written, &info.id, &result, &[])?;
    put("summary.json", &written)?;
    let full: Value = serde_json::from_slice(&written).map_err(std::io::Error::other)?;
    let short = json!({ "format": full["format"], "totals": full["totals"], "top_sites": full["top_sites"], "attributes": full["attributes"] });
    Ok((files, short))
}

/// The capture's log record: kind, target, fingerprint, top sites with bytes.
fn record(info: &Info, result: &Ingested) -> Record {
    let main = result.profiles.first();
    let top = main.map(|p| sites::top(p, 0, RECORD_SITES)).unwrap_or_default();
    let unit = main.and_then(|p| p.sample_types.first()).map_or("bytes", |t| t.unit);
    let tops: Vec<String> =
        top.iter().map(|s| format!("{} {} {unit}", s.frame.function, s.values.first().copied().unwrap_or(0))).collect();
    let severity = if info.status == super::kinds::Status::Done { Severity::Info } else { Severity::Warn };
    let mut r = Record::new(
        severity,
        format!("capture.{}", info.kind),
        format!(
            "{} capture {} of {}: {}{}",
            info.kind,
            info.status.as_str(),
            info.target_text(),
            if tops.is_empty() { "no site".to_owned() } else { format!("top sites: {}", tops.join(", ")) },
            info.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
        ),
    );
    r.bytes = main.map(|p| p.total(0)).and_then(|b| u64::try_from(b).ok());
    r.attributes = vec![
        ("capture.id".into(), info.id.clone()),
        ("capture.kind".into(), info.kind.clone()),
        ("capture.status".into(), info.status.as_str().into()),
        ("capture.target".into(), info.target_text()),
        ("alert.fingerprint".into(), info.fingerprint.clone()),
        ("alert.name".into(), info.labels.get("alertname").cloned().unwrap_or_default()),
    ];
    for (i, site) in top.iter().enumerate() {
        r.attributes.push((format!("site.{i}.function"), site.frame.function.clone()));
        r.attributes.push((format!("site.{i}.{unit}"), site.values.first().copied().unwrap_or(0).to_string()));
    }
    if let Some(first) = top.first() {
        r.stacks = main
            .and_then(|p| {
                p.samples.iter().find(|s| sites::site(&s.stack).is_some_and(|f| f.function == first.frame.function))
            })
            .map(|s| vec![("allocation".to_owned(), s.stack.clone())])
            .unwrap_or_default();
    }
    r
}
