//! eBPF signals: C programs in `src/c/` compiled by clang in `build.rs`,
//! embedded in the binary, loaded with aya 0.14. Built without clang, every
//! collector here reports itself unsupported.

mod page_faults;

pub use page_faults::PageFaultSampler;

/// The compiled object of the page-fault sampler (empty when built without clang).
pub static PAGE_FAULTS_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/page_faults.bpf.o"));

/// Whether this build has BPF programs.
pub fn built_with_bpf() -> bool {
    !PAGE_FAULTS_OBJECT.is_empty()
}
