//! Summing processes into groups and capping the number of groups.

use super::detail::Detail;
use std::collections::HashMap;

/// The label values of a group: `group`, and `pid` in per-process mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub group: String,
    pub pid: String,
}

/// Label value of the group that collects everything past the cap.
pub const OTHER: &str = "__other__";

/// Sums over the processes of one group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub processes: u64,
    pub threads: u64,
    pub resident: u64,
    pub virtual_: u64,
    /// Start of the oldest member, seconds since the epoch.
    pub oldest_start: Option<f64>,
    /// Members whose details were available.
    pub with_detail: u64,
    pub anon: u64,
    pub file: u64,
    pub shmem: u64,
    pub swap: u64,
    pub data: u64,
    /// Largest member peak (sums of peaks taken at different times mean nothing).
    pub resident_peak: u64,
    pub with_pss: u64,
    pub pss: u64,
    pub pss_anon: u64,
    pub mappings: u64,
    pub heap: u64,
    pub anon_mapped: u64,
    /// Members whose maps were readable.
    pub with_maps: u64,
}

impl Totals {
    pub fn add_detail(&mut self, d: &Detail) {
        self.with_detail += 1;
        self.anon += d.anon;
        self.file += d.file;
        self.shmem += d.shmem;
        self.swap += d.swap;
        self.data += d.data;
        self.resident_peak = self.resident_peak.max(d.resident_peak);
        if let Some(pss) = d.pss {
            self.with_pss += 1;
            self.pss += pss;
            self.pss_anon += d.pss_anon.unwrap_or(0);
        }
        if let Some(m) = d.maps {
            self.with_maps += 1;
            self.mappings += m.mappings;
            self.heap += m.heap;
            self.anon_mapped += m.anon_mapped;
        }
    }

    fn merge(&mut self, o: &Totals) {
        self.processes += o.processes;
        self.threads += o.threads;
        self.resident += o.resident;
        self.virtual_ += o.virtual_;
        self.oldest_start = match (self.oldest_start, o.oldest_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.with_detail += o.with_detail;
        self.anon += o.anon;
        self.file += o.file;
        self.shmem += o.shmem;
        self.swap += o.swap;
        self.data += o.data;
        self.resident_peak = self.resident_peak.max(o.resident_peak);
        self.with_pss += o.with_pss;
        self.pss += o.pss;
        self.pss_anon += o.pss_anon;
        self.mappings += o.mappings;
        self.heap += o.heap;
        self.anon_mapped += o.anon_mapped;
        self.with_maps += o.with_maps;
    }
}

/// Keeps only the `max_groups` largest groups by resident memory; the rest is
/// summed into one group labelled `OTHER`. Returns the groups and how many were folded.
pub fn cap(groups: HashMap<GroupKey, Totals>, max_groups: usize) -> (Vec<(GroupKey, Totals)>, usize) {
    let mut groups: Vec<_> = groups.into_iter().collect();
    // Largest first; the key breaks ties so output order is stable.
    groups.sort_by(|a, b| b.1.resident.cmp(&a.1.resident).then_with(|| a.0.cmp(&b.0)));
    if groups.len() <= max_groups.max(1) {
        return (groups, 0);
    }
    let keep = max_groups.max(1) - 1;
    let folded = groups.split_off(keep);
    let mut other = Totals::default();
    for (_, totals) in &folded {
        other.merge(totals);
    }
    groups.push((GroupKey { group: OTHER.into(), pid: String::new() }, other));
    (groups, folded.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, resident: u64) -> (GroupKey, Totals) {
        (GroupKey { group: name.into(), pid: String::new() }, Totals { processes: 1, resident, ..Totals::default() })
    }

    #[test]
    fn cap_folds_the_smallest_groups_into_other() {
        let groups: HashMap<_, _> = [group("a", 10), group("b", 30), group("c", 20), group("d", 5)].into();
        let (kept, folded) = cap(groups, 3);
        let names: Vec<_> = kept.iter().map(|(k, _)| k.group.as_str()).collect();
        assert_eq!(names, ["b", "c", OTHER]);
        assert_eq!(folded, 2);
        assert_eq!(kept[2].1.resident, 15);
        assert_eq!(kept[2].1.processes, 2);
        let total: u64 = kept.iter().map(|(_, t)| t.resident).sum();
        assert_eq!(total, 65, "folding loses nothing");
    }
}
