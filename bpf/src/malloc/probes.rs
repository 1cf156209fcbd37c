//! The loaded `malloc_trace.bpf.c` for one process: its programs, the
//! allocation probes (attached and detached as the governor says) and the
//! free probes (attached throughout), and its counters. Each program is
//! attached to all its entry points in a binary by one uprobe_multi link
//! (`multi`), held by a file descriptor of this process: the kernel removes
//! it when the object is dropped, and when the exporter dies. Removing a
//! link takes its breakpoints out at once, then waits for a grace period.

use super::allocator::{Allocator, Shape};
use super::callers::Code;
use super::multi;
use crate::loader::{per_cpu_sum, typed_map};
use crate::shared;
use aya::Ebpf;
use aya::maps::PerCpuArray;
use aya::programs::TracePoint;
use memleak_signals::{Problem, ProblemKind};
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

/// The programs of the object, in the order they are loaded.
pub const PROGRAMS: [&str; 3] = ["alloc_enter", "alloc_return", "free_enter"];
const ENTER: usize = 0;
const RETURN: usize = 1;
const FREE: usize = 2;
/// The tracepoint programs that follow the processes the target forks until
/// they exec or exit: (program, tracepoint category, tracepoint name).
const CHILD_PROGRAMS: [(&str, &str, &str); 3] = [
    ("process_forked", "task", "task_newtask"),
    ("child_exec", "sched", "sched_process_exec"),
    ("child_exit", "sched", "sched_process_exit"),
];

/// The counters of the object, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub allocation_calls: u64,
    pub allocation_returns: u64,
    pub free_calls: u64,
    pub frees_matched: u64,
    pub outstanding_full: u64,
    pub stack_lost: u64,
    pub sites_full: u64,
    /// Processes the target forked (each inherits the breakpoints).
    pub forks: u64,
    /// Of them, those not followed (the map of children was full).
    pub children_full: u64,
    /// Execs of the target (the maps froze at the first).
    pub execs: u64,
}

/// The entry points of one kind in one binary: one link each way.
#[derive(Debug, Clone)]
struct Target {
    binary: CString,
    offsets: Vec<u64>,
    /// The `MALLOC_SHAPE_*` of each offset (allocation entries only).
    cookies: Vec<u64>,
}

/// The loaded object, traced process and links.
pub struct Probes {
    pub bpf: Ebpf,
    programs: Vec<OwnedFd>,
    pid: u32,
    /// The process's code, as written to `malloc_code`.
    pub code: Code,
    allocation: Vec<Target>,
    free: Vec<Target>,
    allocation_links: Vec<OwnedFd>,
    free_links: Vec<OwnedFd>,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes")
            .field("pid", &self.pid)
            .field("allocation_attached", &!self.allocation_links.is_empty())
            .finish_non_exhaustive()
    }
}

impl Probes {
    /// Loads the object for process `pid` whose code is `code` (its programs, not yet attached).
    pub fn load(pid: u32, allocators: &[Allocator], code: Code) -> Result<Probes, Problem> {
        let object = &crate::MALLOC_TRACE;
        if pid == 0 {
            return Err(Problem::new(ProblemKind::Unsupported, object.file, "pid 0 cannot be traced", ""));
        }
        let mut bpf = object.load(&[("target_tgid", u64::from(pid))])?;
        write_code(&mut bpf, &code)?;
        let programs = multi::load_programs(object.bytes, &bpf, &PROGRAMS)
            .map_err(|e| object.denied("cannot load the uprobe_multi programs", &e))?;
        // Before any probe: a process forked by the target carries the
        // breakpoints, and the window ends as soon as this counts one.
        crate::loader::ensure_tracefs()?;
        for (name, category, tracepoint) in CHILD_PROGRAMS {
            let program: &mut TracePoint = object.program_mut(&mut bpf, name)?;
            program.load().map_err(|e| object.denied(&format!("the kernel refused {name}"), &e))?;
            program
                .attach(category, tracepoint)
                .map_err(|e| object.denied(&format!("cannot attach to {category}:{tracepoint}"), &e))?;
        }
        let (mut allocation, mut free) = (Vec::new(), Vec::new());
        for allocator in allocators {
            let binary = CString::new(allocator.binary.as_os_str().as_bytes()).map_err(|_| {
                Problem::new(
                    ProblemKind::Unsupported,
                    allocator.binary.display().to_string(),
                    "a path with a NUL byte",
                    "",
                )
            })?;
            let mut allocations = Target { binary: binary.clone(), offsets: Vec::new(), cookies: Vec::new() };
            let mut frees = Target { binary, offsets: Vec::new(), cookies: Vec::new() };
            for entry in &allocator.entry_points {
                // Aliases share an address: one probe each.
                let target = if entry.shape == Shape::Free { &mut frees } else { &mut allocations };
                if !target.offsets.contains(&entry.offset) {
                    target.offsets.push(entry.offset);
                    target.cookies.extend(entry.shape.cookie());
                }
            }
            allocation.extend(Some(allocations).filter(|t| !t.offsets.is_empty()));
            free.extend(Some(frees).filter(|t| !t.offsets.is_empty()));
        }
        Ok(Probes { bpf, programs, pid, code, allocation, free, allocation_links: Vec::new(), free_links: Vec::new() })
    }

