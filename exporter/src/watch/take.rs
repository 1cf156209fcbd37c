//! Taking one file from a watched folder: claim it by moving it under a
//! private name into the exporter's own `.ingested` (so the writer can no
//! longer swap it), check the opened descriptor (a regular file, one link,
//! not empty, within the budget), ingest it, and put it with its outputs in
//! `.ingested` or with its reason in `.failed`. A file that does not parse
//! (it may have been taken while its writer paused) gets one more try later; a file still under its private name at start-up is one
//! the exporter stopped on (perhaps crashed on), and is not tried again.

use super::folder::Context;
use super::kept::Figures;
use super::state::{FAILED, Folders};
use crate::ingest::{names, outputs, pipeline};
use memleak_artifacts::symbolize::SymbolPath;
use memleak_artifacts::{ArtifactError, FORMATS};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, fstat, openat, renameat, renameat_with, statat};
use std::os::fd::OwnedFd;
use std::time::{Instant, SystemTime};

/// The private name of a file being ingested.
pub fn work_name(out: &str) -> String {
    format!(".{out}.work")
}

/// The private name of a file waiting for its second try.
pub fn retry_name(out: &str) -> String {
    format!(".{out}.retry")
}

/// The private name that holds a claimed file's original name (escaped) until
/// it is done with: after a crash, the reason given names the file as its writer did.
pub fn source_name(out: &str) -> String {
    format!(".{out}.source")
}

/// Records `shown` as the original name of the file about to be claimed as `out`.
pub fn record_source(folders: &Folders, out: &str, shown: &str) {
    let mut batch = folders.ingested.batch(4 << 10);
    let written = batch.write(&source_name(out), |w| w.write_all(shown.as_bytes())).and_then(|()| batch.commit());
    if let Err(e) = written {
        tracing::debug!(file = shown, output = out, "cannot record its original name: {e}");
    }
}

/// The original name recorded for `out`, if any (read bounded, never following a link).
pub fn recorded_source(folders: &Folders, out: &str) -> Option<String> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = openat(folders.ingested.fd(), source_name(out), flags, Mode::empty()).ok()?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(std::fs::File::from(fd), 4 << 10), &mut bytes).ok()?;
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

/// Forgets the original name recorded for `out`.
pub fn forget_source(folders: &Folders, out: &str) {
    let _ = rustix::fs::unlinkat(folders.ingested.fd(), source_name(out), AtFlags::empty());
}

/// Whether `name` is in use in either state folder, as a result, an output or a private name.
pub fn taken(folders: &Folders, name: &str) -> bool {
    let mut candidates = vec![name.to_owned(), work_name(name), retry_name(name), source_name(name)];
    candidates.extend(names::OUTPUT_SUFFIXES.iter().map(|s| format!("{name}{s}")));
    [folders.ingested.fd(), folders.failed.fd()]
        .iter()
        .any(|dir| candidates.iter().any(|c| statat(dir, c.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok()))
}

/// What became of a claimed file.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Ingested,
    Failed,
    /// Did not parse on its first try: kept under `.NAME.retry` for one more.
    Retry,
    /// The disk (or the quota) is full: its outputs could not be written. Left
    /// under its private name `.NAME.work`, for the caller to put back.
    DiskFull,
}

/// Whether writing failed because the disk or the quota is full: no fault of the file.
pub fn disk_full(e: &std::io::Error) -> bool {
    let full = [rustix::io::Errno::NOSPC, rustix::io::Errno::DQUOT].map(|e| Some(e.raw_os_error()));
    full.contains(&e.raw_os_error())
}

