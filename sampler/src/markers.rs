//! The two marker functions an observer attaches uprobes to: called only for sampled allocations and their frees.
//!
//! They are naked functions, which are never inlined (Rust rejects `#[inline]` on them), and
//! whose code is exactly the instructions below in every build profile (no prologue that spills
//! the arguments): the arguments sit in the ABI's registers at the entry, where a uprobe reads
//! them (`%di`, `%si` on x86-64), the optimizer cannot see through them to drop a call, and the
//! two bodies differ, so no identical-code folding (in the compiler or a linker) can give them one
//! address.
//!
//! Each starts with a one-byte `nop` and then a five-byte one (`nopl 0x0(%rax,%rax,1)`), and the
//! exporter probes one of the two: the kernel emulates a probed one-byte `nop` on x86-64 (where a
//! probed `ret` must be single-stepped out of line, a second trap per hit: 5.9 µs per hit here
//! instead of 1.3), and a kernel that optimises uprobes (x86-64, `arch_uprobe_optimize`, Linux
//! 6.18) turns a probed five-byte `nop` into a call to a trampoline that enters the kernel by a
//! syscall instead of a trap (3.5 µs an alloc hit here through the trap, 3.0 through the call;
//! `benches/sampler_hit_cost.sh`). Older kernels may single-step the five-byte one: there the
//! one-byte `nop` is probed. The five bytes start at offset 1.

/// A sampled allocation of `size` bytes (the size asked for) at `ptr`.
#[unsafe(no_mangle)]
#[unsafe(naked)]
pub extern "C" fn memleak_sampler_alloc(ptr: *mut std::ffi::c_void, size: usize) {
    std::arch::naked_asm!("nop", ".byte 0x0f, 0x1f, 0x44, 0x00, 0x00", "ret")
}

/// The free, or realloc away, of `ptr`, which an earlier [`memleak_sampler_alloc`] reported.
#[unsafe(no_mangle)]
#[unsafe(naked)]
pub extern "C" fn memleak_sampler_free(ptr: *mut std::ffi::c_void) {
    std::arch::naked_asm!("nop", ".byte 0x0f, 0x1f, 0x44, 0x00, 0x00", "nop", "ret")
}
