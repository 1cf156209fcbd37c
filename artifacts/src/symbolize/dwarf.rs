//! Source files, lines and inlined calls of addresses, from the DWARF sections
//! of a binary read within a byte budget (`elf::debug_sections`, on the file
//! the safe opener opened): addr2line over those bytes, never over a path.
//! Its DIE tree is walked once first, iteratively, and refused when it nests
//! deeper or holds more units than real debug info does: addr2line parses
//! inlined calls recursively, and a crafted nesting would overflow the stack.

use super::elf::{self, DebugSections};
use super::open::Refusal;
use gimli::{EndianArcSlice, RunTimeEndian, SectionId};
use std::fs::File;
use std::sync::Arc;

type Reader = EndianArcSlice<RunTimeEndian>;

/// Deepest DIE nesting accepted: real code nests a few dozen levels (namespaces,
/// classes, lexical blocks, inlined calls within inlined calls).
const MAX_DEPTH: isize = 256;

/// Units accepted: one per source file compiled, plus type units.
const MAX_UNITS: usize = 100_000;

/// Line-table rows accepted (about one per instruction with a new line or
/// column): tens of millions for the largest programs' whole debug info.
const MAX_ROWS: usize = 32 << 20;

/// The DWARF sections addr2line reads.
const SECTIONS: &[&str] = &[
    "debug_abbrev",
    "debug_addr",
    "debug_aranges",
    "debug_info",
    "debug_line",
    "debug_line_str",
    "debug_ranges",
    "debug_rnglists",
    "debug_str",
    "debug_str_offsets",
];

/// One frame of the source location of an address: a function, and where in
/// the source it is (the line being executed, or the call of the inner frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFrame {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// The line tables and inlined calls of one binary.
pub struct Lines {
    context: addr2line::Context<Reader>,
    bytes: usize,
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lines").field("bytes", &self.bytes).finish_non_exhaustive()
    }
}

impl Lines {
    /// The debug info of `file` (`size` bytes), at most `budget` bytes of it:
    /// `Ok(None)` when the binary has none (built without `-g`, or stripped),
    /// `Err` with why it is unusable (then only function names are known).
    pub fn read(file: &File, size: u64, budget: u64) -> Result<Option<Lines>, Refusal> {
        let sections = elf::debug_sections(file, size, budget, SECTIONS).map_err(|e| match e {
            "symbol tables larger than the budget" => "debug info larger than the budget",
            other => other,
        })?;
        Lines::from_sections(sections)
    }

    /// Line tables from sections already read.
    pub fn from_sections(read: DebugSections) -> Result<Option<Lines>, Refusal> {
        let has = |name: &str| read.sections.iter().any(|(n, b)| n == name && !b.is_empty());
        if !has("debug_info") || !has("debug_line") {
            return Ok(None);
        }
        let endian = if read.little_endian { RunTimeEndian::Little } else { RunTimeEndian::Big };
        let bytes = read.sections.iter().map(|(_, b)| b.len()).sum();
        let mut sections = read.sections;
        let dwarf = gimli::Dwarf::load(|id: SectionId| -> Result<Reader, Refusal> {
            let name = id.name().trim_start_matches('.');
            let data = sections.iter_mut().find(|(n, _)| n == name).map(|(_, b)| std::mem::take(b)).unwrap_or_default();
            Ok(EndianArcSlice::new(Arc::from(data), endian))
        })?;
        check_shape(&dwarf)?;
        let context = addr2line::Context::from_dwarf(dwarf).map_err(|_| "line info unusable: malformed DWARF")?;
        Ok(Some(Lines { context, bytes }))
    }

