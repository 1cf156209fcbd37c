//! The stack of a sampled allocation from what the probe took: the return address into the allocation's caller, found among the raw words above the stack pointer (the first that points just after a call instruction in executable code outside the sampler), then the kernel's frame-pointer walk past the sampler's own frames; named through `Names`, the seam where the shared symbolizer of `ebpf-malloc` can replace the ELF-symbol one.
//!
//! Why the raw words: the sampler's hooks keep no frame pointer, so at the marker `rbp` still
//! holds the caller's frame, and the walk goes from the marker straight to the caller's caller.

use memleak_artifacts::symbolize::Symbolizer;
use memleak_artifacts::{Frame, heapprof};
use std::path::{Path, PathBuf};

/// Names the addresses of a process's user stack, innermost first.
pub trait Names {
    fn name(&mut self, ips: &[u64]) -> Vec<Frame>;
}

/// One process's mappings, read once at the end of the window.
#[derive(Debug, Default)]
pub struct Space {
    /// File mappings, sorted by start (what `heapprof::frame` needs).
    files: Vec<heapprof::Mapping>,
    /// Executable ranges.
    code: Vec<(u64, u64)>,
    /// Executable ranges of the file holding the markers.
    sampler: Vec<(u64, u64)>,
}

impl Space {
    /// Parses `/proc/PID/maps` text; `sampler_path` is the markers' file as mapped.
    pub fn parse(maps: &str, sampler_path: &str) -> Space {
        let mut space = Space { files: heapprof::mappings(maps.lines()), ..Space::default() };
        for line in maps.lines() {
            let mut fields = line.split_whitespace();
            let (Some(range), Some(perms)) = (fields.next(), fields.next()) else { continue };
            let path = fields.nth(3).unwrap_or("");
            let Some((start, end)) = range.split_once('-') else { continue };
            let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) else { continue };
            if perms.contains('x') {
                space.code.push((start, end));
                if path == sampler_path {
                    space.sampler.push((start, end));
                }
            }
        }
        space
    }

    fn in_code(&self, ip: u64) -> bool {
        self.code.iter().any(|&(s, e)| (s..e).contains(&ip))
    }

    fn in_sampler(&self, ip: u64) -> bool {
        self.sampler.iter().any(|&(s, e)| (s..e).contains(&ip))
    }
}

/// Whether the bytes before `ip` end with an x86-64 call instruction (`ip` is a return address).
pub type CallCheck<'a> = &'a dyn Fn(u64) -> bool;

/// The return addresses of a sampled allocation, innermost first, without the sampler's frames.
/// When the sampler's own code is the process's executable (the `GlobalAlloc` wrapper), the raw
/// words cannot tell its frames from the caller's: the walk alone is used.
///
/// The walk ends at its first address outside executable code: a hook that uses `rbp` as a
/// plain register (the library's `realloc` does) leaves data there when it calls the marker,
/// and the kernel's walk from it returns that data (`0x1a00000000000042`) and whatever follows.
pub fn addresses(walk: &[u64], words: &[u64], space: &Space, follows_call: CallCheck) -> Vec<u64> {
    let outside = |ip: &u64| !space.in_sampler(*ip);
    let walked: Vec<u64> =
        walk.iter().copied().skip_while(|ip| !outside(ip)).take_while(|&ip| space.in_code(ip)).collect();
    let caller = words.iter().copied().find(|&w| outside(&w) && space.in_code(w) && follows_call(w));
    match caller {
        Some(caller) if walked.first() != Some(&caller) => std::iter::once(caller).chain(walked).collect(),
        _ => walked,
    }
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

/// Names frames from the ELF symbols of the process's modules, read through `/proc/PID/root`.
#[derive(Debug)]
pub struct ElfNames<'a> {
    pub space: &'a Space,
    pub root: PathBuf,
    pub symbolizer: Symbolizer,
}

impl Names for ElfNames<'_> {
    fn name(&mut self, ips: &[u64]) -> Vec<Frame> {
        // Every address kept is a return address: look up the call before it.
        ips.iter().flat_map(|&ip| self.symbolizer.frames_of(&self.root, ip, &self.space.files, true)).collect()
    }
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

