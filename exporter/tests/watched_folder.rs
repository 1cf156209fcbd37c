//! The watched folder under attack, as the README's trust model describes it:
//! the real binary runs as root and watches a folder that user `nobody`
//! writes into (setpriv), and that user tries to make it write outside its
//! state, read a root-only file, block, or trip over names. Root only: CI runs
//! them as root; elsewhere they skip (and fail under CI=true).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Exporter, is_root, require_tool};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether the test can run (root); outside CI a skip, under CI=true a failure.
fn root() -> bool {
    if is_root() {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI runs as root: this test must run there");
    eprintln!("SKIP: needs root (the exporter as root, a writer as nobody)");
    false
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../artifacts/tests/fixtures").join(path)).unwrap()
}

/// A root-owned place with a world-writable watched folder (no sticky bit: the
/// writer may rename what the exporter creates there), a root-only secret and
/// an empty root-only sandbox that nothing may write into.
struct Stage {
    _dir: tempfile::TempDir,
    base: PathBuf,
    watched: PathBuf,
    secret: PathBuf,
    marker: String,
    sandbox: PathBuf,
}

impl Stage {
    fn new() -> Stage {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_path_buf();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let watched = base.join("dumps");
        std::fs::create_dir(&watched).unwrap();
        std::fs::set_permissions(&watched, std::fs::Permissions::from_mode(0o777)).unwrap();
        let marker = format!("ROOT-ONLY-{}-{}", std::process::id(), base.display().to_string().len());
        let secret = base.join("secret");
        // Shaped like an LSan report, so that reading it would yield figures and quotes.
        let mut text = String::from_utf8(fixture("lsan/asan.txt")).unwrap();
        text = text.replace("leak_request_buffer", &marker);
        std::fs::write(&secret, text).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let sandbox = base.join("sandbox");
        std::fs::create_dir(&sandbox).unwrap();
        std::fs::set_permissions(&sandbox, std::fs::Permissions::from_mode(0o700)).unwrap();
        Stage { _dir: dir, base, watched, secret, marker, sandbox }
    }

    /// Runs `script` with sh as user nobody in the watched folder (`$SECRET`, `$SANDBOX` set).
    fn as_nobody(&self, script: &str) {
        let setpriv = require_tool("setpriv", "util-linux").unwrap();
        let out = Command::new(setpriv)
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "sh", "-c", script])
            .current_dir(&self.watched)
            .env("SECRET", &self.secret)
            .env("SANDBOX", &self.sandbox)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "as nobody: {script}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Writes `bytes` as nobody into the watched folder under `name` (any bytes).
    fn drop_as_nobody(&self, name: &[u8], bytes: &[u8]) {
        let staged = self.base.join("staged");
        std::fs::write(&staged, bytes).unwrap();
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o644)).unwrap();
        let target = self.watched.join(std::ffi::OsStr::from_bytes(name));
        let setpriv = require_tool("setpriv", "util-linux").unwrap();
        let status = Command::new(setpriv)
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "cp"])
            .arg(&staged)
            .arg(&target)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn start(&self, extra: &[&str]) -> Exporter {
        let mut args = vec![
            "--ingest.dir",
            self.watched.to_str().unwrap(),
            "--ingest.interval",
            "200ms",
            "--no-collector.process",
            "--no-collector.cgroup",
        ];
        args.extend_from_slice(extra);
        Exporter::start(&args)
    }

    /// Nothing was written into the sandbox, and the secret's content is
    /// nowhere but in the secret: not in any file under the stage, not in the log.
    fn assert_contained(&self, log: &str) {
        assert_eq!(std::fs::read_dir(&self.sandbox).unwrap().count(), 0, "something was written outside");
        assert!(!log.contains(&self.marker), "the root-only file's content is in the log:\n{log}");
        let mut todo = vec![self.base.clone()];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                let kind = entry.file_type().unwrap();
                if kind.is_dir() {
                    todo.push(path);
                } else if kind.is_file() && path != self.secret {
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    let text = String::from_utf8_lossy(&bytes);
                    assert!(!text.contains(&self.marker), "the root-only file's content is in {}", path.display());
                }
            }
        }
    }
}

