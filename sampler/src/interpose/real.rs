//! The real allocator: for each entry point, the next definition in symbol lookup order (`dlsym(RTLD_NEXT)`), found without recursion.
//!
//! Choice: `RTLD_NEXT`, so the sampler works in front of whatever allocator comes after it
//! (glibc, or jemalloc / tcmalloc / mimalloc preloaded or linked after it). `dlsym` may allocate;
//! those nested calls see this thread's `RESOLVING` flag and are served by the bootstrap
//! [arena](super::arena), so there is no recursion and no lock. Any thread that finds the
//! functions unresolved resolves them itself: the lookup is idempotent, so concurrent resolvers
//! store the same values and nobody waits (a thread forked mid-resolution cannot leave the
//! child stuck). If `RTLD_NEXT` finds nothing (the library is last in lookup order, an unusual
//! link), glibc's own `__libc_*` entry points are the fallback; if those are missing too, the
//! entry point fails cleanly (ENOMEM, or a `free` that leaks) rather than crash.

use std::cell::Cell;
use std::ffi::{CStr, c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

pub type MallocFn = unsafe extern "C" fn(usize) -> *mut c_void;
pub type FreeFn = unsafe extern "C" fn(*mut c_void);
pub type CallocFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
pub type ReallocFn = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
pub type PosixMemalignFn = unsafe extern "C" fn(*mut *mut c_void, usize, usize) -> c_int;
pub type AlignedFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
pub type UsableSizeFn = unsafe extern "C" fn(*mut c_void) -> usize;
/// C++ `operator delete(void*)` and `delete[]`.
pub type DeleteFn = unsafe extern "C" fn(*mut c_void);
/// Sized (`std::size_t`) or aligned (`std::align_val_t`, a `size_t` enum) `operator delete`.
pub type DeleteWithFn = unsafe extern "C" fn(*mut c_void, usize);
/// Sized and aligned `operator delete`.
pub type DeleteSizedAlignedFn = unsafe extern "C" fn(*mut c_void, usize, usize);
/// `operator delete(void*, const std::nothrow_t&)`.
pub type DeleteNothrowFn = unsafe extern "C" fn(*mut c_void, *const c_void);
/// `operator delete(void*, std::align_val_t, const std::nothrow_t&)`.
pub type DeleteAlignedNothrowFn = unsafe extern "C" fn(*mut c_void, usize, *const c_void);

/// One resolved function: an address that is never null once `READY` is set.
struct Slot(AtomicPtr<c_void>);

impl Slot {
    const fn new() -> Self {
        Slot(AtomicPtr::new(std::ptr::null_mut()))
    }
}

pub struct Functions {
    malloc: Slot,
    free: Slot,
    calloc: Slot,
    realloc: Slot,
    posix_memalign: Slot,
    aligned_alloc: Slot,
    memalign: Slot,
    valloc: Slot,
    pvalloc: Slot,
    malloc_usable_size: Slot,
    delete: Slot,
    delete_sized: Slot,
    delete_aligned: Slot,
    delete_sized_aligned: Slot,
    delete_nothrow: Slot,
    delete_aligned_nothrow: Slot,
    delete_array: Slot,
    delete_array_sized: Slot,
    delete_array_aligned: Slot,
    delete_array_sized_aligned: Slot,
    delete_array_nothrow: Slot,
    delete_array_aligned_nothrow: Slot,
}

static FUNCTIONS: Functions = Functions {
    malloc: Slot::new(),
    free: Slot::new(),
    calloc: Slot::new(),
    realloc: Slot::new(),
    posix_memalign: Slot::new(),
    aligned_alloc: Slot::new(),
    memalign: Slot::new(),
    valloc: Slot::new(),
    pvalloc: Slot::new(),
    malloc_usable_size: Slot::new(),
    delete: Slot::new(),
    delete_sized: Slot::new(),
    delete_aligned: Slot::new(),
    delete_sized_aligned: Slot::new(),
    delete_nothrow: Slot::new(),
    delete_aligned_nothrow: Slot::new(),
    delete_array: Slot::new(),
    delete_array_sized: Slot::new(),
    delete_array_aligned: Slot::new(),
    delete_array_sized_aligned: Slot::new(),
    delete_array_nothrow: Slot::new(),
    delete_array_aligned_nothrow: Slot::new(),
};
static READY: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread is inside `dlsym`: its allocations go to the arena.
    static RESOLVING: Cell<bool> = const { Cell::new(false) };
}

macro_rules! getter {
    ($name:ident, $type:ty) => {
        #[inline(always)]
        pub fn $name(&self) -> $type {
            // SAFETY: READY (acquired by `functions`) is set only after every slot holds the
            // non-null address of a function with this C signature.
            unsafe { std::mem::transmute::<*mut c_void, $type>(self.$name.0.load(Ordering::Relaxed)) }
        }
    };
}