    /// Attaches the free probes (kept until the end).
    pub fn attach_frees(&mut self) -> Result<(), Problem> {
        if self.free_links.is_empty() {
            for target in &self.free {
                self.free_links.push(self.link(FREE, target, false)?);
            }
        }
        Ok(())
    }

    /// Attaches the allocation probes, unless they are. On a failure, what
    /// was attached goes again.
    pub fn attach_allocations(&mut self) -> Result<(), Problem> {
        if !self.allocation_links.is_empty() {
            return Ok(());
        }
        let mut links = Vec::with_capacity(2 * self.allocation.len());
        for target in &self.allocation {
            links.push(self.link(ENTER, target, false)?);
            links.push(self.link(RETURN, target, true)?);
        }
        self.allocation_links = links;
        Ok(())
    }

    fn link(&self, program: usize, target: &Target, returns: bool) -> Result<OwnedFd, Problem> {
        let object = &crate::MALLOC_TRACE;
        let fd = self.programs.get(program).ok_or_else(|| {
            Problem::new(ProblemKind::Unsupported, object.file, "a program was not loaded", "rebuild")
        })?;
        let cookies = (program == ENTER).then_some(target.cookies.as_slice());
        multi::attach(fd.as_fd(), &target.binary, &target.offsets, cookies, self.pid, returns).map_err(|e| {
            object.denied(
                &format!(
                    "cannot attach {} to {} offsets of {}",
                    PROGRAMS.get(program).copied().unwrap_or("?"),
                    target.offsets.len(),
                    target.binary.to_string_lossy()
                ),
                &e,
            )
        })
    }

    /// Detaches the allocation probes on threads of their own (the breakpoints
    /// go at once, then each link waits for a grace period); they are joined
    /// before the probes are attached again.
    pub fn detach_allocations(&mut self) -> Detaching {
        Detaching::start(std::mem::take(&mut self.allocation_links))
    }

    /// Ends the window: the programs leave the maps as they are from now on,
    /// whatever the probes still attached see.
    pub fn freeze(&mut self) -> Result<(), Problem> {
        let map = self.bpf.map_mut("malloc_frozen").ok_or_else(|| {
            Problem::new(ProblemKind::Unsupported, "malloc_frozen", "map missing from the object", "rebuild")
        })?;
        let mut frozen = aya::maps::Array::<_, u64>::try_from(map)
            .map_err(|e| Problem::new(ProblemKind::Read, "malloc_frozen", format!("cannot write the map: {e}"), ""))?;
        frozen
            .set(0, 1, 0)
            .map_err(|e| Problem::new(ProblemKind::Read, "malloc_frozen", format!("cannot write the map: {e}"), ""))
    }

    /// Detaches every probe, and returns when they are gone (the maps stay readable).
    pub fn detach(&mut self) {
        let mut links = std::mem::take(&mut self.free_links);
        links.append(&mut self.allocation_links);
        Detaching::start(links).join();
    }

