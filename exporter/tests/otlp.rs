//! OTLP push end to end: the real binary on a fixture root pushes to real
//! receivers (rotel for metrics and logs, the official Python protos for
//! profiles); what they decode is checked against a scrape of the same
//! exporter and against the fixtures' ground truth.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "otlp/page_faults.rs"]
mod page_faults;
#[path = "otlp/receivers.rs"]
mod receivers;
#[path = "otlp/tls.rs"]
mod tls;

use common::{Exporter, fixture_root, free_port};
use memleak_exporter::otlp::semconv;
use receivers::{Point, Receiver, rotel_points, venv};
use std::time::{Duration, Instant};

/// One sample of a scrape: name, labels, value.
type ScrapedSample = (String, Vec<(String, String)>, f64);

/// Every sample of a scrape.
fn scrape_samples(text: &str) -> Vec<ScrapedSample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.split_once("=\""))
                .map(|(k, v)| (k.to_owned(), v.trim_end_matches('"').to_owned()))
                .collect();
            Some((name.to_owned(), labels, value.parse().ok()?))
        })
        .collect()
}

/// Series whose value changes from one collection to the next, or that count the push itself.
fn varies(name: &str) -> bool {
    name.starts_with("memleak_exporter_collector_duration")
        || name.starts_with("memleak_exporter_otlp_")
        || name == "memleak_process_detail_age_seconds"
        // The exporter's own CPU, memory and descriptors move between the scrape and the push.
        || ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds"]
            .contains(&name)
}

fn exporter_pushing_to(endpoint: &str, protocol: &str) -> Exporter {
    let root = fixture_root("root-v2");
    Exporter::start(&[
        "--path.rootfs",
        root.to_str().unwrap(),
        "--otlp.endpoint",
        endpoint,
        "--otlp.protocol",
        protocol,
        "--otlp.interval",
        "1s",
    ])
}

fn spec_mapping(name: &str) -> semconv::Mapping {
    let spec = memleak_exporter::collectors::metric_families().find(|(_, s)| s.name == name).map(|(_, s)| s);
    semconv::mapping(spec.unwrap_or_else(|| panic!("{name} is not a known family")))
}

/// Every series of a scrape was pushed, under its OTLP name, with its labels as attributes and the same value.
fn check_metrics_push(protocol: &str) {
    let Some(venv) = venv() else { return };
    let rotel = Receiver::rotel(&venv, free_port(), free_port());
    let port = if protocol == "grpc" { rotel.grpc_port } else { rotel.http_port };
    let exporter = exporter_pushing_to(&format!("http://127.0.0.1:{port}"), protocol);
    let scrape = exporter.metrics();
    let text = rotel.wait_for(Duration::from_secs(20), "system.memory.usage", |t| {
        t.matches("-> Name: system.memory.usage").count() >= 2
    });
    let (points, resource) = rotel_points(&text);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    for (key, value) in [
        ("service.name", "memleak-exporter".to_owned()),
        ("host.name", host.clone()),
        ("service.instance.id", format!("{host}:{}", exporter.port)),
    ] {
        assert!(resource.contains(&(key.to_owned(), value.clone())), "resource lacks {key}={value}: {resource:?}");
    }
    let mut checked = 0;
    for (name, labels, value) in scrape_samples(&scrape) {
        if varies(&name) {
            continue;
        }
        let mapping = spec_mapping(&name);
        let matches = |p: &&Point| {
            p.metric == mapping.name
                && labels.iter().all(|l| p.attributes.contains(l))
                && mapping.attributes.iter().all(|(k, v)| p.attributes.contains(&((*k).to_owned(), (*v).to_owned())))
        };
        let point = points.iter().rev().find(matches);
        let point = point.unwrap_or_else(|| panic!("{name}{labels:?} was not pushed as {}", mapping.name));
        assert_eq!(point.value, value, "{name}{labels:?}: pushed {} but scraped {value}", point.value);
        assert_eq!(point.unit, mapping.unit, "{name}");
        checked += 1;
    }
    assert!(checked > 100, "only {checked} series checked");
    // The semantic conventions, against the fixture's /proc/meminfo (MemFree: 24513780 kB).
    let free = points.iter().find(|p| p.metric == "system.memory.usage").unwrap();
    assert_eq!((free.value, free.unit.as_str(), free.monotonic), (24_513_780.0 * 1024.0, "By", Some(false)));
    assert!(free.attributes.contains(&("system.memory.state".into(), "free".into())));
    let faults = points.iter().find(|p| p.metric == "system.paging.faults").unwrap();
    assert_eq!(faults.monotonic, Some(true));
    assert!(faults.start > 0 && faults.start <= faults.time, "a counter has a real start time: {faults:?}");
    let container = points
        .iter()
        .find(|p| p.metric == "memleak_cgroup_usage_bytes" && p.attributes.iter().any(|(k, _)| k == "container.id"));
    let container = container.expect("cgroup series carry container.id");
    assert!(
        container.attributes.iter().any(|(k, v)| k == "container.runtime.name" && v == "containerd"),
        "{container:?}"
    );
    assert!(container.attributes.iter().any(|(k, _)| k == "k8s.pod.uid"), "{container:?}");
    let sent = wait_for_counter(&exporter, "memleak_exporter_otlp_sent_total{signal=\"metrics\"}", |v| v > 0.0);
    assert!(sent >= checked as f64, "sent_total counts data points: {sent} < {checked}");
}

