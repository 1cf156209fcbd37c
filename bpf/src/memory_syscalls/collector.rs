//! The memory_syscalls collector itself: it loads `memory_syscalls.bpf.c`
//! (brk/mmap/munmap/mremap entry and exit tracepoints, process exit and exec
//! for cleanup) and reads its per-cgroup totals at scrape time.

use super::{
    BRK_MOVED, CALLS, Config, DROPPED, FAILED, MAPPED, MMAP_SIZE, MREMAP_RESIZED, Options, SPEC, TRACKED_CGROUPS,
    TRACKED_PROCESSES, UNMAPPED, UNPAIRED,
};
use crate::cgroup_counters::{self, CgroupCounters};
use crate::cgroup_ids::CgroupNames;
use crate::loader::{per_cpu_sum, typed_map};
use crate::shared::{
    MemorySyscallStats, SYSCALL_BREAK_DELETES, SYSCALL_BREAK_INSERTS, SYSCALL_BREAKS_FULL, SYSCALL_COUNTERS,
    SYSCALL_NAMES, SYSCALL_STATS_INSERTS, SYSCALL_UNPAIRED_EXITS,
};
use aya::Ebpf;
use aya::maps::{HashMap as BpfHashMap, PerCpuArray};
use aya::programs::TracePoint;
use memleak_signals::{
    Collection, Collector, CollectorSpec, Configurable, FsRoots, HistogramValue, Problem, ScrapeContext,
};

/// (program, tracepoint category, tracepoint name)
const PROGRAMS: [(&str, &str, &str); 10] = [
    ("enter_mmap", "syscalls", "sys_enter_mmap"),
    ("exit_mmap", "syscalls", "sys_exit_mmap"),
    ("enter_munmap", "syscalls", "sys_enter_munmap"),
    ("exit_munmap", "syscalls", "sys_exit_munmap"),
    ("enter_brk", "syscalls", "sys_enter_brk"),
    ("exit_brk", "syscalls", "sys_exit_brk"),
    ("enter_mremap", "syscalls", "sys_enter_mremap"),
    ("exit_mremap", "syscalls", "sys_exit_mremap"),
    ("process_exit", "sched", "sched_process_exit"),
    ("process_exec", "sched", "sched_process_exec"),
];
const STATS_MAP: &str = "memory_syscall_stats";
const COUNTERS_MAP: &str = "memory_syscall_counters";

/// The syscall tracepoint collector (`--collector.memory_syscalls`, opt-in).
pub struct MemorySyscallsCollector {
    names: CgroupNames,
    /// Most cgroups exported by name (the busiest); the rest are summed as `__other__`.
    max_cgroups: usize,
    loaded: Option<Ebpf>,
    /// Every counter of `MemorySyscallStats` per cgroup (the object is loaded once: one generation).
    counters: CgroupCounters<(), SYSCALL_COUNTERS>,
    /// Highest eviction estimate so far (kept so the counter never goes back).
    stats_evicted: u64,
}

impl std::fmt::Debug for MemorySyscallsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySyscallsCollector").field("loaded", &self.loaded.is_some()).finish()
    }
}

impl MemorySyscallsCollector {
    pub fn new(roots: &FsRoots, config: Config) -> Self {
        MemorySyscallsCollector {
            names: CgroupNames::new(&roots.cgroupfs),
            max_cgroups: config.max_cgroups,
            loaded: None,
            counters: cgroup_counters::cgroup_counters(config.max_cgroups),
            stats_evicted: 0,
        }
    }

    fn load() -> Result<Ebpf, Problem> {
        let object = &crate::MEMORY_SYSCALLS;
        let mut bpf = object.load(&[])?;
        crate::loader::ensure_tracefs()?;
        for (name, category, tracepoint) in PROGRAMS {
            let program: &mut TracePoint = object.program_mut(&mut bpf, name)?;
            program.load().map_err(|e| object.denied(&format!("the kernel refused {name}"), &e))?;
            program
                .attach(category, tracepoint)
                .map_err(|e| object.denied(&format!("cannot attach to {category}:{tracepoint}"), &e))?;
        }
        tracing::info!("tracing brk/mmap/munmap/mremap per cgroup with eBPF (every syscall takes the slow path)");
        Ok(bpf)
    }
}

