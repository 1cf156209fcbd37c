//! `memleak-exporter ingest [--out DIR] FILE…`: converts development and
//! allocator tools' output into a pprof profile, collapsed stacks, an SVG
//! flame graph and a JSON summary, or prints a summary with the top leak
//! sites; within a budget per file that its flags raise.

pub mod memory;
pub mod names;
pub mod outputs;
pub mod pipeline;

use memleak_artifacts::Budget;
use memleak_artifacts::encode::summary;
use memleak_artifacts::symbolize::SymbolPath;
use outputs::OutputDir;
use std::collections::HashSet;
use std::io::{IsTerminal, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The `ingest` command's arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder for the outputs (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Folder holding the binaries of a heap dump's process, searched by file name before the
    /// paths the dump records (repeatable).
    #[arg(long = "symbols", value_name = "DIR")]
    pub symbols: Vec<PathBuf>,
    /// Largest input file, as stored [default: 4294967296].
    #[arg(long, value_name = "BYTES")]
    pub max_file_bytes: Option<u64>,
    /// Largest text after decompression, held in memory while parsed [default: 1073741824].
    #[arg(long, value_name = "BYTES")]
    pub max_decompressed_bytes: Option<u64>,
    /// Largest decompressed-to-compressed ratio (past the first MiB) [default: 500].
    #[arg(long, value_name = "N")]
    pub max_ratio: Option<u64>,
    /// Memory for the parsed stacks, samples and records, for one binary's symbol tables and for
    /// its debug info; past it the rest is left out and the summary says so [default: 1073741824].
    #[arg(long, value_name = "BYTES")]
    pub max_parsed_bytes: Option<u64>,
    /// Largest outputs of one file, all together [default: 2147483648].
    #[arg(long, value_name = "BYTES")]
    pub max_output_bytes: Option<u64>,
    /// Longest time one file may take [default: 30m].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Files to ingest; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

impl Args {
    /// The command's budget with the flags laid over it.
    pub fn budget(&self) -> Budget {
        let d = Budget::COMMAND;
        Budget {
            file_bytes: self.max_file_bytes.unwrap_or(d.file_bytes),
            decompressed_bytes: self.max_decompressed_bytes.unwrap_or(d.decompressed_bytes),
            ratio: self.max_ratio.unwrap_or(d.ratio),
            parsed_bytes: self.max_parsed_bytes.unwrap_or(d.parsed_bytes),
            output_bytes: self.max_output_bytes.unwrap_or(d.output_bytes),
            time: self.timeout.unwrap_or(d.time),
        }
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
pub fn run(args: &Args) -> usize {
    let budget = args.budget();
    let symbols = SymbolPath { dirs: args.symbols.clone(), recorded_paths: true, readable_by: None };
    let out = match &args.out {
        Some(dir) => match std::fs::create_dir_all(dir).and_then(|()| OutputDir::open(dir)) {
            Ok(out) => Some(out),
            Err(e) => {
                eprintln!("memleak-exporter ingest: cannot use {} for the outputs: {e}", dir.display());
                return args.files.len().max(1);
            }
        },
        None => None,
    };
    let mut used = HashSet::new();
    let mut failed = 0;
    for file in &args.files {
        let shown = if file.as_os_str() == "-" { "stdin".to_owned() } else { file.display().to_string() };
        let out = out.as_ref().zip(args.out.as_deref());
        if let Err(e) = one(file, &shown, out, &budget, &symbols, &mut used) {
            eprintln!("memleak-exporter ingest: {shown}: {e}");
            failed += 1;
        }
        memory::release();
    }
    failed
}

/// Ingests one file (or standard input for `-`) into `out`, or prints its summary.
fn one(
    file: &Path,
    shown: &str,
    out: Option<(&OutputDir, &Path)>,
    budget: &Budget,
    symbols: &SymbolPath,
    used: &mut HashSet<String>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + budget.time;
    let converted = if file.as_os_str() == "-" {
        pipeline::convert(std::io::stdin().lock(), None, budget, symbols, deadline)?
    } else {
        let input = std::fs::File::open(file).map_err(|e| anyhow::anyhow!("cannot open: {e}"))?;
        let size = input.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        let input = Progress::new(input, shown, size);
        pipeline::convert(input, size, budget, symbols, deadline)?
    };
    if !converted.unsymbolized.is_empty() {
        eprintln!(
            "memleak-exporter ingest: {shown}: left unsymbolized (pass --symbols DIR for binaries not found): {}",
            pipeline::unsymbolized_line(&converted.unsymbolized)
        );
    }
    let ingested = converted.ingested;
    for note in &ingested.left_out {
        eprintln!("memleak-exporter ingest: {shown}: {note} (raise --max-parsed-bytes to keep it)");
    }
    let Some((dir, dir_path)) = out else {
        print!("{}", summary::text(shown, &ingested));
        return Ok(());
    };
    for hint in &ingested.hints {
        eprintln!("memleak-exporter ingest: {shown}: {hint}");
    }
    // Two inputs with one file name (a/x.log, b/x.log) get two sets of outputs.
    let source = match file.file_name() {
        Some(name) if file.as_os_str() != "-" => name.as_bytes(),
        _ => b"stdin".as_slice(),
    };
    let name = names::unique(&names::stem(source), |n| used.contains(n))
        .ok_or_else(|| anyhow::anyhow!("no free output name for it in this run"))?;
    used.insert(name.clone());
    let extra = [("source_name", serde_json::json!(names::escaped(file.as_os_str().as_bytes())))];
    let written = outputs::write_all(dir, &name, &ingested, &extra, budget.output_bytes).map_err(|e| {
        if outputs::over_budget(&e) {
            anyhow::anyhow!("{e} (raise --max-output-bytes)")
        } else {
            anyhow::anyhow!("writing the outputs: {e}")
        }
    })?;
    println!("{shown} ({}): wrote {} in {}", ingested.format, written.join(", "), dir_path.display());
    Ok(())
}

/// Inputs at least this large show their progress on stderr (when it is a terminal).
const PROGRESS_FROM_BYTES: u64 = 32 << 20;

/// A reader that draws a progress bar of a large input on a terminal.
struct Progress<'a, R> {
    inner: R,
    name: &'a str,
    size: u64,
    read: u64,
    shown: bool,
}

impl<'a, R: Read> Progress<'a, R> {
    fn new(inner: R, name: &'a str, size: Option<u64>) -> Progress<'a, R> {
        let size = size.unwrap_or(0);
        let shown = size >= PROGRESS_FROM_BYTES && std::io::stderr().is_terminal();
        Progress { inner, name, size, read: 0, shown }
    }
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.shown {
            self.read += n as u64;
            if n == 0 {
                eprintln!("\r{}: read {} MB, parsing…{:30}", self.name, self.read >> 20, "");
                self.shown = false;
            } else {
                let done = (self.read * 40 / self.size.max(1)).min(40) as usize;
                eprint!("\r{}: [{:<40}] {} MB", self.name, "#".repeat(done), self.read >> 20);
            }
        }
        Ok(n)
    }
}
