//! `memleak-exporter ingest` end to end: the real binary converts fixture
//! artifacts, and an independent reader (`go tool pprof`, Debian `golang-go`)
//! reads our profiles back; totals and sites are checked against the fixtures'
//! ground truth (../shared/fixtures/README.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{BIN, require_tool};
use std::path::{Path, PathBuf};
use std::process::Command;

fn artifact(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../signals/tests/fixtures/artifacts").join(path)
}

/// `go tool pprof -top -unit=B`: (total, cum bytes of `function`).
fn pprof_top(go: &Path, profile: &Path, function: &str) -> (u64, u64) {
    let out =
        Command::new(go).args(["tool", "pprof", "-top", "-unit=B", "-sample_index=0"]).arg(profile).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "go tool pprof: {}{text}", String::from_utf8_lossy(&out.stderr));
    let bytes = |s: &str| s.trim_end_matches('B').parse::<u64>().unwrap();
    let total = text
        .lines()
        .find_map(|l| l.strip_prefix("Showing nodes accounting for "))
        .and_then(|l| l.split(" of ").nth(1))
        .map(|t| bytes(t.split_whitespace().next().unwrap()))
        .unwrap();
    let cum = text
        .lines()
        .find(|l| l.split_whitespace().last() == Some(function))
        .map(|l| bytes(l.split_whitespace().nth(3).unwrap()))
        .unwrap_or_else(|| panic!("{function} not in:\n{text}"));
    (total, cum)
}

#[test]
fn profiles_are_read_back_by_go_tool_pprof() {
    let Some(go) = require_tool("go", "golang-go") else { return };
    let dir = tempfile::tempdir().unwrap();
    let inputs = [
        "memcheck/a.xml",
        "lsan/asan.txt",
        "lsan/standalone.txt",
        "massif/a.massif.out",
        "jemalloc/a.jeprof.heap",
        "tcmalloc/a.prof.heap",
    ];
    let status = Command::new(BIN)
        .args(["ingest", "--out", dir.path().to_str().unwrap(), "--symbols"])
        .arg(artifact("bin"))
        .args(inputs.iter().map(|i| artifact(i)))
        .status()
        .unwrap();
    assert!(status.success());
    // Ground truth: 409,600 B leaked, 307,200 B of it from leak_request_buffer; Massif's peak
    // holds 415,860 B with 305,664 B (199 × 1536) from leak_request_buffer.
    for (file, total, site) in [
        ("a.xml", 409_600, 307_200),
        ("asan.txt", 409_600, 307_200),
        ("standalone.txt", 409_600, 307_200),
        ("a.massif.out", 415_860, 305_664),
        // jemalloc's dump also holds libstdc++'s 80 KiB emergency pool; gperftools' the 96 B of init_config.
        ("a.jeprof.heap", 491_616, 307_200),
        ("a.prof.heap", 409_696, 307_200),
    ] {
        let profile = dir.path().join(format!("{file}.pb.gz"));
        assert_eq!(pprof_top(&go, &profile, "leak_request_buffer"), (total, site), "{file}");
        let folded = std::fs::read_to_string(dir.path().join(format!("{file}.folded"))).unwrap();
        let folded_total: u64 = folded.lines().map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap()).sum();
        assert_eq!(folded_total, total, "{file}: collapsed stacks");
        let svg = std::fs::read_to_string(dir.path().join(format!("{file}.svg"))).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("leak_request_buffer"), "{file}: flame graph");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(format!("{file}.json"))).unwrap()).unwrap();
        assert_eq!(json["top_sites"][0]["function"], "leak_request_buffer", "{file}");
    }
}

#[test]
fn the_summary_names_the_top_sites_and_bad_files_fail_clearly() {
    let out = Command::new(BIN).args(["ingest"]).arg(artifact("memcheck/r.xml")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first_site = text.lines().skip_while(|l| !l.contains("top sites")).nth(1).unwrap_or_default();
    assert!(first_site.contains("leaky_r::leak_token_buffer") && first_site.contains("512000 bytes"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("notes.txt");
    std::fs::write(&foreign, "hello\n").unwrap();
    let truncated = dir.path().join("cut.xml");
    let xml = std::fs::read_to_string(artifact("memcheck/a.xml")).unwrap();
    std::fs::write(&truncated, &xml[..xml.len() / 3]).unwrap();
    let out = Command::new(BIN)
        .args(["ingest"])
        .arg(&foreign)
        .arg(dir.path().join("missing.out"))
        .arg(&truncated)
        .arg(artifact("asan/uaf.txt"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("notes.txt: not a format memleak-exporter knows"), "{stderr}");
    assert!(stderr.contains("missing.out: cannot open"), "{stderr}");
    assert!(stderr.contains("cut.xml: memcheck:") && stderr.contains("line"), "{stderr}");
    // The good file among them is still converted.
    assert!(String::from_utf8_lossy(&out.stdout).contains("asan.heap-use-after-free"));
}
