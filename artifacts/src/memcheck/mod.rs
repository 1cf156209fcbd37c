//! Valgrind memcheck reports (`--xml=yes`, protocol 4, or the text log): one
//! record per loss record and per error, a leak profile, and the leak totals
//! (without counting indirect bytes twice: see `report`).

mod report;
mod text;
mod xml;

use crate::format::Format;
use crate::meter::Meter;
use crate::model::{ArtifactError, Frame, Ingested};

const ID: &str = "memcheck";

/// Stacks and auxiliary lines kept per error: memcheck gives at most a few.
const STACKS_PER_ERROR: usize = 16;

fn sniff(head: &str) -> bool {
    (head.contains("<valgrindoutput>") && head.contains("<protocoltool>memcheck</protocoltool>")) || text::is_text(head)
}

/// One `<error>` element.
#[derive(Debug, Default, Clone)]
pub struct Error {
    pub kind: String,
    /// `<what>` or `<xwhat><text>`.
    pub what: String,
    pub leaked_bytes: Option<u64>,
    pub leaked_blocks: Option<u64>,
    /// Stacks in order; each after the first is described by the `<auxwhat>` before it.
    pub stacks: Vec<(String, Vec<Frame>)>,
    pub auxwhat: Vec<String>,
}

impl Error {
    /// Starts another stack, unless the error holds `STACKS_PER_ERROR` already.
    fn new_stack(&mut self) {
        if self.stacks.len() < STACKS_PER_ERROR {
            self.stacks.push((String::new(), Vec::new()));
        }
    }

    fn add_auxwhat(&mut self, text: String) {
        if self.auxwhat.len() < STACKS_PER_ERROR {
            self.auxwhat.push(text);
        }
    }
}

fn parse(text: &str, meter: &mut Meter) -> Result<Ingested, ArtifactError> {
    let mut report = report::Report::default();
    if text.trim_start().starts_with('<') {
        xml::read(text, &mut report, meter)?;
    } else {
        text::read(text, &mut report, meter)?;
    }
    Ok(report.finish())
}

/// The memcheck line of the format table.
pub static FORMAT: Format = Format { id: ID, about: ABOUT, sniff, parse };

const ABOUT: &str = "Valgrind memcheck reports (--xml=yes or the text log): loss records and errors";

#[cfg(test)]
mod tests;
