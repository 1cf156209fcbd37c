//! The meter a parser builds its model under: it charges what the model holds
//! against the budget's `parsed_bytes`, cuts stacks and names to fixed caps,
//! and remembers what it left out so the result can say so.
//!
//! Memory is what hostile input amplifies (a 5-byte frame line becomes a
//! frame of ~80 bytes, a stack shared by a million records is copied a
//! million times), so parsers charge each stack, sample, record and total
//! before keeping it. Past the budget a parser keeps counting (totals stay
//! right) but keeps no more detail; tables it cannot go without are
//! `require`d, and running out of those refuses the artifact.

use crate::model::{ArtifactError, Frame, Record, Sample};
use std::collections::BTreeMap;
use std::mem::size_of;

/// Frames kept per stack: the innermost ones (where memory is allocated);
/// deeper stacks lose their outermost frames. jemalloc records at most 128,
/// gperftools 64, ASan 30 by default, Valgrind up to 500.
pub const FRAMES_PER_STACK: usize = 256;

/// Longest function name, file or message kept, in bytes (demangled C++
/// templates run to a few kilobytes); longer ones are cut and end in `…`.
pub const NAME_BYTES: usize = 2048;

/// The parsed-size account of one artifact.
#[derive(Debug)]
pub struct Meter {
    limit: u64,
    used: u64,
    /// What was left out once the budget was spent, and how many.
    left_out: BTreeMap<&'static str, u64>,
    frames_cut: u64,
    names_cut: u64,
}

impl Default for Meter {
    /// The `ingest` command's budget.
    fn default() -> Meter {
        Meter::new(crate::Budget::COMMAND.parsed_bytes)
    }
}

impl Meter {
    pub fn new(limit: u64) -> Meter {
        Meter { limit, used: 0, left_out: BTreeMap::new(), frames_cut: 0, names_cut: 0 }
    }

    /// Whether `what` (costing `bytes`) may be kept: charged when it fits,
    /// counted as left out when it does not.
    pub fn admit(&mut self, what: &'static str, bytes: u64) -> bool {
        if self.used.saturating_add(bytes) <= self.limit {
            self.used += bytes;
            true
        } else {
            *self.left_out.entry(what).or_default() += 1;
            false
        }
    }

    /// Counts one `what` left out without trying to keep it.
    pub fn skip(&mut self, what: &'static str) {
        *self.left_out.entry(what).or_default() += 1;
    }

    /// Charges what the parse cannot go without (its index tables): the
    /// artifact is refused once they outgrow the budget.
    pub fn require(&mut self, what: &'static str, bytes: u64) -> Result<(), ArtifactError> {
        if self.used.saturating_add(bytes) <= self.limit {
            self.used += bytes;
            Ok(())
        } else {
            Err(ArtifactError::OverBudget { what, limit: self.limit })
        }
    }

    /// Gives back the charge of something dropped.
    pub fn release(&mut self, bytes: u64) {
        self.used = self.used.saturating_sub(bytes);
    }

    /// Adds `frame` to `stack`, its names cut to `NAME_BYTES`, unless the stack
    /// already holds `FRAMES_PER_STACK` frames (then the frame is counted as cut).
    pub fn push_frame(&mut self, stack: &mut Vec<Frame>, mut frame: Frame) {
        if stack.len() >= FRAMES_PER_STACK {
            self.frames_cut += 1;
            return;
        }
        self.cut(&mut frame.function);
        if let Some(file) = frame.file.as_mut() {
            self.cut(file);
        }
        stack.push(frame);
    }

    /// Whether a stack of `len` frames is full: the caller may skip building the next frame.
    pub fn stack_full(&mut self, len: usize) -> bool {
        let full = len >= FRAMES_PER_STACK;
        if full {
            self.frames_cut += 1;
        }
        full
    }

