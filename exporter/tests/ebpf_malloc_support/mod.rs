//! What the `ebpf-malloc` capture tests share: the root check, program A and
//! the churn helper, alerts through the webhook, waiting for a capture, and
//! the BPF programs of the tracer that the kernel holds.

#![allow(dead_code)]

use super::common::{self, Exporter, request};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// False (after saying why) when this test cannot run here; under CI=true that is a failure.
pub fn privileged() -> bool {
    if common::is_root() && memleak_bpf::built_with_bpf() {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI is root and has clang: this test must run there");
    eprintln!("SKIP: needs root and a build with clang");
    false
}

/// Program A (the fixtures' `a_cachesvc`, built with frame pointers) with `sleep_us` per iteration.
pub fn program_a(sleep_us: u32) -> Child {
    let child = Command::new(common::repo("artifacts/tests/fixtures/bin/a_cachesvc"))
        .args(["leak", &sleep_us.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200)); // the dynamic loader maps libc
    child
}

/// The churn helper (bpf/tests/helpers/malloc_churn.c), compiled once per test binary.
pub fn churn() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("malloc_churn");
            let flags = ["-O2", "-fno-omit-frame-pointer"];
            common::compile("cc", "gcc", &flags, "bpf/tests/helpers/malloc_churn.c", &out)
                .expect("cc (Debian package gcc)")
        })
        .clone()
}

pub fn alert(fingerprint: &str, labels: Value, annotations: Value) -> Value {
    let mut all = json!({ "alertname": "ProcessMemoryLeak", "capture": "ebpf-malloc", "severity": "warning" });
    all.as_object_mut().unwrap().extend(labels.as_object().unwrap().clone());
    json!({ "status": "firing", "labels": all, "annotations": annotations, "fingerprint": fingerprint })
}

/// POSTs one alert to the webhook; the id of the capture it started.
pub fn start_capture(exporter: &Exporter, alert: Value) -> String {
    let body = json!({ "version": "4", "status": "firing", "receiver": "memleak", "alerts": [alert] }).to_string();
    let (status, reply) = request(exporter.port, "POST", "/api/v1/alerts", "", &body);
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(status, 200, "{reply}");
    let outcome = &reply["outcomes"][0];
    assert_eq!(outcome["outcome"], "accepted", "{reply}\n{}", exporter.stderr());
    outcome["capture"].as_str().unwrap().to_owned()
}

/// The capture `id` as the API lists it, with its summary.
pub fn capture(exporter: &Exporter, id: &str) -> Value {
    let (status, body) = request(exporter.port, "GET", &format!("/api/v1/captures/{id}"), "", "");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let reply: Value = serde_json::from_slice(&body).unwrap();
    let mut capture = reply["capture"].clone();
    capture["summary"] = reply["summary"].clone();
    capture
}

/// Waits (60 s at most) until `done` holds for capture `id`.
pub fn wait_for(exporter: &Exporter, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    crate::common::captures::poll(exporter, id, what, || capture(exporter, id), done)
}

pub fn finished(c: &Value) -> bool {
    c["status"] != "running"
}

/// The programs of bpf/src/c/malloc_trace.bpf.c.
const PROGRAMS: [&str; 6] = ["alloc_enter", "alloc_return", "free_enter", "process_forked", "child_exec", "child_exit"];

/// The tracer's programs loaded in the kernel (`bpftool prog show`), by name.
pub fn tracer_programs() -> Vec<String> {
    let Some(bpftool) = common::require_tool("bpftool", "bpftool") else { return Vec::new() };
    let out = Command::new(bpftool).args(["-j", "prog", "show"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let programs: Value = serde_json::from_slice(&out.stdout).unwrap();
    programs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .filter(|n| PROGRAMS.contains(n))
        .map(str::to_owned)
        .collect()
}

/// The links (uprobe_multi, tracepoint) attached to the tracer's programs.
pub fn tracer_links() -> usize {
    let Some(bpftool) = common::require_tool("bpftool", "bpftool") else { return 0 };
    let programs = Command::new(&bpftool).args(["-j", "prog", "show"]).output().unwrap();
    let programs: Value = serde_json::from_slice(&programs.stdout).unwrap();
    let ids: Vec<u64> = programs
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| PROGRAMS.contains(&n)))
        .filter_map(|p| p["id"].as_u64())
        .collect();
    let links = Command::new(&bpftool).args(["-j", "link", "show"]).output().unwrap();
    let links: Value = serde_json::from_slice(&links.stdout).unwrap();
    links.as_array().unwrap().iter().filter(|l| l["prog_id"].as_u64().is_some_and(|id| ids.contains(&id))).count()
}
