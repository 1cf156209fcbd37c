//! The markers, probed by the kernel's uprobes, estimate what programs allocate and leave in use, within the sampling error (root).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::estimate::{Replay, assert_estimates};
use common::uprobes::{Probes, of};
use common::{
    A_ALLOCATED, A_IN_USE, a_cachesvc, can_run_privileged, compile, library, one, preloaded, reported, spawn_ok,
};
use std::process::Command;

#[test]
fn program_a_allocations_and_leak_are_estimated_within_the_sampling_error() {
    if !can_run_privileged() {
        return;
    }
    // A small mean, so that a run of A (3.7 MB allocated) gives enough samples: the standard
    // deviations are 0.4 % of the allocated bytes and 3.7 % of the bytes in use.
    let mean = 1024;
    let probes = Probes::attach(&library());
    let (pid, _) = spawn_ok(preloaded(Command::new(a_cachesvc()).arg("leak"), mean, None));
    let events = probes.events();
    let replay = Replay::of(&of(&events, pid));

    assert_estimates("A allocated", &replay.allocated, &A_ALLOCATED, mean);
    assert_estimates("A in use at exit", &replay.live_sizes(), &A_IN_USE, mean);
    // Sizes identify A's sites: only the scratch buffer and strdup's copy are freed, only the
    // leaking sites and the config block stay.
    assert!(replay.freed.iter().all(|s| [8192, 20].contains(s)), "freed sizes {:?}", replay.freed);
    assert!(replay.live.values().all(|s| [1536, 256, 96].contains(s)), "live sizes {:?}", replay.live_sizes());
}

#[test]
fn threads_allocating_concurrently_are_estimated_and_every_free_pairs() {
    if !can_run_privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let program = compile("threads.c", dir.path(), &[]);
    let mean = 16384;
    let probes = Probes::attach(&library());
    let (pid, output) = spawn_ok(preloaded(Command::new(&program).args(["8", "20000"]), mean, None));
    let events = probes.events();

    let sizes = reported(&output, "size");
    let allocated: Vec<(u64, u64)> = sizes.iter().copied().zip(reported(&output, "allocated")).collect();
    let in_use: Vec<(u64, u64)> = sizes.iter().copied().zip(reported(&output, "in_use")).collect();
    assert_eq!(allocated.len(), 7, "{output:?}");
    // Replay panics on a free that pairs with no live sampled block, or a block reported twice.
    let replay = Replay::of(&of(&events, pid));
    // glibc allocates a little for each new thread (its TLS vector) through the same malloc;
    // those blocks are not the program's, and sizes tell them apart.
    let program_sizes = |all: &[u64]| all.iter().copied().filter(|s| sizes.contains(s)).collect::<Vec<_>>();
    assert_estimates("threads allocated", &program_sizes(&replay.allocated), &allocated, mean);
    assert_estimates("threads in use at exit", &program_sizes(&replay.live_sizes()), &in_use, mean);
    // The counters the program read after its last allocation match what the probes saw: no
    // event lost, no sample dropped for want of room.
    assert_eq!(one(&output, "sampled"), replay.allocated.len() as u64);
    assert_eq!(one(&output, "sampled_freed"), replay.freed.len() as u64);
    assert_eq!(one(&output, "dropped"), 0);
    assert_eq!(one(&output, "missed_frees"), 0, "glibc's free is always seen");
    assert_eq!(one(&output, "mean_bytes"), mean);
}
