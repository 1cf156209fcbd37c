//! `memleak-exporter ingest [--out DIR] FILE…`: converts development and
//! allocator tools' output into a pprof profile, collapsed stacks, an SVG
//! flame graph and a JSON summary, or prints a summary with the top leak sites.

use anyhow::Context;
use memleak_artifacts::Ingested;
use memleak_artifacts::decompress::MAX_ARTIFACT_BYTES;
use memleak_artifacts::detect;
use memleak_artifacts::encode::{flamegraph, folded, pprof, summary};
use memleak_artifacts::symbolize::{SymbolPath, symbolize};
use std::io::Read;
use std::path::{Path, PathBuf};

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

/// The format table as `ingest --help` lists it.
pub fn formats_help() -> String {
    let mut text = String::from("Formats, tried in this order on the content of each file:\n");
    for format in memleak_artifacts::FORMATS {
        text.push_str(&format!("  {:<10} {}\n", format.id, format.about));
    }
    text
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
                print!("{}", summary::text(&file.display().to_string(), &ingested));
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
    if size > MAX_ARTIFACT_BYTES {
        anyhow::bail!("{size} bytes, larger than the {} accepted; split it", MAX_ARTIFACT_BYTES);
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
        if bytes.len() as u64 > MAX_ARTIFACT_BYTES {
            anyhow::bail!("larger than {} bytes; split it", MAX_ARTIFACT_BYTES);
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
        let svg = flamegraph::encode(profile, &name, &collapsed)?;
        std::fs::write(with("svg"), svg).context("writing the flame graph")?;
    }
    let summary = serde_json::to_string_pretty(&summary::json(&name, ingested))?;
    std::fs::write(with("json"), summary + "\n").context("writing the summary")?;
    Ok(())
}
