//! The page_faults collector itself: it loads `page_faults.bpf.c` and reads it
//! at scrape time: per-cgroup fault counts from its LRU map, and the region
//! counts and stack profile that `region_drain` builds from the ring buffer of
//! sampled faulting addresses.
//!
//! Sampled mode attaches to the `page-faults` software perf event of every
//! online CPU with a period; every-fault mode to `exceptions:page_fault_user`.

use super::fault_stacks::FaultProfile;
use super::region_drain::RegionDrain;
use super::regions::Place;
use super::{BY_REGION, Config, DROPPED, ESTIMATED, FaultMode, Options, PROFILE_DROPPED, SPEC, TRACKED};
use crate::cgroup_counters::{self, CgroupCounters};
use crate::cgroup_ids::CgroupNames;
use crate::loader::{per_cpu_sum, typed_map};
use crate::shared::FAULT_RING_FULL;
use aya::Ebpf;
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::{PerfEvent, TracePoint};
use memleak_signals::{
    Collection, Collector, CollectorSpec, Configurable, FsRoots, Problem, ProblemKind, ScrapeContext, ServedProfile,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SAMPLED_PROGRAM: &str = "page_fault_sample";
const EVERY_FAULT_PROGRAM: &str = "page_fault_user";
const COUNTS_MAP: &str = "page_fault_samples";
const RING_MAP: &str = "fault_addresses";
const COUNTERS_MAP: &str = "page_fault_counters";

struct Loaded {
    bpf: Ebpf,
    regions: RegionDrain,
    at: Instant,
}

/// The eBPF page-fault collector (`--collector.page_faults`, opt-in).
pub struct PageFaultsCollector {
    procfs: PathBuf,
    cgroupfs: PathBuf,
    mode: FaultMode,
    period: u64,
    max_cgroups: usize,
    every_fault_window: Option<Duration>,
    loaded: Option<Loaded>,
    /// Loads so far: a reloaded object's maps start from zero, as new sources.
    generation: u64,
    names: CgroupNames,
    /// Estimated faults per cgroup, keyed by the period they were counted with.
    estimates: CgroupCounters<u64, 1>,
    by_region: CgroupCounters<Place, 1>,
    profile: FaultProfile,
}

impl std::fmt::Debug for PageFaultsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageFaultsCollector")
            .field("mode", &self.mode)
            .field("period", &self.period)
            .field("loaded", &self.loaded.is_some())
            .finish()
    }
}

impl PageFaultsCollector {
    pub fn new(roots: &FsRoots, config: Config) -> Self {
        PageFaultsCollector {
            procfs: roots.procfs.clone(),
            cgroupfs: roots.cgroupfs.clone(),
            mode: config.mode,
            period: config.period.clamp(1, u64::from(u32::MAX)),
            max_cgroups: config.max_cgroups.max(1),
            every_fault_window: config.every_fault_window,
            loaded: None,
            generation: 0,
            names: CgroupNames::new(&roots.cgroupfs),
            estimates: cgroup_counters::cgroup_counters(config.max_cgroups.max(1)),
            by_region: cgroup_counters::cgroup_counters(config.max_cgroups.max(1)),
            profile: FaultProfile::default(),
        }
    }

    /// The profile of faulting user stacks this collector fills (for `/debug/pprof/page_faults`).
    pub fn profile(&self) -> FaultProfile {
        self.profile.clone()
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
        let ring_map = bpf.take_map(RING_MAP).ok_or_else(|| {
            Problem::new(ProblemKind::Unsupported, RING_MAP, "map missing from the object", "rebuild")
        })?;
        let ring: RingBuf<MapData> =
            RingBuf::try_from(ring_map).map_err(|e| object.denied("cannot map the ring buffer", &e))?;
        let regions = RegionDrain::start(ring, self.profile.clone(), self.procfs.clone()).map_err(|e| {
            Problem::new(ProblemKind::Unsupported, RING_MAP, format!("cannot start its thread: {e}"), "")
        })?;
        Ok(Loaded { bpf, regions, at: Instant::now() })
    }
}

impl Configurable for PageFaultsCollector {
    const SPEC: &'static CollectorSpec = &SPEC;
    type Options = Options;

