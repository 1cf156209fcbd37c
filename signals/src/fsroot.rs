//! Where the kernel's file systems are mounted, and reading from them.
//!
//! Every collector reads through `FsRoots`, so the whole exporter runs against a
//! fixture tree in tests, or against the host's `/proc` mounted into a container.

use crate::problem::{Problem, ProblemKind};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Mount points of procfs, sysfs and the cgroup file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsRoots {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub cgroupfs: PathBuf,
}

impl Default for FsRoots {
    fn default() -> Self {
        FsRoots::under(Path::new("/"))
    }
}

impl FsRoots {
    /// The standard layout below `root` (`root/proc`, `root/sys`, `root/sys/fs/cgroup`).
    pub fn under(root: &Path) -> Self {
        FsRoots { procfs: root.join("proc"), sysfs: root.join("sys"), cgroupfs: root.join("sys/fs/cgroup") }
    }
}

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Absent, or the process it belonged to exited (ENOENT, ESRCH).
    Missing,
    /// EACCES or EPERM.
    Denied(io::Error),
    /// Any other I/O error.
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(err: io::Error) -> Self {
        match (err.kind(), err.raw_os_error()) {
            (io::ErrorKind::NotFound, _) | (_, Some(libc::ESRCH)) => ReadError::Missing,
            (io::ErrorKind::PermissionDenied, _) | (_, Some(libc::EPERM)) => ReadError::Denied(err),
            _ => ReadError::Io(err),
        }
    }
}

impl ReadError {
    /// A problem describing this error for `path`; `missing_hint` explains an absent file.
    pub fn to_problem(&self, path: &Path, missing_hint: &'static str) -> Problem {
        match self {
            ReadError::Missing => {
                Problem::new(ProblemKind::Unsupported, path.display(), "file does not exist", missing_hint)
            }
            ReadError::Denied(err) => Problem::new(
                ProblemKind::Permission,
                path.display(),
                format!("cannot read: {err}"),
                "run as root or grant CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH",
            ),
            ReadError::Io(err) => Problem::new(ProblemKind::Read, path.display(), format!("cannot read: {err}"), ""),
        }
    }
}

/// Upper bound for one file we read; the kernel's files we read are far smaller.
/// A larger file means a wrong path (or a hostile fixture), not data to buffer.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Reads a whole file into `buf` (cleared first), at most `MAX_FILE_BYTES`.
pub fn read_into(path: &Path, buf: &mut Vec<u8>) -> Result<(), ReadError> {
    buf.clear();
    let file = std::fs::File::open(path)?;
    file.take(MAX_FILE_BYTES).read_to_end(buf)?;
    Ok(())
}

/// Reads a whole file as UTF-8 text (invalid bytes replaced), at most `MAX_FILE_BYTES`.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    read_into(path, &mut buf)?;
    Ok(match String::from_utf8(buf) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    })
}
