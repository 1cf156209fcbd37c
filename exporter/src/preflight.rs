//! What `--config.check` examines beyond the flags: the folders the exporter will write, looked at without creating or changing anything.
//!
//! A problem here does not stop the exporter (captures turn off, a watched folder is retried
//! every scan), so the check warns instead of failing: a config that passes with warnings starts,
//! but without what the warnings name.

use crate::cli::Settings;
use rustix::fs::{Access, AtFlags, CWD, accessat};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The problems start-up would meet in the capture spool and the watched folders.
pub fn warnings(settings: &Settings) -> Vec<String> {
    let mut found = Vec::new();
    if let Err(why) = usable_or_creatable(&settings.capture.dir) {
        found.push(format!(
            "captures would be off: the spool {}: {why}; set --capture.dir",
            settings.capture.dir.display()
        ));
    }
    for dir in settings.ingest.iter().flat_map(|i| &i.dirs) {
        if let Err(why) = watchable(dir) {
            found.push(format!("the watched folder {} would be retried every scan: {why}", dir.display()));
        }
    }
    found
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether the effective user may write entries into `dir` (a directory).
fn writable(dir: &Path) -> Result<(), String> {
    accessat(CWD, dir, Access::WRITE_OK | Access::EXEC_OK, AtFlags::EACCESS)
        .map_err(|e| format!("the exporter's user (uid {}) cannot write into it ({e})", euid()))
}

/// The spool: an existing directory of the exporter's user, or one it can create.
fn usable_or_creatable(dir: &Path) -> Result<(), String> {
    // Opened without following a link at its last component, as start-up opens it.
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            Err("is a symbolic link, which the spool is never opened through: give the folder itself".into())
        }
        Ok(meta) if !meta.is_dir() => Err("exists and is not a directory".into()),
        Ok(meta) if meta.uid() != euid() => Err(format!(
            "belongs to uid {}, not to the exporter (uid {}): give it to the exporter's user",
            meta.uid(),
            euid()
        )),
        Ok(meta) => match crate::capture::dir::shared(meta.mode()) {
            Some(why) => Err(format!("{why}: the spool needs a folder of its own")),
            None => writable(dir),
        },
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            // Created at start with its missing parents: the nearest existing one must take them.
            let ancestor = dir.ancestors().skip(1).find(|a| a.as_os_str().is_empty() || a.exists());
            let ancestor = ancestor.filter(|a| !a.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !ancestor.is_dir() {
                return Err(format!("cannot be created: {} is not a directory", ancestor.display()));
            }
            writable(ancestor).map_err(|why| format!("cannot be created in {}: {why}", ancestor.display()))
        }
        Err(e) => Err(format!("cannot be examined ({e})")),
    }
}

/// A watched folder: an existing directory the exporter can read and write, whose state folders,
/// when present, are the exporter's own (what start-up would otherwise refuse).
fn watchable(dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("cannot be opened ({e}); create it or fix --ingest.dir"))?;
    if !meta.is_dir() {
        return Err("is not a directory".into());
    }
    accessat(CWD, dir, Access::READ_OK, AtFlags::EACCESS)
        .map_err(|e| format!("the exporter's user (uid {}) cannot list it ({e})", euid()))?;
    writable(dir)?;
    for state in [".ingested", ".failed"] {
        let Ok(meta) = std::fs::symlink_metadata(dir.join(state)) else { continue };
        if meta.file_type().is_symlink() {
            return Err(format!("{state} is a symbolic link, not the exporter's folder: remove it"));
        }
        if !meta.is_dir() {
            return Err(format!("{state} is not a directory: remove it"));
        }
        if meta.uid() != euid() {
            return Err(format!(
                "{state} is owned by uid {}, not by the exporter (uid {}): remove it, the exporter creates its own",
                meta.uid(),
                euid()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "{state} is writable by other users: remove it, the exporter creates its own (mode 0700)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_spool_is_usable_when_it_exists_or_its_nearest_parent_takes_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(usable_or_creatable(dir.path()), Ok(()));
        assert_eq!(usable_or_creatable(&dir.path().join("a/b/c")), Ok(()));
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(usable_or_creatable(&file), Err("exists and is not a directory".into()));
        let under_file = usable_or_creatable(&file.join("spool")).unwrap_err();
        assert!(under_file.contains("is not a directory"), "{under_file}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(usable_or_creatable(&link).unwrap_err().contains("symbolic link"));
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(usable_or_creatable(&shared).unwrap_err().contains("writable by other users (mode 1777)"));
    }

    #[test]
    fn a_watched_folder_must_exist_and_its_state_folders_be_the_exporters() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(watchable(dir.path()), Ok(()));
        let missing = watchable(&dir.path().join("missing")).unwrap_err();
        assert!(missing.contains("cannot be opened") && missing.contains("--ingest.dir"), "{missing}");
        std::os::unix::fs::symlink("/tmp", dir.path().join(".ingested")).unwrap();
        let link = watchable(dir.path()).unwrap_err();
        assert!(link.contains(".ingested is a symbolic link"), "{link}");
        std::fs::remove_file(dir.path().join(".ingested")).unwrap();
        std::fs::create_dir(dir.path().join(".failed")).unwrap();
        std::fs::set_permissions(dir.path().join(".failed"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let open = watchable(dir.path()).unwrap_err();
        assert!(open.contains(".failed is writable by other users"), "{open}");
    }
}
