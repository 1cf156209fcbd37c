//! Bombs in a watched folder, under the shipped unit's `MemoryMax=64M` (a
//! memory cgroup made for the exporter): decompression bombs of zeros and of a
//! huge LSan log (zstd and gzip, generated here as streams), a multi-GB sparse
//! file, a FIFO, heap dumps naming tracefs' `trace_pipe` or a 3 GB file as
//! their library, a log with more stacks than the budget. Each is refused or
//! cut with its reason, the exporter's peak RSS (VmHWM) stays within the limit,
//! and the next good file is still ingested. Then a file the exporter dies on
//! (SIGKILL mid-ingest; an OOM kill under a budget raised past the limit) is
//! not tried again after a restart. Root only (CI runs them as root).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Exporter, is_root, require_tool};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The shipped unit's limit (deploy/systemd/memleak-exporter.service).
const MEMORY_MAX: u64 = 64 << 20;

fn root() -> bool {
    if is_root() {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI runs as root: this test must run there");
    eprintln!("SKIP: needs root (a memory cgroup for the exporter)");
    false
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../artifacts/tests/fixtures").join(path)).unwrap()
}

/// A memory cgroup with a hard limit, removed on drop (v1 `memory.limit_in_bytes`, or v2 `memory.max`).
struct Cage {
    dir: PathBuf,
    v2: bool,
}

impl Cage {
    fn new(limit: u64) -> Option<Cage> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("memleak-test-{}-{seq}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let v2_root = Path::new("/sys/fs/cgroup");
        let (dir, v2) = if v1.join("memory.limit_in_bytes").exists() {
            (v1.join(&name), false)
        } else if std::fs::read_to_string(v2_root.join("cgroup.controllers")).is_ok_and(|c| c.contains("memory")) {
            let _ = std::fs::write(v2_root.join("cgroup.subtree_control"), "+memory");
            (v2_root.join(&name), true)
        } else {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "no memory cgroup controller to cage the exporter");
            eprintln!("SKIP: no memory cgroup controller");
            return None;
        };
        std::fs::create_dir(&dir).unwrap();
        if v2 {
            std::fs::write(dir.join("memory.max"), limit.to_string()).unwrap();
            let _ = std::fs::write(dir.join("memory.swap.max"), "0");
        } else {
            std::fs::write(dir.join("memory.limit_in_bytes"), limit.to_string()).unwrap();
            let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), limit.to_string());
        }
        Some(Cage { dir, v2 })
    }

    /// Starts the exporter inside the cage (it joins before it execs).
    fn start(&self, args: &[&str]) -> Exporter {
        let join = format!("echo $$ > {} && exec \"$0\" \"$@\"", self.dir.join("cgroup.procs").display());
        Exporter::start_with(Some(Path::new("/bin/sh")), &["-c", &join], args)
    }

    fn pids(&self) -> Vec<u32> {
        let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        procs.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// The most memory the kernel charged to the cage (anonymous and page cache), when it says.
    fn charged_peak(&self) -> Option<u64> {
        let file = if self.v2 { "memory.peak" } else { "memory.max_usage_in_bytes" };
        std::fs::read_to_string(self.dir.join(file)).ok()?.trim().parse().ok()
    }

    /// How many processes the kernel killed for running out of the cage's memory.
    fn oom_kills(&self) -> u64 {
        let file = if self.v2 { "memory.events" } else { "memory.oom_control" };
        let text = std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
    }
}

impl Drop for Cage {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A field of /proc/PID/status, in bytes (`VmHWM`, `VmRSS`).
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb << 10
}

/// CPU seconds (user + system) the process used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// A zstd frame of `n` zero bytes made of RLE blocks (4 bytes per 128 KiB): a bomb written in a blink.
fn zstd_zeros(n: u64) -> Vec<u8> {
    // Magic, a frame header without content size (window 128 KiB), then blocks.
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38];
    let block = 128u64 << 10;
    let mut left = n;
    while left > 0 {
        let size = left.min(block);
        left -= size;
        let header = (size << 3) | (1 << 1) | u64::from(left == 0);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.push(0);
    }
    out
}

