//! The eBPF collectors (`page_faults`, `memory_syscalls`), each with its spec,
//! options and C program beside its code: programs in `src/c/` compiled by
//! clang in `build.rs`, embedded in the binary, loaded with aya 0.14. Built
//! without clang, every collector here reports itself unsupported.

mod cgroup_counters;
mod cgroup_ids;
mod loader;
pub mod malloc;
pub mod memory_syscalls;
pub mod page_faults;
pub mod return_address;
pub mod sampler_markers;
pub mod shared;
mod user_frames;

pub use loader::BpfObject;
pub use memory_syscalls::MemorySyscallsCollector;
pub use page_faults::PageFaultsCollector;

/// The page-fault programs: the sampled perf_event one and the every-fault tracepoint.
pub static PAGE_FAULTS: BpfObject = BpfObject {
    file: "page_faults.bpf.o",
    bytes: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/page_faults.bpf.o")),
};

/// The brk/mmap/munmap/mremap syscall tracepoint programs.
pub static MEMORY_SYSCALLS: BpfObject = BpfObject {
    file: "memory_syscalls.bpf.o",
    bytes: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/memory_syscalls.bpf.o")),
};

/// The uprobe programs on the cooperative sampler's markers (capture kind `sampler`).
pub static SAMPLER_MARKERS: BpfObject = BpfObject {
    file: "sampler_markers.bpf.o",
    bytes: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sampler_markers.bpf.o")),
};

/// The allocation tracer of the `ebpf-malloc` capture kind: uprobes on a process's allocator.
pub static MALLOC_TRACE: BpfObject = BpfObject {
    file: "malloc_trace.bpf.o",
    bytes: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/malloc_trace.bpf.o")),
};

/// Whether this build has BPF programs (clang was there when it was built).
pub fn built_with_bpf() -> bool {
    !PAGE_FAULTS.bytes.is_empty()
        && !MEMORY_SYSCALLS.bytes.is_empty()
        && !SAMPLER_MARKERS.bytes.is_empty()
        && !MALLOC_TRACE.bytes.is_empty()
}
