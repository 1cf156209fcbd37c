//! Per-cgroup counters that never fall: the BPF maps' cumulative values per
//! cgroup id, named by path, the busiest `max` paths kept and the rest folded
//! into `__other__`, accumulated per label set from each id's increase
//! (`memleak_signals::monotonic`). A cgroup created since the last walk of
//! the tree counts as `(unknown)` until the next walk names it (at most 10 s;
//! short-lived cgroups' counts are not lost); one that gets its name, moves
//! across the top-`max` boundary, or whose map entry is evicted and restarts
//! never makes a series fall; a removed cgroup's series is gone at the next
//! scrape.

use crate::cgroup_ids::{self, CgroupNames};
use memleak_signals::{Limits, MonotonicCounters};
use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;

/// Sources: (object generation, cgroup id, key); label sets: (path or
/// `__other__` or `(unknown)`, key). A reloaded BPF object is a new
/// generation, so its restarted maps are new sources.
pub type CgroupCounters<K, const N: usize> = MonotonicCounters<(u64, u64, K), (String, K), N>;

/// Most sources remembered: the BPF maps' 4,096 cgroups times a few keys.
const MAX_SOURCES: usize = 1 << 16;
/// Scrapes an id missing from the map (evicted) is remembered.
const SOURCE_TTL: u64 = 2;

/// Counters for at most `max_cgroups` named cgroups (and `__other__`, `(unknown)`)
/// per key; a label set no cgroup reports is dropped at once.
pub fn cgroup_counters<K: Ord + Clone + Hash, const N: usize>(max_cgroups: usize) -> CgroupCounters<K, N> {
    MonotonicCounters::new(Limits {
        max_sources: MAX_SOURCES,
        max_series: max_cgroups.saturating_add(2),
        source_ttl: SOURCE_TTL,
        series_ttl: 0,
    })
}

/// One scrape: `values` are each (cgroup id, key)'s cumulative counts now.
/// The named cgroups are checked to still exist (a stat each, at most
/// `max_cgroups`): one removed since the last scrape loses its series now, and
/// what it counted since then goes to `__other__`; ids removed before are left
/// out. `weight` ranks the paths.
pub fn count<K: Ord + Copy + Hash, const N: usize>(
    counters: &mut CgroupCounters<K, N>,
    names: &mut CgroupNames,
    generation: u64,
    values: impl IntoIterator<Item = (u64, K, [u64; N])>,
    max_cgroups: usize,
    weight: impl Fn(&[u64; N]) -> u64,
) {
    let mut values: Vec<(u64, K, [u64; N])> = values.into_iter().collect();
    names.resolve(values.iter().map(|(id, _, _)| *id));
    values.retain(|(id, _, _)| !names.removed(*id));
    // Ranked again without the named cgroups found removed, so others take their place at once.
    let (mut checked, mut removed_now) = (HashSet::new(), HashSet::new());
    let labelled = loop {
        let labelled = label(&values, names, &removed_now, max_cgroups, &weight);
        let removed: Vec<u64> = labelled
            .iter()
            .filter(|(id, .., label)| is_named(label) && checked.insert(*id))
            .map(|(id, ..)| *id)
            .filter(|id| !names.still_there(*id))
            .collect();
        if removed.is_empty() {
            break labelled;
        }
        removed_now.extend(removed);
    };
    counters.begin();
    for (id, k, v, label) in labelled {
        counters.observe((generation, id, k), &(label, k), v);
    }
    counters.finish();
}

fn is_named(label: &str) -> bool {
    label != cgroup_ids::OTHER && label != cgroup_ids::UNKNOWN
}

