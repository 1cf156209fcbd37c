//! `memleak-exporter ingest` end to end: the real binary converts fixture
//! artifacts, and an independent reader (`go tool pprof`, Debian `golang-go`)
//! reads our profiles back; totals and sites are checked against the fixtures'
//! ground truth (../shared/fixtures/README.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{BIN, Exporter, is_root, require_tool};
use std::path::{Path, PathBuf};
use std::process::Command;

fn artifact(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../artifacts/tests/fixtures").join(path)
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
    // README: leak_token_buffer 512,000 B in 250 blocks, under a header naming each column and its unit.
    let mut table = text.lines().skip_while(|l| !l.contains("top sites by leaked_space")).skip(1);
    let header: Vec<&str> = table.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["site", "leaked_space", "(bytes)", "leaked_objects", "(count)"], "{text}");
    let first: Vec<&str> = table.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(first, ["leaky_r::leak_token_buffer", "(leaky_r.rs:27)", "512000", "250"], "{text}");

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

/// Copies a fixture into `dir` with a modification time in the past (so it counts as settled).
fn drop_file(dir: &Path, fixture: &str, name: &str) {
    let target = dir.join(name);
    std::fs::copy(artifact(fixture), &target).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&target).unwrap();
    file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60)).unwrap();
}

/// Scrapes until every needle is there (a scan takes the files one by one), or 20 s passed.
fn wait_for(exporter: &common::Exporter, needles: &[&str]) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = exporter.metrics();
        if needles.iter().all(|n| text.contains(n)) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_watched_directory_is_ingested_once_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("dumps");
    std::fs::create_dir(&watched).unwrap();
    drop_file(&watched, "memcheck/a.xml", "svc.memcheck.xml");
    drop_file(&watched, "tcmalloc/a.prof.heap", "svc.0001.heap");
    drop_file(&watched, "asan/uaf.txt", "asan.log.4242");
    std::fs::write(watched.join("notes.txt"), "not a dump\n").unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(watched.join("notes.txt")).unwrap();
    file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60)).unwrap();
    let bin = artifact("bin");
    let args = [
        "--ingest.dir",
        watched.to_str().unwrap(),
        "--ingest.interval",
        "200ms",
        "--ingest.symbols",
        bin.to_str().unwrap(),
        "--no-collector.process",
        "--no-collector.cgroup",
    ];
    let exporter = common::Exporter::start(&args);
    let text = wait_for(
        &exporter,
        &[
            "memleak_ingest_files_total{format=\"unknown\",outcome=\"failed\"} 1",
            "memleak_ingest_files_total{format=\"memcheck\",outcome=\"ingested\"} 1",
            "memleak_ingest_files_total{format=\"tcmalloc\",outcome=\"ingested\"} 1",
            "memleak_ingest_files_total{format=\"asan\",outcome=\"ingested\"} 1",
        ],
    );
    // Ground truth: 409,600 B leaked (memcheck), 409,696 B in use (gperftools), one ASan error.
    assert!(
        text.contains("memleak_ingest_leaked_bytes{format=\"memcheck\",file=\"svc.memcheck.xml\"} 409600\n"),
        "{text}"
    );
    assert!(text.contains("memleak_ingest_inuse_bytes{format=\"tcmalloc\",file=\"svc.0001.heap\"} 409696\n"), "{text}");
    assert!(text.contains("memleak_ingest_error_records{format=\"asan\",file=\"asan.log.4242\"} 1\n"), "{text}");
    assert!(text.contains("memleak_ingest_files_total{format=\"memcheck\",outcome=\"ingested\"} 1\n"));
    // Moved away with their outputs; the unreadable one beside its reason.
    let done = watched.join(".ingested");
    for name in ["svc.memcheck.xml", "svc.memcheck.xml.pb.gz", "svc.memcheck.xml.svg", "svc.0001.heap.json"] {
        assert!(done.join(name).is_file(), "{name}");
    }
    let reason = std::fs::read_to_string(watched.join(".failed/notes.txt.error.txt")).unwrap();
    assert!(reason.contains("not a format memleak-exporter knows"), "{reason}");
    assert!(!watched.join("svc.memcheck.xml").exists());
    drop(exporter);

    // A restart ingests nothing again but still exposes the kept results.
    let exporter = common::Exporter::start(&args);
    std::thread::sleep(std::time::Duration::from_millis(600));
    let text = exporter.metrics();
    assert!(
        text.contains("memleak_ingest_leaked_bytes{format=\"memcheck\",file=\"svc.memcheck.xml\"} 409600\n"),
        "{text}"
    );
    assert!(!text.contains("memleak_ingest_files_total{"), "nothing is taken twice: {text}");
}

