"""Scenario families: random memory series with a known truth, for the randomized detection test.

Each family draws one scenario from a `random.Random`: the exporter's own series for one process
group or one cgroup (one sample a minute), whether it is a leak, and, for a leak, when it starts
and the deadline by which an alert must fire. Every draw randomizes rate, base, noise, period,
restart interval and phase; the ranges are stated here and in docs/detection.md. Families do not
know the rules: they are written from what memory does, not from what the rules look at.

Restarts look the way the exporter shows them: a process group's `start_time_seconds` changes and
its memory falls back; a recreated cgroup's series goes stale for a scrape or more and its counters
(page faults, memory events) start again from zero.
"""
import math
from dataclasses import dataclass, field

MB = 1_000_000
GB = 1_000_000_000
HOUR = 60  # minutes

# Leak rate classes from the issue: (lowest, highest rate in % of the base per hour, deadline in minutes).
RATE_CLASSES = {
    "fast": (4.0, 40.0, 2 * HOUR),
    "moderate": (1.0, 4.0, 4 * HOUR),
    "slow": (0.1, 1.0, 24 * HOUR),
}
# Every non-leak is watched this long; leaks are watched until this long after their deadline.
NON_LEAK_HORIZON = 36 * HOUR
AFTER_DEADLINE = 3 * HOUR
# Processes that are already running when the series start were started this long before.
LONG_AGO = 3 * 24 * 3600


@dataclass
class Draw:
    family: str
    leak: bool
    kind: str  # "process" or "cgroup"
    horizon: int  # minutes of series
    series: dict  # (metric, ((label, value), ...)) -> list of values (float, None = no sample, "stale")
    onset: int = 0  # minute the leak starts (leaks only)
    deadline: int = 0  # minutes after the onset by which a leak alert must fire (leaks only)
    params: dict = field(default_factory=dict)


def loguniform(rng, low, high):
    return math.exp(rng.uniform(math.log(low), math.log(high)))


class Noise:
    """White noise plus an Ornstein-Uhlenbeck wander, both in bytes."""

    def __init__(self, rng, white, wander=0.0, tau=60.0):
        self.rng, self.white, self.wander, self.tau = rng, white, wander, tau
        self.state = rng.gauss(0, wander) if wander else 0.0

    def __call__(self):
        if self.wander:
            a = math.exp(-1.0 / self.tau)
            self.state = a * self.state + math.sqrt(1 - a * a) * self.wander * self.rng.gauss(0, 1)
        return self.state + self.rng.gauss(0, self.white)


def base_and_noise(rng, base_range=(50 * MB, 8 * GB), noise_range=(0.0001, 0.01)):
    """A base size and noise: white noise of 0.01-1 % of the base, and in half the draws a slow wander."""
    base = loguniform(rng, *base_range)
    nu = loguniform(rng, *noise_range)
    wander = loguniform(rng, 0.0005, 0.005) * base if rng.random() < 0.5 else 0.0
    tau = loguniform(rng, 5, 60)
    params = {"base_MB": round(base / MB), "noise_pct": round(nu * 100, 3),
              "wander_pct": round(wander / base * 100, 3), "wander_tau_min": round(tau)}
    return base, Noise(rng, nu * base, wander, tau), params


def rate_class(rng, name=None):
    name = name or rng.choice(list(RATE_CLASSES))
    low, high, deadline = RATE_CLASSES[name]
    return name, loguniform(rng, low, high) / 100 / HOUR, deadline  # fraction of the base per minute


def process_series(anon, start, oom=None):
    s = {("memleak_process_anon_bytes", ()): anon, ("memleak_process_start_time_seconds", ()): start}
    if oom is not None:
        s[("memleak_host_memory_oom_kills_total", ())] = oom
    return s


def steady_start(horizon):
    return [-LONG_AGO] * (horizon + 1)


def warmup(rng):
    """A leaking process's own warm-up after it starts: (tau in minutes, level it starts from as a fraction of the base)."""
    return loguniform(rng, 1, 20), rng.uniform(0.05, 0.5)


def approach(low, high, age, tau):
    return high - (high - low) * math.exp(-age / tau)


# ---- leaks ------------------------------------------------------------------------------------


