//! The trace window: cycles in which the allocation probes are attached for
//! the share the governor allows and detached for the rest, the free probes
//! staying attached throughout. Hits are counted every 100 ms: a tick
//! whose cost would take the cycle past the budget ends the attached part
//! early, and frees alone costing more than the budget end the trace.
//! Detaching removes the breakpoints at once but then waits for an RCU grace
//! period (tens of milliseconds here) before the probes can be attached
//! again, so cycles last seconds, not milliseconds.

use super::governor::{self, Costs, Rates};
use super::probes::{Counters, Detaching, Probes};
use super::report::Segment;
use super::{Ending, Options, calibrate};
use memleak_signals::Problem;
use std::time::{Duration, Instant};

/// A cycle: the allocation probes are attached at its start for its share.
const CYCLE: Duration = Duration::from_secs(5);
/// Every probe is attached this long first, to measure the rates.
const MEASURE: Duration = Duration::from_millis(10);
/// How often hits are counted: a target whose rate jumps pays at most this
/// long at the old share (plus the time its probes take to detach).
const TICK: Duration = Duration::from_millis(100);

/// What the window did.
#[derive(Debug)]
pub struct Outcome {
    pub ending: Ending,
    pub segments: Vec<Segment>,
    /// Time the allocation probes were attached, and the window's length.
    pub attached: Duration,
    pub elapsed: Duration,
    /// CLOCK_MONOTONIC when it ended (before the probes were detached).
    pub end_ns: u64,
    /// How long the probes took to go at the end: they trap until then.
    pub detach: Duration,
    /// The target's estimated added CPU: in CPU-seconds over the window, and
    /// the highest share of one CPU over one second.
    pub cost_cpu_seconds: f64,
    pub max_cost: f64,
}

