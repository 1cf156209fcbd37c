//! Every profile we write opens on bytes (leaked, in use, grown or allocated)
//! in `go tool pprof` (Debian `golang-go`), without `-sample_index`: the
//! profiles of every fixture, and a Go heap profile whose first sample type is
//! a count (alloc_objects), as a pulled pprof endpoint gives it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use memleak_artifacts::model::{ALLOC_OBJECTS, ALLOC_SPACE, INUSE_OBJECTS, INUSE_SPACE};
use memleak_artifacts::{Frame, Profile, Sample, detect, encode::pprof};
use std::path::{Path, PathBuf};
use std::process::Command;

fn go() -> Option<PathBuf> {
    let found = Command::new("go").arg("version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "go is missing (scripts/install-test-deps.sh)");
        eprintln!("skipped: go is not installed (Debian package golang-go)");
    }
    found.then(|| PathBuf::from("go"))
}

/// The `Type:` line of `go tool pprof -top` with its defaults.
fn opens_on(go: &Path, dir: &Path, profile: &Profile) -> String {
    let file = dir.join(format!("{}.pb.gz", profile.name));
    std::fs::write(&file, pprof::encode(profile, "test")).unwrap();
    let out = Command::new(go)
        .args(["tool", "pprof", "-top"])
        .arg(&file)
        .env("HOME", dir)
        .env("GOCACHE", dir.join("gocache"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "go tool pprof: {}{text}", String::from_utf8_lossy(&out.stderr));
    text.lines().find_map(|l| l.strip_prefix("Type: ")).unwrap_or_else(|| panic!("no Type line:\n{text}")).to_owned()
}

#[test]
fn every_fixture_profile_opens_on_bytes() {
    let Some(go) = go() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut opened = 0;
    for format in std::fs::read_dir(&root).unwrap() {
        let format = format.unwrap().path();
        if format.file_name().is_some_and(|n| n == "bin") {
            continue;
        }
        for file in std::fs::read_dir(&format).unwrap() {
            let path = file.unwrap().path();
            let Ok(out) = detect::ingest_bytes(&std::fs::read(&path).unwrap()) else { continue };
            for profile in out.profiles.iter().filter(|p| !p.samples.is_empty()) {
                let kind = opens_on(&go, dir.path(), profile);
                assert!(
                    kind.ends_with("_space"),
                    "{}: profile {} opens on {kind}, not bytes",
                    path.display(),
                    profile.name
                );
                opened += 1;
            }
        }
    }
    assert!(opened >= 20, "only {opened} profiles");
}

#[test]
fn a_go_heap_profile_opens_on_inuse_space() {
    let Some(go) = go() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut heap = Profile::new("heap", vec![ALLOC_OBJECTS, ALLOC_SPACE, INUSE_OBJECTS, INUSE_SPACE]);
    heap.samples.push(Sample {
        stack: vec![Frame::function("main.leak"), Frame::function("main.main")],
        values: vec![10, 10_240, 4, 4_096],
        labels: Vec::new(),
    });
    assert_eq!(opens_on(&go, dir.path(), &heap), "inuse_space");
}
