//! The trace window: cycles in which the allocation probes are attached for
//! the share the governor allows and detached for the rest, the free probes
//! staying attached throughout. Hits are counted every 10 ms and charged to
//! an allowance at twice the rate the part was planned at: overdrawn, the
//! attached part ends early, or the trace when the frees alone are over the budget. Each cycle's sampled allocations
//! weigh the inverse of the share of its activity (its frees) sampled.
//! Detaching removes the breakpoints at once but then waits for an RCU grace
//! period (tens of milliseconds here) before the probes can be attached
//! again, so cycles last seconds, not milliseconds. A process the target
//! forks that still runs its program a tick later ends the window: it
//! inherited the breakpoints, and only detaching removes them from it.

use super::governor::{self, Allowance, Costs, Rates};
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
/// long (and the allowance) at the old share, plus the time its
/// breakpoints take to go. (At 100 ms, a 0.3 s malloc loop that started
/// after the capture paid 9 to 16 % of a CPU for a 5 % budget.)
const TICK: Duration = Duration::from_millis(10);
/// The shortest cycle whose attached part the allowance ended early: its
/// rates plan the next, and a burst of a paced load (a hundred calls in 20
/// ms, then a sleep) read over less would stop the trace as over budget.
const EARLY_CYCLE: Duration = Duration::from_secs(1);
/// Frees in each part of a cycle that make its activity a measure.
const ACTIVITY_FREES: u64 = 100;