    /// The traced process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn counters(&self) -> Counters {
        let Ok(map) = typed_map::<PerCpuArray<_, u64>>(&self.bpf, "malloc_counters") else {
            return Counters::default();
        };
        Counters {
            allocation_calls: per_cpu_sum(&map, shared::MALLOC_ALLOC_CALLS),
            allocation_returns: per_cpu_sum(&map, shared::MALLOC_ALLOC_RETURNS),
            free_calls: per_cpu_sum(&map, shared::MALLOC_FREE_CALLS),
            frees_matched: per_cpu_sum(&map, shared::MALLOC_FREES_MATCHED),
            outstanding_full: per_cpu_sum(&map, shared::MALLOC_OUTSTANDING_FULL),
            stack_lost: per_cpu_sum(&map, shared::MALLOC_STACK_LOST),
            sites_full: per_cpu_sum(&map, shared::MALLOC_SITES_FULL),
            forks: per_cpu_sum(&map, shared::MALLOC_FORKS),
            children_full: per_cpu_sum(&map, shared::MALLOC_CHILDREN_FULL),
            execs: per_cpu_sum(&map, shared::MALLOC_EXECS),
        }
    }

    /// A process the target forked at or before `forked_by_ns`
    /// (CLOCK_MONOTONIC) that still runs its program: it has neither exec'd
    /// nor exited, has had `CHILD_CPU` of CPU since (a child a loaded host has
    /// not run yet pays nothing and may still exec), and traps on the
    /// breakpoints it inherited.
    pub fn lasting_child(&self, forked_by_ns: u64) -> Option<u32> {
        let map = typed_map::<aya::maps::HashMap<_, u32, u64>>(&self.bpf, "malloc_children").ok()?;
        // At most MALLOC_MAX_CHILDREN entries.
        map.iter()
            .filter_map(Result::ok)
            .find(|&(pid, forked_ns)| forked_ns <= forked_by_ns && cpu_ns(pid).is_none_or(|cpu| cpu >= CHILD_CPU_NS))
            .map(|(pid, _)| pid)
    }
}

/// CPU time a forked child may run its copy of the program before the trace
/// ends for it: its fork and exec take well under a millisecond, while a
/// trapped allocation loop reaches it within one tick.
const CHILD_CPU_NS: u64 = 5_000_000;

/// The CPU time process `pid` has used (its process CPU clock); None when it
/// cannot be read (gone, or not allowed).
fn cpu_ns(pid: u32) -> Option<u64> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is a valid out-pointer for the call's duration.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) } != 0 {
        return None;
    }
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid out-pointer for the call's duration.
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return None;
    }
    Some(u64::try_from(now.tv_sec).ok()? * 1_000_000_000 + u64::try_from(now.tv_nsec).ok()?)
}

/// Writes the code ranges the allocation return program tells code words by.
fn write_code(bpf: &mut Ebpf, code: &Code) -> Result<(), Problem> {
    let failed = |e: &dyn std::fmt::Display| {
        Problem::new(ProblemKind::Unsupported, "malloc_code", format!("cannot write the map: {e}"), "rebuild")
    };
    let map = bpf.map_mut("malloc_code").ok_or_else(|| failed(&"missing from the object"))?;
    let mut ranges = aya::maps::Array::<_, shared::MallocCodeRanges>::try_from(map).map_err(|e| failed(&e))?;
    ranges.set(0, code.ranges, 0).map_err(|e| failed(&e))
}

/// Links being closed, each on a thread of its own so that their grace
/// periods overlap (in turn, where no thread can be started).
#[derive(Debug)]
pub struct Detaching {
    threads: Vec<std::thread::JoinHandle<()>>,
    /// When the closing began: every breakpoint is removed before any wait.
    pub started: Instant,
}

impl Detaching {
    fn start(links: Vec<OwnedFd>) -> Detaching {
        let started = Instant::now();
        let mut threads = Vec::with_capacity(links.len());
        for link in links {
            let builder = std::thread::Builder::new().name("malloc-detach".into());
            match builder.spawn(move || drop(link)) {
                Ok(thread) => threads.push(thread),
                Err(e) => tracing::debug!(error = %e, "no thread to detach a probe on: detached in turn"),
            }
        }
        Detaching { threads, started }
    }

    /// Waits until every link is gone.
    pub fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}