/// The value of the series `series` (name and labels, exactly as exposed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes until `done` holds, or `secs` passed; returns the last scrape.
fn wait_until(exporter: &Exporter, secs: u64, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = exporter.metrics();
        if done(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

const GOOD: &str = "memleak_ingest_files_total{format=\"lsan\",outcome=\"ingested\"}";

#[test]
fn state_folders_planted_by_the_writer_are_refused_and_nothing_is_written_through_them() {
    if !root() {
        return;
    }
    let stage = Stage::new();
    // Before the exporter ever ran: links to the sandbox where its state folders go.
    stage.as_nobody("ln -s \"$SANDBOX\" .ingested && ln -s \"$SANDBOX\" .failed");
    stage.drop_as_nobody(b"a.log", &fixture("lsan/asan.txt"));
    let exporter = stage.start(&[]);
    let dir = stage.watched.display().to_string();
    let unusable = format!("memleak_ingest_dir_usable{{dir=\"{dir}\"}}");
    let text = wait_until(&exporter, 5, |t| value(t, &unusable) == Some(0.0));
    assert_eq!(value(&text, &unusable), Some(0.0), "{text}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(exporter.stderr().contains(".ingested is a symbolic link"), "{}", exporter.stderr());
    assert!(stage.watched.join("a.log").exists(), "nothing is taken while the folder is unusable");
    stage.assert_contained(&exporter.stderr());

    // Its own folder instead, with links named like the outputs: refused too (another owner).
    // Each folder is made under another name and exchanged with the link in one
    // renameat2(RENAME_EXCHANGE): removing the link first would let the exporter
    // create its own folder in between.
    stage.as_nobody(
        "mkdir .i .f && ln -s \"$SANDBOX/x\" .i/a.log.json && ln -s \"$SANDBOX/y\" .f/a.log.error.txt && \
         python3 -c 'import ctypes; c = ctypes.CDLL(None); \
           assert all(c.renameat2(-100, a, -100, b, 2) == 0 for a, b in ((b\".i\", b\".ingested\"), (b\".f\", b\".failed\")))' && \
         rm .i .f",
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(exporter.stderr().contains("is owned by uid 65534"), "{}", exporter.stderr());
    stage.assert_contained(&exporter.stderr());

    // Once they are gone the exporter creates its own and carries on.
    stage.as_nobody("rm -r .ingested .failed");
    let text = wait_until(&exporter, 20, |t| value(t, GOOD) == Some(1.0));
    assert_eq!(value(&text, &unusable), Some(1.0), "{text}");
    assert_eq!(value(&text, GOOD), Some(1.0), "{text}");
    let mode = std::fs::metadata(stage.watched.join(".ingested")).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o700);
    stage.assert_contained(&exporter.stderr());
}

#[test]
fn a_state_folder_renamed_under_the_exporter_does_not_redirect_its_writes() {
    if !root() {
        return;
    }
    let stage = Stage::new();
    let exporter = stage.start(&[]);
    wait_until(&exporter, 5, |_| stage.watched.join(".ingested").is_dir());
    // The writer may rename the exporter's folders (no sticky bit) and put links in their place.
    stage.as_nobody(
        "mv .ingested moved-ingested && mv .failed moved-failed && ln -s \"$SANDBOX\" .ingested && \
         ln -s \"$SANDBOX\" .failed",
    );
    stage.drop_as_nobody(b"b.log", &fixture("lsan/asan.txt"));
    stage.drop_as_nobody(b"junk.txt", b"not an artifact\n");
    let text = wait_until(&exporter, 20, |t| {
        value(t, GOOD) == Some(1.0) && value(t, "memleak_ingest_failures_total{reason=\"unknown_format\"}") == Some(1.0)
    });
    assert_eq!(value(&text, GOOD), Some(1.0), "{text}");
    // Results went into the exporter's own folder, wherever its name is now.
    assert!(stage.watched.join("moved-ingested/b.log.json").is_file());
    assert!(stage.watched.join("moved-failed/junk.txt.error.txt").is_file());
    stage.assert_contained(&exporter.stderr());
}

#[test]
fn links_fifos_devices_and_odd_names_are_refused_or_named_safely_never_followed() {
    if !root() {
        return;
    }
    let stage = Stage::new();
    let exporter = stage.start(&[]);
    let good = fixture("lsan/asan.txt");
    // A symbolic link to the root-only file, a FIFO, an empty file, a file with two names.
    stage.as_nobody("ln -s \"$SECRET\" secret-link && mkfifo fifo && : > empty");
    stage.drop_as_nobody(b"twice", &good);
    stage.as_nobody("ln twice twice-again");
    // What nobody may not do, done by root: a hard link to the secret, a device node.
    std::fs::hard_link(&stage.secret, stage.watched.join("secret-hardlink")).unwrap();
    let status = Command::new("mknod").arg(stage.watched.join("null-device")).args(["c", "1", "3"]).status().unwrap();
    assert!(status.success());
    // Names: 255 bytes, the same name twice, a name and that name with .json, not UTF-8, escapes.
    let long = vec![b'n'; 255];
    stage.drop_as_nobody(&long, &good);
    stage.drop_as_nobody(b"x", &good);
    stage.drop_as_nobody(b"x.json", &good);
    stage.drop_as_nobody(b"bad\xff\x1b[31mname", &good);
    stage.drop_as_nobody(b"dup.out", &good);
    let text = wait_until(&exporter, 30, |t| value(t, GOOD) == Some(5.0));
    assert_eq!(value(&text, GOOD), Some(5.0), "{text}");
    stage.drop_as_nobody(b"dup.out", &good);
    let text = wait_until(&exporter, 30, |t| {
        value(t, GOOD) == Some(6.0) && value(t, "memleak_ingest_failures_total{reason=\"device\"}").is_some()
    });
    assert_eq!(value(&text, GOOD), Some(6.0), "{text}");
    for (reason, n) in [("symlink", 1.0), ("fifo", 1.0), ("hard_link", 3.0), ("device", 1.0)] {
        let series = format!("memleak_ingest_failures_total{{reason=\"{reason}\"}}");
        assert_eq!(value(&text, &series), Some(n), "{reason}: {text}");
    }
    // Every result under its own name, valid UTF-8, with the original recorded.
    let label = |name: &str| format!("memleak_ingest_leaked_bytes{{format=\"lsan\",file=\"{name}\"}}");
    let cut = "n".repeat(200);
    for name in ["x", "x.json_", "dup.out", "dup.out~1", "bad__[31mname", cut.as_str()] {
        assert_eq!(value(&text, &label(name)), Some(409_600.0), "{name}: {text}");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stage.watched.join(".ingested/bad__[31mname.json")).unwrap()).unwrap();
    assert_eq!(summary["source_name"], "bad\\xff\\x1b[31mname");
    // The empty file waits (a writer may have just opened it); nothing else is left behind.
    let left: Vec<String> = std::fs::read_dir(&stage.watched)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(left, ["empty"]);
    // The links, the FIFO and the device were moved unread; the secret still has its content and one name.
    let failed = stage.watched.join(".failed");
    assert!(std::fs::symlink_metadata(failed.join("secret-link")).unwrap().file_type().is_symlink());
    let reason = std::fs::read_to_string(failed.join("fifo.error.txt")).unwrap();
    assert!(reason.contains("it is a FIFO"), "{reason}");
    let log = exporter.stderr();
    assert!(!log.contains('\u{1b}'), "a raw escape byte reached the log");
    drop(exporter);
    std::fs::remove_file(failed.join("secret-hardlink")).unwrap();
    assert_eq!(std::fs::metadata(&stage.secret).unwrap().permissions().mode() & 0o777, 0o600);
    stage.assert_contained(&log);
}

#[test]
fn a_file_swapped_with_a_link_to_a_root_only_file_is_never_read() {
    if !root() {
        return;
    }
    let stage = Stage::new();
    let exporter = stage.start(&[]);
    std::fs::write(stage.base.join("good"), fixture("lsan/asan.txt")).unwrap();
    std::fs::set_permissions(stage.base.join("good"), std::fs::Permissions::from_mode(0o644)).unwrap();
    // For 6 s, 40 names flip between a settled regular file and a link to the secret.
    let script = format!(
        "for i in $(seq 1 40); do cp {good} f$i; done; sleep 2.5; end=$(($(date +%s) + 6)); \
         while [ $(date +%s) -lt $end ]; do for i in $(seq 1 40); do \
         ln -sfn \"$SECRET\" l$i && mv -fT l$i f$i 2>/dev/null; cp {good} g$i 2>/dev/null && mv -fT g$i f$i 2>/dev/null; \
         done; done",
        good = stage.base.join("good").display()
    );
    stage.as_nobody(&script);
    std::thread::sleep(Duration::from_secs(4));
    let text = exporter.metrics();
    let taken = value(&text, GOOD).unwrap_or(0.0)
        + value(&text, "memleak_ingest_failures_total{reason=\"symlink\"}").unwrap_or(0.0);
    assert!(taken >= 40.0, "the swaps were taken: {text}");
    stage.assert_contained(&exporter.stderr());
}

#[test]
fn a_writer_pausing_longer_than_the_settle_time_is_waited_for_or_tried_again() {
    if !root() {
        return;
    }
    let stage = Stage::new();
    let exporter = stage.start(&[]);
    let text = String::from_utf8(fixture("memcheck/a.xml")).unwrap();
    let (first, rest) = text.split_at(text.len() / 2);
    std::fs::write(stage.base.join("first"), first).unwrap();
    std::fs::write(stage.base.join("rest"), rest).unwrap();
    for part in ["first", "rest"] {
        std::fs::set_permissions(stage.base.join(part), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    // Half, a pause of 5 s (beyond the 2 s settle time) with the file open, then the rest.
    let script = format!(
        "exec 3>slow.xml; cat {} >&3; sleep 5; cat {} >&3; exec 3>&-",
        stage.base.join("first").display(),
        stage.base.join("rest").display()
    );
    stage.as_nobody(&script);
    let ingested = "memleak_ingest_files_total{format=\"memcheck\",outcome=\"ingested\"}";
    let text = wait_until(&exporter, 30, |t| value(t, ingested) == Some(1.0));
    // Ground truth: 409,600 bytes definitely and indirectly lost (fixture README).
    let leaked = "memleak_ingest_leaked_bytes{format=\"memcheck\",file=\"slow.xml\"}";
    assert_eq!(value(&text, leaked), Some(409_600.0), "{text}\n{}", exporter.stderr());
    assert_eq!(value(&text, "memleak_ingest_files_total{format=\"unknown\",outcome=\"failed\"}"), None, "{text}");
}

/// Every directory under the state folders `.ingested` and `.failed`, and every file named `name` there.
fn in_state_folders(watched: &Path, name: &str) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut dirs, mut named) = (Vec::new(), Vec::new());
    let mut todo = vec![watched.join(".ingested"), watched.join(".failed")];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(path.clone());
                todo.push(path.clone());
            }
            if entry.file_name() == name {
                named.push(path);
            }
        }
    }
    (dirs, named)
}