    /// The debug info's bytes in memory.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The frames at virtual address `address`, innermost (inlined) first, the
    /// function that holds the code last, at most `max_inlined` inlined ones
    /// (the innermost are kept); empty when the debug info does not cover it.
    pub fn frames(&self, address: u64, max_inlined: usize) -> Result<Vec<SourceFrame>, Refusal> {
        let unusable = |_| "line info unusable: malformed DWARF";
        let mut iter = self.context.find_frames(address).skip_all_loads().map_err(unusable)?;
        let mut out = Vec::new();
        while let Some(frame) = iter.next().map_err(unusable)? {
            let function =
                frame.function.as_ref().and_then(|f| f.raw_name().ok()).map(|n| crate::demangle::demangle(&n));
            let (file, line) = frame.location.map_or((None, None), |l| (l.file.map(str::to_owned), l.line));
            out.push(SourceFrame { function, file, line: line.filter(|l| *l > 0) });
        }
        // Past the cap, the chain keeps its innermost calls and the function holding them.
        if out.len() > max_inlined + 1
            && let Some(outermost) = out.pop()
        {
            out.truncate(max_inlined);
            out.push(outermost);
        }
        Ok(out)
    }
}

/// Refuses debug info whose DIE tree nests deeper than `MAX_DEPTH`, holds
/// more than `MAX_UNITS` units or `MAX_ROWS` line rows, or whose line programs
/// do not run, walking it without recursion: addr2line would skip a broken line
/// program silently, and a note says why frames have no lines.
fn check_shape(dwarf: &gimli::Dwarf<Reader>) -> Result<(), Refusal> {
    let malformed = |_| "line info unusable: malformed DWARF";
    let mut headers = dwarf.units();
    let (mut units, mut rows) = (0, 0);
    while let Some(header) = headers.next().map_err(malformed)? {
        units += 1;
        if units > MAX_UNITS {
            return Err("line info unusable: more compilation units than are read");
        }
        let unit = dwarf.unit(header).map_err(|_| "line info unusable: a unit or its line program does not parse")?;
        let mut entries = unit.entries();
        while let Some(entry) = entries.next_dfs().map_err(malformed)? {
            if entry.depth() > MAX_DEPTH {
                return Err("line info unusable: debug entries nested deeper than real code nests them");
            }
        }
        let Some(program) = unit.line_program.clone() else { continue };
        let mut program = program.rows();
        while program.next_row().map_err(|_| "line info unusable: a line program does not run")?.is_some() {
            rows += 1;
            if rows > MAX_ROWS {
                return Err("line info unusable: more line rows than are read");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DWARF 4 unit of `depth` nested DIEs (abbreviation 1: an inlined call with children).
    fn nested(depth: usize) -> DebugSections {
        let abbrev = vec![1, 0x1d, 1, 0, 0, 0];
        let length = u32::try_from(2 + 4 + 1 + 2 * depth).unwrap();
        let mut info = length.to_le_bytes().to_vec();
        info.extend([4, 0, 0, 0, 0, 0, 8]);
        info.extend(std::iter::repeat_n(1u8, depth));
        info.extend(std::iter::repeat_n(0u8, depth));
        let sections = [("debug_abbrev", abbrev), ("debug_info", info), ("debug_line", vec![0; 4])];
        DebugSections { little_endian: true, sections: sections.into_iter().map(|(n, b)| (n.to_owned(), b)).collect() }
    }

    #[test]
    fn a_nesting_deeper_than_real_code_is_refused_without_recursing() {
        // Deep enough to overflow a thread's stack in a recursive parse.
        let refused = Lines::from_sections(nested(1 << 20)).err();
        assert_eq!(refused, Some("line info unusable: debug entries nested deeper than real code nests them"));
        assert!(Lines::from_sections(nested(8)).is_ok(), "a shallow tree is fine");
    }

    #[test]
    fn debug_info_past_the_budget_is_refused_and_none_is_no_error() {
        let path = format!("{}/tests/fixtures/bin/a_cachesvc", env!("CARGO_MANIFEST_DIR"));
        let file = File::open(path).unwrap();
        let size = file.metadata().unwrap().len();
        assert_eq!(Lines::read(&file, size, 1000).err(), Some("debug info larger than the budget"));
        let lines = Lines::read(&file, size, 1 << 20).unwrap().unwrap();
        assert!(lines.bytes() > 0);
        assert!(Lines::from_sections(DebugSections::default()).unwrap().is_none(), "no debug info: no lines, no note");
    }
}
