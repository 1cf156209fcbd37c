//! The capture loop on real components: an alert reaches the exporter (its
//! webhook, or Alertmanager 0.25 delivering or being polled), the exporter
//! captures a real service's allocator profile (a Go program with
//! net/http/pprof leaking in a known function, a C program under gperftools'
//! heap profiler), and the served profile, flame graph and summary name the leak.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::captures::post_all;
use common::{Exporter, Guard, captures, free_port, libtcmalloc, request, require_tool};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The Go service's sampling rate (runtime.MemProfileRate in tests/helpers/leakysvc.go).
const GO_RATE: f64 = 2048.0;

/// Builds a helper once per test binary; `None` (a skip) when its compiler is missing outside CI.
fn built(name: &str, build: fn(&Path, &Path) -> Command, tool: (&str, &str)) -> Option<PathBuf> {
    static BUILT: OnceLock<std::sync::Mutex<std::collections::HashMap<String, PathBuf>>> = OnceLock::new();
    require_tool(tool.0, tool.1)?;
    let map = BUILT.get_or_init(Default::default);
    let mut map = map.lock().unwrap();
    if let Some(path) = map.get(name) {
        return Some(path.clone());
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capture-helpers");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers");
    let result = build(&source, &out).current_dir(&dir).output().unwrap();
    assert!(result.status.success(), "building {name}: {}", String::from_utf8_lossy(&result.stderr));
    map.insert(name.to_owned(), out.clone());
    Some(out)
}

fn go_service() -> Option<PathBuf> {
    built(
        "leakysvc",
        |source, out| {
            let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-cache");
            let mut c = Command::new("go");
            c.args(["build", "-o"]).arg(out).arg(source.join("leakysvc.go"));
            c.env("GOCACHE", &cache).env("GOPATH", cache.join("gopath")).env("HOME", &cache).env("GO111MODULE", "off");
            c
        },
        ("go", "golang-go"),
    )
}

/// A running leakysvc: its process and address.
struct Service {
    guard: Guard,
    address: String,
}

impl Service {
    fn start(binary: &Path) -> Service {
        // One P, whose start-up sampling distance the helper's warm-up uses up (see warmUp).
        let mut child =
            Command::new(binary).env("GOMAXPROCS", "1").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        Service { guard: Guard(child), address: line.trim().to_owned() }
    }

    fn pid(&self) -> u32 {
        self.guard.0.id()
    }

    fn heap_url(&self) -> String {
        format!("http://{}/debug/pprof/heap?gc=1", self.address)
    }

    /// Leaks `count` buffers of `size` bytes in main.leakRequestBuffer.
    fn leak(&self, count: u32, size: u32) {
        let port: u16 = self.address.rsplit(':').next().unwrap().parse().unwrap();
        let (status, _) = request(port, "GET", &format!("/leak?count={count}&size={size}"), "", "");
        assert_eq!(status, 200);
    }
}

/// An alert asking for an allocator profile.
fn alert(fingerprint: &str, labels: Value, annotations: Value) -> Value {
    captures::alert("allocator-profile", fingerprint, labels, annotations)
}

fn api(exporter: &Exporter, path: &str) -> (u16, Vec<u8>) {
    request(exporter.port, "GET", path, "", "")
}

fn captures(exporter: &Exporter) -> Vec<Value> {
    let (status, body) = api(exporter, "/api/v1/captures");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice::<Value>(&body).unwrap()["captures"].as_array().unwrap().clone()
}

fn capture(exporter: &Exporter, id: &str) -> Value {
    captures(exporter).into_iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("capture {id} is not listed"))
}

/// Waits until `done` holds for the capture `id` (bounded: a hang fails the test).
fn wait_for(exporter: &Exporter, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    common::captures::poll(exporter, id, what, || capture(exporter, id), done)
}

fn finished(c: &Value) -> bool {
    c["status"] != "running"
}

fn window_open(c: &Value) -> bool {
    c["phase"] == "window"
}

/// The growth bytes of `function` in a served pprof profile, read back by our decoder.
fn growth_of(profile: &[u8], function: &str) -> i64 {
    let decoded = memleak_artifacts::pprof_decode::decode(profile).unwrap().profile;
    let top = memleak_artifacts::sites::top(&decoded, 0, 5);
    assert!(top.first().is_some_and(|t| t.frame.function == function), "the top growth sites: {top:?}");
    top[0].values[0]
}