#[test]
fn a_directory_swapped_in_as_a_file_is_claimed_is_given_back_not_kept() {
    if !root() {
        return;
    }
    let stage = Stage::new();
    let exporter = stage.start(&[]);
    std::fs::write(stage.base.join("good"), fixture("lsan/asan.txt")).unwrap();
    std::fs::set_permissions(stage.base.join("good"), std::fs::Permissions::from_mode(0o644)).unwrap();
    // 40 files settle together; as soon as the exporter has taken one (it checked the others
    // in the same scan), the rest become world-writable directories whose writer keeps its
    // working directory in them and writes through it later, wherever they were moved.
    let script = format!(
        "for i in $(seq 1 40); do cp {good} f$i; done; \
         while [ $(ls | grep -c '^f') -ge 40 ]; do :; done; \
         for i in $(seq 1 40); do if rm f$i 2>/dev/null; then mkdir f$i && chmod 777 f$i && \
         (cd f$i 2>/dev/null && sleep 3 && echo planted > inside) & fi; done; wait",
        good = stage.base.join("good").display()
    );
    stage.as_nobody(&script);
    std::thread::sleep(Duration::from_secs(3));
    let text = exporter.metrics();
    let given_back = value(&text, "memleak_ingest_failures_total{reason=\"directory\"}").unwrap_or(0.0);
    assert!(given_back >= 1.0, "no directory was claimed: the race was not hit\n{text}");
    let (dirs, planted) = in_state_folders(&stage.watched, "inside");
    assert!(dirs.is_empty(), "the writer's directories are in the state folders: {dirs:?}");
    assert!(planted.is_empty(), "the writer wrote into the state folders: {planted:?}");
    // Each name was either ingested or is a directory in the watched folder, under its own name.
    let back = (1..=40).filter(|i| stage.watched.join(format!("f{i}")).is_dir()).count();
    assert_eq!(value(&text, GOOD).unwrap_or(0.0) + back as f64, 40.0, "{text}");
    assert!(exporter.stderr().contains("given back to the watched directory"), "{}", exporter.stderr());
    stage.assert_contained(&exporter.stderr());
}

