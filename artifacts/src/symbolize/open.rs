//! Opening a binary named inside an artifact without trusting the name: only
//! a regular, non-empty file within a size cap, on a real file system, never
//! through a symbolic link as its last component, never blocking; under the
//! `--symbols` folders by file name, or at the recorded path on this host;
//! for a live process, the very file it mapped (`mapped`).

use crate::heapprof::Mapping;
use rustix::fs::{FileType, FsWord, Mode, OFlags, ResolveFlags, fstat, fstatfs, open, openat, openat2};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

/// Binaries larger than this are not opened: only their headers and symbol
/// tables are ever read, but a dump naming a huge file is not worth a look.
pub const MAX_BINARY_BYTES: u64 = 4 << 30;

/// Why a binary was not opened or not read.
pub type Refusal = &'static str;

/// File systems whose files are not binaries, and whose reads can block or
/// have effects (procfs, sysfs, tracefs' `trace_pipe`, a FUSE server that never answers).
const PSEUDO_FILE_SYSTEMS: &[(FsWord, &str)] = &[
    (0x9fa0, "procfs"),
    (0x6265_6572, "sysfs"),
    (0x7472_6163, "tracefs"),
    (0x6462_6720, "debugfs"),
    (0x0027_e0eb, "cgroupfs"),
    (0x6367_7270, "cgroup2"),
    (0x7363_6673, "securityfs"),
    (0xcafe_4a11, "bpffs"),
    (0x6165_676c, "pstore"),
    (0xde5e_81e4, "efivarfs"),
    (0x6265_6570, "configfs"),
    (0x6573_5546, "fuse"),
    (0x1cd1, "devpts"),
    (0x1980_0202, "mqueue"),
    (0x6e73_6673, "nsfs"),
    (0x4249_4e4d, "binfmt_misc"),
];

const FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::NOFOLLOW).union(OFlags::NONBLOCK).union(OFlags::CLOEXEC).union(OFlags::NOCTTY);

/// Folders searched by file name, opened once per batch.
#[derive(Debug)]
pub struct Roots(Vec<OwnedFd>);

impl Roots {
    /// Opens the folders (those that cannot be opened are skipped: they hold nothing to find).
    pub fn open(dirs: &[std::path::PathBuf]) -> Roots {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Roots(dirs.iter().filter_map(|d| open(d, flags, Mode::empty()).ok()).collect())
    }

    /// The binary `module` names, found by its file name in the first folder
    /// that holds it; `Err` when one holds it but it may not be read.
    pub fn find(&self, module: &str) -> Option<Result<File, Refusal>> {
        let name = file_name(module)?;
        self.0.iter().find_map(|root| match openat(root, name, FLAGS, Mode::empty()) {
            Err(rustix::io::Errno::NOENT) => None,
            Err(rustix::io::Errno::LOOP) => Some(Err("a symbolic link")),
            Err(_) => Some(Err("cannot be opened")),
            Ok(fd) => Some(checked(fd, None)),
        })
    }
}

/// The binary at the path the artifact recorded; with `readable_by`, only when
/// that user could read it (world-readable, or theirs and owner-readable).
pub fn at_recorded_path(module: &str, readable_by: Option<u32>) -> Result<File, Refusal> {
    if !module.starts_with('/') {
        return Err("not an absolute path");
    }
    match open(module, FLAGS, Mode::empty()) {
        Ok(fd) => checked(fd, readable_by),
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => Err("not found"),
        Err(rustix::io::Errno::LOOP) => Err("a symbolic link"),
        Err(_) => Err("cannot be opened"),
    }
}

/// The file `mapping` of a live process maps, the process's file system being
/// `root` (its `/proc/PID/root`): first the mapping's own file through
/// `/proc/PID/map_files` (still the mapped one if it was deleted or replaced
/// since; needs root or ptrace access), else its path resolved inside `root`
/// and never out of it (`RESOLVE_IN_ROOT`: the process's absolute symbolic
/// links stay in its namespace; no magic links). Either way accepted only when
/// it is the mapped file (its device and inode): a path the process controls
/// never makes us read another file.
pub fn mapped(root: &Path, mapping: &Mapping) -> Result<File, Refusal> {
    let mapped = root.parent().map(|process| process.join(format!("map_files/{:x}-{:x}", mapping.start, mapping.end)));
    // Following the link is the point: the kernel hands over the mapping's file, not a path lookup.
    let through_map_files = mapped.and_then(|p| open(&p, FLAGS.difference(OFlags::NOFOLLOW), Mode::empty()).ok());
    let fd = match through_map_files {
        Some(fd) => fd,
        None => in_root(root, &mapping.path)?,
    };
    let stat = fstat(&fd).map_err(|_| "cannot be examined")?;
    if (stat.st_dev, stat.st_ino) != (mapping.dev, mapping.inode) {
        return Err("the file at its path is not the one mapped (replaced or deleted since)");
    }
    checked(fd, None)
}

/// `path` (absolute in the process's view) opened inside `root`, resolved as the process would.
fn in_root(root: &Path, path: &str) -> Result<OwnedFd, Refusal> {
    let dir = open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|_| "the process's root cannot be opened")?;
    let relative = path.trim_start_matches('/');
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    match openat2(&dir, relative, FLAGS, Mode::empty(), resolve) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => Err("not found (deleted since it was mapped?)"),
        Err(rustix::io::Errno::LOOP) => Err("a symbolic link"),
        Err(_) => Err("cannot be opened"),
    }
}