/// What the window did.
#[derive(Debug)]
pub struct Outcome {
    pub ending: Ending,
    pub segments: Vec<Segment>,
    /// Time the allocation probes were attached, and the window's length.
    pub attached: Duration,
    /// Frees counted while the allocation probes were attached, and in all,
    /// over the sampled cycles.
    pub activity: (u64, u64),
    /// Time spent attaching the allocation probes at the start of cycles.
    pub attaching: Duration,
    pub elapsed: Duration,
    /// CLOCK_MONOTONIC when it ended (before the probes were detached).
    pub end_ns: u64,
    /// How long the probes took to go at the end: they trap until then.
    pub detach: Duration,
    /// The target's estimated added CPU: in CPU-seconds over the window, and
    /// the highest share of one CPU over one tick.
    pub cost_cpu_seconds: f64,
    pub max_cost: f64,
    /// The longest tick: what the host let a 10 ms tick last.
    pub longest_tick: Duration,
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
        activity: (0, 0),
        attaching: Duration::ZERO,
        elapsed: Duration::ZERO,
        end_ns: 0,
        detach: Duration::ZERO,
        cost_cpu_seconds: 0.0,
        max_cost: 0.0,
        longest_tick: Duration::ZERO,
    };
    let mut meter = Meter { last: probes.counters() };
    let mut detaching: Option<Detaching> = None;
    // First every probe for MEASURE: the rates the governor starts from, so
    // that a target too busy for the budget pays for 10 ms, not a cycle.
    let (mut duty, mut planned, stop) = measure(probes, &mut meter, &mut out, costs, options, wait)?;
    if let Some(ending) = stop {
        out.ending = ending;
        return finish(probes, out, start, None);
    }
    // Full mode, where nothing may be sampled, accounts its budget over the
    // whole window: a burst spends what the quiet time before it saved (a
    // burst of a thousand allocations, read over 100 ms, stopped it at 35 %
    // while the window's mean was 1.7 %). Its measurement is charged too.
    let mut full_allowance = Allowance::over_window(options.budget, duration.as_secs_f64());
    full_allowance.charge(out.cost_cpu_seconds, start.elapsed().as_secs_f64());
    // The measurement's probes stay attached into the first cycle: detaching
    // them to attach them again at once cost a grace period during which the
    // free probes trapped uncharged (a loop starting then paid for it unseen).
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
        let frees_at_start = probes.counters().free_calls;
        if let Some(ending) = attach_or_end(probes, wait)? {
            break 'cycles ending;
        }
        // Sampling begins when the return probes are in, at the end of the
        // attaching: the time it took is part of the cycle, not of its share.
        let attached_at = Instant::now();
        out.attaching += attached_at.duration_since(begun);
        // Hits while the last detach was joined, or while attaching, belong to no tick's rates.
        meter.last = probes.counters();
        let at_attach = meter.last;
        let mut stop = None;
        let cycle_budget = options.budget * cycle.as_secs_f64();
        let mut cycle_spent = 0.0;
        // Attached: every tick charged to an allowance at twice the planned
        // cost (the window's in full mode) and to the cycle's budget; either
        // overdrawn, the allocation probes go for the rest of the cycle (in full
        // mode, where nothing may be sampled, the trace stops).
        let mut allowance = if options.full {
            full_allowance
        } else {
            Allowance::new(governor::ceiling(costs, planned, 1.0, options.budget))
        };
        while begun.elapsed() < on_for {
            let (tick, waited) = tick(probes, &mut meter, &mut out, on_for - begun.elapsed(), true, wait);
            let rates = tick.rates;
            let spent = charge(&mut out, costs, &tick, 1.0);
            cycle_spent += spent;
            // What the frees will cost over the rest of the cycle is kept for them.
            let frees = meter.last.free_calls.saturating_sub(at_attach.free_calls) as f64;
            // (Over at least the allowance's horizon: a burst in the first tick is no rate.)
            let span = attached_at.elapsed().as_secs_f64().max(governor::HORIZON);
            let frees_per_s = (frees / span).max(planned.frees_per_s);
            let frees_ahead = frees_per_s * costs.free_ns / 1e9 * cycle.saturating_sub(begun.elapsed()).as_secs_f64();
            let within = allowance.charge(spent, tick.took.as_secs_f64())
                && (options.full || cycle_spent + frees_ahead <= cycle_budget);
            if let Err(ending) = waited {
                stop = Some(ending);
                break;
            }
            if within {
                continue;
            }
            // The frees alone are judged once detached, by their own allowance:
            // one tick of a paced service's burst here reads as over the budget.
            if options.full {
                stop = Some(full_over_budget(&out, rates, options, start.elapsed()));
            }
            break;
        }
        let on_time = if options.full {
            begun.elapsed()
        } else {
            let detached = probes.detach_allocations();
            let on_time = detached.started.saturating_duration_since(attached_at);
            detaching = Some(detached);
            on_time
        };
        let at_detach = probes.counters();
        let frees_attached = at_detach.free_calls.saturating_sub(at_attach.free_calls);
        let allocations = at_detach.allocation_calls.saturating_sub(at_attach.allocation_calls);
        let allocation_rate = allocations as f64 / on_time.as_secs_f64().max(1e-3);
        out.attached += on_time;
        // Ended early by the allowance, the cycle lasts only until its cost is
        // back within the budget: the next one is planned from what this one
        // measured, rather than sampling the rest of the cycle at a sliver.
        let early = !options.full && on_time < on_for.saturating_sub(attached_at.duration_since(begun));
        if stop.is_none() {
            // Detached: frees only, charged every tick; over their allowance and the budget, the trace stops.
            let mut allowance = Allowance::new(governor::ceiling(costs, planned, 0.0, options.budget));
            let recovered = |spent: f64| {
                early && begun.elapsed() >= EARLY_CYCLE && spent <= options.budget * begun.elapsed().as_secs_f64()
            };
            while begun.elapsed() < cycle && !recovered(cycle_spent) {
                let (tick, waited) = tick(probes, &mut meter, &mut out, cycle - begun.elapsed(), false, wait);
                let spent = charge(&mut out, costs, &tick, 0.0);
                cycle_spent += spent;
                let within = allowance.charge(spent, tick.took.as_secs_f64());
                if let Err(ending) = waited {
                    stop = Some(ending);
                    break;
                }
                if !within && frees_alone_over(costs, &tick, options) {
                    let rates = Rates { allocations_per_attached_s: allocation_rate, ..tick.rates };
                    stop = Some(frees_over_ending(costs, rates, options, "while the allocation probes were detached"));
                    break;
                }
            }
        }
        let cycle_time = begun.elapsed().max(on_time);
        let frees_in_cycle = meter.last.free_calls.max(at_detach.free_calls).saturating_sub(frees_at_start);
        // Full mode has the probes attached throughout: its weight is exactly one
        // (the two clock readings would make it a hair above, and sizes off by a byte).
        let share = if options.full {
            1.0
        } else {
            let time_share = on_time.as_secs_f64() / cycle_time.as_secs_f64().max(1e-9);
            activity_share(frees_attached, frees_in_cycle).unwrap_or(time_share)
        };
        if !options.full {
            out.activity.0 += frees_attached;
            out.activity.1 += frees_in_cycle;
        }
        out.segments.push(Segment { start_ns, duty: share });
        if let Some(ending) = stop {
            break 'cycles ending;
        }
        if options.full {
            // Its one cycle lasted the window.
            continue;
        }
        let frees_per_s = frees_in_cycle as f64 / cycle_time.as_secs_f64().max(1e-3);
        let rates = Rates { allocations_per_attached_s: allocation_rate, frees_per_s };
        planned = rates;
        match governor::choose(costs, rates, options.budget) {
            Some(next) => duty = next,
            None => break 'cycles over_budget(costs, rates, options),
        }
    };
    finish(probes, out, start, detaching)
}

