//! The exporter killed (SIGKILL) in the middle of an `ebpf-malloc` capture
//! leaves no probe behind: its uprobes are uprobe_multi links held by its file
//! descriptors, which the kernel releases with the process. Alone in its test
//! binary: it counts the tracer's programs in the whole kernel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod ebpf_malloc_support;

use common::{Exporter, Guard};
use ebpf_malloc_support::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn a_killed_exporter_leaves_no_probe_in_the_kernel() {
    if !privileged() || common::require_tool("bpftool", "bpftool").is_none() {
        return;
    }
    assert!(tracer_programs().is_empty(), "no tracer runs before the test: {:?}", tracer_programs());
    let target = Guard(program_a(50_000)); // 20 s
    let exporter = Exporter::start(&[]);
    let labels = json!({ "group": "a_cachesvc", "pid": target.0.id().to_string() });
    let id = start_capture(&exporter, alert("k1", labels, json!({ "capture_duration": "60s" })));
    wait_for(&exporter, &id, "in its window", |c| c["phase"] == "window");
    assert!(tracer_links() > 0, "the capture's uprobes are attached");
    assert!(!tracer_programs().is_empty());

    exporter.signal(9);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(tracer_programs().is_empty() && tracer_links() == 0) {
        assert!(Instant::now() < deadline, "left behind: {:?}, {} links", tracer_programs(), tracer_links());
        std::thread::sleep(Duration::from_millis(200));
    }
    // No probe named in tracefs either (the legacy way, which would outlive the process).
    for events in ["/sys/kernel/tracing/uprobe_events", "/sys/kernel/debug/tracing/uprobe_events"] {
        if let Ok(text) = std::fs::read_to_string(events) {
            assert!(!text.contains("libc.so"), "{events}: {text}");
        }
    }
}
