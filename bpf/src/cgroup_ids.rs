//! BPF programs know a task's cgroup by its v2 id, the inode number of the
//! cgroup's directory; the metrics name it by path. This walks the v2 tree
//! (bounded in depth and size) to map ids back to paths.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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

/// cgroup v2 id → path (`/` for the root, `/system.slice/x.service`, …).
pub fn paths(cgroupfs: &Path) -> HashMap<u64, String> {
    let root = v2_root(cgroupfs);
    let mut paths = HashMap::new();
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if paths.len() >= MAX_CGROUPS {
            break;
        }
        if let Ok(meta) = std::fs::metadata(&dir) {
            let rel = format!("/{}", dir.strip_prefix(&root).unwrap_or(&dir).to_string_lossy());
            paths.insert(meta.ino(), rel);
        }
        if depth < MAX_DEPTH
            && let Ok(entries) = std::fs::read_dir(&dir)
        {
            stack.extend(
                entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| (e.path(), depth + 1)),
            );
        }
    }
    paths
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
        let found = paths(dir.path());
        assert_eq!(name(&found, ino), "/system.slice/app.service");
        assert_eq!(name(&found, std::fs::metadata(dir.path()).unwrap().ino()), "/");
        assert_eq!(name(&found, u64::MAX), UNKNOWN);
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
