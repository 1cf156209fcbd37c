//! C++'s `operator delete` family, interposed: a delete of a sampled pointer calls the free marker, then the next definition runs.
//!
//! Why: an allocator with its own `operator new`/`delete` (jemalloc's, for one) frees inside its
//! delete without calling `free`, so a block it got through an interposed entry point
//! (jemalloc's aligned `new` calls `aligned_alloc`) would otherwise be freed unseen. When the
//! next definition is the C++ runtime's (libstdc++, libc++), whose deletes are `free`, the real
//! `free` is called instead (see `real.rs`).
//!
//! Each of the twelve (plain, sized, aligned, sized and aligned, nothrow, aligned nothrow; for
//! `delete` and `delete[]`) has the hot path of `free`: an unsampled pointer costs a bucket count
//! read and a tail call. `operator new` is not interposed (see the README's limits).

use super::arena;
use super::real::{self, Functions};
use crate::sampling::{freeing, may_be_sampled};
use std::ffi::c_void;

/// The hot path shared by every variant: true when `ptr` is certainly unsampled and the next
/// definition is known, so the caller can tail-call it.
#[inline(always)]
fn unsampled(ptr: *mut c_void) -> Option<&'static Functions> {
    if arena::owns(ptr.cast()) || may_be_sampled(ptr.cast()) { None } else { real::ready() }
}

/// One variant: its exported (mangled) name, the Rust name (also the slot of the next
/// definition in [`Functions`]), the cold path's name, and the arguments after the pointer. The
/// cold path is a function of its own, `extern "C"` (it cannot unwind), so that the hot path
/// saves no register.
macro_rules! operator_delete {
    ($symbol:literal, $name:ident, $slow:ident $(, $arg:ident: $type:ty)*) => {
        /// # Safety
        /// The C++ contract of this `operator delete`.
        #[unsafe(export_name = $symbol)]
        pub unsafe extern "C" fn $name(ptr: *mut c_void $(, $arg: $type)*) {
            match unsampled(ptr) {
                // SAFETY: the next definition, same contract.
                Some(real) => unsafe { real.$name()(ptr $(, $arg)*) },
                None => $slow(ptr $(, $arg)*),
            }
        }

        #[cold]
        #[inline(never)]
        extern "C" fn $slow(ptr: *mut c_void $(, $arg: $type)*) {
            // An arena block is never given back.
            if arena::owns(ptr.cast()) {
                return;
            }
            freeing(ptr.cast());
            if let Some(real) = real::functions() {
                // SAFETY: the next definition, same contract.
                unsafe { real.$name()(ptr $(, $arg)*) }
            }
        }
    };
}

operator_delete!("_ZdlPv", delete, delete_slow);
operator_delete!("_ZdlPvm", delete_sized, delete_sized_slow, size: usize);
operator_delete!("_ZdlPvSt11align_val_t", delete_aligned, delete_aligned_slow, align: usize);
operator_delete!(
    "_ZdlPvmSt11align_val_t",
    delete_sized_aligned,
    delete_sized_aligned_slow,
    size: usize,
    align: usize
);
operator_delete!("_ZdlPvRKSt9nothrow_t", delete_nothrow, delete_nothrow_slow, nothrow: *const c_void);
operator_delete!(
    "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    delete_aligned_nothrow,
    delete_aligned_nothrow_slow,
    align: usize,
    nothrow: *const c_void
);
operator_delete!("_ZdaPv", delete_array, delete_array_slow);
operator_delete!("_ZdaPvm", delete_array_sized, delete_array_sized_slow, size: usize);
operator_delete!("_ZdaPvSt11align_val_t", delete_array_aligned, delete_array_aligned_slow, align: usize);
operator_delete!(
    "_ZdaPvmSt11align_val_t",
    delete_array_sized_aligned,
    delete_array_sized_aligned_slow,
    size: usize,
    align: usize
);
operator_delete!("_ZdaPvRKSt9nothrow_t", delete_array_nothrow, delete_array_nothrow_slow, nothrow: *const c_void);
operator_delete!(
    "_ZdaPvSt11align_val_tRKSt9nothrow_t",
    delete_array_aligned_nothrow,
    delete_array_aligned_nothrow_slow,
    align: usize,
    nothrow: *const c_void
);
