//! End-to-end: the real binary on a fixture root, scraped over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_memleak-exporter");

fn fixture_root(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../signals/tests/fixtures").join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running exporter, killed on drop.
struct Exporter {
    child: Child,
    port: u16,
    stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Exporter {
    fn start(args: &[&str]) -> Exporter {
        let dir = tempfile::tempdir().unwrap();
        let stderr_path = dir.path().join("stderr.log");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(BIN)
            .args(["--web.listen-address", &listen])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let mut exporter = Exporter { child, port, stderr_path, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = exporter.child.try_wait().unwrap() {
                panic!("exporter exited early with {status}: {}", exporter.stderr());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() && exporter.get("/-/ready", None).0 == 200 {
                return exporter;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("exporter not ready in 20 s: {}", exporter.stderr());
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// (status, headers, body)
    fn get(&self, path: &str, accept: Option<&str>) -> (u16, String, Vec<u8>) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n{accept}Connection: close\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no header end");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, head, raw[split + 4..].to_vec())
    }

    fn metrics(&self) -> String {
        let (status, _, body) = self.get("/metrics", None);
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    }

    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc_kill(self.child.id() as i32, 15) };
        let status = self.child.wait().unwrap();
        (status, self.stderr())
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

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
fn scrape_of_a_fixture_root_matches_the_golden_file() {
    let args = root_args(&fixture_root("root-v2"));
    let exporter = Exporter::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let text = stable(&exporter.metrics());
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/e2e-root-v2.prom");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    assert!(text == expected, "/metrics differs from {}; rerun with UPDATE_GOLDEN=1 and review", golden.display());
    // Every collector succeeded on the clean fixture.
    for id in ["psi", "host_memory", "process", "cgroup"] {
        assert!(text.contains(&format!("memleak_exporter_collector_success{{collector=\"{id}\"}} 1\n")), "{id}");
    }
    promtool_check(&exporter.metrics());
}

#[test]
fn scrape_of_this_host_passes_promtool() {
    let exporter = Exporter::start(&[]);
    promtool_check(&exporter.metrics());
}

/// `promtool check metrics` must print nothing. Under CI=true a missing promtool fails.
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIP promtool check: {err}; install Debian package `prometheus`");
            return;
        }
        Err(err) => panic!("promtool is required under CI=true (Debian package `prometheus`): {err}"),
    };
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
    assert!(text.contains("memleak_exporter_errors_total{signal=\"psi\",type=\"parse\"} 1\n"));
    // The good process is still reported; the broken one is skipped.
    assert!(text.contains("memleak_process_processes{group=\"a_cachesvc\"} 1\n"));
    exporter.metrics();
    let text = exporter.metrics();
    assert!(text.contains("memleak_exporter_errors_total{signal=\"psi\",type=\"parse\"} 3\n"));
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
    assert!(String::from_utf8_lossy(&out.stdout).contains("group_by=Cgroup"));

    let out = Command::new(BIN).args(["--config.file", "/nonexistent/memleak.yml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file /nonexistent/memleak.yml"));
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
