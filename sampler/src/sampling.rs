//! What every allocation entry point does around the real allocator: count the bytes down, track sampled pointers, call the markers.

use crate::markers::{memleak_sampler_alloc, memleak_sampler_free};
use crate::stats::{count, memleak_sampler_stats};
use crate::{countdown, table::Table};

/// The live sampled pointers of this process.
static SAMPLED: Table = Table::new();

/// After the real allocator returned `ptr` for a request of `size` bytes (null: it failed).
#[inline(always)]
pub fn allocated(ptr: *mut u8, size: usize) {
    if !ptr.is_null() && countdown::take(size) {
        report_alloc(ptr, size);
    }
}

/// Before `ptr` goes back to the real allocator (or is handed to its realloc): reports the
/// free if `ptr` was sampled, and says so. It must come before, not after: once the real
/// allocator has the block, another thread may get it back and report it anew.
#[inline(always)]
pub fn freeing(ptr: *mut u8) -> bool {
    if ptr.is_null() || !SAMPLED.remove(ptr as usize) {
        return false;
    }
    count(&memleak_sampler_stats.sampled_freed);
    memleak_sampler_free(ptr.cast());
    true
}

/// A realloc failed after [`freeing`] reported its sampled block, which is therefore still live
/// with `size` bytes: report it again, so that the observer's view matches the heap.
#[cold]
pub fn realloc_failed(ptr: *mut u8, size: usize) {
    report_alloc(ptr, size);
}

#[cold]
#[inline(never)]
fn report_alloc(ptr: *mut u8, size: usize) {
    if SAMPLED.insert(ptr as usize) {
        count(&memleak_sampler_stats.sampled);
        memleak_sampler_alloc(ptr.cast(), size);
    } else {
        // Reported without its free, it would look leaked forever: dropped instead, and counted.
        count(&memleak_sampler_stats.dropped);
    }
}
