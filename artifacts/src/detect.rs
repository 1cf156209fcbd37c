//! Finding the format of an artifact from its content, not its name, and
//! parsing it within a budget.

use crate::budget::Budget;
use crate::decompress::read_text;
use crate::formats::FORMATS;
use crate::meter::Meter;
use crate::model::{ArtifactError, Ingested};
use std::io::Read;
use std::time::Instant;

/// How many bytes of the head are enough to recognize every format.
const SNIFF_BYTES: usize = 64 * 1024;

/// Reads `input` (decompressed if it is compressed), detects its format and
/// parses it, all within `budget`; `stored_size` is the input's size when known.
/// The text is dropped before this returns: the result owns what it keeps.
pub fn ingest_read(
    input: impl Read,
    stored_size: Option<u64>,
    budget: &Budget,
    deadline: Instant,
) -> Result<Ingested, ArtifactError> {
    let text = read_text(input, stored_size, budget, deadline)?;
    let ingested = ingest_within(&text, budget.parsed_bytes)?;
    if Instant::now() > deadline {
        return Err(ArtifactError::TimedOut { limit: budget.time });
    }
    Ok(ingested)
}

/// `ingest_read` of bytes in memory, within the `ingest` command's budget.
pub fn ingest_bytes(bytes: &[u8]) -> Result<Ingested, ArtifactError> {
    let budget = Budget::COMMAND;
    ingest_read(bytes, Some(bytes.len() as u64), &budget, Instant::now() + budget.time)
}

/// Detects the format of `text` and parses it within the `ingest` command's parsed-size budget.
pub fn ingest(text: &str) -> Result<Ingested, ArtifactError> {
    ingest_within(text, Budget::COMMAND.parsed_bytes)
}

/// Detects the format of `text` and parses it, its model metered against `parsed_bytes`;
/// what the meter left out is listed in `Ingested::left_out`.
pub fn ingest_within(text: &str, parsed_bytes: u64) -> Result<Ingested, ArtifactError> {
    let mut end = text.len().min(SNIFF_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    let Some(format) = FORMATS.iter().find(|f| (f.sniff)(head)) else {
        return Err(ArtifactError::UnknownFormat {
            known: FORMATS.iter().map(|f| f.id).collect::<Vec<_>>().join(", "),
            head: head.chars().take(60).collect(),
        });
    };
    let mut meter = Meter::new(parsed_bytes);
    let mut ingested = (format.parse)(text, &mut meter)?;
    ingested.left_out = meter.notes();
    Ok(ingested)
}