/// A gzip member of `n` zero bytes: one literal, then (length 258, distance 1)
/// copies in a fixed-Huffman block, 13 bits per 258 bytes (deflate's best ratio).
fn gzip_zeros(n: u64) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        len: u32,
    }
    impl Bits {
        /// Pushes `count` bits of `value`, least significant first.
        fn push(&mut self, value: u64, count: u32) {
            self.acc |= value << self.len;
            self.len += count;
            while self.len >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.len -= 8;
            }
        }
        /// A Huffman code (most significant bit first).
        fn code(&mut self, code: u64, count: u32) {
            let reversed = (0..count).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
            self.push(reversed, count);
        }
    }
    let mut bits = Bits { out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3], acc: 0, len: 0 };
    bits.push(1, 1); // the last block
    bits.push(1, 2); // fixed Huffman codes
    bits.code(0x30, 8); // literal 0
    for _ in 0..(n - 1) / 258 {
        bits.code(0b1100_0101, 8); // length 258 (code 285)
        bits.code(0, 5); // distance 1
    }
    bits.code(0, 7); // end of block
    bits.push(0, 7);
    // The trailer (CRC-32, size) is never reached: the reader stops long before.
    bits.out.extend_from_slice(&[0; 8]);
    bits.out
}

/// `n` bytes of an LSan report of many identical leaks, compressed by `tool` (zstd or gzip) as a stream.
fn compressed_lsan(tool: &Path, n: u64) -> Vec<u8> {
    let mut child =
        Command::new(tool).arg("-1").arg("-c").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut chunk = String::from("==1==ERROR: LeakSanitizer: detected memory leaks\n\n");
        while chunk.len() < 1 << 20 {
            chunk.push_str("Direct leak of 1536 byte(s) in 1 object(s) allocated from:\n");
            for d in 0..12 {
                let _ = writeln!(chunk, "    #{d} 0x55e112a133b9 in leak_request_buffer /build/leaky_a.c:69");
            }
            chunk.push('\n');
        }
        let mut written = 0;
        while written < n {
            stdin.write_all(chunk.as_bytes()).unwrap();
            written += chunk.len() as u64;
        }
    });
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    out
}

/// A jemalloc dump of the fixtures whose every mapping names `path`.
fn dump_mapping(path: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture("jemalloc/a.jeprof.heap")).unwrap();
    let (head, maps) = text.split_once("MAPPED_LIBRARIES:").unwrap();
    let maps: String = maps
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            if fields.len() >= 6 { format!("{} {path}\n", fields[..5].join(" ")) } else { format!("{l}\n") }
        })
        .collect();
    format!("{head}MAPPED_LIBRARIES:{maps}").into_bytes()
}

/// An uncompressed LSan log just under `n` bytes with more deep stacks than the parsed-size budget holds.
fn big_lsan(n: usize) -> Vec<u8> {
    let mut s = String::from("==1==ERROR: LeakSanitizer: detected memory leaks\n\n");
    let mut leaks = 0u64;
    while s.len() < n - 4096 {
        s.push_str("Direct leak of 8 byte(s) in 1 object(s) allocated from:\n");
        for d in 0..60 {
            let _ = writeln!(s, "    #{d} 0x1 in function_{leaks}_{d} /src/deep/file_{d}.c:{d}");
        }
        s.push('\n');
        leaks += 1;
    }
    let _ = writeln!(s, "SUMMARY: AddressSanitizer: {} byte(s) leaked in {leaks} allocation(s).", leaks * 8);
    s.into_bytes()
}

