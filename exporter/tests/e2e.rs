//! End-to-end: the real binary on a fixture root, scraped over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{BIN, Exporter, fixture_root, is_root, require_tool};
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Lines whose values depend on time.
fn stable(text: &str) -> String {
    text.lines()
        .filter(|l| {
            !l.starts_with("memleak_exporter_collector_duration_seconds{")
                && !l.starts_with("memleak_process_detail_age_seconds ")
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn root_args(root: &Path) -> Vec<String> {
    vec!["--path.rootfs".into(), root.to_str().unwrap().into()]
}

#[test]
fn a_scrape_is_the_self_metrics_then_the_collectors_output_unchanged() {
    let args = root_args(&fixture_root("root-v2"));
    let exporter = Exporter::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let text = stable(&exporter.metrics());
    let (own, collected): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| {
        ["memleak_exporter_", "process_"]
            .iter()
            .any(|p| l.starts_with(p) || l.starts_with(&format!("# HELP {p}")) || l.starts_with(&format!("# TYPE {p}")))
    });
    assert!(text.starts_with(own.first().copied().unwrap_or("?")), "the self metrics come first");
    // What the default collectors emit on this root is checked by golden.rs
    // (the table's default set over the same root); the server serves it unchanged.
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../signals/tests/golden/root-v2.prom");
    let expected = std::fs::read_to_string(&golden).unwrap();
    let collected: String = collected.iter().map(|l| format!("{l}\n")).collect();
    assert!(collected == expected, "/metrics without the self metrics differs from {}", golden.display());
    // What the exporter adds: its build, and each collector's success and duration.
    let version = env!("CARGO_PKG_VERSION");
    let build = format!("memleak_exporter_build_info{{version=\"{version}\",allocator=\"jemalloc\"}} 1");
    assert!(own.contains(&build.as_str()), "{own:?}");
    let raw = exporter.metrics();
    for id in ["psi", "host_memory", "process", "cgroup"] {
        let success = format!("memleak_exporter_collector_success{{collector=\"{id}\"}} 1");
        assert!(own.contains(&success.as_str()), "{id}: {own:?}");
        assert!(raw.contains(&format!("memleak_exporter_collector_duration_seconds{{collector=\"{id}\"}} ")), "{id}");
    }
    assert!(!raw.contains("memleak_exporter_errors_total"), "no problem on the clean fixture: {raw}");
    promtool_check(&raw);
}

#[test]
fn scrape_of_this_host_passes_promtool() {
    let exporter = Exporter::start(&[]);
    promtool_check(&exporter.metrics());
}

/// The standard process metrics describe the exporter's own process, as the kernel tells the test.
#[test]
fn the_standard_process_metrics_describe_the_exporter_itself() {
    let args = root_args(&fixture_root("root-v2"));
    let exporter = Exporter::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let text = exporter.metrics();
    let value = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    for (name, kind) in [
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name} {kind}");
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", exporter.pid())).unwrap();
    let kb = |key: &str| -> f64 {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() * 1024.0
    };
    let rss = value("process_resident_memory_bytes");
    assert!((rss - kb("VmRSS:")).abs() < 4.0 * 1024.0 * 1024.0, "rss {rss} against VmRSS {}", kb("VmRSS:"));
    assert_eq!(value("process_virtual_memory_bytes"), kb("VmSize:"), "VmSize");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", exporter.pid())).unwrap();
    let max_files: f64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(value("process_max_fds"), max_files);
    let fds = std::fs::read_dir(format!("/proc/{}/fd", exporter.pid())).unwrap().count() as f64;
    assert!(value("process_open_fds") >= 3.0 && (value("process_open_fds") - fds).abs() <= 8.0, "open fds vs {fds}");
    // Started within the last minute: the test started it.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let started = value("process_start_time_seconds");
    assert!(started <= now + 1.0 && now - started < 60.0, "start {started}, now {now}");
    assert!(value("process_cpu_seconds_total") >= 0.0);
}

/// `promtool check metrics` must print nothing. Under CI=true a missing promtool fails.
fn promtool_check(text: &str) {
    let Some(promtool) = require_tool("promtool", "prometheus") else { return };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && printed.is_empty(), "promtool check metrics: {printed}");
}

#[test]
fn endpoints_and_content_negotiation() {
    let args = root_args(&fixture_root("root-v1"));
    let exporter = Exporter::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (status, head, body) = exporter.get("/metrics", Some("application/openmetrics-text;version=1.0.0"));
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: application/openmetrics-text"), "{head}");
    let body = String::from_utf8(body).unwrap();
    assert!(body.ends_with("# EOF\n"));
    assert!(body.contains("# TYPE memleak_process_minor_faults counter\n"));
    let (_, head, _) = exporter.get("/metrics", None);
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    assert_eq!(exporter.get("/-/healthy", None).0, 200);
    let (status, _, landing) = exporter.get("/", None);
    let landing = String::from_utf8(landing).unwrap();
    assert_eq!(status, 200);
    for id in ["psi", "host_memory", "process", "cgroup", "/metrics", "/debug/pprof/heap"] {
        assert!(landing.contains(id), "landing page lacks {id}");
    }
    let (status, _, heap) = exporter.get("/debug/pprof/heap", None);
    assert_eq!(status, 200);
    assert_eq!(&heap[..2], &[0x1f, 0x8b], "a gzipped pprof profile");
    let (status, _, why) = exporter.get("/debug/pprof/page_faults", None);
    assert_eq!(status, 404, "no fault profile without the page_faults collector");
    assert!(String::from_utf8(why).unwrap().contains("--collector.page_faults"));
    assert_eq!(exporter.get("/nope", None).0, 404);
    let (status, stderr) = exporter.terminate();
    assert!(status.success(), "SIGTERM must end the exporter cleanly: {status}");
    assert!(stderr.contains("shutting down") && stderr.contains("signal=SIGTERM"), "{stderr}");
}

#[test]
fn a_malformed_file_fails_only_its_collector_and_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture_root("root-v2"), dir.path());
    let broken = dir.path().join("proc/pressure/memory");
    std::fs::write(&broken, "some avg10=0.00 avg60=garbage avg300=0.00 total=0\n").unwrap();
    std::fs::write(dir.path().join("proc/20806/stat"), "20806 (a_cachesvc) S 1 2\n").unwrap();
    let args = root_args(dir.path());
    let exporter = Exporter::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let text = exporter.metrics();
    assert!(text.contains("memleak_exporter_collector_success{collector=\"psi\"} 0\n"));
    assert!(text.contains("memleak_exporter_collector_success{collector=\"process\"} 0\n"));
    assert!(text.contains("memleak_exporter_collector_success{collector=\"cgroup\"} 1\n"));
    assert!(text.contains("memleak_exporter_errors_total{collector=\"psi\",type=\"parse\"} 1\n"));
    // The good process is still reported; the broken one is skipped.
    assert!(text.contains("memleak_process_processes{group=\"a_cachesvc\"} 1\n"));
    exporter.metrics();
    let text = exporter.metrics();
    assert!(text.contains("memleak_exporter_errors_total{collector=\"psi\",type=\"parse\"} 3\n"));
    let stderr = exporter.stderr();
    let warn = stderr.lines().find(|l| l.contains("level=warn") && l.contains("pressure/memory")).unwrap_or_default();
    assert!(warn.contains("avg60 is not a number"), "{stderr}");
    assert_eq!(stderr.matches("pressure/memory").count(), 1, "logged at warn once, not on every scrape: {stderr}");
    assert!(stderr.contains("20806/stat") && stderr.contains("truncated"), "{stderr}");
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn bad_configuration_is_reported_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, "collectors:\n  process:\n    max_groups: 10\n    grop_by: comm\n").unwrap();
    let out = Command::new(BIN).args(["--config.file", path.to_str().unwrap(), "--config.check"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown field `grop_by`") && stderr.contains("line 4"), "{stderr}");
    assert!(stderr.contains("bad.yml"), "the file is named: {stderr}");

    std::fs::write(&path, "collectors:\n  process:\n    group_by: cgroup\n").unwrap();
    let out = Command::new(BIN).args(["--config.file", path.to_str().unwrap(), "--config.check"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("collectors.process: group_by=cgroup"));

    let out = Command::new(BIN).args(["--config.file", "/nonexistent/memleak.yml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file /nonexistent/memleak.yml"));
}

#[test]
fn metrics_are_served_at_the_telemetry_path() {
    let mut args = root_args(&fixture_root("root-v2"));
    args.extend(["--web.telemetry-path".into(), "/probe/memleak".into()]);
    let exporter = Exporter::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (status, _, body) = exporter.get("/probe/memleak", None);
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(text.contains("memleak_exporter_build_info{"), "{text}");
    assert_eq!(exporter.get("/metrics", None).0, 404, "only at the path asked for");
    let landing = exporter.get("/", None).2;
    assert!(String::from_utf8_lossy(&landing).contains("<a href=\"/probe/memleak\">"), "the landing page links it");
    for (path, why) in [("metrics", "must start with /"), ("/api/metrics", "/api/ is where"), ("/a b", "only letters")]
    {
        let out = Command::new(BIN).args(["--web.telemetry-path", path, "--config.check"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path}: {stderr}");
        assert!(stderr.contains("--web.telemetry-path") && stderr.contains(why), "{path}: {stderr}");
    }
}

#[test]
fn disable_defaults_leaves_only_the_collectors_asked_for() {
    let check = |args: &[&str]| -> String {
        let out = Command::new(BIN).args(args).arg("--config.check").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(check(&["--collector.disable-defaults"]).contains("collectors= "));
    assert!(check(&["--collector.disable-defaults", "--collector.psi"]).contains("collectors=psi "));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("on.yml");
    std::fs::write(&file, "collectors:\n  process:\n    enabled: true\n").unwrap();
    let both = check(&["--collector.disable-defaults", "--collector.psi", "--config.file", file.to_str().unwrap()]);
    assert!(both.contains("collectors=psi,process "), "{both}");
    // A real scrape: the self metrics and host_memory's, nothing of the other defaults.
    let mut args = root_args(&fixture_root("root-v2"));
    args.extend(["--collector.disable-defaults".into(), "--collector.host_memory".into()]);
    let exporter = Exporter::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let text = exporter.metrics();
    assert!(text.contains("memleak_exporter_collector_success{collector=\"host_memory\"} 1"), "{text}");
    for other in ["memleak_psi_", "memleak_process_", "memleak_cgroup_"] {
        assert!(!text.lines().any(|l| l.starts_with(other)), "{other} served: {text}");
    }
}

#[test]
fn boolean_options_are_switches_with_a_no_form() {
    let given = |args: &[&str]| -> String {
        let out = Command::new(BIN).args(args).arg("--config.check").output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("collectors.process:"))
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(given(&["--collector.process.pss"]), "collectors.process: pss=true");
    assert_eq!(given(&["--no-collector.process.pss"]), "collectors.process: pss=false");
    assert_eq!(given(&["--collector.process.pss=false"]), "collectors.process: pss=false");
    assert_eq!(given(&["--collector.process.kernel-threads"]), "collectors.process: kernel_threads=true");
    // The command line wins over the file, also to turn a switch off.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pss.yml");
    std::fs::write(&file, "collectors:\n  process:\n    pss: true\n").unwrap();
    assert_eq!(
        given(&["--config.file", file.to_str().unwrap(), "--no-collector.process.pss"]),
        "collectors.process: pss=false"
    );
    // A switch never takes the next word: the subcommand stays a subcommand.
    let out = Command::new(BIN).args(["--collector.process.pss", "ingest", "--help"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(BIN).args(["--collector.process.pss", "--no-collector.process.pss"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "both at once is refused");
}

#[test]
fn config_check_warns_of_folders_start_could_not_use_and_shows_rules_as_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "not a folder").unwrap();
    let config = dir.path().join("names.yml");
    std::fs::write(
        &config,
        "collectors:\n  process:\n    names:\n      - name: \"py-{{.Matches.script}}\"\n        cmdline: 'python3 (?P<script>\\S+)'\n",
    )
    .unwrap();
    let spool_under_file = file.join("spool");
    let out = Command::new(BIN)
        .args(["--config.check", "--config.file", config.to_str().unwrap(), "--capture.dir"])
        .arg(&spool_under_file)
        .args(["--ingest.dir", "/nonexistent/drop", "--ingest.dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // It would start (captures off, the folder retried), so the check passes, and says what is wrong.
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("with 2 warning(s)"), "{stdout}");
    assert!(stderr.contains("captures would be off") && stderr.contains("is not a directory"), "{stderr}");
    assert!(stderr.contains("/nonexistent/drop would be retried") && stderr.contains("--ingest.dir"), "{stderr}");
    assert!(!stderr.contains(&format!("{} would", dir.path().display())), "a usable folder is not warned of: {stderr}");
    // The naming rule as the file says it, not serde's JSON.
    assert!(
        stdout.contains(r#"names={cmdline: "python3 (?P<script>\\S+)", name: "py-{{.Matches.script}}"}"#),
        "{stdout}"
    );
    // Nothing was created by the check.
    assert!(!spool_under_file.exists() && !dir.path().join(".ingested").exists());
    // What the OTLP transport could not send fails the check, as it would fail the start.
    for (args, flag, why) in [
        (["--otlp.endpoint", "http://localhost:99999", "--otlp.interval", "10s"], "--otlp.endpoint", "invalid port"),
        (
            ["--otlp.endpoint", "http://localhost:4317", "--otlp.header", "a=b\r\nInjected: yes"],
            "--otlp.header",
            "not a valid header value",
        ),
    ] {
        let value = args[3];
        let out = Command::new(BIN).arg("--config.check").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains(why) && stderr.contains(flag), "{value}: {stderr}");
    }
}

#[test]
fn config_check_refuses_a_token_file_that_start_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.token");
    std::fs::write(&empty, "\n").unwrap();
    for (file, why) in [(dir.path().join("missing.token"), "missing.token"), (empty, "is empty")] {
        let out = Command::new(BIN)
            .args(["--webhook.token-file", file.to_str().unwrap(), "--config.check"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--webhook.token-file") && stderr.contains(why), "{stderr}");
    }
    let good = dir.path().join("good.token");
    std::fs::write(&good, "s3cret\n").unwrap();
    let out =
        Command::new(BIN).args(["--webhook.token-file", good.to_str().unwrap(), "--config.check"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["--web.listen-address", &address, "--path.rootfs", fixture_root("root-v2").to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {address}")) && stderr.contains("--web.listen-address"),
        "{stderr}"
    );
}

#[test]
fn help_documents_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--config.file",
        "--config.check",
        "--web.listen-address",
        "--path.rootfs",
        "--path.procfs",
        "--path.sysfs",
        "--path.cgroupfs",
        "--log.level",
        "--log.format",
        "--collector.process.group-by",
        "--collector.process.max-groups",
        "--collector.cgroup.max-cgroups",
        "--collector.psi",
        "--no-collector.cgroup",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn a_permission_denied_file_is_reported_with_a_hint() {
    // Root reads everything, so drop to `nobody` with setpriv (util-linux) to meet EACCES for real.
    if !is_root() {
        eprintln!("SKIP: needs root to switch to user nobody");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture_root("root-v2"), dir.path());
    chmod_tree(dir.path());
    std::fs::set_permissions(dir.path().join("proc/meminfo"), std::os::unix::fs::PermissionsExt::from_mode(0o000))
        .unwrap();
    let Some(exporter) = Exporter::start_as_nobody(&["--path.rootfs", dir.path().to_str().unwrap()]) else { return };
    let text = exporter.metrics();
    assert!(text.contains("memleak_exporter_collector_success{collector=\"host_memory\"} 0\n"), "{text}");
    assert!(text.contains("memleak_exporter_errors_total{collector=\"host_memory\",type=\"permission\"} 1\n"));
    assert!(text.contains("memleak_host_memory_page_faults_total "), "vmstat is still read");
    assert!(text.contains("memleak_exporter_collector_success{collector=\"process\"} 1\n"));
    // The line may reach the file a moment after the scrape's answer (a loaded host).
    let stderr = exporter.stderr_once_logged("meminfo", std::time::Duration::from_secs(10));
    assert!(stderr.contains("meminfo") && stderr.contains("Permission denied") && stderr.contains("hint="), "{stderr}");
}

#[test]
fn details_of_other_users_processes_denied_are_counted_and_warned_once() {
    // As nobody, /proc/PID/maps and smaps_rollup of a root process fail the kernel's ptrace
    // access check (proc(5)) while status stays readable; nobody's own process stays readable.
    if !is_root() {
        eprintln!("SKIP: needs root to run one process as root and the exporter as nobody");
        return;
    }
    let Some(setpriv) = require_tool("setpriv", "util-linux") else { return };
    let tag = std::process::id();
    let mut roots = Command::new("sleep").arg(format!("3600.{tag}1")).spawn().unwrap();
    let mut nobodys = Command::new(&setpriv)
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "sleep"])
        .arg(format!("3600.{tag}2"))
        .spawn()
        .unwrap();
    let include = format!("sleep 3600\\.{tag}[12]");
    // Root and setpriv were checked above: this starts.
    let exporter = Exporter::start_as_nobody(&[
        "--collector.process.group-by",
        "pid",
        "--collector.process.include-cmdline",
        &include,
    ])
    .unwrap();
    let text = exporter.metrics();
    let again = exporter.metrics();
    let log = exporter.stderr_once_logged("CAP_SYS_PTRACE", Duration::from_secs(5));
    let _ = roots.kill();
    let _ = nobodys.kill();
    let _ = (roots.wait(), nobodys.wait());
    assert!(text.contains("memleak_process_details_denied_processes 1\n"), "{text}");
    assert!(again.contains("memleak_process_details_denied_processes 1\n"), "{again}");
    let (root_pid, nobody_pid) = (roots.id(), nobodys.id());
    assert!(!text.contains(&format!("memleak_process_mappings{{group=\"sleep\",pid=\"{root_pid}\"}}")), "{text}");
    assert!(text.contains(&format!("memleak_process_mappings{{group=\"sleep\",pid=\"{nobody_pid}\"}}")), "{text}");
    assert!(
        text.contains(&format!("memleak_process_anon_bytes{{group=\"sleep\",pid=\"{root_pid}\"}}")),
        "status is still read"
    );
    assert!(text.contains("memleak_exporter_collector_success{collector=\"process\"} 1\n"), "{text}");
    let warnings = log.lines().filter(|l| l.contains("CAP_SYS_PTRACE")).count();
    assert_eq!(warnings, 1, "one warning for two scrapes, naming the fix: {log}");
    assert!(log.contains("root"), "{log}");
}

#[test]
fn naming_rules_split_one_interpreter_into_services() {
    // Three real python3 processes: two scripts a rule names by their file, one left to the
    // default grouping (by comm). Without rules all three would be group="python3".
    let Some(python) = require_tool("python3", "python3") else { return };
    // The interpreter itself, not a wrapper script (pyenv's shim runs bash first).
    let out = Command::new(&python).args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
    let python = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let tag = std::process::id();
    let mut children = Vec::new();
    for script in ["alpha", "beta"] {
        let path = dir.path().join(format!("{script}_{tag}.py"));
        std::fs::write(&path, "import time\ntime.sleep(3600)\n").unwrap();
        children.push(Command::new(&python).arg(&path).spawn().unwrap());
    }
    children
        .push(Command::new(&python).args(["-c", &format!("import time; time.sleep(3600) # {tag}")]).spawn().unwrap());
    let config = dir.path().join("memleak.yml");
    std::fs::write(
        &config,
        format!(
            "collectors:\n  process:\n    include_cmdline: '.*(_{tag}\\.py| # {tag})'\n    names:\n      \
             - name: 'py-{{{{.Matches.script}}}}'\n        comm: 'python3.*'\n        cmdline: '/(?P<script>[a-z]+)_{tag}\\.py'\n"
        ),
    )
    .unwrap();
    let check = Command::new(BIN).args(["--config.file", config.to_str().unwrap(), "--config.check"]).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    // The interpreter is running once its comm is python's.
    let deadline = Instant::now() + Duration::from_secs(10);
    while children.iter().any(|c| {
        std::fs::read_to_string(format!("/proc/{}/comm", c.id())).map_or(true, |comm| !comm.starts_with("python3"))
    }) && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let exporter = Exporter::start(&["--config.file", config.to_str().unwrap()]);
    let text = exporter.metrics();
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let processes: Vec<&str> = text.lines().filter(|l| l.starts_with("memleak_process_processes{")).collect();
    assert!(text.contains("memleak_process_processes{group=\"py-alpha\"} 1\n"), "{processes:?}");
    assert!(text.contains("memleak_process_processes{group=\"py-beta\"} 1\n"), "{processes:?}");
    let unmatched: Vec<&&str> = processes.iter().filter(|l| !l.contains("py-")).collect();
    assert_eq!(unmatched.len(), 1, "the third keeps its comm group: {processes:?}");
    assert!(unmatched[0].contains("group=\"python3") && unmatched[0].ends_with("} 1"), "{processes:?}");
}

fn chmod_tree(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let is_dir = path.is_dir();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(if is_dir { 0o755 } else { 0o644 })).unwrap();
    if is_dir {
        for entry in std::fs::read_dir(path).unwrap() {
            chmod_tree(&entry.unwrap().path());
        }
    }
}

/// POST to the webhook: (status, body).
fn post_alerts(port: u16, token: Option<&str>, body: &str) -> (u16, String) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        stream,
        "POST /api/v1/alerts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    let status = raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

const ALERT: &str = r#"{"version":"4","status":"firing","receiver":"memleak","alerts":[{"status":"firing","labels":{"alertname":"ProcessMemoryLeak","capture":"allocator-profile","group":"a_cachesvc","severity":"warning"},"fingerprint":"f1"}]}"#;

#[test]
fn webhook_authenticates_validates_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let root = fixture_root("root-v2");
    let exporter = Exporter::start(&[
        "--path.rootfs",
        root.to_str().unwrap(),
        "--webhook.token-file",
        token_file.to_str().unwrap(),
        "--webhook.max-body-bytes",
        "4096",
    ]);
    let port = exporter.port;
    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (None, ALERT.into(), 401, "missing `Authorization: Bearer"),
        (Some("wrong"), ALERT.into(), 401, "wrong bearer token"),
        (Some("s3cret"), "{not json".into(), 400, "malformed JSON"),
        (Some("s3cret"), ALERT.replace(r#""version":"4""#, r#""version":"2""#), 400, "unsupported webhook version"),
        // One bad alert is an outcome of its own (Alertmanager never retries a 4xx).
        (
            Some("s3cret"),
            ALERT.replace("allocator-profile", "shell"),
            200,
            "kind \\\"shell\\\" is not built in this exporter",
        ),
        (Some("s3cret"), ALERT.replace(r#""group":"a_cachesvc","#, ""), 200, "no target label"),
        (Some("s3cret"), format!("{}{}", ALERT, " ".repeat(5000)), 413, "cannot read the body"),
        (Some("s3cret"), ALERT.into(), 200, "\"fingerprint\":\"f1\""),
    ];
    for (token, body, code, needle) in &cases {
        let (status, reply) = post_alerts(port, *token, body);
        assert_eq!(status, *code, "{needle}: {reply}");
        let json: serde_json::Value =
            serde_json::from_str(&reply).unwrap_or_else(|e| panic!("not JSON ({e}): {reply}"));
        assert!(json.to_string().contains(needle), "{needle}: {json}");
    }
    let text = exporter.metrics();
    assert!(text.contains("memleak_exporter_capture_requests_total{kind=\"allocator-profile\",status=\"firing\"} 1\n"));
    assert!(text.contains("memleak_exporter_webhook_requests_total{code=\"401\"} 2\n"), "{text}");
    assert!(text.contains("memleak_exporter_webhook_requests_total{code=\"200\"} 3\n"), "{text}");
    let log = exporter.stderr();
    assert!(log.contains("capture requested") && log.contains("group=a_cachesvc"), "{log}");
}

#[test]
fn webhook_without_token_is_refused_beyond_loopback() {
    let root = fixture_root("root-v2");
    let exporter = Exporter::start_on("0.0.0.0:0", &["--path.rootfs", root.to_str().unwrap()]);
    let (status, reply) = post_alerts(exporter.port, None, ALERT);
    assert_eq!(status, 403, "{reply}");
    assert!(reply.contains("--webhook.token-file"), "{reply}");
    assert!(exporter.stderr().contains("refuses every request"));
    // On loopback only, local callers need no token.
    let local = Exporter::start(&["--path.rootfs", root.to_str().unwrap()]);
    assert_eq!(post_alerts(local.port, None, ALERT).0, 200);
}

/// The log once the start-up probe has run (it says so), before any scrape.
fn logged_before_any_scrape(exporter: &Exporter) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = exporter.stderr();
        if log.contains("collectors probed at start-up") {
            return log;
        }
        assert!(Instant::now() < deadline, "no start-up probe in 20 s: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sets `kernel.perf_event_paranoid` and puts the old value back when dropped.
struct Paranoid(String);

impl Paranoid {
    const PATH: &str = "/proc/sys/kernel/perf_event_paranoid";

    fn set(value: i32) -> Paranoid {
        let old = std::fs::read_to_string(Self::PATH).unwrap();
        std::fs::write(Self::PATH, value.to_string()).unwrap();
        Paranoid(old)
    }
}

impl Drop for Paranoid {
    fn drop(&mut self) {
        std::fs::write(Self::PATH, self.0.trim()).unwrap();
    }
}

#[test]
fn perf_counters_denied_are_reported_at_start_with_what_the_kernel_needs() {
    // As `nobody` (no CAP_PERFMON) cgroup counters open only at perf_event_paranoid <= 0: the
    // kernel's rule for CPU-wide events, which a cgroup counter is; 1 and 2 refuse.
    if !is_root() {
        eprintln!("SKIP: needs root to create a cgroup, set perf_event_paranoid and switch to user nobody");
        return;
    }
    let Some(v2) = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(Path::new)
        .find(|p| p.join("cgroup.controllers").is_file())
    else {
        panic!("no cgroup v2 hierarchy on this machine");
    };
    let cgroup = TempCgroup::create(v2.join(format!("memleak-e2e-{}", std::process::id())));
    let args = ["--collector.pmc", "--no-collector.process", "--path.cgroupfs", v2.to_str().unwrap()];
    for (paranoid, opens) in [(2, false), (1, false), (0, true)] {
        // Only for the start, when the counters are opened: other tests may expect the usual value.
        let setting = Paranoid::set(paranoid);
        let Some(exporter) = Exporter::start_as_nobody(&args) else { break };
        let log = logged_before_any_scrape(&exporter);
        drop(setting);
        let text = exporter.metrics();
        let success = format!("memleak_exporter_collector_success{{collector=\"pmc\"}} {}\n", u8::from(opens));
        assert!(text.contains(&success), "paranoid {paranoid}: {text}");
        assert!(text.contains("memleak_exporter_collector_success{collector=\"psi\"} 1\n"), "the rest still serves");
        assert!(text.contains("memleak_pmc_supported{event=\"cycles\"} 0\n"));
        if opens {
            let ours = format!(
                "memleak_pmc_cgroup_page_faults_total{{cgroup=\"/memleak-e2e-{}\",kind=\"all\"}} ",
                std::process::id()
            );
            assert!(text.contains(&ours), "paranoid 0: the test's cgroup is counted: {text}");
            assert!(!log.contains("cannot open perf counters"), "{log}");
        } else {
            let errors = "memleak_exporter_errors_total{collector=\"pmc\",type=\"permission\"} 1\n";
            assert!(text.contains(errors), "paranoid {paranoid}: only the scrape counts: {text}");
            // Logged once, at start-up (before any scrape: see `log` above), with the rule and the value here.
            assert!(log.contains("cannot open perf counters"), "{log}");
            let hint = format!("perf_event_paranoid <= 0 (it is {paranoid} here)");
            assert!(log.contains("CAP_PERFMON") && log.contains(&hint), "{log}");
            assert_eq!(exporter.stderr().matches("cannot open perf counters").count(), 1, "not again at the scrape");
        }
    }
    drop(cgroup);
}

/// A cgroup made for a test, removed when dropped.
struct TempCgroup(std::path::PathBuf);

impl TempCgroup {
    fn create(path: std::path::PathBuf) -> TempCgroup {
        std::fs::create_dir(&path).unwrap();
        TempCgroup(path)
    }
}

impl Drop for TempCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn bpf_denied_is_reported_not_fatal() {
    for mode in ["sampled", "every-fault"] {
        let args = [
            "--collector.page_faults",
            "--collector.page_faults.mode",
            mode,
            "--collector.memory_syscalls",
            "--no-collector.process",
        ];
        let Some(exporter) = Exporter::start_as_nobody(&args) else { return };
        // Probed at start-up: the log says it before any scrape.
        let at_start = logged_before_any_scrape(&exporter);
        for collector in ["page_faults", "memory_syscalls"] {
            assert!(at_start.contains(&format!("collector={collector}")), "{mode}: not logged at start: {at_start}");
        }
        let text = exporter.metrics();
        let kind = if memleak_bpf::built_with_bpf() { "permission" } else { "unsupported" };
        for collector in ["page_faults", "memory_syscalls"] {
            let success = format!("memleak_exporter_collector_success{{collector=\"{collector}\"}} 0\n");
            assert!(text.contains(&success), "{mode}: {text}");
            let error = format!("memleak_exporter_errors_total{{collector=\"{collector}\",type=\"{kind}\"}} 1\n");
            assert!(text.contains(&error), "{mode}: {text}");
        }
        assert!(text.contains("memleak_exporter_collector_success{collector=\"psi\"} 1\n"), "the rest still serves");
        let log = exporter.stderr();
        assert!(log.contains("page_faults") && log.contains("memory_syscalls") && log.contains("CAP_BPF"), "{log}");
    }
}