impl Functions {
    getter!(malloc, MallocFn);
    getter!(free, FreeFn);
    getter!(calloc, CallocFn);
    getter!(realloc, ReallocFn);
    getter!(posix_memalign, PosixMemalignFn);
    getter!(aligned_alloc, AlignedFn);
    getter!(memalign, AlignedFn);
    getter!(valloc, MallocFn);
    getter!(pvalloc, MallocFn);
    getter!(malloc_usable_size, UsableSizeFn);
    getter!(delete, DeleteFn);
    getter!(delete_sized, DeleteWithFn);
    getter!(delete_aligned, DeleteWithFn);
    getter!(delete_sized_aligned, DeleteSizedAlignedFn);
    getter!(delete_nothrow, DeleteNothrowFn);
    getter!(delete_aligned_nothrow, DeleteAlignedNothrowFn);
    getter!(delete_array, DeleteFn);
    getter!(delete_array_sized, DeleteWithFn);
    getter!(delete_array_aligned, DeleteWithFn);
    getter!(delete_array_sized_aligned, DeleteSizedAlignedFn);
    getter!(delete_array_nothrow, DeleteNothrowFn);
    getter!(delete_array_aligned_nothrow, DeleteAlignedNothrowFn);
}

/// The real functions once they are resolved (the hot path: no lookup).
#[inline(always)]
pub fn ready() -> Option<&'static Functions> {
    READY.load(Ordering::Acquire).then_some(&FUNCTIONS)
}

/// The real functions, resolved now if need be, or `None` inside this thread's own lookup (use
/// the arena then).
#[inline(always)]
pub fn functions() -> Option<&'static Functions> {
    if READY.load(Ordering::Acquire) { Some(&FUNCTIONS) } else { resolve() }
}

#[cold]
#[inline(never)]
fn resolve() -> Option<&'static Functions> {
    if RESOLVING.try_with(Cell::get).unwrap_or(true) {
        return None;
    }
    let _ = RESOLVING.try_with(|resolving| resolving.set(true));
    // SAFETY: errno is this thread's; dlsym may change it, an allocation call must not.
    let errno = unsafe { *libc::__errno_location() };
    let f = &FUNCTIONS;
    let mut missing = false;
    let mut store = |slot: &Slot, name: &CStr, glibc: Option<&CStr>, failing: *mut c_void| {
        let found = lookup(name, glibc);
        missing |= found.is_null();
        slot.0.store(if found.is_null() { failing } else { found }, Ordering::Relaxed);
    };
    store(&f.malloc, c"malloc", Some(c"__libc_malloc"), failing::malloc as *mut c_void);
    store(&f.free, c"free", Some(c"__libc_free"), failing::free as *mut c_void);
    store(&f.calloc, c"calloc", Some(c"__libc_calloc"), failing::calloc as *mut c_void);
    store(&f.realloc, c"realloc", Some(c"__libc_realloc"), failing::realloc as *mut c_void);
    store(&f.posix_memalign, c"posix_memalign", None, failing::posix_memalign as *mut c_void);
    // glibc's aligned_alloc is an alias of its memalign.
    store(&f.aligned_alloc, c"aligned_alloc", Some(c"__libc_memalign"), failing::aligned as *mut c_void);
    store(&f.memalign, c"memalign", Some(c"__libc_memalign"), failing::aligned as *mut c_void);
    store(&f.valloc, c"valloc", Some(c"__libc_valloc"), failing::malloc as *mut c_void);
    store(&f.pvalloc, c"pvalloc", Some(c"__libc_pvalloc"), failing::malloc as *mut c_void);
    store(&f.malloc_usable_size, c"malloc_usable_size", None, failing::usable_size as *mut c_void);
    // operator delete: the next definition when it is an allocator's own (jemalloc's frees
    // inside jemalloc) or any other replacement. libstdc++'s and libc++'s deletes are `free` and
    // nothing else, so for them, and when there is none (a C program; a C++ library loaded later
    // with RTLD_LOCAL, which RTLD_NEXT cannot see), the real `free` runs directly: passing
    // through the runtime's delete would cost its sized -> plain -> free chain, each step
    // through an interposed entry point again.
    let delete = |slot: &Slot, name: &CStr, to_free: *mut c_void| {
        let found = lookup(name, None);
        let runtime = found.is_null() || in_cxx_runtime(found);
        slot.0.store(if runtime { to_free } else { found }, Ordering::Relaxed);
    };
    delete(&f.delete, c"_ZdlPv", to_free::plain as *mut c_void);
    delete(&f.delete_sized, c"_ZdlPvm", to_free::with as *mut c_void);
    delete(&f.delete_aligned, c"_ZdlPvSt11align_val_t", to_free::with as *mut c_void);
    delete(&f.delete_sized_aligned, c"_ZdlPvmSt11align_val_t", to_free::sized_aligned as *mut c_void);
    delete(&f.delete_nothrow, c"_ZdlPvRKSt9nothrow_t", to_free::nothrow as *mut c_void);
    delete(&f.delete_aligned_nothrow, c"_ZdlPvSt11align_val_tRKSt9nothrow_t", to_free::aligned_nothrow as *mut c_void);
    delete(&f.delete_array, c"_ZdaPv", to_free::plain as *mut c_void);
    delete(&f.delete_array_sized, c"_ZdaPvm", to_free::with as *mut c_void);
    delete(&f.delete_array_aligned, c"_ZdaPvSt11align_val_t", to_free::with as *mut c_void);
    delete(&f.delete_array_sized_aligned, c"_ZdaPvmSt11align_val_t", to_free::sized_aligned as *mut c_void);
    delete(&f.delete_array_nothrow, c"_ZdaPvRKSt9nothrow_t", to_free::nothrow as *mut c_void);
    delete(
        &f.delete_array_aligned_nothrow,
        c"_ZdaPvSt11align_val_tRKSt9nothrow_t",
        to_free::aligned_nothrow as *mut c_void,
    );
    READY.store(true, Ordering::Release);
    let _ = RESOLVING.try_with(|resolving| resolving.set(false));
    if missing {
        warn_missing();
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
    Some(f)
}

