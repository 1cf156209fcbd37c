//! Naming the addresses of a user stack that a BPF program copied: shared by the
//! page-fault profile and the ebpf-malloc tracer.

use memleak_artifacts::Frame;
use memleak_artifacts::heapprof::{self, Mapping};
use memleak_artifacts::symbolize::Symbolizer;
use std::path::Path;

/// Address `ip` of a process whose filesystem is under `root`, as a frame: a function
/// where the module's symbols name it, `module+0xoffset` where only a file-backed
/// mapping holds the address, the bare address otherwise. A `return_address`
/// follows a call, so its function is the one holding the byte before it.
pub fn frame(ip: u64, maps: &[Mapping], root: &Path, symbolizer: &mut Symbolizer, return_address: bool) -> Frame {
    let mut frame = heapprof::frame(ip, maps);
    if let (Some(module), Some(offset)) = (&frame.file, frame.address) {
        // The module as the process sees it: under its root.
        let binary = root.join(module.trim_start_matches('/'));
        if let Some(name) = symbolizer.function(&binary, offset, return_address) {
            frame.function = name;
        }
    }
    frame
}