/// The share of a cycle's activity during which its allocations were
/// sampled: its frees (traced throughout) while the allocation probes were
/// attached, of all its frees. The traps slow the target while attached, so
/// fewer of its calls fall in the attached time than its share of the clock
/// (weighing by time, the benchmark's leak came out at 0.73 to 0.79 of the
/// truth). None when either part counted too few frees to measure it.
fn activity_share(frees_attached: u64, frees_in_cycle: u64) -> Option<f64> {
    let detached = frees_in_cycle.saturating_sub(frees_attached);
    (frees_attached >= ACTIVITY_FREES && detached >= ACTIVITY_FREES)
        .then(|| frees_attached as f64 / frees_in_cycle as f64)
}

/// Waits one tick (at most `left`) and counts its hits: the rates, how long
/// it took, and why to stop.
fn tick(
    probes: &Probes,
    meter: &mut Meter,
    out: &mut Outcome,
    left: Duration,
    attached: bool,
    wait: &mut dyn FnMut(Duration) -> Result<(), String>,
) -> (Tick, Result<(), Ending>) {
    let ticked = Instant::now();
    let waited = wait(TICK.min(left));
    let took = ticked.elapsed();
    out.longest_tick = out.longest_tick.max(took);
    let frees_before = meter.last.free_calls;
    let now = probes.counters();
    let rates = meter.rates(now, if attached { took } else { Duration::ZERO }, took);
    let frees = meter.last.free_calls.saturating_sub(frees_before);
    (Tick { rates, took, frees }, stop_for(probes, now, waited))
}

/// Attaches the allocation probes; when that fails because the target exec'd
/// or exited since the last cycle (the mapped files named by its old maps are
/// gone), the window ends there with what it traced, as after a tick.
fn attach_or_end(
    probes: &mut Probes,
    wait: &mut dyn FnMut(Duration) -> Result<(), String>,
) -> Result<Option<Ending>, Problem> {
    let Err(problem) = probes.attach_allocations() else { return Ok(None) };
    match stop_for(probes, probes.counters(), wait(Duration::ZERO)) {
        Err(ending) => Ok(Some(ending)),
        Ok(()) => Err(problem),
    }
}

/// Why the window must end after a wait: the caller's reason, or a process
/// the target forked that has run its copy of the program (breakpoints
/// included) for a tick: it traps on every allocator call until the probes
/// go, 300 to 3000 times slower in a malloc loop. (One that execs or exits
/// first pays for a few calls: a service that spawns commands goes on.)
fn stop_for(probes: &Probes, now: Counters, waited: Result<(), String>) -> Result<(), Ending> {
    waited.map_err(Ending::Interrupted)?;
    if now.execs > 0 {
        return Err(Ending::Exec(format!(
            "process {} exec'd: its frames after that name another image (the profile holds what it held then)",
            probes.pid()
        )));
    }
    if now.forks == 0 {
        return Ok(());
    }
    let forked_by = calibrate::monotonic_ns().saturating_sub(TICK.as_nanos() as u64);
    let child = match probes.lasting_child(forked_by) {
        Some(pid) => format!("child {pid}"),
        None if now.children_full > 0 => format!("{} children it could not follow", now.children_full),
        None => return Ok(()),
    };
    Err(Ending::Forked(format!(
        "process {} forked {child}, which runs its copy of the program: the probes were removed to spare it (a forked process inherits the breakpoints, and the kernel traps it on every allocator call until they go)",
        probes.pid()
    )))
}

/// One tick's hits.
#[derive(Debug, Clone, Copy)]
struct Tick {
    rates: Rates,
    took: Duration,
    /// Frees counted in it.
    frees: u64,
}

/// Charges `tick` at `duty` to the window: what it cost, in CPU-seconds.
fn charge(out: &mut Outcome, costs: Costs, tick: &Tick, duty: f64) -> f64 {
    let cost = governor::cost(costs, tick.rates, duty);
    let spent = cost * tick.took.as_secs_f64();
    out.cost_cpu_seconds += spent;
    out.max_cost = out.max_cost.max(cost);
    spent
}

