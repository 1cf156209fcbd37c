//! Counters that never fall: exported `_total` series accumulated from per-source deltas.
//!
//! A collector that sums cumulative counts of changing sources (processes,
//! cgroup ids, perf counters) into bounded label sets (a group, `__other__`,
//! a cgroup path, `(unknown)`) cannot export the sum itself: when a source
//! exits, changes label set, or restarts, the sum falls, and Prometheus reads
//! a reset. Instead, each scrape every source reports its cumulative values and
//! the label set it belongs to *now*; the increase since its last report is
//! added to that label set's accumulator, which only grows.
//!
//! - A new source counts its whole value (it was zero before it existed).
//! - A source whose value went down restarted (a reloaded BPF map, an evicted
//!   LRU entry): it counts its new value.
//! - A source missing from a scrape is remembered for `source_ttl` scrapes, so
//!   a partial scrape (deadline) does not count it twice when it comes back.
//! - A label set that no source reported for more than `series_ttl` scrapes is
//!   dropped; if it comes back, it is a new series starting from its new deltas.
//!
//! Conservation: the accumulators' sum equals the sum of every source's
//! increases as reported, never counted twice. Bounds: at most `max_sources`
//! sources (new ones past it are not counted, see `refused`), and
//! `max_series` label sets besides those reported in the current scrape (the
//! longest idle ones are dropped first). Cost per scrape: one hash lookup per
//! report, plus a pass over the label sets.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// How long sources and label sets are remembered, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_sources: usize,
    pub max_series: usize,
    /// Scrapes a source may be missing before it is forgotten.
    pub source_ttl: u64,
    /// Scrapes a label set may go unreported before it is dropped (0: at the
    /// first scrape that does not report it).
    pub series_ttl: u64,
}

#[derive(Debug)]
struct Source<const N: usize> {
    last: [u64; N],
    seen: u64,
}

#[derive(Debug)]
struct Accumulator<const N: usize> {
    total: [u64; N],
    fed: u64,
}

/// Accumulators of `N` counters per label set `L`, fed by sources `S`.
#[derive(Debug)]
pub struct MonotonicCounters<S, L, const N: usize> {
    limits: Limits,
    sources: HashMap<S, Source<N>>,
    series: BTreeMap<L, Accumulator<N>>,
    scrape: u64,
    refused: u64,
}

impl<S: Hash + Eq, L: Ord + Clone, const N: usize> MonotonicCounters<S, L, N> {
    pub fn new(limits: Limits) -> Self {
        MonotonicCounters { limits, sources: HashMap::new(), series: BTreeMap::new(), scrape: 0, refused: 0 }
    }

    /// Starts a scrape: reports until `finish` belong to it.
    pub fn begin(&mut self) {
        self.scrape += 1;
    }

    /// The values `source` reported last, if it is remembered.
    pub fn last(&self, source: &S) -> Option<&[u64; N]> {
        self.sources.get(source).map(|s| &s.last)
    }

    /// `source` has the cumulative `values` now and belongs to `series`.
    pub fn observe(&mut self, source: S, series: &L, values: [u64; N]) {
        let scrape = self.scrape;
        let room_for_source = self.sources.len() < self.limits.max_sources;
        let delta = match self.sources.get_mut(&source) {
            Some(known) => {
                let restarted = values.iter().zip(&known.last).any(|(now, before)| now < before);
                let delta = if restarted { values } else { std::array::from_fn(|i| values[i] - known.last[i]) };
                *known = Source { last: values, seen: scrape };
                delta
            }
            None if room_for_source => {
                self.sources.insert(source, Source { last: values, seen: scrape });
                values
            }
            None => {
                self.refused += 1;
                return;
            }
        };
        let acc = self.series.entry(series.clone()).or_insert(Accumulator { total: [0; N], fed: scrape });
        acc.fed = scrape;
        for (total, d) in acc.total.iter_mut().zip(delta) {
            *total = total.saturating_add(d);
        }
    }

    /// Ends the scrape: forgets sources and drops label sets past their ttl,
    /// then the longest idle label sets past `max_series`. Label sets reported
    /// in this scrape are never dropped here (one dropped and recreated within
    /// a scrape would fall), so the caller bounds how many one scrape reports.
    pub fn finish(&mut self) {
        let (scrape, limits) = (self.scrape, self.limits);
        self.sources.retain(|_, s| scrape - s.seen <= limits.source_ttl);
        self.series.retain(|_, a| scrape - a.fed <= limits.series_ttl);
        if self.series.len() > limits.max_series {
            let mut idle: Vec<(u64, L)> =
                self.series.iter().filter(|(_, a)| a.fed < scrape).map(|(l, a)| (a.fed, l.clone())).collect();
            idle.sort_by_key(|(fed, _)| *fed);
            let excess = self.series.len() - limits.max_series;
            for (_, label) in idle.into_iter().take(excess) {
                self.series.remove(&label);
            }
        }
    }

