//! The sampler's counters, exported under a fixed C name so an observer can read them from the process's memory.

use std::sync::atomic::AtomicU64;

/// Counters of one process's sampler. Layout is part of the interface (`repr(C)`, `u64`s in this
/// order; a new version only appends): an observer reads it at the address of the
/// `memleak_sampler_stats` symbol. Live sampled pointers = `sampled - sampled_freed - missed_frees`.
#[repr(C)]
#[derive(Debug)]
pub struct SamplerStats {
    /// Layout version of this struct: 2 (1 had no `missed_frees`).
    pub version: AtomicU64,
    /// The mean in bytes between samples in effect (0 until the first allocation reads it).
    pub mean_bytes: AtomicU64,
    /// Sampled allocations reported through `memleak_sampler_alloc`.
    pub sampled: AtomicU64,
    /// Frees (or reallocs away) of sampled pointers reported through `memleak_sampler_free`.
    pub sampled_freed: AtomicU64,
    /// Sampled allocations dropped because the table of live sampled pointers had no room: they
    /// were not reported, so estimates miss them.
    pub dropped: AtomicU64,
    /// Sampled pointers whose free went past the sampler (an allocator's own API such as
    /// jemalloc's `dallocx`), noticed when the allocator returned the address again: the free
    /// marker was called then, late, before the new block's allocation marker.
    pub missed_frees: AtomicU64,
}

/// This process's counters.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals, reason = "a C symbol an observer looks up by this name")]
pub static memleak_sampler_stats: SamplerStats = SamplerStats {
    version: AtomicU64::new(2),
    mean_bytes: AtomicU64::new(0),
    sampled: AtomicU64::new(0),
    sampled_freed: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
    missed_frees: AtomicU64::new(0),
};