/// Whether the frees of `tick` alone, traced at every share, cost more than the budget.
fn frees_alone_over(costs: Costs, tick: &Tick, options: &Options) -> bool {
    governor::frees_alone_over(costs, tick.rates, tick.frees as f64, options.budget)
}

fn frees_over_ending(costs: Costs, rates: Rates, options: &Options, when: &str) -> Ending {
    Ending::OverBudget(over_budget_reason(costs, rates, options, &format!(" (the frees alone, {when})")))
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
) -> Result<(f64, Rates, Option<Ending>), Problem> {
    out.segments.push(Segment { start_ns: calibrate::monotonic_ns(), duty: if options.full { 1.0 } else { 0.0 } });
    let begun = Instant::now();
    if let Some(ending) = attach_or_end(probes, wait)? {
        return Ok((0.0, Rates { allocations_per_attached_s: 0.0, frees_per_s: 0.0 }, Some(ending)));
    }
    let attached = Instant::now();
    let waited = wait(MEASURE);
    // A tick too: a loop that starts in it pays for it before the allowances see it.
    out.longest_tick = out.longest_tick.max(attached.elapsed());
    let took = begun.elapsed();
    let before = meter.last;
    let now = probes.counters();
    let rates = meter.rates(now, took, took);
    let frees = meter.last.free_calls.saturating_sub(before.free_calls);
    charge(out, costs, &Tick { rates, took, frees }, 1.0);
    // Its allocations count in the allocated totals (scaled by the time attached), not in the in-use profile.
    out.attached += begun.elapsed();
    if let Err(ending) = stop_for(probes, now, waited) {
        return Ok((0.0, rates, Some(ending)));
    }
    // A few calls in 10 ms are no rate (one iteration of a slow target read
    // as hundreds a second): attached throughout, planned as quiet, until the
    // allowance ends the attached part and the next cycle is planned from it.
    // Over the budget, they may be a burst (a paced service's hundred calls
    // in its first 10 ms stopped the trace): the lowest share, planned as
    // quiet, so that the allowances (at the budget) tell within a tick
    // whether it lasts, and the frees' one stops the trace if so.
    if options.full {
        // The window's allowance judges it, this measurement included.
        return Ok((1.0, rates, None));
    }
    let quiet = Rates { allocations_per_attached_s: 0.0, frees_per_s: 0.0 };
    let calls = meter.last.allocation_calls.saturating_sub(before.allocation_calls) + frees;
    if (calls as f64) < governor::RATE_FREES {
        return Ok((1.0, quiet, None));
    }
    let lowest = governor::DUTIES[governor::DUTIES.len() - 1];
    Ok(match governor::choose(costs, rates, options.budget) {
        Some(duty) => (duty, rates, None),
        None => (lowest, quiet, None),
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

/// Full mode's window allowance overdrawn: what it cost so far, against the budget over that time.
fn full_over_budget(out: &Outcome, rates: Rates, options: &Options, elapsed: Duration) -> Ending {
    Ending::OverBudget(format!(
        "stopped by the overhead governor: full mode had cost the target {:.3} CPU-seconds in {:.2} s ({:.0} allocations/s in the last 10 ms), over the budget of {:.2} % of a CPU over the window so far: the sampled mode (the default) stays within it",
        out.cost_cpu_seconds,
        elapsed.as_secs_f64(),
        rates.allocations_per_attached_s,
        options.budget * 100.0
    ))
}

fn over_budget(costs: Costs, rates: Rates, options: &Options) -> Ending {
    Ending::OverBudget(over_budget_reason(costs, rates, options, ""))
}

/// Why the governor stopped the trace; `measured` says what the cost was measured on.
fn over_budget_reason(costs: Costs, rates: Rates, options: &Options, measured: &str) -> String {
    let lowest = governor::DUTIES[governor::DUTIES.len() - 1];
    format!(
        "stopped by the overhead governor: at {:.0} allocations/s and {:.0} frees/s, even the lowest rate (allocations traced {:.1} % of the time) would cost the target {:.2} % of a CPU{}, over the budget of {:.2} % (the free probes stay attached: about {:.0} frees/s fit the budget on this host); the capture kinds sampler or allocator-profile cost such a target less",
        rates.allocations_per_attached_s,
        rates.frees_per_s,
        lowest * 100.0,
        governor::cost(costs, rates, lowest) * 100.0,
        measured,
        options.budget * 100.0,
        options.budget * 1e9 / costs.free_ns.max(1.0)
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
