//! The totals invariant (`invariant::check`: no site exceeds its total, sites
//! add up to it within the format's rounding) over every fixture of every
//! format, the shared fixture tree when it is there, and real sampled
//! jemalloc dumps made here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use memleak_artifacts::{ArtifactError, detect, invariant, sites};
use std::path::{Path, PathBuf};
use std::process::Command;

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Checks every file under `root` that is an artifact; returns how many were.
fn check_tree(root: &Path) -> usize {
    let mut files = Vec::new();
    files_under(root, &mut files);
    let mut checked = 0;
    for path in files {
        if path.components().any(|c| c.as_os_str() == "bin" || c.as_os_str() == "src") {
            continue;
        }
        match detect::ingest_bytes(&std::fs::read(&path).unwrap()) {
            Ok(out) => {
                invariant::check(&out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                checked += 1;
            }
            // Tools' other outputs (ms_print, jeprof --text, logs) are not artifacts.
            Err(ArtifactError::UnknownFormat { .. }) => {}
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    checked
}

#[test]
fn every_fixture_keeps_the_invariant() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let checked = check_tree(&root.join("tests/fixtures"));
    assert!(checked >= 30, "only {checked} fixtures read");
    // The fixture tree the copies come from, beside the project (DESIGN.md), with every run's variants.
    let shared = root.join("../../shared/fixtures");
    if shared.is_dir() {
        let checked = check_tree(&shared);
        assert!(checked >= 40, "only {checked} shared fixtures read");
    } else {
        eprintln!("{} is not here: only the project's copies were checked", shared.display());
    }
}

/// Leaks 300 × 4,000 B, 2,000 × 100 B and 5 × 1 MiB; mallocs with 512 KiB sampling see few of them.
const PROGRAM: &str = r#"
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) void *leak_medium(void) { void *p = malloc(4000); memset(p, 1, 4000); return p; }
__attribute__((noinline)) void *leak_small(void) { void *p = malloc(100); memset(p, 1, 100); return p; }
__attribute__((noinline)) void *leak_large(void) { void *p = malloc(1 << 20); memset(p, 1, 1 << 20); return p; }
int main(void) {
    for (int i = 0; i < 300; i++) leak_medium();
    for (int i = 0; i < 2000; i++) leak_small();
    for (int i = 0; i < 5; i++) leak_large();
    return 0;
}
"#;

#[test]
fn sampled_jemalloc_dumps_keep_the_invariant() {
    let lib = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    let cc = Command::new("cc").arg("--version").output().is_ok_and(|o| o.status.success());
    if !Path::new(lib).exists() || !cc {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "libjemalloc2 or cc is missing (install-test-deps.sh)");
        eprintln!("skipped: needs cc and {lib} (Debian packages gcc, libjemalloc2)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leaky.c"), PROGRAM).unwrap();
    let program = dir.path().join("leaky");
    let status = Command::new("cc")
        .args(["-O0", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(&program)
        .arg(dir.path().join("leaky.c"))
        .status()
        .unwrap();
    assert!(status.success());
    // jemalloc's default sampling (lg_prof_sample:19, 512 KiB on average), as a user runs it.
    let status = Command::new(&program)
        .env("LD_PRELOAD", lib)
        .env("MALLOC_CONF", format!("prof:true,prof_final:true,prof_prefix:{}/jeprof", dir.path().display()))
        .status()
        .unwrap();
    assert!(status.success());
    let mut files = Vec::new();
    files_under(dir.path(), &mut files);
    let dump = files.iter().find(|p| p.extension().is_some_and(|e| e == "heap")).expect("a .heap dump");
    let text = std::fs::read_to_string(dump).unwrap();
    assert!(text.starts_with("heap_v2/524288"), "a sampled dump: {}", &text[..40.min(text.len())]);
    let out = detect::ingest(&text).unwrap();
    invariant::check(&out).unwrap();
    // About 12 samples of the 6.4 MB leaked: the unsampled estimate is near that, never 0 nor 10 times it.
    let inuse = out.total("inuse_bytes").unwrap();
    let leaked = (300 * 4000 + 2000 * 100 + 5 * (1 << 20)) as f64;
    assert!(inuse > 0.0 && inuse < 10.0 * leaked, "inuse {inuse} against {leaked} leaked");
    let top = sites::top(&out.profiles[0], 0, 1);
    assert!(top[0].values[0] as f64 <= inuse, "{top:?} within {inuse}");
}
