//! What the privileged BPF tests share: the root/CI checks, a throwaway
//! cgroup v2, compiling a C helper, and one scrape of a collector.

#![allow(dead_code)]

use memleak_signals::{Collection, Collector, FsRoots, ScrapeContext};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// False (after saying why) when this test cannot run here; under CI=true that is a failure.
pub fn can_run_privileged() -> bool {
    if is_root() && memleak_bpf::built_with_bpf() {
        return true;
    }
    assert!(!ci(), "CI is root and has clang: this test must run there");
    eprintln!("SKIP: needs root and a build with clang");
    false
}

/// The parsed object, or `None` (after saying why) in a build without clang; under CI=true that is a failure.
pub fn parsed_object(bytes: &[u8]) -> Option<aya_obj::Object> {
    if !memleak_bpf::built_with_bpf() {
        assert!(!ci(), "CI installs clang: the BPF objects must be built there");
        eprintln!("SKIP: built without clang (Debian package clang)");
        return None;
    }
    Some(aya_obj::Object::parse(bytes).unwrap())
}

/// (type, key size, value size, max entries) of a map of the object.
pub fn map_shape(object: &aya_obj::Object, name: &str) -> (u32, u32, u32, u32) {
    let map = object.maps.get(name).unwrap_or_else(|| panic!("no map {name} in the object"));
    (map.map_type(), map.key_size(), map.value_size(), map.max_entries())
}

/// The cgroup v2 hierarchy of this host.
pub fn v2_root() -> PathBuf {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").is_file())
        .expect("a cgroup v2 hierarchy")
}

pub fn roots() -> FsRoots {
    FsRoots { procfs: "/proc".into(), sysfs: "/sys".into(), cgroupfs: v2_root() }
}

/// A new cgroup directly under the v2 root, removed on drop.
pub struct TestCgroup {
    pub dir: PathBuf,
    /// Its path as the metrics name it (`/name`).
    pub path: String,
}

impl TestCgroup {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("memleak-bpf-{tag}-{}-{n}", std::process::id());
        let dir = v2_root().join(&name);
        std::fs::create_dir(&dir).unwrap();
        TestCgroup { dir, path: format!("/{name}") }
    }

    pub fn adopt(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Compiles `source` (relative to the crate) into `dir`, returning the binary.
/// `-O0 -fno-omit-frame-pointer`: every function keeps its frame pointer, so the
/// kernel's user-stack walks see whole stacks (gcc 12 drops it from leaf
/// functions at -O1 even when asked to keep frame pointers).
pub fn compile(source: &str, dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
    let binary = dir.join(source.file_stem().unwrap());
    let status = Command::new("cc").args(["-O0", "-fno-omit-frame-pointer", "-o"]).arg(&binary).arg(&source).status();
    assert!(status.is_ok_and(|s| s.success()), "cc {} failed (Debian package gcc)", source.display());
    binary
}

pub fn collect(collector: &mut dyn Collector) -> Collection {
    let mut out = Collection::default();
    collector.collect(&ScrapeContext::with_budget(Duration::from_secs(5)), &mut out);
    out
}
