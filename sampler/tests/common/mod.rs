//! What the sampler's integration tests share: where the library is, building the C test programs, running them with the library preloaded.

#![allow(dead_code)]

pub mod estimate;
pub mod uprobes;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// False (after saying why) when uprobes cannot be attached here; under CI=true that is a failure.
pub fn can_run_privileged() -> bool {
    if is_root() {
        return true;
    }
    assert!(!ci(), "CI runs as root: this test must run there");
    eprintln!("SKIP: needs root (uprobes through tracefs)");
    false
}

/// The cdylib built with these tests: `target/<profile>/deps/libmemleak_sampler.so`, beside the
/// test executables (`cargo test` builds it there and copies it up only on `cargo build`).
pub fn library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let library = exe.with_file_name("libmemleak_sampler.so");
    assert!(library.is_file(), "{} is missing: cargo build -p memleak-sampler", library.display());
    library
}

/// A copy of the fixture program A (`a_cachesvc`, ground truth in the shared fixtures' README).
pub fn a_cachesvc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/a_cachesvc")
}

/// What program A (`a_cachesvc leak`) allocates, by site, from the fixtures' README: (size, blocks).
pub const A_ALLOCATED: [(u64, u64); 5] = [(8192, 400), (20, 400), (1536, 200), (256, 400), (96, 1)];
/// What A has in use at exit: the 409,600 leaked bytes (`leak_request_buffer` 200 x 1536,
/// `leaky_cache_insert` 400 x 256) and the 96 still reachable (`init_config`): the sampler sees
/// blocks, not reachability.
pub const A_IN_USE: [(u64, u64); 3] = [(1536, 200), (256, 400), (96, 1)];

/// Debian's jemalloc (package libjemalloc2, installed by scripts/install-test-deps.sh).
pub fn jemalloc() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2");
    if path.is_file() {
        return Some(path);
    }
    assert!(!ci(), "{} is missing (Debian package libjemalloc2)", path.display());
    eprintln!("SKIP: {} is missing (Debian package libjemalloc2)", path.display());
    None
}

/// Compiles `tests/programs/<name>` (C, or C++ for `.cpp`) into `dir` with `extra` arguments.
pub fn compile(name: &str, dir: &Path, extra: &[&str]) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs").join(name);
    let stem = source.file_stem().unwrap().to_str().unwrap();
    let (compiler, package) = if name.ends_with(".cpp") { ("c++", "g++") } else { ("cc", "gcc") };
    let output = if extra.contains(&"-shared") { dir.join(format!("lib{stem}.so")) } else { dir.join(stem) };
    let status = Command::new(compiler)
        .args(["-O1", "-g", "-Wall", "-Werror", "-pthread", "-o"])
        .arg(&output)
        .arg(&source)
        .args(extra)
        .status();
    assert!(status.is_ok_and(|s| s.success()), "{compiler} {} failed (Debian package {package})", source.display());
    output
}

/// `command` with the library preloaded (before `also`, when given) and the mean set.
pub fn preloaded<'a>(command: &'a mut Command, mean: u64, also: Option<&Path>) -> &'a mut Command {
    let mut preload = library().into_os_string();
    if let Some(also) = also {
        preload.push(" ");
        preload.push(also);
    }
    command.env("LD_PRELOAD", preload).env("MEMLEAK_SAMPLER_MEAN_BYTES", mean.to_string())
}

/// Runs `command`, asserting it exits 0; its output.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `command` with its output captured, asserting it exits 0; its pid and output.
pub fn spawn_ok(command: &mut Command) -> (u32, Output) {
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (pid, output)
}

/// `key=value` words of a program's stdout, as numbers (hex with 0x).
pub fn reported(output: &Output, key: &str) -> Vec<u64> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .split_whitespace()
        .filter_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .map(|value| match value.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
            None => value.parse().unwrap(),
        })
        .collect()
}

pub fn one(output: &Output, key: &str) -> u64 {
    let values = reported(output, key);
    assert_eq!(values.len(), 1, "{key}= in {}", String::from_utf8_lossy(&output.stdout));
    values[0]
}
