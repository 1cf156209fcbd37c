//! `#[repr(C)]` mirrors of the structures in `src/c/memleak.h`, with size
//! assertions: a change on one side that is not made on the other fails the
//! build instead of misreading a map.

/// Frames kept of a user stack (`MAX_STACK_DEPTH`).
pub const MAX_STACK_DEPTH: usize = 32;

/// `struct fault_sample`: a page fault picked for attribution, with its user stack.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSample {
    pub cgroup: u64,
    pub addr: u64,
    pub tgid: u32,
    pub weight: u32,
    /// Bytes of `stack` filled, or a negative errno (no stack).
    pub stack_bytes: i32,
    pub pad: u32,
    /// Return addresses, innermost first.
    pub stack: [u64; MAX_STACK_DEPTH],
}

impl FaultSample {
    /// The stack's addresses (none when the kernel could not take it).
    pub fn stack(&self) -> &[u64] {
        let frames = usize::try_from(self.stack_bytes).unwrap_or(0) / 8;
        &self.stack[..frames.min(MAX_STACK_DEPTH)]
    }
}

/// Slot of `page_fault_counters`: samples lost to a full ring buffer.
pub const FAULT_RING_FULL: u32 = 0;

/// Indices into `calls` and `failed` (`SYSCALL_*` in the header).
pub const SYSCALL_NAMES: [&str; 4] = ["mmap", "munmap", "brk", "mremap"];
pub const SIZE_BUCKETS: usize = 24;

/// `struct memory_syscall_stats`: one cgroup's brk/mmap/munmap/mremap totals.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemorySyscallStats {
    pub calls: [u64; 4],
    pub failed: [u64; 4],
    pub mapped_anon: u64,
    pub mapped_file: u64,
    pub unmapped: u64,
    pub brk_grown: u64,
    pub brk_shrunk: u64,
    pub mremap_grown: u64,
    pub mremap_shrunk: u64,
    /// Bucket i: lengths ≤ 4 KiB << i; the last bucket: everything larger.
    pub mmap_sizes: [u64; SIZE_BUCKETS],
}

/// The number of counters in `MemorySyscallStats`.
pub const SYSCALL_COUNTERS: usize = 4 + 4 + 7 + SIZE_BUCKETS;

impl MemorySyscallStats {
    /// Its counters in field order, for adding them up as one vector.
    pub fn to_counters(&self) -> [u64; SYSCALL_COUNTERS] {
        let scalars = [
            self.mapped_anon,
            self.mapped_file,
            self.unmapped,
            self.brk_grown,
            self.brk_shrunk,
            self.mremap_grown,
            self.mremap_shrunk,
        ];
        let mut all = [0; SYSCALL_COUNTERS];
        for (slot, value) in
            all.iter_mut().zip(self.calls.iter().chain(&self.failed).chain(&scalars).chain(&self.mmap_sizes))
        {
            *slot = *value;
        }
        all
    }

    /// The inverse of `to_counters`.
    pub fn from_counters(all: &[u64; SYSCALL_COUNTERS]) -> Self {
        let at = |i: usize| all[8 + i];
        MemorySyscallStats {
            calls: std::array::from_fn(|i| all[i]),
            failed: std::array::from_fn(|i| all[4 + i]),
            mapped_anon: at(0),
            mapped_file: at(1),
            unmapped: at(2),
            brk_grown: at(3),
            brk_shrunk: at(4),
            mremap_grown: at(5),
            mremap_shrunk: at(6),
            mmap_sizes: std::array::from_fn(|i| all[15 + i]),
        }
    }

    /// Upper bounds of `mmap_sizes` in bytes, the last one `+Inf`.
    pub fn size_bounds() -> [f64; SIZE_BUCKETS] {
        std::array::from_fn(|i| if i + 1 == SIZE_BUCKETS { f64::INFINITY } else { (4096u64 << i) as f64 })
    }
}

/// Slots of `memory_syscall_counters`.
pub const SYSCALL_STATS_INSERTS: u32 = 0;
pub const SYSCALL_BREAKS_FULL: u32 = 1;
pub const SYSCALL_UNPAIRED_EXITS: u32 = 2;
pub const SYSCALL_BREAK_INSERTS: u32 = 3;
pub const SYSCALL_BREAK_DELETES: u32 = 4;

const _: () = assert!(size_of::<FaultSample>() == 32 + 8 * MAX_STACK_DEPTH);
const _: () = assert!(size_of::<MemorySyscallStats>() == 8 * SYSCALL_COUNTERS);

