//! Memory regions of sampled faulting addresses: each sample's
//! process's `/proc/PID/maps` is read once per batch and the address looked up
//! in it. Classification happens after the fault (see `region_drain`): a
//! region unmapped meanwhile is reported as `unmapped`, a process gone as `exited`.

use crate::shared::FaultSample;
use memleak_artifacts::heapprof;
use memleak_signals::process::maps::{Mapping, Region, parse_line};
use std::collections::HashMap;
use std::path::Path;

/// Where a sampled fault landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Place {
    Region(Region),
    /// No mapping holds the address any more.
    Unmapped,
    /// The process is gone.
    Exited,
    /// Its maps could not be read (permission), or the batch had too many processes.
    Unknown,
}

impl Place {
    pub fn as_str(self) -> &'static str {
        match self {
            Place::Region(region) => region.as_str(),
            Place::Unmapped => "unmapped",
            Place::Exited => "exited",
            Place::Unknown => "unknown",
        }
    }
}

/// Faults (sample weights summed) per cgroup id and place.
pub type RegionTally = HashMap<(u64, Place), u64>;

/// Most processes whose maps one batch reads; the rest are `unknown`.
const MAX_PROCESSES_PER_BATCH: usize = 2048;

/// Where each sample landed, in the order of `samples`, and the file-backed
/// mappings (for naming stack frames) of the processes `wants_mappings` asks for.
#[derive(Debug, Default)]
pub struct Classified {
    pub places: Vec<Place>,
    pub mappings: HashMap<u32, Vec<heapprof::Mapping>>,
}

/// Classifies `samples` against the maps under `procfs`, reading each process's maps once.
pub fn classify(samples: &[FaultSample], procfs: &Path, wants_mappings: impl Fn(u32) -> bool) -> Classified {
    let mut by_process: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, sample) in samples.iter().enumerate() {
        by_process.entry(sample.tgid).or_default().push(i);
    }
    let mut out = Classified { places: vec![Place::Unknown; samples.len()], mappings: HashMap::new() };
    for (read, (tgid, indices)) in by_process.into_iter().enumerate() {
        let text = if read < MAX_PROCESSES_PER_BATCH { read_maps(procfs, tgid) } else { Err(Place::Unknown) };
        let regions: Result<Vec<Mapping>, Place> =
            text.as_ref().map(|t| t.lines().filter_map(|l| parse_line(l.as_bytes())).collect()).map_err(|p| *p);
        for i in indices {
            out.places[i] = match &regions {
                Ok(maps) => place_of(maps, samples[i].addr),
                Err(place) => *place,
            };
        }
        if let Ok(text) = &text
            && wants_mappings(tgid)
        {
            out.mappings.insert(tgid, heapprof::mappings(text.lines()));
        }
    }
    out
}

/// Faults (sample weights) per cgroup and place.
pub fn tally(samples: &[FaultSample], places: &[Place]) -> RegionTally {
    let mut tally = RegionTally::new();
    for (sample, place) in samples.iter().zip(places) {
        *tally.entry((sample.cgroup, *place)).or_default() += u64::from(sample.weight);
    }
    tally
}

/// The text of a process's maps; the place to report when it cannot be read.
fn read_maps(procfs: &Path, tgid: u32) -> Result<String, Place> {
    std::fs::read_to_string(procfs.join(tgid.to_string()).join("maps")).map_err(|e| match e.kind() {
        // Gone before the open (NotFound) or during the read (ESRCH).
        std::io::ErrorKind::NotFound => Place::Exited,
        _ if e.raw_os_error() == Some(libc::ESRCH) => Place::Exited,
        _ => Place::Unknown,
    })
}

fn place_of(maps: &[Mapping], addr: u64) -> Place {
    let after = maps.partition_point(|m| m.start <= addr);
    match after.checked_sub(1).map(|i| maps[i]) {
        Some(mapping) if mapping.contains(addr) => Place::Region(mapping.region),
        _ => Place::Unmapped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c6a00000-55d0c6a01000 r--p 00000000 fe:01 42 /usr/bin/leaky
55d0c6b9e000-55d0c6bbf000 rw-p 00000000 00:00 0 [heap]
7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0
7ffd5a8c1000-7ffd5a8e2000 rw-p 00000000 00:00 0 [stack]
";

    fn sample(tgid: u32, addr: u64, weight: u32) -> FaultSample {
        FaultSample { cgroup: 7, addr, tgid, weight, stack_bytes: -14, pad: 0, stack: [0; 32] }
    }

    #[test]
    fn addresses_land_in_their_regions_and_weights_add_up() {
        let proc = tempfile::tempdir().unwrap();
        std::fs::create_dir(proc.path().join("42")).unwrap();
        std::fs::write(proc.path().join("42/maps"), MAPS).unwrap();
        let samples = [
            sample(42, 0x55d0c6b9e000, 100), // first byte of the heap
            sample(42, 0x55d0c6bbefff, 100), // last byte of the heap
            sample(42, 0x7f1c2a010000, 100),
            sample(42, 0x55d0c6a00800, 100),
            sample(42, 0x7ffd5a8e1000, 100),
            sample(42, 0x55d0c6bbf000, 100), // one past the heap: nothing mapped
            sample(43, 0x55d0c6b9e000, 100), // no such process
        ];
        let classified = classify(&samples, proc.path(), |tgid| tgid == 42);
        let tally = tally(&samples, &classified.places);
        // The file-backed mapping names stack frames; anonymous ones do not.
        assert_eq!(classified.mappings[&42].len(), 1);
        assert_eq!(classified.mappings[&42][0].path, "/usr/bin/leaky");
        let at = |place| tally.get(&(7, place)).copied().unwrap_or(0);
        assert_eq!(at(Place::Region(Region::Heap)), 200);
        assert_eq!(at(Place::Region(Region::Anon)), 100);
        assert_eq!(at(Place::Region(Region::File)), 100);
        assert_eq!(at(Place::Region(Region::Stack)), 100);
        assert_eq!(at(Place::Unmapped), 100);
        assert_eq!(at(Place::Exited), 100);
        assert_eq!(tally.values().sum::<u64>(), 700);
    }
}
