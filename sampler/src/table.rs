//! The bounded, lock-free set of live sampled pointers, so that a free knows whether to call the free marker.
//!
//! 8,192 buckets of 8 slots (one cache line each): 65,536 pointers at most, 512 KiB of
//! zero-initialized memory whose pages the kernel provides only once a bucket on them is used.
//! A pointer lives in the bucket its hash names; a full bucket drops the sample (counted by the
//! caller). There are no probe chains and no tombstones, so a lookup reads one line whatever
//! the table's history.
//!
//! A pointer is in the table at most once. Inserting one that is already there (its free went
//! past the sampler: an allocator's own API, or an entry point the sampler does not interpose)
//! keeps its one slot and says so, so that such "ghosts" can never fill a bucket.
//!
//! Most frees are of pointers that were never sampled. A per-bucket count (16 KiB, mostly in
//! cache) answers them without touching the bucket: it is raised before a slot is claimed and
//! lowered after it is released, so while a pointer is in the table its bucket's count is not
//! zero. A free that happens after its allocation (the program's own ordering) sees that.
//!
//! Every operation is a few atomic loads and compare-exchanges: no lock, no allocation, safe in
//! signal handlers and in a child after `fork`.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

const BUCKET_BITS: u32 = 13;
const BUCKETS: usize = 1 << BUCKET_BITS;
const SLOTS: usize = 8;
/// How many sampled pointers can be live at once.
pub const CAPACITY: usize = BUCKETS * SLOTS;

/// What [`Table::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    Added,
    /// The pointer was in the table already: its earlier free was never seen. It stays, once.
    AlreadyThere,
    /// Its bucket is full: not added.
    Full,
}

#[repr(align(64))]
struct Bucket([AtomicUsize; SLOTS]);

pub struct Table {
    buckets: [Bucket; BUCKETS],
    /// Pointers in, or being put into, each bucket. At most 8 plus one per thread inserting into
    /// the bucket at that instant, far from u16's limit.
    counts: [AtomicU16; BUCKETS],
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table").field("capacity", &CAPACITY).finish_non_exhaustive()
    }
}

fn bucket_of(ptr: usize) -> usize {
    // Allocations are 16-byte aligned: the low bits carry nothing. Fibonacci hashing spreads
    // the rest; the top bits index the table.
    ((ptr as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BUCKET_BITS)) as usize
}

impl Table {
    pub const fn new() -> Self {
        Table {
            buckets: [const { Bucket([const { AtomicUsize::new(0) }; SLOTS]) }; BUCKETS],
            counts: [const { AtomicU16::new(0) }; BUCKETS],
        }
    }

    /// Adds `ptr` (not null). The allocator hands an address to one owner at a time, so no
    /// other thread inserts or removes the same `ptr` meanwhile.
    pub fn insert(&self, ptr: usize) -> Insert {
        let index = bucket_of(ptr);
        let (Some(bucket), Some(count)) = (self.buckets.get(index), self.counts.get(index)) else {
            return Insert::Full;
        };
        if bucket.0.iter().any(|slot| slot.load(Ordering::Acquire) == ptr) {
            return Insert::AlreadyThere;
        }
        count.fetch_add(1, Ordering::Relaxed);
        for slot in &bucket.0 {
            if slot.load(Ordering::Relaxed) == 0
                && slot.compare_exchange(0, ptr, Ordering::Release, Ordering::Relaxed).is_ok()
            {
                return Insert::Added;
            }
        }
        count.fetch_sub(1, Ordering::Relaxed);
        Insert::Full
    }

    /// False when `ptr` is certainly not in the table (its bucket is empty).
    #[inline(always)]
    pub fn may_contain(&self, ptr: usize) -> bool {
        self.counts.get(bucket_of(ptr)).is_some_and(|count| count.load(Ordering::Relaxed) != 0)
    }

    /// Removes `ptr`; true when it was in the table.
    #[inline(always)]
    pub fn remove(&self, ptr: usize) -> bool {
        if !self.may_contain(ptr) {
            return false;
        }
        self.remove_from_bucket(bucket_of(ptr), ptr)
    }