/// Scrapes until `done` holds or `secs` passed; returns the last scrape.
fn wait_until(exporter: &Exporter, secs: u64, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = exporter.metrics();
        if done(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn value(text: &str, series: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}

fn failures(text: &str, reason: &str) -> f64 {
    value(text, &format!("memleak_ingest_failures_total{{reason=\"{reason}\"}}"))
}

fn ingested(text: &str, format: &str) -> f64 {
    value(text, &format!("memleak_ingest_files_total{{format=\"{format}\",outcome=\"ingested\"}}"))
}

/// Puts `files` (name, bytes) into `watched` at once (written aside, then renamed in).
fn drop_files(watched: &Path, files: &[(&str, Vec<u8>)]) {
    let aside = watched.parent().unwrap().join("aside");
    std::fs::create_dir_all(&aside).unwrap();
    for (name, bytes) in files {
        std::fs::write(aside.join(name), bytes).unwrap();
        std::fs::rename(aside.join(name), watched.join(name)).unwrap();
    }
}

fn args(watched: &Path) -> Vec<String> {
    [
        "--ingest.dir",
        watched.to_str().unwrap(),
        "--ingest.interval",
        "200ms",
        "--no-collector.process",
        "--no-collector.cgroup",
    ]
    .map(str::to_owned)
    .to_vec()
}

#[test]
fn bombs_are_refused_within_the_shipped_memory_limit_and_the_next_file_is_still_ingested() {
    if !root() {
        return;
    }
    let (Some(zstd), Some(gzip)) = (require_tool("zstd", "zstd"), require_tool("gzip", "gzip")) else { return };
    let Some(cage) = Cage::new(MEMORY_MAX) else { return };
    if !Path::new("/sys/kernel/tracing/trace_pipe").exists() {
        let _ = Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]).status();
    }
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("dumps");
    std::fs::create_dir(&watched).unwrap();
    // A 3 GB sparse "library", world-readable, for a dump to name.
    let big_library = dir.path().join("libhuge.so");
    std::fs::File::create(&big_library).unwrap().set_len(3 << 30).unwrap();
    std::fs::set_permissions(&big_library, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    let exporter = cage.start(&args(&watched).iter().map(String::as_str).collect::<Vec<_>>());
    let pid = cage.pids()[0];
    let baseline = status_bytes(pid, "VmRSS");
    let baseline_anon = status_bytes(pid, "RssAnon");
    let started = Instant::now();
    let cpu_before = cpu_seconds(pid);
    drop_files(
        &watched,
        &[
            ("zeros-10g.zst", zstd_zeros(10 << 30)),
            ("zeros-2g.gz", gzip_zeros(2 << 30)),
            ("lsan-1g.zst", compressed_lsan(&zstd, 1 << 30)),
            ("lsan-256m.gz", compressed_lsan(&gzip, 256 << 20)),
            ("trace-pipe.heap", dump_mapping("/sys/kernel/tracing/trace_pipe")),
            ("huge-library.heap", dump_mapping(big_library.to_str().unwrap())),
            ("deep.log", big_lsan(15 << 20)),
            // Invalid UTF-8, alone and behind an LSan header: 3 bytes of U+FFFD each held 3× the budget.
            ("ff-16m.log", vec![0xff; 16 << 20]),
            (
                "lsan-ff.log",
                [b"==1==ERROR: LeakSanitizer: detected memory leaks\n\n".to_vec(), vec![0xff; (16 << 20) - 50]]
                    .concat(),
            ),
        ],
    );
    let sparse = watched.join("sparse-8g.log");
    std::fs::File::create(&sparse).unwrap().set_len(8 << 30).unwrap();
    rustix::fs::mkfifoat(rustix::fs::CWD, watched.join("fifo"), rustix::fs::Mode::from_raw_mode(0o644)).unwrap();

    let bombs = |t: &str| failures(t, "compression_ratio") + failures(t, "decompressed_too_large");
    let done = |name: &str| [".ingested", ".failed"].iter().any(|d| watched.join(d).join(name).is_file());
    let text = wait_until(&exporter, 120, |t| {
        done("ff-16m.log")
            && done("lsan-ff.log")
            && bombs(t) == 4.0
            && failures(t, "file_too_large") == 1.0
            && failures(t, "fifo") == 1.0
            && ingested(t, "jemalloc") == 2.0
            && ingested(t, "lsan") == 1.0
    });
    let elapsed = started.elapsed();
    assert_eq!(bombs(&text), 4.0, "{text}");
    assert_eq!((failures(&text, "file_too_large"), failures(&text, "fifo")), (1.0, 1.0), "{text}");
    assert_eq!((ingested(&text, "jemalloc"), ingested(&text, "lsan")), (2.0, 1.0), "{text}");
    // The dumps naming trace_pipe and the 3 GB file were ingested, their libraries left unread.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(watched.join(".ingested/trace-pipe.heap.json")).unwrap()).unwrap();
    assert!(summary["unsymbolized"].as_str().unwrap().contains("trace_pipe ("), "{summary}");
    // The log with more stacks than the budget: every leak counted, the rest of the detail left out.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(watched.join(".ingested/deep.log.json")).unwrap()).unwrap();
    assert!(summary["left_out"][0].as_str().unwrap().contains("leak records left out"), "{summary}");
    for (file, reason) in [("zeros-10g.zst", "zstd"), ("sparse-8g.log", "more than the budget")] {
        let why = std::fs::read_to_string(watched.join(format!(".failed/{file}.error.txt"))).unwrap();
        assert!(why.contains(reason), "{file}: {why}");
    }

    // Still alive, within the limit, and the next good file goes through.
    drop_files(&watched, &[("good.log", fixture("lsan/asan.txt"))]);
    let text = wait_until(&exporter, 30, |t| ingested(t, "lsan") == 2.0);
    assert_eq!(ingested(&text, "lsan"), 2.0, "{text}");
    let peak = status_bytes(pid, "VmHWM");
    let cpu = cpu_seconds(pid) - cpu_before;
    eprintln!(
        "bombs: baseline RSS {} MiB (anon {} MiB), peak RSS (VmHWM) {} MiB, charged peak {:?} MiB under a {} MiB limit; {cpu:.1} CPU s, {:.1} s wall",
        baseline >> 20,
        baseline_anon >> 20,
        peak >> 20,
        cage.charged_peak().map(|p| p >> 20),
        MEMORY_MAX >> 20,
        elapsed.as_secs_f64()
    );
    // What the limit holds is what the kernel charges to the cage (anonymous memory and the page
    // cache it reads), its memory.peak. VmHWM also counts the text pages of the 230 MB debug
    // binary, charged to whichever cgroup first read them (30 of the 33 MiB at rest): measured
    // 62 MiB of VmHWM for a charged peak of 40 MiB. It stands in only where the kernel has no peak.
    let charged = cage.charged_peak().unwrap_or(peak);
    assert!(charged < MEMORY_MAX, "charged peak {charged} bytes (VmHWM {peak}), over the {MEMORY_MAX}-byte limit");
    assert_eq!(cage.oom_kills(), 0, "the exporter was OOM-killed");
    drop(exporter);
}

#[test]
fn a_file_the_exporter_dies_on_is_moved_aside_at_the_next_start_and_never_tried_again() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("dumps");
    std::fs::create_dir(&watched).unwrap();
    let args = args(&watched);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Killed (SIGKILL) in the middle of a file: caught under its private name, then killed.
    let exporter = Exporter::start(&args);
    // A name with a control character: its output name differs, and the reason must name the original.
    drop_files(&watched, &[("vic\ttim.log", big_lsan(15 << 20))]);
    let work = watched.join(".ingested/.vic_tim.log.work");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !work.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(work.exists(), "never caught the file while it was ingested");
    drop(exporter);

    let exporter = Exporter::start(&args);
    drop_files(&watched, &[("good.log", fixture("lsan/asan.txt"))]);
    let text = wait_until(&exporter, 30, |t| ingested(t, "lsan") == 1.0);
    assert_eq!(failures(&text, "interrupted"), 1.0, "{text}");
    assert_eq!(ingested(&text, "lsan"), 1.0, "only the good file: {text}");
    let why = std::fs::read_to_string(watched.join(".failed/vic_tim.log.error.txt")).unwrap();
    assert!(why.starts_with("vic\\x09tim.log: ") && why.contains("stopped while ingesting this file"), "{why}");
    assert!(watched.join(".failed/vic_tim.log").is_file());
    drop(exporter);
}

