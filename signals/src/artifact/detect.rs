//! Finding the format of an artifact from its content, not its name.

use super::{ArtifactError, Ingested};

/// Largest artifact read into memory (a bigger one is refused, not truncated).
pub const MAX_ARTIFACT_BYTES: u64 = 1 << 30;

/// A parser of one artifact format.
#[derive(Debug)]
pub struct Format {
    /// The signal id of the technology (`massif`, `memcheck`, …).
    pub id: &'static str,
    /// Whether the input looks like this format (from its first few KiB).
    pub sniff: fn(&str) -> bool,
    pub parse: fn(&str) -> Result<Ingested, ArtifactError>,
}

/// Every artifact format, most specific first.
pub static FORMATS: &[Format] = &[
    Format { id: "massif", sniff: crate::massif::sniff, parse: crate::massif::parse },
    Format { id: "memcheck", sniff: crate::memcheck::sniff, parse: crate::memcheck::parse },
    Format { id: "lsan", sniff: crate::lsan::sniff, parse: crate::lsan::parse },
    Format { id: "asan", sniff: crate::asan::sniff, parse: crate::asan::parse },
    Format { id: "jemalloc", sniff: crate::jemalloc::sniff, parse: crate::jemalloc::parse },
    Format { id: "tcmalloc", sniff: crate::tcmalloc::sniff, parse: crate::tcmalloc::parse },
];

/// How many bytes of the head are enough to recognize every format.
const SNIFF_BYTES: usize = 64 * 1024;

/// Detects the format of `text` and parses it.
pub fn ingest(text: &str) -> Result<Ingested, ArtifactError> {
    let mut end = text.len().min(SNIFF_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    match FORMATS.iter().find(|f| (f.sniff)(head)) {
        Some(format) => (format.parse)(text),
        None => Err(ArtifactError::UnknownFormat {
            known: FORMATS.iter().map(|f| f.id).collect::<Vec<_>>().join(", "),
            head: head.chars().take(60).collect(),
        }),
    }
}
