//! The interposed entry points of the malloc family: forward to the real allocator, then sample.
//!
//! Semantics (errors, errno, alignment checks, `realloc(p, 0)`) are the real allocator's: each
//! entry point calls its real counterpart and only looks at the result. Two exceptions, both
//! what glibc itself does: `reallocarray` is an overflow check in front of `realloc` (glibc's
//! calls `realloc` through the PLT, so forwarding it would sample its bytes twice), and
//! `free(NULL)` returns at once.
//!
//! Each entry point has a hot path (resolved allocator, countdown absorbs the bytes, or a free
//! whose bucket is empty) that ends in a tail call to the real function and so saves no
//! registers, and a cold `*_slow` function for everything else. The slow functions are
//! `extern "C"` too: they cannot unwind, so jumping to them needs no landing pad either.
//!
//! Sizes reported are the sizes asked for (`nmemb * size` for calloc), as the weights assume.

use super::arena;
use super::real::{self, Functions};
use crate::sampling::{absorbed, allocated, freeing, may_be_sampled, realloc_failed, sampled, will_sample};
use std::ffi::{c_int, c_void};

fn set_errno(value: c_int) {
    // SAFETY: this thread's errno.
    unsafe { *libc::__errno_location() = value };
}

/// While this thread looks up the real allocator, its allocations come from the arena.
fn bootstrap(size: usize, align: usize) -> *mut c_void {
    let ptr = arena::allocate(size, align);
    if ptr.is_null() {
        set_errno(libc::ENOMEM);
    }
    ptr.cast()
}

/// The resolved allocator, when the countdown absorbs `size` bytes (the call is not sampled).
#[inline(always)]
fn unsampled(size: usize) -> Option<&'static Functions> {
    real::ready().filter(|_| absorbed(size))
}

/// # Safety
/// The C `malloc` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    match unsampled(size) {
        // SAFETY: the real malloc, same contract.
        Some(real) => unsafe { real.malloc()(size) },
        None => malloc_slow(size),
    }
}

#[cold]
#[inline(never)]
extern "C" fn malloc_slow(size: usize) -> *mut c_void {
    let Some(real) = real::functions() else { return bootstrap(size, 16) };
    // SAFETY: the real malloc, same contract.
    let ptr = unsafe { real.malloc()(size) };
    if will_sample(size) {
        sampled(ptr.cast(), size);
    }
    ptr
}

/// # Safety
/// The C `free` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    // null is neither in the arena nor in the table, and the real free accepts it.
    if !arena::owns(ptr.cast())
        && !may_be_sampled(ptr.cast())
        && let Some(real) = real::ready()
    {
        // SAFETY: the real free, same contract.
        return unsafe { real.free()(ptr) };
    }
    free_slow(ptr)
}

#[cold]
#[inline(never)]
extern "C" fn free_slow(ptr: *mut c_void) {
    if arena::owns(ptr.cast()) {
        return;
    }
    freeing(ptr.cast());
    if let Some(real) = real::functions() {
        // SAFETY: the real free, same contract.
        unsafe { real.free()(ptr) }
    }
}

/// # Safety
/// The C `calloc` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn calloc(nmemb: usize, size: usize) -> *mut c_void {
    // An overflowing product counts as nothing: the real calloc rejects it.
    match unsampled(nmemb.checked_mul(size).unwrap_or(0)) {
        // SAFETY: the real calloc, same contract.
        Some(real) => unsafe { real.calloc()(nmemb, size) },
        None => calloc_slow(nmemb, size),
    }
}

#[cold]
#[inline(never)]
extern "C" fn calloc_slow(nmemb: usize, size: usize) -> *mut c_void {
    let bytes = nmemb.checked_mul(size);
    let Some(real) = real::functions() else {
        // The arena is zeroed static memory that is never reused.
        return bootstrap(bytes.unwrap_or(usize::MAX), 16);
    };
    // SAFETY: the real calloc, same contract.
    let ptr = unsafe { real.calloc()(nmemb, size) };
    let bytes = bytes.unwrap_or(0);
    if will_sample(bytes) {
        sampled(ptr.cast(), bytes);
    }
    ptr
}

/// # Safety
/// The C `realloc` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    if arena::owns(ptr.cast()) {
        return move_out_of_arena(ptr, size);
    }
    let Some(real) = real::functions() else { return bootstrap(size, 16) };
    let was_sampled = freeing(ptr.cast());
    // SAFETY: the real realloc, same contract.
    let new = unsafe { real.realloc()(ptr, size) };
    if !new.is_null() {
        allocated(new.cast(), size);
    } else if was_sampled && size != 0 {
        // Failed: the old block is still live. (A null result for size 0 means it was freed, as
        // glibc does.) Its size is not kept anywhere; the allocator's usable size is close.
        // SAFETY: `ptr` is a live block of the real allocator.
        realloc_failed(ptr.cast(), unsafe { real.malloc_usable_size()(ptr) });
    }
    new
}

