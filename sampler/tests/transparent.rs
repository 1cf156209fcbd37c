//! Unprobed, the sampler is invisible: programs behave and print exactly as without it, and the library exports what it promises (no root needed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::uprobes::marker_offsets;
use common::{a_cachesvc, compile, jemalloc, library, one, preloaded, run_ok};
use object::{Object, ObjectSymbol, SymbolKind};
use std::process::{Command, Output};

/// Runs `command` plain, then with the sampler at a small mean (many samples) and at the
/// default; all three must exit 0 and print the same.
fn same_with_and_without(command: impl Fn() -> Command) -> Output {
    let plain = run_ok(&mut command());
    for mean in [64, 524_288] {
        let sampled = run_ok(preloaded(&mut command(), mean, None));
        assert_eq!(
            String::from_utf8_lossy(&sampled.stdout),
            String::from_utf8_lossy(&plain.stdout),
            "{:?} printed differently with the sampler (mean {mean})",
            command()
        );
        assert_eq!(String::from_utf8_lossy(&sampled.stderr), String::from_utf8_lossy(&plain.stderr));
    }
    plain
}

#[test]
fn the_library_exports_the_malloc_family_operator_delete_the_markers_and_the_counters() {
    let bytes = std::fs::read(library()).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let exported =
        |name: &str| file.dynamic_symbols().find(|s| s.name() == Ok(name) && s.is_definition() && s.is_global());
    for name in [
        "malloc",
        "free",
        "calloc",
        "realloc",
        "reallocarray",
        "posix_memalign",
        "aligned_alloc",
        "memalign",
        "valloc",
        "pvalloc",
        "malloc_usable_size",
        "memleak_sampler_alloc",
        "memleak_sampler_free",
        // operator delete: plain, sized, aligned, sized + aligned, nothrow, aligned nothrow; delete[].
        "_ZdlPv",
        "_ZdlPvm",
        "_ZdlPvSt11align_val_t",
        "_ZdlPvmSt11align_val_t",
        "_ZdlPvRKSt9nothrow_t",
        "_ZdlPvSt11align_val_tRKSt9nothrow_t",
        "_ZdaPv",
        "_ZdaPvm",
        "_ZdaPvSt11align_val_t",
        "_ZdaPvmSt11align_val_t",
        "_ZdaPvRKSt9nothrow_t",
        "_ZdaPvSt11align_val_tRKSt9nothrow_t",
    ] {
        let symbol = exported(name).unwrap_or_else(|| panic!("{name} is not exported"));
        assert_eq!(symbol.kind(), SymbolKind::Text, "{name}");
    }
    assert_eq!(exported("memleak_sampler_stats").map(|s| s.kind()), Some(SymbolKind::Data));
    // Each marker has its own code: a uprobe on one never fires for the other.
    let (alloc, free) = marker_offsets(&library());
    assert_ne!(alloc, free);
    // And starts with a nop, which x86-64 uprobes emulate: any other first instruction (a `ret`)
    // is single-stepped out of line, a second trap on every probed call.
    // Then the five-byte nop that kernels optimising uprobes turn into a call (the exporter probes
    // it there).
    for offset in [alloc, free] {
        let offset = offset as usize;
        assert_eq!(bytes[offset], 0x90, "the marker at file offset {offset:#x} does not start with a nop");
        assert_eq!(
            bytes[offset + 1..offset + 6],
            [0x0f, 0x1f, 0x44, 0x00, 0x00],
            "no five-byte nop at {offset:#x} + 1"
        );
    }
}

#[test]
fn the_readme_states_the_glibc_version_the_library_needs() {
    let output = Command::new("objdump").arg("-T").arg(library()).output();
    let Ok(output) = output.inspect_err(|e| assert!(!common::ci(), "objdump (Debian package binutils): {e}")) else {
        eprintln!("SKIP: objdump (Debian package binutils) is missing");
        return;
    };
    assert!(output.status.success(), "objdump -T {}", library().display());
    let needed = String::from_utf8_lossy(&output.stdout)
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| {
            let (major, minor) = version.split_once('.')?;
            Some((major.parse::<u32>().ok()?, minor.split('.').next()?.parse::<u32>().ok()?))
        })
        .max()
        .expect("the library imports versioned glibc symbols");
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let stated = format!("glibc {}.{} or later", needed.0, needed.1);
    assert!(readme.contains(&stated), "sampler/README.md must say \"{stated}\" (objdump -T of the library)");
}

