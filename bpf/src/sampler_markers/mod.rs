//! Uprobes on the cooperative sampler's markers (`sampler_markers.bpf.c`) for one capture window: attached to one binary (the sampler library, or an executable with the `GlobalAlloc` wrapper) for the given processes only, and detached when dropped.
//!
//! What is read back is the table of sampled blocks allocated during the window and not freed
//! by its end, each with its size, allocation time and stack material (the kernel's
//! frame-pointer walk and the raw words above the stack pointer); naming the frames is the
//! caller's business.

use crate::loader::typed_map;
use crate::shared::MAX_STACK_DEPTH;
use aya::Ebpf;
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray};
use aya::programs::UProbe;
use aya::programs::uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope};
use memleak_signals::{Problem, ProblemKind};
use std::num::NonZeroU32;
use std::path::Path;

/// Words above the stack pointer copied at each sampled allocation (`STACK_WORDS`).
pub const STACK_WORDS: usize = 128;
/// Most outstanding sampled blocks kept per window (`MAX_OUTSTANDING`).
pub const MAX_OUTSTANDING: usize = 16384;
/// The markers' symbols, as the sampler crate exports them.
pub const ALLOC_MARKER: &str = "memleak_sampler_alloc";
pub const FREE_MARKER: &str = "memleak_sampler_free";

/// `struct sampled_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SampledKey {
    pub tgid: u64,
    pub ptr: u64,
}

/// `struct sampled_block`: a sampled allocation still outstanding.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampledBlock {
    /// Bytes asked for.
    pub size: u64,
    /// `CLOCK_BOOTTIME` of the allocation, in nanoseconds.
    pub boot_ns: u64,
    /// Bytes of `stack` filled, or a negative errno.
    pub stack_bytes: i32,
    /// Bytes of `words` read, or a negative errno.
    pub words_bytes: i32,
    /// The kernel's frame-pointer walk, innermost first (the marker's own address first).
    pub stack: [u64; MAX_STACK_DEPTH],
    /// The words at and above the stack pointer at the marker's entry.
    pub words: [u64; STACK_WORDS],
}

const _: () = assert!(std::mem::size_of::<SampledKey>() == 16);
const _: () = assert!(std::mem::size_of::<SampledBlock>() == 24 + 8 * MAX_STACK_DEPTH + 8 * STACK_WORDS);

// SAFETY: plain `repr(C)` integers and arrays without padding, valid for any bit pattern.
unsafe impl aya::Pod for SampledKey {}
// SAFETY: as above.
unsafe impl aya::Pod for SampledBlock {}

impl SampledBlock {
    /// The frame-pointer walk's addresses (none when the kernel could not take it).
    pub fn stack(&self) -> &[u64] {
        let frames = usize::try_from(self.stack_bytes).unwrap_or(0) / 8;
        &self.stack[..frames.min(MAX_STACK_DEPTH)]
    }

    /// The raw stack words (none when they could not be read).
    pub fn words(&self) -> &[u64] {
        let words = usize::try_from(self.words_bytes).unwrap_or(0) / 8;
        &self.words[..words.min(STACK_WORDS)]
    }
}

/// The program's counters over the window (`sampler_counters`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub allocs: u64,
    pub frees: u64,
    /// Frees of blocks allocated in the window (the others were allocated before it).
    pub frees_matched: u64,
    /// Sampled allocations not kept because the table was full.
    pub table_full: u64,
}

const OUTSTANDING_MAP: &str = "outstanding";
const COUNTERS_MAP: &str = "sampler_counters";

/// The markers of one binary, probed for some processes until dropped.
#[derive(Debug)]
pub struct MarkerProbes {
    bpf: Ebpf,
    links: Vec<(&'static str, UProbeLinkId)>,
}

impl MarkerProbes {
    /// Attaches to the markers of `binary` (a path the kernel resolves to the mapped file, such as
    /// one under `/proc/PID/root`), `offset` bytes into each, for each of `pids`; at least one
    /// must succeed.
    pub fn attach(binary: &Path, offset: u64, pids: &[u32]) -> Result<MarkerProbes, Problem> {
        let object = &crate::SAMPLER_MARKERS;
        let mut bpf = object.load(&[])?;
        let mut links = Vec::new();
        for (program, marker) in [("sampler_alloc", ALLOC_MARKER), ("sampler_free", FREE_MARKER)] {
            let probe: &mut UProbe = object.program_mut(&mut bpf, program)?;
            probe.load().map_err(|e| object.denied(&format!("cannot load {program}"), &e))?;
            let mut attached = 0;
            let mut last_error = None;
            for pid in pids.iter().filter_map(|&p| NonZeroU32::new(p)) {
                match probe.attach(
                    UProbeAttachLocation::SymbolOffset(marker, offset),
                    binary,
                    UProbeScope::OneProcess(pid),
                ) {
                    Ok(link) => {
                        links.push((program, link));
                        attached += 1;
                    }
                    Err(e) => {
                        last_error =
                            Some(object.denied(&format!("cannot attach to {marker} of {}", binary.display()), &e))
                    }
                }
            }
            if attached == 0 {
                return Err(last_error.unwrap_or_else(|| {
                    Problem::new(
                        ProblemKind::Unsupported,
                        object.file,
                        "no process to attach to",
                        "name a running process",
                    )
                }));
            }
        }
        Ok(MarkerProbes { bpf, links })
    }

    /// Detaches every probe (the window is over); the table stays readable.
    pub fn close(&mut self) {
        for (program, link) in self.links.drain(..) {
            if let Ok(probe) = crate::SAMPLER_MARKERS.program_mut::<UProbe>(&mut self.bpf, program) {
                let _ = probe.detach(link);
            }
        }
    }

    /// The sampled blocks allocated since the attach and not freed, at most `MAX_OUTSTANDING`.
    pub fn outstanding(&self) -> Result<Vec<(SampledKey, SampledBlock)>, Problem> {
        let map: BpfHashMap<&MapData, SampledKey, SampledBlock> = typed_map(&self.bpf, OUTSTANDING_MAP)?;
        // Read after `close`, nothing changes the table while it is walked.
        Ok(map.iter().filter_map(Result::ok).take(MAX_OUTSTANDING).collect())
    }

    pub fn counters(&self) -> Counters {
        let Ok(counters) = typed_map::<PerCpuArray<&MapData, u64>>(&self.bpf, COUNTERS_MAP) else {
            return Counters::default();
        };
        let sum = |i| crate::loader::per_cpu_sum(&counters, i);
        Counters { allocs: sum(0), frees: sum(1), frees_matched: sum(2), table_full: sum(3) }
    }
}
