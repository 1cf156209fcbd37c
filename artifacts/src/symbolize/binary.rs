//! What one binary tells about an address in it: the function of its symbol
//! tables, and with usable debug info the source file and line, and the calls
//! inlined there.

use super::dwarf::Lines;
use super::elf::{self, Symbols};
use super::open::{self, Refusal};
use crate::model::Frame;
use std::fs::File;

/// The symbols and line tables of one binary.
#[derive(Debug)]
pub struct Binary {
    symbols: Symbols,
    lines: Option<Lines>,
    /// Why its debug info, present, gives no lines (read whole, or found broken on a lookup).
    pub note: Option<Refusal>,
}

impl Binary {
    /// Reads the symbols of `file` (`size` bytes) within `table_bytes`, and its
    /// debug info within `debug_bytes`; debug info that cannot be used leaves a
    /// `note`, not an error: the functions are still named.
    pub fn read(file: &File, size: u64, table_bytes: u64, debug_bytes: u64) -> Result<Binary, Refusal> {
        let mut symbols = Symbols::read(file, size, table_bytes)?;
        // A stripped binary's separate debug file (same build id) has the full
        // symbol table. (Its DWARF is not read: libc's takes seconds to index.)
        let debug = elf::build_id(file, size).and_then(|id| open::debug_file(&id));
        if let Some(debug) = debug
            && let Ok(debug_size) = debug.metadata().map(|m| m.len())
            && let Ok(more) = Symbols::read(&debug, debug_size, table_bytes)
        {
            symbols.add_functions(more);
        }
        let (lines, note) = match Lines::read(file, size, debug_bytes) {
            Ok(lines) => (lines, None),
            Err(why) => (None, Some(why)),
        };
        Ok(Binary { symbols, lines, note })
    }

    /// What it holds in memory.
    pub fn bytes(&self) -> usize {
        self.symbols.bytes() + self.lines.as_ref().map_or(0, Lines::bytes)
    }

    /// The frames at file offset `offset` of `frame` (a `module+0xoffset` frame
    /// of this binary), innermost first: the calls inlined there (`inlined`),
    /// then the function holding the code, each with its source file and line
    /// when the debug info has them; without them the function keeps the
    /// module as its file. `None` when nothing here names the offset.
    pub fn frames(&mut self, frame: &Frame, offset: u64, max_inlined: usize) -> Option<Vec<Frame>> {
        let name = self.symbols.lookup(offset);
        let source = match (&self.lines, self.symbols.address_of(offset)) {
            (Some(lines), Some(address)) => lines.frames(address, max_inlined).unwrap_or_else(|why| {
                self.note = Some(why);
                Vec::new()
            }),
            _ => Vec::new(),
        };
        if source.is_empty() {
            return name.map(|function| vec![Frame { function, ..frame.clone() }]);
        }
        let last = source.len() - 1;
        let frames = source
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                // The symbol table names the outermost function as every other
                // profile of this binary does, with or without debug info.
                let function = if i == last { name.clone().or(s.function) } else { s.function };
                Frame {
                    function: function.unwrap_or_else(|| "(inlined)".to_owned()),
                    file: s.file.or_else(|| frame.file.clone()),
                    line: s.line,
                    address: frame.address,
                    inlined: i != last,
                }
            })
            .collect();
        Some(frames)
    }
}