/// Where distributions install the separate debug files of their binaries, by build id.
const BUILD_ID_DEBUG_DIR: &str = "/usr/lib/debug/.build-id";

/// The separate debug file of the binary whose GNU build id is `build_id`
/// (e.g. libc6-dbg's for a stripped libc), opened with the checks of
/// `at_recorded_path`; matched by build id, so it describes those very bytes.
pub fn debug_file(build_id: &[u8]) -> Option<File> {
    let (first, rest) = build_id.split_first()?;
    let rest: String = rest.iter().map(|b| format!("{b:02x}")).collect();
    at_recorded_path(&format!("{BUILD_ID_DEBUG_DIR}/{first:02x}/{rest}.debug"), None).ok()
}

/// The last component of `module` when it is a plain file name.
fn file_name(module: &str) -> Option<&str> {
    match Path::new(module).components().next_back()? {
        Component::Normal(name) => name.to_str(),
        _ => None,
    }
}

/// The opened file when it is fit to read: checks the opened descriptor, not the name.
fn checked(fd: OwnedFd, readable_by: Option<u32>) -> Result<File, Refusal> {
    let stat = fstat(&fd).map_err(|_| "cannot be examined")?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err("not a regular file");
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if size == 0 {
        return Err("empty");
    }
    if size > MAX_BINARY_BYTES {
        return Err("larger than 4 GiB");
    }
    let fs = fstatfs(&fd).map_err(|_| "cannot be examined")?;
    if let Some((_, name)) = PSEUDO_FILE_SYSTEMS.iter().find(|(magic, _)| fs.f_type == *magic) {
        return Err(match *name {
            "procfs" => "on procfs",
            "sysfs" => "on sysfs",
            "tracefs" => "on tracefs",
            "debugfs" => "on debugfs",
            "fuse" => "on a FUSE file system",
            _ => "on a pseudo file system",
        });
    }
    if let Some(uid) = readable_by {
        let world = stat.st_mode & 0o004 != 0;
        let owner = stat.st_uid == uid && stat.st_mode & 0o400 != 0;
        if !(world || owner) {
            return Err("not readable by the artifact's owner");
        }
    }
    Ok(File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    #[test]
    fn names_and_kinds_of_files() {
        assert_eq!(file_name("/usr/lib/libc.so.6"), Some("libc.so.6"));
        assert_eq!(file_name("/a/.."), None);
        assert_eq!(file_name("/"), None);
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("bin");
        std::fs::write(&binary, b"\x7fELF....").unwrap();
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        std::os::unix::fs::symlink(&binary, dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let roots = Roots::open(&[dir.path().to_path_buf(), "/nonexistent".into()]);
        assert!(roots.find("/elsewhere/bin").unwrap().is_ok());
        assert_eq!(roots.find("/x/empty").unwrap().err(), Some("empty"));
        assert_eq!(roots.find("/x/link").unwrap().err(), Some("a symbolic link"));
        assert_eq!(roots.find("/x/sub").unwrap().err(), Some("not a regular file"));
        assert!(roots.find("/x/missing").is_none());
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        assert_eq!(at_recorded_path(&path(&dir.path().join("link")), None).err(), Some("a symbolic link"));
        assert_eq!(at_recorded_path("relative", None).err(), Some("not an absolute path"));
        // Pseudo files: regular and non-empty by fstat (sysfs says 4096), refused by their file system.
        assert_eq!(at_recorded_path("/sys/kernel/mm/transparent_hugepage/enabled", None).err(), Some("on sysfs"));
        assert!(at_recorded_path("/proc/self/status", None).is_err());
        // Readable by the artifact's owner: world-readable, or theirs.
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o600)).unwrap();
        let me = rustix::process::geteuid().as_raw();
        assert!(at_recorded_path(&path(&binary), Some(me)).is_ok());
        assert_eq!(at_recorded_path(&path(&binary), Some(me + 1)).err(), Some("not readable by the artifact's owner"));
    }

    #[test]
    fn a_path_is_resolved_inside_the_process_root() {
        use std::io::Read;
        // The process's root holds `/lib/real` and `/lib/sub`, an absolute link
        // to `/only-inside`: walked from our root, the link leads to a folder of ours.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("real"), b"host file").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("only-inside")).unwrap();
        std::fs::write(root.path().join("only-inside/real"), b"process file").unwrap();
        std::fs::create_dir(root.path().join("lib")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("lib/out")).unwrap();
        std::os::unix::fs::symlink("/only-inside", root.path().join("lib/sub")).unwrap();
        let read = |fd: OwnedFd| {
            let mut text = String::new();
            File::from(fd).read_to_string(&mut text).unwrap();
            text
        };
        assert_eq!(read(in_root(root.path(), "/lib/sub/real").unwrap()), "process file");
        // `outside` is absolute: inside the root it names nothing.
        assert!(std::fs::read(root.path().join("lib/out/real")).is_ok(), "the walk by name escapes");
        assert!(in_root(root.path(), "/lib/out/real").is_err());
        std::fs::write(root.path().join("real"), b"process file").unwrap();
        let dotdot = "/lib/../../../../../../../../../../real";
        assert_eq!(read(in_root(root.path(), dotdot).unwrap()), "process file", "`..` stops at the root");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_raw_mode(0o600)).unwrap();
        let started = Instant::now();
        assert_eq!(at_recorded_path(fifo.to_str().unwrap(), None).err(), Some("not a regular file"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
