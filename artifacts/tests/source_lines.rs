//! Source files, lines and inlined calls from DWARF, checked against ground
//! truth we do not compute: the line `grep` finds in the source, binutils'
//! `addr2line -f -i` (the peer), and `go tool pprof -lines` reading our pprof.
//! The binaries: the fixture build of program A (`-O0 -g`, its jemalloc dump
//! from the fixtures) and a helper built here with `-O2 -g`, whose allocation
//! sits in an always-inline function.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use memleak_artifacts::encode::pprof;
use memleak_artifacts::model::INUSE_SPACE;
use memleak_artifacts::symbolize::{SymbolPath, Unsymbolized, symbolize};
use memleak_artifacts::{Frame, Meter, Profile, Sample, jemalloc, sites};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A tool of binutils, gcc or Go; missing, a skip, or a failure under CI=true.
fn tool(name: &str, package: &str) -> bool {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {name}")]).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{name} is missing ({package}; install-test-deps.sh)");
        eprintln!("skipped: {name} is not installed (Debian package {package})");
    }
    found
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The 1-based number of the first line after the one containing `after` that contains `needle` (`grep -n`).
fn line_of(source: &Path, after: &str, needle: &str) -> u32 {
    let text = std::fs::read_to_string(source).unwrap();
    let start = text.lines().position(|l| l.contains(after)).unwrap();
    let at = text.lines().enumerate().skip(start).find(|(_, l)| l.contains(needle)).unwrap().0;
    u32::try_from(at + 1).unwrap()
}

/// Resolves `profiles` against the binaries at their recorded paths, within a generous budget.
fn symbolized(profiles: &mut [Profile], budget: u64) -> Vec<Unsymbolized> {
    let path = SymbolPath { dirs: Vec::new(), recorded_paths: true, readable_by: None };
    symbolize(profiles, &path, budget, Instant::now() + Duration::from_secs(60))
}

/// The virtual address of file offset `offset` of `binary`, from readelf's program headers.
fn vaddr_of(binary: &Path, offset: u64) -> u64 {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    run(Command::new("readelf").arg("-lW").arg(binary))
        .lines()
        .filter(|l| l.trim_start().starts_with("LOAD"))
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find_map(|f| {
            let (file_offset, vaddr, size) = (hex(&f[1]), hex(&f[2]), hex(&f[4]));
            (file_offset <= offset && offset < file_offset + size).then(|| offset - file_offset + vaddr)
        })
        .unwrap()
}

/// `addr2line -f -i` at `address` of `binary`: (function, file name, line), innermost first.
fn peer_frames(binary: &Path, address: u64) -> Vec<(String, String, u32)> {
    let text = run(Command::new("addr2line").args(["-f", "-i", "-e"]).arg(binary).arg(format!("{address:x}")));
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(2)
        .map(|pair| {
            let (file, line) = pair[1].rsplit_once(':').unwrap();
            let line = line.split_whitespace().next().unwrap().parse().unwrap_or(0);
            (pair[0].to_owned(), file.rsplit('/').next().unwrap().to_owned(), line)
        })
        .collect()
}

/// Ours as the peer shows them: (function, file name, line).
fn ours(frames: &[Frame]) -> Vec<(String, String, u32)> {
    frames
        .iter()
        .map(|f| {
            let file = f.file.as_deref().unwrap_or("?").rsplit('/').next().unwrap().to_owned();
            (f.function.clone(), file, f.line.unwrap_or(0))
        })
        .collect()
}

/// `go tool pprof -lines -top` of `profile`.
fn pprof_top(profile: &Profile, dir: &Path) -> String {
    let file = dir.join("profile.pb.gz");
    std::fs::write(&file, pprof::encode(profile, "test")).unwrap();
    run(Command::new("go")
        .args(["tool", "pprof", "-lines", "-top"])
        .arg(&file)
        .env("HOME", dir)
        .env("GOCACHE", dir.join("gocache")))
}

