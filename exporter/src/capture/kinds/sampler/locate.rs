//! Finding the cooperative sampler in a process: the mapped `libmemleak_sampler.so` (preloaded or linked) or, for the `GlobalAlloc` wrapper, the process's own executable; opened as the mapped inode itself (`/proc/PID/map_files/START-END`); and the sampling mean the process runs with.
//!
//! Why the mapped inode and not the path in the maps: a package upgrade replaces the file at that
//! path (a new inode, often the same build id) while the process keeps the old one mapped, and
//! probes on the new inode never fire in it. `map_files` resolves to the mapped inode, deleted or not.

use super::library_stats;
use memleak_bpf::sampler_markers::{ALLOC_MARKER, FREE_MARKER};
use object::{Object, ObjectSymbol};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest binary read to check its markers and build id.
const MAX_BINARY_BYTES: u64 = 256 << 20;
/// Largest `/proc/PID/environ` read.
const MAX_ENVIRON_BYTES: u64 = 1 << 20;
/// The sampler's default mean (jemalloc's `lg_prof_sample:19`), as `sampler/src/config.rs` has it.
pub const DEFAULT_MEAN: u64 = 512 << 10;
/// The largest mean the sampler accepts (2^40).
const MAX_MEAN: u64 = 1 << 40;
/// The variable the sampler reads its mean from.
pub const MEAN_VARIABLE: &str = "MEMLEAK_SAMPLER_MEAN_BYTES";

/// Where one process's markers are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markers {
    pub pid: u32,
    /// The path to attach to: the mapped inode, `/proc/PID/map_files/START-END`.
    pub binary: PathBuf,
    /// The path in the process's maps (frames in this file are the sampler's own).
    pub mapped_path: String,
    /// Mean distance between samples, in bytes.
    pub mean: u64,
    /// How the mean was found.
    pub mean_source: String,
    /// Where the sampler's table of sampled pointers is in the process (not a root for reachability).
    pub table: Option<(u64, u64)>,
    /// Where the sampler's counters (`memleak_sampler_stats`) are in the process.
    pub stats: Option<u64>,
    /// Both markers have the five-byte `nop` (`probe_offset`).
    pub nop5: bool,
}

/// The markers of process `pid`, or why it has none.
pub fn markers(procfs: &Path, pid: u32) -> Result<Markers, String> {
    let proc_dir = procfs.join(pid.to_string());
    let maps =
        read_bounded(&proc_dir.join("maps"), 16 << 20).map_err(|e| format!("process {pid}: reading its maps: {e}"))?;
    let maps = String::from_utf8_lossy(&maps);
    let exe = std::fs::read_link(proc_dir.join("exe")).ok();
    let mut why = Vec::new();
    for (range, path) in candidates(&maps, exe.as_deref()) {
        let binary = proc_dir.join("map_files").join(&range);
        match check(&binary) {
            Ok(Found { min_vaddr, table, stats, nop5 }) => {
                let base = load_address(&maps, &path).and_then(|a| a.checked_sub(min_vaddr & !0xfff));
                let table = table.and_then(|(address, size)| {
                    let start = base?.checked_add(address)?;
                    Some((start, start.checked_add(size)?))
                });
                let stats = stats.and_then(|address| base?.checked_add(address));
                let (mean, mean_source) = mean(pid, stats, &proc_dir.join("environ"));
                return Ok(Markers { pid, binary, mapped_path: path, mean, mean_source, table, stats, nop5 });
            }
            Err(e) => why.push(format!("{path}: {e}")),
        }
    }
    if why.is_empty() {
        why.push(format!("no libmemleak_sampler.so in /proc/{pid}/maps and no executable mapping"));
    }
    Err(format!(
        "process {pid} has not loaded the sampler ({}): start it with LD_PRELOAD=/path/to/libmemleak_sampler.so \
         (MEMLEAK_SAMPLER_MEAN_BYTES sets its mean), or link the sampler's GlobalAlloc wrapper",
        why.join("; ")
    ))
}

/// Mapped files that may hold the markers: the sampler library first, then the executable.
fn candidates(maps: &str, exe: Option<&Path>) -> Vec<(String, String)> {
    let mut libraries = Vec::new();
    let mut executable = None;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms), Some(_), Some(_), Some(_), Some(path)) =
            (fields.next(), fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !perms.contains('x') || !path.starts_with('/') {
            continue;
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        if name.starts_with("libmemleak_sampler") && !libraries.iter().any(|(_, p)| p == path) {
            libraries.push((range.to_owned(), path.to_owned()));
        } else if executable.is_none() && exe.is_some_and(|e| e == Path::new(path)) {
            executable = Some((range.to_owned(), path.to_owned()));
        }
    }
    if libraries.is_empty() {
        libraries.extend(executable);
    }
    libraries
}

