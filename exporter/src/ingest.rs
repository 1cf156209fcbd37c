//! `memleak-exporter ingest [--out DIR] FILE…`: converts development and
//! allocator tools' output into a pprof profile, collapsed stacks, an SVG
//! flame graph and a JSON summary, or prints a summary with the top leak sites.

use anyhow::Context;
use memleak_signals::artifact::{Ingested, Profile, detect, folded, pprof, sites};
use memleak_signals::heapprof::symbolize::{SymbolPath, symbolize};
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Top sites listed in summaries.
const TOP_SITES: usize = 10;

/// Where ingested artifacts go. The OTLP exporter (profiles, logs, metrics)
/// will be one more sink beside the folder of files.
pub trait Sink {
    fn ship(&self, source: &Path, ingested: &Ingested) -> anyhow::Result<()>;
}

/// Writes NAME.pb.gz, NAME.folded, NAME.svg and NAME.json into a folder.
#[derive(Debug)]
pub struct FolderSink {
    pub dir: PathBuf,
}

impl Sink for FolderSink {
    fn ship(&self, source: &Path, ingested: &Ingested) -> anyhow::Result<()> {
        write_outputs(source, ingested, &self.dir)
    }
}

/// Ingests every file; returns how many failed (each failure is printed on stderr).
pub fn run(files: &[PathBuf], out: Option<&Path>, symbols: &[PathBuf]) -> usize {
    let symbol_path = SymbolPath { dirs: symbols.to_vec(), recorded_paths: true };
    if let Some(dir) = out
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("memleak-exporter ingest: cannot create {}: {e}", dir.display());
        return files.len().max(1);
    }
    let mut failed = 0;
    for file in files {
        let result = ingest_file(file).map(|mut ingested| {
            let missing = symbolize(&mut ingested.profiles, &symbol_path);
            if !missing.is_empty() {
                eprintln!(
                    "memleak-exporter ingest: {}: left unsymbolized (binary not found; pass --symbols DIR): {}",
                    file.display(),
                    missing.join(", ")
                );
            }
            ingested
        });
        let result = result.and_then(|ingested| match out {
            Some(dir) => FolderSink { dir: dir.to_path_buf() }.ship(file, &ingested),
            None => {
                print!("{}", human_summary(file, &ingested));
                Ok(())
            }
        });
        if let Err(e) = result {
            eprintln!("memleak-exporter ingest: {}: {e:#}", file.display());
            failed += 1;
        }
    }
    failed
}

/// Inputs at least this large show their progress on stderr (when it is a terminal).
const PROGRESS_FROM_BYTES: u64 = 32 << 20;

/// Reads and parses one file (its format is detected from the content).
pub fn ingest_file(file: &Path) -> anyhow::Result<Ingested> {
    let mut f = std::fs::File::open(file).context("cannot open")?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    if size > detect::MAX_ARTIFACT_BYTES {
        anyhow::bail!("{size} bytes, larger than the {} accepted; split it", detect::MAX_ARTIFACT_BYTES);
    }
    let progress = size >= PROGRESS_FROM_BYTES && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut bytes = Vec::with_capacity(size as usize);
    let mut chunk = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut chunk).context("cannot read")?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
        if bytes.len() as u64 > detect::MAX_ARTIFACT_BYTES {
            anyhow::bail!("larger than {} bytes; split it", detect::MAX_ARTIFACT_BYTES);
        }
        if progress {
            let done = bytes.len() as u64 * 40 / size.max(1);
            eprint!("\r{}: [{:<40}] {} MB", file.display(), "#".repeat(done.min(40) as usize), bytes.len() >> 20);
        }
    }
    if progress {
        eprintln!("\r{}: read {} MB, parsing…{:30}", file.display(), bytes.len() >> 20, "");
    }
    Ok(detect::ingest_bytes(&bytes)?)
}

/// Writes NAME.pb.gz, NAME.folded, NAME.svg (when there is a profile) and NAME.json into `dir`.
pub fn write_outputs(file: &Path, ingested: &Ingested, dir: &Path) -> anyhow::Result<()> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "artifact".into());
    let base = dir.join(&name);
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", base.display()));
    if let Some(profile) = ingested.profiles.first() {
        std::fs::write(with("pb.gz"), pprof::encode(profile, &name)).context("writing the pprof profile")?;
        let collapsed = folded::encode(profile, 0);
        std::fs::write(with("folded"), &collapsed).context("writing the collapsed stacks")?;
        let svg = flame_graph(profile, &name, &collapsed)?;
        std::fs::write(with("svg"), svg).context("writing the flame graph")?;
    }
    let summary = serde_json::to_string_pretty(&json_summary(&name, ingested))?;
    std::fs::write(with("json"), summary + "\n").context("writing the summary")?;
    Ok(())
}

fn flame_graph(profile: &Profile, name: &str, collapsed: &str) -> anyhow::Result<Vec<u8>> {
    let mut svg = Vec::new();
    if collapsed.is_empty() {
        return Ok(svg);
    }
    let mut options = inferno::flamegraph::Options::default();
    options.title = format!("{name}: {}", profile.name);
    options.count_name = profile.sample_types.first().map_or("bytes", |t| t.unit).to_owned();
    inferno::flamegraph::from_lines(&mut options, collapsed.lines(), &mut svg).context("drawing the flame graph")?;
    Ok(svg)
}

/// The JSON summary: format, totals, attributes, top sites and every record.
pub fn json_summary(name: &str, ingested: &Ingested) -> Value {
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

/// What a person reads in a terminal: the format, the totals, the top sites.
pub fn human_summary(file: &Path, ingested: &Ingested) -> String {
    let mut s = format!("{} ({})\n", file.display(), ingested.format);
    for (k, v) in &ingested.totals {
        s.push_str(&format!("  {k:<24} {v}\n"));
    }
    if let Some(p) = ingested.profiles.first() {
        let unit = p.sample_types.first().map_or("", |t| t.kind);
        s.push_str(&format!("  top sites by {unit}:\n"));
        for site in sites::top(p, 0, TOP_SITES) {
            let values: Vec<String> =
                p.sample_types.iter().zip(&site.values).map(|(t, v)| format!("{v} {}", t.unit)).collect();
            s.push_str(&format!("    {:<40} {}\n", site.frame.to_string(), values.join(", ")));
        }
    }
    let errors = ingested.records.iter().filter(|r| !r.kind.starts_with("leak.") && r.kind != "massif.snapshot");
    for r in errors {
        s.push_str(&format!("  {} {}: {}\n", r.severity.as_str(), r.kind, r.message));
    }
    s
}