/// A small tmpfs mounted over `at`, unmounted on drop.
struct SmallDisk(PathBuf);

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_leaves_a_good_file_for_later_instead_of_failing_it() {
    if !root() {
        return;
    }
    let stage = Stage::new();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=0777", "memleak-test"])
        .arg(&stage.watched)
        .status()
        .unwrap();
    assert!(status.success(), "cannot mount a tmpfs");
    let _disk = SmallDisk(stage.watched.clone());
    let exporter = stage.start(&[]);
    wait_until(&exporter, 5, |_| stage.watched.join(".ingested").is_dir());
    // The good file lands, then the disk fills before it has settled: its outputs cannot be written.
    stage.drop_as_nobody(b"good.log", &fixture("lsan/asan.txt"));
    let filler = stage.watched.join(".filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let err = loop {
        if let Err(e) = std::io::Write::write_all(&mut file, &[b'x'; 4096]) {
            break e;
        }
    };
    assert_eq!(err.raw_os_error(), Some(28), "{err}");
    let full = "memleak_ingest_failures_total{reason=\"disk_full\"}";
    let text = wait_until(&exporter, 20, |t| value(t, full).is_some_and(|n| n >= 1.0));
    assert!(value(&text, full).is_some_and(|n| n >= 1.0), "{text}\n{}", exporter.stderr());
    assert_eq!(value(&text, "memleak_ingest_failures_total{reason=\"unwritable\"}"), None, "{text}");
    assert!(!stage.watched.join(".failed/good.log").exists(), "a good file went to .failed");
    // Room again: the same file is ingested, and the full disk was logged once.
    std::thread::sleep(Duration::from_secs(5));
    drop(file);
    std::fs::remove_file(&filler).unwrap();
    let text = wait_until(&exporter, 30, |t| value(t, GOOD) == Some(1.0));
    assert_eq!(value(&text, GOOD), Some(1.0), "{text}\n{}", exporter.stderr());
    // The "room again" line follows the file's own "ingested" line and metric: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !exporter.stderr().contains("have room again") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = exporter.stderr();
    assert_eq!(log.matches("is full").count(), 1, "{log}");
    assert!(log.contains("have room again"), "{log}");
    assert!(stage.watched.join(".ingested/good.log.json").is_file());
}

