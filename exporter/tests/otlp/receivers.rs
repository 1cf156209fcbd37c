//! The real OTLP receivers the tests start: rotel (metrics and logs, printed
//! by its debug exporter) and the small Python receiver on the official
//! `opentelemetry-proto` and `grpcio` packages (profiles, decoded to JSON).
//! Both come from the venv that scripts/install-test-deps.sh builds.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The venv of the OTLP test receivers, or a skip (None) outside CI.
pub fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("MEMLEAK_OTLP_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/memleak-exporter/otlp-venv")))?;
    if dir.join("bin/python3").is_file() {
        return Some(dir);
    }
    let why = format!("no OTLP test venv at {}: run scripts/install-test-deps.sh", dir.display());
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why} (required under CI=true)");
    eprintln!("SKIP: {why}");
    None
}

fn rotel_binary(venv: &std::path::Path) -> PathBuf {
    let lib = venv.join("lib");
    std::fs::read_dir(&lib)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("site-packages/rotel/rotel-agent"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("rotel-agent not in {}: run scripts/install-test-deps.sh", lib.display()))
}

/// A running receiver, killed on drop; its stdout goes to a file.
pub struct Receiver {
    child: Child,
    pub grpc_port: u16,
    pub http_port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// rotel with its debug exporter printing metrics and logs in detail.
    pub fn rotel(venv: &std::path::Path, grpc_port: u16, http_port: u16) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("rotel.pid");
        let grpc = format!("127.0.0.1:{grpc_port}");
        let http = format!("127.0.0.1:{http_port}");
        let mut command = Command::new(rotel_binary(venv));
        command.args(["start", "--otlp-grpc-endpoint", &grpc, "--otlp-http-endpoint", &http]);
        command.args(["--exporter", "blackhole", "--debug-log", "metrics", "--debug-log", "logs"]);
        command.args(["--debug-log-verbosity", "detailed", "--pid-file", pid.to_str().unwrap()]);
        Receiver::spawn(command, dir, grpc_port, http_port)
    }

    /// The Python receiver of tests/otlp/profiles_receiver.py (gRPC and HTTP): one JSON line per export.
    pub fn python(venv: &std::path::Path, grpc_port: u16, http_port: u16) -> Receiver {
        Receiver::python_in_mode(venv, grpc_port, http_port, "ok")
    }

    /// The Python receiver answering HTTP exports per `mode`: ok, reject (400), slow (3 s) or
    /// flaky (503 with Retry-After: 1 five times, then ok).
    pub fn python_in_mode(venv: &std::path::Path, grpc_port: u16, http_port: u16, mode: &str) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/otlp/profiles_receiver.py");
        let mut command = Command::new(venv.join("bin/python3"));
        command.arg(script).args([grpc_port.to_string(), http_port.to_string(), mode.to_owned()]);
        Receiver::spawn(command, dir, grpc_port, http_port)
    }

    /// The Python receiver speaking TLS (gRPC and HTTP) with the certificate and key in `cert`, `key`.
    pub fn python_tls(venv: &std::path::Path, grpc_port: u16, http_port: u16, cert: &Path, key: &Path) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/otlp/profiles_receiver.py");
        let mut command = Command::new(venv.join("bin/python3"));
        command.arg(script).args([grpc_port.to_string(), http_port.to_string(), "ok".to_owned()]).arg(cert).arg(key);
        Receiver::spawn(command, dir, grpc_port, http_port)
    }

    fn spawn(mut command: Command, dir: tempfile::TempDir, grpc_port: u16, http_port: u16) -> Receiver {
        let out = dir.path().join("out.log");
        let file = std::fs::File::create(&out).unwrap();
        let child = command.stdout(file.try_clone().unwrap()).stderr(file).stdin(Stdio::null()).spawn().unwrap();
        let receiver = Receiver { child, grpc_port, http_port, out, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let up = |p: u16| TcpStream::connect(("127.0.0.1", p)).is_ok();
            if up(grpc_port) && up(http_port) {
                return receiver;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("receiver not listening in 20 s: {}", receiver.output());
    }

    pub fn output(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.out) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Waits until `done` holds for the output; panics with the output after `timeout`.
    pub fn wait_for(&self, timeout: Duration, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.output();
            if done(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "receiver never showed {what} in {timeout:?}:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One number data point as rotel prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub metric: String,
    pub unit: String,
    pub data_type: String,
    pub monotonic: Option<bool>,
    pub attributes: Vec<(String, String)>,
    pub start: u64,
    pub time: u64,
    pub value: f64,
}

/// The number data points and resource attributes in rotel's debug output.
pub fn rotel_points(text: &str) -> (Vec<Point>, Vec<(String, String)>) {
    let mut points = Vec::new();
    let mut resource = Vec::new();
    let mut current = Point {
        metric: String::new(),
        unit: String::new(),
        data_type: String::new(),
        monotonic: None,
        attributes: Vec::new(),
        start: 0,
        time: 0,
        value: 0.0,
    };
    let mut section = "";
    for line in text.lines() {
        let line = line.trim_end();
        if line == "Resource attributes:" {
            section = "resource";
            resource.clear();
        } else if line.starts_with("Metric #") || line.starts_with("ScopeMetrics") {
            section = "";
        } else if line.starts_with("NumberDataPoints #") {
            section = "point";
            current.attributes.clear();
        } else if let Some(kv) = line.strip_prefix("     -> ") {
            let (key, value) = kv.split_once(':').map_or((kv, ""), |(k, v)| (k, v.trim()));
            let value = value.strip_prefix("Str(").and_then(|v| v.strip_suffix(')')).unwrap_or(value).to_owned();
            match (section, key) {
                (_, "Name") => current.metric = value,
                (_, "Unit") => current.unit = value,
                (_, "DataType") => current.data_type = value,
                (_, "IsMonotonic") => current.monotonic = Some(value == "true"),
                ("resource", _) => resource.push((key.to_owned(), value)),
                ("point", _) => current.attributes.push((key.to_owned(), value)),
                _ => {}
            }
            if key == "Name" {
                current.monotonic = None;
            }
        } else if let Some(v) = line.strip_prefix("StartTimestamp: ") {
            current.start = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Timestamp: ") {
            current.time = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Value: ")
            && section == "point"
        {
            current.value = v.trim().parse().unwrap_or(f64::NAN);
            points.push(current.clone());
        }
    }
    (points, resource)
}
