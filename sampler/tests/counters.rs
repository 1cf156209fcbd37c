//! The sampler's counters against what C++ and jemalloc programs did: every sampled block is reported freed, nothing is dropped (no root needed).
//!
//! At a mean of 64 bytes a block of 4096 is sampled with probability 1 - exp(-64): always, so the
//! counts are exact.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{compile, jemalloc, one, preloaded, run_ok};
use std::path::Path;
use std::process::Command;

fn operator_delete_counts(also: Option<&Path>) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let program = compile("operator_delete.cpp", dir.path(), &["-ldl"]);
    run_ok(preloaded(&mut Command::new(&program), 64, also))
}

#[test]
fn behind_glibc_every_operator_new_is_sampled_and_every_delete_reported() {
    let output = operator_delete_counts(None);
    let news = one(&output, "news");
    // libstdc++'s operator new calls malloc (aligned: aligned_alloc), its delete free.
    assert_eq!(one(&output, "sampled"), news, "{output:?}");
    assert_eq!(one(&output, "sampled_freed"), news);
    assert_eq!(one(&output, "missed_frees"), 0);
    assert_eq!(one(&output, "dropped"), 0);
}

#[test]
fn behind_jemalloc_every_delete_of_a_sampled_block_is_reported() {
    let Some(jemalloc) = jemalloc() else { return };
    let output = operator_delete_counts(Some(&jemalloc));
    // jemalloc's aligned operator new calls aligned_alloc (sampled); its plain new allocates
    // inside jemalloc (not sampled: the README's limits). Its deletes all free inside jemalloc:
    // only the interposed operator delete sees them.
    let aligned = one(&output, "aligned_news");
    assert_eq!(one(&output, "sampled"), aligned, "{output:?}");
    assert_eq!(one(&output, "sampled_freed"), aligned, "a delete went unseen");
    assert_eq!(one(&output, "missed_frees"), 0);
    assert_eq!(one(&output, "dropped"), 0, "sampled blocks were dropped");
}

#[test]
fn blocks_freed_behind_the_samplers_back_are_reported_when_their_address_returns() {
    let Some(jemalloc) = jemalloc() else { return };
    let dir = tempfile::tempdir().unwrap();
    let program = compile("jemalloc_own_free.c", dir.path(), &["-ldl"]);
    let output = run_ok(preloaded(&mut Command::new(&program), 64, Some(&jemalloc)));
    let (blocks, addresses) = (one(&output, "blocks"), one(&output, "addresses"));
    assert_eq!(one(&output, "sampled"), blocks, "{output:?}");
    assert_eq!(one(&output, "sampled_freed"), 0, "dallocx bypasses the sampler");
    // Each address's first block is still tracked at the end; every later one found it live.
    assert_eq!(one(&output, "missed_frees"), blocks - addresses);
    assert_eq!(one(&output, "dropped"), 0, "ghosts filled the table");
}
