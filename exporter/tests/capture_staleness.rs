//! Capture kind `staleness` on a real process, as root: a program that leaks 16 buffers of 1 MiB
//! written once and never touched again, next to an 8 MiB cache it reads every millisecond
//! (tests/helpers/stale_cache.c). The capture ranks the leak's mappings stale, all their
//! resident bytes, and finds the cache's touched.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Exporter;
use common::captures::{alert, post, privileged, summary, wait_for};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const MIB: f64 = 1048576.0;

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The top sites' (function, stale bytes) of a summary.
fn stale_sites(summary: &Value) -> Vec<(String, f64)> {
    summary["top_sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["function"].as_str().unwrap().to_owned(), s["values"]["stale_space"].as_f64().unwrap()))
        .collect()
}

#[test]
fn staleness_ranks_a_leak_never_touched_above_a_cache_read_constantly() {
    if !privileged("the staleness capture") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let flags = ["-O1", "-Wall", "-Werror"];
    let source = "exporter/tests/helpers/stale_cache.c";
    let Some(binary) = common::compile("cc", "gcc", &flags, source, &dir.path().join("stale_cache")) else { return };
    let mut child = Killed(Command::new(&binary).stdout(Stdio::piped()).spawn().unwrap());
    let mut cache = 0u64;
    let mut leaks = Vec::new();
    for line in BufReader::new(child.0.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        let address = |f: &str| u64::from_str_radix(f.trim_start_matches("0x"), 16).unwrap();
        match fields.as_slice() {
            ["cache", a, _] => cache = address(a),
            ["leak", a, _] => leaks.push(address(a)),
            ["ready"] => break,
            _ => panic!("unexpected line {line:?}"),
        }
    }
    assert_eq!(leaks.len(), 16);

    let exporter = Exporter::start(&[]);
    let labels = json!({ "group": "stale_cache", "pid": child.0.id().to_string() });
    let outcome = post(&exporter, alert("staleness", "t1", labels, json!({ "capture_duration": "2s" })));
    assert_eq!(outcome["outcome"], "accepted", "{outcome}");
    let id = outcome["capture"].as_str().unwrap().to_owned();
    let done = wait_for(&exporter, &id, "finished", |c| c["status"] != "running");
    assert_eq!(done["status"], "done", "{done}");
    let summary = summary(&exporter, &id);
    let sites = stale_sites(&summary);

    // Anonymous mappings are named by their range: find the ones holding the leaks and the cache.
    let range_of = |name: &str| -> Option<(u64, u64)> {
        let (start, end) = name.strip_prefix("anon:")?.split_once('-')?;
        Some((u64::from_str_radix(start, 16).ok()?, u64::from_str_radix(end, 16).ok()?))
    };
    let holding = |addr: u64| sites.iter().find(|(n, _)| range_of(n).is_some_and(|(s, e)| (s..e).contains(&addr)));
    // Top sites list what holds stale bytes (at most 10): a mapping missing from a shorter list holds none.
    let cache_stale = match holding(cache) {
        Some((_, stale)) => *stale,
        None => {
            assert!(sites.len() < 10, "the cache's mapping may have been cut from the list: {sites:?}");
            0.0
        }
    };
    let mut leak_sites: Vec<&(String, f64)> = leaks.iter().map(|&a| holding(a).unwrap()).collect();
    leak_sites.dedup();
    let holds_cache = |name: &str| range_of(name).is_some_and(|(s, e)| (s..e).contains(&cache));
    assert!(leak_sites.iter().all(|(n, _)| !holds_cache(n)), "the guard keeps the cache apart: {sites:?}");
    // Truth: the leaks were written once before the window and never touched in it: each is an
    // mmap'd chunk of 1 MiB and a page (malloc's header), every page of it written by memset;
    // the cache's 8 MiB were read every millisecond, so none of it is stale.
    let leak_stale: f64 = leak_sites.iter().map(|(_, b)| b).sum();
    eprintln!(
        "leaks stale {:.2} MiB in {} mappings, cache stale {:.2} MiB",
        leak_stale / MIB,
        leak_sites.len(),
        cache_stale / MIB
    );
    assert!(leak_stale >= 16.0 * MIB, "{sites:?}");
    assert!(leak_stale <= 16.0 * (MIB + 4096.0), "{sites:?}");
    assert!(cache_stale <= 64.0 * 1024.0, "the cache was read all along: {sites:?}");
    // Ranked: the leaks' mapping comes first.
    assert!(leak_sites.iter().any(|(n, _)| *n == sites[0].0), "{sites:?}");
    assert!(summary["totals"]["stale_anonymous_bytes"].as_f64().unwrap() >= 16.0 * MIB);
    assert!(summary["totals"]["clear_refs_seconds"].as_f64().unwrap() >= 0.0);
}