    /// The accumulated values of `series`, if it exists.
    pub fn get(&self, series: &L) -> Option<&[u64; N]> {
        self.series.get(series).map(|a| &a.total)
    }

    /// Every label set and its accumulated values, in label order.
    pub fn iter(&self) -> impl Iterator<Item = (&L, &[u64; N])> {
        self.series.iter().map(|(l, a)| (l, &a.total))
    }

    /// Reports of new sources not counted because `max_sources` were remembered.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_sources: 100, max_series: 10, source_ttl: 2, series_ttl: 0 };

    fn scrape(c: &mut MonotonicCounters<u32, &'static str, 1>, reports: &[(u32, &'static str, u64)]) {
        c.begin();
        for (source, series, value) in reports {
            c.observe(*source, series, [*value]);
        }
        c.finish();
    }

    fn value(c: &MonotonicCounters<u32, &'static str, 1>, series: &'static str) -> Option<u64> {
        c.get(&series).map(|v| v[0])
    }

    #[test]
    fn an_exiting_source_leaves_its_count_with_the_series() {
        let mut c = MonotonicCounters::new(LIMITS);
        scrape(&mut c, &[(1, "web", 100), (2, "web", 50)]);
        assert_eq!(value(&c, "web"), Some(150));
        scrape(&mut c, &[(1, "web", 120)]);
        assert_eq!(value(&c, "web"), Some(170), "the 50 of the exited source stay");
    }

    #[test]
    fn a_moving_source_takes_only_its_new_increase_along() {
        let mut c = MonotonicCounters::new(LIMITS);
        scrape(&mut c, &[(1, "__other__", 100), (2, "__other__", 10)]);
        scrape(&mut c, &[(1, "hog", 130), (2, "__other__", 10)]);
        assert_eq!((value(&c, "hog"), value(&c, "__other__")), (Some(30), Some(110)));
        scrape(&mut c, &[(1, "__other__", 140), (2, "__other__", 10)]);
        assert_eq!(value(&c, "__other__"), Some(120));
        assert_eq!(value(&c, "hog"), None, "series_ttl 0: dropped when no source reports it");
    }

    #[test]
    fn a_falling_source_restarted_and_counts_its_new_value() {
        let mut c = MonotonicCounters::new(LIMITS);
        scrape(&mut c, &[(7, "/a", 1000)]);
        scrape(&mut c, &[(7, "/a", 40)]);
        assert_eq!(value(&c, "/a"), Some(1040));
    }

    #[test]
    fn a_source_missing_from_one_scrape_is_not_counted_twice() {
        let mut c = MonotonicCounters::new(Limits { series_ttl: 5, ..LIMITS });
        scrape(&mut c, &[(1, "a", 100)]);
        scrape(&mut c, &[]);
        scrape(&mut c, &[(1, "a", 110)]);
        assert_eq!(value(&c, "a"), Some(110));
        // Past source_ttl it is forgotten: a key seen again is a new source (a reused pid).
        for _ in 0..3 {
            scrape(&mut c, &[]);
        }
        scrape(&mut c, &[(1, "a", 5)]);
        assert_eq!(value(&c, "a"), Some(115));
        // Past series_ttl the label set is dropped; back, it starts from its new deltas.
        for _ in 0..6 {
            scrape(&mut c, &[]);
        }
        assert_eq!(c.iter().count(), 0);
        scrape(&mut c, &[(1, "a", 7)]);
        assert_eq!(value(&c, "a"), Some(7));
    }

    #[test]
    fn sources_and_series_are_bounded() {
        let limits = Limits { max_sources: 3, max_series: 1, source_ttl: 10, series_ttl: 10 };
        let mut c = MonotonicCounters::new(limits);
        scrape(&mut c, &[(1, "a", 1), (2, "b", 1), (3, "c", 1), (4, "a", 1)]);
        // Source 4 found no room; the label sets reported in this scrape all stay.
        assert_eq!((value(&c, "a"), value(&c, "b"), value(&c, "c")), (Some(1), Some(1), Some(1)));
        assert_eq!(c.refused(), 1);
        // Next scrape, the idle label sets go down to the bound.
        scrape(&mut c, &[(1, "a", 2)]);
        assert_eq!((value(&c, "a"), value(&c, "b"), value(&c, "c")), (Some(2), None, None));
    }
}