/// Reads the 7 bytes before `ip` from the file mapped there (read through `root`): for a process
/// gone by the end of the window, whose memory is no longer readable. Code is mapped from its
/// file unchanged, so these are the bytes the process ran (a `.text` the process patched itself
/// is not: such code is rare and only costs the caller's frame).
pub fn bytes_before_in_file(space: &Space, root: &Path, ip: u64) -> Option<[u8; 7]> {
    use std::io::{Read, Seek, SeekFrom};
    let mapping = heapprof::find(&space.files, ip)?;
    let offset = ip - mapping.start + mapping.file_offset;
    // The very file mapped, never what its path names now: a process (or a
    // container's symbolic link) must not make the exporter read another file.
    let mut file = memleak_artifacts::symbolize::open_mapped(root, mapping).ok()?;
    file.seek(SeekFrom::Start(offset.checked_sub(7)?)).ok()?;
    let mut out = [0u8; 7];
    file.read_exact(&mut out).ok()?;
    Some(out)
}

/// `root` of process `pid` under `procfs`.
pub fn root(procfs: &Path, pid: u32) -> PathBuf {
    procfs.join(pid.to_string()).join("root")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "400000-401000 r-xp 00001000 fe:01 10 /srv/app\n\
                        7f10-7f20 r-xp 00001000 fe:01 11 /opt/libmemleak_sampler.so\n";

    #[test]
    fn the_caller_comes_from_the_words_and_the_walk_follows_past_the_sampler() {
        let space = Space::parse(MAPS, "/opt/libmemleak_sampler.so");
        let calls = |ip: u64| ip != 0x400100;
        // marker, then the walk from the caller's frame (the caller itself missing)
        let walk = [0x7f11, 0x400200, 0x400300];
        // a return into the sampler, a saved register, a code pointer that follows no call, the caller
        let words = [0x7f15, 0x1234, 0x400100, 0x400150, 0x400999];
        assert_eq!(addresses(&walk, &words, &space, &calls), vec![0x400150, 0x400200, 0x400300]);
        // a sampler with frame pointers: the walk already has the caller, it is not doubled
        let walk = [0x7f11, 0x7f18, 0x400150, 0x400200];
        assert_eq!(addresses(&walk, &words, &space, &calls), vec![0x400150, 0x400200]);
        assert_eq!(addresses(&[0x7f11], &[], &space, &calls), Vec::<u64>::new());
    }

    #[test]
    fn a_walk_from_a_clobbered_frame_pointer_ends_at_its_first_address_outside_code() {
        let space = Space::parse(MAPS, "/opt/libmemleak_sampler.so");
        let calls = |_: u64| true;
        // The marker, then what `rbp` held as data in the hook, then more of the same.
        let walk = [0x7f11, 0x1a00_0000_0000_0042, 0x400200];
        assert_eq!(addresses(&walk, &[0x400150], &space, &calls), vec![0x400150]);
    }

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
        let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
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
        let space = Space::parse(&maps_line("/app", &app), "/none");
        assert_eq!(bytes_before_in_file(&space, root.path(), ip), Some([0x90, 0x90, 0xE8, 1, 2, 3, 4]));

        // Replaced since by another file: not the mapped one, nothing read.
        std::fs::rename(root.path().join("app"), root.path().join("old")).unwrap();
        std::fs::write(root.path().join("app"), [0xE8u8; 32]).unwrap();
        assert_eq!(bytes_before_in_file(&space, root.path(), ip), None);

        // An absolute symbolic link to a file of the host, even one whose identity the
        // maps name: resolved inside the root, where it names nothing.
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        let outside_identity = std::fs::metadata(outside.path()).unwrap();
        let space = Space::parse(&maps_line("/link", &outside_identity), "/none");
        assert_eq!(bytes_before_in_file(&space, root.path(), ip), None);
        // (Read by its name from outside the root, the link would have led there.)
        assert_eq!(std::fs::read(root.path().join("link")).unwrap()[0], 0xE8);
    }
}
