//! The pull endpoints for profilers: what Parca and Grafana Alloy's
//! `pyroscope.scrape` fetch at `PATH_PREFIX/debug/pprof/allocs` is the latest
//! ingested profile, read back by an independent reader (`go tool pprof`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Exporter, repo, require_tool};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_latest_ingested_profile_is_served_where_profilers_scrape_memory() {
    let watched = tempfile::tempdir().unwrap();
    let exporter = Exporter::start_ingesting(watched.path(), "200ms", &[]);
    let (status, _, body) = exporter.get("/ingested/debug/pprof/allocs", None);
    assert_eq!(status, 404, "nothing ingested yet: {}", String::from_utf8_lossy(&body));
    let (status, _, _) = exporter.get("/ingested/no-such-format/debug/pprof/allocs", None);
    assert_eq!(status, 404);
    std::fs::copy(repo("artifacts/tests/fixtures/heaptrack/a.zst"), watched.path().join("heaptrack.a.zst")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, _, body) = exporter.get("/ingested/heaptrack/debug/pprof/allocs", None);
        if status == 200 {
            break body;
        }
        assert!(Instant::now() < deadline, "the heaptrack profile was never served");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(exporter.get("/ingested/debug/pprof/allocs", None).2, body, "the latest of any format is this one");
    let Some(go) = require_tool("go", "golang-go") else { return };
    let file = watched.path().join("served.pb.gz");
    std::fs::write(&file, &body).unwrap();
    let out =
        Command::new(go).args(["tool", "pprof", "-top", "-unit=B", "-sample_index=0"]).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "go tool pprof: {}{text}", String::from_utf8_lossy(&out.stderr));
    // Ground truth (fixtures README): leak_request_buffer leaks 307,200 bytes.
    let line = text.lines().find(|l| l.split_whitespace().last() == Some("leak_request_buffer")).unwrap();
    assert_eq!(line.split_whitespace().nth(3), Some("307200B"), "{text}");
}
