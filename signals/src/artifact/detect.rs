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
    Format { id: "heaptrack", sniff: crate::heaptrack::sniff, parse: crate::heaptrack::parse },
    Format { id: "memcheck", sniff: crate::memcheck::sniff, parse: crate::memcheck::parse },
    Format { id: "lsan", sniff: crate::lsan::sniff, parse: crate::lsan::parse },
    Format { id: "asan", sniff: crate::asan::sniff, parse: crate::asan::parse },
    Format { id: "jemalloc", sniff: crate::jemalloc::sniff, parse: crate::jemalloc::parse },
    Format { id: "tcmalloc", sniff: crate::tcmalloc::sniff, parse: crate::tcmalloc::parse },
    Format { id: "mimalloc", sniff: crate::mimalloc::sniff, parse: crate::mimalloc::parse },
    Format { id: "bpftrace", sniff: crate::bpftrace::sniff, parse: crate::bpftrace::parse },
];

/// Decompresses zstd and gzip input (heaptrack writes `.zst` or `.gz`), at most
/// `MAX_ARTIFACT_BYTES` of output, and detects and parses the result.
pub fn ingest_bytes(bytes: &[u8]) -> Result<Ingested, ArtifactError> {
    use std::io::Read;
    let limit = MAX_ARTIFACT_BYTES;
    let mut plain = Vec::new();
    let decoded = if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = ruzstd::decoding::StreamingDecoder::new(bytes).map_err(|e| corrupt("zstd", e.to_string()))?;
        decoder.take(limit + 1).read_to_end(&mut plain).map_err(|e| corrupt("zstd", e.to_string()))?;
        true
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes)
            .take(limit + 1)
            .read_to_end(&mut plain)
            .map_err(|e| corrupt("gzip", e.to_string()))?;
        true
    } else {
        false
    };
    if plain.len() as u64 > limit {
        return Err(ArtifactError::TooLarge { limit });
    }
    let text = String::from_utf8_lossy(if decoded { &plain } else { bytes });
    ingest(&text)
}

fn corrupt(codec: &'static str, message: String) -> ArtifactError {
    ArtifactError::Malformed { format: codec, line: 0, message: format!("cannot decompress: {message}") }
}

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
