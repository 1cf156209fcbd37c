//! Sampled outstanding blocks to an unbiased in-use profile: each block weighs `size / p` bytes and `1 / p` blocks, `p = 1 − exp(−size / mean)` being its chance of being sampled (jemalloc's and pprof's estimator), aggregated by stack, with the blocks' ages; `Ages` is the seam where the age ranking of `ebpf-malloc` can take over.

use memleak_artifacts::{Frame, Profile, Sample, ValueType};
use std::collections::HashMap;

pub const SAMPLE_TYPES: [ValueType; 2] =
    [ValueType { kind: "inuse_space", unit: "bytes" }, ValueType { kind: "inuse_objects", unit: "count" }];

/// One sampled block still outstanding at the end of the window.
#[derive(Debug, Clone)]
pub struct Block {
    pub stack: Vec<Frame>,
    pub size: u64,
    /// Seconds since it was allocated.
    pub age: f64,
    /// Whether a reachability scan found nothing pointing into it (`None`: no scan).
    pub definitely_leaked: Option<bool>,
}

/// Estimated bytes and blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Estimate {
    pub bytes: f64,
    pub blocks: f64,
}

/// What a profile adds up to: everything, and what a reachability scan found definitely leaked or referenced.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub all: Estimate,
    pub definitely_leaked: Estimate,
    pub referenced: Estimate,
}

/// The chance that an allocation of `size` bytes is sampled under mean `mean`.
pub fn probability(size: u64, mean: u64) -> f64 {
    if mean == 0 {
        return 1.0;
    }
    -(-(size as f64) / mean as f64).exp_m1()
}

/// Summarises the ages of a site's blocks as pprof labels.
pub trait Ages {
    fn labels(&self, ages: &[f64]) -> Vec<(String, String)>;
}

/// The oldest and the median age, in whole seconds.
#[derive(Debug, Default)]
pub struct OldestAndMedian;

impl Ages for OldestAndMedian {
    fn labels(&self, ages: &[f64]) -> Vec<(String, String)> {
        let mut sorted = ages.to_vec();
        sorted.sort_by(f64::total_cmp);
        let (Some(oldest), Some(median)) = (sorted.last(), sorted.get(sorted.len() / 2)) else { return Vec::new() };
        vec![("age_max_seconds".into(), format!("{oldest:.0}")), ("age_median_seconds".into(), format!("{median:.0}"))]
    }
}

/// The in-use profile of `blocks` sampled with `mean` (one sample per stack and reachability); its totals.
pub fn profile(blocks: Vec<Block>, mean: u64, ages: &dyn Ages) -> (Profile, Totals) {
    type Key = (Vec<Frame>, Option<bool>);
    let mut by_stack: HashMap<Key, (f64, f64, i64, Vec<f64>)> = HashMap::new();
    let mut totals = Totals::default();
    for block in blocks {
        let p = probability(block.size, mean).max(f64::MIN_POSITIVE);
        let (bytes, objects) = (block.size as f64 / p, 1.0 / p);
        for (wanted, sum) in [
            (None, &mut totals.all),
            (Some(true), &mut totals.definitely_leaked),
            (Some(false), &mut totals.referenced),
        ] {
            if wanted.is_none() || wanted == block.definitely_leaked {
                sum.bytes += bytes;
                sum.blocks += objects;
            }
        }
        let entry = by_stack.entry((block.stack, block.definitely_leaked)).or_default();
        entry.0 += bytes;
        entry.1 += objects;
        entry.2 += 1;
        entry.3.push(block.age);
    }
    let mut profile = Profile::new("inuse", SAMPLE_TYPES.to_vec());
    for ((stack, leaked), (bytes, objects, sampled, block_ages)) in by_stack {
        let mut labels = vec![("sampled_blocks".to_owned(), sampled.to_string())];
        if let Some(leaked) = leaked {
            labels
                .push(("reachability".to_owned(), if leaked { "definitely leaked" } else { "referenced" }.to_owned()));
        }
        labels.extend(ages.labels(&block_ages));
        profile.samples.push(Sample { stack, values: vec![bytes.round() as i64, objects.round() as i64], labels });
    }
    profile.samples.sort_by(|a, b| b.values[0].cmp(&a.values[0]));
    (profile, totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_undo_the_sampling() {
        // Sizes far above the mean are always sampled: weight 1.
        assert!((probability(1 << 30, 1024) - 1.0).abs() < 1e-12);
        // p = 1 - e^-1 for a block the size of the mean.
        assert!((probability(1024, 1024) - (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        let stack = vec![Frame::function("leak")];
        let blocks = vec![
            Block { stack: stack.clone(), size: 1024, age: 3.0, definitely_leaked: None },
            Block { stack, size: 1024, age: 9.0, definitely_leaked: None },
        ];
        let (profile, totals) = profile(blocks, 1024, &OldestAndMedian);
        let want = 2.0 * 1024.0 / (1.0 - (-1.0f64).exp());
        assert!((totals.all.bytes - want).abs() < 1e-6);
        assert_eq!(totals.definitely_leaked, Estimate::default());
        assert_eq!(
            profile.samples[0].values,
            vec![want.round() as i64, (2.0 / (1.0 - (-1.0f64).exp())).round() as i64]
        );
        assert!(profile.samples[0].labels.contains(&("sampled_blocks".into(), "2".into())));
        assert!(profile.samples[0].labels.contains(&("age_max_seconds".into(), "9".into())));
    }

    #[test]
    fn reachability_splits_a_site() {
        let stack = vec![Frame::function("cache")];
        let block = |leaked| Block { stack: stack.clone(), size: 1 << 20, age: 1.0, definitely_leaked: Some(leaked) };
        let (profile, totals) = profile(vec![block(true), block(false), block(false)], 1, &OldestAndMedian);
        assert_eq!(profile.samples.len(), 2);
        assert_eq!((totals.definitely_leaked.blocks, totals.referenced.blocks, totals.all.blocks), (1.0, 2.0, 3.0));
    }
}
