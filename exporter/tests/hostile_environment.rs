//! The exporter in a hostile environment, on the real binary: a closed or
//! broken stderr, SIGHUP, and `--config.file` naming what is no file to read
//! (a FIFO without a writer, `/dev/zero`, a directory, a huge file).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{BIN, Exporter, fixture_root, free_port, http_get};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { kill(child.id() as i32, sig) }, 0);
}

const SIGHUP: i32 = 1;
const SIGTERM: i32 = 15;

/// Waits for `/-/ready` on `port`; panics after 20 s or when the child exits.
fn wait_ready(child: &mut Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("exited early with {status}");
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() && http_get(port, "/-/ready", None).0 == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not ready in 20 s");
}

/// Requests that make the exporter log (a refused webhook request, a scrape).
fn make_it_log(port: u16) {
    for _ in 0..20 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
            .write_all(b"POST /api/v1/alerts HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 415"), "the handler answered despite the log: {answer:?}");
    }
    assert_eq!(http_get(port, "/metrics", None).0, 200);
}

/// Stops the child with SIGTERM and waits: its exit status must be success (a panic exits 101).
fn stop(mut child: Child) {
    signal(&child, SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exited with {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("did not stop within 10 s of SIGTERM");
}

fn args(port: u16) -> Vec<String> {
    let root = fixture_root("root-v2");
    [
        "--web.listen-address",
        &format!("127.0.0.1:{port}"),
        "--path.rootfs",
        root.to_str().unwrap(),
        "--log.level",
        "debug",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn a_stderr_pipe_whose_reader_is_gone_breaks_nothing() {
    // `memleak-exporter 2>&1 | head -1`: the first line is read, then the pipe's reader is gone.
    let port = free_port();
    let mut child = Command::new(BIN).args(args(port)).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut head = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    head.read_line(&mut first).unwrap();
    drop(head);
    wait_ready(&mut child, port);
    make_it_log(port);
    signal(&child, SIGHUP);
    make_it_log(port);
    stop(child);
}

#[test]
fn a_closed_stderr_breaks_nothing() {
    // Started with fd 2 closed (`2>&-`): nothing to write the log to, and fd 2 must not become a socket.
    let port = free_port();
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg("exec \"$0\" \"$@\" 2>&-")
        .arg(BIN)
        .args(args(port))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(&mut child, port);
    let fd2 = std::fs::read_link(format!("/proc/{}/fd/2", child.id())).unwrap();
    assert_eq!(fd2, std::path::Path::new("/dev/null"), "fd 2 is {}", fd2.display());
    make_it_log(port);
    stop(child);
}

#[test]
fn sighup_is_logged_and_the_exporter_keeps_serving() {
    let root = fixture_root("root-v2");
    let exporter = Exporter::start(&["--path.rootfs", root.to_str().unwrap()]);
    for _ in 0..3 {
        exporter.signal(SIGHUP);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(exporter.get("/-/healthy", None).0, 200, "alive after SIGHUP");
    }
    let (status, log) = exporter.terminate();
    assert!(status.success(), "{status}: {log}");
    assert_eq!(log.matches("configuration reload is not supported").count(), 3, "{log}");
    assert!(log.contains("signal=SIGHUP") && log.contains("restart it to apply a new one"), "{log}");
}

#[test]
fn a_config_file_that_is_no_regular_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("config.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let huge = dir.path().join("huge.yml");
    std::fs::write(&huge, format!("# {}\n", "x".repeat(2 << 20))).unwrap();
    for (path, needle) in [
        (fifo.as_path(), "is a FIFO"),
        (std::path::Path::new("/dev/zero"), "is a device"),
        (dir.path(), "is a directory"),
        (huge.as_path(), "at most 1048576 are read"),
    ] {
        let started = Instant::now();
        let mut child = Command::new(BIN)
            .args(["--config.file", path.to_str().unwrap(), "--config.check"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("--config.file {} still running after 10 s", path.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!(status.code(), Some(2), "{}: {err}", path.display());
        assert!(err.contains(needle) && err.contains("config file"), "{}: {err}", path.display());
    }
}
