//! eBPF signals: C programs in `src/c/` compiled by clang in `build.rs`,
//! embedded in the binary, loaded with aya 0.14. Built without clang, every
//! collector here reports itself unsupported.

mod cgroup_ids;
mod fault_stacks;
mod loader;
mod memory_syscalls;
mod page_faults;
mod region_drain;
mod regions;
pub mod shared;

pub use fault_stacks::FaultProfile;
pub use loader::BpfObject;
pub use memory_syscalls::MemorySyscalls;
pub use page_faults::{FaultConfig, FaultMode, PageFaultSampler};

/// The page-fault programs: the sampled perf_event one and the every-fault tracepoint.
pub static PAGE_FAULTS: BpfObject =
    BpfObject { file: "page_faults.bpf.o", bytes: include_bytes!(concat!(env!("OUT_DIR"), "/page_faults.bpf.o")) };

/// The brk/mmap/munmap/mremap syscall tracepoint programs.
pub static MEMORY_SYSCALLS: BpfObject = BpfObject {
    file: "memory_syscalls.bpf.o",
    bytes: include_bytes!(concat!(env!("OUT_DIR"), "/memory_syscalls.bpf.o")),
};

/// Whether this build has BPF programs (clang was there when it was built).
pub fn built_with_bpf() -> bool {
    !PAGE_FAULTS.bytes.is_empty() && !MEMORY_SYSCALLS.bytes.is_empty()
}
