//! The loaded `malloc_trace.bpf.c` for one process: its programs, the
//! allocation probes (attached and detached as the governor says) and the
//! free probes (attached throughout), and its counters. Every probe is a
//! perf-event link held by a file descriptor of this process: the kernel
//! removes it when the object is dropped, and when the exporter dies.

use super::allocator::{Allocator, Shape};
use crate::loader::{per_cpu_sum, typed_map};
use crate::shared;
use aya::Ebpf;
use aya::maps::PerCpuArray;
use aya::programs::UProbe;
use aya::programs::uprobe::{UProbeAttachLocation, UProbeLink, UProbeLinkId, UProbeScope};
use memleak_signals::{Problem, ProblemKind};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The programs of the object.
const PROGRAMS: [&str; 5] = ["malloc_enter", "calloc_enter", "realloc_enter", "alloc_return", "free_enter"];
pub const RETURN_PROGRAM: &str = "alloc_return";
/// The entry points called most, whose probes go first.
const MALLOC_LIKE: [&str; 5] = ["malloc", "mallocx", "_rjem_malloc", "_rjem_mallocx", "mi_malloc_aligned"];

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
}

/// One probe to attach: a program at a file offset of a binary.
#[derive(Debug, Clone)]
pub struct Probe {
    pub program: &'static str,
    pub binary: std::path::PathBuf,
    pub offset: u64,
}

