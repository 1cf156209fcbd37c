//! Resolving `module+0xoffset` frames to function names from the ELF symbol
//! tables of the binaries, found at their recorded path or in search folders.
//! (I/O lives here, not in the parsers.)

use crate::model::Profile;
use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Function symbols of one binary, sorted by address.
#[derive(Debug, Default)]
struct Symbols {
    /// (file offset start, file offset end, virtual address start) of each loadable segment.
    segments: Vec<(u64, u64, u64)>,
    functions: Vec<(u64, u64, String)>,
}

impl Symbols {
    fn load(path: &Path) -> Option<Symbols> {
        let data = std::fs::read(path).ok()?;
        let file = object::File::parse(&*data).ok()?;
        let segments = file
            .segments()
            .filter_map(|s| {
                let (offset, size) = s.file_range();
                (size > 0).then_some((offset, offset + size, s.address()))
            })
            .collect();
        let mut functions: Vec<(u64, u64, String)> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.address(), s.size(), crate::demangle::demangle(s.name().ok()?))))
            .collect();
        functions.sort();
        functions.dedup_by_key(|f| f.0);
        Some(Symbols { segments, functions })
    }

    /// The function holding file offset `offset`.
    fn lookup(&self, offset: u64) -> Option<&str> {
        let &(start, _, vaddr) = self.segments.iter().find(|(s, e, _)| *s <= offset && offset < *e)?;
        let address = offset - start + vaddr;
        let i = self.functions.partition_point(|f| f.0 <= address).checked_sub(1)?;
        let (start, size, name) = &self.functions[i];
        (size == &0 || address < start + size).then_some(name.as_str())
    }
}

/// Function names from binaries opened by path, their symbol tables kept
/// across calls (keyed by the file's device and inode, so one library reached
/// through different paths, e.g. `/proc/PID/root/...` of several processes, is
/// read once). Bounded: past `MAX_MODULES` binaries the cache starts over.
#[derive(Debug, Default)]
pub struct Symbolizer {
    cache: HashMap<(u64, u64), Option<Symbols>>,
    /// Path → (device, inode), so a path is stat'ed once, not once per frame.
    identities: HashMap<PathBuf, (u64, u64)>,
}

impl Symbolizer {
    const MAX_MODULES: usize = 256;
    const MAX_PATHS: usize = 4096;

    /// Forgets which file each path named (keeping the symbol tables): paths
    /// can be reused (a pid, an upgraded library), so a long-lived symbolizer
    /// calls this between batches.
    pub fn forget_paths(&mut self) {
        self.identities.clear();
    }

    /// The function at file offset `offset` of the binary at `binary`;
    /// `return_address`: the offset follows a call, so look up the byte before it.
    pub fn function(&mut self, binary: &Path, offset: u64, return_address: bool) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let key = match self.identities.get(binary) {
            Some(key) => *key,
            None => {
                let meta = std::fs::metadata(binary).ok()?;
                if self.identities.len() >= Self::MAX_PATHS {
                    self.identities.clear();
                }
                self.identities.insert(binary.to_path_buf(), (meta.dev(), meta.ino()));
                (meta.dev(), meta.ino())
            }
        };
        if !self.cache.contains_key(&key) && self.cache.len() >= Self::MAX_MODULES {
            self.cache.clear();
        }
        let symbols = self.cache.entry(key).or_insert_with(|| Symbols::load(binary)).as_ref()?;
        let at = if return_address { offset.saturating_sub(1) } else { offset };
        symbols.lookup(at).map(str::to_owned)
    }
}

/// Where to look for the binaries named in a dump.
#[derive(Debug, Clone, Default)]
pub struct SymbolPath {
    /// Folders searched by file name, first.
    pub dirs: Vec<PathBuf>,
    /// Then the path recorded in the dump: right when ingesting on the host
    /// that produced it, wrong if that host had other builds of the libraries.
    pub recorded_paths: bool,
}

/// Finds binaries and resolves the frames of `profiles` that are still
/// `module+0xoffset`. Returns the modules that could not be found.
pub fn symbolize(profiles: &mut [Profile], path: &SymbolPath) -> Vec<String> {
    let mut symbolizer = Symbolizer::default();
    let mut binaries: HashMap<String, Option<PathBuf>> = HashMap::new();
    let mut missing = Vec::new();
    for profile in profiles.iter_mut() {
        for sample in &mut profile.samples {
            for (depth, frame) in sample.stack.iter_mut().enumerate() {
                let (Some(module), Some(offset)) = (&frame.file, frame.address) else { continue };
                if !frame.function.contains("+0x") {
                    continue;
                }
                let binary = binaries.entry(module.clone()).or_insert_with(|| find(module, path));
                let Some(binary) = binary else {
                    if !missing.contains(module) {
                        missing.push(module.clone());
                    }
                    continue;
                };
                // Return addresses point after the call: look up the call itself.
                if let Some(name) = symbolizer.function(binary, offset, depth > 0) {
                    frame.function = name;
                }
            }
        }
    }
    missing
}

fn find(module: &str, path: &SymbolPath) -> Option<PathBuf> {
    let name = Path::new(module).file_name()?;
    let recorded = path.recorded_paths.then(|| PathBuf::from(module));
    path.dirs.iter().map(|dir| dir.join(name)).chain(recorded).find(|p| p.is_file())
}