#[test]
fn aligned_entry_points_return_what_glibc_returns_for_good_and_bad_alignments() {
    let dir = tempfile::tempdir().unwrap();
    let program = compile("aligned.c", dir.path(), &[]);
    let output = same_with_and_without(|| Command::new(&program));
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The program exercised the failures, not only the successes.
    assert!(stdout.contains("posix_memalign(0x3, 0x64): null status=22"), "EINVAL for a bad alignment");
    assert!(stdout.contains("errno=12"), "ENOMEM for an impossible size");
}

#[test]
fn realloc_and_calloc_keep_their_c_semantics() {
    // The program checks them itself (growth, shrink, NULL, 0, reallocarray and calloc overflow,
    // a failed realloc that keeps its block) and exits non-zero on the first that fails.
    let dir = tempfile::tempdir().unwrap();
    let program = compile("realloc.c", dir.path(), &[]);
    run_ok(&mut Command::new(&program));
    run_ok(preloaded(&mut Command::new(&program), 64, None));
}

#[test]
fn programs_print_the_same_with_and_without_the_sampler() {
    let dir = tempfile::tempdir().unwrap();
    let output = same_with_and_without(|| {
        let mut command = Command::new(a_cachesvc());
        command.arg("leak");
        command
    });
    assert_eq!(String::from_utf8_lossy(&output.stderr), "a_cachesvc: done\n");

    let cxx = compile("cxx.cpp", dir.path(), &[]);
    same_with_and_without(|| Command::new(&cxx));

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/service.py");
    let output = same_with_and_without(|| {
        let mut command = Command::new("python3");
        command.arg(&script);
        command
    });
    assert_eq!(one(&output, "total"), 80_000);

    let plugin = compile("plugin.c", dir.path(), &["-shared", "-fPIC"]);
    let dlopen = compile("dlopen.c", dir.path(), &["-ldl"]);
    same_with_and_without(|| {
        let mut command = Command::new(&dlopen);
        command.arg(&plugin).arg("50");
        command
    });

    let fork = compile("fork.c", dir.path(), &[]);
    run_ok(preloaded(&mut Command::new(&fork), 64, None));
}

#[test]
fn behind_the_sampler_jemalloc_serves_every_call() {
    let Some(jemalloc) = jemalloc() else { return };
    let dir = tempfile::tempdir().unwrap();
    let program = compile("behind_jemalloc.c", dir.path(), &["-ldl"]);
    // Exit status 2 would mean jemalloc is not there, 3 and up that a call missed it.
    run_ok(preloaded(&mut Command::new(&program), 64, Some(&jemalloc)));
    run_ok(preloaded(Command::new(a_cachesvc()).arg("leak"), 64, Some(&jemalloc)));
}

#[test]
fn the_mean_comes_from_the_environment_and_an_invalid_one_falls_back_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let program = compile("threads.c", dir.path(), &[]);
    let run = |value: &str| {
        let mut command = Command::new(&program);
        command.args(["4", "2000"]).env("LD_PRELOAD", library()).env("MEMLEAK_SAMPLER_MEAN_BYTES", value);
        run_ok(&mut command)
    };
    assert_eq!(one(&run("12345"), "mean_bytes"), 12_345);
    let long = "9".repeat(5000);
    for invalid in ["0", "-4096", "4k", " 4096", "0x1000", "1099511627777", "99999999999999999999999", long.as_str()] {
        let output = run(invalid);
        assert_eq!(one(&output, "mean_bytes"), 524_288, "{invalid:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{invalid:?}: {stderr}");
        assert!(stderr.starts_with("memleak-sampler: MEMLEAK_SAMPLER_MEAN_BYTES="), "{stderr}");
        assert!(stderr.len() < 400, "the value is shown shortened: {} bytes", stderr.len());
    }
    let mut unset = Command::new(&program);
    unset.args(["1", "100"]).env("LD_PRELOAD", library()).env_remove("MEMLEAK_SAMPLER_MEAN_BYTES");
    let output = run_ok(&mut unset);
    assert_eq!(one(&output, "mean_bytes"), 524_288);
    assert!(output.stderr.is_empty());
    // Empty is unset (systemd's `Environment=MEMLEAK_SAMPLER_MEAN_BYTES=`): the default, silently.
    let output = run("");
    assert_eq!(one(&output, "mean_bytes"), 524_288);
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}
