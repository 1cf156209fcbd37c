//! The two marker functions an observer attaches uprobes to: called only for sampled allocations and their frees.
//!
//! They do nothing, but the optimizer must keep every call and give each function its own
//! address: an `asm!` block that is not `pure` counts as a side effect (so no call is removed)
//! and takes the arguments in registers (so they are live at the entry, where the uprobe reads
//! them: `%di`, `%si` on x86-64), and the two blocks differ in their instructions (so no
//! identical-code folding, in the compiler or a linker, can merge the functions).
//!
//! Each starts with a `nop`: the kernel emulates a probed `nop` on x86-64, where a probed `ret`
//! must be single-stepped out of line, a second trap per hit.

use std::ffi::c_void;

/// A sampled allocation of `size` bytes (the size asked for) at `ptr`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn memleak_sampler_alloc(ptr: *mut c_void, size: usize) {
    // SAFETY: one `nop` that reads two registers and touches nothing.
    unsafe {
        std::arch::asm!("nop /* memleak_sampler_alloc {0} {1} */", in(reg) ptr.addr(), in(reg) size, options(nomem, nostack, preserves_flags))
    }
}

/// The free, or realloc away, of `ptr`, which an earlier [`memleak_sampler_alloc`] reported.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn memleak_sampler_free(ptr: *mut c_void) {
    // SAFETY: two `nop`s that read one register and touch nothing.
    unsafe {
        std::arch::asm!("nop; nop /* memleak_sampler_free {0} */", in(reg) ptr.addr(), options(nomem, nostack, preserves_flags))
    }
}
