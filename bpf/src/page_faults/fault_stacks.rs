//! A profile of where page faults come from: the user stacks of region
//! samples (kernel frame-pointer walks, so deep only in programs built with
//! frame pointers), named at drain time, while the process lives: each address
//! becomes `module+0xoffset` from the process's maps, then a function from the
//! module's ELF symbols, read through `/proc/PID/root` so that a process in
//! another container (or the exporter in its own) reads the right binary.
//! Served at `/debug/pprof/page_faults` (and pushed over OTLP). Cumulative
//! since the collector started; bounded at `MAX_STACKS` distinct (stack,
//! region, cgroup, process) entries, those of exited processes forgotten
//! when the table is full.

use super::regions::Place;
use memleak_artifacts::heapprof;
use memleak_artifacts::model::PAGE_FAULTS;
use memleak_artifacts::symbolize::Symbolizer;
use memleak_artifacts::{Frame, Profile, Sample};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

/// Most distinct (stack, region, cgroup, process) entries kept; faults of new ones past it are dropped and counted.
pub const MAX_STACKS: usize = 4096;

/// The process that took a fault: its pid, and its command name when the drain could read it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Faulter {
    pub pid: u32,
    pub comm: Option<String>,
}

#[derive(Debug, Default)]
struct Counts {
    faults: HashMap<(Vec<Frame>, Place, u64, Faulter), u64>,
    /// Faults of stacks past `MAX_STACKS`.
    over_cap: u64,
    /// Faults of samples that came without a stack (a taken stack-map bucket, an unreadable stack).
    no_stack: u64,
}

/// The fault profile, shared between the collector that fills it and the
/// HTTP handler that serves it.
#[derive(Debug, Clone, Default)]
pub struct FaultProfile(Arc<Mutex<Counts>>);

impl FaultProfile {
    /// Adds `faults` for a stack (innermost frame first) of process `faulter` that faulted in `place` of cgroup `cgroup`.
    pub fn add(&self, stack: Vec<Frame>, place: Place, cgroup: u64, faulter: Faulter, faults: u64) {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let full = counts.faults.len() >= MAX_STACKS;
        match counts.faults.entry((stack, place, cgroup, faulter)) {
            Entry::Occupied(total) => *total.into_mut() += faults,
            Entry::Vacant(slot) if !full => {
                slot.insert(faults);
            }
            Entry::Vacant(_) => counts.over_cap += faults,
        }
    }

    /// Whether the table holds `MAX_STACKS` entries, past which new ones are dropped.
    pub fn is_full(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).faults.len() >= MAX_STACKS
    }

    /// Forgets the entries of processes that `alive` says have exited: done when the table is
    /// full, so that short-lived processes (a build's compilers) do not keep the stacks of the
    /// processes that live on out of it for good. Returns how many entries went.
    pub fn forget_exited(&self, alive: impl Fn(u32) -> bool) -> usize {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut checked: HashMap<u32, bool> = HashMap::new();
        let before = counts.faults.len();
        counts.faults.retain(|(_, _, _, faulter), _| *checked.entry(faulter.pid).or_insert_with(|| alive(faulter.pid)));
        before - counts.faults.len()
    }

    /// Counts `faults` of a sample that had no stack.
    pub fn add_without_stack(&self, faults: u64) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).no_stack += faults;
    }

    /// Faults left out of the profile: (past `MAX_STACKS`, without a stack).
    pub fn dropped(&self) -> (u64, u64) {
        let counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (counts.over_cap, counts.no_stack)
    }

    /// The profile so far, labelled with region, cgroup path, pid and comm.
    pub fn profile(&self, cgroup_paths: &HashMap<u64, String>) -> Profile {
        let mut profile = Profile::new("page_faults", vec![PAGE_FAULTS]);
        {
            let counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            for ((stack, place, cgroup, faulter), faults) in &counts.faults {
                let mut labels = vec![
                    ("region".to_owned(), place.as_str().to_owned()),
                    ("cgroup".to_owned(), crate::cgroup_ids::name(cgroup_paths, *cgroup).to_owned()),
                    ("pid".to_owned(), faulter.pid.to_string()),
                ];
                labels.extend(faulter.comm.iter().map(|comm| ("comm".to_owned(), comm.clone())));
                profile.samples.push(Sample {
                    stack: stack.clone(),
                    values: vec![i64::try_from(*faults).unwrap_or(i64::MAX)],
                    labels,
                });
            }
        }
        profile
    }
}