/// The loaded object, traced process and links.
pub struct Probes {
    pub bpf: Ebpf,
    pid: NonZeroU32,
    allocation: Vec<Probe>,
    free: Vec<Probe>,
    allocation_links: Vec<(&'static str, UProbeLinkId)>,
    free_links: Vec<(&'static str, UProbeLinkId)>,
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
    /// Loads the object for process `pid` (its programs, not yet attached).
    pub fn load(pid: u32, allocators: &[Allocator]) -> Result<Probes, Problem> {
        let object = &crate::MALLOC_TRACE;
        let pid = NonZeroU32::new(pid)
            .ok_or_else(|| Problem::new(ProblemKind::Unsupported, object.file, "pid 0 cannot be traced", ""))?;
        let mut bpf = object.load(&[("target_tgid", u64::from(pid.get()))])?;
        for name in PROGRAMS {
            let program: &mut UProbe = object.program_mut(&mut bpf, name)?;
            program.load().map_err(|e| object.denied(&format!("the kernel refused {name}"), &e))?;
        }
        let (mut allocation, mut free) = (Vec::new(), Vec::new());
        for allocator in allocators {
            for entry in &allocator.entry_points {
                let probe = |program| Probe { program, binary: allocator.binary.clone(), offset: entry.offset };
                if entry.shape == Shape::Free {
                    free.push(probe(entry.shape.program()));
                } else {
                    allocation.push(probe(entry.shape.program()));
                    allocation.push(probe(RETURN_PROGRAM));
                }
            }
        }
        // Aliases share an address: one probe each.
        for probes in [&mut allocation, &mut free] {
            let mut seen = std::collections::HashSet::new();
            probes.retain(|p| seen.insert((p.program, p.binary.clone(), p.offset)));
        }
        // The probes at malloc's address (its entry and the return probe, which
        // also traps at the entry) first: detached first, they end most of the traps.
        let hot: Vec<u64> = allocators
            .iter()
            .flat_map(|a| a.entry_points.iter())
            .filter(|e| MALLOC_LIKE.contains(&e.symbol))
            .map(|e| e.offset)
            .collect();
        allocation.sort_by_key(|p| (!hot.contains(&p.offset), p.program != "malloc_enter"));
        Ok(Probes { bpf, pid, allocation, free, allocation_links: Vec::new(), free_links: Vec::new() })
    }

    /// Attaches the free probes (kept until the end).
    pub fn attach_frees(&mut self) -> Result<(), Problem> {
        let links = attach_all(&mut self.bpf, &self.free, self.pid)?;
        self.free_links.extend(links);
        Ok(())
    }

    /// Attaches the allocation probes, unless they are.
    pub fn attach_allocations(&mut self) -> Result<(), Problem> {
        if self.allocation_links.is_empty() {
            self.allocation_links = attach_all(&mut self.bpf, &self.allocation, self.pid)?;
        }
        Ok(())
    }

    /// Detaches the allocation probes on a thread of its own (each
    /// unregistration waits for an RCU grace period, about 100 ms on this
    /// host, one after the other), malloc's entry first. The detaching says
    /// when that first probe went, and is joined before they are attached again.
    pub fn detach_allocations(&mut self) -> Detaching {
        let links = take_links(&mut self.bpf, std::mem::take(&mut self.allocation_links));
        let first_gone = Arc::new(OnceLock::new());
        let gone = Arc::clone(&first_gone);
        // In turn, hottest first: when the first is gone, the tracing of most
        // calls has ended (dropped at once, the kernel's order would be unknown).
        // The kernel removes a probe's breakpoints first, then waits for the
        // grace period: the first drop's start is when malloc stops being traced.
        let drop_all = move || {
            for link in links {
                let _ = gone.set(Instant::now());
                drop(link);
            }
            let _ = gone.set(Instant::now());
        };
        let thread = std::thread::Builder::new().name("malloc-detach".into()).spawn(drop_all).ok();
        Detaching { thread, first_gone }
    }

    /// Ends the window: the programs leave the maps as they are from now on,
    /// whatever the probes still attached see.
    pub fn freeze(&mut self) -> Result<(), Problem> {
        let map = self.bpf.map_mut("malloc_frozen").ok_or_else(|| {
            Problem::new(ProblemKind::Unsupported, "malloc_frozen", "map missing from the object", "rebuild")
        })?;
        let mut frozen = aya::maps::Array::<_, u64>::try_from(map)
            .map_err(|e| Problem::new(ProblemKind::Read, "malloc_frozen", format!("cannot open the map: {e}"), ""))?;
        frozen
            .set(0, 1, 0)
            .map_err(|e| Problem::new(ProblemKind::Read, "malloc_frozen", format!("cannot write the map: {e}"), ""))
    }

    /// Detaches every probe, and returns when they are gone (the maps stay readable).
    pub fn detach(&mut self) {
        // Frees first: the most frequent probe (each unregistration takes a grace period).
        let mut links = std::mem::take(&mut self.free_links);
        links.append(&mut self.allocation_links);
        drop_at_once(take_links(&mut self.bpf, links));
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
        }
    }
}

/// Attaches each probe; on a failure, what was attached is detached again.
fn attach_all(bpf: &mut Ebpf, probes: &[Probe], pid: NonZeroU32) -> Result<Vec<(&'static str, UProbeLinkId)>, Problem> {
    let mut links = Vec::with_capacity(probes.len());
    for probe in probes {
        match attach(bpf, probe, pid) {
            Ok(link) => links.push((probe.program, link)),
            Err(problem) => {
                drop(take_links(bpf, links));
                return Err(problem);
            }
        }
    }
    Ok(links)
}

fn attach(bpf: &mut Ebpf, probe: &Probe, pid: NonZeroU32) -> Result<UProbeLinkId, Problem> {
    let object = &crate::MALLOC_TRACE;
    let program: &mut UProbe = object.program_mut(bpf, probe.program)?;
    program
        .attach(
            UProbeAttachLocation::AbsoluteOffset(probe.offset),
            Path::new(&probe.binary),
            UProbeScope::OneProcess(pid),
        )
        .map_err(|e| {
            object.denied(
                &format!("cannot attach {} at {}+{:#x}", probe.program, probe.binary.display(), probe.offset),
                &e,
            )
        })
}

/// The links of `ids`, owned: dropping one detaches it.
fn take_links(bpf: &mut Ebpf, ids: Vec<(&'static str, UProbeLinkId)>) -> Vec<UProbeLink> {
    let mut owned = Vec::with_capacity(ids.len());
    for (name, id) in ids {
        if let Ok(program) = crate::MALLOC_TRACE.program_mut::<UProbe>(bpf, name) {
            // A link that cannot be taken goes with the object when it is dropped.
            if let Ok(link) = program.take_link(id) {
                owned.push(link);
            }
        }
    }
    owned
}

/// Drops `links` on threads of their own, and returns when all are gone (each
/// unregistration waits for a grace period; at once they overlap in part).
fn drop_at_once(links: Vec<UProbeLink>) {
    std::thread::scope(|scope| {
        for link in links {
            let drop_it = move || drop(link);
            // Without a thread, the link is dropped here, in turn.
            if let Err(e) = std::thread::Builder::new().name("malloc-detach".into()).spawn_scoped(scope, drop_it) {
                tracing::debug!(error = %e, "no thread to detach a probe on: detaching it in turn");
            }
        }
    });
}

/// Allocation probes being detached.
#[derive(Debug)]
pub struct Detaching {
    /// None when no thread could be started: then they were dropped in turn already.
    thread: Option<std::thread::JoinHandle<()>>,
    first_gone: Arc<OnceLock<Instant>>,
}

impl Detaching {
    /// Waits until every probe is gone; returns when the first one was.
    pub fn join(self) -> Option<Instant> {
        if let Some(thread) = self.thread {
            let _ = thread.join();
        }
        self.first_gone.get().copied()
    }

    /// When the first probe was gone, waiting for it at most `limit`.
    pub fn first_gone(&self, limit: Duration) -> Option<Instant> {
        let until = Instant::now() + limit;
        loop {
            if let Some(at) = self.first_gone.get() {
                return Some(*at);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
