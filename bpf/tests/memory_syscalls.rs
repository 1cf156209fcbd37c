//! The brk/mmap/munmap/mremap collector: its compiled object (unprivileged),
//! and exact counts on this kernel (root, as CI runs) for a child that makes
//! calls of known sizes in a new cgroup (`helpers/memory_calls.c`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestCgroup, can_run_privileged, collect, compile, map_shape, parsed_object, roots};
use memleak_bpf::memory_syscalls::Config;
use memleak_bpf::shared::{MemorySyscallStats, SIZE_BUCKETS};
use memleak_bpf::{MEMORY_SYSCALLS, MemorySyscallsCollector};
use memleak_signals::Series;
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn the_object_holds_the_programs_and_maps_the_loader_expects() {
    let Some(object) = parsed_object(MEMORY_SYSCALLS.bytes) else { return };
    for program in ["enter_mmap", "exit_mmap", "enter_munmap", "exit_munmap", "enter_brk", "exit_brk"] {
        assert!(object.programs.contains_key(program), "{program}");
    }
    for program in ["enter_mremap", "exit_mremap", "process_exit", "process_exec"] {
        assert!(object.programs.contains_key(program), "{program}");
    }
    let stats_size = size_of::<MemorySyscallStats>() as u32;
    // The per-cgroup totals: an LRU hash (9) of cgroup id → struct memory_syscall_stats.
    assert_eq!(map_shape(&object, "memory_syscall_stats"), (9, 8, stats_size, 4096));
    // Arguments between entry and exit, per thread (LRU), and each process's break (a plain hash, 1).
    assert_eq!(map_shape(&object, "pending_calls"), (9, 8, 16, 16384));
    assert_eq!(map_shape(&object, "program_breaks"), (1, 4, 8, 65536));
    assert_eq!(map_shape(&object, "memory_syscall_counters"), (6, 4, 8, 5));
}

#[test]
fn a_childs_calls_are_counted_with_their_sizes() {
    if !can_run_privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let helper = compile("tests/helpers/memory_calls.c", dir.path());
    let cgroup = TestCgroup::new("syscalls");
    let mut collector = MemorySyscallsCollector::new(&roots(), Config { max_cgroups: 64 });
    let first = collect(&mut collector);
    assert!(first.problems.is_empty(), "{:?}", first.problems);

    let mut child = Command::new(&helper).stdin(Stdio::piped()).spawn().unwrap();
    cgroup.adopt(child.id());
    child.stdin.take().unwrap().write_all(b"g").unwrap();
    assert!(child.wait().unwrap().success());

    let out = collect(&mut collector);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let path = cgroup.path.as_str();
    let value = |name: &str, labels: &[(&str, &str)]| {
        let mut all = vec![("cgroup", path)];
        all.extend_from_slice(labels);
        out.metrics.value(name, &all).unwrap_or_else(|| panic!("no {name}{labels:?} for {path}")) as u64
    };
    let calls = |syscall| value("memleak_memory_syscalls_calls_total", &[("syscall", syscall)]);
    let failed = |syscall| value("memleak_memory_syscalls_failed_total", &[("syscall", syscall)]);
    // memory_calls.c: 3 anonymous + 1 file + 1 mremap source mmaps; 5 munmaps (+1 failing);
    // brk(0) and three moves; one mremap.
    assert_eq!((calls("mmap"), calls("munmap"), calls("brk"), calls("mremap")), (5, 5, 4, 1));
    assert_eq!((failed("mmap"), failed("munmap"), failed("brk"), failed("mremap")), (0, 1, 0, 0));
    let anon = 4096 + 100_000 + (3 << 20) + 65536;
    assert_eq!(value("memleak_memory_syscalls_mapped_bytes_total", &[("kind", "anon")]), anon);
    assert_eq!(value("memleak_memory_syscalls_mapped_bytes_total", &[("kind", "file")]), 8192);
    assert_eq!(value("memleak_memory_syscalls_unmapped_bytes_total", &[]), 4096 + 100_000 + (3 << 20) + 8192 + 196_608);
    // The break went up 256 KiB and 512 KiB, then down 256 KiB.
    assert_eq!(value("memleak_memory_syscalls_brk_moved_bytes_total", &[("direction", "grown")]), 768 << 10);
    assert_eq!(value("memleak_memory_syscalls_brk_moved_bytes_total", &[("direction", "shrunk")]), 256 << 10);
    assert_eq!(value("memleak_memory_syscalls_mremap_resized_bytes_total", &[("direction", "grown")]), 131_072);

    // The histogram is cumulative: ≤4 KiB: 4096; ≤8 KiB: + the file map; ≤64 KiB: + the
    // mremap source; ≤128 KiB: + 100,000; ≤4 MiB: + 3 MiB.
    let bucket = |le: f64| {
        out.metrics
            .series_value("memleak_memory_syscalls_mmap_size_bytes", &[("cgroup", path)], Series::Bucket(le))
            .unwrap_or_else(|| panic!("no bucket le={le}")) as u64
    };
    let expected = [(4096.0, 1), (8192.0, 2), (32768.0, 2), (65536.0, 3), (131_072.0, 4), (2097152.0, 4)];
    for (le, count) in expected {
        assert_eq!(bucket(le), count, "le={le}");
    }
    assert_eq!((bucket(4_194_304.0), bucket(f64::INFINITY)), (5, 5));
    assert_eq!(SIZE_BUCKETS, 24, "the buckets run from 4 KiB to 32 GiB and +Inf");
    let sum = out.metrics.series_value("memleak_memory_syscalls_mmap_size_bytes", &[("cgroup", path)], Series::Sum);
    assert_eq!(sum, Some((anon + 8192) as f64));
}

#[test]
fn exited_processes_leave_the_break_map() {
    if !can_run_privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let helper = compile("tests/helpers/memory_calls.c", dir.path());
    let mut collector = MemorySyscallsCollector::new(&roots(), Config { max_cgroups: 64 });
    assert!(collect(&mut collector).problems.is_empty());
    let tracked = |collector: &mut MemorySyscallsCollector| {
        let out = collect(collector);
        out.metrics.value("memleak_memory_syscalls_tracked_processes", &[]).unwrap() as u64
    };
    let before = tracked(&mut collector);
    // 50 children that call brk and stay: 50 more processes in the map.
    let mut children: Vec<_> = (0..50)
        .map(|_| {
            let mut child = Command::new(&helper).arg("stay").stdin(Stdio::piped()).spawn().unwrap();
            child.stdin.as_mut().unwrap().write_all(b"g").unwrap();
            child
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut alive = tracked(&mut collector);
    while alive < before + 50 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        alive = tracked(&mut collector);
    }
    // When they exit, sched_process_exit removes them.
    for child in &mut children {
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }
    let after = tracked(&mut collector);
    eprintln!("tracked processes: {before} before, {alive} with 50 children, {after} after they exited");
    // Other processes' entries may come and go meanwhile (tolerance 5); the 50 children's must.
    assert!(alive + 5 >= before + 50, "{before} → {alive}: the children's breaks were not tracked");
    assert!(after + 45 <= alive, "{alive} → {after}: exited children stayed in the map");
}
