//! Naming the addresses of a user stack that a BPF program copied: shared by the
//! page-fault profile and the ebpf-malloc tracer.

use memleak_artifacts::Frame;
use memleak_artifacts::heapprof::Mapping;
use memleak_artifacts::symbolize::Symbolizer;
use std::path::Path;

/// Address `ip` of a live process whose filesystem is `root` (its
/// `/proc/PID/root`), as frames: the calls inlined there and the function
/// holding it, with source file and line, where the module's debug info has
/// them; a function where only its symbols name it (read from the file the
/// process mapped, never from what its path names now); `module+0xoffset`
/// where only a file-backed mapping holds the address; the bare address otherwise. A `return_address` follows a call, so
/// its function is the one holding the byte before it.
pub fn frames(ip: u64, maps: &[Mapping], root: &Path, symbolizer: &mut Symbolizer, return_address: bool) -> Vec<Frame> {
    symbolizer.frames_of(root, ip, maps, return_address)
}