    #[inline(never)]
    fn remove_from_bucket(&self, index: usize, ptr: usize) -> bool {
        let (Some(bucket), Some(count)) = (self.buckets.get(index), self.counts.get(index)) else { return false };
        for slot in &bucket.0 {
            if slot.load(Ordering::Acquire) == ptr
                && slot.compare_exchange(ptr, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            {
                count.fetch_sub(1, Ordering::Relaxed);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn inserted_pointers_are_found_once() {
        let table = Box::new(Table::new());
        let base = 0x1000_0000_0000usize;
        let pointers: Vec<usize> = (0..1000).map(|i| base + i * 48).collect();
        for &p in &pointers {
            assert_eq!(table.insert(p), Insert::Added);
        }
        assert!(!table.remove(base + 16), "never inserted");
        for &p in &pointers {
            assert!(table.remove(p), "{p:#x}");
            assert!(!table.remove(p), "{p:#x} removed twice");
        }
    }

    #[test]
    fn a_full_bucket_refuses_and_recovers() {
        let table = Box::new(Table::new());
        // Nine pointers that share a bucket: the ninth does not fit.
        let base = 0x2000_0000_0000usize;
        let target = bucket_of(base);
        let same: Vec<usize> =
            (0..).map(|i| base + i * 16).filter(|&p| bucket_of(p) == target).take(SLOTS + 1).collect();
        for &p in &same[..SLOTS] {
            assert_eq!(table.insert(p), Insert::Added);
        }
        assert_eq!(table.insert(same[SLOTS]), Insert::Full, "a ninth pointer in a bucket of eight");
        assert!(!table.remove(same[SLOTS]));
        assert!(table.remove(same[0]));
        assert_eq!(table.insert(same[SLOTS]), Insert::Added, "room again after a removal");
        for &p in &same[1..] {
            assert!(table.remove(p));
        }
        assert_eq!(table.counts[target].load(Ordering::Relaxed), 0, "counts back to zero");
    }

    #[test]
    fn a_pointer_inserted_again_without_its_free_keeps_one_slot() {
        // A block freed behind the sampler's back comes back from the allocator at the same
        // address, again and again: it must not fill its bucket and push out other pointers.
        let table = Box::new(Table::new());
        let ghost = 0x4000_0000_0000usize;
        assert_eq!(table.insert(ghost), Insert::Added);
        for _ in 0..(SLOTS * 4) {
            assert_eq!(table.insert(ghost), Insert::AlreadyThere);
        }
        let target = bucket_of(ghost);
        let neighbours: Vec<usize> =
            (1..).map(|i| ghost + i * 16).filter(|&p| bucket_of(p) == target).take(SLOTS - 1).collect();
        for &p in &neighbours {
            assert_eq!(table.insert(p), Insert::Added, "the bucket still has room for {p:#x}");
        }
        assert!(table.remove(ghost));
        assert!(!table.remove(ghost), "one copy only");
        for &p in &neighbours {
            assert!(table.remove(p));
        }
        assert_eq!(table.counts[target].load(Ordering::Relaxed), 0, "counts back to zero");
    }

    #[test]
    fn threads_inserting_and_removing_concurrently_keep_every_pointer() {
        // Four threads each own a range; every pointer they insert is found exactly once by its
        // owner, whatever the others do to shared buckets meanwhile.
        let table = Arc::new(Table::new());
        let handles: Vec<_> = (0..4usize)
            .map(|t| {
                let table = Arc::clone(&table);
                std::thread::spawn(move || {
                    let base = 0x3000_0000_0000usize + t * 0x1_0000_0000;
                    let mut live = HashSet::new();
                    let mut dropped = 0;
                    for round in 0..20 {
                        for i in 0..500usize {
                            let p = base + (round * 500 + i) * 32;
                            if table.insert(p) == Insert::Added {
                                live.insert(p);
                            } else {
                                dropped += 1;
                            }
                        }
                        let (keep, free): (Vec<usize>, Vec<usize>) = live.iter().partition(|&&p| p % 7 == 0);
                        for p in free {
                            assert!(table.remove(p), "thread {t}: {p:#x} lost");
                        }
                        live = keep.into_iter().collect();
                    }
                    for p in live {
                        assert!(table.remove(p), "thread {t}: {p:#x} lost at the end");
                    }
                    dropped
                })
            })
            .collect();
        let dropped: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        // At most ~7,700 live at once (4 threads x (1/7 of 20 x 500 kept + 500)) in 8,192 buckets of 8:
        // a bucket overflows with probability ~1e-7.
        assert!(dropped < 50, "{dropped} drops at a load of 1/8");
        assert!(table.counts.iter().all(|c| c.load(Ordering::Relaxed) == 0));
    }
}