/// Each value with the label set it is counted in: its path if among the
/// `max_cgroups` heaviest, else (or if just `removed`) `__other__`.
fn label<K: Copy, const N: usize>(
    values: &[(u64, K, [u64; N])],
    names: &CgroupNames,
    removed: &HashSet<u64>,
    max_cgroups: usize,
    weight: impl Fn(&[u64; N]) -> u64,
) -> Vec<(u64, K, [u64; N], String)> {
    let mut weights: BTreeMap<&str, u64> = BTreeMap::new();
    for (id, _, v) in values.iter().filter(|(id, ..)| !removed.contains(id)) {
        *weights.entry(cgroup_ids::name(names.paths(), *id)).or_default() += weight(v);
    }
    let labels = cgroup_ids::keep_top(&weights, max_cgroups);
    values
        .iter()
        .map(|(id, k, v)| {
            let path = cgroup_ids::name(names.paths(), *id);
            let label = match labels.get(path) {
                Some(label) if !removed.contains(id) => label.as_str(),
                _ => cgroup_ids::OTHER,
            };
            (*id, *k, *v, label.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    fn tree() -> (tempfile::TempDir, CgroupNames) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.controllers"), "memory\n").unwrap();
        let names = CgroupNames::new(dir.path());
        (dir, names)
    }

    fn mkdir(root: &Path, name: &str) -> u64 {
        std::fs::create_dir(root.join(name)).unwrap();
        std::fs::metadata(root.join(name)).unwrap().ino()
    }

    fn value(c: &CgroupCounters<(), 1>, path: &str) -> Option<u64> {
        c.get(&(path.to_owned(), ())).map(|v| v[0])
    }

    #[test]
    fn a_late_name_does_not_make_unknown_fall() {
        let (dir, mut names) = tree();
        let a = mkdir(dir.path(), "a");
        let mut c = cgroup_counters(4);
        count(&mut c, &mut names, 0, [(a, (), [10])], 4, |v| v[0]);
        // "b" appears after the walk: (unknown) until the next one.
        let b = mkdir(dir.path(), "b");
        count(&mut c, &mut names, 0, [(a, (), [10]), (b, (), [100])], 4, |v| v[0]);
        assert_eq!(value(&c, cgroup_ids::UNKNOWN), Some(100));
        names.rewalk_now();
        count(&mut c, &mut names, 0, [(a, (), [10]), (b, (), [130])], 4, |v| v[0]);
        // Named now: /b gets what came since; (unknown) has no source left and ends, without falling.
        assert_eq!((value(&c, "/b"), value(&c, cgroup_ids::UNKNOWN)), (Some(30), None));
    }

    #[test]
    fn a_removed_cgroup_is_dropped_at_the_next_scrape_and_others_keep_counting() {
        let (dir, mut names) = tree();
        let (a, b) = (mkdir(dir.path(), "a"), mkdir(dir.path(), "b"));
        let mut c = cgroup_counters(1);
        count(&mut c, &mut names, 0, [(a, (), [50]), (b, (), [5])], 1, |v| v[0]);
        assert_eq!((value(&c, "/a"), value(&c, cgroup_ids::OTHER)), (Some(50), Some(5)));
        std::fs::remove_dir(dir.path().join("a")).unwrap();
        // The BPF map still holds a's entry, with 4 faults since the last scrape: they go to
        // __other__; b is the busiest left and has its name from now on.
        count(&mut c, &mut names, 0, [(a, (), [54]), (b, (), [8])], 1, |v| v[0]);
        assert_eq!(value(&c, "/a"), None);
        assert_eq!((value(&c, "/b"), value(&c, cgroup_ids::OTHER)), (Some(3), Some(9)));
        // Next scrape: a is left out, and __other__ has no source left.
        count(&mut c, &mut names, 0, [(a, (), [54]), (b, (), [9])], 1, |v| v[0]);
        assert_eq!((value(&c, "/b"), value(&c, cgroup_ids::OTHER)), (Some(4), None));
    }

    #[test]
    fn an_evicted_entry_restarts_and_a_new_generation_is_new() {
        let (dir, mut names) = tree();
        let a = mkdir(dir.path(), "a");
        let mut c = cgroup_counters(4);
        count(&mut c, &mut names, 0, [(a, (), [50])], 4, |v| v[0]);
        count(&mut c, &mut names, 0, [(a, (), [7])], 4, |v| v[0]);
        assert_eq!(value(&c, "/a"), Some(57));
        count(&mut c, &mut names, 1, [(a, (), [60])], 4, |v| v[0]);
        assert_eq!(value(&c, "/a"), Some(117));
    }
}