/// The real jemalloc dump of program A, its binary at the recorded path of a copy.
fn program_a_dump(dir: &Path) -> Profile {
    let binary = dir.join("a_cachesvc");
    std::fs::copy(fixtures().join("bin/a_cachesvc"), &binary).unwrap();
    let text = std::fs::read_to_string(fixtures().join("jemalloc/a.jeprof.heap")).unwrap();
    // The dump names the binary where it ran; point it at the copy.
    let recorded = text.lines().find(|l| l.ends_with("/a_cachesvc")).unwrap().rsplit(' ').next().unwrap().to_owned();
    let text = text.replace(&recorded, binary.to_str().unwrap());
    let mut ingested = (jemalloc::FORMAT.parse)(&text, &mut Meter::default()).unwrap();
    ingested.profiles.remove(0)
}

#[test]
fn the_leak_site_has_the_line_grep_finds_and_the_peers_agree() {
    let dir = tempfile::tempdir().unwrap();
    let mut profiles = [program_a_dump(dir.path())];
    let unsymbolized = symbolized(&mut profiles, 64 << 20);
    assert!(!unsymbolized.iter().any(|u| u.module.ends_with("a_cachesvc")), "{unsymbolized:?}");
    let profile = &profiles[0];

    let line = line_of(&fixtures().join("src/leaky_a.c"), "char *leak_request_buffer(", "malloc(");
    let top = &sites::top(profile, profile.main_index(), 1)[0];
    assert_eq!(top.frame.function, "leak_request_buffer");
    assert!(top.frame.file.as_deref().unwrap().ends_with("leaky_a.c"), "{:?}", top.frame);
    assert_eq!(top.frame.line, Some(line), "grep -n puts the allocation at leaky_a.c:{line}");

    if tool("addr2line", "binutils") && tool("readelf", "binutils") {
        // Every frame of the program's own code, as addr2line names the byte before its return address.
        let binary = dir.path().join("a_cachesvc");
        let mut checked = 0;
        for sample in &profile.samples {
            for frame in sample.stack.iter().filter(|f| f.address.is_some() && f.line.is_some()) {
                let address = vaddr_of(&binary, frame.address.unwrap()) - 1;
                assert_eq!(ours(std::slice::from_ref(frame)), peer_frames(&binary, address), "at {address:#x}");
                checked += 1;
            }
        }
        assert!(checked >= 4, "only {checked} frames with lines");
    }
    if tool("go", "golang-go") {
        let top = pprof_top(profile, dir.path());
        let first = top.lines().find(|l| l.contains("leak_request_buffer")).unwrap();
        assert!(first.contains(&format!("leaky_a.c:{line}")), "{top}");
    }
}

/// A helper whose allocation is in an always-inline function, built `-O2 -g`.
const INLINED: &str = r#"#include <stdlib.h>
#include <string.h>

static inline __attribute__((always_inline)) char *grab(size_t n)
{
    char *p = malloc(n);                      /* the allocation */
    if (p) memset(p, 1, n);
    return p;
}

__attribute__((noinline)) char *outer(size_t n)
{
    char *q = grab(n);                        /* the inlined call */
    return q;
}

int main(int argc, char **argv)
{
    (void)argv;
    char *volatile kept = outer((size_t)argc * 64);
    free(kept);
    return 0;
}
"#;

/// The file offset just after `outer`'s call to malloc, read from `objdump -d`.
fn return_address_in_outer(binary: &Path) -> u64 {
    let text = run(Command::new("objdump").args(["-d", "--no-show-raw-insn"]).arg(binary));
    let body: Vec<&str> =
        text.lines().skip_while(|l| !l.ends_with("<outer>:")).skip(1).take_while(|l| !l.is_empty()).collect();
    let call = body.iter().position(|l| l.contains("call") && l.contains("<malloc@plt>")).unwrap_or_else(|| {
        panic!("outer does not call malloc (a tail call or inlined away?):\n{}", body.join("\n"));
    });
    let next = body[call + 1].trim_start();
    u64::from_str_radix(&next[..next.find(':').unwrap()], 16).unwrap()
}

