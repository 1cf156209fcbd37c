//! The spool of capture results (`--capture.dir`): one folder per capture
//! holding `capture.json` (what, why, status, summary) and the outputs
//! (`profile.pb.gz`, `end.pb.gz`, `flamegraph.svg`, `folded`, `summary.json`).
//! The folder is created 0700 and opened once; everything in it is reached
//! through that descriptor and written under a temporary name, then renamed.
//! Bounded by count and bytes: the oldest finished captures are evicted. A
//! restart lists what is there; a capture that was running is marked failed.

use super::dir::Dir;
use super::kinds::Status;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Mutex, PoisonError};

/// The files a capture may hold, the only names served.
pub const FILES: &[&str] = &["capture.json", "summary.json", "profile.pb.gz", "end.pb.gz", "flamegraph.svg", "folded"];
/// Largest file read back from the spool.
const MAX_FILE_BYTES: u64 = 256 << 20;
const META: &str = "capture.json";
/// Most entries of the spool folder looked at.
const MAX_ENTRIES: usize = 100_000;

/// What the captures list says about one capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    pub id: String,
    pub kind: String,
    pub target: BTreeMap<String, String>,
    pub pids: Vec<u32>,
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    /// `webhook` or `alertmanager`.
    pub via: String,
    pub status: Status,
    /// Why it is not done (or how it ended early).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `starting` until the first profile is taken, then `window`, then `finished`.
    pub phase: String,
    /// RFC 3339.
    pub started: String,
    /// The window asked for.
    pub duration_seconds: f64,
    /// How long it ran, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_seconds: Option<f64>,
    /// Totals and top sites of the result, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<serde_json::Value>,
    /// The output files present.
    #[serde(default)]
    pub files: Vec<String>,
}

impl Info {
    /// `group=cachesvc`, for logs and titles.
    pub fn target_text(&self) -> String {
        self.target.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    }
}

/// The spool.
#[derive(Debug)]
pub struct Spool {
    dir: Dir,
    keep: usize,
    max_bytes: u64,
    index: Mutex<BTreeMap<String, Info>>,
}

impl Spool {
    /// Opens (creating it 0700) the spool and lists what a previous run left.
    pub fn open(path: &std::path::Path, keep: usize, max_bytes: u64) -> io::Result<Spool> {
        let dir = Dir::create_private(path)?;
        let mut index = BTreeMap::new();
        for name in dir.list(MAX_ENTRIES)? {
            if name.starts_with('.') || !is_id(&name) {
                continue;
            }
            let Ok(sub) = dir.open_dir(&name) else { continue };
            let Some(mut info) = sub.read(META, 1 << 20).ok().and_then(|b| serde_json::from_slice::<Info>(&b).ok())
            else {
                continue;
            };
            if info.id != name {
                continue;
            }
            if info.status == Status::Running {
                info.status = Status::Failed;
                info.reason = Some("the exporter stopped while the capture ran".into());
                info.phase = "finished".into();
                let _ = sub.write(META, &serde_json::to_vec_pretty(&info).unwrap_or_default());
            }
            index.insert(name, info);
        }
        Ok(Spool { dir, keep, max_bytes, index: Mutex::new(index) })
    }

    pub fn shown(&self) -> &std::path::Path {
        self.dir.shown()
    }

    /// Records a new capture (its folder and `capture.json`).
    pub fn create(&self, info: &Info) -> io::Result<()> {
        self.dir.create_dir(&info.id)?;
        self.update(info)
    }

