//! The watched folder and its state folders (`.ingested`, `.failed`), opened
//! once and used only by descriptor: a state folder is created 0700 by the
//! exporter and used only when the opened descriptor is a directory owned by
//! the exporter's user and writable by no one else. A symbolic link, a file
//! or someone else's folder in its place is refused, never followed or replaced.

use crate::ingest::outputs::OutputDir;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, fstat, mkdirat, open, openat, statat};
use std::os::fd::OwnedFd;
use std::path::Path;

pub const INGESTED: &str = ".ingested";
pub const FAILED: &str = ".failed";

/// The descriptors of one watched folder, all checked.
#[derive(Debug)]
pub struct Folders {
    pub watched: OwnedFd,
    pub ingested: OutputDir,
    pub failed: OutputDir,
}

/// Why a watched folder cannot be used now, in words for the log.
pub type Problem = String;

const DIRECTORY: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

/// Opens the watched folder `path` and its state folders (creating them when
/// missing), for the exporter running as `euid`.
pub fn open_folders(path: &Path, euid: u32) -> Result<Folders, Problem> {
    // The configured path is the administrator's: it may go through symbolic links.
    let watched =
        open(path, DIRECTORY, Mode::empty()).map_err(|e| format!("cannot open the watched directory: {e}"))?;
    let ingested = OutputDir::new(state_folder(&watched, INGESTED, euid)?);
    let failed = OutputDir::new(state_folder(&watched, FAILED, euid)?);
    Ok(Folders { watched, ingested, failed })
}

/// The state folder `name` of `watched`: created 0700 when missing, then
/// opened without following a link and checked on its descriptor.
fn state_folder(watched: &OwnedFd, name: &str, euid: u32) -> Result<OwnedFd, Problem> {
    match mkdirat(watched, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(format!("cannot create {name}: {e}")),
    }
    let fd = match openat(watched, name, DIRECTORY | OFlags::NOFOLLOW, Mode::empty()) {
        Ok(fd) => fd,
        // With O_DIRECTORY a link is refused as ENOTDIR: say which it is.
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
            let link = statat(watched, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Symlink);
            return Err(if link {
                format!("{name} is a symbolic link, not the exporter's folder: remove it")
            } else {
                format!("{name} is not a directory: remove it")
            });
        }
        Err(e) => return Err(format!("cannot open {name}: {e}")),
    };
    let stat = fstat(&fd).map_err(|e| format!("cannot examine {name}: {e}"))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return Err(format!("{name} is not a directory: remove it"));
    }
    if stat.st_uid != euid {
        return Err(format!(
            "{name} is owned by uid {}, not by the exporter (uid {euid}): remove it, the exporter creates its own (mode 0700)",
            stat.st_uid
        ));
    }
    if stat.st_mode & 0o022 != 0 {
        return Err(format!(
            "{name} is writable by others (mode {:o}): make it 0700, or remove it",
            stat.st_mode & 0o7777
        ));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn euid() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    #[test]
    fn state_folders_are_created_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        open_folders(dir.path(), euid()).unwrap();
        let mode = std::fs::metadata(dir.path().join(INGESTED)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Someone else's uid: refused.
        let err = open_folders(dir.path(), euid() + 1).unwrap_err();
        assert!(err.contains("is owned by uid"), "{err}");
        // Writable by others: refused.
        std::fs::set_permissions(dir.path().join(FAILED), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = open_folders(dir.path(), euid()).unwrap_err();
        assert!(err.contains(".failed is writable by others"), "{err}");
    }

    #[test]
    fn a_link_or_a_file_in_place_of_a_state_folder_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join(INGESTED)).unwrap();
        let err = open_folders(dir.path(), euid()).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(std::fs::symlink_metadata(dir.path().join(INGESTED)).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0, "nothing written through the link");
        std::fs::remove_file(dir.path().join(INGESTED)).unwrap();
        std::fs::write(dir.path().join(INGESTED), "x").unwrap();
        assert!(open_folders(dir.path(), euid()).unwrap_err().contains("not a directory"));
    }
}
