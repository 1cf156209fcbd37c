//! The overhead governor: from the probe hits of the last second and the
//! per-hit costs calibrated on this host, the share of each second during
//! which the allocation probes stay attached (the free probes always are, so
//! that every sampled block that is freed is forgotten). Detaching is what
//! saves the target's time: a trap costs the same whether or not the BPF
//! program then does anything, so sampling inside BPF would save nothing.
//! The share is planned per cycle; the `Allowance` enforces the budget over
//! a tenth of a second, so that a burst (a loop that starts mid-cycle) pays
//! for milliseconds, not for a cycle's worth of budget.

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
/// among `DUTIES`; None when even the lowest exceeds it. (Full mode has no
/// choice: its window's allowance decides when it stops.)
pub fn choose(costs: Costs, rates: Rates, budget: f64) -> Option<f64> {
    DUTIES.iter().copied().find(|d| cost(costs, rates, *d) <= budget)
}

/// Frees counted that make a rate, not a burst.
pub const RATE_FREES: f64 = 100.0;

/// Whether the frees alone, traced at every duty, cost more than `budget`,
/// from at least `RATE_FREES` of them (`counted`).
pub fn frees_alone_over(costs: Costs, rates: Rates, counted: f64, budget: f64) -> bool {
    counted >= RATE_FREES && cost(costs, Rates { allocations_per_attached_s: 0.0, ..rates }, 0.0) > budget
}

/// The span over which a rate may be spent ahead: a burst is charged at most
/// its `Allowance`'s rate times this before the allowance is overdrawn.
pub const HORIZON: f64 = 0.1;

/// The rate an attached (`duty` 1) or detached (0) part of a cycle may cost
/// over a `HORIZON` before it ends: twice what the rates it was planned from
/// cost, and never less than the budget. The part is planned to cost more
/// than the budget while attached (the detached part makes up for it); twice
/// the plan lets bursts through and catches a target whose rate jumped (a
/// loop that starts after a quiet measurement) within one tick.
pub fn ceiling(costs: Costs, planned: Rates, duty: f64, budget: f64) -> f64 {
    (2.0 * cost(costs, planned, duty)).max(budget)
}

/// A rate as a bucket: it fills at `rate` CPU-seconds per second up to
/// `rate * HORIZON`, and every tick's estimated cost is taken out of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Allowance {
    budget: f64,
    left: f64,
    /// The most it holds, in seconds of `budget`.
    horizon: f64,
}

impl Allowance {
    /// A full bucket for `budget` (a share of one CPU: the rate it fills at).
    pub fn new(budget: f64) -> Allowance {
        Allowance { budget, left: budget * HORIZON, horizon: HORIZON }
    }

    /// Full mode's: it starts with `HORIZON`'s worth of `budget` and keeps
    /// what is not spent for up to `window` seconds, so that a burst may
    /// spend what the quiet part of the window saved while the cost so far
    /// stays within the budget over the time so far (plus `HORIZON`'s).
    pub fn over_window(budget: f64, window: f64) -> Allowance {
        Allowance { budget, left: budget * HORIZON, horizon: window.max(HORIZON) }
    }