fn lookup(name: &CStr, glibc: Option<&CStr>) -> *mut c_void {
    // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT searches the objects after this one.
    let next = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    match glibc {
        // SAFETY: as above, in the global scope.
        Some(glibc) if next.is_null() => unsafe { libc::dlsym(libc::RTLD_DEFAULT, glibc.as_ptr()) },
        _ => next,
    }
}

/// Whether `function` is defined by the C++ runtime library (libstdc++ or libc++), by the file
/// name of the object that holds it. `dladdr` takes the loader's recursive lock and does not allocate.
fn in_cxx_runtime(function: *mut c_void) -> bool {
    // SAFETY: Dl_info is plain data; an all-zero value is valid (null pointers).
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr reads the loader's tables and writes `info`.
    if unsafe { libc::dladdr(function.cast_const(), &mut info) } == 0 || info.dli_fname.is_null() {
        return false;
    }
    // SAFETY: dli_fname is the NUL-terminated name of a loaded object, kept while it stays loaded.
    let path = unsafe { CStr::from_ptr(info.dli_fname) }.to_bytes();
    let file = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    file.starts_with(b"libstdc++.so") || file.starts_with(b"libc++.so")
}

fn warn_missing() {
    let line = b"memleak-sampler: no allocator found after this library in symbol lookup order (and no glibc \
                 __libc_* entry points): some allocation calls will fail; load it with LD_PRELOAD or link it \
                 before the C library\n";
    // SAFETY: a write of a static buffer.
    let _ = unsafe { libc::write(libc::STDERR_FILENO, line.as_ptr().cast(), line.len()) };
}

/// An `operator delete` when no definition follows this library: `free`, which is what the C++
/// runtimes' deletes are. Called only once the functions are resolved.
mod to_free {
    use super::FUNCTIONS;
    use std::ffi::c_void;

    pub extern "C" fn plain(ptr: *mut c_void) {
        // SAFETY: the real free; `ptr` came from operator new, which allocates with the malloc family.
        unsafe { FUNCTIONS.free()(ptr) }
    }
    pub extern "C" fn with(ptr: *mut c_void, _size_or_align: usize) {
        plain(ptr);
    }
    pub extern "C" fn sized_aligned(ptr: *mut c_void, _size: usize, _align: usize) {
        plain(ptr);
    }
    pub extern "C" fn nothrow(ptr: *mut c_void, _nothrow: *const c_void) {
        plain(ptr);
    }
    pub extern "C" fn aligned_nothrow(ptr: *mut c_void, _align: usize, _nothrow: *const c_void) {
        plain(ptr);
    }
}

/// What an entry point does when no allocator provides it: fail as allocators fail.
mod failing {
    use std::ffi::{c_int, c_void};

    fn enomem() -> *mut c_void {
        // SAFETY: this thread's errno.
        unsafe { *libc::__errno_location() = libc::ENOMEM };
        std::ptr::null_mut()
    }
    pub extern "C" fn malloc(_: usize) -> *mut c_void {
        enomem()
    }
    /// Leaks: without an allocator nothing can have been allocated to give back.
    pub extern "C" fn free(_: *mut c_void) {}
    pub extern "C" fn calloc(_: usize, _: usize) -> *mut c_void {
        enomem()
    }
    pub extern "C" fn realloc(_: *mut c_void, _: usize) -> *mut c_void {
        enomem()
    }
    pub extern "C" fn posix_memalign(_: *mut *mut c_void, _: usize, _: usize) -> c_int {
        libc::ENOMEM
    }
    pub extern "C" fn aligned(_: usize, _: usize) -> *mut c_void {
        enomem()
    }
    pub extern "C" fn usable_size(_: *mut c_void) -> usize {
        0
    }
}
