//! Resolving `module+0xoffset` frames to function names from the ELF symbol
//! tables of the binaries, and to source files, lines and inlined calls from
//! their DWARF debug info when they have it; binaries found under search
//! folders or at their recorded path, opened only when safe (`open`), read
//! within a budget (`elf`, `dwarf`). (I/O lives here, not in the parsers.)

mod binary;
mod dwarf;
mod elf;
mod open;

use crate::heapprof::{self, Mapping};
use crate::model::{Frame, Profile};
use binary::Binary;
use elf::Symbols;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use open::{MAX_BINARY_BYTES, mapped as open_mapped};

/// Binaries read for one artifact at most (a process maps a few hundred);
/// the frames of the others stay `module+0xoffset`.
pub const MAX_BINARIES: usize = 512;

/// Inlined calls named at one address at most (the innermost are kept): real
/// chains are a few deep, a dozen in heavily generic code.
pub const MAX_INLINED: usize = 32;

/// Inlined frames added to one artifact's stacks at most: each costs a frame's
/// memory beyond what the parse was budgeted for. Past it, addresses get their
/// function and line without the calls inlined there.
pub const MAX_INLINED_FRAMES: usize = 1 << 20;

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

/// A module whose frames stay unresolved, or resolved to functions without
/// source lines because its debug info is unusable, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsymbolized {
    pub module: String,
    pub reason: &'static str,
}

/// The frames one frame of a stack (at this depth) became.
type Named = (usize, Vec<Frame>);

/// Finds binaries and resolves the frames of `profiles` that are still
/// `module+0xoffset`, one binary at a time (only its symbols and debug info in
/// memory, at most `table_bytes` of each), until `deadline`: a frame becomes
/// the calls inlined at its address and the function holding it, with source
/// files and lines where the binary has debug info. Returns the modules left
/// unresolved, or without lines, with the reason.
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
    // (profile, sample) → its resolved frames by depth; stacks are rebuilt at the
    // end, as one frame may become several.
    let mut resolved: HashMap<(usize, usize), Vec<Named>> = HashMap::new();
    let mut inlined_left = MAX_INLINED_FRAMES;
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
        let binary = find(&module, &roots, path).and_then(|file| {
            let size = file.metadata().map_err(|_| "cannot be examined")?.len();
            Binary::read(&file, size, table_bytes, table_bytes)
        });
        let mut binary = match binary {
            Ok(binary) => binary,
            Err(reason) => {
                missing.push(refused(reason));
                continue;
            }
        };
        for (p, s, depth) in frames {
            let Some(frame) = profiles.get(p).and_then(|p| p.samples.get(s)).and_then(|s| s.stack.get(depth)) else {
                continue;
            };
            let Some(offset) = frame.address else { continue };
            // Return addresses point after the call: look up the call itself.
            let at = if depth > 0 { offset.saturating_sub(1) } else { offset };
            if let Some(frames) = binary.frames(frame, at, MAX_INLINED.min(inlined_left)) {
                inlined_left = inlined_left.saturating_sub(frames.len().saturating_sub(1));
                resolved.entry((p, s)).or_default().push((depth, frames));
            }
        }
        if let Some(note) = binary.note {
            missing.push(refused(note));
        }
    }
    for ((p, s), mut frames) in resolved {
        let Some(sample) = profiles.get_mut(p).and_then(|p| p.samples.get_mut(s)) else { continue };
        frames.sort_unstable_by_key(|(depth, _)| *depth);
        let mut frames = frames.into_iter().peekable();
        let stack = std::mem::take(&mut sample.stack);
        for (depth, frame) in stack.into_iter().enumerate() {
            match frames.next_if(|(d, _)| *d == depth) {
                Some((_, named)) => sample.stack.extend(named),
                None => sample.stack.push(frame),
            }
        }
    }
    if inlined_left == 0 {
        missing.push(Unsymbolized {
            module: "(inlined calls)".to_owned(),
            reason: "more inlined calls than are named for one artifact: the rest show only their caller",
        });
    }
    missing
}