    /// Takes `spent` CPU-seconds over `elapsed` seconds; false once overdrawn.
    pub fn charge(&mut self, spent: f64, elapsed: f64) -> bool {
        self.left = (self.left + self.budget * elapsed).min(self.budget * self.horizon) - spent;
        self.left >= 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_lets_a_steady_cost_within_the_budget_run_and_stops_a_burst_at_once() {
        let mut steady = Allowance::new(0.05);
        // 4 % of a CPU, in 10 ms ticks, for 10 s: never overdrawn.
        assert!((0..1000).all(|_| steady.charge(0.04 * 0.01, 0.01)));
        // Bursty at 4 % on average: 6.5 % in one tick, 1.5 % in the next.
        let mut bursty = Allowance::new(0.05);
        assert!((0..1000).all(|i| bursty.charge(if i % 2 == 0 { 0.065 } else { 0.015 } * 0.01, 0.01)));
        // A whole CPU from the start: the first 10 ms tick overdraws 5 ms of allowance.
        let mut burst = Allowance::new(0.05);
        assert!(!burst.charge(0.01, 0.01));
        // 6 % sustained: overdrawn within a second (0.005 s ahead, 0.0001 s more a tick).
        let mut over = Allowance::new(0.05);
        let ticks = (0..1000).take_while(|_| over.charge(0.06 * 0.01, 0.01)).count();
        // The first tick takes 0.6 ms from the full 5 ms, each next one 0.1 ms more than refills.
        assert!((44..=46).contains(&ticks), "overdrawn after {ticks} ticks, not about 45");
        // Planned quiet: a jump is held to the budget; planned busy: to twice the plan.
        let quiet = Rates { allocations_per_attached_s: 0.0, frees_per_s: 0.0 };
        assert_eq!(ceiling(COSTS, quiet, 1.0, 0.05), 0.05);
        let planned = Rates { allocations_per_attached_s: 20_000.0, frees_per_s: 100.0 };
        assert!((ceiling(COSTS, planned, 1.0, 0.05) - 0.2002).abs() < 1e-9, "2 x (10 % + 0.01 %)");
        assert_eq!(ceiling(COSTS, planned, 0.0, 0.05), 0.05, "detached: the frees' 0.02 % is under the budget");
    }

    #[test]
    fn full_modes_allowance_lets_a_burst_spend_what_the_quiet_window_saved() {
        let mut full = Allowance::over_window(0.05, 60.0);
        // 2 s quiet in 10 ms ticks: 100 ms of CPU saved (and the first 5 ms).
        assert!((0..200).all(|_| full.charge(0.0, 0.01)));
        // A burst of 100 ms of CPU in one tick fits: 5 % of the 2 s so far, plus the horizon's.
        assert!(full.charge(0.1, 0.01));
        // Then it holds next to nothing: a loop at a whole CPU is stopped in its first tick.
        assert!(!full.charge(0.01, 0.01));
        // The same burst right at the start is over the budget.
        assert!(!Allowance::over_window(0.05, 60.0).charge(0.1, 0.01));
        // Kept for no longer than the window: 100 s quiet of a 2 s window keeps 2 s' worth.
        let mut short = Allowance::over_window(0.05, 2.0);
        assert!(short.charge(0.0, 100.0));
        assert!(!short.charge(0.1 + 0.001, 0.0), "0.1 CPU-seconds kept at most");
    }

    const COSTS: Costs = Costs { allocation_ns: 5_000.0, free_ns: 1_000.0 };

    #[test]
    fn the_duty_falls_as_the_rate_rises_and_stops_past_the_lowest() {
        let quiet = Rates { allocations_per_attached_s: 100.0, frees_per_s: 100.0 };
        assert_eq!(choose(COSTS, quiet, 0.05), Some(1.0), "0.06 % of a CPU fits 5 %");
        // 100,000 allocations/s cost 50 % at full rate: 0.05 fits with the frees (10 % alone... no: 100/s).
        let busy = Rates { allocations_per_attached_s: 100_000.0, frees_per_s: 100.0 };
        let duty = choose(COSTS, busy, 0.05).unwrap();
        assert_eq!(duty, 0.05);
        assert!(cost(COSTS, busy, duty) <= 0.05);
        // Frees alone cost 10 %: no duty fits a 5 % budget.
        let frees = Rates { allocations_per_attached_s: 100_000.0, frees_per_s: 100_000.0 };
        assert_eq!(choose(COSTS, frees, 0.05), None);
        assert!(frees_alone_over(COSTS, frees, 1_000.0, 0.05), "100,000 frees/s cost 10 %");
        assert!(!frees_alone_over(COSTS, frees, 99.0, 0.05), "99 frees are a burst, not a rate");
        assert!(!frees_alone_over(COSTS, busy, 1_000.0, 0.05), "100 frees/s cost 0.01 %, whatever the allocations");
    }
}
