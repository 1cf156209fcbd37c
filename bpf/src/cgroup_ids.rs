//! Cgroup v2 ids back to paths. BPF programs know a task's cgroup by its v2
//! id, the inode number of the cgroup's directory; the metrics name it by
//! path. This walks the v2 tree (bounded in depth and size) to map ids to paths.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Depth of the walk.
const MAX_DEPTH: usize = 8;
/// Most directories visited per walk.
const MAX_CGROUPS: usize = 8192;
/// The label for an id whose directory is gone (or past the walk's bounds).
pub const UNKNOWN: &str = "(unknown)";

/// The v2 hierarchy: `cgroupfs` itself on a pure v2 host, `cgroupfs/unified` on a hybrid one.
pub fn v2_root(cgroupfs: &Path) -> PathBuf {
    [cgroupfs.to_path_buf(), cgroupfs.join("unified")]
        .into_iter()
        .find(|p| p.join("cgroup.controllers").is_file())
        .unwrap_or_else(|| cgroupfs.to_path_buf())
}

/// How long a walk's result answers for ids it did not know.
const REWALK_AFTER: Duration = Duration::from_secs(10);

/// Cgroup v2 ids → paths, walked again only when an unknown id shows up (and
/// at most every `REWALK_AFTER`): hosts with thousands of cgroups are not
/// walked on every scrape.
#[derive(Debug)]
pub struct CgroupNames {
    cgroupfs: PathBuf,
    paths: HashMap<u64, String>,
    /// Ids found removed by `still_there` since they were walked (at most `MAX_CGROUPS`).
    removed: HashSet<u64>,
    /// The last walk saw the whole tree (not cut by the bounds).
    complete: bool,
    walked_at: Option<Instant>,
    rewalk_after: Duration,
}

impl CgroupNames {
    pub fn new(cgroupfs: &Path) -> Self {
        CgroupNames {
            cgroupfs: cgroupfs.to_path_buf(),
            paths: HashMap::new(),
            removed: HashSet::new(),
            complete: false,
            walked_at: None,
            rewalk_after: REWALK_AFTER,
        }
    }

    /// Makes sure `ids` are named if they can be; returns the id → path map.
    pub fn resolve(&mut self, ids: impl IntoIterator<Item = u64>) -> &HashMap<u64, String> {
        let unknown = ids.into_iter().any(|id| !self.paths.contains_key(&id) && !self.removed.contains(&id));
        if unknown && self.walked_at.is_none_or(|t| t.elapsed() >= self.rewalk_after) {
            (self.paths, self.complete) = walk(&self.cgroupfs);
            self.walked_at = Some(Instant::now());
            // A removed cgroup's inode may name a new one now.
            self.removed.retain(|id| !self.paths.contains_key(id));
        }
        &self.paths
    }

    /// Whether the directory `id` was walked at is still cgroup `id` (a stat):
    /// a removed cgroup is known at once, not at the next walk. Ids without a
    /// path cannot be checked and count as there.
    pub fn still_there(&mut self, id: u64) -> bool {
        let Some(path) = self.paths.get(&id) else { return true };
        let dir = v2_root(&self.cgroupfs).join(path.trim_start_matches('/'));
        if std::fs::metadata(dir).is_ok_and(|meta| meta.ino() == id) {
            return true;
        }
        self.paths.remove(&id);
        if self.removed.len() >= MAX_CGROUPS {
            self.removed.clear();
        }
        self.removed.insert(id);
        false
    }

    /// Lets the next unknown id walk the tree again at once.
    #[cfg(test)]
    pub fn rewalk_now(&mut self) {
        self.rewalk_after = Duration::ZERO;
    }

    /// The id → path map as last walked.
    pub fn paths(&self) -> &HashMap<u64, String> {
        &self.paths
    }

    /// Whether `still_there` found `id` removed.
    pub fn removed(&self, id: u64) -> bool {
        self.removed.contains(&id)
    }

    /// Whether `id` is known to be gone: `still_there` found it removed, or the
    /// last walk saw the whole tree without it.
    pub fn is_gone(&self, id: u64) -> bool {
        self.removed.contains(&id) || (self.complete && self.walked_at.is_some() && !self.paths.contains_key(&id))
    }
}

