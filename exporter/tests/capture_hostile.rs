//! The capture loop against hostile alerts and hostile targets, on real
//! processes: a `pid` label that names init, the exporter itself or a process
//! outside the alert's group; a group whose processes do not all catch the
//! dump signal; a pprof endpoint answering a decompression bomb of empty
//! samples (measured: the exporter's peak RSS) or an error page holding a
//! secret; allowlist patterns stretched across dots.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::captures::post_all;
use common::{Exporter, Guard, captures, libtcmalloc, request};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An alert asking for an allocator profile.
fn alert(fingerprint: &str, labels: Value, annotations: Value) -> Value {
    captures::alert("allocator-profile", fingerprint, labels, annotations)
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim().to_owned()
}

fn alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped by the test) counts as dead.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.rsplit(')').next().unwrap().contains(" Z "))
}

/// A `sleep` renamed, so that its group is this test's alone; killed on drop.
fn sleeper(name: &str) -> Guard {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    if !path.exists() {
        std::fs::copy("/bin/sleep", &path).unwrap();
    }
    Guard(common::spawn_just_written(Command::new(&path).arg("300")))
}

#[test]
fn a_pid_label_never_reaches_a_process_outside_the_alerts_group() {
    let dumps = tempfile::tempdir().unwrap();
    let victim = sleeper("hvictim");
    let other = sleeper("hother");
    let mapping = format!("group=hvictim,heap_profile={}/prof,signal=12", dumps.path().display());
    let exporter = Exporter::start(&["--capture.target", &mapping]);
    let me = exporter.pid();
    let own = comm(me);
    let init = comm(1);
    let cases = [
        // A pid alone names nothing.
        ("p1", json!({ "pid": "1" }), "invalid"),
        ("p2", json!({ "pid": me.to_string() }), "invalid"),
        // A pid narrows the group: one outside it is no target, whatever it is.
        ("p3", json!({ "group": "hvictim", "pid": "1" }), "no-such-target"),
        ("p4", json!({ "group": "hvictim", "pid": me.to_string() }), "no-such-target"),
        ("p5", json!({ "group": "hvictim", "pid": other.0.id().to_string() }), "no-such-target"),
        ("p6", json!({ "group": init, "pid": "1" }), "no-such-target"),
        ("p7", json!({ "group": own, "pid": me.to_string() }), "no-such-target"),
        ("p8", json!({ "group": "kthreadd", "pid": "2" }), "no-such-target"),
        ("p10", json!({ "cgroup": "/a/../../etc" }), "invalid"),
        ("p11", json!({ "group": "hvictim", "pid": "+1" }), "invalid"),
    ];
    let alerts: Vec<Value> = cases.iter().map(|(fp, labels, _)| alert(fp, labels.clone(), json!({}))).collect();
    let outcomes = post_all(&exporter, &alerts);
    for ((fp, labels, want), got) in cases.iter().zip(&outcomes) {
        assert_eq!(got["outcome"], *want, "{fp} {labels}: {got}");
    }
    // The canonical pid of the victim (written with leading zeros) resolves, but the victim
    // does not catch signal 12: nothing is signalled and it lives.
    let padded = format!("000{}", victim.0.id());
    let refused = post_all(&exporter, &[alert("p12", json!({ "group": "hvictim", "pid": padded }), json!({}))]);
    assert_eq!(refused[0]["outcome"], "unavailable", "{refused:?}");
    assert!(refused[0]["reason"].as_str().unwrap().contains("catches signal 12"), "{refused:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(victim.0.id()) && alive(other.0.id()) && alive(me), "{}", exporter.stderr());
    assert!(exporter.metrics().contains("memleak_exporter_"), "the exporter still answers");
}

fn tcleak(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile");
    std::fs::create_dir_all(&dir).unwrap();
    common::compile("cc", "gcc", &["-g", "-O0"], "exporter/tests/helpers/tcleak.c", &dir.join(name))
}

/// Starts tcleak (with gperftools' signal handler when `prefix` is given); waits for "ready".
fn start_tcleak(binary: &Path, tcmalloc: &Path, prefix: Option<&Path>) -> (Guard, std::process::ChildStdin) {
    let mut c = Command::new(binary);
    if let Some(prefix) = prefix {
        c.env("LD_PRELOAD", tcmalloc).env("HEAPPROFILE", prefix).env("HEAPPROFILESIGNAL", "12");
    }
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    (Guard(child), stdin)
}

#[test]
fn the_dump_signal_goes_only_to_processes_that_catch_it() {
    let (Some(binary), Some(tcmalloc)) = (tcleak("tchostile"), libtcmalloc()) else { return };
    let dumps = tempfile::tempdir().unwrap();
    let prefix = dumps.path().join("prof");
    let (profiled, _in1) = start_tcleak(&binary, &tcmalloc, Some(&prefix));
    let (plain, _in2) = start_tcleak(&binary, &tcmalloc, None);
    let mapping = format!("group=tchostile,heap_profile={},signal=12", prefix.display());
    let exporter = Exporter::start(&["--capture.target", &mapping]);
    let outcomes =
        post_all(&exporter, &[alert("s1", json!({ "group": "tchostile" }), json!({ "capture_duration": "1s" }))]);
    assert_eq!(outcomes[0]["outcome"], "accepted", "{outcomes:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !exporter.stderr().contains("capture finished") {
        assert!(Instant::now() < deadline, "{}", exporter.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Signal 12's default action would have killed the process without the heap profiler.
    assert!(alive(plain.0.id()), "the process without the handler was signalled\n{}", exporter.stderr());
    assert!(alive(profiled.0.id()));
    assert!(exporter.stderr().contains("does not catch signal 12"), "{}", exporter.stderr());
    let (_, list) = request(exporter.port, "GET", "/api/v1/captures", "", "");
    let list: Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(list["captures"][0]["status"], "done", "{list}");
}

/// A one-route HTTP server on a loopback port: `answer(path)` is the raw response.
fn serve(answer: fn(&str) -> Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let text = String::from_utf8_lossy(&head);
            let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let _ = stream.write_all(&answer(&path));
        }
    });
    port
}

