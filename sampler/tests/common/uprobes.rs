//! The kernel's uprobes on the two markers, through tracefs: the sampler's real consumer, in a trace instance of the test's own.
//!
//! Each `Probes` defines its own event group on the markers of one binary, enables it in a
//! trace instance of the same name (its own ring buffer, `mono` clock so events of different
//! CPUs sort, thread group ids recorded), and removes all of it when dropped, on every exit path
//! of a test, including a failed assertion. Groups left by a killed test run are removed by the
//! next one.

use object::{Object, ObjectSegment, ObjectSymbol};
use regex::Regex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const TRACEFS: &str = "/sys/kernel/tracing";
const GROUP_PREFIX: &str = "msampler_test_";
/// Per CPU. Enough for ~400 k events; `events` asserts that nothing was overwritten.
const BUFFER_KB: u32 = 16384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Alloc { ptr: u64, size: u64 },
    Free { ptr: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The process (thread group) that called the marker.
    pub tgid: u32,
    pub marker: Marker,
}

#[derive(Debug)]
pub struct Probes {
    group: String,
    instance: PathBuf,
}

/// File offsets (what a uprobe attaches to) of `memleak_sampler_alloc` and `memleak_sampler_free`.
pub fn marker_offsets(binary: &Path) -> (u64, u64) {
    let bytes = std::fs::read(binary).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let offset = |name: &str| {
        let symbol = file
            .dynamic_symbols()
            .chain(file.symbols())
            .find(|s| s.name() == Ok(name) && s.is_definition())
            .unwrap_or_else(|| panic!("{name} is not defined in {}", binary.display()));
        let address = symbol.address();
        let segment = file
            .segments()
            .find(|s| (s.address()..s.address() + s.size()).contains(&address))
            .unwrap_or_else(|| panic!("{name} at {address:#x} is in no segment of {}", binary.display()));
        address - segment.address() + segment.file_range().0
    };
    (offset("memleak_sampler_alloc"), offset("memleak_sampler_free"))
}

fn tracefs() -> PathBuf {
    let root = PathBuf::from(TRACEFS);
    if !root.join("uprobe_events").exists() {
        let status = std::process::Command::new("mount").args(["-t", "tracefs", "nodev", TRACEFS]).status();
        assert!(status.is_ok_and(|s| s.success()), "tracefs is not mounted at {TRACEFS} and mounting it failed");
    }
    root
}

fn define(line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut events = std::fs::OpenOptions::new().append(true).open(tracefs().join("uprobe_events"))?;
    events.write_all(format!("{line}\n").as_bytes())
}

/// Removes the groups of test processes that are gone (a run killed before its drops ran).
fn remove_stale_groups() {
    let Ok(events) = std::fs::read_to_string(tracefs().join("uprobe_events")) else { return };
    for line in events.lines() {
        let Some((_, rest)) = line.split_once(':') else { continue };
        let Some(event) = rest.split_whitespace().next() else { continue };
        let Some((group, _)) = event.split_once('/') else { continue };
        let Some(pid) = group.strip_prefix(GROUP_PREFIX).and_then(|rest| rest.split('_').next()) else { continue };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        let instance = tracefs().join("instances").join(group);
        let _ = std::fs::write(instance.join("events").join(group).join("enable"), "0");
        let _ = std::fs::remove_dir(&instance);
        let _ = define(&format!("-:{event}"));
    }
}

impl Probes {
    /// Attaches to the markers of `binary` (the library, or an executable linking the sampler).
    pub fn attach(binary: &Path) -> Probes {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        remove_stale_groups();
        let (alloc, free) = marker_offsets(binary);
        let group = format!("{GROUP_PREFIX}{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let instance = tracefs().join("instances").join(&group);
        let probes = Probes { group, instance };
        let path = binary.canonicalize().unwrap();
        let path = path.display();
        define(&format!("p:{}/alloc {path}:{alloc:#x} ptr=%di:x64 size=%si:u64", probes.group)).unwrap();
        define(&format!("p:{}/free {path}:{free:#x} ptr=%di:x64", probes.group)).unwrap();
        std::fs::create_dir(&probes.instance).unwrap();
        probes.write("buffer_size_kb", &BUFFER_KB.to_string());
        probes.write("trace_clock", "mono");
        probes.write("options/record-tgid", "1");
        probes.write(&format!("events/{}/enable", probes.group), "1");
        probes
    }

    fn write(&self, file: &str, value: &str) {
        std::fs::write(self.instance.join(file), value).unwrap_or_else(|e| panic!("{file} <- {value}: {e}"));
    }

    /// Every event recorded so far, in time order. Stops recording; asserts nothing was lost.
    pub fn events(&self) -> Vec<Event> {
        self.write("tracing_on", "0");
        for cpu in std::fs::read_dir(self.instance.join("per_cpu")).unwrap() {
            let stats = std::fs::read_to_string(cpu.unwrap().path().join("stats")).unwrap();
            for counter in ["overrun", "dropped events"] {
                let line =
                    stats.lines().find(|l| l.starts_with(counter)).unwrap_or_else(|| panic!("{counter} in {stats}"));
                assert!(line.ends_with(" 0"), "the trace buffer lost events: {line}");
            }
        }
        let trace = std::fs::read_to_string(self.instance.join("trace")).unwrap();
        parse(&trace)
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        let _ = std::fs::write(self.instance.join("events").join(&self.group).join("enable"), "0");
        let _ = std::fs::remove_dir(&self.instance);
        let _ = define(&format!("-:{}/alloc", self.group));
        let _ = define(&format!("-:{}/free", self.group));
    }
}

/// Lines such as
/// `  a_cachesvc-1234    (   1234) [001] ..... 99.123456: alloc: (0x7f..) ptr=0x55.. size=1536`.
pub fn parse(trace: &str) -> Vec<Event> {
    let line =
        Regex::new(r"\(\s*(\d+)\)\s+\[\d+\][^:]*: (alloc|free): \(0x[0-9a-f]+\) ptr=0x([0-9a-f]+)(?: size=(\d+))?$")
            .unwrap();
    trace
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let c = line.captures(l).unwrap_or_else(|| panic!("unexpected trace line: {l}"));
            let ptr = u64::from_str_radix(&c[3], 16).unwrap();
            let marker = match &c[2] {
                "alloc" => Marker::Alloc { ptr, size: c[4].parse().unwrap() },
                _ => Marker::Free { ptr },
            };
            Event { tgid: c[1].parse().unwrap(), marker }
        })
        .collect()
}

/// The events of one process.
pub fn of(events: &[Event], tgid: u32) -> Vec<Marker> {
    events.iter().filter(|e| e.tgid == tgid).map(|e| e.marker).collect()
}