#[test]
fn a_webhook_alert_ends_in_a_growth_profile_that_names_the_leak() {
    let Some(binary) = go_service() else { return };
    let service = Service::start(&binary);
    let exporter = Exporter::start(&["--capture.pprof.allow", "127.0.0.1:*"]);
    let good = alert(
        "a1",
        json!({ "group": "leakysvc" }),
        json!({ "pprof_url": service.heap_url(), "capture_duration": "3s" }),
    );
    // One notification: the good alert, a URL outside the allowlist, an unknown kind, no target.
    let outside =
        alert("a2", json!({ "group": "leakysvc" }), json!({ "pprof_url": "http://127.0.0.2:6060/debug/pprof/heap" }));
    let mut unknown = alert("a3", json!({ "group": "leakysvc" }), json!({}));
    unknown["labels"]["capture"] = json!("shell");
    let no_target = alert("a4", json!({}), json!({}));
    let outcomes = post_all(&exporter, &[good, outside, unknown, no_target]);
    let kinds: Vec<&str> = outcomes.iter().map(|o| o["outcome"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["accepted", "invalid", "invalid", "invalid"], "{outcomes:?}");
    assert!(outcomes[1]["reason"].as_str().unwrap().contains("127.0.0.2:6060 is not allowed by --capture.pprof.allow"));
    assert!(outcomes[2]["reason"].as_str().unwrap().contains("\"shell\" is not built"));
    assert!(outcomes[3]["reason"].as_str().unwrap().contains("no target label"));

    // Listed as running as soon as the webhook has answered (docs/benchmarks.md measures how soon).
    let id = outcomes[0]["capture"].as_str().unwrap().to_owned();
    assert_eq!(capture(&exporter, &id)["status"], "running");
    wait_for(&exporter, &id, "in its window", window_open);
    // The truth: 2000 buffers of 1024 bytes retained by main.leakRequestBuffer during the window.
    let (count, size) = (2000.0, 1024.0);
    service.leak(count as u32, size as u32);
    let done = wait_for(&exporter, &id, "finished", finished);
    assert_eq!(done["status"], "done", "{done}");
    // The group is every process named leakysvc (other tests run theirs at the same time).
    assert!(done["pids"].as_array().unwrap().contains(&json!(service.pid())), "{done}");
    assert!(done["summary"]["attributes"]["sampling"].as_str().unwrap().contains("every 2048 bytes"));

    let (status, profile) = api(&exporter, &format!("/api/v1/captures/{id}/profile.pb.gz"));
    assert_eq!(status, 200);
    // Go samples an allocation of s bytes with probability p = 1 - exp(-s/R) (R = MemProfileRate)
    // and scales it by 1/p: over N allocations the estimate's relative standard error is
    // sqrt((1-p)/(N p)) = 2.8 % here. Five of them (14 %) fail a correct capture about once in
    // two million runs; the transient allocations of the HTTP handlers are freed by the gc=1 pull.
    let p = 1.0 - (-size / GO_RATE).exp();
    let tolerance = 5.0 * ((1.0 - p) / (count * p)).sqrt();
    let truth = count * size;
    let measured = growth_of(&profile, "main.leakRequestBuffer") as f64;
    eprintln!("growth of main.leakRequestBuffer: {measured} bytes, truth {truth} ± {:.1} %", tolerance * 100.0);
    assert!(
        (measured - truth).abs() <= tolerance * truth,
        "growth {measured} vs truth {truth} ± {:.1} %",
        tolerance * 100.0
    );

    // go tool pprof reads the served profile and opens on bytes (the growth), the leak on top.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &profile).unwrap();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-cache");
    let out = Command::new("go").args(["tool", "pprof", "-top"]).arg(file.path()).env("HOME", &cache).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Type: growth_space"), "{text}");
    let first = text.lines().skip_while(|l| !l.trim_start().starts_with("flat")).nth(1).unwrap();
    let flat = first.split_whitespace().next().unwrap();
    assert!(first.ends_with("main.leakRequestBuffer") && flat.ends_with('B'), "in bytes (B, kB, MB): {text}");

    let (status, svg) = api(&exporter, &format!("/api/v1/captures/{id}/flamegraph.svg"));
    let svg = String::from_utf8(svg).unwrap();
    assert!(status == 200 && svg.contains("<svg") && svg.contains("main.leakRequestBuffer"));
    let (_, folded) = api(&exporter, &format!("/api/v1/captures/{id}/folded"));
    assert!(String::from_utf8(folded).unwrap().lines().any(|l| l.contains(";main.leakRequestBuffer ")));
    let (status, end) = api(&exporter, &format!("/api/v1/captures/{id}/end.pb.gz"));
    assert!(status == 200 && !end.is_empty());
    let (_, mine) = api(&exporter, "/api/v1/captures?fingerprint=a1");
    let mine: Value = serde_json::from_slice(&mine).unwrap();
    assert_eq!(mine["captures"].as_array().unwrap().len(), 1, "{mine}");
    let (_, none) = api(&exporter, "/api/v1/captures?fingerprint=ffff");
    assert!(serde_json::from_slice::<Value>(&none).unwrap()["captures"].as_array().unwrap().is_empty());
    let (_, one) = api(&exporter, &format!("/api/v1/captures/{id}"));
    let one: Value = serde_json::from_slice(&one).unwrap();
    assert_eq!(one["summary"]["top_sites"][0]["function"], "main.leakRequestBuffer");
    // The log record of the capture: kind, target, fingerprint, the top site with its bytes.
    let record = &one["summary"]["records"][0];
    assert_eq!(record["kind"], "capture.allocator-profile");
    assert_eq!(record["attributes"]["alert.fingerprint"], "a1");
    assert_eq!(record["attributes"]["site.0.function"], "main.leakRequestBuffer");
    for bad in [
        "/api/v1/captures/..%2f..%2fetc/passwd",
        &format!("/api/v1/captures/{id}/capture.json"),
        "/api/v1/captures/1/folded",
    ] {
        assert_eq!(api(&exporter, bad).0, 404, "{bad}");
    }
    let metrics = exporter.metrics();
    assert!(
        metrics.contains("memleak_exporter_captures_total{kind=\"allocator-profile\",outcome=\"done\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("memleak_exporter_capture_rejections_total{kind=\"allocator-profile\",reason=\"invalid\"} 1\n")
    );
    assert!(
        metrics.contains("memleak_exporter_capture_rejections_total{kind=\"unknown\",reason=\"unknown_kind\"} 1\n")
    );
    assert!(metrics.contains("memleak_exporter_capture_duration_seconds_count{kind=\"allocator-profile\"} 1\n"));
    let log = exporter.stderr();
    assert!(log.contains("msg=\"capture finished\"") && log.contains("fingerprint=a1"), "{log}");
}

#[test]
fn limits_hold_concurrency_duplicates_cooldown_duration_rate_and_spool_count() {
    let Some(binary) = go_service() else { return };
    let service = Service::start(&binary);
    let exporter = Exporter::start(&[
        "--capture.pprof.allow=127.0.0.1:*",
        "--capture.max-concurrent=1",
        "--capture.max-duration=2s",
        "--capture.cooldown=1h",
        "--capture.max-per-hour=2",
        "--capture.keep=1",
    ]);
    let url = json!({ "pprof_url": service.heap_url(), "capture_duration": "1h" });
    let pid = service.pid().to_string();
    let outcome = |fp: &str, labels: Value| post_all(&exporter, &[alert(fp, labels, url.clone())])[0].clone();
    let first = outcome("b1", json!({ "group": "leakysvc" }));
    assert_eq!(first["outcome"], "accepted", "{first}");
    let a = first["capture"].as_str().unwrap().to_owned();
    assert_eq!(capture(&exporter, &a)["duration_seconds"], 2.0, "capture_duration is cut to --capture.max-duration");
    assert_eq!(outcome("b1", json!({ "group": "leakysvc" }))["outcome"], "duplicate");
    let busy = outcome("b2", json!({ "group": "leakysvc", "pid": pid }));
    assert!(
        busy["outcome"] == "refused" && busy["reason"].as_str().unwrap().contains("--capture.max-concurrent"),
        "{busy}"
    );
    wait_for(&exporter, &a, "finished", finished);
    assert_eq!(outcome("b1", json!({ "group": "leakysvc" }))["outcome"], "duplicate", "finished within the cooldown");
    let cooling = outcome("b3", json!({ "group": "leakysvc" }));
    assert!(cooling["reason"].as_str().unwrap().contains("--capture.cooldown"), "{cooling}");
    let second = outcome("b2", json!({ "group": "leakysvc", "pid": pid }));
    assert_eq!(second["outcome"], "accepted", "{second}");
    let b = second["capture"].as_str().unwrap().to_owned();
    wait_for(&exporter, &b, "finished", finished);
    // The cooldown holds for the target however the alert spells it (the pid is canonical).
    let respelled = outcome("b4", json!({ "group": "leakysvc", "pid": format!("00{pid}") }));
    assert!(respelled["reason"].as_str().unwrap().contains("--capture.cooldown"), "{respelled}");
    // The same process through its cgroup is another target: the hourly rate refuses it.
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let cgroup = memleak_signals::process::select::cgroup_of(&cgroup).unwrap().to_owned();
    let rate = outcome("b7", json!({ "cgroup": cgroup, "pid": pid }));
    assert!(rate["reason"].as_str().unwrap().contains("--capture.max-per-hour"), "{rate}");
    // --capture.keep=1: the older capture was evicted from the spool.
    let ids: Vec<Value> = captures(&exporter).iter().map(|c| c["id"].clone()).collect();
    assert_eq!(ids, [json!(b)]);
    assert_eq!(api(&exporter, &format!("/api/v1/captures/{a}/profile.pb.gz")).0, 404);
    let metrics = exporter.metrics();
    for reason in ["duplicate", "concurrency", "cooldown", "rate"] {
        let series =
            format!("memleak_exporter_capture_rejections_total{{kind=\"allocator-profile\",reason=\"{reason}\"}}");
        assert!(metrics.contains(&series), "{series}\n{metrics}");
    }
    // Not this host, no such target.
    let elsewhere = outcome("b5", json!({ "group": "leakysvc", "instance": "elsewhere:9487" }));
    assert_eq!(elsewhere["outcome"], "not-this-host", "{elsewhere}");
    assert_eq!(outcome("b6", json!({ "group": "no-such-process-here" }))["outcome"], "no-such-target");
}

#[test]
fn a_process_in_a_running_capture_waits_for_it_whatever_the_target_is_called() {
    let Some(binary) = go_service() else { return };
    let service = Service::start(&binary);
    // Room for two at once and no cooldown: only the shared process holds the second back.
    let exporter =
        Exporter::start(&["--capture.pprof.allow=127.0.0.1:*", "--capture.max-concurrent=2", "--capture.cooldown=0s"]);
    let url = json!({ "pprof_url": service.heap_url(), "capture_duration": "2s" });
    let pid = service.pid().to_string();
    let outcome = |fp: &str, labels: Value| post_all(&exporter, &[alert(fp, labels, url.clone())])[0].clone();
    let first = outcome("w1", json!({ "group": "leakysvc" }));
    assert_eq!(first["outcome"], "accepted", "{first}");
    let a = first["capture"].as_str().unwrap().to_owned();
    // Another alert, another spelling (the group narrowed to its pid): the same process.
    let waits = outcome("w2", json!({ "group": "leakysvc", "pid": pid }));
    assert_eq!(waits["outcome"], "refused", "{waits}");
    let reason = waits["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("process {pid}")) && reason.contains(&a), "{waits}");
    assert!(
        exporter
            .metrics()
            .contains("memleak_exporter_capture_rejections_total{kind=\"allocator-profile\",reason=\"busy\"} 1"),
        "{}",
        exporter.metrics()
    );
    wait_for(&exporter, &a, "finished", finished);
    let second = outcome("w2", json!({ "group": "leakysvc", "pid": pid }));
    assert_eq!(second["outcome"], "accepted", "once the first ended: {second}");
}

#[test]
fn a_target_that_exits_mid_capture_gives_a_partial_result() {
    let Some(binary) = go_service() else { return };
    let service = Service::start(&binary);
    let exporter = Exporter::start(&["--capture.pprof.allow", "127.0.0.1:*"]);
    let labels = json!({ "group": "leakysvc", "pid": service.pid().to_string() });
    let outcomes = post_all(
        &exporter,
        &[alert("c1", labels, json!({ "pprof_url": service.heap_url(), "capture_duration": "10m" }))],
    );
    let id = outcomes[0]["capture"].as_str().unwrap().to_owned();
    wait_for(&exporter, &id, "in its window", window_open);
    drop(service);
    let done = wait_for(&exporter, &id, "finished", finished);
    assert_eq!(done["status"], "partial", "{done}");
    assert!(done["reason"].as_str().unwrap().contains("exited"), "{done}");
    assert_eq!(api(&exporter, &format!("/api/v1/captures/{id}/profile.pb.gz")).0, 200, "the first profile is kept");
}

#[test]
fn the_captures_api_needs_the_token_when_not_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let exporter = Exporter::start_on("0.0.0.0:0", &["--webhook.token-file", token.to_str().unwrap()]);
    assert_eq!(request(exporter.port, "GET", "/api/v1/captures", "", "").0, 401);
    assert_eq!(request(exporter.port, "GET", "/api/v1/captures", "Authorization: Bearer nope\r\n", "").0, 401);
    assert_eq!(request(exporter.port, "GET", "/api/v1/captures", "Authorization: Bearer t0ken\r\n", "").0, 200);
    assert_eq!(request(exporter.port, "GET", "/api/v1/captures", "Authorization: bearer t0ken\r\n", "").0, 200);
    // The token is checked before the body is read: a caller without one that announces a
    // body and never sends it is answered at once, not read from.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", exporter.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "POST /api/v1/alerts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    .unwrap();
    let mut answer = [0u8; 12];
    std::io::Read::read_exact(&mut stream, &mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 401");
    let open = Exporter::start_on("0.0.0.0:0", &[]);
    assert_eq!(
        request(open.port, "GET", "/api/v1/captures", "", "").0,
        403,
        "beyond loopback without a token: refused"
    );
    let local = Exporter::start(&[]);
    assert_eq!(request(local.port, "GET", "/api/v1/captures", "", "").0, 200, "loopback only: no token");
    let (_, _, landing) = common::http_get(local.port, "/", None);
    assert!(String::from_utf8_lossy(&landing).contains("href=\"/api/v1/captures\""));
}

fn tcleak() -> Option<PathBuf> {
    built(
        "tcleak",
        |source, out| {
            let mut c = Command::new("cc");
            c.args(["-g", "-O0", "-fno-omit-frame-pointer", "-o"]).arg(out).arg(source.join("tcleak.c"));
            c
        },
        ("cc", "gcc"),
    )
}

#[test]
fn a_gperftools_dump_is_signalled_picked_up_and_diffed() {
    let (Some(binary), Some(tcmalloc)) = (tcleak(), libtcmalloc()) else { return };
    let dumps = tempfile::tempdir().unwrap();
    let prefix = dumps.path().join("prof");
    let mut child = Command::new(&binary)
        .env("LD_PRELOAD", &tcmalloc)
        .env("HEAPPROFILE", &prefix)
        .env("HEAPPROFILESIGNAL", "12")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let guard = Guard(child);
    let mapping = format!("group=tcleak,heap_profile={},signal=12", prefix.display());
    let exporter = Exporter::start(&["--capture.target", &mapping]);
    let outcomes =
        post_all(&exporter, &[alert("d1", json!({ "group": "tcleak" }), json!({ "capture_duration": "2s" }))]);
    let id = outcomes[0]["capture"].as_str().unwrap_or_else(|| panic!("{outcomes:?}")).to_owned();
    wait_for(&exporter, &id, "in its window", window_open);
    // The truth: 500 blocks of 4096 bytes retained by leak_block; the heap profiler records every one.
    writeln!(stdin, "500").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "leaked 500\n");
    let done = wait_for(&exporter, &id, "finished", finished);
    assert_eq!(done["status"], "done", "{done}\n{}", exporter.stderr());
    let (_, profile) = api(&exporter, &format!("/api/v1/captures/{id}/profile.pb.gz"));
    assert_eq!(growth_of(&profile, "leak_block"), 500 * 4096);
    drop(guard);
}

fn alertmanager_binary() -> Option<PathBuf> {
    require_tool("prometheus-alertmanager", "prometheus-alertmanager")
}

/// Alertmanager 0.25 on a free port with `routes` (YAML under `route:`); killed on drop.
struct Alertmanager {
    _guard: Guard,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start(binary: &Path, receivers: &str) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, receivers).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("alertmanager.log")).unwrap())
            .spawn()
            .unwrap();
        let am = Alertmanager { _guard: Guard(child), port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while common::http_get_status(port, "/-/ready") != Some(200) {
            assert!(Instant::now() < deadline, "alertmanager not ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }

    /// Posts (or re-posts) an alert; `resolved` sets its end in the past.
    fn post_all(&self, labels: &Value, annotations: &Value, resolved: bool) {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let mut alert = json!({ "labels": labels, "annotations": annotations });
        if resolved {
            alert["endsAt"] = json!(now);
        }
        let (status, body) = request(self.port, "POST", "/api/v2/alerts", "", &json!([alert]).to_string());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
}

const ROUTE_NOWHERE: &str = "route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n";

#[test]
fn alertmanager_delivers_an_alert_through_the_webhook_and_the_capture_is_served() {
    let (Some(binary), Some(am)) = (go_service(), alertmanager_binary()) else { return };
    let service = Service::start(&binary);
    let exporter = Exporter::start(&["--capture.pprof.allow", "127.0.0.1:*"]);
    let config = format!(
        "route:\n  receiver: memleak\n  group_by: [alertname, instance, group]\n  group_wait: 100ms\n  group_interval: 1s\nreceivers:\n  - name: memleak\n    webhook_configs:\n      - url: http://127.0.0.1:{}/api/v1/alerts\n        send_resolved: true\n",
        exporter.port
    );
    let alertmanager = Alertmanager::start(&am, &config);
    let labels = json!({ "alertname": "ProcessMemoryLeak", "capture": "allocator-profile", "group": "leakysvc", "instance": format!("127.0.0.1:{}", exporter.port) });
    alertmanager.post_all(&labels, &json!({ "pprof_url": service.heap_url(), "capture_duration": "2s" }), false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        if let Some(c) = captures(&exporter).into_iter().next() {
            break c;
        }
        assert!(Instant::now() < deadline, "Alertmanager never delivered the alert\n{}", exporter.stderr());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(listed["via"], "webhook");
    let id = listed["id"].as_str().unwrap().to_owned();
    wait_for(&exporter, &id, "in its window", window_open);
    service.leak(1000, 4096);
    let done = wait_for(&exporter, &id, "finished", finished);
    assert_eq!(done["status"], "done", "{done}");
    let (_, profile) = api(&exporter, &format!("/api/v1/captures/{id}/profile.pb.gz"));
    growth_of(&profile, "main.leakRequestBuffer");
}

#[test]
fn two_exporters_poll_alertmanager_only_the_named_one_captures_and_resolving_cancels() {
    let (Some(binary), Some(am)) = (go_service(), alertmanager_binary()) else { return };
    let service = Service::start(&binary);
    let alertmanager = Alertmanager::start(&am, ROUTE_NOWHERE);
    // A second, unreachable peer: one answering peer is enough.
    let peers = [
        format!("--alertmanager.url=http://127.0.0.1:{}", alertmanager.port),
        format!("--alertmanager.url=http://127.0.0.1:{}", free_port()),
    ];
    let start = |name: &str| {
        Exporter::start(&[
            &peers[0],
            &peers[1],
            "--alertmanager.interval=200ms",
            "--capture.pprof.allow=127.0.0.1:*",
            &format!("--capture.instance={name}"),
        ])
    };
    let (a, b) = (start("node-a:9487"), start("node-b:9487"));
    let labels = json!({ "alertname": "ProcessMemoryLeak", "capture": "allocator-profile", "group": "leakysvc", "instance": "node-a:9487" });
    alertmanager.post_all(&labels, &json!({ "pprof_url": service.heap_url(), "capture_duration": "10m" }), false);
    // A loopback instance names every host alike: no poller takes it as its own.
    let loopback = json!({ "alertname": "LoopbackLeak", "capture": "allocator-profile", "group": "leakysvc", "instance": format!("127.0.0.1:{}", a.port) });
    alertmanager.post_all(&loopback, &json!({ "pprof_url": service.heap_url(), "capture_duration": "10m" }), false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        if let Some(c) = captures(&a).into_iter().next() {
            break c;
        }
        assert!(Instant::now() < deadline, "exporter a never polled the alert\n{}", a.stderr());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(listed["via"], "alertmanager");
    let id = listed["id"].as_str().unwrap().to_owned();
    wait_for(&a, &id, "in its window", window_open);
    // b polled the same alert (it logs its decision) and started nothing.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !b.stderr().contains("not-this-host") && !b.stderr().contains("is not this exporter") {
        assert!(Instant::now() < deadline, "exporter b never saw the alert\n{}", b.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(captures(&b).is_empty());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !a.stderr().contains("is a loopback name") {
        assert!(Instant::now() < deadline, "exporter a took the loopback alert\n{}", a.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(captures(&a).len(), 1, "only node-a's alert is captured");
    // Both alerts (node-a's, the loopback one) are refused by b, each once.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !b
        .metrics()
        .contains("memleak_exporter_capture_rejections_total{kind=\"allocator-profile\",reason=\"not_this_host\"} 2\n")
    {
        assert!(Instant::now() < deadline, "{}", b.metrics());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Resolving the alert cancels the running capture; the first profile is kept.
    alertmanager.post_all(&labels, &json!({ "pprof_url": service.heap_url(), "capture_duration": "10m" }), true);
    let done = wait_for(&a, &id, "finished", finished);
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(done["reason"].as_str().unwrap().contains("no longer active"), "{done}");
}
