//! The page-fault profile of `--collector.page_faults` pushed as OTLP profiles on the interval:
//! a child process touches 40 MiB of a fresh anonymous mapping (10,240 pages, known by
//! construction) and the official Python protos receive those faults under its pid and comm, as
//! page-fault counts and as bytes, with memory period types.

use crate::common::{Exporter, free_port, is_root};
use crate::receivers::{Receiver, venv};
use std::time::{Duration, Instant};

const PAGES: i64 = 10_240;

/// One pushed sample: sample type, unit, period type and period, value.
type Pushed = (String, String, String, i64);

/// Per export line: (sample type, unit, period type, value) of every sample whose attributes
/// hold process.pid = `pid` and region = anon, with the comm attributes seen on them.
fn our_anon_faults(line: &str, pid: u32) -> (Vec<Pushed>, Vec<String>) {
    let export: serde_json::Value = serde_json::from_str(line).unwrap();
    let d = &export["dictionary"];
    let strings: Vec<&str> = d["stringTable"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let int = |v: &serde_json::Value| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(0);
    let attribute = |i: &serde_json::Value| {
        let kv = &d["attributeTable"][int(i) as usize];
        (strings[int(&kv["keyStrindex"]) as usize], kv["value"]["stringValue"].as_str().unwrap_or(""))
    };
    let (mut values, mut comms) = (Vec::new(), Vec::new());
    for profile in export["resourceProfiles"][0]["scopeProfiles"][0]["profiles"].as_array().unwrap() {
        let source = profile["attributeIndices"].as_array().into_iter().flatten().map(attribute);
        if !source.into_iter().any(|kv| kv == ("memleak.profile.source", "page_faults")) {
            continue;
        }
        let kind = strings[int(&profile["sampleType"]["typeStrindex"]) as usize].to_owned();
        let unit = strings[int(&profile["sampleType"]["unitStrindex"]) as usize].to_owned();
        let period = format!(
            "{}/{} every {}",
            strings[int(&profile["periodType"]["typeStrindex"]) as usize],
            strings[int(&profile["periodType"]["unitStrindex"]) as usize],
            int(&profile["period"])
        );
        for sample in profile["samples"].as_array().into_iter().flatten() {
            let attributes: Vec<(&str, &str)> =
                sample["attributeIndices"].as_array().into_iter().flatten().map(attribute).collect();
            let ours =
                attributes.contains(&("process.pid", &pid.to_string())) && attributes.contains(&("region", "anon"));
            if ours {
                values.push((kind.clone(), unit.clone(), period.clone(), int(&sample["values"][0])));
                comms.extend(
                    attributes.iter().filter(|(k, _)| *k == "process.executable.name").map(|(_, v)| (*v).to_owned()),
                );
            }
        }
    }
    (values, comms)
}

#[test]
fn the_page_fault_profile_is_pushed_with_pid_comm_and_memory_types() {
    if !is_root() || !memleak_bpf::built_with_bpf() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI is root and has clang: this test must run there");
        eprintln!("SKIP: needs root and a build with clang");
        return;
    }
    let Some(venv) = venv() else { return };
    let receiver = Receiver::python(&venv, free_port(), free_port());
    let endpoint = format!("http://127.0.0.1:{}", receiver.grpc_port);
    let exporter = Exporter::start(&[
        "--collector.page_faults",
        "--collector.page_faults.period",
        "10",
        "--otlp.endpoint",
        &endpoint,
        "--otlp.interval",
        "1s",
    ]);
    assert!(exporter.metrics().contains("memleak_exporter_collector_success{collector=\"page_faults\"} 1\n"));
    // A process of its own, so that the other tests of this binary faulting beside it do not count;
    // MAP_PRIVATE, as Python's anonymous mmap is shared (shmem, not the anon region) by default.
    let script = format!(
        "import mmap, sys, time\nm = mmap.mmap(-1, {PAGES} * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)\nfor i in range(0, {PAGES} * 4096, 4096): m[i] = 1\n\
         print('faulted', flush=True)\ntime.sleep(60)\n"
    );
    let mut child = std::process::Command::new(venv.join("bin/python3"))
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "faulted");
    let pid = child.id();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim().to_owned();
    // Sampled every 10 faults, each push carrying what its interval added: the pushes add up to
    // this process's faults (a sample that lost its stack is left out of the profile: allow 10 %).
    let pushed = || {
        let text = receiver.output();
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('{')).collect();
        let (values, comms): (Vec<_>, Vec<_>) = lines.iter().map(|l| our_anon_faults(l, pid)).unzip();
        (values.into_iter().flatten().collect::<Vec<_>>(), comms.into_iter().flatten().collect::<Vec<_>>(), text)
    };
    let sum = |values: &[Pushed], kind: &str| values.iter().filter(|v| v.0 == kind).map(|v| v.3).sum::<i64>();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (values, comms, text) = pushed();
        let faults = sum(&values, "page_faults");
        if faults >= PAGES * 9 / 10 {
            for (kind, unit, period, _) in &values {
                let expected = match kind.as_str() {
                    "page_faults" => ("count", "objects/count every 1"),
                    "faulted_space" => ("bytes", "space/bytes every 1"),
                    other => panic!("unexpected sample type {other}"),
                };
                assert_eq!((unit.as_str(), period.as_str()), expected, "{kind}");
            }
            assert_eq!(sum(&values, "faulted_space"), faults * page_size(), "a page per fault");
            assert!(!comms.is_empty() && comms.iter().all(|c| *c == comm), "comm {comm:?} on every sample: {comms:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{faults} anon faults of pid {pid} pushed so far:\n{text}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Three more pushes: were they cumulative rather than what each interval added, the sum would double.
    std::thread::sleep(Duration::from_secs(3));
    let (values, _, _) = pushed();
    let faults = sum(&values, "page_faults");
    assert!(faults < PAGES * 3 / 2, "{faults} faults for {PAGES} pages: a push repeated what was pushed");
    let _ = child.kill();
    let _ = child.wait();
}

fn page_size() -> i64 {
    std::fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("KernelPageSize:").map(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>())
            })
        })
        .and_then(Result::ok)
        .map_or(4096, |kb| kb * 1024)
}