/// Runs the window on `probes` (free probes already attached).
pub fn run(
    probes: &mut Probes,
    costs: Costs,
    options: &Options,
    duration: Duration,
    wait: &mut dyn FnMut(Duration) -> Result<(), String>,
) -> Result<Outcome, Problem> {
    let start = Instant::now();
    let mut out = Outcome {
        ending: Ending::Elapsed,
        segments: Vec::new(),
        attached: Duration::ZERO,
        elapsed: Duration::ZERO,
        end_ns: 0,
        detach: Duration::ZERO,
        cost_cpu_seconds: 0.0,
        max_cost: 0.0,
    };
    let mut meter = Meter { last: probes.counters() };
    let mut detaching: Option<Detaching> = None;
    // First every probe for MEASURE: the rates the governor starts from, so
    // that a target too busy for the budget pays for 10 ms, not a cycle.
    let (mut duty, stop) = measure(probes, &mut meter, &mut out, costs, options, wait)?;
    if let Some(ending) = stop {
        out.ending = ending;
        return finish(probes, out, start, None);
    }
    if !options.full {
        detaching = Some(probes.detach_allocations());
    }
    out.ending = 'cycles: loop {
        let left = duration.saturating_sub(start.elapsed());
        if left.is_zero() {
            break Ending::Elapsed;
        }
        let cycle = if options.full { left } else { CYCLE.min(left) };
        let on_for = cycle.mul_f64(duty);
        if let Some(previous) = detaching.take() {
            previous.join();
        }
        let start_ns = calibrate::monotonic_ns();
        let begun = Instant::now();
        // Hits while the last detach was joined belong to no cycle's rates.
        meter.last = probes.counters();
        let frees_before = meter.last.free_calls;
        let mut cycle_spent = 0.0;
        probes.attach_allocations()?;
        let mut allocation_rate: f64 = 0.0;
        let mut stop = None;
        // Attached: count every tick; stop early if the cycle would go over budget.
        while begun.elapsed() < on_for {
            let tick = TICK.min(on_for - begun.elapsed());
            let ticked = Instant::now();
            let waited = wait(tick);
            let rates = meter.rates(probes.counters(), ticked.elapsed(), ticked.elapsed());
            allocation_rate = rates.allocations_per_attached_s;
            let cost = governor::cost(costs, rates, 1.0);
            cycle_spent += cost * ticked.elapsed().as_secs_f64();
            out.cost_cpu_seconds += cost * ticked.elapsed().as_secs_f64();
            out.max_cost = out.max_cost.max(cost);
            if let Err(reason) = waited {
                stop = Some(Ending::Interrupted(reason));
                break;
            }
            let cycle_budget = options.budget * cycle.as_secs_f64();
            let remaining = on_for.saturating_sub(begun.elapsed()).as_secs_f64();
            if options.full && cost > options.budget {
                stop = Some(over_budget(costs, rates, options));
                break;
            }
            if !options.full && cycle_spent + cost * remaining > cycle_budget {
                break;
            }
        }
        let on_time;
        if options.full {
            on_time = begun.elapsed();
        } else {
            let detached = probes.detach_allocations();
            on_time = detached.started.duration_since(begun);
            detaching = Some(detached);
        }
        out.attached += on_time;
        if stop.is_none() {
            // Detached: frees only, counted every tick.
            while begun.elapsed() < cycle {
                let tick = TICK.min(cycle - begun.elapsed());
                let ticked = Instant::now();
                let waited = wait(tick);
                let rates = meter.rates(probes.counters(), Duration::ZERO, ticked.elapsed());
                let cost = governor::cost(costs, Rates { allocations_per_attached_s: 0.0, ..rates }, 0.0);
                out.cost_cpu_seconds += cost * ticked.elapsed().as_secs_f64();
                cycle_spent += cost * ticked.elapsed().as_secs_f64();
                out.max_cost = out.max_cost.max(cost);
                if let Err(reason) = waited {
                    stop = Some(Ending::Interrupted(reason));
                    break;
                }
                // The cycle's cost if the frees' average rate over the cycle so
                // far held to its end, with one tick of slack: a burst in one
                // tick is not a rate (a sustained one is caught at once).
                let remaining = cycle.saturating_sub(begun.elapsed()).as_secs_f64();
                let allowed = options.budget * (cycle + TICK).as_secs_f64();
                let frees_so_far = meter.last.free_calls.saturating_sub(frees_before) as f64;
                let average = frees_so_far / begun.elapsed().as_secs_f64().max(1e-3) * costs.free_ns / 1e9;
                if average > options.budget && cycle_spent + average * remaining > allowed {
                    stop = Some(over_budget(
                        costs,
                        Rates { allocations_per_attached_s: allocation_rate, ..rates },
                        options,
                    ));
                    break;
                }
            }
        }
        let cycle_time = begun.elapsed().max(on_time);
        // Full mode has the probes attached throughout: its weight is exactly one
        // (the two clock readings would make it a hair above, and sizes off by a byte).
        let share = if options.full { 1.0 } else { on_time.as_secs_f64() / cycle_time.as_secs_f64().max(1e-9) };
        out.segments.push(Segment { start_ns, duty: share });
        if let Some(ending) = stop {
            break 'cycles ending;
        }
        let frees_per_s =
            meter.last.free_calls.saturating_sub(frees_before) as f64 / cycle_time.as_secs_f64().max(1e-3);
        let rates = Rates { allocations_per_attached_s: allocation_rate, frees_per_s };
        match governor::choose(costs, rates, options.budget, options.full) {
            Some(next) => duty = next,
            None => break 'cycles over_budget(costs, rates, options),
        }
    };
    finish(probes, out, start, detaching)
}

