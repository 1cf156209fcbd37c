//! The model of an artifact (a Massif file, a memcheck report, a sanitizer
//! log, an allocator dump, a capture's output): pprof-shaped profiles, log
//! records, and totals. One model, many encoders (see `encode`).

use std::fmt;

/// One stack frame, as precise as the format tells.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    /// Function name (demangled where the format gives a mangled one), or `0x…` when unknown.
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub address: Option<u64>,
    /// Inlined into the next frame (its caller): both are one machine address,
    /// which pprof writes as one location with a line per function.
    pub inlined: bool,
}

impl Frame {
    pub fn function(name: impl Into<String>) -> Frame {
        Frame { function: name.into(), file: None, line: None, address: None, inlined: false }
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.function)?;
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, " ({file}:{line})"),
            (Some(file), None) => write!(f, " ({file})"),
            _ => Ok(()),
        }
    }
}

/// A sample type of a profile, as in pprof (`inuse_space`/`bytes`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueType {
    pub kind: &'static str,
    pub unit: &'static str,
}

pub const INUSE_SPACE: ValueType = ValueType { kind: "inuse_space", unit: "bytes" };
pub const INUSE_OBJECTS: ValueType = ValueType { kind: "inuse_objects", unit: "count" };
pub const ALLOC_SPACE: ValueType = ValueType { kind: "alloc_space", unit: "bytes" };
pub const ALLOC_OBJECTS: ValueType = ValueType { kind: "alloc_objects", unit: "count" };
pub const LEAKED_SPACE: ValueType = ValueType { kind: "leaked_space", unit: "bytes" };
pub const LEAKED_OBJECTS: ValueType = ValueType { kind: "leaked_objects", unit: "count" };
/// In-use bytes and objects added during a capture window (end minus start).
pub const GROWTH_SPACE: ValueType = ValueType { kind: "growth_space", unit: "bytes" };
pub const GROWTH_OBJECTS: ValueType = ValueType { kind: "growth_objects", unit: "count" };
/// User page faults where a stack touched memory (the page-fault collector's profile).
pub const PAGE_FAULTS: ValueType = ValueType { kind: "page_faults", unit: "count" };

/// One sample: a stack (innermost frame first) and one value per sample type.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub stack: Vec<Frame>,
    pub values: Vec<i64>,
    pub labels: Vec<(String, String)>,
}

/// A pprof-shaped profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// What the profile shows, e.g. `leaks` or `peak`; names the output files.
    pub name: String,
    pub sample_types: Vec<ValueType>,
    pub samples: Vec<Sample>,
}

impl Profile {
    pub fn new(name: impl Into<String>, sample_types: Vec<ValueType>) -> Self {
        Profile { name: name.into(), sample_types, samples: Vec::new() }
    }

    /// The sample type a reader should open on: leaked, then in-use, then
    /// grown, then allocated bytes, then any bytes, then the first type.
    pub fn main_index(&self) -> usize {
        [LEAKED_SPACE, INUSE_SPACE, GROWTH_SPACE, ALLOC_SPACE]
            .iter()
            .find_map(|t| self.sample_types.iter().position(|s| s == t))
            .or_else(|| self.sample_types.iter().position(|s| s.unit == "bytes"))
            .unwrap_or(0)
    }

    /// The sum of sample type `index`.
    pub fn total(&self, index: usize) -> i64 {
        self.samples.iter().map(|s| s.values.get(index).copied().unwrap_or(0)).sum()
    }
}

/// How serious a record is (OpenTelemetry severity names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
        }
    }
}

/// One finding: a leak record, a sanitizer error, a summary line.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub severity: Severity,
    /// A stable kind such as `leak.definite`, `asan.heap-use-after-free`.
    pub kind: String,
    pub message: String,
    pub bytes: Option<u64>,
    pub blocks: Option<u64>,
    pub attributes: Vec<(String, String)>,
    /// Named stacks (`allocation`, `access`, `free`), innermost frame first.
    pub stacks: Vec<(String, Vec<Frame>)>,
}

impl Record {
    pub fn new(severity: Severity, kind: impl Into<String>, message: impl Into<String>) -> Self {
        Record {
            severity,
            kind: kind.into(),
            message: message.into(),
            bytes: None,
            blocks: None,
            attributes: Vec::new(),
            stacks: Vec::new(),
        }
    }
}

