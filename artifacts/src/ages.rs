//! Allocation ages (GenCount): for each allocation site, how the ages of its
//! live allocations spread over a capture window, and a rank of sites by it.
//! A leaking site holds allocations made all along the window; a cache or a
//! pool holds a bounded set of recent ones, however many bytes. Shared by the
//! capture kinds that know when each live allocation was made (`ebpf-malloc`,
//! the cooperative sampler).

/// Parts the window is cut into: an age falls in one tenth of it.
pub const AGE_BUCKETS: usize = 10;

/// The rank `rank` applies, as results state it.
pub const RANK: &str = "age spread (GenCount): the share of the window's tenths in which a site's live allocations were made, then in-use bytes";

/// The live allocations of one site at the end of a window, by when they were made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ages {
    /// Live objects per tenth of the window, oldest first.
    pub buckets: [u64; AGE_BUCKETS],
    pub bytes: u64,
    /// The age of the oldest live allocation, in nanoseconds.
    pub oldest_ns: u64,
}

impl Ages {
    /// Adds a live allocation of `bytes` made `age_ns` before the end of a window of `window_ns`.
    pub fn add(&mut self, age_ns: u64, window_ns: u64, bytes: u64) {
        let made = window_ns.saturating_sub(age_ns.min(window_ns));
        let bucket = if window_ns == 0 {
            AGE_BUCKETS - 1
        } else {
            ((u128::from(made) * AGE_BUCKETS as u128 / u128::from(window_ns)) as usize).min(AGE_BUCKETS - 1)
        };
        if let Some(slot) = self.buckets.get_mut(bucket) {
            *slot += 1;
        }
        self.bytes = self.bytes.saturating_add(bytes);
        self.oldest_ns = self.oldest_ns.max(age_ns);
    }

    /// Tenths of the window holding at least one of its live allocations.
    pub fn occupied(&self) -> usize {
        self.buckets.iter().filter(|n| **n > 0).count()
    }

    /// The buckets as one character each, oldest first: `#` live allocations made then, `.` none.
    pub fn shape(&self) -> String {
        self.buckets.iter().map(|n| if *n > 0 { '#' } else { '.' }).collect()
    }
}

/// The spread of one site: the share of the tenths in which any site's live
/// allocations were made (tenths when nothing was observed, e.g. probes
/// detached by sampling, count for no site) that hold this site's.
pub fn spread(site: &Ages, observed: &[bool; AGE_BUCKETS]) -> f64 {
    let seen = observed.iter().filter(|o| **o).count();
    if seen == 0 {
        return 0.0;
    }
    let held = site.buckets.iter().zip(observed).filter(|(n, o)| **o && **n > 0).count();
    held as f64 / seen as f64
}

/// The tenths in which any site's live allocations were made.
pub fn observed<'a>(sites: impl IntoIterator<Item = &'a Ages>) -> [bool; AGE_BUCKETS] {
    let mut seen = [false; AGE_BUCKETS];
    for site in sites {
        for (s, n) in seen.iter_mut().zip(site.buckets) {
            *s |= n > 0;
        }
    }
    seen
}

/// The order of `sites` by `RANK`: widest spread first, then most in-use bytes.
pub fn rank(sites: &[Ages]) -> Vec<usize> {
    let seen = observed(sites);
    let mut order: Vec<usize> = (0..sites.len()).collect();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (&sites[a], &sites[b]);
        spread(sb, &seen).total_cmp(&spread(sa, &seen)).then(sb.bytes.cmp(&sa.bytes))
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_leak_outranks_a_bigger_steady_cache() {
        let window = 20 * SECOND;
        // A leak: 100 B every 200 ms for the whole window, never freed.
        let mut leak = Ages::default();
        for i in 0..100 {
            leak.add(window - i * window / 100, window, 100);
        }
        // A cache: 64 entries of 4 KiB, each replaced after ~1.3 s (only recent ones live).
        let mut cache = Ages::default();
        for i in 0..64 {
            cache.add(i * SECOND / 50, window, 4096);
        }
        assert!(cache.bytes > leak.bytes, "by bytes, the cache is first");
        assert_eq!(leak.occupied(), 10);
        assert_eq!(cache.shape(), ".........#");
        assert_eq!(rank(&[cache, leak]), vec![1, 0], "by age spread, the leak is first");
        assert_eq!(leak.oldest_ns, window);
    }

    #[test]
    fn unobserved_tenths_count_for_no_site_and_ties_go_to_bytes() {
        let window = 10 * SECOND;
        let mut a = Ages::default();
        let mut b = Ages::default();
        // Only the last half of the window was observed; both sites fill it.
        for t in 5..10 {
            a.add(window - t * SECOND, window, 10);
            b.add(window - t * SECOND, window, 20);
        }
        let seen = observed([&a, &b]);
        assert_eq!(spread(&a, &seen), 1.0);
        assert_eq!(rank(&[a, b]), vec![1, 0]);
        // Ages past the window (an allocation made before it) land in the first tenth.
        let mut old = Ages::default();
        old.add(3 * window, window, 1);
        assert_eq!(old.buckets[0], 1);
        assert_eq!(spread(&old, &[false; AGE_BUCKETS]), 0.0);
    }
}
