//! A static bump arena for the allocations `dlsym` makes while this library looks up the real allocator.
//!
//! `dlsym` may allocate (its error buffer), and those allocations arrive here before the real
//! malloc is known. They are few and small: 64 KiB of zeroed static memory, never reused, so
//! `calloc` from it is zeroed and `free` of its blocks does nothing. Each block is preceded by
//! its size, for `realloc` and `malloc_usable_size`.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

const ARENA_BYTES: usize = 64 * 1024;
const SIZE_FIELD: usize = size_of::<usize>();
const MIN_ALIGN: usize = 16;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; ARENA_BYTES]>);

// SAFETY: bytes are handed out once, in disjoint ranges claimed by a compare-exchange.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_BYTES]));
static USED: AtomicUsize = AtomicUsize::new(0);

fn base() -> usize {
    ARENA.0.get() as usize
}

/// `size` bytes aligned to `align` (a power of two), or null when the arena is exhausted.
pub fn allocate(size: usize, align: usize) -> *mut u8 {
    let align = align.max(MIN_ALIGN);
    let mut used = USED.load(Ordering::Relaxed);
    loop {
        let Some((start, end)) = place(used, size, align) else { return std::ptr::null_mut() };
        match USED.compare_exchange_weak(used, end, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => {
                let block = ARENA.0.get().cast::<u8>();
                // SAFETY: `start - SIZE_FIELD .. end` lies inside the arena (checked by `place`)
                // and was claimed by this thread alone; the size field is within it, unaligned-safe.
                unsafe {
                    block.add(start - SIZE_FIELD).cast::<usize>().write_unaligned(size);
                    return block.add(start);
                }
            }
            Err(now) => used = now,
        }
    }
}

/// Where a block of `size` bytes aligned to `align` starts and ends, after `used` bytes.
fn place(used: usize, size: usize, align: usize) -> Option<(usize, usize)> {
    let start = base().checked_add(used)?.checked_add(SIZE_FIELD)?.checked_next_multiple_of(align)? - base();
    let end = start.checked_add(size)?;
    (end <= ARENA_BYTES).then_some((start, end))
}

/// Whether `ptr` is one of the arena's blocks (then only this module may handle it).
#[inline(always)]
pub fn owns(ptr: *const u8) -> bool {
    (ptr as usize).wrapping_sub(base()) < ARENA_BYTES
}

/// The size asked for the arena block at `ptr`.
pub fn size_of_block(ptr: *const u8) -> usize {
    let offset = (ptr as usize).wrapping_sub(base());
    if !(SIZE_FIELD..ARENA_BYTES).contains(&offset) {
        return 0;
    }
    // SAFETY: the field lies inside the arena; it was written when the block was handed out.
    unsafe { ARENA.0.get().cast::<u8>().add(offset - SIZE_FIELD).cast::<usize>().read_unaligned() }
}
