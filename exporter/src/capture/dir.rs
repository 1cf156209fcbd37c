//! A directory opened once, whose entries are reached through its file
//! descriptor (`/proc/self/fd/N/NAME`), never through a path that someone could
//! swap for a symlink: names are single components, files are opened with
//! `O_NOFOLLOW` and checked after opening (`fstat`: a regular file, a size cap).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// An open directory.
#[derive(Debug)]
pub struct Dir {
    handle: File,
    /// The path it was opened at, for messages only.
    shown: PathBuf,
}

/// Why a folder of mode `mode` is shared with other users, if it is (writable by them, or sticky
/// as /tmp is).
pub fn shared(mode: u32) -> Option<String> {
    (mode & (0o022 | libc::S_ISVTX) != 0).then(|| format!("is writable by other users (mode {:o})", mode & 0o7777))
}

impl Dir {
    /// Opens `path` as a directory without following a symlink at its last component.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let handle = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open the folder {}: {e}", path.display())))?;
        Ok(Dir { handle, shown: path.to_owned() })
    }

    /// Creates `path` (and its parents) mode 0700 when missing, then opens it; refuses a
    /// folder that another user owns or that others may write. An existing folder's mode is
    /// never changed (`--capture.dir /tmp` must not make /tmp private): what others may read
    /// there is the captures' names, each capture's own folder being 0700.
    pub fn create_private(path: &Path) -> io::Result<Dir> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create the folder {}: {e}", path.display())))?;
        let dir = Dir::open(path)?;
        let meta = dir.handle.metadata()?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} belongs to uid {}, not to the exporter (uid {me}); give it to the exporter's user",
                    path.display(),
                    meta.uid()
                ),
            ));
        }
        if let Some(why) = shared(meta.mode()) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} {why}: the spool needs a folder of its own, e.g. /var/lib/memleak-exporter/captures",
                    path.display()
                ),
            ));
        }
        Ok(dir)
    }

    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// The path of entry `name` through the descriptor; `name` must be one plain component.
    fn entry(&self, name: &str) -> io::Result<PathBuf> {
        if !is_plain_name(name) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?} is not a plain file name")));
        }
        Ok(PathBuf::from(format!("/proc/self/fd/{}/{name}", self.handle.as_raw_fd())))
    }

    /// Opens the subdirectory `name` (not a symlink).
    pub fn open_dir(&self, name: &str) -> io::Result<Dir> {
        let handle =
            OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW).open(self.entry(name)?)?;
        Ok(Dir { handle, shown: self.shown.join(name) })
    }

    /// Creates the subdirectory `name` (0700) and opens it.
    pub fn create_dir(&self, name: &str) -> io::Result<Dir> {
        std::fs::DirBuilder::new().mode(0o700).create(self.entry(name)?)?;
        self.open_dir(name)
    }

    /// Reads the regular file `name`, at most `max` bytes (a larger file is an error).
    pub fn read(&self, name: &str, max: u64) -> io::Result<Vec<u8>> {
        let file =
            OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(self.entry(name)?)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{name} is not a regular file")));
        }
        if meta.len() > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name} holds {} bytes, more than the {max} read", meta.len()),
            ));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(max + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > max {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{name} grew past {max} bytes")));
        }
        Ok(bytes)
    }

    /// Writes `name` whole: to a temporary name first, then renamed over it.
    pub fn write(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let temporary = format!(".{name}.tmp");
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.entry(&temporary)?)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        std::fs::rename(self.entry(&temporary)?, self.entry(name)?)
    }

    /// Names of the entries (`.` and `..` left out), at most `max`.
    pub fn list(&self, max: usize) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(format!("/proc/self/fd/{}", self.handle.as_raw_fd()))?.take(max) {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    /// (size, modification time in seconds) of the entry `name`, not following a symlink.
    pub fn stat(&self, name: &str) -> io::Result<std::fs::Metadata> {
        std::fs::symlink_metadata(self.entry(name)?)
    }

    /// Removes the subdirectory `name` and what it holds (symlinks are removed, not followed).
    pub fn remove_dir_all(&self, name: &str) -> io::Result<()> {
        std::fs::remove_dir_all(self.entry(name)?)
    }

    /// Bytes held by the regular files directly in this directory.
    pub fn bytes(&self, max_entries: usize) -> u64 {
        self.list(max_entries)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| self.stat(n).ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    }
}

/// One path component that names an entry: not empty, not `.` or `..`, no `/` or NUL.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']) && name.len() <= 255
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn names_and_symlinks_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::create_private(&tmp.path().join("spool")).unwrap();
        for bad in ["", ".", "..", "a/b", "a\0"] {
            assert!(dir.read(bad, 10).is_err(), "{bad:?}");
        }
        std::fs::write(tmp.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), tmp.path().join("spool/link")).unwrap();
        assert!(dir.read("link", 10).is_err(), "a symlink is not followed");
        assert!(dir.open_dir("link").is_err());
        dir.write("a", b"hello").unwrap();
        assert_eq!(dir.read("a", 10).unwrap(), b"hello");
        assert!(dir.read("a", 2).is_err(), "over the cap");
        let mut names = dir.list(10).unwrap();
        names.sort();
        assert_eq!(names, ["a", "link"]);
        let meta = std::fs::metadata(tmp.path().join("spool")).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
    }

    #[test]
    fn a_shared_folder_is_refused_and_left_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        for mode in [0o1777, 0o777, 0o770] {
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            let err = Dir::create_private(tmp.path()).unwrap_err().to_string();
            assert!(err.contains("writable by other users") && err.contains("a folder of its own"), "{err}");
            let now = std::fs::metadata(tmp.path()).unwrap().mode() & 0o7777;
            assert_eq!(now, mode, "the mode of an existing folder is never changed");
        }
        // Readable by others, its own: used as it is.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(Dir::create_private(tmp.path()).is_ok());
        assert_eq!(std::fs::metadata(tmp.path()).unwrap().mode() & 0o7777, 0o755);
    }
}
