//! Telling a return address among raw user-stack words: the bytes before it end with a call
//! instruction, read from the live process or, once it is gone, from the very file it mapped.
//! Shared by the sampler (the caller its markers skip) and `ebpf-malloc` (the caller a wrapper
//! without frame pointers skips): both copy words above the stack pointer and keep the ones
//! that follow a call.

use memleak_artifacts::heapprof::{self, Mapping};
use std::path::Path;

/// One `/proc/PID/maps` line as (start, end, permissions, path; empty when anonymous): where
/// both callers find the process's code.
pub fn maps_line(line: &str) -> Option<(u64, u64, &str, &str)> {
    let mut fields = line.split_whitespace();
    let (range, perms) = (fields.next()?, fields.next()?);
    let path = fields.nth(3).unwrap_or("");
    let (start, end) = range.split_once('-')?;
    Some((u64::from_str_radix(start, 16).ok()?, u64::from_str_radix(end, 16).ok()?, perms, path))
}

/// Whether `before`, the bytes that end just before a return address, end with a call.
pub fn ends_with_call(before: &[u8; 7]) -> bool {
    let b = before;
    // call rel32 (E8 xx xx xx xx); call *disp32(%rip) (FF 15 ...); call *%reg and *(%reg)
    // with or without a REX prefix (FF /2, modrm 0xD0-0xD7 or 0x10-0x17); call *disp8(%reg) (FF 5x d8).
    b[2] == 0xE8
        || (b[1] == 0xFF && b[2] == 0x15)
        || (b[5] == 0xFF && (b[6] & 0xF8 == 0xD0 || b[6] & 0xF8 == 0x10))
        || (b[4] == 0xFF && b[5] & 0xF8 == 0x50)
        || (b[0] == 0xFF && b[1] & 0xF8 == 0x90)
}

/// Reads the 7 bytes before `ip` from process `pid`'s memory.
pub fn bytes_before(pid: u32, ip: u64) -> Option<[u8; 7]> {
    let mut out = [0u8; 7];
    let local = libc::iovec { iov_base: out.as_mut_ptr().cast(), iov_len: out.len() };
    let remote = libc::iovec { iov_base: ip.checked_sub(7)? as *mut libc::c_void, iov_len: out.len() };
    // SAFETY: `local` covers `out`, which lives across the call; the kernel checks `remote`.
    let read = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    (read == 7).then_some(out)
}

/// Reads the 7 bytes before `ip` from the file mapped there (`files`: the process's file
/// mappings sorted by start, read through `root`): for a process gone by the end of the window,
/// whose memory is no longer readable. Code is mapped from its file unchanged, so these are the
/// bytes the process ran (a `.text` the process patched itself is not: such code is rare and
/// only costs the caller's frame).
pub fn bytes_before_in_file(files: &[Mapping], root: &Path, ip: u64) -> Option<[u8; 7]> {
    use std::io::{Read, Seek, SeekFrom};
    let mapping = heapprof::find(files, ip)?;
    let offset = ip - mapping.start + mapping.file_offset;
    // The very file mapped, never what its path names now: a process (or a
    // container's symbolic link) must not make the exporter read another file.
    let mut file = memleak_artifacts::symbolize::open_mapped(root, mapping).ok()?;
    file.seek(SeekFrom::Start(offset.checked_sub(7)?)).ok()?;
    let mut out = [0u8; 7];
    file.read_exact(&mut out).ok()?;
    Some(out)
}

/// Whether `ip` follows a call: read from the memory of process `memory` (when it still runs
/// the image `files` describe), or from the mapped file.
pub fn follows_call(memory: Option<u32>, files: &[Mapping], root: &Path, ip: u64) -> bool {
    read_before(memory, files, root, ip).is_some_and(|b| ends_with_call(&b))
}

/// Where the direct call (`call rel32`) that returns to `ip` went, read from the 5 bytes before
/// it (`before`: the 7 bytes before `ip`); None for any other call (indirect, through a register
/// or memory), whose target the bytes do not say.
pub fn direct_call_target(ip: u64, before: &[u8; 7]) -> Option<u64> {
    (before[2] == 0xE8).then(|| {
        let relative = i32::from_le_bytes([before[3], before[4], before[5], before[6]]);
        ip.wrapping_add_signed(i64::from(relative))
    })
}

/// The bytes before `ip`: from the process's memory while it runs, else from its mapped file.
pub fn read_before(memory: Option<u32>, files: &[Mapping], root: &Path, ip: u64) -> Option<[u8; 7]> {
    memory.and_then(|pid| bytes_before(pid, ip)).or_else(|| bytes_before_in_file(files, root, ip))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn call_instructions_are_recognised() {
        assert!(ends_with_call(&[0, 0, 0xE8, 1, 2, 3, 4]));
        assert!(ends_with_call(&[0, 0xFF, 0x15, 1, 2, 3, 4]));
        assert!(ends_with_call(&[0, 0, 0, 0, 0, 0xFF, 0xD0]));
        assert!(ends_with_call(&[0, 0, 0, 0, 0xFF, 0x50, 0x08]));
        assert!(!ends_with_call(&[0xCC; 7]));
        assert!(!ends_with_call(&[0x90; 7]));
    }

    /// A maps line for `path` (as the process sees it) at 0x400000, for the file `identity` is.
    fn maps_line(path: &str, identity: &std::fs::Metadata) -> String {
        use std::os::unix::fs::MetadataExt;
        let dev = identity.dev();
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        format!("400000-401000 r-xp 00000000 {major:x}:{minor:x} {} {path}\n", identity.ino())
    }

    #[test]
    fn code_bytes_come_only_from_the_mapped_file_inside_the_process_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(outside.path(), [0xE8u8; 32]).unwrap();
        std::fs::write(root.path().join("app"), [0x90, 0x90, 0x90, 0xE8, 1, 2, 3, 4, 0x90, 0x90]).unwrap();
        let app = std::fs::metadata(root.path().join("app")).unwrap();
        let ip = 0x400000 + 8;

        // The mapped file, found in the root by its path: the 7 bytes before `ip`, a call.
        let files = heapprof::mappings(maps_line("/app", &app).lines());
        assert_eq!(bytes_before_in_file(&files, root.path(), ip), Some([0x90, 0x90, 0xE8, 1, 2, 3, 4]));

        // Replaced since by another file: not the mapped one, nothing read.
        std::fs::rename(root.path().join("app"), root.path().join("old")).unwrap();
        std::fs::write(root.path().join("app"), [0xE8u8; 32]).unwrap();
        assert_eq!(bytes_before_in_file(&files, root.path(), ip), None);

        // An absolute symbolic link to a file of the host, even one whose identity the
        // maps name: resolved inside the root, where it names nothing.
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        let outside_identity = std::fs::metadata(outside.path()).unwrap();
        let files = heapprof::mappings(maps_line("/link", &outside_identity).lines());
        assert_eq!(bytes_before_in_file(&files, root.path(), ip), None);
        // (Read by its name from outside the root, the link would have led there.)
        assert_eq!(std::fs::read(root.path().join("link")).unwrap()[0], 0xE8);
    }

    #[test]
    fn a_direct_call_says_where_it_went() {
        // call rel32 = -0x100 ending at 0x401005: it went to 0x400f05.
        let before = [0x90, 0x90, 0xE8, 0x00, 0xFF, 0xFF, 0xFF];
        assert_eq!(direct_call_target(0x401005, &before), Some(0x400f05));
        // call *0x10(%rip): no target in the bytes.
        assert_eq!(direct_call_target(0x401005, &[0x90, 0xFF, 0x15, 0x10, 0, 0, 0]), None);
    }
}