#[test]
fn the_page_fault_profile_is_read_by_go_tool_pprof() {
    if !is_root() || !memleak_bpf::built_with_bpf() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI is root and has clang: this test must run there");
        eprintln!("SKIP: needs root and a build with clang");
        return;
    }
    let Some(go) = require_tool("go", "golang-go") else { return };
    let exporter = Exporter::start(&["--collector.page_faults", "--collector.page_faults.period", "10"]);
    assert!(exporter.metrics().contains("memleak_exporter_collector_success{collector=\"page_faults\"} 1\n"));
    // Fault 40 MiB here: at least 10,240 faults for the profile.
    let memory = vec![1u8; 40 << 20];
    assert_eq!(memory.iter().step_by(4096).map(|b| u64::from(*b)).sum::<u64>(), 10_240);
    exporter.metrics();
    let (status, _, body) = exporter.get("/debug/pprof/page_faults", None);
    assert_eq!(status, 200);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("page_faults.pb.gz");
    std::fs::write(&file, body).unwrap();
    let out = Command::new(go).args(["tool", "pprof", "-top", "-tagfocus=region=anon"]).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "go tool pprof: {}{text}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Type: page_faults"), "{text}");
    let anon: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Showing nodes accounting for "))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no total in:\n{text}"));
    // This process's 10,240 anonymous faults, sampled every 10, are in the profile (the exact
    // attribution is tested in memleak-bpf; here a sample whose stack lost its stack-map
    // bucket to another stack is left out, so allow 10 %).
    assert!(anon >= 9_216, "{anon} anon faults in the profile:\n{text}");
}

/// The README's example flame graph is what `ingest` draws for heaptrack's file of program A
/// (`UPDATE_DOCS=1` redraws it); it shows the fixture's ground truth.
#[test]
fn the_readme_flame_graph_is_ingest_output_of_a_fixture() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(BIN)
        .args(["ingest", "--out", out.path().to_str().unwrap(), artifact("heaptrack/a.zst").to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let drawn = std::fs::read_to_string(out.path().join("a.zst.svg")).unwrap();
    // Fixture README: leak_request_buffer 307,200 B (75 %) under handle_request, leaky_cache_insert 102,400 B.
    assert!(drawn.contains("<title>leak_request_buffer (307,200 bytes, 74.98%)</title>"), "{drawn}");
    assert!(drawn.contains("<title>leaky_cache_insert (102,400 bytes, 24.99%)</title>"), "{drawn}");
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/flamegraph-heaptrack-leaks.svg");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&docs, &drawn).unwrap();
    }
    let kept = std::fs::read_to_string(&docs).unwrap_or_default();
    assert!(kept == drawn, "{} is not ingest's output; rerun with UPDATE_DOCS=1", docs.display());
}

