//! Replaying marker events into live and freed sampled blocks, and the unbiased estimates with their sampling error.
//!
//! An allocation of `s` bytes is sampled with probability `p(s) = 1 - exp(-s / mean)`,
//! independently of the others (a Poisson process over bytes). Weighting each sampled one by
//! `s / p(s)` (Horvitz-Thompson) estimates the bytes of the whole population without bias, with
//! variance `sum over the population of s^2 (1 - p) / p`. With the population known (ground
//! truth), the tests compute that standard deviation exactly and accept an estimate within 4 of
//! them: a correct sampler fails such a check about once in 16,000 runs (normal approximation;
//! every population here has hundreds of samples or more).

use super::uprobes::Marker;
use std::collections::HashMap;

/// What a process's marker events say about its sampled blocks.
#[derive(Debug, Default)]
pub struct Replay {
    /// Sampled blocks still live at the end: pointer to size.
    pub live: HashMap<u64, u64>,
    /// Sizes of every sampled allocation, in order.
    pub allocated: Vec<u64>,
    /// Sizes of the sampled blocks that were freed (size from their allocation).
    pub freed: Vec<u64>,
}

impl Replay {
    /// Replays `markers`, starting from the blocks `inherited` (a forked child's view of its
    /// parent's). Panics on a free of a pointer that is not live or an allocation of one that is:
    /// either means the sampler broke the pairing.
    pub fn new(markers: &[Marker], inherited: HashMap<u64, u64>) -> Replay {
        let mut replay = Replay { live: inherited, ..Replay::default() };
        for (i, marker) in markers.iter().enumerate() {
            match *marker {
                Marker::Alloc { ptr, size } => {
                    let before = replay.live.insert(ptr, size);
                    assert!(before.is_none(), "event {i}: {ptr:#x} reported allocated while already live");
                    replay.allocated.push(size);
                }
                Marker::Free { ptr } => {
                    let size = replay.live.remove(&ptr);
                    let size = size
                        .unwrap_or_else(|| panic!("event {i}: free of {ptr:#x}, which is not a live sampled block"));
                    replay.freed.push(size);
                }
            }
        }
        replay
    }

    pub fn of(markers: &[Marker]) -> Replay {
        Replay::new(markers, HashMap::new())
    }

    pub fn live_sizes(&self) -> Vec<u64> {
        self.live.values().copied().collect()
    }
}

pub fn probability(size: u64, mean: u64) -> f64 {
    1.0 - (-(size as f64) / mean as f64).exp()
}

/// `size / (1 - exp(-size / mean))`: the bytes one sampled allocation stands for.
pub fn weight(size: u64, mean: u64) -> f64 {
    size as f64 / probability(size, mean)
}

/// The estimated bytes of the population the sampled `sizes` were drawn from.
pub fn estimate(sizes: &[u64], mean: u64) -> f64 {
    sizes.iter().filter(|&&s| s > 0).map(|&s| weight(s, mean)).sum()
}

/// The standard deviation of [`estimate`] over a population of `(size, count)`.
pub fn standard_deviation(population: &[(u64, u64)], mean: u64) -> f64 {
    population
        .iter()
        .filter(|(size, _)| *size > 0)
        .map(|&(size, count)| {
            let p = probability(size, mean);
            count as f64 * (size as f64).powi(2) * (1.0 - p) / p
        })
        .sum::<f64>()
        .sqrt()
}

/// Asserts that the sampled `sizes` estimate the bytes of `population` within 4 standard deviations.
pub fn assert_estimates(what: &str, sizes: &[u64], population: &[(u64, u64)], mean: u64) {
    let truth: u64 = population.iter().map(|(size, count)| size * count).sum();
    let estimated = estimate(sizes, mean);
    let sd = standard_deviation(population, mean);
    let error = estimated - truth as f64;
    eprintln!(
        "{what}: estimated {estimated:.0} B from {} samples, truth {truth} B, error {:+.2} % = {:+.2} sd (sd {:.2} %)",
        sizes.len(),
        100.0 * error / truth as f64,
        error / sd,
        100.0 * sd / truth as f64
    );
    assert!(error.abs() <= 4.0 * sd, "{what}: estimated {estimated:.0} B, truth {truth} B, beyond 4 sd ({sd:.0} B)");
}