fn emit(out: &mut Collection, cgroup: &str, stats: &MemorySyscallStats) {
    for (i, syscall) in SYSCALL_NAMES.iter().enumerate() {
        out.metrics.push(&CALLS, &[cgroup, syscall], stats.calls[i] as f64);
        out.metrics.push(&FAILED, &[cgroup, syscall], stats.failed[i] as f64);
    }
    out.metrics.push(&MAPPED, &[cgroup, "anon"], stats.mapped_anon as f64);
    out.metrics.push(&MAPPED, &[cgroup, "file"], stats.mapped_file as f64);
    out.metrics.push(&UNMAPPED, &[cgroup], stats.unmapped as f64);
    out.metrics.push(&BRK_MOVED, &[cgroup, "grown"], stats.brk_grown as f64);
    out.metrics.push(&BRK_MOVED, &[cgroup, "shrunk"], stats.brk_shrunk as f64);
    out.metrics.push(&MREMAP_RESIZED, &[cgroup, "grown"], stats.mremap_grown as f64);
    out.metrics.push(&MREMAP_RESIZED, &[cgroup, "shrunk"], stats.mremap_shrunk as f64);
    let bounds = MemorySyscallStats::size_bounds();
    // Every successful mmap's length is in mapped bytes (anon + file): that is the sum.
    let sum = (stats.mapped_anon + stats.mapped_file) as f64;
    let histogram = HistogramValue { bounds: &bounds, counts: &stats.mmap_sizes, sum };
    out.metrics.push_histogram(&MMAP_SIZE, &[cgroup], &histogram);
}

impl Configurable for MemorySyscallsCollector {
    const SPEC: &'static CollectorSpec = &SPEC;
    type Options = Options;

    fn build(roots: &FsRoots, config: Config) -> std::io::Result<Self> {
        Ok(MemorySyscallsCollector::new(roots, config))
    }
}

impl Collector for MemorySyscallsCollector {
    fn id(&self) -> &'static str {
        SPEC.id
    }

    fn collect(&mut self, _ctx: &ScrapeContext, out: &mut Collection) {
        if self.loaded.is_none() {
            match Self::load() {
                Ok(bpf) => self.loaded = Some(bpf),
                Err(problem) => return out.problem(problem),
            }
        }
        let Some(bpf) = self.loaded.as_ref() else { return };
        // Counters first: a cgroup inserted after this read only lowers the eviction estimate.
        let counters = match typed_map::<PerCpuArray<_, u64>>(bpf, COUNTERS_MAP) {
            Ok(map) => map,
            Err(problem) => return out.problem(problem),
        };
        let counter = |slot| per_cpu_sum(&counters, slot);
        let (stats_inserts, breaks_full, unpaired) =
            (counter(SYSCALL_STATS_INSERTS), counter(SYSCALL_BREAKS_FULL), counter(SYSCALL_UNPAIRED_EXITS));
        // Counted, not listed: walking a map of 65,536 processes would cost a syscall each.
        let processes = counter(SYSCALL_BREAK_INSERTS).saturating_sub(counter(SYSCALL_BREAK_DELETES));
        let stats: Vec<(u64, MemorySyscallStats)> =
            match typed_map::<BpfHashMap<_, u64, MemorySyscallStats>>(bpf, STATS_MAP) {
                Ok(map) => map.iter().flatten().collect(),
                Err(problem) => return out.problem(problem),
            };

        let values = stats.iter().map(|(id, s)| (*id, (), s.to_counters()));
        // Ranked by calls (the first four counters).
        let calls = |c: &[u64; SYSCALL_COUNTERS]| c[..4].iter().sum();
        cgroup_counters::count(&mut self.counters, &mut self.names, 0, values, self.max_cgroups, calls);
        for ((path, ()), counters) in self.counters.iter() {
            emit(out, path, &MemorySyscallStats::from_counters(counters));
        }
        out.metrics.push(&TRACKED_CGROUPS, &[], stats.len() as f64);
        out.metrics.push(&TRACKED_PROCESSES, &[], processes as f64);
        // The stats LRU evicts silently and nothing else deletes from it:
        // cgroups inserted and no longer there were evicted.
        self.stats_evicted = self.stats_evicted.max(stats_inserts.saturating_sub(stats.len() as u64));
        out.metrics.push(&DROPPED, &["stats"], self.stats_evicted as f64);
        out.metrics.push(&DROPPED, &["breaks"], breaks_full as f64);
        out.metrics.push(&UNPAIRED, &[], unpaired as f64);
    }
}