/// Everything one artifact yields.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// The detected format: its id in the format table.
    pub format: &'static str,
    /// The main profile comes first (the one named in summaries).
    pub profiles: Vec<Profile>,
    pub records: Vec<Record>,
    /// Named totals (`leaked_bytes`, `peak_heap_bytes`, …).
    pub totals: Vec<(String, f64)>,
    /// Facts about the run (`command`, `pid`, `tool`).
    pub attributes: Vec<(String, String)>,
    /// What the budget made the parse leave out or cut, one sentence each.
    pub left_out: Vec<String>,
    /// What the input itself lacks and how to get it (an option the tool ran
    /// without, another of its outputs to ingest), one sentence each.
    pub hints: Vec<String>,
}

impl Ingested {
    pub fn new(format: &'static str) -> Self {
        Ingested {
            format,
            profiles: Vec::new(),
            records: Vec::new(),
            totals: Vec::new(),
            attributes: Vec::new(),
            left_out: Vec::new(),
            hints: Vec::new(),
        }
    }

    pub fn total(&self, name: &str) -> Option<f64> {
        self.totals.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Why an artifact could not be read or parsed: the format, where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// `head`: its first characters, escaped (empty when they are not text);
    /// `complete`: whether more bytes could not make it a known format (its
    /// start is binary, or the whole head every format looks at was there).
    #[error("not a format memleak-exporter knows (looked for: {known}); {}", shown_head(head))]
    UnknownFormat { known: String, head: String, complete: bool },
    #[error("{}", compression_message(codec, inside))]
    UnsupportedCompression { codec: &'static str, inside: Option<&'static str> },
    #[error("{format}: {message} (line {line})")]
    Malformed { format: &'static str, line: usize, message: String },
    #[error("{format}: truncated at line {line}: {message}")]
    Truncated { format: &'static str, line: usize, message: String },
    #[error("{size} bytes stored, more than the budget of {limit}")]
    FileTooLarge { size: u64, limit: u64 },
    #[error("more than {limit} bytes of text (after decompression), the budget")]
    DecompressedTooLarge { limit: u64 },
    #[error("{codec}: decompresses to more than {limit} times its size (a decompression bomb?)")]
    CompressionRatio { codec: &'static str, limit: u64 },
    #[error(
        "zstd: a window of {window} bytes, more than the {limit} this budget decodes (recompress without --long or --ultra)"
    )]
    ZstdWindow { window: u64, limit: u64 },
    #[error("{what} outgrew the parsed-size budget of {limit} bytes")]
    OverBudget { what: &'static str, limit: u64 },
    #[error("took longer than the budget of {}", humanize(*limit))]
    TimedOut { limit: std::time::Duration },
    #[error("cannot read: {message}")]
    Unreadable { message: String },
}

impl ArtifactError {
    /// A short, fixed name of the kind of failure (a metric label value).
    pub fn reason(&self) -> &'static str {
        match self {
            ArtifactError::UnknownFormat { .. } => "unknown_format",
            ArtifactError::UnsupportedCompression { .. } => "unsupported_compression",
            ArtifactError::Malformed { .. } => "malformed",
            ArtifactError::Truncated { .. } => "truncated",
            ArtifactError::FileTooLarge { .. } => "file_too_large",
            ArtifactError::DecompressedTooLarge { .. } => "decompressed_too_large",
            ArtifactError::CompressionRatio { .. } => "compression_ratio",
            ArtifactError::ZstdWindow { .. } => "zstd_window",
            ArtifactError::OverBudget { .. } => "parsed_too_large",
            ArtifactError::TimedOut { .. } => "timeout",
            ArtifactError::Unreadable { .. } => "unreadable",
        }
    }

    /// Every value `reason` can take.
    pub const REASONS: &'static [&'static str] = &[
        "unknown_format",
        "unsupported_compression",
        "malformed",
        "truncated",
        "file_too_large",
        "decompressed_too_large",
        "compression_ratio",
        "zstd_window",
        "parsed_too_large",
        "timeout",
        "unreadable",
    ];
}

fn shown_head(head: &str) -> String {
    if head.is_empty() {
        "it is not text (binary bytes at its start)".to_owned()
    } else {
        format!("it starts with {:?}", head)
    }
}

fn compression_message(codec: &str, inside: &Option<&'static str>) -> String {
    match inside {
        Some(outer) => format!("{codec} inside {outer}: nested compression is not read (decompress it once)"),
        None => format!("{codec}-compressed: only zstd and gzip are read (recompress it with zstd or gzip)"),
    }
}

fn humanize(d: std::time::Duration) -> String {
    format!("{} s", d.as_secs_f64())
}
