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
            let Some((start, end, perms, path)) = memleak_bpf::return_address::maps_line(line) else { continue };
            if perms.contains('x') {
                space.code.push((start, end));
                if path == sampler_path {
                    space.sampler.push((start, end));
                }
            }
        }
        space
    }

    /// The file mappings, sorted by start.
    pub fn files(&self) -> &[heapprof::Mapping] {
        &self.files
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
}