/// Where the mapping of `path` at file offset 0 starts.
fn load_address(maps: &str, path: &str) -> Option<u64> {
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (range, _, offset, _, _, name) =
            (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
        (name == path && u64::from_str_radix(offset, 16).ok()? == 0)
            .then(|| u64::from_str_radix(range.split_once('-')?.0, 16).ok())
            .flatten()
    })
}

/// The sampler's table (`memleak_sampler::sampling::SAMPLED`) in the file: its address and
/// size; `None` in a file without a symbol table.
fn table_symbol(file: &object::File) -> Option<(u64, u64)> {
    let symbol = file.symbols().find(|s| s.name().is_ok_and(|n| n.contains("15memleak_sampler8sampling7SAMPLED")))?;
    Some((symbol.address(), symbol.size()))
}

/// The address of the sampler's counters in the file (exported: in the dynamic symbols of the
/// library, in the symbol table of an executable with the `GlobalAlloc` wrapper).
fn stats_symbol(file: &object::File) -> Option<u64> {
    let symbol =
        file.dynamic_symbols().chain(file.symbols()).find(|s| s.name() == Ok(STATS_SYMBOL) && s.is_definition())?;
    Some(symbol.address())
}

/// The sampler's exported counters (sampler/src/stats.rs).
const STATS_SYMBOL: &str = "memleak_sampler_stats";

/// The five-byte `nop` (`nopl 0x0(%rax,%rax,1)`) that a kernel optimising uprobes turns into a call.
const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];
/// Where the sampler's markers have it (sampler/src/markers.rs: after a one-byte `nop`).
const NOP5_OFFSET: u64 = 1;

/// Bytes into each of `markers` where the probes go (the kernel is asked on the first call, on
/// the capture's thread, not the webhook's).
pub fn probe_offset(markers: &Markers) -> u64 {
    offset_for(markers.nop5, markers.nop5 && kernel_optimises_nop5())
}

/// Where to probe the markers: their five-byte `nop` where the kernel optimises a probe on one
/// (a call into a trampoline and a syscall instead of a trap); else the entry, a one-byte `nop`
/// that every x86-64 kernel emulates (a library from before the five-byte `nop` has only that).
fn offset_for(markers_have_nop5: bool, kernel_optimises: bool) -> u64 {
    if markers_have_nop5 && kernel_optimises { NOP5_OFFSET } else { 0 }
}

/// Whether this kernel optimises uprobes on five-byte `nop`s (x86-64 from Linux 6.18 has
/// `arch_uprobe_optimize`), looked up once in `/proc/kallsyms`.
fn kernel_optimises_nop5() -> bool {
    static OPTIMISES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OPTIMISES.get_or_init(|| {
        use std::io::BufRead;
        let Ok(file) = std::fs::File::open("/proc/kallsyms") else { return false };
        // The kernel's own list; a few MiB, read a line at a time.
        std::io::BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.split_whitespace().nth(2) == Some("arch_uprobe_optimize"))
    })
}

/// What `check` finds in the sampler's file.
struct Found {
    /// The lowest load address (what the addresses below are relative to, less the load bias).
    min_vaddr: u64,
    /// The table's address and size (`table_symbol`).
    table: Option<(u64, u64)>,
    /// The counters' address (`stats_symbol`).
    stats: Option<u64>,
    /// Both markers have the five-byte `nop` at `NOP5_OFFSET`.
    nop5: bool,
}

/// The file bytes of `symbol`'s code at `offset`, `len` of them.
fn code_at<'a>(
    file: &object::File,
    bytes: &'a [u8],
    symbol: &object::Symbol,
    offset: u64,
    len: u64,
) -> Option<&'a [u8]> {
    use object::ObjectSegment;
    let address = symbol.address().checked_add(offset)?;
    let segment = file.segments().find(|s| (s.address()..s.address().saturating_add(s.size())).contains(&address))?;
    let start = address.checked_sub(segment.address())?.checked_add(segment.file_range().0)?;
    bytes.get(usize::try_from(start).ok()?..usize::try_from(start.checked_add(len)?).ok()?)
}

/// The mapped file `binary` defines both markers: where its table of sampled pointers and its
/// counters are, when it says, and whether its markers have the five-byte `nop`.
fn check(binary: &Path) -> Result<Found, String> {
    use object::ObjectSegment;
    let bytes = read_bounded(binary, MAX_BINARY_BYTES)
        .map_err(|e| format!("cannot read the mapped file {} (needs CAP_SYS_ADMIN): {e}", binary.display()))?;
    let file = object::File::parse(&*bytes).map_err(|e| format!("not an ELF file: {e}"))?;
    let mut nop5 = true;
    for marker in [ALLOC_MARKER, FREE_MARKER] {
        let Some(symbol) =
            file.dynamic_symbols().chain(file.symbols()).find(|s| s.name() == Ok(marker) && s.is_definition())
        else {
            return Err(format!("defines no {marker}"));
        };
        nop5 &= code_at(&file, &bytes, &symbol, NOP5_OFFSET, NOP5.len() as u64) == Some(&NOP5[..]);
    }
    let min_vaddr = file.segments().map(|s| s.address()).min().ok_or("an ELF file without segments")?;
    Ok(Found { min_vaddr, table: table_symbol(&file), stats: stats_symbol(&file), nop5 })
}

