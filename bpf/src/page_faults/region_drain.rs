//! The drain of the ring buffer of sampled faulting addresses: it empties it
//! every `DRAIN_EVERY` on a thread of its own, and at each scrape, classifying the samples (and
//! naming their user stacks' frames) while their processes most likely still
//! live. Draining often keeps the 4 MiB ring from filling on busy hosts
//! whatever the scrape interval, and short-lived processes from all landing in
//! `exited`.

use super::fault_stacks::{self, FaultProfile, Faulter};
use super::regions::{self, Place};
use crate::shared::FaultSample;
use aya::maps::{MapData, RingBuf};
use memleak_artifacts::symbolize::Symbolizer;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

const DRAIN_EVERY: Duration = Duration::from_secs(2);
/// Most samples taken from the ring per drain (the ring holds about 14,000).
const MAX_DRAIN: usize = 65_536;
/// Most cgroups whose region counts are kept; samples of others are dropped (and counted).
pub const MAX_CGROUPS: usize = 4096;

/// Cumulative region counts per cgroup id, since the collector started.
#[derive(Debug, Default)]
pub struct RegionCounts {
    pub faults: BTreeMap<(u64, Place), u64>,
    /// The cgroup ids in `faults`, for the cap.
    cgroups: HashSet<u64>,
    /// Faults (sample weights) not kept because `MAX_CGROUPS` cgroups already were.
    pub dropped_over_cap: u64,
}

impl RegionCounts {
    fn add(&mut self, tally: regions::RegionTally) {
        for ((id, place), faults) in tally {
            if self.cgroups.contains(&id) || self.cgroups.len() < MAX_CGROUPS {
                self.cgroups.insert(id);
                *self.faults.entry((id, place)).or_default() += faults;
            } else {
                self.dropped_over_cap += faults;
            }
        }
    }

    /// Forgets the cgroups `gone` says no longer exist.
    pub fn forget(&mut self, gone: impl Fn(u64) -> bool) {
        self.faults.retain(|(id, _), _| !gone(*id));
        self.cgroups.retain(|id| !gone(*id));
    }
}

struct Shared {
    ring: RingBuf<MapData>,
    counts: RegionCounts,
    /// The profile the samples' user stacks are added to.
    profile: FaultProfile,
    symbolizer: Symbolizer,
}

/// The ring, its counts and the thread that drains it; the thread ends when this is dropped.
pub struct RegionDrain {
    shared: Arc<Mutex<Shared>>,
    _stop: Sender<()>,
}

impl std::fmt::Debug for RegionDrain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionDrain").finish_non_exhaustive()
    }
}

impl RegionDrain {
    pub fn start(ring: RingBuf<MapData>, profile: FaultProfile, procfs: PathBuf) -> std::io::Result<Self> {
        let counts = RegionCounts::default();
        let shared = Arc::new(Mutex::new(Shared { ring, counts, profile, symbolizer: Symbolizer::default() }));
        let (stop, stopped) = mpsc::channel::<()>();
        let worker = Arc::clone(&shared);
        std::thread::Builder::new().name("fault-regions".into()).spawn(move || {
            // Ends when the sender is dropped (Disconnected).
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(DRAIN_EVERY) {
                drain_into(&worker, &procfs);
            }
        })?;
        Ok(RegionDrain { shared, _stop: stop })
    }

    /// Drains now, then lets `read` see (and prune) the counts.
    pub fn with_counts<T>(&self, procfs: &std::path::Path, read: impl FnOnce(&mut RegionCounts) -> T) -> T {
        drain_into(&self.shared, procfs);
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        read(&mut shared.counts)
    }
}

fn drain_into(shared: &Mutex<Shared>, procfs: &std::path::Path) {
    let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
    let samples = drain(&mut shared.ring);
    if samples.is_empty() {
        return;
    }
    let with_stack: HashSet<u32> = samples.iter().filter(|s| !s.stack().is_empty()).map(|s| s.tgid).collect();
    let classified = regions::classify(&samples, procfs, |tgid| with_stack.contains(&tgid));
    shared.counts.add(regions::tally(&samples, &classified.places));
    let shared = &mut *shared;
    add_stacks(&shared.profile, &samples, &classified, procfs, &mut shared.symbolizer);
}

/// Adds the samples' user stacks to the profile, frames named while the processes live.
fn add_stacks(
    profile: &FaultProfile,
    samples: &[FaultSample],
    classified: &regions::Classified,
    procfs: &std::path::Path,
    symbolizer: &mut Symbolizer,
) {
    symbolizer.forget_paths();
    if profile.is_full() {
        profile.forget_exited(|pid| procfs.join(pid.to_string()).exists());
    }
    let mut comms: HashMap<u32, Option<String>> = HashMap::new();
    for (sample, place) in samples.iter().zip(&classified.places) {
        let faults = u64::from(sample.weight);
        if sample.stack().is_empty() {
            profile.add_without_stack(faults);
            continue;
        }
        let mappings = classified.mappings.get(&sample.tgid).map_or(&[][..], Vec::as_slice);
        // The process's binaries as it sees them (in a container, too): under its root.
        let root = procfs.join(sample.tgid.to_string()).join("root");
        let frames = fault_stacks::frames(sample.stack().iter().copied(), mappings, &root, symbolizer);
        let comm = comms.entry(sample.tgid).or_insert_with(|| comm(procfs, sample.tgid)).clone();
        profile.add(frames, *place, sample.cgroup, Faulter { pid: sample.tgid, comm }, faults);
    }
}

/// A process's command name (at most 16 bytes in the kernel), or None once it has exited.
fn comm(procfs: &std::path::Path, tgid: u32) -> Option<String> {
    let mut bytes = Vec::with_capacity(32);
    let file = std::fs::File::open(procfs.join(tgid.to_string()).join("comm")).ok()?;
    std::io::Read::read_to_end(&mut std::io::Read::take(file, 64), &mut bytes).ok()?;
    let comm = String::from_utf8_lossy(&bytes).trim_end().to_owned();
    Some(comm).filter(|c| !c.is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;
    use memleak_signals::process::maps::Region;

    #[test]
    fn counts_add_up_and_new_cgroups_past_the_cap_are_dropped() {
        let mut counts = RegionCounts::default();
        let heap = Place::Region(Region::Heap);
        for id in 0..MAX_CGROUPS as u64 {
            counts.add(regions::RegionTally::from([((id, heap), 1000)]));
        }
        counts.add(regions::RegionTally::from([((0, heap), 500), ((0, Place::Exited), 7)]));
        counts.add(regions::RegionTally::from([((u64::MAX, heap), 1000)]));
        assert_eq!(counts.faults[&(0, heap)], 1500);
        assert_eq!(counts.faults[&(0, Place::Exited)], 7, "a known cgroup gets new places past the cap");
        assert_eq!((counts.faults.get(&(u64::MAX, heap)), counts.dropped_over_cap), (None, 1000));
        counts.forget(|id| id != 0);
        assert_eq!(counts.cgroups.len(), 1);
        assert_eq!(counts.faults.len(), 2);
    }
}
