//! Reading one cgroup's memory files, for v2 and v1.

use super::hierarchy::Version;
use crate::fsroot::{self, ReadError};
use crate::kv;
use crate::problem::{Problem, ProblemKind};
use crate::psi;
use std::path::Path;

/// The memory state of one cgroup, in bytes; `None` where the kernel has no such file or key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub usage: u64,
    pub limit: Option<u64>,
    pub high: Option<u64>,
    pub swap: Option<u64>,
    pub anon: Option<u64>,
    pub file: Option<u64>,
    pub kernel: Option<u64>,
    pub slab_unreclaimable: Option<u64>,
    pub sock: Option<u64>,
    pub shmem: Option<u64>,
    /// Page faults of the cgroup's tasks (memory.stat pgfault) and the major ones (pgmajfault).
    pub page_faults: Option<u64>,
    pub major_page_faults: Option<u64>,
    /// Event counters (`oom`, `oom_kill`, `max`, …).
    pub events: Vec<(&'static str, u64)>,
    pub pressure: Option<psi::Pressure>,
}

/// v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages); anything
/// from 2^62 up means unlimited.
const V1_UNLIMITED: u64 = 1 << 62;

const V2_EVENTS: &[&str] = &["low", "high", "max", "oom", "oom_kill", "oom_group_kill"];

/// Reads the cgroup in `dir`. `Ok(None)`: it has no memory accounting (the
/// controller is not enabled there) or it was removed meanwhile.
pub fn read(version: Version, dir: &Path, problems: &mut Vec<Problem>) -> Option<Reading> {
    match version {
        Version::V2 => read_v2(dir, problems),
        Version::V1 => read_v1(dir, problems),
    }
}

/// Whether the cgroup has memory accounting (without reading it).
pub fn has_memory(version: Version, dir: &Path) -> bool {
    dir.join(match version {
        Version::V2 => "memory.current",
        Version::V1 => "memory.usage_in_bytes",
    })
    .exists()
}

fn read_v2(dir: &Path, problems: &mut Vec<Problem>) -> Option<Reading> {
    let usage = number(&dir.join("memory.current"), problems)??;
    let mut r = Reading { usage, ..Reading::default() };
    r.limit = number(&dir.join("memory.max"), problems).flatten();
    r.high = number(&dir.join("memory.high"), problems).flatten();
    r.swap = number(&dir.join("memory.swap.current"), problems).flatten();
    if let Some(stat) = keyed(&dir.join("memory.stat"), problems) {
        let get = |key: &str| stat.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        r.anon = get("anon");
        r.file = get("file");
        r.kernel = get("kernel");
        r.slab_unreclaimable = get("slab_unreclaimable");
        r.sock = get("sock");
        r.shmem = get("shmem");
        r.page_faults = get("pgfault");
        r.major_page_faults = get("pgmajfault");
    }
    if let Some(events) = keyed(&dir.join("memory.events"), problems) {
        r.events = V2_EVENTS
            .iter()
            .filter_map(|name| events.iter().find(|(k, _)| k == name).map(|(_, v)| (*name, *v)))
            .collect();
    }
    r.pressure = pressure(&dir.join("memory.pressure"), problems);
    Some(r)
}

fn read_v1(dir: &Path, problems: &mut Vec<Problem>) -> Option<Reading> {
    let usage = number(&dir.join("memory.usage_in_bytes"), problems)??;
    let mut r = Reading { usage, ..Reading::default() };
    r.limit = number(&dir.join("memory.limit_in_bytes"), problems).flatten().filter(|l| *l < V1_UNLIMITED);
    r.kernel = number(&dir.join("memory.kmem.usage_in_bytes"), problems).flatten();
    r.sock = number(&dir.join("memory.kmem.tcp.usage_in_bytes"), problems).flatten();
    r.swap =
        number(&dir.join("memory.memsw.usage_in_bytes"), problems).flatten().map(|memsw| memsw.saturating_sub(usage));
    if let Some(stat) = keyed(&dir.join("memory.stat"), problems) {
        // total_* are hierarchical like v2's memory.stat; the plain keys are this cgroup alone.
        let get = |key: &str| {
            let total = format!("total_{key}");
            stat.iter().find(|(k, _)| *k == total).or_else(|| stat.iter().find(|(k, _)| *k == key)).map(|(_, v)| *v)
        };
        r.anon = get("rss");
        r.file = get("cache");
        r.shmem = get("shmem");
        r.page_faults = get("pgfault");
        r.major_page_faults = get("pgmajfault");
    }
    if let Some(failcnt) = number(&dir.join("memory.failcnt"), problems).flatten() {
        r.events.push(("max", failcnt));
    }
    if let Some(oom) = keyed(&dir.join("memory.oom_control"), problems)
        && let Some((_, kills)) = oom.iter().find(|(k, _)| *k == "oom_kill")
    {
        r.events.push(("oom_kill", *kills));
    }
    Some(r)
}

/// A single-number file. `None`: absent. `Some(None)`: "max" or unreadable/garbage (a problem is recorded for garbage).
fn number(path: &Path, problems: &mut Vec<Problem>) -> Option<Option<u64>> {
    let text = read_file(path, problems)?;
    let text = text.trim();
    if text == "max" {
        return Some(None);
    }
    match text.parse::<u64>() {
        Ok(v) => Some(Some(v)),
        Err(_) => {
            problems.push(Problem::new(
                ProblemKind::Parse,
                path.display(),
                format!("expected a number or `max`, found {text:?}"),
                "",
            ));
            Some(None)
        }
    }
}

fn keyed(path: &Path, problems: &mut Vec<Problem>) -> Option<Vec<(String, u64)>> {
    let text = read_file(path, problems)?;
    match kv::parse_all(&text) {
        Ok(entries) => Some(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
        Err(err) => {
            problems.push(Problem::new(ProblemKind::Parse, path.display(), err.to_string(), ""));
            None
        }
    }
}

fn pressure(path: &Path, problems: &mut Vec<Problem>) -> Option<psi::Pressure> {
    let text = read_file(path, problems)?;
    match psi::parse(&text) {
        Ok(p) => Some(p),
        Err(err) => {
            problems.push(Problem::new(ProblemKind::Parse, path.display(), err.to_string(), ""));
            None
        }
    }
}

/// Reads a file; absent files are silent (`None`), other failures are problems.
fn read_file(path: &Path, problems: &mut Vec<Problem>) -> Option<String> {
    match fsroot::read_text(path) {
        Ok(text) => Some(text),
        Err(ReadError::Missing) => None,
        Err(err) => {
            problems.push(err.to_problem(path, ""));
            None
        }
    }
}
