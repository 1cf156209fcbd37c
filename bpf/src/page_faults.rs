//! Loads `page_faults.bpf.c` and reads it at scrape time: per-cgroup fault
//! counts from its LRU map, and the ring buffer of sampled faulting addresses,
//! which `regions` attributes to heap, anonymous mappings, files and stacks.
//!
//! Sampled mode attaches to the `page-faults` software perf event of every
//! online CPU with a period; every-fault mode to `exceptions:page_fault_user`.

use crate::cgroup_ids;
use crate::regions::{self, Place};
use crate::shared::{FAULT_RING_FULL, FaultSample};
use aya::Ebpf;
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::{PerfEvent, TracePoint};
use memleak_signals::page_faults::{BY_REGION, DROPPED, ESTIMATED, TRACKED};
use memleak_signals::{Collection, Collector, FsRoots, Problem, ProblemKind, ScrapeContext};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const SAMPLED_PROGRAM: &str = "page_fault_sample";
const EVERY_FAULT_PROGRAM: &str = "page_fault_user";
const COUNTS_MAP: &str = "page_fault_samples";
const RING_MAP: &str = "fault_addresses";
const COUNTERS_MAP: &str = "page_fault_counters";
/// Most samples taken from the ring per scrape (the ring holds 32,768).
const MAX_DRAIN: usize = 65_536;
/// Most cgroups whose region counts are kept; samples of others are dropped (and counted).
const MAX_REGION_CGROUPS: usize = 4096;

/// How faults reach the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// One run per `period` faults, on the `page-faults` perf event (always-on cost).
    Sampled,
    /// One run per user fault, on the `exceptions:page_fault_user` tracepoint
    /// (exact, costly: for short windows); one in `period` runs is attributed to a region.
    EveryFault,
}

struct Loaded {
    bpf: Ebpf,
    ring: RingBuf<MapData>,
}

/// Settings of the page-fault collector.
#[derive(Debug, Clone, Copy)]
pub struct FaultConfig {
    pub mode: FaultMode,
    /// Sampled mode: one sample every `period` faults (1000 costs ~2 % on a pure
    /// fault loop here); every-fault mode: one fault in `period` is attributed to a region.
    pub period: u64,
    /// Most cgroups exported by name (the busiest); the rest are summed as `__other__`.
    pub max_cgroups: usize,
}

/// The eBPF page-fault collector (`--collector.page_faults`, opt-in).
pub struct PageFaultSampler {
    procfs: PathBuf,
    cgroupfs: PathBuf,
    mode: FaultMode,
    period: u64,
    max_cgroups: usize,
    loaded: Option<Loaded>,
    /// Cumulative faults per cgroup path and place, since the exporter started.
    regions: BTreeMap<(String, Place), u64>,
    dropped_over_cap: u64,
}

impl std::fmt::Debug for PageFaultSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageFaultSampler")
            .field("mode", &self.mode)
            .field("period", &self.period)
            .field("loaded", &self.loaded.is_some())
            .finish()
    }
}

impl PageFaultSampler {
    pub fn new(roots: &FsRoots, config: FaultConfig) -> Self {
        PageFaultSampler {
            procfs: roots.procfs.clone(),
            cgroupfs: roots.cgroupfs.clone(),
            mode: config.mode,
            period: config.period.clamp(1, u64::from(u32::MAX)),
            max_cgroups: config.max_cgroups.max(1),
            loaded: None,
            regions: BTreeMap::new(),
            dropped_over_cap: 0,
        }
    }

    fn load(&self) -> Result<Loaded, Problem> {
        let object = &crate::PAGE_FAULTS;
        let region_every = match self.mode {
            FaultMode::Sampled => 1,
            FaultMode::EveryFault => self.period,
        };
        let mut bpf = object.load(&[("region_every", region_every)])?;
        match self.mode {
            FaultMode::Sampled => {
                let program: &mut PerfEvent = object.program_mut(&mut bpf, SAMPLED_PROGRAM)?;
                program.load().map_err(|e| object.denied("the kernel refused the program", &e))?;
                let cpus = aya::util::online_cpus()
                    .map_err(|(what, e)| object.denied(&format!("cannot list online CPUs ({what})"), &e))?;
                for cpu in cpus {
                    program
                        .attach(
                            PerfEventConfig::Software(SoftwareEvent::PageFaults),
                            PerfEventScope::AllProcessesOneCpu { cpu },
                            SamplePolicy::Period(self.period),
                            false,
                        )
                        .map_err(|e| object.denied(&format!("cannot attach to page-faults on CPU {cpu}"), &e))?;
                }
                tracing::info!(period = self.period, "sampling page faults per cgroup and region with eBPF");
            }
            FaultMode::EveryFault => {
                crate::loader::ensure_tracefs()?;
                let program: &mut TracePoint = object.program_mut(&mut bpf, EVERY_FAULT_PROGRAM)?;
                program.load().map_err(|e| object.denied("the kernel refused the program", &e))?;
                program
                    .attach("exceptions", "page_fault_user")
                    .map_err(|e| object.denied("cannot attach to exceptions:page_fault_user", &e))?;
                tracing::warn!(
                    region_period = self.period,
                    "counting every user page fault with eBPF: this costs 10 % or more on fault-heavy loads; use it for short windows"
                );
            }
        }
        let ring_map = bpf.take_map(RING_MAP).ok_or_else(|| missing(RING_MAP))?;
        let ring = RingBuf::try_from(ring_map).map_err(|e| object.denied("cannot map the ring buffer", &e))?;
        Ok(Loaded { bpf, ring })
    }