#[test]
fn a_bomb_that_kills_the_exporter_under_a_raised_budget_does_not_kill_it_again_after_a_restart() {
    if !root() {
        return;
    }
    let Some(zstd) = require_tool("zstd", "zstd") else { return };
    let Some(cage) = Cage::new(MEMORY_MAX) else { return };
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("dumps");
    std::fs::create_dir(&watched).unwrap();
    // A budget raised far past what the unit's limit holds: the bomb is read whole.
    let mut args = args(&watched);
    args.extend(
        [
            "--ingest.max-decompressed-bytes",
            "2147483648",
            "--ingest.max-ratio",
            "1000000",
            "--ingest.max-parsed-bytes",
            "2147483648",
        ]
        .map(str::to_owned),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exporter = cage.start(&args);
    drop_files(&watched, &[("lsan-1g.zst", compressed_lsan(&zstd, 1 << 30))]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cage.pids().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(cage.pids().is_empty(), "the exporter survived a bomb read whole under {MEMORY_MAX} bytes");
    assert_eq!(cage.oom_kills(), 1);
    drop(exporter);

    // Restarted (as systemd's Restart=on-failure would), with the same budget: it moves the file aside and lives.
    let exporter = cage.start(&args);
    let text = wait_until(&exporter, 30, |t| failures(t, "interrupted") == 1.0);
    assert_eq!(failures(&text, "interrupted"), 1.0, "{text}");
    std::thread::sleep(Duration::from_secs(2));
    exporter.metrics();
    assert_eq!(cage.oom_kills(), 1, "killed again after the restart");
    assert!(watched.join(".failed/lsan-1g.zst").is_file());
}
