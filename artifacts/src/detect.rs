//! Finding the format of an artifact from its content, not its name, and parsing it.

use crate::decompress::decompress;
use crate::formats::FORMATS;
use crate::model::{ArtifactError, Ingested};

/// How many bytes of the head are enough to recognize every format.
const SNIFF_BYTES: usize = 64 * 1024;

/// Decompresses `bytes` if they are compressed, then detects the format and parses it.
pub fn ingest_bytes(bytes: &[u8]) -> Result<Ingested, ArtifactError> {
    let plain = decompress(bytes)?;
    ingest(&String::from_utf8_lossy(&plain))
}

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
