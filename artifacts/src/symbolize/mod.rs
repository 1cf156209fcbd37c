//! Resolving `module+0xoffset` frames to function names from the ELF symbol
//! tables of the binaries, found under search folders or at their recorded
//! path, opened only when safe (`open`) and read within a budget (`elf`).
//! (I/O lives here, not in the parsers.)

mod elf;
mod open;

use crate::model::Profile;
use elf::Symbols;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use open::MAX_BINARY_BYTES;

/// Binaries read for one artifact at most (a process maps a few hundred);
/// the frames of the others stay `module+0xoffset`.
pub const MAX_BINARIES: usize = 512;

/// Where to look for the binaries named in a dump, and whose eyes they are read for.
#[derive(Debug, Clone, Default)]
pub struct SymbolPath {
    /// Folders searched by file name, first.
    pub dirs: Vec<PathBuf>,
    /// Then the path recorded in the dump: right when ingesting on the host
    /// that produced it, wrong if that host had other builds of the libraries.
    pub recorded_paths: bool,
    /// When set, a binary at its recorded path is read only if this user could
    /// read it (world-readable, or theirs): the owner of a watched file must
    /// not learn from its outputs what it could not read itself.
    pub readable_by: Option<u32>,
}

/// A module whose frames stay unresolved, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsymbolized {
    pub module: String,
    pub reason: &'static str,
}

/// Finds binaries and resolves the frames of `profiles` that are still
/// `module+0xoffset`, one binary at a time (only its symbols in memory, at
/// most `table_bytes` of them), until `deadline`. Returns the modules left
/// unresolved with the reason.
pub fn symbolize(
    profiles: &mut [Profile],
    path: &SymbolPath,
    table_bytes: u64,
    deadline: Instant,
) -> Vec<Unsymbolized> {
    // Module → every (profile, sample, depth) of its unresolved frames.
    let mut by_module: BTreeMap<String, Vec<(usize, usize, usize)>> = BTreeMap::new();
    for (p, profile) in profiles.iter().enumerate() {
        for (s, sample) in profile.samples.iter().enumerate() {
            for (depth, frame) in sample.stack.iter().enumerate() {
                if let (Some(module), Some(_)) = (&frame.file, frame.address)
                    && frame.function.contains("+0x")
                {
                    by_module.entry(module.clone()).or_default().push((p, s, depth));
                }
            }
        }
    }
    let roots = open::Roots::open(&path.dirs);
    let mut missing = Vec::new();
    for (n, (module, frames)) in by_module.into_iter().enumerate() {
        let refused = |reason| Unsymbolized { module: module.clone(), reason };
        if n >= MAX_BINARIES {
            missing.push(refused("more binaries than are read for one artifact"));
            continue;
        }
        if Instant::now() > deadline {
            missing.push(refused("the time budget was spent"));
            continue;
        }
        let symbols = find(&module, &roots, path).and_then(|file| {
            let size = file.metadata().map_err(|_| "cannot be examined")?.len();
            Symbols::read(&file, size, table_bytes)
        });
        let symbols = match symbols {
            Ok(symbols) => symbols,
            Err(reason) => {
                missing.push(refused(reason));
                continue;
            }
        };
        for (p, s, depth) in frames {
            let Some(frame) =
                profiles.get_mut(p).and_then(|p| p.samples.get_mut(s)).and_then(|s| s.stack.get_mut(depth))
            else {
                continue;
            };
            let Some(offset) = frame.address else { continue };
            // Return addresses point after the call: look up the call itself.
            let at = if depth > 0 { offset.saturating_sub(1) } else { offset };
            if let Some(name) = symbols.lookup(at) {
                frame.function = name;
            }
        }
    }
    missing
}

/// The file offsets of the functions of `names` that the binary at `binary`
/// defines (opened with the checks of `open`, its symbols read within
/// `table_bytes`): where uprobes go, and whether this binary provides them.
pub fn function_offsets(binary: &Path, names: &[&str], table_bytes: u64) -> Result<Vec<(String, u64)>, open::Refusal> {
    let file = open::at_recorded_path(binary.to_str().ok_or("not a UTF-8 path")?, None)?;
    let size = file.metadata().map_err(|_| "cannot be examined")?.len();
    let symbols = Symbols::read(&file, size, table_bytes)?;
    Ok(names.iter().filter_map(|n| symbols.file_offset_of(n).map(|o| ((*n).to_owned(), o))).collect())
}

/// The binary of `module`: under the search folders by file name, then at its recorded path.
fn find(module: &str, roots: &open::Roots, path: &SymbolPath) -> Result<std::fs::File, open::Refusal> {
    if let Some(found) = roots.find(module) {
        return found;
    }
    if !path.recorded_paths {
        return Err("not found in the symbol folders");
    }
    open::at_recorded_path(module, path.readable_by)
}

/// Function names from binaries opened by path, their symbol tables kept
/// across calls (keyed by the file's device and inode, so one library reached
/// through different paths, e.g. `/proc/PID/root/...` of several processes, is
/// read once). Bounded: past `MAX_MODULES` binaries or `MAX_CACHED_BYTES` of
/// symbols the cache starts over.
#[derive(Debug, Default)]
pub struct Symbolizer {
    cache: HashMap<(u64, u64), Option<Symbols>>,
    cached_bytes: usize,
    /// Path → (device, inode), so a path is opened once, not once per frame.
    identities: HashMap<PathBuf, Option<(u64, u64)>>,
}

impl Symbolizer {
    const MAX_MODULES: usize = 256;
    const MAX_PATHS: usize = 4096;
    const MAX_CACHED_BYTES: usize = 64 << 20;
    /// Symbol tables read per binary at most.
    const TABLE_BYTES: u64 = 32 << 20;

    /// Forgets which file each path named (keeping the symbol tables): paths
    /// can be reused (a pid, an upgraded library), so a long-lived symbolizer
    /// calls this between batches.
    pub fn forget_paths(&mut self) {
        self.identities.clear();
    }

    /// The function at file offset `offset` of the binary at `binary` (opened
    /// with the checks of `open`); `return_address`: the offset follows a call,
    /// so look up the byte before it.
    pub fn function(&mut self, binary: &Path, offset: u64, return_address: bool) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        if let Some(known) = self.identities.get(binary) {
            let key = (*known)?;
            if let Some(symbols) = self.cache.get(&key) {
                return symbols.as_ref()?.lookup(Self::at(offset, return_address));
            }
        }
        if self.identities.len() >= Self::MAX_PATHS {
            self.identities.clear();
        }
        let file = binary.to_str().and_then(|b| open::at_recorded_path(b, None).ok());
        let Some((file, meta)) = file.and_then(|f| f.metadata().ok().map(|m| (f, m))) else {
            self.identities.insert(binary.to_path_buf(), None);
            return None;
        };
        let key = (meta.dev(), meta.ino());
        self.identities.insert(binary.to_path_buf(), Some(key));
        if !self.cache.contains_key(&key) {
            let symbols = Symbols::read(&file, meta.len(), Self::TABLE_BYTES).ok();
            let bytes = symbols.as_ref().map_or(0, Symbols::bytes);
            if self.cache.len() >= Self::MAX_MODULES || self.cached_bytes + bytes > Self::MAX_CACHED_BYTES {
                self.cache.clear();
                self.cached_bytes = 0;
            }
            self.cached_bytes += bytes;
            self.cache.insert(key, symbols);
        }
        self.cache.get(&key)?.as_ref()?.lookup(Self::at(offset, return_address))
    }

    fn at(offset: u64, return_address: bool) -> u64 {
        if return_address { offset.saturating_sub(1) } else { offset }
    }
}
