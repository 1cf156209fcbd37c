//! Capture kind `ebpf-malloc` through the capture loop on programs whose leaks
//! go through an allocation wrapper without frame pointers (root, CI):
//! libstdc++'s `operator new` in a C++ program, glibc's `strdup` in a C one,
//! both built with frame pointers. Their own code keeps them; the wrappers do
//! not, so the kernel's frame-pointer walk skips the leaking function (or
//! stops at the wrapper), and the capture must put it back from the words
//! above the stack pointer. And a target that execs: the capture ends partial
//! with what it held then. Ground truth: each program counts what it leaks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod ebpf_malloc_support;

use common::{Exporter, Guard, request};
use ebpf_malloc_support::*;
use memleak_artifacts::{Profile, pprof_decode, sites};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `source` (in exporter/tests/helpers) compiled by `compiler` at -O1 with frame pointers, named
/// as the source without its extension (its process's group).
fn build(compiler: &str, package: &str, source: &str) -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(source.split('.').next().unwrap());
    let flags = ["-O1", "-fno-omit-frame-pointer"];
    common::compile(compiler, package, &flags, &format!("exporter/tests/helpers/{source}"), &out).unwrap()
}

/// Runs `binary` (200 iterations) under a full-mode capture opened before its loop, kept
/// alive until the capture ends: the finished capture, its profile, and the bytes and
/// objects the program says it leaked.
fn capture(exporter: &Exporter, binary: &PathBuf, fingerprint: &str) -> (Value, Profile, i64, i64) {
    let mut child =
        Guard(Command::new(binary).args(["200", "1000"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap());
    std::thread::sleep(std::time::Duration::from_millis(200)); // the dynamic loader maps its libraries
    let group = binary.file_name().unwrap().to_str().unwrap();
    let labels = json!({ "group": group, "pid": child.0.id().to_string() });
    // Ten seconds: the loop (about 0.3 s) ends well inside the window.
    let annotations = json!({ "capture_duration": "10s", "ebpf_malloc_mode": "full" });
    let id = start_capture(exporter, alert(fingerprint, labels, annotations));
    wait_for(exporter, &id, "in its window", |c| c["phase"] == "window" || finished(c));
    child.0.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let done = wait_for(exporter, &id, "finished", finished);
    drop(child.0.stdin.take());
    assert!(child.0.wait().unwrap().success());
    let field = |n: usize| -> i64 { line.split_whitespace().nth(n).unwrap().parse().unwrap() };
    let (status, profile) = request(exporter.port, "GET", &format!("/api/v1/captures/{id}/profile.pb.gz"), "", "");
    assert_eq!(status, 200);
    (done, pprof_decode::decode(&profile).unwrap().profile, field(1), field(2))
}

/// (in-use bytes, in-use objects) of the samples whose stack starts with `frames` (a function
/// name each, or a prefix of one ending in `*`).
fn held(profile: &Profile, frames: &[&str]) -> (i64, i64) {
    let matches = |name: &str, want: &str| match want.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == want,
    };
    profile
        .samples
        .iter()
        .filter(|s| s.stack.len() >= frames.len() && s.stack.iter().zip(frames).all(|(f, w)| matches(&f.function, w)))
        .fold((0, 0), |(b, n), s| (b + s.values[0], n + s.values[1]))
}

fn stacks(profile: &Profile) -> Vec<(i64, Vec<&str>)> {
    profile.samples.iter().map(|s| (s.values[0], s.stack.iter().map(|f| f.function.as_str()).collect())).collect()
}

#[test]
fn a_cxx_leak_through_operator_new_names_the_leaking_function_not_its_caller() {
    if !privileged() || common::require_tool("c++", "g++").is_none() {
        return;
    }
    let binary = build("c++", "g++", "cxx_leak.cpp");
    let exporter = Exporter::start(&[]);
    let (done, profile, bytes, objects) = capture(&exporter, &binary, "cxx");
    assert_eq!(done["status"], "done", "{done}");
    // Its source: 200 Sessions of a 200 B array and a pointer.
    assert_eq!((bytes, objects), (200 * 208, 200));
    assert_eq!(done["summary"]["top_sites"][0]["function"], "leak_session()", "{done}");
    // Full mode: every leaked Session, under operator new called by leak_session, called by serve_client.
    let leaked = held(&profile, &["operator new*", "leak_session()", "serve_client()", "main"]);
    assert_eq!(leaked, (bytes, objects), "{:?}", stacks(&profile));
    assert_eq!(sites::top(&profile, 0, 1)[0].values[0], bytes, "{:?}", stacks(&profile));
    assert_eq!(held(&profile, &["operator new*", "scratch_session()"]).0, 0, "the scratch Sessions are all deleted");
}

#[test]
fn a_c_leak_through_strdup_names_the_leaking_function() {
    if !privileged() {
        return;
    }
    // glibc's strdup keeps its length in rbp when it calls malloc (objdump: push %rbp, then
    // lea 0x1(%rax),%rbp): the kernel's walk from malloc's return stops at strdup.
    let binary = build("cc", "gcc", "strdup_leak.c");
    let exporter = Exporter::start(&[]);
    let (done, profile, bytes, objects) = capture(&exporter, &binary, "strdup");
    assert_eq!(done["status"], "done", "{done}");
    // Its source: 200 copies of a 39-character name and its NUL.
    assert_eq!((bytes, objects), (200 * 40, 200));
    assert_eq!(done["summary"]["top_sites"][0]["function"], "remember_name", "{done}");
    let leaked = held(&profile, &["*", "remember_name"]);
    assert_eq!(leaked, (bytes, objects), "{:?}", stacks(&profile));
    assert_eq!(sites::top(&profile, 0, 1)[0].values[0], bytes, "{:?}", stacks(&profile));
    assert_eq!(held(&profile, &["*", "parse_line"]).0, 0, "the parsed copies are all freed");
}

#[test]
fn a_leak_allocated_inside_glibc_is_sited_at_the_program_function_that_kept_it() {
    if !privileged() {
        return;
    }
    // getline's buffer comes from __getdelim: no frame pointer, rbp used as data, and two of
    // fmemopen's function pointers above the stack pointer before the return into keep_line.
    let binary = build("cc", "gcc", "getline_leak.c");
    let exporter = Exporter::start(&[]);
    let (done, profile, bytes, objects) = capture(&exporter, &binary, "getline");
    assert_eq!(done["status"], "done", "{done}");
    // Its source: 200 lines, each in a buffer of its own.
    assert_eq!(objects, 200);
    assert_eq!(done["summary"]["top_sites"][0]["function"], "keep_line", "{done}");
    assert_eq!(done["summary"]["top_sites"][0]["values"]["inuse_space"], bytes, "{done}");
    assert_eq!(held(&profile, &["*", "keep_line"]), (bytes, objects), "{:?}", stacks(&profile));
}

#[test]
fn a_target_that_execs_ends_the_capture_partial_with_what_it_held() {
    if !privileged() {
        return;
    }
    // bpf/tests/helpers/malloc_exec.c: leaks 100 blocks of 48 B in leak_before_exec, then execs
    // itself into an image that leaks in leak_after_exec.
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("malloc_exec");
    let flags = ["-O0", "-fno-omit-frame-pointer"];
    let binary = common::compile("cc", "gcc", &flags, "bpf/tests/helpers/malloc_exec.c", &out).unwrap();
    let exporter = Exporter::start(&[]);
    let (done, profile, bytes, objects) = capture(&exporter, &binary, "exec");
    assert_eq!(done["status"], "partial", "{done}");
    let pid = done["pids"][0].as_u64().unwrap();
    assert!(done["reason"].as_str().unwrap().starts_with(&format!("process {pid} exec'd")), "{done}");
    assert_eq!(held(&profile, &["leak_before_exec"]), (bytes, objects), "{:?}", stacks(&profile));
    assert_eq!(held(&profile, &["leak_after_exec"]), (0, 0), "nothing of the new image");
}
