//! Which object provides a process's allocator, and where its entry points
//! are: the executable first (a static jemalloc or mimalloc, as in a Rust
//! binary), then a shared allocator library that interposes libc's (jemalloc,
//! tcmalloc, mimalloc loaded or preloaded), then libc; plus the prefixed
//! entry points a Rust allocator crate links in (`_rjem_*`, `mi_*`), which sit
//! beside the libc allocator the process's C code still uses, and a C++
//! `operator new`/`delete` that a program or library replaces.

use crate::shared;
use memleak_artifacts::heapprof::{self, Mapping};
use memleak_artifacts::symbolize;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where an allocator entry point takes its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `malloc(size)`-like: the size in the first argument.
    Malloc,
    /// `calloc(count, size)`.
    Calloc,
    /// `realloc(ptr, size)`-like.
    Realloc,
    /// `aligned_alloc(alignment, size)`-like: the size in the second argument.
    SizeSecond,
    /// `posix_memalign(&ptr, alignment, size)`: the block is written to `ptr`.
    PosixMemalign,
    /// `free(ptr)`-like.
    Free,
}

impl Shape {
    /// The cookie of an allocation entry's probe (`MALLOC_SHAPE_*`), None for a free.
    pub fn cookie(self) -> Option<u64> {
        match self {
            Shape::Malloc => Some(shared::MALLOC_SHAPE_SIZE_FIRST),
            Shape::Calloc => Some(shared::MALLOC_SHAPE_CALLOC),
            Shape::Realloc => Some(shared::MALLOC_SHAPE_REALLOC),
            Shape::SizeSecond => Some(shared::MALLOC_SHAPE_SIZE_SECOND),
            Shape::PosixMemalign => Some(shared::MALLOC_SHAPE_POSIX_MEMALIGN),
            Shape::Free => None,
        }
    }
}

/// The unprefixed entry points (libc's, or an allocator's that interposes them).
const STANDARD: &[(&str, Shape)] = &[
    ("malloc", Shape::Malloc),
    ("calloc", Shape::Calloc),
    ("realloc", Shape::Realloc),
    ("aligned_alloc", Shape::SizeSecond),
    ("memalign", Shape::SizeSecond),
    ("posix_memalign", Shape::PosixMemalign),
    ("valloc", Shape::Malloc),
    ("pvalloc", Shape::Malloc),
    ("free", Shape::Free),
    // jemalloc's own API, which Rust's jemalloc allocator calls (unprefixed build).
    ("mallocx", Shape::Malloc),
    ("rallocx", Shape::Realloc),
    ("sdallocx", Shape::Free),
    ("dallocx", Shape::Free),
];

/// tikv-jemallocator's prefixed jemalloc (what Rust's `GlobalAlloc` calls).
const RUST_JEMALLOC: &[(&str, Shape)] = &[
    ("_rjem_malloc", Shape::Malloc),
    ("_rjem_mallocx", Shape::Malloc),
    ("_rjem_calloc", Shape::Calloc),
    ("_rjem_realloc", Shape::Realloc),
    ("_rjem_rallocx", Shape::Realloc),
    ("_rjem_free", Shape::Free),
    ("_rjem_sdallocx", Shape::Free),
    ("_rjem_dallocx", Shape::Free),
];

/// The `mimalloc` crate's entry points.
const RUST_MIMALLOC: &[(&str, Shape)] = &[
    ("mi_malloc_aligned", Shape::Malloc),
    ("mi_zalloc_aligned", Shape::Malloc),
    ("mi_realloc_aligned", Shape::Realloc),
    ("mi_free", Shape::Free),
];

