//! Writing an artifact's outputs into a folder held open: each to a private
//! temporary name (`O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600) renamed into place
//! once all are written, all of them together within the output budget.
//! Nothing is written through a name someone else chose or created.

use memleak_artifacts::Ingested;
use memleak_artifacts::encode::{flamegraph, folded, pprof, summary};
use rustix::fs::{AtFlags, Mode, OFlags, openat, renameat, unlinkat};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// A folder outputs are written into, by descriptor.
#[derive(Debug)]
pub struct OutputDir {
    fd: OwnedFd,
}

impl OutputDir {
    pub fn new(fd: OwnedFd) -> OutputDir {
        OutputDir { fd }
    }

    /// Opens the folder at `path` (the `ingest` command's `--out`).
    pub fn open(path: &Path) -> io::Result<OutputDir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Ok(OutputDir { fd: rustix::fs::open(path, flags, Mode::empty())? })
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Starts a set of outputs, at most `budget` bytes in all.
    pub fn batch(&self, budget: u64) -> Batch<'_> {
        Batch { dir: self, left: budget, budget, exceeded: false, written: Vec::new() }
    }
}

/// Outputs written to temporary names, put in place by `commit`, removed if dropped uncommitted.
#[derive(Debug)]
pub struct Batch<'a> {
    dir: &'a OutputDir,
    left: u64,
    budget: u64,
    /// Whether a write found the budget spent (an encoder may report it as its own error).
    exceeded: bool,
    /// (temporary name, final name)
    written: Vec<(String, String)>,
}

impl Batch<'_> {
    /// Writes `name` with `fill`, to `.NAME.tmp` until `commit`.
    pub fn write(&mut self, name: &str, fill: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        let temporary = format!(".{name}.tmp");
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
        let mode = Mode::from_raw_mode(0o600);
        let fd = match openat(&self.dir.fd, &temporary, flags, mode) {
            // A leftover of an interrupted run: ours (a private name in our folder), so it goes.
            Err(rustix::io::Errno::EXIST) => {
                unlinkat(&self.dir.fd, &temporary, AtFlags::empty())?;
                openat(&self.dir.fd, &temporary, flags, mode)?
            }
            other => other?,
        };
        self.written.push((temporary, name.to_owned()));
        let mut out =
            Capped { inner: BufWriter::new(File::from(fd)), left: &mut self.left, exceeded: &mut self.exceeded };
        let written = fill(&mut out).and_then(|()| out.flush());
        match written {
            Err(_) if self.exceeded => Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("the outputs are larger than the budget of {} bytes", self.budget),
            )),
            other => other,
        }
    }

    /// Renames every output into place; returns their names, in the order written.
    pub fn commit(mut self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for (temporary, name) in std::mem::take(&mut self.written) {
            renameat(&self.dir.fd, &temporary, &self.dir.fd, &name)?;
            names.push(name);
        }
        Ok(names)
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        for (temporary, _) in &self.written {
            let _ = unlinkat(self.dir.fd.as_fd(), temporary.as_str(), AtFlags::empty());
        }
    }
}

/// A writer that fails once the batch's budget is spent.
struct Capped<'a, W> {
    inner: W,
    left: &'a mut u64,
    exceeded: &'a mut bool,
}

impl<W: Write> Write for Capped<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len() as u64;
        if n > *self.left {
            *self.exceeded = true;
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "the output budget is spent"));
        }
        *self.left -= n;
        self.inner.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether an error is the output budget running out.
pub fn over_budget(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::FileTooLarge
}

/// Writes NAME.pb.gz, NAME.folded (when there is a profile), NAME.svg (when it has stacks) and
/// NAME.json (with `extra` fields) into `dir`, within `budget` bytes, and
/// puts them in place together; returns their names. One output is in memory at a time.
pub fn write_all(
    dir: &OutputDir,
    name: &str,
    ingested: &Ingested,
    extra: &[(&str, serde_json::Value)],
    budget: u64,
) -> io::Result<Vec<String>> {
    let mut batch = dir.batch(budget);
    if let Some(profile) = ingested.profiles.first() {
        batch.write(&format!("{name}.pb.gz"), |w| pprof::write(profile, name, w))?;
        let collapsed = folded::encode(profile, profile.main_index());
        batch.write(&format!("{name}.folded"), |w| w.write_all(collapsed.as_bytes()))?;
        // No stack, no drawing: an empty file would not be an SVG.
        if !collapsed.is_empty() {
            batch.write(&format!("{name}.svg"), |w| {
                flamegraph::write(profile, name, &collapsed, w).map_err(io::Error::other)
            })?;
        }
    }
    batch.write(&format!("{name}.json"), |w| summary::write_json(w, name, ingested, extra))?;
    batch.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_appear_together_and_never_through_a_planted_name() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputDir::open(dir.path()).unwrap();
        // A symbolic link where an output goes, and one where its temporary name goes.
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("x.json")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(".x.json.tmp")).unwrap();
        let mut ingested = Ingested::new("asan");
        ingested.totals.push(("errors".into(), 0.0));
        write_all(&out, "x", &ingested, &[], 1 << 20).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep", "the link's target is untouched");
        let json = std::fs::symlink_metadata(dir.path().join("x.json")).unwrap();
        assert!(json.is_file(), "the link itself was replaced by the output");
        assert!(!dir.path().join(".x.json.tmp").exists());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(json.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn an_encoder_stopped_by_the_budget_is_reported_as_over_it() {
        use memleak_artifacts::model::{Frame, INUSE_SPACE, Profile, Sample};
        let dir = tempfile::tempdir().unwrap();
        let out = OutputDir::open(dir.path()).unwrap();
        let mut ingested = Ingested::new("jemalloc");
        let mut profile = Profile::new("inuse", vec![INUSE_SPACE]);
        for i in 0..200 {
            let stack = vec![Frame::function(format!("f{i}")), Frame::function("main")];
            profile.samples.push(Sample { stack, values: vec![i + 1], labels: vec![] });
        }
        ingested.profiles.push(profile);
        // Room for the profile and the collapsed stacks, not for the flame graph.
        let err = write_all(&out, "z", &ingested, &[], 8 << 10).unwrap_err();
        assert!(over_budget(&err), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn over_the_budget_nothing_is_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputDir::open(dir.path()).unwrap();
        let mut ingested = Ingested::new("asan");
        ingested.totals.push(("errors".into(), 0.0));
        let err = write_all(&out, "y", &ingested, &[], 10).unwrap_err();
        assert!(over_budget(&err), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
