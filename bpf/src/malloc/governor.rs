//! The overhead governor: from the probe hits of the last second and the
//! per-hit costs calibrated on this host, the share of each second during
//! which the allocation probes stay attached (the free probes always are, so
//! that every sampled block that is freed is forgotten). Detaching is what
//! saves the target's time: a trap costs the same whether or not the BPF
//! program then does anything, so sampling inside BPF would save nothing.

/// Shares of each second with the allocation probes attached, highest first.
pub const DUTIES: [f64; 8] = [1.0, 0.5, 0.25, 0.1, 0.05, 0.02, 0.01, 0.005];

/// What one hit costs the target, in nanoseconds of its CPU time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    /// An allocation: its entry probe and its return probe.
    pub allocation_ns: f64,
    /// A free: its entry probe.
    pub free_ns: f64,
}

/// The rates measured over the last period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Allocation calls per second while their probes were attached.
    pub allocations_per_attached_s: f64,
    /// Free calls per second (their probes are always attached).
    pub frees_per_s: f64,
}

/// The target's added CPU (a share of one CPU) at `duty`.
pub fn cost(costs: Costs, rates: Rates, duty: f64) -> f64 {
    (rates.allocations_per_attached_s * duty * costs.allocation_ns + rates.frees_per_s * costs.free_ns) / 1e9
}

/// The highest duty whose cost stays within `budget` (a share of one CPU),
/// among `DUTIES` (only 1.0 in full mode); None when even the lowest exceeds it.
pub fn choose(costs: Costs, rates: Rates, budget: f64, full: bool) -> Option<f64> {
    let allowed: &[f64] = if full { &DUTIES[..1] } else { &DUTIES };
    allowed.iter().copied().find(|d| cost(costs, rates, *d) <= budget)
}

/// Frees counted that make a rate, not a burst.
pub const RATE_FREES: f64 = 100.0;

/// Whether the frees alone, traced at every duty, cost more than `budget`,
/// from at least `RATE_FREES` of them (`counted`).
pub fn frees_alone_over(costs: Costs, rates: Rates, counted: f64, budget: f64) -> bool {
    counted >= RATE_FREES && cost(costs, Rates { allocations_per_attached_s: 0.0, ..rates }, 0.0) > budget
}

#[cfg(test)]
mod tests {
    use super::*;

    const COSTS: Costs = Costs { allocation_ns: 5_000.0, free_ns: 1_000.0 };

    #[test]
    fn the_duty_falls_as_the_rate_rises_and_stops_past_the_lowest() {
        let quiet = Rates { allocations_per_attached_s: 100.0, frees_per_s: 100.0 };
        assert_eq!(choose(COSTS, quiet, 0.05, false), Some(1.0), "0.06 % of a CPU fits 5 %");
        // 100,000 allocations/s cost 50 % at full rate: 0.05 fits with the frees (10 % alone... no: 100/s).
        let busy = Rates { allocations_per_attached_s: 100_000.0, frees_per_s: 100.0 };
        let duty = choose(COSTS, busy, 0.05, false).unwrap();
        assert_eq!(duty, 0.05);
        assert!(cost(COSTS, busy, duty) <= 0.05);
        assert_eq!(choose(COSTS, busy, 0.05, true), None, "full mode does not sample: it stops instead");
        // Frees alone cost 10 %: no duty fits a 5 % budget.
        let frees = Rates { allocations_per_attached_s: 100_000.0, frees_per_s: 100_000.0 };
        assert_eq!(choose(COSTS, frees, 0.05, false), None);
        assert!(frees_alone_over(COSTS, frees, 1_000.0, 0.05), "100,000 frees/s cost 10 %");
        assert!(!frees_alone_over(COSTS, frees, 99.0, 0.05), "99 frees are a burst, not a rate");
        assert!(!frees_alone_over(COSTS, busy, 1_000.0, 0.05), "100 frees/s cost 0.01 %, whatever the allocations");
    }
}