def leak_linear(rng):
    cls, rate, deadline = rate_class(rng)
    base, noise, p = base_and_noise(rng)
    onset = rng.randint(0, 6 * HOUR)
    horizon = onset + deadline + AFTER_DEADLINE
    anon = [base * (1 + rate * max(0, t - onset)) + noise() for t in range(horizon + 1)]
    return Draw("linear leak", True, "process", horizon, process_series(anon, steady_start(horizon)), onset, deadline,
                {"class": cls, "rate_pct_h": round(rate * HOUR * 100, 3), "onset_min": onset, **p})


def leak_after_start(rng):
    """A process that starts (start time changes), warms up, then leaks. The deadline runs from the
    end of the warm-up: when its own growth has fallen to a quarter of the leak's, since until then the
    two cannot be told apart."""
    cls, rate, deadline = rate_class(rng)
    base, noise, p = base_and_noise(rng)
    tau, low = warmup(rng)
    low *= base
    start = rng.randint(0, 4 * HOUR)
    # The warm-up grows at (base - low)/tau exp(-t/tau); the leak at rate * base.
    onset = start + max(0, round(tau * math.log(4 * (base - low) / (tau * rate * base))))
    horizon = onset + deadline + AFTER_DEADLINE

    def value(t):
        if t < start:
            return base + noise()
        return approach(low, base, t - start, tau) + base * rate * (t - start) + noise()

    anon = [value(t) for t in range(horizon + 1)]
    starts = [-LONG_AGO if t < start else start * 60 for t in range(horizon + 1)]
    return Draw("leak from process start", True, "process", horizon, process_series(anon, starts), onset, deadline,
                {"class": cls, "rate_pct_h": round(rate * HOUR * 100, 3), "warmup_tau_min": round(tau, 1),
                 "start_min": start, **p})