    fn build(roots: &FsRoots, config: Config) -> std::io::Result<Self> {
        Ok(PageFaultsCollector::new(roots, config))
    }
}

/// The fault profile as `/debug/pprof/page_faults` serves it: cgroups named from the v2 tree.
struct ServedFaults {
    profile: FaultProfile,
    cgroupfs: PathBuf,
}

impl ServedProfile for ServedFaults {
    fn pprof(&self) -> Vec<u8> {
        self.profile.pprof(&self.cgroupfs)
    }
}

impl Collector for PageFaultsCollector {
    fn id(&self) -> &'static str {
        SPEC.id
    }

    fn served_profile(&self) -> Option<Arc<dyn ServedProfile>> {
        Some(Arc::new(ServedFaults { profile: self.profile.clone(), cgroupfs: self.cgroupfs.clone() }))
    }

    fn collect(&mut self, _ctx: &ScrapeContext, out: &mut Collection) {
        if self.mode == FaultMode::EveryFault
            && let (Some(loaded), Some(window)) = (&self.loaded, self.every_fault_window)
            && loaded.at.elapsed() >= window
        {
            // The window is over: detach (dropping the object) and sample from now on.
            tracing::info!(?window, period = self.period, "every-fault window over; sampling page faults again");
            self.loaded = None;
            self.mode = FaultMode::Sampled;
        }
        if self.loaded.is_none() {
            match self.load() {
                Ok(loaded) => {
                    self.loaded = Some(loaded);
                    self.generation += 1;
                }
                Err(problem) => return out.problem(problem),
            }
        }
        let Some(loaded) = self.loaded.as_ref() else { return };
        let counts: Vec<(u64, u64)> = match typed_map::<BpfHashMap<_, u64, u64>>(&loaded.bpf, COUNTS_MAP) {
            Ok(map) => map.iter().flatten().collect(),
            Err(problem) => return out.problem(problem),
        };
        let ring_full = match typed_map::<PerCpuArray<_, u64>>(&loaded.bpf, COUNTERS_MAP) {
            Ok(map) => per_cpu_sum(&map, FAULT_RING_FULL),
            Err(problem) => return out.problem(problem),
        };
        let names = &self.names;
        let (regions, dropped_over_cap) = loaded.regions.with_counts(&self.procfs, |region_counts| {
            // Cgroups removed from the host are forgotten.
            region_counts.forget(|id| names.is_gone(id));
            (region_counts.faults.clone(), region_counts.dropped_over_cap)
        });

        let period = match self.mode {
            FaultMode::Sampled => self.period,
            FaultMode::EveryFault => 1,
        };
        let estimates = counts.iter().map(|(id, runs)| (*id, period, [runs.saturating_mul(period)]));
        let (generation, max) = (self.generation, self.max_cgroups);
        cgroup_counters::count(&mut self.estimates, &mut self.names, generation, estimates, max, |v| v[0]);
        for ((path, period), [faults]) in self.estimates.iter() {
            out.metrics.push(&ESTIMATED, &[path, &period.to_string()], *faults as f64);
        }
        let region_period = self.period.to_string();
        let by_region = regions.iter().map(|((id, place), faults)| (*id, *place, [*faults]));
        cgroup_counters::count(&mut self.by_region, &mut self.names, generation, by_region, max, |v| v[0]);
        for ((path, place), [faults]) in self.by_region.iter() {
            out.metrics.push(&BY_REGION, &[path, place.as_str(), &region_period], *faults as f64);
        }
        out.metrics.push(&TRACKED, &[], counts.len() as f64);
        // Every region sample stands for `period` faults, in both modes.
        out.metrics.push(&DROPPED, &["ring_full"], (ring_full * self.period) as f64);
        out.metrics.push(&DROPPED, &["cgroup_cap"], dropped_over_cap as f64);
        let (over_cap, no_stack) = self.profile.dropped();
        out.metrics.push(&PROFILE_DROPPED, &["stack_cap"], over_cap as f64);
        out.metrics.push(&PROFILE_DROPPED, &["no_stack"], no_stack as f64);
    }
}
