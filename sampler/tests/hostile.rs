//! Hostile cases under the kernel's uprobes (root): fork without exec, realloc of sampled blocks, dlopen/dlclose, C++, Python, jemalloc behind the sampler.
//!
//! Blocks of 64 means or more are sampled with probability 1 - exp(-64): always, so these tests
//! assert exact event sequences for them. Every test replays its process's events, which panics
//! on a free that pairs with no live sampled block.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::estimate::{Replay, assert_estimates};
use common::uprobes::{Marker, Probes, of};
use common::{
    A_ALLOCATED, A_IN_USE, a_cachesvc, can_run_privileged, compile, jemalloc, library, one, preloaded, reported,
    spawn_ok,
};
use std::collections::HashMap;
use std::process::Command;

const MIB: u64 = 1 << 20;

#[test]
fn a_forked_child_keeps_sampling_and_frees_what_its_parent_sampled() {
    if !can_run_privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let program = compile("fork.c", dir.path(), &[]);
    let probes = Probes::attach(&library());
    let (parent, output) = spawn_ok(preloaded(&mut Command::new(&program), 4096, None));
    let events = probes.events();
    let child = one(&output, "child") as u32;
    let (a, b) = (reported(&output, "a")[0], reported(&output, "b")[0]);
    let (c, d) = (one(&output, "c"), one(&output, "d"));
    assert_eq!(reported(&output, "b"), [b, b], "the child freed the parent's b");

    let parent_view = Replay::of(&of(&events, parent));
    let big: Vec<u64> = parent_view.allocated.iter().copied().filter(|&s| s >= MIB).collect();
    assert_eq!(big, [MIB, 2 * MIB], "parent: its big blocks, a and b");
    assert_eq!(parent_view.live.get(&b), Some(&(2 * MIB)), "parent: b stays live in the parent");
    assert!(!parent_view.live.contains_key(&a), "parent: a was freed");
    // The child starts with the parent's blocks; its frees pair with them or with its own.
    let child_markers = of(&events, child);
    assert!(!child_markers.is_empty(), "no events from the child {child}");
    let child_view = Replay::new(&child_markers, HashMap::from([(a, MIB), (b, 2 * MIB)]));
    assert_eq!(
        child_markers.first(),
        Some(&Marker::Free { ptr: b }),
        "the child's first sampled event is its free of b"
    );
    assert_eq!(child_view.live.get(&c), Some(&(3 * MIB)), "child: c leaked");
    assert!(child_markers.contains(&Marker::Alloc { ptr: d, size: 4 * MIB }) && !child_view.live.contains_key(&d));
    assert!(child_view.allocated.len() > 10, "the child's churning thread was sampled too");
}

#[test]
fn realloc_reports_the_old_block_freed_and_the_new_one_allocated() {
    if !can_run_privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let program = compile("realloc.c", dir.path(), &[]);
    let probes = Probes::attach(&library());
    let (pid, output) = spawn_ok(preloaded(&mut Command::new(&program), 4096, None));
    let events = probes.events();
    let [p, q, r, s, t, v, w, z] = ["p", "q", "r", "s", "t", "v", "w", "z"].map(|k| one(&output, k));
    assert_eq!(t, 0, "glibc's realloc(p, 0) frees and returns NULL");

    // Keep the big blocks' events (all sampled); small blocks are sampled now and then.
    let mut big = HashMap::new();
    let mut sequence = Vec::new();
    for marker in of(&events, pid) {
        match marker {
            Marker::Alloc { ptr, size } if size >= MIB / 2 => {
                big.insert(ptr, size);
                sequence.push(marker);
            }
            Marker::Free { ptr } if big.remove(&ptr).is_some() => sequence.push(marker),
            _ => {}
        }
    }
    use Marker::{Alloc, Free};
    let expected = vec![
        Alloc { ptr: p, size: MIB },
        Free { ptr: p },
        Alloc { ptr: q, size: 2 * MIB },
        Free { ptr: q },
        Alloc { ptr: r, size: MIB / 2 },
        Alloc { ptr: s, size: MIB },
        Free { ptr: r },
        Alloc { ptr: v, size: MIB },
        Free { ptr: v },
        Alloc { ptr: w, size: 2 * MIB },
        // realloc(w, SIZE_MAX - 4096) failed: reported away, then back with its usable size
        // (reallocarray's overflow never reached the allocator: no events).
        Free { ptr: w },
    ];
    assert_eq!(&sequence[..expected.len()], &expected[..], "{sequence:#x?}");
    let rest = &sequence[expected.len()..];
    assert!(matches!(rest[0], Alloc { ptr, size } if ptr == w && size >= 2 * MIB), "{rest:x?}");
    assert_eq!(&rest[1..], &[Alloc { ptr: z, size: MIB }, Free { ptr: s }, Free { ptr: w }, Free { ptr: z }]);
}

