//! What every allocation entry point does around the real allocator: count the bytes down, track sampled pointers, call the markers.

use crate::countdown;
use crate::markers::{memleak_sampler_alloc, memleak_sampler_free};
use crate::stats::memleak_sampler_stats;
use crate::table::{Insert, Table};
use std::sync::atomic::{AtomicU64, Ordering};

/// The live sampled pointers of this process.
static SAMPLED: Table = Table::new();

/// The hot path before an allocation of `size` bytes: true when the countdown absorbed them, so
/// the call is not sampled and can end in a tail call to the real allocator. False: the slow
/// path decides with [`will_sample`].
#[inline(always)]
pub fn absorbed(size: usize) -> bool {
    countdown::fits(size)
}

/// Whether an allocation of `size` bytes is sampled (its bytes are counted down either way).
#[inline(always)]
pub fn will_sample(size: usize) -> bool {
    countdown::take(size)
}

/// After the real allocator returned `ptr` (null: it failed) for a sampled request of `size` bytes.
#[cold]
#[inline(never)]
pub fn sampled(ptr: *mut u8, size: usize) {
    if !ptr.is_null() {
        report_alloc(ptr, size);
    }
}

/// After the real allocator returned `ptr` (null: it failed) for `size` bytes: decide, and report
/// a sampled block.
#[inline(always)]
pub fn allocated(ptr: *mut u8, size: usize) {
    if will_sample(size) {
        sampled(ptr, size);
    }
}

/// The hot path before a free: false when `ptr` is certainly not a sampled pointer.
#[cfg(any(feature = "interpose", test))]
#[inline(always)]
pub fn may_be_sampled(ptr: *mut u8) -> bool {
    SAMPLED.may_contain(ptr as usize)
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

fn report_alloc(ptr: *mut u8, size: usize) {
    match SAMPLED.insert(ptr as usize) {
        Insert::Added => {}
        Insert::AlreadyThere => {
            // The allocator gave the address out again, so the earlier sampled block at it was
            // freed where the sampler could not see: report that free now, late rather than never.
            count(&memleak_sampler_stats.missed_frees);
            memleak_sampler_free(ptr.cast());
        }
        Insert::Full => {
            // Reported without its free, it would look leaked forever: dropped instead, and counted.
            count(&memleak_sampler_stats.dropped);
            return;
        }
    }
    count(&memleak_sampler_stats.sampled);
    memleak_sampler_alloc(ptr.cast(), size);
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sampled_block_is_reported_freed_once_and_an_unsampled_one_never() {
        // 64 means: sampled with probability 1 - exp(-64), i.e. always.
        let size = 64 * crate::config::mean_bytes() as usize;
        let sampled = 0x5000_0000_0010usize as *mut u8;
        let before = memleak_sampler_stats.sampled.load(Ordering::Relaxed);
        assert!(!absorbed(size), "64 means never fit in a countdown");
        allocated(sampled, size);
        assert_eq!(memleak_sampler_stats.sampled.load(Ordering::Relaxed), before + 1);
        assert!(may_be_sampled(sampled));
        assert!(!freeing(0x5000_0000_0020usize as *mut u8), "never allocated");
        assert!(freeing(sampled));
        assert!(!freeing(sampled), "freed twice");
        assert!(absorbed(0), "zero bytes always fit");
        allocated(std::ptr::null_mut(), size);
        assert_eq!(memleak_sampler_stats.sampled.load(Ordering::Relaxed), before + 1, "a failed allocation");
    }

    #[test]
    fn a_sampled_address_returned_again_without_its_free_counts_a_missed_free_not_a_drop() {
        let size = 64 * crate::config::mean_bytes() as usize;
        let ghost = 0x5000_0000_2000usize as *mut u8;
        let stats = &memleak_sampler_stats;
        let (sampled, missed, dropped) = (
            stats.sampled.load(Ordering::Relaxed),
            stats.missed_frees.load(Ordering::Relaxed),
            stats.dropped.load(Ordering::Relaxed),
        );
        // Twenty times the same address, never freed through the sampler: more than a bucket holds.
        for _ in 0..20 {
            allocated(ghost, size);
        }
        assert_eq!(stats.sampled.load(Ordering::Relaxed), sampled + 20, "every allocation is reported");
        assert_eq!(stats.missed_frees.load(Ordering::Relaxed), missed + 19, "each return found the last one live");
        assert_eq!(stats.dropped.load(Ordering::Relaxed), dropped, "nothing dropped");
        assert!(freeing(ghost), "tracked once");
        assert!(!freeing(ghost), "and only once");
    }

    #[test]
    fn a_failed_realloc_keeps_its_sampled_block() {
        let size = 64 * crate::config::mean_bytes() as usize;
        let block = 0x5000_0000_1000usize as *mut u8;
        allocated(block, size);
        assert!(freeing(block), "realloc reports the old block first");
        realloc_failed(block, size);
        assert!(freeing(block), "still tracked after the failure");
    }
}