/// The file offsets of the functions of `names` that the file `mapping` maps
/// in the live process whose root is `root` (its `/proc/PID/root`) defines,
/// its symbols read within `table_bytes`: where uprobes go, and whether this
/// binary provides them. Opened as `open::mapped` does: never a file the
/// process's paths lead to instead.
pub fn function_offsets(
    root: &Path,
    mapping: &Mapping,
    names: &[&str],
    table_bytes: u64,
) -> Result<Vec<(String, u64)>, open::Refusal> {
    let file = open::mapped(root, mapping)?;
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

/// Function names, source lines and inlined calls from the binaries live
/// processes map, their symbols and debug info kept across calls (keyed by the
/// file's device and inode, so one library mapped by several processes is
/// read once). Bounded: past `MAX_MODULES` binaries or `MAX_CACHED_BYTES` of
/// them the cache starts over.
#[derive(Debug, Default)]
pub struct Symbolizer {
    cache: HashMap<(u64, u64), Option<Binary>>,
    cached_bytes: usize,
    /// (process root, mapping start) → the mapped file's (device, inode), so a
    /// mapping is opened once, not once per frame; `None`: it could not be.
    identities: HashMap<(PathBuf, u64), Option<(u64, u64)>>,
    /// Modules whose mapped file could not be read, or whose debug info is
    /// unusable, and why (the first reason).
    unsymbolized: BTreeMap<String, &'static str>,
}

impl Symbolizer {
    const MAX_MODULES: usize = 256;
    const MAX_PATHS: usize = 4096;
    /// Modules listed as unsymbolized at most.
    const MAX_UNSYMBOLIZED: usize = 64;
    /// What stays cached at most. Past it the cache starts over, so it must hold the few
    /// binaries one profile's frames alternate between (a debug Rust binary's symbol table
    /// alone is 10–20 MiB: at 12 MiB every libc frame re-read it, and the page-fault
    /// profile's first scrape took over 30 s).
    const MAX_CACHED_BYTES: usize = 64 << 20;
    /// Symbol tables read per binary at most.
    const TABLE_BYTES: u64 = 32 << 20;
    /// Debug info read per binary at most (a C service's is a few MiB; a
    /// large C++ or Rust binary's can be hundreds: its frames keep function names).
    const DEBUG_BYTES: u64 = 16 << 20;

    /// Forgets which file each mapping held (keeping what was read): pids and
    /// addresses are reused, so a long-lived symbolizer calls this between batches.
    pub fn forget_paths(&mut self) {
        self.identities.clear();
        self.unsymbolized.clear();
    }

    /// Address `ip` of a live process whose file system is `root` (its
    /// `/proc/PID/root`) and whose file-backed mappings are `maps` (sorted by
    /// start), as frames: the calls inlined there (innermost first), then the
    /// function holding it, with source files and lines where the module has
    /// debug info; read from the very file the process mapped (`open::mapped`),
    /// never from whatever its path names now. `module+0xoffset` (see
    /// `unsymbolized`) when that file cannot be read or nothing there names it.
    /// `return_address`: the address follows a call, so the byte before it is looked up.
    pub fn frames_of(&mut self, root: &Path, ip: u64, maps: &[Mapping], return_address: bool) -> Vec<Frame> {
        let frame = heapprof::frame(ip, maps);
        let (Some(mapping), Some(offset)) = (heapprof::find(maps, ip), frame.address) else { return vec![frame] };
        let at = if return_address { offset.saturating_sub(1) } else { offset };
        let (frames, note) = match self.binary(root, mapping) {
            Some(binary) => (binary.frames(&frame, at, MAX_INLINED), binary.note),
            None => (None, None),
        };
        if let Some(note) = note {
            self.unsymbolized_because(&mapping.path, note);
        }
        frames.unwrap_or_else(|| vec![frame])
    }

    /// The modules since `forget_paths` whose mapped file could not be read
    /// (their frames stay `module+0xoffset`), or whose debug info is unusable
    /// (their frames have no lines), and why.
    pub fn unsymbolized(&self) -> Vec<Unsymbolized> {
        self.unsymbolized.iter().map(|(module, reason)| Unsymbolized { module: module.clone(), reason }).collect()
    }

    fn unsymbolized_because(&mut self, module: &str, reason: &'static str) {
        if self.unsymbolized.len() < Self::MAX_UNSYMBOLIZED && !self.unsymbolized.contains_key(module) {
            self.unsymbolized.insert(module.to_owned(), reason);
        }
    }

    /// The binary `mapping` maps, read once per file (again after the cache started over).
    fn binary(&mut self, root: &Path, mapping: &Mapping) -> Option<&mut Binary> {
        let seen = (root.to_path_buf(), mapping.start);
        let cached = match self.identities.get(&seen) {
            Some(None) => return None,
            Some(Some(key)) => self.cache.contains_key(key).then_some(*key),
            None => None,
        };
        let key = match cached {
            Some(key) => key,
            None => {
                if self.identities.len() >= Self::MAX_PATHS {
                    self.identities.clear();
                }
                let file = open::mapped(root, mapping).and_then(|f| {
                    let size = f.metadata().map_err(|_| "cannot be examined")?.len();
                    Ok((f, size))
                });
                let (file, size) = match file {
                    Ok(opened) => opened,
                    Err(reason) => {
                        self.unsymbolized_because(&mapping.path, reason);
                        self.identities.insert(seen, None);
                        return None;
                    }
                };
                let key = (mapping.dev, mapping.inode);
                self.identities.insert(seen, Some(key));
                if !self.cache.contains_key(&key) {
                    let binary = Binary::read(&file, size, Self::TABLE_BYTES, Self::DEBUG_BYTES).ok();
                    let bytes = binary.as_ref().map_or(0, Binary::bytes);
                    if self.cache.len() >= Self::MAX_MODULES || self.cached_bytes + bytes > Self::MAX_CACHED_BYTES {
                        self.cache.clear();
                        self.cached_bytes = 0;
                    }
                    self.cached_bytes += bytes;
                    self.cache.insert(key, binary);
                }
                key
            }
        };
        self.cache.get_mut(&key)?.as_mut()
    }
}
