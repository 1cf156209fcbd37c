//! Leak sites: the innermost frame of each stack that belongs to the program,
//! not to the allocator or the language runtime.

use crate::model::{Frame, Profile};
use std::collections::HashMap;

/// Exact names of allocation functions and sanitizer interceptors.
const ALLOCATORS: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "reallocarray",
    "free",
    "strdup",
    "__strdup",
    "__strndup",
    "strndup",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "operator new",
    "operator new[]",
    "operator new(unsigned long)",
    "operator new[](unsigned long)",
    "__libc_malloc",
    "__libc_calloc",
    "__libc_realloc",
    "mmap",
    "mmap64",
    "__mmap64",
    "brk",
    "sbrk",
    "__interceptor_malloc",
    "__interceptor_calloc",
    "__interceptor_realloc",
    "__interceptor_strdup",
    "__interceptor_posix_memalign",
    "mi_malloc",
    "mi_calloc",
    "tc_malloc",
    "tc_calloc",
    "je_malloc",
    "je_calloc",
    "imalloc",
    "prof_backtrace",
];

/// Prefixes of runtime and allocator frames (Rust std/alloc, jemalloc, tcmalloc internals, massif's root).
const RUNTIME_PREFIXES: &[&str] = &[
    "alloc::",
    "<alloc::",
    "core::",
    "<core::",
    "std::",
    "<std::",
    "__rust_",
    "__rdl_",
    "__rg_",
    "_RNv",
    "_ZN5alloc",
    "_ZN4core",
    "_ZN3std",
    "je_",
    "prof_",
    "tcmalloc::",
    "(heap allocation functions)",
    "operator new",
    "__interceptor_",
    "___interceptor_",
    "__asan_",
    "__lsan_",
    "__sanitizer",
    // Unsymbolized frames of allocator and C runtime libraries (`libjemalloc.so.2+0x2d21`).
    "libjemalloc",
    "libtcmalloc",
    "libmimalloc",
    "libc.so",
    "libc-",
    "libstdc++",
    "ld-linux",
    // C++ runtime templates (`__gnu_cxx::new_allocator<T>::allocate`, `std::vector<T>::_M_realloc_insert`).
    "__gnu_cxx::",
    "__cxxabiv1::",
    "operator delete",
    // Go's runtime (`runtime.mallocgc`, `runtime.growslice`, `runtime.makeslice`).
    "runtime.",
];

/// Source paths of the Rust standard library, as debug info records them
/// (`library/alloc/src/…` or `/rustc/<hash>/library/…`): inlined generic frames
/// such as `with_capacity_in<u8, …>` carry no path prefix in their name.
const RUNTIME_FILES: &[&str] = &["library/alloc/", "library/core/", "library/std/", "/rustc/"];

/// Whether `frame` is an allocator or runtime frame rather than program code.
pub fn is_runtime(frame: &Frame) -> bool {
    let f = frame.function.as_str();
    // Demangled C++ template functions start with their return type: `void std::vector<…>::…`.
    let unqualified = match f.split_once(' ') {
        Some((ret, rest)) if !ret.contains(['(', '<', ':']) => rest,
        _ => f,
    };
    ALLOCATORS.contains(&f)
        || is_reserved(f)
        || RUNTIME_PREFIXES.iter().any(|p| f.starts_with(p) || unqualified.starts_with(p))
        || frame
            .file
            .as_deref()
            .is_some_and(|file| RUNTIME_FILES.iter().any(|r| file.starts_with(r) || file.contains(&format!("/{r}"))))
}

/// Whether `name` is reserved to the implementation (C11 7.1.3, C++ [lex.name]: a leading
/// `__`, or `_` and a capital): the C library's and the compiler runtime's own functions
/// (glibc's `__getdelim` under `getline`, `__vasprintf_internal`, `_IO_file_doallocate`),
/// which a program may not define. Named once their library's symbols are read, they would
/// otherwise be taken for the program's code. Mangled names (`_Z…` C++, `_R…` Rust) are the
/// program's own functions left undemangled, judged by the prefixes above instead.
fn is_reserved(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next() == Some('_') && chars.next().is_some_and(|c| c == '_' || (c.is_ascii_uppercase() && !"ZR".contains(c)))
}

/// The innermost program frame of a stack, or the innermost frame if all are runtime.
pub fn site(stack: &[Frame]) -> Option<&Frame> {
    stack.iter().find(|f| !is_runtime(f)).or_else(|| stack.first())
}

/// A leak site with its summed values (one per sample type).
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub frame: Frame,
    pub values: Vec<i64>,
}