// SAFETY: plain integers and arrays of them, no padding (sizes asserted above).
unsafe impl aya::Pod for FaultSample {}
// SAFETY: as above.
unsafe impl aya::Pod for MemorySyscallStats {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_stats_round_trip_through_their_counters() {
        let mut stats = MemorySyscallStats { calls: [1, 2, 3, 4], failed: [5, 6, 7, 8], ..Default::default() };
        (stats.mapped_anon, stats.mapped_file, stats.unmapped) = (9, 10, 11);
        (stats.brk_grown, stats.brk_shrunk, stats.mremap_grown, stats.mremap_shrunk) = (12, 13, 14, 15);
        stats.mmap_sizes = std::array::from_fn(|i| 16 + i as u64);
        let counters = stats.to_counters();
        assert_eq!(counters.to_vec(), (1..=SYSCALL_COUNTERS as u64).collect::<Vec<_>>());
        assert_eq!(MemorySyscallStats::from_counters(&counters), stats);
    }
}

/// Outstanding allocations kept at most (`MALLOC_MAX_OUTSTANDING`).
pub const MALLOC_MAX_OUTSTANDING: u32 = 262_144;
/// Distinct stacks kept at most (`MALLOC_MAX_STACKS`).
pub const MALLOC_MAX_STACKS: u32 = 16_384;

/// Code words of the user stack kept per site (`MALLOC_CALLER_WORDS`).
pub const MALLOC_CALLER_WORDS: usize = 4;
/// Code ranges the BPF program tells code words by (`MALLOC_MAX_CODE_RANGES`).
pub const MALLOC_MAX_CODE_RANGES: usize = 64;

/// `struct malloc_code_ranges`: the process's file-backed code, sorted.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MallocCodeRanges {
    pub count: u64,
    pub start: [u64; MALLOC_MAX_CODE_RANGES],
    /// Exclusive.
    pub end: [u64; MALLOC_MAX_CODE_RANGES],
}

/// `struct malloc_site_key`: the kernel's stack and the code words above the stack pointer.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MallocSiteKey {
    /// In `malloc_stacks`, or a negative errno (no stack).
    pub stack_id: i32,
    pub pad: u32,
    /// The first words above the stack pointer at the return that point into code (0: none).
    pub callers: [u64; MALLOC_CALLER_WORDS],
}

/// `struct malloc_alloc`: one outstanding allocation.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MallocAlloc {
    pub size: u64,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when it returned.
    pub time_ns: u64,
    pub site: MallocSiteKey,
}

/// `struct malloc_site_totals`: what one stack allocated during the capture.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MallocSiteTotals {
    pub bytes: u64,
    pub count: u64,
}

/// Slots of `malloc_counters` (`MALLOC_*` in the header).
pub const MALLOC_ALLOC_CALLS: u32 = 0;
pub const MALLOC_ALLOC_RETURNS: u32 = 1;
pub const MALLOC_FREE_CALLS: u32 = 2;
pub const MALLOC_FREES_MATCHED: u32 = 3;
pub const MALLOC_OUTSTANDING_FULL: u32 = 4;
pub const MALLOC_STACK_LOST: u32 = 5;
pub const MALLOC_SITES_FULL: u32 = 6;
pub const MALLOC_FORKS: u32 = 7;
pub const MALLOC_CHILDREN_FULL: u32 = 8;
pub const MALLOC_EXECS: u32 = 9;

/// Cookies of the allocation entry probes (`MALLOC_SHAPE_*`): where the arguments are.
pub const MALLOC_SHAPE_SIZE_FIRST: u64 = 0;
pub const MALLOC_SHAPE_CALLOC: u64 = 1;
pub const MALLOC_SHAPE_REALLOC: u64 = 2;
pub const MALLOC_SHAPE_SIZE_SECOND: u64 = 3;
pub const MALLOC_SHAPE_POSIX_MEMALIGN: u64 = 4;

const _: () = assert!(size_of::<MallocCodeRanges>() == 8 + 16 * MALLOC_MAX_CODE_RANGES);
const _: () = assert!(size_of::<MallocSiteKey>() == 40);
const _: () = assert!(size_of::<MallocAlloc>() == 56);
const _: () = assert!(size_of::<MallocSiteTotals>() == 16);
// SAFETY: plain integers, no padding (asserted above).
unsafe impl aya::Pod for MallocAlloc {}
// SAFETY: plain integers, no padding (asserted above).
unsafe impl aya::Pod for MallocSiteKey {}
// SAFETY: plain integers, no padding (asserted above).
unsafe impl aya::Pod for MallocCodeRanges {}
// SAFETY: plain integers, no padding.
unsafe impl aya::Pod for MallocSiteTotals {}
