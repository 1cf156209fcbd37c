//! A cooperative allocation sampler: forwards every allocation to the real allocator and calls a probe-able marker for byte-sampled ones.
//!
//! Allocations are sampled by bytes, as a Poisson process with mean
//! `MEMLEAK_SAMPLER_MEAN_BYTES` (default 524,288, jemalloc's `lg_prof_sample:19`): an allocation
//! of `size` bytes is sampled with probability `1 - exp(-size / mean)`, so weighting each sampled
//! allocation by `size / (1 - exp(-size / mean))` gives unbiased estimates. For a sampled
//! allocation the sampler calls [`memleak_sampler_alloc`], and for the later free (or realloc
//! away) of that pointer [`memleak_sampler_free`]. Both are empty: an observer attaches uprobes to
//! them only while it captures, so an idle process pays a byte countdown per allocation and a
//! lookup per free.
//!
//! Two ways in:
//! * feature `interpose` (default): the C malloc family, for the cdylib
//!   (`target/release/libmemleak_sampler.so`, `LD_PRELOAD` or linked);
//! * feature `global-alloc`: [`Sampled`], a `GlobalAlloc` wrapper for Rust services, used with
//!   `default-features = false` so that the service's own malloc stays untouched.

// The sampling machinery, for whichever entry points are built (with neither feature, only the
// markers and counters remain: nothing would call them).
#[cfg(any(feature = "interpose", feature = "global-alloc", test))]
mod config;
#[cfg(any(feature = "interpose", feature = "global-alloc", test))]
mod countdown;
mod markers;
#[cfg(any(feature = "interpose", feature = "global-alloc", test))]
mod sampling;
mod stats;
#[cfg(any(feature = "interpose", feature = "global-alloc", test))]
mod table;

#[cfg(feature = "global-alloc")]
mod global_alloc;
// Unit tests run in a harness process: interposing its malloc would test the harness, not the code.
#[cfg(all(feature = "interpose", not(test)))]
mod interpose;

#[cfg(feature = "global-alloc")]
pub use global_alloc::Sampled;
pub use markers::{memleak_sampler_alloc, memleak_sampler_free};
pub use stats::{SamplerStats, memleak_sampler_stats};