    /// `text` as an owned name or message, cut to `NAME_BYTES`.
    pub fn name(&mut self, text: &str) -> String {
        if text.len() <= NAME_BYTES {
            return text.to_owned();
        }
        self.names_cut += 1;
        format!("{}…", &text[..floor_char_boundary(text, NAME_BYTES - '…'.len_utf8())])
    }

    fn cut(&mut self, text: &mut String) {
        if text.len() > NAME_BYTES {
            text.truncate(floor_char_boundary(text, NAME_BYTES - '…'.len_utf8()));
            text.push('…');
            self.names_cut += 1;
        }
    }

    /// What was left out or cut, one sentence each; empty when nothing was.
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self
            .left_out
            .iter()
            .map(|(what, n)| format!("{n} {what} left out: the parsed-size budget of {} bytes was spent", self.limit))
            .collect();
        if self.frames_cut > 0 {
            notes.push(format!("{} outer frames cut from stacks deeper than {FRAMES_PER_STACK}", self.frames_cut));
        }
        if self.names_cut > 0 {
            notes.push(format!("{} names longer than {NAME_BYTES} bytes cut", self.names_cut));
        }
        notes
    }
}

/// The largest char boundary of `text` at or below `at`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut end = at.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// What a string holds on the heap and in its handle.
pub fn string_cost(s: &str) -> u64 {
    (size_of::<String>() + s.len()) as u64
}

pub fn frame_cost(frame: &Frame) -> u64 {
    (size_of::<Frame>() + frame.function.len() + frame.file.as_deref().map_or(0, str::len)) as u64
}

pub fn stack_cost(stack: &[Frame]) -> u64 {
    size_of::<Vec<Frame>>() as u64 + stack.iter().map(frame_cost).sum::<u64>()
}

pub fn pairs_cost(pairs: &[(String, String)]) -> u64 {
    pairs.iter().map(|(k, v)| string_cost(k) + string_cost(v)).sum()
}

pub fn sample_cost(sample: &Sample) -> u64 {
    size_of::<Sample>() as u64
        + stack_cost(&sample.stack)
        + (sample.values.len() * size_of::<i64>()) as u64
        + pairs_cost(&sample.labels)
}

pub fn record_cost(record: &Record) -> u64 {
    size_of::<Record>() as u64
        + string_cost(&record.kind)
        + string_cost(&record.message)
        + pairs_cost(&record.attributes)
        + record.stacks.iter().map(|(role, stack)| string_cost(role) + stack_cost(stack)).sum::<u64>()
}

/// A named total or attribute.
pub fn total_cost(name: &str) -> u64 {
    (size_of::<(String, f64)>() + name.len()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_until_spent_then_counts_what_is_left_out() {
        let mut m = Meter::new(100);
        assert!(m.admit("records", 60));
        assert!(!m.admit("records", 60));
        assert!(m.admit("records", 40));
        assert!(!m.admit("stacks", 1));
        assert!(m.require("tables", 1).is_err());
        m.release(50);
        assert!(m.require("tables", 50).is_ok());
        assert_eq!(
            m.notes(),
            [
                "1 records left out: the parsed-size budget of 100 bytes was spent",
                "1 stacks left out: the parsed-size budget of 100 bytes was spent"
            ]
        );
    }

    #[test]
    fn stacks_and_names_are_cut() {
        let mut m = Meter::new(u64::MAX);
        let mut stack = Vec::new();
        for i in 0..FRAMES_PER_STACK + 5 {
            m.push_frame(&mut stack, Frame::function(format!("f{i}")));
        }
        assert_eq!(stack.len(), FRAMES_PER_STACK);
        assert_eq!(stack[0].function, "f0", "the innermost frames are kept");
        let long = "é".repeat(NAME_BYTES);
        let cut = m.name(&long);
        assert!(cut.len() <= NAME_BYTES && cut.ends_with('…'), "{}", cut.len());
        assert_eq!(m.name("short"), "short");
        assert_eq!(m.notes().len(), 2, "{:?}", m.notes());
    }
}