/// Why a file goes to `.failed` without being parsed: (metric reason, what to say).
type Refusal = (&'static str, String);

/// Ingests the claimed file `.OUT.work` of `folders` (its `attempt`th try).
pub fn ingest_claimed(ctx: &Context<'_>, folders: &Folders, out: &str, shown: &str, attempt: u32) -> Outcome {
    let work = work_name(out);
    let file = match open_claimed(folders.ingested.fd(), &work, ctx.config.budget.file_bytes) {
        Ok(file) => file,
        Err((reason, message)) => {
            fail(ctx, folders, &work, out, shown, reason, "unknown", &message);
            return Outcome::Failed;
        }
    };
    let owner = fstat(&file).map(|s| s.st_uid).ok();
    let size = fstat(&file).ok().and_then(|s| u64::try_from(s.st_size).ok());
    // Binaries named inside the file are read only when its owner could read them.
    let symbols = SymbolPath { dirs: ctx.config.symbols.clone(), recorded_paths: true, readable_by: owner };
    let budget = &ctx.config.budget;
    let deadline = Instant::now() + budget.time;
    let converted = pipeline::convert(std::fs::File::from(file), size, budget, &symbols, deadline);
    let converted = match converted {
        Ok(converted) => converted,
        Err(e) if attempt == 1 && worth_another_try(&e) => {
            return match renameat(folders.ingested.fd(), &work, folders.ingested.fd(), retry_name(out)) {
                Ok(()) => {
                    if ctx.may_log() {
                        tracing::info!(
                            file = shown,
                            output = out,
                            reason = e.reason(),
                            "does not parse yet (its writer may have paused mid-file): one more try later, once it \
                             has stopped changing"
                        );
                    }
                    Outcome::Retry
                }
                Err(_) => {
                    fail(ctx, folders, &work, out, shown, e.reason(), format_of(&e), &e.to_string());
                    Outcome::Failed
                }
            };
        }
        Err(e) => {
            let message = if attempt > 1 { format!("{e} (on its second try)") } else { e.to_string() };
            fail(ctx, folders, &work, out, shown, e.reason(), format_of(&e), &message);
            return Outcome::Failed;
        }
    };
    let ingested = converted.ingested;
    let extra = [
        ("source_name", serde_json::json!(shown)),
        ("unsymbolized", serde_json::json!(pipeline::unsymbolized_line(&converted.unsymbolized))),
    ];
    if let Err(e) = outputs::write_all(&folders.ingested, out, &ingested, &extra, budget.output_bytes) {
        if disk_full(&e) {
            let mut kept = ctx.kept();
            *kept.failures.entry("disk_full").or_default() += 1;
            return Outcome::DiskFull;
        }
        let reason = if outputs::over_budget(&e) { "output_too_large" } else { "unwritable" };
        fail(ctx, folders, &work, out, shown, reason, ingested.format, &format!("writing the outputs: {e}"));
        return Outcome::Failed;
    }
    if let Err(e) = renameat(folders.ingested.fd(), &work, folders.ingested.fd(), out) {
        tracing::warn!(file = shown, output = out, "ingested, but cannot move it beside its outputs: {e}");
    }
    tracing::info!(
        file = shown,
        output = out,
        format = ingested.format,
        left_out = ingested.left_out.join("; "),
        hints = ingested.hints.join("; "),
        "ingested"
    );
    let mut kept = ctx.kept();
    *kept.files.entry((ingested.format.to_owned(), "ingested")).or_default() += 1;
    kept.results.insert((ctx.index, out.to_owned()), Figures::from_totals(ingested.format, |k| ingested.total(k)));
    drop(kept);
    ctx.latest.keep(out, &ingested);
    if let Some(sink) = ctx.otlp {
        sink.ship_ingested(shown, &ingested);
    }
    Outcome::Ingested
}

/// Opens the claimed file and checks the descriptor: the name is the
/// exporter's own now, but what it names was the writer's choice.
fn open_claimed(ingested: &OwnedFd, work: &str, max_bytes: u64) -> Result<OwnedFd, Refusal> {
    let stat = statat(ingested, work, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| ("unreadable", format!("cannot examine it: {e}")))?;
    refuse_kind(FileType::from_raw_mode(stat.st_mode))?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd =
        openat(ingested, work, flags, Mode::empty()).map_err(|e| ("unreadable", format!("cannot open it: {e}")))?;
    let opened = fstat(&fd).map_err(|e| ("unreadable", format!("cannot examine it: {e}")))?;
    refuse_kind(FileType::from_raw_mode(opened.st_mode))?;
    if opened.st_nlink != 1 {
        return Err((
            "hard_link",
            format!(
                "it has {} names (hard links): another name of the same file exists elsewhere, so it is not read",
                opened.st_nlink
            ),
        ));
    }
    let size = u64::try_from(opened.st_size).unwrap_or(0);
    if size == 0 {
        return Err(("empty", "it is empty".into()));
    }
    if size > max_bytes {
        let e = ArtifactError::FileTooLarge { size, limit: max_bytes };
        return Err((e.reason(), format!("{e} (--ingest.max-file-bytes): not read")));
    }
    Ok(fd)
}

/// Refuses everything but a regular file, unread.
fn refuse_kind(kind: FileType) -> Result<(), Refusal> {
    let (reason, what) = match kind {
        FileType::RegularFile => return Ok(()),
        FileType::Symlink => ("symlink", "a symbolic link"),
        FileType::Fifo => ("fifo", "a FIFO"),
        FileType::Socket => ("socket", "a socket"),
        FileType::CharacterDevice | FileType::BlockDevice => ("device", "a device node"),
        FileType::Directory => ("directory", "a directory"),
        FileType::Unknown => ("unreadable", "of an unknown kind"),
    };
    Err((reason, format!("it is {what}: only regular files are read; it was moved here unread")))
}

/// Whether a failure may come from taking the file while its writer paused
/// mid-file (cut short, or cut where it looks garbled or unrecognizable): those
/// get a second try; budget refusals, compressions not read, and content no
/// more bytes can make a known format (binary at its start, or a whole head
/// that no format recognizes) do not.
fn worth_another_try(e: &ArtifactError) -> bool {
    matches!(
        e,
        ArtifactError::Truncated { .. }
            | ArtifactError::Malformed { .. }
            | ArtifactError::UnknownFormat { complete: false, .. }
    )
}

/// The format an error names, when it is one of the table's (else `unknown`): a bounded label.
fn format_of(e: &ArtifactError) -> &'static str {
    let named = match e {
        ArtifactError::Malformed { format, .. } | ArtifactError::Truncated { format, .. } => Some(*format),
        _ => None,
    };
    named.and_then(|f| FORMATS.iter().map(|t| t.id).find(|id| *id == f)).unwrap_or("unknown")
}