    /// Rewrites `capture.json` and the index entry.
    pub fn update(&self, info: &Info) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(info).map_err(io::Error::other)?;
        self.dir.open_dir(&info.id)?.write(META, &bytes)?;
        self.index.lock().unwrap_or_else(PoisonError::into_inner).insert(info.id.clone(), info.clone());
        Ok(())
    }

    /// Writes one output file of capture `id`.
    pub fn write(&self, id: &str, name: &str, bytes: &[u8]) -> io::Result<()> {
        if !FILES.contains(&name) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name} is not a capture file")));
        }
        self.dir.open_dir(id)?.write(name, bytes)
    }

    /// Reads one file of capture `id`; `None` when there is no such capture or file.
    pub fn read(&self, id: &str, name: &str) -> Option<Vec<u8>> {
        if !is_id(id)
            || !FILES.contains(&name)
            || !self.index.lock().unwrap_or_else(PoisonError::into_inner).contains_key(id)
        {
            return None;
        }
        self.dir.open_dir(id).ok()?.read(name, MAX_FILE_BYTES).ok()
    }

    /// Every capture, newest first.
    pub fn list(&self) -> Vec<Info> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner).values().rev().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<Info> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
    }

    /// Whether a new capture may start: fewer running captures than the spool keeps.
    pub fn has_room(&self) -> bool {
        let index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        index.values().filter(|i| i.status == Status::Running).count() < self.keep
    }

    /// Whether the captures hold more than `max_bytes` (after eviction: running ones do).
    pub fn over_budget(&self) -> bool {
        let index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let total: u64 = index.keys().map(|id| self.dir.open_dir(id).map(|d| d.bytes(64)).unwrap_or(0)).sum();
        total > self.max_bytes
    }

    /// Evicts the oldest finished captures until at most `keep` are kept and
    /// they hold at most `max_bytes`; returns the evicted ids.
    pub fn evict(&self) -> Vec<String> {
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let sizes: BTreeMap<String, u64> =
            index.keys().map(|id| (id.clone(), self.dir.open_dir(id).map(|d| d.bytes(64)).unwrap_or(0))).collect();
        let mut total: u64 = sizes.values().sum();
        let mut count = index.len();
        let mut evicted = Vec::new();
        // Ids sort by start time: the oldest first.
        let finished: BTreeSet<String> =
            index.iter().filter(|(_, i)| i.status != Status::Running).map(|(id, _)| id.clone()).collect();
        for id in finished {
            if count <= self.keep && total <= self.max_bytes {
                break;
            }
            match self.dir.remove_dir_all(&id) {
                Ok(()) => {
                    total -= sizes.get(&id).copied().unwrap_or(0);
                    count -= 1;
                    index.remove(&id);
                    evicted.push(id);
                }
                Err(e) => {
                    tracing::warn!(capture = %id, spool = %self.dir.shown().display(), "cannot evict the capture: {e}")
                }
            }
        }
        evicted
    }
}

/// Capture ids: `<unix milliseconds>-<sequence>`, digits and one dash, so they sort by age.
pub fn is_id(id: &str) -> bool {
    id.len() <= 40
        && id.split_once('-').is_some_and(|(a, b)| {
            a.len() == 13 && b.len() == 4 && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, status: Status) -> Info {
        Info {
            id: id.into(),
            kind: "allocator-profile".into(),
            target: BTreeMap::new(),
            pids: vec![],
            fingerprint: "f".into(),
            labels: BTreeMap::new(),
            via: "webhook".into(),
            status,
            reason: None,
            phase: "finished".into(),
            started: String::new(),
            duration_seconds: 1.0,
            elapsed_seconds: None,
            summary: None,
            files: vec![],
        }
    }

    #[test]
    fn eviction_by_count_and_bytes_keeps_running_captures_and_survives_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("spool");
        let mut spool = Spool::open(&path, 3, u64::MAX).unwrap();
        for (i, status) in
            [Status::Done, Status::Running, Status::Done, Status::Done, Status::Failed].iter().enumerate()
        {
            let id = format!("170000000000{i}-0001");
            spool.create(&info(&id, *status)).unwrap();
            spool.write(&id, "folded", &[b'x'; 100]).unwrap();
        }
        // By count: 5 kept, at most 3: the two oldest finished go, the running one stays.
        assert_eq!(spool.evict(), ["1700000000000-0001", "1700000000002-0001"]);
        let ids: Vec<String> = spool.list().into_iter().map(|i| i.id).collect();
        assert_eq!(ids, ["1700000000004-0001", "1700000000003-0001", "1700000000001-0001"]);
        // By bytes: 100 more bytes than the budget left.
        let held: u64 = ids.iter().map(|id| spool.dir.open_dir(id).unwrap().bytes(64)).sum();
        spool.max_bytes = held + 50;
        spool.write("1700000000004-0001", "profile.pb.gz", &[0u8; 100]).unwrap();
        assert_eq!(spool.evict(), ["1700000000003-0001"]);
        assert!(spool.read("1700000000003-0001", "folded").is_none());
        assert_eq!(spool.read("1700000000004-0001", "folded").unwrap().len(), 100);
        assert!(spool.read("1700000000004-0001", "../x").is_none());
        assert!(spool.write("1700000000004-0001", "../x", b"").is_err());
        drop(spool);
        // A restart lists what is there; the running capture is marked failed.
        let again = Spool::open(&path, 3, 10_000).unwrap();
        let listed: Vec<(String, Status)> = again.list().into_iter().map(|i| (i.id, i.status)).collect();
        assert_eq!(
            listed,
            [("1700000000004-0001".into(), Status::Failed), ("1700000000001-0001".into(), Status::Failed)]
        );
        assert!(again.get("1700000000001-0001").unwrap().reason.unwrap().contains("stopped"));
    }

    #[test]
    fn ids_are_digits() {
        assert!(is_id("1700000000000-0001"));
        for bad in ["..", "1700000000000-0001/..", "abc-0001", "1700000000000_0001", ""] {
            assert!(!is_id(bad), "{bad}");
        }
    }
}
