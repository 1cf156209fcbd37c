//! Keeping a state folder within its bounds: at most `keep` units (a result
//! or a failed file, each with its outputs) and `keep_bytes` of disk, the
//! oldest removed first. The names in these folders are the exporter's, but
//! a file moved in was the writer's: a directory swapped in at the claim is
//! given back before it gets here (`take`), so one met here (left by an older
//! version) is removed only when empty, and a unit is reported removed only
//! when all of it is gone. Entries are removed by name relative to the
//! folder, never followed.

use crate::ingest::names::OUTPUT_SUFFIXES;
use rustix::fs::{AtFlags, Dir, statat, unlinkat};
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

/// One input with its outputs: (newest change, disk bytes, file names).
#[derive(Debug, Default)]
struct Unit {
    changed: (i64, i64),
    bytes: u64,
    files: Vec<String>,
}

/// Removes the oldest units of `dir` until at most `keep` and `keep_bytes`
/// remain; returns the names of the units removed.
pub fn prune(dir: &OwnedFd, keep: usize, keep_bytes: u64) -> Vec<String> {
    let Ok(mut entries) = Dir::read_from(dir) else { return Vec::new() };
    let mut units: BTreeMap<String, Unit> = BTreeMap::new();
    while let Some(Ok(entry)) = entries.read() {
        let Ok(name) = entry.file_name().to_str() else { continue };
        // Private names (work in progress, temporaries) are not results yet.
        if name.starts_with('.') {
            continue;
        }
        let Ok(stat) = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else { continue };
        let unit = OUTPUT_SUFFIXES.iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        let entry = units.entry(unit.to_owned()).or_default();
        // The change time, not the modification time: a writer can set the latter, not the former.
        entry.changed = entry.changed.max((stat.st_ctime, i64::try_from(stat.st_ctime_nsec).unwrap_or(0)));
        entry.bytes += u64::try_from(stat.st_blocks).unwrap_or(0) * 512;
        entry.files.push(name.to_owned());
    }
    let mut count = units.len();
    let mut bytes: u64 = units.values().map(|u| u.bytes).sum();
    let mut oldest: Vec<(String, Unit)> = units.into_iter().collect();
    oldest.sort_by_key(|(_, u)| u.changed);
    let mut removed = Vec::new();
    for (name, unit) in oldest {
        if count <= keep && bytes <= keep_bytes {
            break;
        }
        let mut gone = true;
        for file in &unit.files {
            let result = match unlinkat(dir, file.as_str(), AtFlags::empty()) {
                Err(rustix::io::Errno::ISDIR) => unlinkat(dir, file.as_str(), AtFlags::REMOVEDIR),
                other => other,
            };
            gone &= matches!(result, Ok(()) | Err(rustix::io::Errno::NOENT));
        }
        if gone {
            count -= 1;
            bytes = bytes.saturating_sub(unit.bytes);
            removed.push(name);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{Mode, OFlags};

    #[test]
    fn oldest_units_go_first_with_their_outputs() {
        let dir = tempfile::tempdir().unwrap();
        for (i, unit) in ["a", "b", "c"].iter().enumerate() {
            for suffix in ["", ".json", ".pb.gz"] {
                std::fs::write(dir.path().join(format!("{unit}{suffix}")), vec![b'x'; 5000 * (i + 1)]).unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::fs::write(dir.path().join(".c.work"), "in progress").unwrap();
        let fd = rustix::fs::open(dir.path(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        assert_eq!(prune(&fd, 2, u64::MAX), ["a"]);
        assert!(!dir.path().join("a.json").exists() && dir.path().join("b.json").exists());
        // By bytes: c alone holds 3 × 15,000 bytes (in 4 KiB blocks).
        assert_eq!(prune(&fd, 10, 50_000), ["b"]);
        assert!(dir.path().join("c").exists() && dir.path().join(".c.work").exists());
        // A folder that is not empty cannot go: it is not reported removed.
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/inside"), "x").unwrap();
        assert_eq!(prune(&fd, 0, u64::MAX), ["c"]);
        assert!(dir.path().join("d/inside").exists());
    }
}