/// C++'s `operator new` and `delete`, every variant (array, nothrow, aligned,
/// sized; the size or the block always in the first argument), probed only
/// where an object other than libstdc++ defines them: a replacement, which
/// may never reach malloc. libstdc++'s own call malloc and free, probed
/// already; a replacement that calls malloc is counted once too (the inner
/// call's return takes the pending call, the outer return finds none).
const CXX_REPLACED: &[(&str, Shape)] = &[
    ("_Znwm", Shape::Malloc),
    ("_Znam", Shape::Malloc),
    ("_ZnwmRKSt9nothrow_t", Shape::Malloc),
    ("_ZnamRKSt9nothrow_t", Shape::Malloc),
    ("_ZnwmSt11align_val_t", Shape::Malloc),
    ("_ZnamSt11align_val_t", Shape::Malloc),
    ("_ZnwmSt11align_val_tRKSt9nothrow_t", Shape::Malloc),
    ("_ZnamSt11align_val_tRKSt9nothrow_t", Shape::Malloc),
    ("_ZdlPv", Shape::Free),
    ("_ZdaPv", Shape::Free),
    ("_ZdlPvm", Shape::Free),
    ("_ZdaPvm", Shape::Free),
    ("_ZdlPvRKSt9nothrow_t", Shape::Free),
    ("_ZdaPvRKSt9nothrow_t", Shape::Free),
    ("_ZdlPvSt11align_val_t", Shape::Free),
    ("_ZdaPvSt11align_val_t", Shape::Free),
    ("_ZdlPvmSt11align_val_t", Shape::Free),
    ("_ZdaPvmSt11align_val_t", Shape::Free),
    ("_ZdlPvSt11align_val_tRKSt9nothrow_t", Shape::Free),
    ("_ZdaPvSt11align_val_tRKSt9nothrow_t", Shape::Free),
];

/// One entry point to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPoint {
    pub symbol: &'static str,
    pub shape: Shape,
    /// Its file offset in the binary.
    pub offset: u64,
}

/// One allocator of the process: the binary that holds it and its entry points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocator {
    /// `glibc`, `jemalloc`, `tcmalloc`, `mimalloc`, or `malloc in NAME`.
    pub name: String,
    /// The binary as the process maps it.
    pub module: String,
    /// A path the kernel resolves to the very file the process mapped (uprobes
    /// attach by path): its `/proc/PID/map_files` entry, or its path under
    /// `/proc/PID/root` when that still names the mapped file.
    pub binary: PathBuf,
    pub entry_points: Vec<EntryPoint>,
}

/// Symbol tables read per binary at most while looking for the allocator.
const TABLE_BYTES: u64 = 64 << 20;
/// Largest `/proc/PID/maps` read.
pub const MAX_MAPS_BYTES: u64 = 8 << 20;

/// The mappings of process `pid` under `procfs` (bounded read).
pub fn read_maps(procfs: &Path, pid: u32) -> std::io::Result<Vec<Mapping>> {
    let mut text = String::new();
    std::fs::File::open(procfs.join(pid.to_string()).join("maps"))?.take(MAX_MAPS_BYTES).read_to_string(&mut text)?;
    Ok(heapprof::mappings(text.lines()))
}