/// Every probe attached for `MEASURE`: the duty to start with, or why to stop
/// now. In a sampled trace what it records is not counted (each allocation
/// would weigh a hundred); in full mode it is the window's start.
fn measure(
    probes: &mut Probes,
    meter: &mut Meter,
    out: &mut Outcome,
    costs: Costs,
    options: &Options,
    wait: &mut dyn FnMut(Duration) -> Result<(), String>,
) -> Result<(f64, Option<Ending>), Problem> {
    out.segments.push(Segment { start_ns: calibrate::monotonic_ns(), duty: if options.full { 1.0 } else { 0.0 } });
    let begun = Instant::now();
    probes.attach_allocations()?;
    let waited = wait(MEASURE);
    let rates = meter.rates(probes.counters(), begun.elapsed(), begun.elapsed());
    let cost = governor::cost(costs, rates, 1.0);
    out.cost_cpu_seconds += cost * begun.elapsed().as_secs_f64();
    out.max_cost = out.max_cost.max(cost);
    // Its allocations count in the allocated totals (scaled by the time attached), not in the in-use profile.
    out.attached += begun.elapsed();
    if let Err(reason) = waited {
        return Ok((0.0, Some(Ending::Interrupted(reason))));
    }
    // 10 ms of a slow target's calls is noise: over budget, start at the
    // lowest share; the ticks (over the cycle so far) stop it if it lasts.
    // Unless the frees alone, which no share samples, cost more than the
    // budget over enough of them to be a rate (and they were slowed by the
    // allocation probes meanwhile: alone they come faster): then the first
    // tick would only spend the budget of seconds to find the same (with that
    // tick, a 1 s malloc loop paid 11 % of a CPU over its run for a 5 % budget).
    let frees = rates.frees_per_s * begun.elapsed().as_secs_f64();
    let frees_over = governor::frees_alone_over(costs, rates, frees, options.budget);
    let lowest = governor::DUTIES[governor::DUTIES.len() - 1];
    Ok(match governor::choose(costs, rates, options.budget, options.full) {
        Some(duty) => (duty, None),
        None if options.full => (0.0, Some(over_budget(costs, rates, options))),
        None if frees_over => {
            let reason = over_budget_reason(costs, rates, options);
            (0.0, Some(Ending::OverBudget(format!("{reason} (the frees alone, measured in the first 10 ms)"))))
        }
        None => (lowest, None),
    })
}

/// Ends the window: the maps frozen as they are now, then every probe detached.
fn finish(
    probes: &mut Probes,
    mut out: Outcome,
    start: Instant,
    detaching: Option<Detaching>,
) -> Result<Outcome, Problem> {
    out.elapsed = start.elapsed();
    out.end_ns = calibrate::monotonic_ns();
    let frozen = probes.freeze();
    let detaching_since = Instant::now();
    probes.detach();
    if let Some(previous) = detaching {
        previous.join();
    }
    out.detach = detaching_since.elapsed();
    frozen?;
    Ok(out)
}

fn over_budget(costs: Costs, rates: Rates, options: &Options) -> Ending {
    Ending::OverBudget(over_budget_reason(costs, rates, options))
}

fn over_budget_reason(costs: Costs, rates: Rates, options: &Options) -> String {
    let lowest = if options.full { 1.0 } else { governor::DUTIES[governor::DUTIES.len() - 1] };
    format!(
        "stopped by the overhead governor: at {:.0} allocations/s and {:.0} frees/s, {} would cost the target {:.2} % of a CPU, over the budget of {:.2} %",
        rates.allocations_per_attached_s,
        rates.frees_per_s,
        if options.full {
            "full mode".to_owned()
        } else {
            format!("even the lowest rate (allocations traced {:.1} % of the time)", lowest * 100.0)
        },
        governor::cost(costs, rates, lowest) * 100.0,
        options.budget * 100.0
    )
}

/// Hits since the last reading, as rates.
struct Meter {
    last: Counters,
}

impl Meter {
    /// Rates from the counters now: allocations over `attached`, frees over `elapsed`.
    fn rates(&mut self, now: Counters, attached: Duration, elapsed: Duration) -> Rates {
        let allocations = now.allocation_calls.saturating_sub(self.last.allocation_calls) as f64;
        let frees = now.free_calls.saturating_sub(self.last.free_calls) as f64;
        self.last = now;
        Rates {
            allocations_per_attached_s: if attached.is_zero() { 0.0 } else { allocations / attached.as_secs_f64() },
            frees_per_s: frees / elapsed.as_secs_f64().max(1e-3),
        }
    }
}