def leak_step(rng):
    """Steps of equal height every 20 min to 3 h. A few steps are indistinguishable from one-off fills:
    the deadline is the class deadline or ten periods, whichever is longer."""
    cls, rate, deadline = rate_class(rng)
    base, noise, p = base_and_noise(rng)
    period = rng.randint(20, 3 * HOUR)
    phase = rng.randint(0, period - 1)
    onset = rng.randint(0, 4 * HOUR)
    deadline = max(deadline, 10 * period)
    horizon = onset + deadline + AFTER_DEADLINE
    height = rate * period * base
    anon = [base + height * (0 if t < onset else 1 + (t - onset + phase) // period - phase // period) + noise()
            for t in range(horizon + 1)]
    # The first step lands at the onset (phase 0) or at the next period boundary.
    return Draw("step leak", True, "process", horizon, process_series(anon, steady_start(horizon)), onset, deadline,
                {"class": cls, "rate_pct_h": round(rate * HOUR * 100, 3), "period_min": period, **p})


def sawtooth(t, period, phase):
    return ((t + phase) % period) / period


def leak_sawtooth(rng):
    """A garbage-collected heap (a sawtooth of 1-10 min) whose floor rises."""
    cls, rate, deadline = rate_class(rng)
    base, noise, p = base_and_noise(rng)
    period = rng.randint(1, 10)
    phase = rng.randint(0, period - 1)
    amp = loguniform(rng, 0.05, 1.0) * base
    onset = rng.randint(0, 6 * HOUR)
    horizon = onset + deadline + AFTER_DEADLINE
    anon = [base * (1 + rate * max(0, t - onset)) + amp * sawtooth(t, period, phase) + noise()
            for t in range(horizon + 1)]
    return Draw("sawtooth, rising floor", True, "process", horizon, process_series(anon, steady_start(horizon)), onset,
                deadline, {"class": cls, "rate_pct_h": round(rate * HOUR * 100, 3), "period_min": period,
                           "amplitude_pct": round(amp / base * 100), **p})


def leak_large_base(rng):
    cls, rate, deadline = rate_class(rng, "slow")
    base, noise, p = base_and_noise(rng, (8 * GB, 64 * GB), (0.00005, 0.002))
    onset = rng.randint(0, 4 * HOUR)
    horizon = onset + deadline + AFTER_DEADLINE
    anon = [base * (1 + rate * max(0, t - onset)) + noise() for t in range(horizon + 1)]
    return Draw("slow leak, large base", True, "process", horizon, process_series(anon, steady_start(horizon)), onset,
                deadline, {"class": cls, "rate_pct_h": round(rate * HOUR * 100, 3), **p})


def leak_many_small(rng):
    """A group of 8-64 processes (one series, as group_by=comm sums them), a random share of which leak
    small amounts from staggered onsets; the leak's onset is when half the final rate is reached."""
    cls, rate, deadline = rate_class(rng)
    n = rng.randint(8, 64)
    base = loguniform(rng, 200 * MB, 16 * GB)
    sizes = [loguniform(rng, 0.3, 3) for _ in range(n)]
    scale = base / sum(sizes)
    sizes = [s * scale for s in sizes]
    leakers = [i for i in range(n) if rng.random() < rng.uniform(0.2, 1.0)] or [0]
    weights = [rng.random() for _ in leakers]
    first = rng.randint(0, 4 * HOUR)
    onsets = sorted(first + rng.randint(0, HOUR) for _ in leakers)
    rates = [rate * base * w / sum(weights) for w in weights]
    onset = onsets[len(onsets) // 2]
    horizon = onset + deadline + AFTER_DEADLINE
    members = [Noise(rng, loguniform(rng, 0.001, 0.02) * s) for s in sizes]
    periods = [(rng.randint(1, 10), loguniform(rng, 0.01, 0.3) * s) for s in sizes]
    anon = []
    for t in range(horizon + 1):
        total = sum(s + m() + a * sawtooth(t, per, i) for i, (s, m, (per, a)) in enumerate(zip(sizes, members, periods)))
        total += sum(r * max(0, t - o) for r, o in zip(rates, onsets))
        anon.append(total)
    return Draw("many small leakers", True, "process", horizon, process_series(anon, steady_start(horizon)), onset,
                deadline, {"class": cls, "rate_pct_h": round(rate * HOUR * 100, 3), "processes": n,
                           "leaking": len(leakers), "base_MB": round(base / MB)})


def incarnations(rng, horizon, mean, jitter=0.15):
    """Restart minutes: every `mean` minutes, each interval jittered by +-15 %."""
    t, out = 0, []
    while True:
        t += max(10, round(mean * rng.uniform(1 - jitter, 1 + jitter)))
        if t > horizon:
            return out
        out.append(t)


def leak_restarts(rng):
    """A leaking service restarted every 1-12 h, by the OOM killer (the host's counter moves) or by a
    redeploy, each incarnation growing 10-200 % of its base after a short warm-up. Deadline: the end of
    the third incarnation."""
    base, noise, p = base_and_noise(rng)
    mean = loguniform(rng, HOUR, 12 * HOUR)
    growth = loguniform(rng, 0.1, 2.0)
    rate = growth / mean
    cause = rng.choice(["oom", "redeploy"])
    tau, low = warmup(rng)
    low *= base
    restarts = incarnations(rng, 48 * HOUR, mean)
    deadline = restarts[2]
    horizon = min(restarts[3] if len(restarts) > 3 else 48 * HOUR, deadline + AFTER_DEADLINE + 2 * HOUR)
    anon, starts, oom = [], [], []
    began, kills = 0, 0
    for t in range(horizon + 1):
        if t in restarts:
            began = t
            kills += cause == "oom"
        age = t - began
        level = approach(low, base, age, tau)
        anon.append(level + base * rate * age + noise())
        starts.append(began * 60)
        oom.append(kills)
    return Draw("leak through restarts", True, "process", horizon,
                process_series(anon, starts, oom if cause == "oom" else None), 0, deadline,
                {"restart_h": round(mean / HOUR, 2), "growth_per_incarnation_pct": round(growth * 100),
                 "rate_pct_h": round(rate * HOUR * 100, 2), "cause": cause, **p})


# ---- cgroups ----------------------------------------------------------------------------------


def cgroup_series(anon, usage, limit, oom_kills, faults):
    s = {("memleak_cgroup_anon_bytes", ()): anon, ("memleak_cgroup_usage_bytes", ()): usage,
         ("memleak_cgroup_events_total", (("event", "oom_kill"),)): oom_kills,
         ("memleak_cgroup_page_faults_total", ()): faults}
    if limit is not None:
        s[("memleak_cgroup_limit_bytes", ())] = limit
    return s


def page_faults(rng, anon):
    """A page-fault counter that grows with the workload and with every byte of new memory."""
    rate = loguniform(rng, 10, 10_000)
    out, total, prev = [], 0.0, None
    for a in anon:
        if a is None or a == "stale":
            # A recreated cgroup's counters start again from zero.
            out.append(a)
            total, prev = 0.0, None
            continue
        total += rate * 60 + max(0.0, (a - prev) / 4096 if prev is not None else 0.0)
        out.append(round(total))
        prev = a
    return out


def leak_cgroup(rng):
    """A leak in a container or unit; its limit is far away, or close enough to be reached."""
    cls, rate, deadline = rate_class(rng)
    base, noise, p = base_and_noise(rng)
    cache = base * rng.uniform(0.05, 1.0)
    onset = rng.randint(0, 6 * HOUR)
    horizon = onset + deadline + AFTER_DEADLINE
    anon = [base * (1 + rate * max(0, t - onset)) + noise() for t in range(horizon + 1)]
    usage = [a + cache for a in anon]
    limit = None if rng.random() < 0.3 else [max(usage) * rng.uniform(1.05, 4)] * (horizon + 1)
    return Draw("cgroup leak", True, "cgroup", horizon,
                cgroup_series(anon, usage, limit, [0] * (horizon + 1), page_faults(rng, anon)), onset, deadline,
                {"class": cls, "rate_pct_h": round(rate * HOUR * 100, 3), "limited": limit is not None, **p})


def leak_cgroup_oom(rng):
    """A container that leaks up to its limit, is OOM-killed and starts again, every 1-12 h. Either the
    cgroup survives (systemd unit, pod: its oom_kill count rises) or it is recreated (series stale for
    a scrape or more, counters back to zero). Deadline: the end of the third incarnation."""
    base, noise, p = base_and_noise(rng)
    mean = loguniform(rng, HOUR, 12 * HOUR)
    growth = loguniform(rng, 0.1, 2.0)
    rate = growth / mean
    recreated = rng.random() < 0.5
    tau, low = warmup(rng)
    low *= base
    cache = base * rng.uniform(0.02, 0.3)
    limit = base * (1 + growth) + cache
    anon, kills, t, began, k = [], [], 0, 0, 0
    restarts = []
    horizon = 48 * HOUR
    while t <= horizon:
        age = t - began
        level = approach(low, base, age, tau)
        value = level + base * rate * age + noise()
        if value + cache >= limit and age > 10:
            k += 1
            restarts.append(t)
            gap = rng.randint(1, 3) if recreated else 0
            for _ in range(gap):
                anon.append("stale" if _ == 0 else None)
                kills.append("stale" if _ == 0 else None)
            t += gap
            began = t
            if len(restarts) == 4:
                break
            continue
        anon.append(value)
        kills.append(0 if recreated else k)
        t += 1
    if len(restarts) < 3:
        deadline = len(anon) - 1
    else:
        deadline = restarts[2]
    horizon = min(len(anon) - 1, deadline + AFTER_DEADLINE + 2 * HOUR)
    anon, kills = anon[:horizon + 1], kills[:horizon + 1]
    usage = [a + cache if isinstance(a, float) else a for a in anon]
    faults = page_faults(rng, anon)
    return Draw("cgroup OOM-killed, restarting", True, "cgroup", horizon,
                cgroup_series(anon, usage, [limit] * (horizon + 1), kills, faults), 0, deadline,
                {"restart_h": round(mean / HOUR, 2), "growth_per_incarnation_pct": round(growth * 100),
                 "recreated": recreated, **p})


# ---- non-leaks --------------------------------------------------------------------------------
#
# A non-leak must not look like a leak to a rule that meets the leak deadlines. For each rate class
# (rate r, deadline D) the noise-free series is cut into windows of length D, each in four quarters:
# it is leak-like there when every quarter's minimum rises above the previous one by at least
# 75 % of r D/4 (relative to the first), and the last rise is at least 75 % of each earlier one (it
# has not slowed down). Non-leak families are redrawn until no window of any class is leak-like; the share
# of redrawn draws is reported. Rules may only look at the past, so nothing that is leak-like by this
# test could be kept quiet without missing the leaks it resembles.

MARGIN = 0.75
BLOCK = 10  # minutes


def leak_like(clean):
    """(class, minute) of the first leak-like window of a noise-free series, or None."""
    blocks = []
    for i in range(0, len(clean) - BLOCK + 1, BLOCK):
        values = [v for v in clean[i:i + BLOCK] if isinstance(v, float)]
        blocks.append(min(values) if values else None)
    for name, (low, _, deadline) in RATE_CLASSES.items():
        q = deadline // 4 // BLOCK  # blocks per quarter
        need = MARGIN * low / 100 / HOUR * deadline / 4
        for end in range(4 * q, len(blocks) + 1):
            quarters = []
            for k in range(4):
                part = [b for b in blocks[end - 4 * q + k * q:end - 4 * q + (k + 1) * q] if b is not None]
                quarters.append(min(part) if part else None)
            if None in quarters:
                continue
            rises = [quarters[k + 1] - quarters[k] for k in range(3)]
            if all(r >= need * quarters[0] for r in rises) and rises[2] >= MARGIN * max(rises[:2]):
                return name, end * BLOCK
    return None


def non_leak(family):
    """Redraws a non-leak family until its noise-free series is nowhere leak-like."""
    def draw(rng):
        for attempt in range(500):
            d, clean = family(rng)
            if leak_like(clean) is None:
                d.params["redrawn"] = attempt
                return d
        raise RuntimeError(f"{family.__name__}: no admissible draw in 500 attempts")
    draw.__name__ = family.__name__
    draw.__doc__ = family.__doc__
    return draw


def stated_non_leak(family):
    """A non-leak the issue names as one (warm-ups, restarts, limit approach): never redrawn, even
    where an exponential seen from its onset is briefly leak-like (tau near 2 h, ~4 % of warm-ups)."""
    def draw(rng):
        d, _ = family(rng)
        d.params["redrawn"] = 0
        return d
    draw.__name__ = family.__name__
    draw.__doc__ = family.__doc__
    return draw


def noisy(clean, noise):
    return [v + noise() if isinstance(v, float) else v for v in clean]


@stated_non_leak
def ok_warmup(rng):
    """A cache or pool warming up: exponential approach to a plateau, tau 5 min to 2 h, +10-500 %."""
    base, noise, p = base_and_noise(rng)
    tau = loguniform(rng, 5, 2 * HOUR)
    amp = loguniform(rng, 0.1, 5.0) * base
    onset = rng.randint(0, 6 * HOUR)
    h = NON_LEAK_HORIZON
    clean = [base + amp * (1 - math.exp(-max(0, t - onset) / tau)) for t in range(h + 1)]
    return Draw("warm-up to a plateau", False, "process", h, process_series(noisy(clean, noise), steady_start(h)),
                params={"tau_min": round(tau, 1), "amplitude_pct": round(amp / base * 100), **p}), clean


@non_leak
def ok_log_growth(rng):
    """Growth that keeps slowing down, logarithmic in the time since it began (a cache of ever rarer
    new keys): base + A ln(1 + t/tau), A 0.5-100 %, tau 5 min to 2 h."""
    base, noise, p = base_and_noise(rng)
    tau = loguniform(rng, 5, 2 * HOUR)
    amp = loguniform(rng, 0.005, 1.0) * base
    onset = rng.randint(0, 4 * HOUR)
    h = NON_LEAK_HORIZON
    clean = [base + amp * math.log1p(max(0, t - onset) / tau) for t in range(h + 1)]
    return Draw("logarithmic growth", False, "process", h, process_series(noisy(clean, noise), steady_start(h)),
                params={"tau_min": round(tau, 1), "amplitude_pct": round(amp / base * 100), **p}), clean


@non_leak
def ok_stabilizing(rng):
    """Slow fragmentation that stabilizes: base + A t / (t + tau), A 2-50 %, tau 1-12 h (half the
    growth after tau, and slowing down as 1/t^2)."""
    base, noise, p = base_and_noise(rng)
    tau = loguniform(rng, HOUR, 12 * HOUR)
    amp = loguniform(rng, 0.02, 0.5) * base
    onset = rng.randint(0, 4 * HOUR)
    h = NON_LEAK_HORIZON
    clean = [base + amp * max(0, t - onset) / (max(0, t - onset) + tau) for t in range(h + 1)]
    return Draw("fragmentation that stabilizes", False, "process", h,
                process_series(noisy(clean, noise), steady_start(h)),
                params={"tau_h": round(tau / HOUR, 1), "amplitude_pct": round(amp / base * 100), **p}), clean


@non_leak
def ok_fill_stops(rng):
    """A linear fill at a leak's rate (any class) that stops after 10 min to 24 h."""
    cls, rate, deadline = rate_class(rng)
    base, noise, p = base_and_noise(rng)
    length = round(loguniform(rng, 10, 24 * HOUR))
    onset = rng.randint(0, 6 * HOUR)
    h = NON_LEAK_HORIZON
    clean = [base * (1 + rate * min(length, max(0, t - onset))) for t in range(h + 1)]
    return Draw("fill that stops", False, "process", h, process_series(noisy(clean, noise), steady_start(h)),
                params={"class": cls, "rate_pct_h": round(rate * HOUR * 100, 3), "length_min": length, **p}), clean


@stated_non_leak
def ok_batch(rng):
    """Batch jobs every 1-8 h that build up 10-300 % of the base over 5-60 min and then release it."""
    base, noise, p = base_and_noise(rng)
    period = rng.randint(HOUR, 8 * HOUR)
    length = rng.randint(5, min(HOUR, period // 2))
    amp = loguniform(rng, 0.1, 3.0) * base
    phase = rng.randint(0, period)
    h = NON_LEAK_HORIZON
    clean = [base + amp * min(1.0, ((t + phase) % period) / length) * (((t + phase) % period) < length * 1.5)
             for t in range(h + 1)]
    return Draw("batch cycles", False, "process", h, process_series(noisy(clean, noise), steady_start(h)),
                params={"period_min": period, "length_min": length, "amplitude_pct": round(amp / base * 100),
                        **p}), clean


@stated_non_leak
def ok_sawtooth(rng):
    """A garbage-collected heap: a sawtooth of 1-60 min over a flat floor; in half the draws its
    amplitude grows 1.5-5x over 1-24 h (a raised heap limit, a growing live set between collections)."""
    base, noise, p = base_and_noise(rng)
    period = rng.randint(1, HOUR)
    phase = rng.randint(0, period - 1)
    amp = loguniform(rng, 0.05, 1.0) * base
    growing = rng.random() < 0.5
    grow = loguniform(rng, 0.5, 4.0) if growing else 0.0
    ramp = rng.randint(HOUR, 24 * HOUR)
    h = NON_LEAK_HORIZON
    clean = [base + amp * (1 + grow * min(1.0, t / ramp)) * sawtooth(t, period, phase) for t in range(h + 1)]
    name = "GC sawtooth, growing amplitude" if growing else "GC sawtooth"
    return Draw(name, False, "process", h, process_series(noisy(clean, noise), steady_start(h)),
                params={"period_min": period, "amplitude_pct": round(amp / base * 100),
                        "amplitude_growth_x": round(1 + grow, 2), **p}), clean


@stated_non_leak
def ok_noise(rng):
    """Flat memory with noise at several levels: white 0.1-5 % of the base, and a wander of 0.1-3 %."""
    base = loguniform(rng, 50 * MB, 8 * GB)
    nu = loguniform(rng, 0.001, 0.05)
    wander = loguniform(rng, 0.001, 0.03)
    tau = loguniform(rng, 5, 2 * HOUR)
    noise = Noise(rng, nu * base, wander * base, tau)
    h = NON_LEAK_HORIZON
    clean = [base] * (h + 1)
    return Draw("noise", False, "process", h, process_series(noisy(clean, noise), steady_start(h)),
                params={"base_MB": round(base / MB), "noise_pct": round(nu * 100, 2),
                        "wander_pct": round(wander * 100, 2), "wander_tau_min": round(tau)}), clean


@non_leak
def ok_load_bump(rng):
    """Memory that follows a load rising and falling again: a raised cosine of 0.5-100 % over 2-24 h."""
    base, noise, p = base_and_noise(rng)
    length = rng.randint(2 * HOUR, 24 * HOUR)
    amp = loguniform(rng, 0.005, 1.0) * base
    onset = rng.randint(0, 8 * HOUR)
    h = NON_LEAK_HORIZON
    clean = [base + (amp * (1 - math.cos(2 * math.pi * (t - onset) / length)) / 2 if onset <= t < onset + length
                     else 0) for t in range(h + 1)]
    return Draw("load rise and fall", False, "process", h, process_series(noisy(clean, noise), steady_start(h)),
                params={"length_h": round(length / HOUR, 1), "amplitude_pct": round(amp / base * 100, 2), **p}), clean


@stated_non_leak
def ok_restart_warmup(rng):
    """A service restarted (redeployed) every 1-12 h that warms up to the same plateau each time
    (tau 5 min to 2 h, reached within each incarnation: the interval is at least four tau)."""
    base, noise, p = base_and_noise(rng)
    tau = loguniform(rng, 5, 2 * HOUR)
    mean = loguniform(rng, max(HOUR, 4 * tau), max(12 * HOUR, 4 * tau))
    low = base * rng.uniform(0.05, 0.8)
    h = NON_LEAK_HORIZON
    restarts = incarnations(rng, h, mean)
    clean, starts, began = [], [], 0
    for t in range(h + 1):
        if t in restarts:
            began = t
        clean.append(approach(low, base, t - began, tau) if began else base)
        starts.append(began * 60 if began else -LONG_AGO)
    return Draw("restart warm-ups", False, "process", h, process_series(noisy(clean, noise), starts),
                params={"restart_h": round(mean / HOUR, 2), "tau_min": round(tau, 1), **p}), clean


@stated_non_leak
def ok_cgroup_limit_approach(rng):
    """A container that fills up to 80-97 % of its limit within 5-60 min (a warm-up, a bulk load) and stays."""
    base, noise, p = base_and_noise(rng)
    cache = base * rng.uniform(0.05, 0.5)
    fill = loguniform(rng, 0.2, 4.0) * base
    length = rng.randint(5, HOUR)
    shape = rng.choice(["linear", "exponential"])
    onset = rng.randint(0, 6 * HOUR)
    h = NON_LEAK_HORIZON

    def grown(t):
        x = max(0, t - onset)
        return min(1.0, x / length) if shape == "linear" else 1 - math.exp(-3 * x / length)

    clean = [base + fill * grown(t) for t in range(h + 1)]
    anon = noisy(clean, noise)
    usage = [a + cache for a in anon]
    limit = (base + fill + cache) / rng.uniform(0.80, 0.97)
    return Draw("cgroup limit approach", False, "cgroup", h,
                cgroup_series(anon, usage, [limit] * (h + 1), [0] * (h + 1), page_faults(rng, anon)),
                params={"fill_pct": round(fill / base * 100), "length_min": length, "shape": shape, **p}), clean


@stated_non_leak
def ok_cgroup_restarts(rng):
    """A container recreated every 1-12 h (a deploy, a node drain): stale series, counters back to zero,
    and a warm-up to the same plateau each time, up to 70-95 % of its limit."""
    base, noise, p = base_and_noise(rng)
    tau = loguniform(rng, 5, 2 * HOUR)
    mean = loguniform(rng, max(HOUR, 4 * tau), max(12 * HOUR, 4 * tau))
    cache = base * rng.uniform(0.05, 0.5)
    low = base * rng.uniform(0.05, 0.5)
    limit = (base + cache) / rng.uniform(0.70, 0.95)
    h = NON_LEAK_HORIZON
    restarts = incarnations(rng, h, mean)
    clean, began, t = [], -10 * HOUR, 0
    while len(clean) <= h:
        if t in restarts:
            gap = rng.randint(1, 3)
            clean.extend(["stale"] + [None] * (gap - 1))
            began = t + gap
            t += gap
            continue
        clean.append(approach(low, base, t - began, tau))
        t += 1
    clean = clean[:h + 1]
    anon = noisy(clean, noise)
    usage = [a + cache if isinstance(a, float) else a for a in anon]
    return Draw("cgroup restart warm-ups", False, "cgroup", h,
                cgroup_series(anon, usage, [limit] * (h + 1), [0] * (h + 1), page_faults(rng, anon)),
                params={"restart_h": round(mean / HOUR, 2), "tau_min": round(tau, 1), **p}), clean


FAMILIES = [
    leak_linear, leak_after_start, leak_step, leak_sawtooth, leak_large_base, leak_many_small, leak_restarts,
    leak_cgroup, leak_cgroup_oom,
    ok_warmup, ok_log_growth, ok_stabilizing, ok_fill_stops, ok_batch, ok_sawtooth, ok_noise, ok_load_bump, ok_restart_warmup,
    ok_cgroup_limit_approach, ok_cgroup_restarts,
]