/// 64 MiB of empty pprof samples (field 2, length 0), gzipped to about 65 KB.
fn sample_bomb() -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&[0x12, 0x00].repeat((32 << 20) - 8)).unwrap();
    gz.finish().unwrap()
}

fn hostile_pprof(path: &str) -> Vec<u8> {
    static BOMB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    if path.contains("debug=1") {
        let body = b"SECRET-TOKEN=abcdef0123456789 \x1b[2J";
        let mut out = format!("HTTP/1.1 500 x\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        out.extend_from_slice(body);
        return out;
    }
    if path == "/debug/pprof/allocs" {
        // An empty heap profile, as Go serves one before its first GC.
        let types = vec![memleak_artifacts::model::INUSE_SPACE, memleak_artifacts::model::INUSE_OBJECTS];
        let empty = memleak_artifacts::encode::pprof::encode(&memleak_artifacts::Profile::new("heap", types), "go");
        let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", empty.len()).into_bytes();
        out.extend_from_slice(&empty);
        return out;
    }
    let bomb = BOMB.get_or_init(sample_bomb);
    let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", bomb.len()).into_bytes();
    out.extend_from_slice(bomb);
    out
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_hostile_pprof_endpoint_is_bounded_in_memory_paths_and_reasons() {
    let targets = [sleeper("hpprof"), sleeper("hpprof2"), sleeper("hpprof3")];
    let port = serve(hostile_pprof);
    let exporter = Exporter::start(&[
        "--capture.pprof.allow=127.0.0.*:*",
        "--capture.pprof.allow=10.0.0.*:6060",
        "--capture.max-concurrent=3",
    ]);
    let url = |path: &str| json!({ "pprof_url": format!("http://127.0.0.1:{port}{path}"), "capture_duration": "1s" });
    let group = json!({ "group": "hpprof" });
    let outcomes = post_all(
        &exporter,
        &[
            alert("h1", group.clone(), url("/debug/pprof/heap?gc=1")),
            alert("h2", json!({ "group": "hpprof2" }), url("/debug/pprof/heap?debug=1")),
            alert("h3", group.clone(), url("/debug/pprof/cmdline")),
            alert("h6", json!({ "group": "hpprof3" }), url("/debug/pprof/allocs")),
            alert("h4", group.clone(), json!({ "pprof_url": "http://10.0.0.1.evil.invalid:6060/debug/pprof/heap" })),
            alert(
                "h5",
                group.clone(),
                json!({ "pprof_url": format!("http://127.0.0.1.evil.invalid:{port}/debug/pprof/heap") }),
            ),
        ],
    );
    let kinds: Vec<&str> = outcomes.iter().map(|o| o["outcome"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["accepted", "accepted", "invalid", "accepted", "invalid", "invalid"], "{outcomes:?}");
    assert!(outcomes[2]["reason"].as_str().unwrap().contains("not a heap-profile path"), "{outcomes:?}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let list = loop {
        let (_, body) = request(exporter.port, "GET", "/api/v1/captures", "", "");
        let list: Value = serde_json::from_slice(&body).unwrap();
        let captures = list["captures"].as_array().unwrap().clone();
        if captures.len() == 3 && captures.iter().all(|c| c["status"] != "running") {
            break captures;
        }
        assert!(Instant::now() < deadline, "{list}\n{}", exporter.stderr());
        std::thread::sleep(Duration::from_millis(100));
    };
    let reason = |fp: &str| {
        let c = list.iter().find(|c| c["fingerprint"] == fp).unwrap();
        assert_eq!(c["status"], "failed", "{c}");
        c["reason"].as_str().unwrap().to_owned()
    };
    assert!(reason("h1").contains("bytes of memory"), "{}", reason("h1"));
    let error_page = reason("h2");
    assert!(error_page.contains("answered 500") && !error_page.contains("SECRET"), "{error_page}");
    // A Go pull without ?gc=1 that finds an empty heap succeeds, with a warning.
    let empty = list.iter().find(|c| c["fingerprint"] == "h6").unwrap();
    assert_eq!(empty["status"], "done", "{empty}");
    assert!(empty["summary"]["attributes"]["warning"].as_str().unwrap().contains("?gc=1"), "{empty}");
    // The bomb's decoded samples alone would take over 2 GiB; the decoder's stated bound is
    // under 300 MiB beside its input (docs: pprof_decode).
    let peak = peak_rss_kib(exporter.pid());
    eprintln!("exporter peak RSS after the sample bomb: {} MiB", peak / 1024);
    assert!(peak < 400 << 10, "peak RSS {peak} KiB");
    drop(targets);
}

#[test]
fn an_exporter_without_cap_kill_still_resolves_other_users_processes() {
    // As nobody, signal 0 to a root process answers EPERM: the process exists all the same.
    let target = sleeper("hrootsvc");
    let port = serve(hostile_pprof);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let spool = dir.path().join("spool");
    let Some(exporter) =
        Exporter::start_as_nobody(&["--capture.pprof.allow=127.0.0.1:*", "--capture.dir", spool.to_str().unwrap()])
    else {
        return;
    };
    let annotations =
        json!({ "pprof_url": format!("http://127.0.0.1:{port}/debug/pprof/allocs"), "capture_duration": "1s" });
    let labels = json!({ "group": "hrootsvc", "pid": target.0.id().to_string() });
    let outcomes = post_all(&exporter, &[alert("n1", labels, annotations)]);
    assert_eq!(outcomes[0]["outcome"], "accepted", "{outcomes:?}\n{}", exporter.stderr());
}