/// The allocators of process `pid`: the one behind `malloc`, and any prefixed
/// Rust allocator. Err says what was looked at.
pub fn find(procfs: &Path, pid: u32) -> Result<Vec<Allocator>, String> {
    let maps = read_maps(procfs, pid).map_err(|e| format!("cannot read {}/{pid}/maps: {e}", procfs.display()))?;
    let exe = std::fs::read_link(procfs.join(pid.to_string()).join("exe")).ok();
    let root = procfs.join(pid.to_string()).join("root");
    let mut modules: Vec<&str> = Vec::new();
    let mut mapping_of: Vec<&Mapping> = Vec::new();
    for m in &maps {
        if m.path.starts_with('/') && !modules.contains(&m.path.as_str()) {
            modules.push(&m.path);
            mapping_of.push(m);
        }
    }
    let mapping_of = |module: &str| mapping_of.iter().copied().find(|m| m.path == module);
    // The order the dynamic linker's lookup favours: the executable, then
    // other objects (an interposing allocator library), libc last.
    let is_libc = |m: &str| file_name(m).starts_with("libc.so") || file_name(m).starts_with("libc-");
    modules.sort_by_key(|m| (Some(Path::new(m)) != exe.as_deref(), is_libc(m)));
    let mut found = Vec::new();
    let mut standard = false;
    for module in modules {
        let Some(mapping) = mapping_of(module) else { continue };
        let Some(binary) = attach_path(&root, mapping) else { continue };
        let wanted: Vec<&str> = STANDARD
            .iter()
            .chain(RUST_JEMALLOC)
            .chain(RUST_MIMALLOC)
            .chain(CXX_REPLACED)
            .map(|(name, _)| *name)
            .collect();
        let Ok(offsets) = symbolize::function_offsets(&root, mapping, &wanted, TABLE_BYTES) else { continue };
        let has = |name: &str| offsets.iter().any(|(n, _)| n == name);
        let mut add = |table: &[(&'static str, Shape)], name: String| {
            let entry_points: Vec<EntryPoint> = table
                .iter()
                .filter_map(|(symbol, shape)| {
                    offsets.iter().find(|(n, _)| n == symbol).map(|(_, o)| EntryPoint {
                        symbol,
                        shape: *shape,
                        offset: *o,
                    })
                })
                .collect();
            found.push(Allocator { name, module: module.to_owned(), binary: binary.clone(), entry_points });
        };
        if !standard && has("malloc") && has("free") {
            standard = true;
            add(STANDARD, allocator_name(module, &has));
        }
        if has("_rjem_malloc") && has("_rjem_sdallocx") {
            add(RUST_JEMALLOC, format!("jemalloc (Rust, prefixed _rjem_) in {}", file_name(module)));
        }
        if has("mi_malloc_aligned") && has("mi_free") {
            add(RUST_MIMALLOC, format!("mimalloc (Rust) in {}", file_name(module)));
        }
        if !file_name(module).starts_with("libstdc++") && CXX_REPLACED.iter().any(|(name, _)| has(name)) {
            add(CXX_REPLACED, format!("C++ operator new/delete replaced in {}", file_name(module)));
        }
    }
    if found.is_empty() {
        return Err(
            "it maps no object that defines malloc and free (looked in the symbol tables of its executable and libraries)"
                .to_owned(),
        );
    }
    Ok(found)
}

/// A path the kernel resolves to the file `mapping` maps in the process whose
/// root is `root`: its `map_files` entry (the mapping's own file; needs root),
/// else its path under `root` when a lookup there (walked as the kernel will,
/// so an absolute symbolic link the process planted would lead elsewhere)
/// reaches the mapped file. `None`: neither does, so nothing is attached there.
fn attach_path(root: &Path, mapping: &Mapping) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let is_mapped = |p: &Path| std::fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == (mapping.dev, mapping.inode));
    let map_files = root.parent()?.join(format!("map_files/{:x}-{:x}", mapping.start, mapping.end));
    if is_mapped(&map_files) {
        return Some(map_files);
    }
    let by_name = root.join(mapping.path.trim_start_matches('/'));
    is_mapped(&by_name).then_some(by_name)
}

fn file_name(module: &str) -> &str {
    module.rsplit('/').next().unwrap_or(module)
}

/// The allocator a binary that defines `malloc` is, by its file name, or by
/// its other entry points when it is the executable itself.
fn allocator_name(module: &str, has: &dyn Fn(&str) -> bool) -> String {
    let name = file_name(module);
    if has("mallocx") && !name.starts_with("libjemalloc") {
        return format!("jemalloc (linked into {name})");
    }
    let known = [
        ("libc.so", "glibc"),
        ("libc-", "glibc"),
        ("libjemalloc", "jemalloc"),
        ("libtcmalloc", "tcmalloc"),
        ("libmimalloc", "mimalloc"),
    ];
    known
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map_or_else(|| format!("malloc in {name}"), |(_, allocator)| format!("{allocator} ({name})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_process_allocates_with_glibc() {
        let found = find(Path::new("/proc"), std::process::id()).unwrap();
        let glibc = found.iter().find(|a| a.name.starts_with("glibc")).unwrap();
        assert!(glibc.module.contains("libc.so"), "{glibc:?}");
        if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0 {
            // Probes attach to the mapped file itself, not to whatever its path names.
            assert!(glibc.binary.to_string_lossy().contains("/map_files/"), "{glibc:?}");
        }
        let symbols: Vec<&str> = glibc.entry_points.iter().map(|e| e.symbol).collect();
        for wanted in ["malloc", "calloc", "realloc", "free"] {
            assert!(symbols.contains(&wanted), "{symbols:?}");
        }
        let none = |_: &str| false;
        assert_eq!(allocator_name("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", &none), "jemalloc (libjemalloc.so.2)");
        assert_eq!(allocator_name("/opt/app", &none), "malloc in app");
        assert_eq!(allocator_name("/opt/app", &|s| s == "mallocx"), "jemalloc (linked into app)");
    }
}