#[test]
fn libraries_loaded_and_unloaded_repeatedly_pair_every_free() {
    if !can_run_privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plugin = compile("plugin.c", dir.path(), &["-shared", "-fPIC"]);
    let program = compile("dlopen.c", dir.path(), &["-ldl"]);
    let probes = Probes::attach(&library());
    let (pid, output) = spawn_ok(preloaded(Command::new(&program).arg(&plugin).arg("100"), 4096, None));
    let events = probes.events();
    let (iterations, leak_size, state_size) =
        (one(&output, "iterations"), one(&output, "leak_size"), one(&output, "state_size"));
    let replay = Replay::of(&of(&events, pid));
    let count = |sizes: &[u64], size| sizes.iter().filter(|&&s| s == size).count() as u64;
    assert_eq!(count(&replay.allocated, state_size), iterations, "each load's state");
    assert_eq!(count(&replay.freed, state_size), iterations, "each unload frees its state");
    assert_eq!(count(&replay.live_sizes(), leak_size), iterations, "each call's leak");
}

#[test]
fn a_cpp_program_with_threads_exceptions_and_aligned_new_shows_its_leaks() {
    if !can_run_privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let program = compile("cxx.cpp", dir.path(), &[]);
    let probes = Probes::attach(&library());
    let (pid, output) = spawn_ok(preloaded(&mut Command::new(&program), 4096, None));
    let events = probes.events();
    let replay = Replay::of(&of(&events, pid));
    let leak_size = one(&output, "leak_size");
    let leaked = replay.live.values().filter(|&&s| s == leak_size).count() as u64;
    assert_eq!(leaked, one(&output, "leaks"), "{output:?}");
    assert!(replay.allocated.len() > 1000, "the churn was sampled: {}", replay.allocated.len());
}

#[test]
fn python_runs_with_the_sampler_and_its_kept_buffers_are_live_at_exit() {
    if !can_run_privileged() {
        return;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/service.py");
    let probes = Probes::attach(&library());
    let (pid, output) = spawn_ok(preloaded(Command::new("python3").arg(&script), 65536, None));
    let events = probes.events();
    let replay = Replay::of(&of(&events, pid));
    assert_eq!(one(&output, "total"), 80_000);
    // bytearray(n) asks for n + 1 bytes (a trailing NUL); allow the object's header too.
    let kept_size = one(&output, "kept_size");
    let kept = replay.live.values().filter(|&&s| (kept_size..kept_size + 128).contains(&s)).count() as u64;
    assert!(kept >= one(&output, "kept"), "{kept} live blocks of about {kept_size} B");
}

#[test]
fn in_front_of_jemalloc_every_call_reaches_jemalloc_and_program_a_is_estimated() {
    if !can_run_privileged() {
        return;
    }
    let Some(jemalloc) = jemalloc() else { return };
    let dir = tempfile::tempdir().unwrap();
    let program = compile("behind_jemalloc.c", dir.path(), &["-ldl"]);
    let probes = Probes::attach(&library());
    // The program itself checks, with jemalloc's counters, that each entry point reached it.
    let (pid, output) = spawn_ok(preloaded(&mut Command::new(&program), 4096, Some(&jemalloc)));
    let mean = 1024;
    let (a_pid, _) = spawn_ok(preloaded(Command::new(a_cachesvc()).arg("leak"), mean, Some(&jemalloc)));
    let events = probes.events();

    let markers = of(&events, pid);
    let calls = [
        ("malloc", MIB),
        ("calloc", MIB),
        ("realloc", 2 * MIB),
        ("posix_memalign", MIB),
        ("aligned_alloc", MIB),
        ("memalign", MIB),
        ("valloc", MIB),
    ];
    for (name, size) in calls {
        let ptr = one(&output, name);
        assert!(markers.contains(&Marker::Alloc { ptr, size }), "{name}'s block {ptr:#x} was not reported");
        assert!(markers.contains(&Marker::Free { ptr }), "{name}'s block {ptr:#x} was not reported freed");
    }
    Replay::of(&markers);

    // Debian's jemalloc links libstdc++, whose start-up allocates its exception emergency pool
    // (72,704 B, kept to the end) through malloc too: a block of the process, not of A. A's
    // sizes tell its blocks apart.
    let a = Replay::of(&of(&events, a_pid));
    let of_a = |sizes: Vec<u64>| {
        sizes.into_iter().filter(|s| A_ALLOCATED.iter().any(|(size, _)| size == s)).collect::<Vec<_>>()
    };
    assert_estimates("A behind jemalloc, allocated", &of_a(a.allocated.clone()), &A_ALLOCATED, mean);
    assert_estimates("A behind jemalloc, in use at exit", &of_a(a.live_sizes()), &A_IN_USE, mean);
}