impl FaultProfile {
    /// The profile, cgroups named from the v2 tree under `cgroupfs`.
    pub fn profile_for(&self, cgroupfs: &std::path::Path) -> Profile {
        let (paths, _) = crate::cgroup_ids::walk(cgroupfs);
        self.profile(&paths)
    }

    /// The profile as gzipped pprof.
    pub fn pprof(&self, cgroupfs: &std::path::Path) -> Vec<u8> {
        memleak_artifacts::encode::pprof::encode(&self.profile_for(cgroupfs), "memleak-exporter page_faults")
    }
}

/// A user stack of process `tgid` as frames: a function where the module's
/// symbols name it, `module+0xoffset` where only a file-backed mapping holds
/// the address, the bare address otherwise.
pub fn frames(
    ips: impl Iterator<Item = u64>,
    mappings: &[heapprof::Mapping],
    root: &Path,
    symbolizer: &mut Symbolizer,
) -> Vec<Frame> {
    ips.enumerate()
        .flat_map(|(depth, ip)| crate::user_frames::frames(ip, mappings, root, symbolizer, depth > 0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use memleak_signals::process::maps::Region;

    #[test]
    fn stacks_add_up_per_region_and_cgroup_and_are_bounded() {
        let profile = FaultProfile::default();
        let maps = [heapprof::Mapping {
            start: 0x1000,
            end: 0x2000,
            file_offset: 0,
            path: "/bin/app".into(),
            dev: 0,
            inode: 0,
        }];
        let nowhere = Path::new("/nonexistent");
        let stack = frames([0x1010, 0x1800, 0x9999].into_iter(), &maps, nowhere, &mut Symbolizer::default());
        assert_eq!(stack[0].function, "app+0x10", "a module that cannot be read stays module+offset");
        assert_eq!(stack[2].function, "0x9999", "an address outside every file mapping stays raw");
        let heap = Place::Region(Region::Heap);
        let app = Faulter { pid: 42, comm: Some("app".into()) };
        profile.add(stack.clone(), heap, 7, app.clone(), 1000);
        profile.add(stack.clone(), heap, 7, app.clone(), 1000);
        profile.add(stack.clone(), Place::Region(Region::Anon), 7, app.clone(), 1000);
        profile.add(stack.clone(), heap, 7, Faulter { pid: 43, comm: None }, 10);
        let named = profile.profile(&HashMap::from([(7, "/app.slice".to_owned())]));
        assert_eq!(named.samples.len(), 3, "one entry per region and per process");
        assert_eq!(named.total(0), 3010);
        let label = |s: &Sample, key: &str| s.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let heap_sample = named.samples.iter().find(|s| s.values[0] == 2000).unwrap();
        assert_eq!(label(heap_sample, "region").as_deref(), Some("heap"));
        assert_eq!(label(heap_sample, "cgroup").as_deref(), Some("/app.slice"));
        assert_eq!(
            (label(heap_sample, "pid").as_deref(), label(heap_sample, "comm").as_deref()),
            (Some("42"), Some("app"))
        );
        let unnamed = named.samples.iter().find(|s| s.values[0] == 10).unwrap();
        assert_eq!(
            (label(unnamed, "pid").as_deref(), label(unnamed, "comm")),
            (Some("43"), None),
            "no comm when unread"
        );

        for cgroup in 0..MAX_STACKS as u64 {
            profile.add(stack.clone(), heap, 100 + cgroup, app.clone(), 1);
        }
        // Three entries were there: MAX_STACKS - 3 new ones fit, the last three (1 fault each) do not.
        assert_eq!(profile.dropped(), (3, 0), "only MAX_STACKS entries are kept");
        assert!(profile.is_full());
        // Process 43 exited: its entry goes, and a new stack fits again.
        assert_eq!(profile.forget_exited(|pid| pid != 43), 1);
        profile.add(vec![Frame::function("late")], heap, 7, app.clone(), 5);
        assert_eq!(profile.dropped(), (3, 0), "the new stack is kept");
    }
}