/// A realloc of an arena block: a new block (real once the allocator is known) with the old
/// bytes; the arena block is never reused.
fn move_out_of_arena(ptr: *mut c_void, size: usize) -> *mut c_void {
    if size == 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: the interposed malloc, same contract.
    let new = unsafe { malloc(size) };
    if !new.is_null() {
        let keep = arena::size_of_block(ptr.cast()).min(size);
        // SAFETY: `keep` bytes are inside both blocks, which are distinct.
        unsafe { std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), new.cast::<u8>(), keep) };
    }
    new
}

/// # Safety
/// The C `reallocarray` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, nmemb: usize, size: usize) -> *mut c_void {
    match nmemb.checked_mul(size) {
        // SAFETY: the interposed realloc, same contract.
        Some(bytes) => unsafe { realloc(ptr, bytes) },
        None => {
            set_errno(libc::ENOMEM);
            std::ptr::null_mut()
        }
    }
}

/// # Safety
/// The C `posix_memalign` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    match unsampled(size) {
        // SAFETY: the real posix_memalign, same contract.
        Some(real) => unsafe { real.posix_memalign()(out, align, size) },
        // SAFETY: as the caller's.
        None => unsafe { posix_memalign_slow(out, align, size) },
    }
}

#[cold]
#[inline(never)]
unsafe extern "C" fn posix_memalign_slow(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    let Some(real) = real::functions() else {
        if !align.is_power_of_two() || !align.is_multiple_of(size_of::<usize>()) {
            return libc::EINVAL;
        }
        let ptr = arena::allocate(size, align);
        if ptr.is_null() {
            return libc::ENOMEM;
        }
        // SAFETY: the caller's out pointer, as the contract says.
        unsafe { *out = ptr.cast() };
        return 0;
    };
    // SAFETY: the real posix_memalign, same contract.
    let status = unsafe { real.posix_memalign()(out, align, size) };
    if status == 0 && will_sample(size) {
        // SAFETY: on success the real function stored the block in `*out`.
        sampled(unsafe { *out }.cast(), size);
    }
    status
}

/// The entry points that allocate aligned blocks and return them.
#[repr(u8)]
#[derive(Clone, Copy)]
enum AlignedEntry {
    AlignedAlloc,
    Memalign,
    Valloc,
    Pvalloc,
}

impl AlignedEntry {
    /// # Safety
    /// The contract of the C function this names.
    #[inline(always)]
    unsafe fn call(self, real: &Functions, align: usize, size: usize) -> *mut c_void {
        // SAFETY: the real function, same contract.
        unsafe {
            match self {
                AlignedEntry::AlignedAlloc => real.aligned_alloc()(align, size),
                AlignedEntry::Memalign => real.memalign()(align, size),
                AlignedEntry::Valloc => real.valloc()(size),
                AlignedEntry::Pvalloc => real.pvalloc()(size),
            }
        }
    }
}

/// An aligned entry point: the real one's result, sampled (`align` is ignored by valloc and
/// pvalloc, whose alignment is the page).
#[inline(always)]
unsafe fn aligned(kind: AlignedEntry, align: usize, size: usize) -> *mut c_void {
    match unsampled(size) {
        // SAFETY: as the caller's.
        Some(real) => unsafe { kind.call(real, align, size) },
        // SAFETY: as the caller's.
        None => unsafe { aligned_slow(kind, align, size) },
    }
}

/// While bootstrapping, an arena block (alignments that are not powers of two fail with EINVAL
/// there).
#[cold]
#[inline(never)]
unsafe extern "C" fn aligned_slow(kind: AlignedEntry, align: usize, size: usize) -> *mut c_void {
    let Some(real) = real::functions() else {
        let align = match kind {
            AlignedEntry::Valloc | AlignedEntry::Pvalloc => page_size(),
            AlignedEntry::AlignedAlloc | AlignedEntry::Memalign => align,
        };
        if !align.is_power_of_two() {
            set_errno(libc::EINVAL);
            return std::ptr::null_mut();
        }
        return bootstrap(size, align);
    };
    // SAFETY: as the caller's.
    let ptr = unsafe { kind.call(real, align, size) };
    if will_sample(size) {
        sampled(ptr.cast(), size);
    }
    ptr
}

/// # Safety
/// The C `aligned_alloc` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    // SAFETY: same contract.
    unsafe { aligned(AlignedEntry::AlignedAlloc, align, size) }
}

/// # Safety
/// The C `memalign` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: same contract.
    unsafe { aligned(AlignedEntry::Memalign, align, size) }
}

/// # Safety
/// The C `valloc` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    // SAFETY: same contract.
    unsafe { aligned(AlignedEntry::Valloc, 0, size) }
}

/// # Safety
/// The C `pvalloc` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    // SAFETY: same contract.
    unsafe { aligned(AlignedEntry::Pvalloc, 0, size) }
}

fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the process.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// # Safety
/// The C `malloc_usable_size` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    if ptr.is_null() {
        return 0;
    }
    if arena::owns(ptr.cast()) {
        return arena::size_of_block(ptr.cast());
    }
    match real::functions() {
        // SAFETY: the real malloc_usable_size, same contract.
        Some(real) => unsafe { real.malloc_usable_size()(ptr) },
        None => 0,
    }
}