/// Whether `name` in `.ingested` is a directory (its own status; a link is not followed).
pub fn is_directory(folders: &Folders, name: &str) -> bool {
    statat(folders.ingested.fd(), name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory)
}

/// Gives a directory claimed under the private name `from` back to the watched
/// folder, unread: the writer swapped it in between the check and the claim.
/// Kept in a state folder it would be the writer's (its owner, and any
/// descriptor it holds on it, can fill it with anything, beyond the disk
/// bounds); removing it would mean walking a tree the writer is changing and
/// may fill with moved-in entries. Given back under its own name when that is
/// free, else under a hidden name the scan skips (never replacing anything).
pub fn give_back_directory(ctx: &Context<'_>, folders: &Folders, from: &str, original: &[u8], out: &str, shown: &str) {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let hidden = format!(".{out}.directory");
    let hidden_unique = format!(".{out}.directory~{nanos:x}");
    let names: [&[u8]; 3] = [original, hidden.as_bytes(), hidden_unique.as_bytes()];
    let back = names.into_iter().find(|name| {
        renameat_with(folders.ingested.fd(), from, &folders.watched, *name, RenameFlags::NOREPLACE).is_ok()
    });
    match back {
        Some(_) if !ctx.may_log() => {}
        Some(name) => tracing::warn!(
            file = shown,
            reason = "directory",
            given_back_as = names::escaped(name),
            "a directory took the file's place as it was claimed: given back to the watched directory, unread"
        ),
        None => tracing::error!(
            file = shown,
            reason = "directory",
            "a directory took the file's place as it was claimed, and cannot be given back to the watched directory: it stays under {}/{from} until the next start tries again",
            super::state::INGESTED
        ),
    }
    let mut kept = ctx.kept();
    *kept.files.entry(("unknown".to_owned(), "failed")).or_default() += 1;
    *kept.failures.entry("directory").or_default() += 1;
}

/// Moves `from` (a private name in `.ingested`) to `.failed/OUT`, with `message` in `OUT.error.txt`.
#[allow(clippy::too_many_arguments)]
pub fn fail(
    ctx: &Context<'_>,
    folders: &Folders,
    from: &str,
    out: &str,
    shown: &str,
    reason: &'static str,
    format: &str,
    message: &str,
) {
    let mut batch = folders.failed.batch(64 << 10);
    let written =
        batch.write(&format!("{out}.error.txt"), |w| writeln!(w, "{shown}: {message}")).and_then(|()| batch.commit());
    if let Err(e) = written {
        tracing::warn!(file = shown, output = out, "cannot write its reason into {FAILED}: {e}");
    }
    if let Err(e) = renameat(folders.ingested.fd(), from, folders.failed.fd(), out) {
        tracing::warn!(file = shown, output = out, "cannot move it into {FAILED}: {e}");
    }
    // File content is never logged (an error may quote it): the reason file holds the details.
    if ctx.may_log() {
        tracing::warn!(
            file = shown,
            reason,
            details = format!("{FAILED}/{out}.error.txt"),
            "cannot ingest; moved to {FAILED}/{out}"
        );
    }
    let mut kept = ctx.kept();
    *kept.files.entry((format.to_owned(), "failed")).or_default() += 1;
    *kept.failures.entry(reason).or_default() += 1;
}