/// The mean the sampler of process `pid` samples with: from its counters at `stats` (what it
/// really uses), else from its environment (`environ_mean`); and where it came from.
fn mean(pid: u32, stats: Option<u64>, environ: &Path) -> (u64, String) {
    let why_not = match stats.map(|address| library_stats::read(pid, address)) {
        Some(Ok(library_stats::LibraryStats { mean: Some(mean), .. })) => {
            return (mean, format!("{mean}, read from the sampler's memory ({STATS_SYMBOL})"));
        }
        Some(Ok(_)) => format!("{STATS_SYMBOL} has no mean yet (no allocation since the start)"),
        Some(Err(e)) => e,
        None => format!("no {STATS_SYMBOL} symbol (a sampler from before it)"),
    };
    let (mean, source) = environ_mean(environ);
    (mean, format!("{source}; not from the sampler's memory: {why_not}"))
}

/// The mean from the process's environment (what the sampler read at its start, unless the
/// process rewrote that area since), or the default.
fn environ_mean(environ: &Path) -> (u64, String) {
    let Ok(bytes) = read_bounded(environ, MAX_ENVIRON_BYTES) else {
        return (DEFAULT_MEAN, format!("default ({DEFAULT_MEAN}): the environment is unreadable"));
    };
    let prefix = format!("{MEAN_VARIABLE}=");
    let value = bytes.split(|&b| b == 0).find_map(|v| v.strip_prefix(prefix.as_bytes()));
    match value.map(parse_mean) {
        None | Some(Ok(None)) => (DEFAULT_MEAN, format!("default ({DEFAULT_MEAN}): {MEAN_VARIABLE} is not set")),
        Some(Ok(Some(mean))) => (mean, format!("{MEAN_VARIABLE}={mean} in the process's environment")),
        Some(Err(())) => {
            (DEFAULT_MEAN, format!("default ({DEFAULT_MEAN}): {MEAN_VARIABLE} is invalid, as the sampler takes it"))
        }
    }
}

/// The sampler's rule: a whole number from 1 to 2^40; empty means unset.
fn parse_mean(value: &[u8]) -> Result<Option<u64>, ()> {
    if value.is_empty() {
        return Ok(None);
    }
    let text = std::str::from_utf8(value).map_err(|_| ())?;
    match text.parse::<u64>() {
        Ok(mean) if (1..=MAX_MEAN).contains(&mean) && text.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(mean)),
        _ => Err(()),
    }
}

fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_comes_first_and_the_executable_only_without_it() {
        let maps = "5600-5700 r-xp 00001000 fe:01 10 /srv/app\n\
                    7f00-7f10 r--p 00000000 fe:01 11 /opt/libmemleak_sampler.so\n\
                    7f10-7f20 r-xp 00001000 fe:01 11 /opt/libmemleak_sampler.so\n\
                    7f30-7f40 r-xp 00001000 fe:01 12 /usr/lib/libc.so.6\n";
        let exe = Some(Path::new("/srv/app"));
        assert_eq!(candidates(maps, exe), vec![("7f10-7f20".to_owned(), "/opt/libmemleak_sampler.so".to_owned())]);
        let without: String = maps.lines().filter(|l| !l.contains("sampler")).map(|l| format!("{l}\n")).collect();
        assert_eq!(candidates(&without, exe), vec![("5600-5700".to_owned(), "/srv/app".to_owned())]);
        assert!(candidates(&without, None).is_empty());
    }

    #[test]
    fn the_five_byte_nop_is_probed_only_where_both_the_markers_and_the_kernel_have_it() {
        assert_eq!(offset_for(true, true), 1);
        assert_eq!(offset_for(false, true), 0);
        assert_eq!(offset_for(true, false), 0);
    }

    #[test]
    fn the_mean_follows_the_samplers_rule() {
        assert_eq!(parse_mean(b"4096"), Ok(Some(4096)));
        assert_eq!(parse_mean(b""), Ok(None));
        for bad in [&b"0"[..], b"-1", b"+5", b"1e3", b"1099511627777", b"check"] {
            assert_eq!(parse_mean(bad), Err(()), "{}", String::from_utf8_lossy(bad));
        }
    }
}