/// Sites summed by function, largest first by sample type `index`; at most `n`.
/// A site whose sum there is zero is left out: it allocated during a window
/// but holds nothing, or its growth cancelled out, and is no leak site.
pub fn top(profile: &Profile, index: usize, n: usize) -> Vec<Site> {
    let mut by_function: HashMap<&str, Site> = HashMap::new();
    for sample in &profile.samples {
        let Some(frame) = site(&sample.stack) else { continue };
        let entry = by_function
            .entry(frame.function.as_str())
            .or_insert_with(|| Site { frame: frame.clone(), values: vec![0; sample.values.len()] });
        for (total, v) in entry.values.iter_mut().zip(&sample.values) {
            *total += v;
        }
    }
    let mut sites: Vec<Site> =
        by_function.into_values().filter(|s| s.values.get(index).copied().unwrap_or(0) != 0).collect();
    sites.sort_by(|a, b| {
        let (va, vb) = (a.values.get(index).copied().unwrap_or(0), b.values.get(index).copied().unwrap_or(0));
        vb.cmp(&va).then_with(|| a.frame.function.cmp(&b.frame.function))
    });
    sites.truncate(n);
    sites
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_allocator_and_runtime_frames() {
        let stack: Vec<Frame> =
            ["malloc", "<alloc::raw_vec::RawVecInner>::try_allocate_in", "leaky_r::leak_token_buffer", "main"]
                .into_iter()
                .map(Frame::function)
                .collect();
        assert_eq!(site(&stack).map(|f| f.function.as_str()), Some("leaky_r::leak_token_buffer"));
        let cpp: Vec<Frame> = [
            "operator new(unsigned long)",
            "__gnu_cxx::new_allocator<int>::allocate(unsigned long, void const*)",
            "void std::vector<int, std::allocator<int> >::_M_realloc_insert<int const&>(int const&)",
            "Cache::insert(int)",
            "main",
        ]
        .into_iter()
        .map(Frame::function)
        .collect();
        assert_eq!(site(&cpp).map(|f| f.function.as_str()), Some("Cache::insert(int)"));
        let go: Vec<Frame> =
            ["runtime.growslice", "main.leakRequestBuffer", "main.main"].into_iter().map(Frame::function).collect();
        assert_eq!(site(&go).map(|f| f.function.as_str()), Some("main.leakRequestBuffer"));
        // glibc's own functions, named from its symbols, under the program's.
        let glibc: Vec<Frame> = ["__getdelim", "keep_line", "main"].into_iter().map(Frame::function).collect();
        assert_eq!(site(&glibc).map(|f| f.function.as_str()), Some("keep_line"));
        let stdio: Vec<Frame> = ["_IO_file_doallocate", "_IO_doallocbuf", "_log_line", "__x", "main"]
            .into_iter()
            .map(Frame::function)
            .collect();
        assert_eq!(site(&stdio).map(|f| f.function.as_str()), Some("_log_line"), "one underscore and a small letter");
        // A program's function left mangled is the program's, not the implementation's.
        let mangled: Vec<Frame> =
            ["__getdelim", "_ZN5Cache6insertEi", "main"].into_iter().map(Frame::function).collect();
        assert_eq!(site(&mangled).map(|f| f.function.as_str()), Some("_ZN5Cache6insertEi"));
        let only_runtime = vec![Frame::function("malloc")];
        assert_eq!(site(&only_runtime).map(|f| f.function.as_str()), Some("malloc"));
    }

    #[test]
    fn sites_holding_nothing_by_the_ranked_type_are_left_out() {
        use crate::model::{ALLOC_SPACE, INUSE_SPACE, Profile, Sample};
        let mut profile = Profile::new("inuse", vec![ALLOC_SPACE, INUSE_SPACE]);
        let sample = |function: &str, alloc: i64, inuse: i64| Sample {
            stack: vec![Frame::function("malloc"), Frame::function(function), Frame::function("main")],
            values: vec![alloc, inuse],
            labels: Vec::new(),
        };
        // Allocated and freed within the window; a leak; a growth that cancelled out over two stacks.
        profile.samples = vec![sample("churn", 9000, 0), sample("leak", 300, 300), sample("even", 10, 5)];
        profile.samples.push(sample("even", 10, -5));
        let names = |index| top(&profile, index, 10).into_iter().map(|s| s.frame.function).collect::<Vec<_>>();
        assert_eq!(names(1), ["leak"]);
        assert_eq!(names(0), ["churn", "leak", "even"]);
    }
}
