//! jemalloc and gperftools heap profiles of program A, symbolized against the
//! fixture binary (tests/fixtures/bin/a_cachesvc, built with -g),
//! checked against the fixture README's ground truth.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use memleak_artifacts::symbolize::{SymbolPath, symbolize};
use memleak_artifacts::{Ingested, Meter, sites};
use memleak_artifacts::{jemalloc, tcmalloc};
use std::path::PathBuf;

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(artifacts().join(path)).unwrap()
}

fn symbolized(mut out: Ingested) -> Ingested {
    // Only the fixture binary: this machine's libraries may be other builds than the dump's.
    let path = SymbolPath { dirs: vec![artifacts().join("bin")], recorded_paths: false, readable_by: None };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let missing = symbolize(&mut out.profiles, &path, 1 << 20, deadline);
    assert!(!missing.iter().any(|m| m.module.ends_with("a_cachesvc")), "the program binary must be found: {missing:?}");
    assert!(missing.iter().all(|m| m.reason == "not found in the symbol folders"), "{missing:?}");
    out
}

fn top(out: &Ingested, index: usize) -> Vec<(String, Vec<i64>)> {
    sites::top(&out.profiles[0], index, 4).into_iter().map(|s| (s.frame.function, s.values)).collect()
}

#[test]
fn jemalloc_final_dump() {
    let raw = (jemalloc::FORMAT.parse)(&read("jemalloc/a.jeprof.heap"), &mut Meter::default()).unwrap();
    // The dump's own totals: 602 objects, 491,616 B (with libstdc++'s 80 KiB pool and init_config's 96 B).
    assert_eq!(raw.total("inuse_objects"), Some(602.0));
    assert_eq!(raw.total("inuse_bytes"), Some(491_616.0));
    assert_eq!(raw.profiles[0].total(0), 491_616, "lg_prof_sample:0, so no scaling");
    // Unsymbolized, the sites are still usable: the program's own module offsets.
    let unsymbolized = top(&raw, 0);
    assert!(
        unsymbolized[0].0.starts_with("a_cachesvc+0x") || unsymbolized[0].0.starts_with("libstdc++"),
        "{unsymbolized:?}"
    );
    let out = symbolized(raw);
    let t = top(&out, 0);
    // README: leak_request_buffer 307,200 B in 200 blocks; leaky_cache_insert 102,400 B in 400.
    assert_eq!(t[0], ("leak_request_buffer".into(), vec![307_200, 200]));
    let cache = t.iter().find(|(f, _)| f == "leaky_cache_insert").unwrap();
    assert_eq!(cache.1, [102_400, 400]);
    let stack: Vec<&str> = out.profiles[0]
        .samples
        .iter()
        .find(|s| s.values[0] == 307_200)
        .unwrap()
        .stack
        .iter()
        .map(|f| f.function.as_str())
        .collect();
    let program: Vec<&&str> =
        stack.iter().filter(|f| ["leak_request_buffer", "handle_request", "run_service", "main"].contains(f)).collect();
    assert_eq!(program, [&"leak_request_buffer", &"handle_request", &"run_service", &"main"]);
}

#[test]
fn tcmalloc_heap_profile() {
    let out = symbolized((tcmalloc::FORMAT.parse)(&read("tcmalloc/a.prof.heap"), &mut Meter::default()).unwrap());
    // Header: 601 objects / 409,696 B in use, 1,401 / 3,694,496 B allocated (README's totals).
    assert_eq!(out.total("inuse_objects"), Some(601.0));
    assert_eq!(out.total("inuse_bytes"), Some(409_696.0));
    assert_eq!(out.total("alloc_objects"), Some(1401.0));
    assert_eq!(out.total("alloc_bytes"), Some(3_694_496.0));
    let t = top(&out, 0);
    assert_eq!(t[0], ("leak_request_buffer".into(), vec![307_200, 200, 307_200, 200]));
    assert_eq!(t[1], ("leaky_cache_insert".into(), vec![102_400, 400, 102_400, 400]));
    assert_eq!(t[2].0, "init_config");
    // By allocated bytes the freed 8 KiB scratch buffers of handle_request lead (400 × 8192).
    let by_alloc = top(&out, 2);
    assert_eq!(by_alloc[0].0, "handle_request");
    assert_eq!(by_alloc[0].1[2], 3_276_800 + 8000, "the scratch buffers and the strdup copies");
}

#[test]
fn truncated_dumps_are_errors() {
    let text = read("jemalloc/a.jeprof.heap");
    let cut = &text[..text.find("MAPPED_LIBRARIES").unwrap()];
    assert!((jemalloc::FORMAT.parse)(cut, &mut Meter::default()).is_err());
    assert!((tcmalloc::FORMAT.parse)("heap profile: garbage", &mut Meter::default()).is_err());
}
