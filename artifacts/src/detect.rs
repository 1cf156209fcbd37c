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

/// How far into the head binary bytes show that no text format follows.
const BINARY_WITHIN: usize = 512;

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
        let binary = binary_start(head);
        return Err(ArtifactError::UnknownFormat {
            known: FORMATS.iter().map(|f| f.id).collect::<Vec<_>>().join(", "),
            head: if binary { String::new() } else { head.chars().take(60).collect() },
            complete: binary || text.len() >= SNIFF_BYTES,
        });
    };
    let mut meter = Meter::new(parsed_bytes);
    let mut ingested = (format.parse)(text, &mut meter)?;
    let notes = meter.notes();
    ingested.left_out.splice(0..0, notes);
    Ok(ingested)
}

/// Whether `head` starts like no text format can: a NUL or another control
/// character (tab, line breaks, form feed and the escape of terminal colours
/// aside) within its first bytes, or invalid UTF-8 at its very start.
fn binary_start(head: &str) -> bool {
    head.starts_with(char::REPLACEMENT_CHARACTER)
        || head
            .chars()
            .take(BINARY_WITHIN)
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c' | '\x1b'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_content_says_whether_more_bytes_could_help() {
        let unknown = |text: &str| match ingest_within(text, 1 << 20) {
            Err(ArtifactError::UnknownFormat { head, complete, .. }) => (head, complete),
            other => panic!("{other:?}"),
        };
        // Short text may be a file cut short: another try later.
        assert_eq!(unknown("x"), ("x".to_owned(), false));
        // Binary at the start never becomes a text format, and is not quoted.
        assert_eq!(unknown("\u{fffd}"), (String::new(), true));
        assert_eq!(unknown("ab\0cd"), (String::new(), true));
        let err = ingest_within("\x01\x02", 1 << 20).unwrap_err().to_string();
        assert!(err.contains("not text") && !err.contains('\x01'), "{err}");
        // A whole head of text that no format recognizes is final too.
        assert!(unknown(&"plain words\n".repeat(SNIFF_BYTES / 10)).1);
        // Colours and tabs are text.
        assert!(!binary_start("\x1b[1m==1==ERROR\t"));
    }
}