#[test]
fn an_inlined_allocation_is_its_chain_innermost_first() {
    if !(tool("cc", "gcc") && tool("objdump", "binutils") && tool("readelf", "binutils")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (source, binary) = (dir.path().join("inlined.c"), dir.path().join("inlined"));
    std::fs::write(&source, INLINED).unwrap();
    run(Command::new("cc").args(["-O2", "-g", "-fno-omit-frame-pointer", "-o"]).arg(&binary).arg(&source));
    let vaddr = return_address_in_outer(&binary);
    // The text segment of a gcc/ld PIE maps its file offsets at their addresses; check, then use it.
    assert_eq!(vaddr_of(&binary, vaddr), vaddr);
    let module = binary.to_str().unwrap().to_owned();
    let frame = Frame { file: Some(module), address: Some(vaddr), ..Frame::function(format!("inlined+0x{vaddr:x}")) };
    let mut profile = Profile::new("inuse", vec![INUSE_SPACE]);
    let libc = Frame { file: Some("/nonexistent/libc.so.6".into()), address: Some(1), ..Frame::function("libc+0x1") };
    profile.samples.push(Sample { stack: vec![libc, frame], values: vec![64], labels: Vec::new() });
    let mut profiles = [profile];
    symbolized(&mut profiles, 64 << 20);
    let stack = &profiles[0].samples[0].stack;

    let allocation = line_of(&source, "char *grab(", "malloc(");
    let call = line_of(&source, "char *outer(", "grab(");
    assert_eq!(
        ours(&stack[1..]),
        [("grab".to_owned(), "inlined.c".to_owned(), allocation), ("outer".to_owned(), "inlined.c".to_owned(), call)]
    );
    assert!(stack[1].inlined && !stack[2].inlined, "grab is inlined into outer: {stack:?}");
    if tool("addr2line", "binutils") {
        assert_eq!(ours(&stack[1..]), peer_frames(&binary, vaddr - 1));
    }
    if tool("go", "golang-go") {
        // pprof: one location with two lines, the inlined one marked so.
        let top = pprof_top(&profiles[0], dir.path());
        let shows = |function: &str, line: u32| {
            top.lines().find(|l| l.contains(&format!("{function} ")) && l.contains(&format!("/inlined.c:{line}")))
        };
        assert!(shows("grab", allocation).is_some_and(|l| l.ends_with("(inline)")), "{top}");
        assert!(shows("outer", call).is_some_and(|l| !l.ends_with("(inline)")), "{top}");
    }
}

#[test]
fn garbage_line_info_is_noted_and_functions_still_resolve() {
    if !tool("readelf", "binutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut dump = program_a_dump(dir.path());
    // Overwrite the binary's .debug_line with bytes that are no line program.
    let binary = dir.path().join("a_cachesvc");
    let headers = run(Command::new("readelf").args(["-SW"]).arg(&binary));
    let fields: Vec<&str> = headers
        .lines()
        .find(|l| l.contains(".debug_line ") || l.trim_end().ends_with(".debug_line"))
        .unwrap()
        .split_whitespace()
        .collect();
    let at = fields.iter().position(|f| *f == ".debug_line").unwrap();
    let (offset, size) =
        (usize::from_str_radix(fields[at + 3], 16).unwrap(), usize::from_str_radix(fields[at + 4], 16).unwrap());
    let mut bytes = std::fs::read(&binary).unwrap();
    bytes[offset..offset + size].iter_mut().enumerate().for_each(|(i, b)| *b = (i as u8).wrapping_mul(151) | 0x80);
    std::fs::write(&binary, &bytes).unwrap();

    let unsymbolized = symbolized(std::slice::from_mut(&mut dump), 64 << 20);
    let top = &sites::top(&dump, dump.main_index(), 1)[0];
    let note = unsymbolized
        .iter()
        .find(|u| u.module.ends_with("a_cachesvc"))
        .unwrap_or_else(|| panic!("{unsymbolized:?} {top:?}"));
    assert!(note.reason.starts_with("line info unusable"), "{note:?}");
    let top = &sites::top(&dump, dump.main_index(), 1)[0];
    assert_eq!(top.frame.function, "leak_request_buffer");
    assert_eq!(top.frame.line, None);
}