/// cgroup v2 id → path (`/` for the root, `/system.slice/x.service`, …), and
/// whether the walk saw the whole tree.
pub fn walk(cgroupfs: &Path) -> (HashMap<u64, String>, bool) {
    let root = v2_root(cgroupfs);
    let mut paths = HashMap::new();
    let mut complete = true;
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if paths.len() >= MAX_CGROUPS {
            complete = false;
            break;
        }
        if let Ok(meta) = std::fs::metadata(&dir) {
            let rel = format!("/{}", dir.strip_prefix(&root).unwrap_or(&dir).to_string_lossy());
            paths.insert(meta.ino(), rel);
        }
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let children = entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir()));
        if depth < MAX_DEPTH {
            stack.extend(children.map(|e| (e.path(), depth + 1)));
        } else if children.count() > 0 {
            complete = false;
        }
    }
    (paths, complete)
}

/// The label of the cgroups folded together by `keep_top`.
pub const OTHER: &str = "__other__";

/// The `max` paths with the highest `weight` (ties: path order); every other
/// path is renamed `OTHER`. Bounds the series a collector exports whatever the
/// number of cgroups on the host.
pub fn keep_top(weights: &BTreeMap<&str, u64>, max: usize) -> HashMap<String, String> {
    let mut ranked: Vec<(&str, u64)> = weights.iter().map(|(p, w)| (*p, *w)).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked
        .iter()
        .enumerate()
        .map(|(rank, (path, _))| ((*path).to_owned(), if rank < max { (*path).to_owned() } else { OTHER.to_owned() }))
        .collect()
}

/// The path of `id`, or `UNKNOWN`.
pub fn name(paths: &HashMap<u64, String>, id: u64) -> &str {
    paths.get(&id).map_or(UNKNOWN, String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_directory_inodes_and_paths_are_relative_to_the_v2_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.controllers"), "memory\n").unwrap();
        std::fs::create_dir_all(dir.path().join("system.slice/app.service")).unwrap();
        let ino = std::fs::metadata(dir.path().join("system.slice/app.service")).unwrap().ino();
        let (found, complete) = walk(dir.path());
        assert!(complete);
        assert_eq!(name(&found, ino), "/system.slice/app.service");
        assert_eq!(name(&found, std::fs::metadata(dir.path()).unwrap().ino()), "/");
        assert_eq!(name(&found, u64::MAX), UNKNOWN);
    }

    #[test]
    fn names_are_cached_and_a_removed_cgroup_is_known_to_be_gone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.controllers"), "memory\n").unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        let a = std::fs::metadata(dir.path().join("a")).unwrap().ino();
        let mut names = CgroupNames::new(dir.path());
        assert_eq!(names.resolve([a]).get(&a).map(String::as_str), Some("/a"));
        assert!(!names.is_gone(a));
        std::fs::remove_dir(dir.path().join("a")).unwrap();
        // Known ids are not walked for again.
        assert_eq!(names.resolve([a]).get(&a).map(String::as_str), Some("/a"));
        // An unknown id walks again (past the wait); `a` is not there any more.
        names.rewalk_after = Duration::ZERO;
        assert_eq!(names.resolve([a, u64::MAX - 1]).get(&a), None);
        assert!(names.is_gone(a));
    }

    #[test]
    fn a_removed_cgroup_is_known_gone_without_a_walk() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.controllers"), "memory\n").unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        let a = std::fs::metadata(dir.path().join("a")).unwrap().ino();
        let mut names = CgroupNames::new(dir.path());
        names.resolve([a]);
        assert!(names.still_there(a) && !names.is_gone(a));
        std::fs::remove_dir(dir.path().join("a")).unwrap();
        assert!(!names.still_there(a));
        assert!(names.is_gone(a));
        // Known gone, it does not make the next scrape walk again.
        names.rewalk_after = Duration::ZERO;
        let before = names.walked_at;
        names.resolve([a]);
        assert_eq!(names.walked_at, before);
    }

    #[test]
    fn the_heaviest_cgroups_keep_their_names_and_the_rest_fold() {
        let weights = BTreeMap::from([("/a", 5), ("/b", 50), ("/c", 7), ("/d", 7)]);
        let names = keep_top(&weights, 2);
        assert_eq!(names["/b"], "/b");
        assert_eq!(names["/c"], "/c", "a tie goes to path order");
        assert_eq!((names["/a"].as_str(), names["/d"].as_str()), (OTHER, OTHER));
    }
}