    /// Adds a batch of classified samples to the cumulative region counts.
    fn add_regions(&mut self, tally: regions::RegionTally, paths: &HashMap<u64, String>) {
        for ((id, place), faults) in tally {
            let path = cgroup_ids::name(paths, id);
            let key = (path.to_owned(), place);
            if let Some(total) = self.regions.get_mut(&key) {
                *total += faults;
            } else if self.known_cgroups() < MAX_REGION_CGROUPS || self.regions.keys().any(|(p, _)| p == path) {
                self.regions.insert(key, faults);
            } else {
                self.dropped_over_cap += faults / self.period.max(1);
            }
        }
    }

    fn known_cgroups(&self) -> usize {
        let mut count = 0;
        let mut last: Option<&str> = None;
        for (path, _) in self.regions.keys() {
            if last != Some(path.as_str()) {
                count += 1;
                last = Some(path);
            }
        }
        count
    }
}

fn missing(map: &str) -> Problem {
    Problem::new(ProblemKind::Unsupported, Path::new(map), "map missing from the object", "rebuild")
}

fn unreadable(map: &str, err: impl std::fmt::Display) -> Problem {
    Problem::new(ProblemKind::Read, Path::new(map), format!("cannot read the map: {err}"), "")
}

/// Takes up to `MAX_DRAIN` samples out of the ring.
fn drain(ring: &mut RingBuf<MapData>) -> Vec<FaultSample> {
    let mut samples = Vec::new();
    while samples.len() < MAX_DRAIN {
        let Some(item) = ring.next() else { break };
        if item.len() >= size_of::<FaultSample>() {
            // SAFETY: the record holds a `struct fault_sample` (asserted the same
            // size as FaultSample); it may be unaligned in the ring.
            samples.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<FaultSample>()) });
        }
    }
    samples
}

impl Collector for PageFaultSampler {
    fn id(&self) -> &'static str {
        memleak_signals::page_faults::SIGNAL.id
    }

    fn collect(&mut self, _ctx: &ScrapeContext, out: &mut Collection) {
        if self.loaded.is_none() {
            match self.load() {
                Ok(loaded) => self.loaded = Some(loaded),
                Err(problem) => return out.problem(problem),
            }
        }
        let Some(loaded) = self.loaded.as_mut() else { return };
        let samples = drain(&mut loaded.ring);
        let counts: Vec<(u64, u64)> = match loaded.bpf.map(COUNTS_MAP).map(BpfHashMap::<_, u64, u64>::try_from) {
            Some(Ok(map)) => map.iter().flatten().collect(),
            Some(Err(e)) => return out.problem(unreadable(COUNTS_MAP, e)),
            None => return out.problem(missing(COUNTS_MAP)),
        };
        let ring_full: u64 = match loaded.bpf.map(COUNTERS_MAP).map(PerCpuArray::<_, u64>::try_from) {
            Some(Ok(map)) => map.get(&FAULT_RING_FULL, 0).map(|per_cpu| per_cpu.iter().sum()).unwrap_or(0),
            Some(Err(e)) => return out.problem(unreadable(COUNTERS_MAP, e)),
            None => return out.problem(missing(COUNTERS_MAP)),
        };

        // The cgroup tree is walked only when there is something to name.
        let paths =
            if counts.is_empty() && samples.is_empty() { HashMap::new() } else { cgroup_ids::paths(&self.cgroupfs) };
        if !samples.is_empty() {
            let tally = regions::classify(&samples, &self.procfs);
            self.add_regions(tally, &paths);
        }

        let (weight, period_label) = match self.mode {
            FaultMode::Sampled => (self.period, self.period.to_string()),
            FaultMode::EveryFault => (1, "1".to_owned()),
        };
        let mut by_path: BTreeMap<&str, u64> = BTreeMap::new();
        for (id, runs) in &counts {
            *by_path.entry(cgroup_ids::name(&paths, *id)).or_default() += runs;
        }
        let names = cgroup_ids::keep_top(&by_path, self.max_cgroups);
        let mut exported: BTreeMap<&str, u64> = BTreeMap::new();
        for (path, runs) in &by_path {
            *exported.entry(names.get(*path).map_or(cgroup_ids::OTHER, String::as_str)).or_default() += runs;
        }
        for (path, runs) in exported {
            out.metrics.push(&ESTIMATED, &[path, &period_label], (runs * weight) as f64);
        }

        let mut region_weights: BTreeMap<&str, u64> = BTreeMap::new();
        for ((path, _), faults) in &self.regions {
            *region_weights.entry(path.as_str()).or_default() += faults;
        }
        let names = cgroup_ids::keep_top(&region_weights, self.max_cgroups);
        let mut regions: BTreeMap<(&str, Place), u64> = BTreeMap::new();
        for ((path, place), faults) in &self.regions {
            let name = names.get(path).map_or(cgroup_ids::OTHER, String::as_str);
            *regions.entry((name, *place)).or_default() += faults;
        }
        let region_period = self.period.to_string();
        for ((path, place), faults) in regions {
            out.metrics.push(&BY_REGION, &[path, place.as_str(), &region_period], faults as f64);
        }
        out.metrics.push(&TRACKED, &[], counts.len() as f64);
        out.metrics.push(&DROPPED, &["ring_full"], ring_full as f64);
        out.metrics.push(&DROPPED, &["cgroup_cap"], self.dropped_over_cap as f64);
    }
}
