//! Helpers shared by the end-to-end tests: start the real binary, talk HTTP.

#![allow(dead_code)]

pub mod captures;
pub mod prometheus;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_memleak-exporter");

pub fn fixture_root(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../signals/tests/fixtures").join(name)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running exporter, killed on drop.
pub struct Exporter {
    child: Child,
    pub port: u16,
    stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Exporter {
    pub fn start(args: &[&str]) -> Exporter {
        Exporter::start_with(None, &[], args)
    }

    /// Starts the exporter as user `nobody` (setpriv from util-linux), to meet real permission
    /// denials. `None` (a skip) when this test process is not root.
    pub fn start_as_nobody(args: &[&str]) -> Option<Exporter> {
        if !is_root() {
            eprintln!("SKIP: needs root to switch to user nobody");
            return None;
        }
        let setpriv = require_tool("setpriv", "util-linux")?;
        Some(Exporter::start_with(
            Some(setpriv.as_path()),
            &["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"],
            args,
        ))
    }

    /// Starts on the fixture root `root-v2`, watching `watched` every `interval`, with `extra` flags.
    pub fn start_ingesting(watched: &Path, interval: &str, extra: &[&str]) -> Exporter {
        let root = fixture_root("root-v2");
        let mut all = vec![
            "--path.rootfs",
            root.to_str().unwrap(),
            "--ingest.dir",
            watched.to_str().unwrap(),
            "--ingest.interval",
            interval,
        ];
        all.extend_from_slice(extra);
        Exporter::start_with(None, &[], &all)
    }

    /// Starts listening on `listen` (HOST:PORT, port 0 for any) instead of a loopback port.
    pub fn start_on(listen: &str, args: &[&str]) -> Exporter {
        let mut all = vec!["--web.listen-address", listen];
        all.extend_from_slice(args);
        Exporter::start_with(None, &[], &all)
    }

    /// Starts the binary through `wrapper wrapper_args… BIN args…` when a wrapper is given.
    /// Without a `--web.listen-address` in `args` it listens on 127.0.0.1:0, and the port the
    /// kernel picked is read from its "listening" log line: no race between parallel tests.
    pub fn start_with(wrapper: Option<&Path>, wrapper_args: &[&str], args: &[&str]) -> Exporter {
        let dir = tempfile::tempdir().unwrap();
        let stderr_path = dir.path().join("stderr.log");
        let mut command = match wrapper {
            Some(w) => {
                let mut c = Command::new(w);
                c.args(wrapper_args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        if !args.contains(&"--web.listen-address") {
            command.args(["--web.listen-address", "127.0.0.1:0"]);
        }
        // The default spool is the host's state directory: tests keep theirs in their own folder.
        if !args.contains(&"--capture.dir") {
            command.arg("--capture.dir").arg(dir.path().join("captures"));
        }
        let child = command
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let mut exporter = Exporter { child, port: 0, stderr_path, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = exporter.child.try_wait().unwrap() {
                panic!("exporter exited early with {status}: {}", exporter.stderr());
            }
            if exporter.port == 0 {
                exporter.port = listening_port(&exporter.stderr()).unwrap_or(0);
            }
            if exporter.port != 0 && try_get(exporter.port, "/-/ready").is_some_and(|status| status == 200) {
                return exporter;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("exporter not ready in 20 s: {}", exporter.stderr());
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The log once it holds `needle`, or as it is after `limit`: lines reach
    /// stderr through the logger's queue, a moment after the event they tell.
    pub fn stderr_once_logged(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.stderr();
            if log.contains(needle) || Instant::now() >= deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// (status, headers, body)
    pub fn get(&self, path: &str, accept: Option<&str>) -> (u16, String, Vec<u8>) {
        http_get(self.port, path, accept)
    }

    pub fn metrics(&self) -> String {
        let (status, _, body) = self.get("/metrics", None);
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    }

    /// Sends the signal `sig` to the exporter.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc_kill(self.child.id() as i32, sig) };
    }

    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        self.signal(15);
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

/// The port of the exporter's `memleak-exporter listening … address=HOST:PORT` log line
/// (logfmt, or `"address":"HOST:PORT"` in JSON).
fn listening_port(log: &str) -> Option<u16> {
    let line = log.lines().find(|l| l.contains("memleak-exporter listening"))?;
    let address = match line.split_once("\"address\":\"") {
        Some((_, rest)) => rest.split('"').next()?,
        None => line.split_whitespace().find_map(|w| w.strip_prefix("address="))?,
    };
    address.rsplit(':').next()?.parse().ok()
}

/// The status of a GET, or `None` when the connection fails.
fn try_get(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    String::from_utf8_lossy(&raw).split_whitespace().nth(1)?.parse().ok()
}

/// GET over HTTP/1.1 on loopback: (status, headers, body).
pub fn http_get(port: u16, path: &str, accept: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n{accept}Connection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
    out
}

/// A tool the tests need: its path, or a skip (None) outside CI. Under CI=true a missing tool fails.
pub fn require_tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()));
    match found {
        Some(path) => Some(path),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{name} is required under CI=true: install the Debian package `{package}`")
        }
        None => {
            eprintln!("SKIP: {name} not found; install the Debian package `{package}`");
            None
        }
    }
}

/// `source` (a path in the repository) compiled by `compiler` (a C or C++ compiler from the
/// Debian package `package`) with `flags` into `out`: `out`, or a skip (None) when the
/// compiler is missing (a failure under CI=true). A failed build fails the test with the
/// compiler's messages.
pub fn compile(compiler: &str, package: &str, flags: &[&str], source: &str, out: &Path) -> Option<PathBuf> {
    require_tool(compiler, package)?;
    let built = Command::new(compiler).args(flags).arg("-o").arg(out).arg(repo(source)).output().unwrap();
    assert!(built.status.success(), "{compiler} failed on {source}:\n{}", String::from_utf8_lossy(&built.stderr));
    Some(out.to_path_buf())
}

/// gperftools' libtcmalloc (with the heap profiler): its path, or a skip (None) when it is
/// not installed (a failure under CI=true).
pub fn libtcmalloc() -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("libtcmalloc.so.4"))
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("libtcmalloc.so.4 is required under CI=true: install the Debian package `libgoogle-perftools4`");
        }
        eprintln!("SKIP: libtcmalloc.so.4 not found; install the Debian package `libgoogle-perftools4`");
    }
    found
}

/// Runs an instant Prometheus query on `port` and returns the first result's value.
pub fn query(port: u16, promql: &str) -> Option<f64> {
    let encoded: String = promql
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let (status, _, body) = http_get(port, &format!("/api/v1/query?query={encoded}"), None);
    if status != 200 {
        return None;
    }
    let body = String::from_utf8_lossy(&body);
    // {"status":"success","data":{"resultType":"vector","result":[{"metric":{…},"value":[t,"2"]}]}}
    let value = body.split("\"value\":[").nth(1)?;
    let number = value.split('"').nth(1)?;
    number.parse().ok()
}

/// A path in the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A YAML file of the repository, parsed.
pub fn yaml(path: &str) -> serde_norway::Value {
    let text = std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs a real tool from the repository root; it must succeed. Skips (or fails under CI=true) when missing.
pub fn run_tool(tool: &str, package: &str, args: &[&str]) {
    let Some(path) = require_tool(tool, package) else { return };
    let out = Command::new(path).args(args).current_dir(repo("")).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether this test process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// An HTTP/1.1 request on loopback with extra headers (`Name: value\r\n` each): (status, body).
pub fn request(port: u16, method: &str, path: &str, headers: &str, body: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

/// A child process killed (and reaped) when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns a program this test process has just written (a copied binary).
/// Another test thread forking at the moment of the copy keeps the file open
/// for writing in its child until that child's exec closes it, and exec of a
/// file open for writing fails with "Text file busy": that window is short,
/// so the spawn is tried again for up to five seconds.
pub fn spawn_just_written(command: &mut Command) -> Child {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result.unwrap_or_else(|e| panic!("spawning {command:?}: {e}")),
        }
    }
}

/// The status of a GET, or `None` when the connection fails.
pub fn http_get_status(port: u16, path: &str) -> Option<u16> {
    try_get(port, path)
}
