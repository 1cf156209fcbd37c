//! Finding the hierarchy that holds the memory controller: cgroup v2 (unified),
//! the v2 part of a hybrid mount (`/sys/fs/cgroup/unified`), or cgroup v1
//! (`/sys/fs/cgroup/memory`).

use crate::fsroot;
use std::path::{Path, PathBuf};

/// The cgroup version whose files are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
}

/// The root directory of the memory controller's hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub version: Version,
    pub root: PathBuf,
}

fn has_memory_controller(dir: &Path) -> Option<bool> {
    let text = fsroot::read_text(&dir.join("cgroup.controllers")).ok()?;
    Some(text.split_whitespace().any(|c| c == "memory"))
}

/// Finds the memory hierarchy under the cgroup mount point, or says why not.
pub fn discover(cgroupfs: &Path) -> Result<Hierarchy, String> {
    if has_memory_controller(cgroupfs) == Some(true) {
        return Ok(Hierarchy { version: Version::V2, root: cgroupfs.to_path_buf() });
    }
    let unified = cgroupfs.join("unified");
    if has_memory_controller(&unified) == Some(true) {
        return Ok(Hierarchy { version: Version::V2, root: unified });
    }
    let v1 = cgroupfs.join("memory");
    if v1.join("memory.usage_in_bytes").exists() {
        return Ok(Hierarchy { version: Version::V1, root: v1 });
    }
    Err(format!(
        "no memory controller under {}: neither cgroup.controllers listing `memory` (v2) nor memory/memory.usage_in_bytes (v1)",
        cgroupfs.display()
    ))
}