#[test]
fn out_says_what_it_wrote_where_and_heaptrack_print_without_leaks_gets_a_hint() {
    let Some(heaptrack_print) = require_tool("heaptrack_print", "heaptrack") else { return };
    let dir = tempfile::tempdir().unwrap();
    // heaptrack_print's default report, without -l: statistics but no MEMORY LEAKS section.
    let report = Command::new(heaptrack_print).arg("-f").arg(artifact("heaptrack/a.zst")).output().unwrap();
    assert!(report.status.success());
    let printed = dir.path().join("print.txt");
    std::fs::write(&printed, &report.stdout).unwrap();
    let out = dir.path().join("out");
    let run = Command::new(BIN)
        .args(["ingest", "--out", out.to_str().unwrap()])
        .arg(&printed)
        .arg(artifact("memcheck/a.xml"))
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{stderr}");
    let wrote = format!("wrote a.xml.pb.gz, a.xml.folded, a.xml.svg, a.xml.json in {}", out.display());
    assert!(stdout.contains(&format!("memcheck/a.xml (memcheck): {wrote}")), "{stdout}");
    for name in ["a.xml.pb.gz", "a.xml.folded", "a.xml.svg", "a.xml.json", "print.txt.json"] {
        assert!(out.join(name).is_file(), "{name}");
    }
    // No stack to draw: no flame graph, and the line says so by not naming one.
    assert!(
        stdout.contains("print.txt (heaptrack): wrote print.txt.pb.gz, print.txt.folded, print.txt.json in"),
        "{stdout}"
    );
    assert!(!out.join("print.txt.svg").exists());
    assert!(
        stderr.contains("print.txt: heaptrack_print printed no MEMORY LEAKS section") && stderr.contains("-l"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("print.txt.json")).unwrap()).unwrap();
    assert!(json["hints"][0].as_str().unwrap().contains("--print-leaks=1"), "{json}");
}

#[test]
fn same_named_inputs_and_standard_input_get_outputs_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    for (sub, fixture) in [("a", "lsan/asan.txt"), ("b", "lsan/standalone.txt")] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        std::fs::copy(artifact(fixture), dir.path().join(sub).join("x.log")).unwrap();
    }
    // `x` and `x.json`: the summary of the first is named like the second.
    std::fs::copy(artifact("lsan/asan.txt"), dir.path().join("x")).unwrap();
    std::fs::copy(artifact("lsan/clang.txt"), dir.path().join("x.json")).unwrap();
    let out = dir.path().join("out");
    let status = Command::new(BIN)
        .args(["ingest", "--out", out.to_str().unwrap()])
        .arg(dir.path().join("a/x.log"))
        .arg(dir.path().join("b/x.log"))
        .arg(dir.path().join("x"))
        .arg(dir.path().join("x.json"))
        .arg("-")
        .stdin(std::fs::File::open(artifact("memcheck/a.xml")).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    // Ground truth: each of the three reports 409,600 leaked bytes (fixture README).
    for (name, source) in
        [("x.log", "a/x.log"), ("x.log~1", "b/x.log"), ("x", "/x"), ("x.json_", "/x.json"), ("stdin", "-")]
    {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("{name}.json"))).unwrap()).unwrap();
        assert_eq!(json["totals"]["leaked_bytes"], 409_600.0, "{name}");
        assert!(json["source_name"].as_str().unwrap().ends_with(source), "{name}: {}", json["source_name"]);
        assert!(out.join(format!("{name}.pb.gz")).is_file(), "{name}");
    }
}

#[test]
fn paths_named_inside_a_dump_never_block_and_the_budget_has_flags() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("libfifo.so");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // The jemalloc fixture with every library replaced by the FIFO.
    let text = std::fs::read_to_string(artifact("jemalloc/a.jeprof.heap")).unwrap();
    let (head, maps) = text.split_once("MAPPED_LIBRARIES:").unwrap();
    let maps: String = maps
        .lines()
        .map(|l| match l.split_whitespace().collect::<Vec<_>>().as_slice() {
            [range, perms, offset, dev, inode, _path] => {
                format!("{range} {perms} {offset} {dev} {inode} {}\n", fifo.display())
            }
            _ => format!("{l}\n"),
        })
        .collect();
    let dump = dir.path().join("fifo.heap");
    std::fs::write(&dump, format!("{head}MAPPED_LIBRARIES:{maps}")).unwrap();
    let mut child = Command::new(BIN)
        .args(["ingest"])
        .arg(&dump)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
        panic!("ingest blocked on a FIFO named in the dump");
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("libfifo.so (not a regular file)"), "{stderr}");

    // 64 MiB of zeros, gzipped: refused past --max-decompressed-bytes, with the flag named.
    let bomb = dir.path().join("zeros.gz");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("head -c 67108864 /dev/zero | gzip -9 > {}", bomb.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let out = Command::new(BIN).args(["ingest", "--max-decompressed-bytes", "1048576"]).arg(&bomb).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("more than 1048576 bytes of text"), "{stderr}");
}
