//! `Sampled<A>`: the sampler as a `GlobalAlloc` wrapper, so a Rust service opts in with one line.
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: memleak_sampler::Sampled<tikv_jemallocator::Jemalloc> =
//!     memleak_sampler::Sampled::new(tikv_jemallocator::Jemalloc);
//! ```
//!
//! Depend on the crate with `default-features = false, features = ["global-alloc"]`: the default
//! `interpose` feature would also define the C malloc family in the service's binary. The markers
//! are then in the service's own executable, where the observer attaches its uprobes.

use crate::sampling::{absorbed, allocated, freeing, realloc_failed, sampled, will_sample};
use std::alloc::{GlobalAlloc, Layout};

/// Wraps the allocator `A`: every call goes to `A`; sampled allocations and their frees call the
/// markers.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sampled<A> {
    inner: A,
}

impl<A> Sampled<A> {
    pub const fn new(inner: A) -> Self {
        Sampled { inner }
    }
}

// SAFETY: every method forwards to `A` with the same arguments and returns what `A` returned;
// the sampling around it touches neither the blocks nor the layouts.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Sampled<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if absorbed(layout.size()) {
            // SAFETY: forwarded, same contract.
            return unsafe { self.inner.alloc(layout) };
        }
        let sample = will_sample(layout.size());
        // SAFETY: forwarded, same contract.
        let ptr = unsafe { self.inner.alloc(layout) };
        if sample {
            sampled(ptr, layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if absorbed(layout.size()) {
            // SAFETY: forwarded, same contract.
            return unsafe { self.inner.alloc_zeroed(layout) };
        }
        let sample = will_sample(layout.size());
        // SAFETY: forwarded, same contract.
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        if sample {
            sampled(ptr, layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        freeing(ptr);
        // SAFETY: forwarded, same contract.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let was_sampled = freeing(ptr);
        // SAFETY: forwarded, same contract.
        let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            allocated(new, new_size);
        } else if was_sampled {
            // Failed: the old block is still live, with its old size.
            realloc_failed(ptr, layout.size());
        }
        new
    }
}