#[test]
fn metrics_pushed_over_grpc_are_what_a_scrape_shows() {
    check_metrics_push("grpc");
}

#[test]
fn metrics_pushed_over_http_are_what_a_scrape_shows() {
    check_metrics_push("http/protobuf");
}

/// The value of a series of the exporter's /metrics once `ok` holds for it (20 s at most).
fn wait_for_counter(exporter: &Exporter, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = exporter.metrics();
        let value = text
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse::<f64>().ok());
        if let Some(v) = value.filter(|v| ok(*v)) {
            return v;
        }
        assert!(Instant::now() < deadline, "{series} never reached the expected value:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_absent_or_dying_receiver_costs_drops_not_scrapes_and_delivery_resumes() {
    let Some(venv) = venv() else { return };
    let (grpc, http) = (free_port(), free_port());
    // Nobody listens yet: exports fail, are retried, and the queue (2 batches) overflows.
    let root = fixture_root("root-v2");
    let endpoint = format!("http://127.0.0.1:{grpc}");
    let exporter = Exporter::start(&[
        "--path.rootfs",
        root.to_str().unwrap(),
        "--otlp.endpoint",
        &endpoint,
        "--otlp.interval",
        "200ms",
        "--otlp.queue-size",
        "2",
        "--otlp.timeout",
        "1s",
    ]);
    wait_for_counter(&exporter, "memleak_exporter_otlp_dropped_total{signal=\"metrics\",reason=\"queue_full\"}", |v| {
        v > 0.0
    });
    let started = Instant::now();
    for _ in 0..5 {
        exporter.metrics();
    }
    let while_down = started.elapsed() / 5;
    // The exports wait up to --otlp.timeout (1 s) per connection attempt; a scrape never does.
    assert!(while_down < Duration::from_secs(1), "scrapes took {while_down:?} each while the receiver was down");
    let log = exporter.stderr();
    assert_eq!(log.matches("cannot reach the OTLP receiver").count(), 1, "one line while it is down:\n{log}");
    // The receiver comes up: delivery resumes, and says so.
    let rotel = Receiver::rotel(&venv, grpc, http);
    rotel.wait_for(Duration::from_secs(60), "a push after the receiver started", |t| t.contains("system.memory.usage"));
    let sent = wait_for_counter(&exporter, "memleak_exporter_otlp_sent_total{signal=\"metrics\"}", |v| v > 0.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !exporter.stderr().contains("OTLP delivery resumed") {
        assert!(Instant::now() < deadline, "no 'resumed' line:\n{}", exporter.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Killed mid-run: scrapes still answer, drops grow, and a restarted receiver gets pushes again.
    rotel.kill();
    let dropped = |e: &Exporter| {
        let text = e.metrics();
        scrape_samples(&text)
            .into_iter()
            .filter(|(n, l, _)| {
                n == "memleak_exporter_otlp_dropped_total" && l.contains(&("signal".into(), "metrics".into()))
            })
            .map(|(_, _, v)| v)
            .sum::<f64>()
    };
    let before = dropped(&exporter);
    let deadline = Instant::now() + Duration::from_secs(30);
    while dropped(&exporter) <= before {
        assert!(Instant::now() < deadline, "no drops counted while the receiver is dead");
        std::thread::sleep(Duration::from_millis(200));
    }
    let rotel = Receiver::rotel(&venv, grpc, http);
    rotel.wait_for(Duration::from_secs(60), "a push after the restart", |t| t.contains("system.memory.usage"));
    wait_for_counter(&exporter, "memleak_exporter_otlp_sent_total{signal=\"metrics\"}", |v| v > sent);
    // A receiver that flaps is warned about once a period, not once per outage.
    let log = exporter.stderr();
    assert_eq!(
        log.matches("cannot reach the OTLP receiver").count(),
        1,
        "the second outage came within 5 minutes:\n{log}"
    );
    eprintln!("scrape while the receiver was down: {while_down:?}");
}

/// The heaptrack fixture of program A (ground truth in the fixtures README: 307,200 bytes leaked by
/// leak_request_buffer, 102,400 by leaky_cache_insert, 96 by init_config), ingested from a watched
/// folder, reaches the official Python protos as OTLP profiles whose stacks resolve to those sites.
fn check_profiles_push(protocol: &str) {
    let Some(venv) = venv() else { return };
    let receiver = Receiver::python(&venv, free_port(), free_port());
    let port = if protocol == "grpc" { receiver.grpc_port } else { receiver.http_port };
    let watched = tempfile::tempdir().unwrap();
    let fixture = common::repo("artifacts/tests/fixtures/heaptrack/a.zst");
    std::fs::copy(&fixture, watched.path().join("heaptrack.a.zst")).unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let _exporter = Exporter::start_ingesting(
        watched.path(),
        "500ms",
        &["--otlp.endpoint", &endpoint, "--otlp.protocol", protocol],
    );
    let text = receiver.wait_for(Duration::from_secs(30), "a profiles export", |t| t.contains("resourceProfiles"));
    check_heaptrack_profiles(&text);
}

/// The first export in the receiver's output holds heaptrack's profiles of program A: the
/// dictionary's invariants, memory sample types, and the fixture's leak sites with their bytes.
fn check_heaptrack_profiles(text: &str) {
    let line = text.lines().find(|l| l.starts_with('{')).unwrap();
    let export: serde_json::Value = serde_json::from_str(line).unwrap();
    let d = &export["dictionary"];
    let strings: Vec<&str> = d["stringTable"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(strings[0], "", "string_table[0] is the empty string");
    for table in ["mappingTable", "locationTable", "functionTable", "linkTable", "attributeTable", "stackTable"] {
        assert_eq!(d[table][0], serde_json::json!({}), "{table}[0] is the zero value");
    }
    let int =
        |v: &serde_json::Value| -> i64 { v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(0) };
    let string = |v: &serde_json::Value| strings[int(v) as usize];
    let function_of = |location: i64| {
        let line = &d["locationTable"][location as usize]["lines"][0];
        string(&d["functionTable"][int(&line["functionIndex"]) as usize]["nameStrindex"])
    };
    let profiles = export["resourceProfiles"][0]["scopeProfiles"][0]["profiles"].as_array().unwrap();
    let leaked = profiles
        .iter()
        .find(|p| string(&p["sampleType"]["typeStrindex"]) == "leaked_space")
        .unwrap_or_else(|| panic!("no leaked_space profile: {line}"));
    assert_eq!(string(&leaked["sampleType"]["unitStrindex"]), "bytes");
    assert!(int(&leaked["period"]) > 0 && leaked["periodType"].is_object(), "a period, so Pyroscope reads memory");
    let mut by_site = std::collections::BTreeMap::<&str, i64>::new();
    for sample in leaked["samples"].as_array().unwrap() {
        let stack = &d["stackTable"][int(&sample["stackIndex"]) as usize]["locationIndices"];
        let functions: Vec<&str> = stack.as_array().unwrap().iter().map(|l| function_of(int(l))).collect();
        for site in ["leak_request_buffer", "leaky_cache_insert", "init_config"] {
            if functions.contains(&site) {
                *by_site.entry(site).or_default() += int(&sample["values"][0]);
            }
        }
    }
    assert_eq!(by_site.get("leak_request_buffer"), Some(&307_200), "{by_site:?}");
    assert_eq!(by_site.get("leaky_cache_insert"), Some(&102_400), "{by_site:?}");
    assert_eq!(by_site.get("init_config"), Some(&96), "{by_site:?}");
    let resource = export["resourceProfiles"][0]["resource"]["attributes"].to_string();
    assert!(resource.contains("service.name") && resource.contains("host.name"), "{resource}");
}

#[test]
fn ingested_profiles_reach_a_receiver_on_the_official_protos_over_grpc() {
    check_profiles_push("grpc");
}

#[test]
fn ingested_profiles_reach_a_receiver_on_the_official_protos_over_http() {
    check_profiles_push("http/protobuf");
}

/// The memcheck report of program A (fixtures README: leak_request_buffer loses 307,200 bytes in
/// 200 blocks, definitely), ingested from a watched folder: rotel receives its records as logs,
/// with severity, body, kind, bytes and the allocation stack as attributes.
fn check_logs_push(protocol: &str) {
    let Some(venv) = venv() else { return };
    let rotel = Receiver::rotel(&venv, free_port(), free_port());
    let port = if protocol == "grpc" { rotel.grpc_port } else { rotel.http_port };
    let watched = tempfile::tempdir().unwrap();
    std::fs::copy(common::repo("artifacts/tests/fixtures/memcheck/a.xml"), watched.path().join("memcheck.xml"))
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let exporter = Exporter::start_ingesting(
        watched.path(),
        "500ms",
        &["--otlp.endpoint", &endpoint, "--otlp.protocol", protocol],
    );
    let text = rotel.wait_for(Duration::from_secs(30), "the leak records", |t| t.contains("leak_request_buffer"));
    let records: Vec<&str> = text.split("LogRecord #").skip(1).collect();
    let record = records
        .iter()
        .find(|r| r.contains("leak_request_buffer") && r.contains("memleak.bytes: Int(307200)"))
        .unwrap_or_else(|| panic!("no record of leak_request_buffer's 307,200 bytes:\n{text}"));
    for expected in [
        "memleak.blocks: Int(200)",
        "memleak.artifact.format: Str(memcheck)",
        "memleak.artifact.file: Str(memcheck.xml)",
    ] {
        assert!(record.contains(expected), "{expected} missing:\n{record}");
    }
    assert!(record.contains("definitely lost"), "the body is the report's message:\n{record}");
    assert!(record.contains("memleak.stack."), "the stacks are attributes:\n{record}");
    let sent = wait_for_counter(&exporter, "memleak_exporter_otlp_sent_total{signal=\"logs\"}", |v| v > 0.0);
    assert_eq!(sent as usize, records.len(), "every record shipped is counted once");
}

#[test]
fn ingested_records_reach_rotel_as_logs_over_grpc() {
    check_logs_push("grpc");
}

#[test]
fn ingested_records_reach_rotel_as_logs_over_http() {
    check_logs_push("http/protobuf");
}

fn exporter_pushing_http_to(port: u16, extra: &[&str]) -> Exporter {
    let root = fixture_root("root-v2");
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut args = vec!["--path.rootfs", root.to_str().unwrap(), "--otlp.endpoint", &endpoint];
    args.extend_from_slice(&["--otlp.protocol", "http/protobuf", "--otlp.interval", "300ms"]);
    args.extend_from_slice(extra);
    Exporter::start(&args)
}

#[test]
fn a_receiver_answering_400_gets_no_retry_and_its_drops_are_counted_as_rejected() {
    let Some(venv) = venv() else { return };
    let receiver = Receiver::python_in_mode(&venv, free_port(), free_port(), "reject");
    let exporter = exporter_pushing_http_to(receiver.http_port, &[]);
    let rejected = "memleak_exporter_otlp_dropped_total{signal=\"metrics\",reason=\"rejected\"}";
    // 400 is final per the specification: each push is dropped at once, none waits for a retry.
    wait_for_counter(&exporter, rejected, |v| v > 200.0);
    let text = exporter.metrics();
    assert!(!text.contains("memleak_exporter_otlp_sent_total"), "nothing was accepted:\n{text}");
    assert!(!text.contains("reason=\"retries_exhausted\""), "a 400 is not retried:\n{text}");
    let log = exporter.stderr();
    assert_eq!(log.matches("the OTLP receiver refuses exports").count(), 1, "one line, not one per push:\n{log}");
}

#[test]
fn a_slow_receiver_fills_the_queue_not_the_scrapes() {
    let Some(venv) = venv() else { return };
    let receiver = Receiver::python_in_mode(&venv, free_port(), free_port(), "slow");
    let exporter = exporter_pushing_http_to(receiver.http_port, &["--otlp.queue-size", "2", "--otlp.timeout", "5s"]);
    // A push every 300 ms, an answer every 3 s: the queue of 2 overflows and says so.
    wait_for_counter(&exporter, "memleak_exporter_otlp_dropped_total{signal=\"metrics\",reason=\"queue_full\"}", |v| {
        v > 0.0
    });
    // Scrapes go on meanwhile, never waiting for an answer, and the slow answers still count as delivered.
    let rss = |e: &Exporter| kib(e.pid(), "VmRSS:");
    let at_overflow = rss(&exporter);
    for _ in 0..10 {
        let started = Instant::now();
        exporter.metrics();
        assert!(started.elapsed() < Duration::from_secs(3), "a scrape waited for the receiver's 3 s answer");
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_for_counter(&exporter, "memleak_exporter_otlp_sent_total{signal=\"metrics\"}", |v| v > 0.0);
    // Five more seconds of pushes dropped at the full queue: memory does not follow them.
    let later = rss(&exporter);
    assert!(later < at_overflow + 32 * 1024, "RSS {at_overflow} KiB at the overflow, {later} KiB 5 s later");
}

/// A `/proc/PID/status` field in KiB.
fn kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_receiver_answering_503_gets_retries_and_delivery_resumes_without_loss() {
    let Some(venv) = venv() else { return };
    let receiver = Receiver::python_in_mode(&venv, free_port(), free_port(), "flaky");
    let exporter = exporter_pushing_http_to(receiver.http_port, &[]);
    // 503 is retryable per the specification: the refused exports wait (Retry-After: 1) and go
    // through once the receiver accepts, so nothing is dropped.
    wait_for_counter(&exporter, "memleak_exporter_otlp_sent_total{signal=\"metrics\"}", |v| v > 0.0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !exporter.stderr().contains("OTLP delivery resumed") {
        assert!(Instant::now() < deadline, "no 'resumed' line:\n{}", exporter.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = exporter.metrics();
    assert!(!text.contains("memleak_exporter_otlp_dropped_total{"), "a 503 is retried, not dropped:\n{text}");
    let log = exporter.stderr();
    assert_eq!(log.matches("the OTLP receiver refuses exports").count(), 1, "one line while it refuses:\n{log}");
}