#[test]
fn a_flood_of_junk_neither_delays_an_older_file_nor_floods_the_log() {
    if !root() {
        return;
    }
    let stage = Stage::new();
    std::fs::write(stage.base.join("good"), fixture("lsan/asan.txt")).unwrap();
    std::fs::set_permissions(stage.base.join("good"), std::fs::Permissions::from_mode(0o644)).unwrap();
    // The good file first, then 2,000 one-byte files (half binary, half text) and an xz file;
    // all have settled when the exporter starts.
    let script = format!(
        "cp {good} good.log; sleep 0.05; i=0; while [ $i -lt 1000 ]; do printf '\\000' > junk-b$i; \
         printf x > junk-t$i; i=$((i+1)); done; printf '\\375\\067zXZ\\000\\000\\004\\346' > packed.xz; sleep 2.5",
        good = stage.base.join("good").display()
    );
    stage.as_nobody(&script);
    let exporter = stage.start(&[]);
    let started = Instant::now();
    let failed = |t: &str| {
        t.lines()
            .filter(|l| l.starts_with("memleak_ingest_failures_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>()
    };
    let text = wait_until(&exporter, 120, |t| failed(t) >= 2001.0 && value(t, GOOD) == Some(1.0));
    assert_eq!(value(&text, GOOD), Some(1.0), "{text}");
    assert_eq!(failed(&text), 2001.0, "{text}");
    let compressed = "memleak_ingest_failures_total{reason=\"unsupported_compression\"}";
    assert_eq!(value(&text, compressed), Some(1.0), "{text}");
    let log = exporter.stderr();
    // The oldest file was taken before any of the flood.
    let good_at = log.find("good.log").expect("the good file is not in the log");
    assert!(log.find("junk-").is_none_or(|junk_at| good_at < junk_at), "a junk file came first:\n{log}");
    // Binary junk is refused on its first try (no second one after the settle time).
    let why = std::fs::read_dir(stage.watched.join(".failed"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("junk-b"))
        .filter(|e| e.file_name().to_string_lossy().ends_with(".error.txt"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<Vec<_>>();
    assert!(!why.is_empty() && why.iter().all(|w| w.contains("not text") && !w.contains("second try")), "{why:?}");
    // One line per file for the first few of a scan, then a summary line: not 2,000 lines.
    let per_file = log.matches("cannot ingest").count() + log.matches("does not parse yet").count();
    assert!(per_file < 400, "{per_file} lines about single files");
    eprintln!(
        "flood: 2,001 refused in {:.1} s at a 200 ms interval; {per_file} per-file log lines",
        started.elapsed().as_secs_f64()
    );
    assert!(log.contains("more files failed or wait for a second try"), "{log}");
    let xz = std::fs::read_to_string(stage.watched.join(".failed/packed.xz.error.txt"));
    if let Ok(xz) = xz {
        assert!(xz.contains("xz-compressed: only zstd and gzip are read"), "{xz}");
    }
    assert!(!log.contains('\u{0}'), "a raw NUL reached the log");
}
