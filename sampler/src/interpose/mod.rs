//! The C malloc family and C++'s operator delete, interposed for `LD_PRELOAD` or linking: each entry point forwards to the real allocator and samples.
//!
//! Compiled only with the `interpose` feature (the cdylib's), never into the rlib a Rust service
//! links with `default-features = false`: there these symbols would replace the service's malloc.

mod arena;
mod entry_points;
mod operator_delete;
mod real;

/// Resolve the real allocator and read the mean while the process is still starting (normally
/// single-threaded, no signal handlers yet), so no later allocation, in a signal handler or in a
/// forked child, has to call `dlsym`. Allocations made before this runs (by the loader, libc or
/// an earlier constructor) resolve on first use instead.
extern "C" fn at_load() {
    let _ = real::functions();
    let _ = crate::config::mean_bytes();
}

#[used]
#[unsafe(link_section = ".init_array")]
static AT_LOAD: extern "C" fn() = at_load;
