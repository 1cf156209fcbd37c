#!/usr/bin/env python3
"""Generates the leak-detection rules: the monitoring mixin's ../mixin/alerts.libsonnet (the rules with
their _config knobs), and rules/memleak.rules.yml, jsonnet's rendering of the mixin with the default
_config written as YAML. Edit this script, run it, commit all (exporter/tests/consistency.rs and
mixin.rs check they are current).

    python3 alerts/make_rules.py                        # rewrites mixin/alerts.libsonnet and
                                                        # alerts/rules/memleak.rules.yml
    python3 alerts/make_rules.py --libsonnet OUT        # only the mixin's fragment, to OUT
    python3 alerts/make_rules.py --time-scale 60 OUT    # every duration divided by 60 (1 h -> 1 min),
                                                        # for the time-compressed end-to-end test

The leak test is one statistical argument applied at several time scales (docs/detection.md):

* Floors. The minimum of anonymous memory over a window of f, recorded once per window (at the
  first evaluation after each multiple of f since the epoch), so that GC sawtooths and spikes
  shorter than f vanish and consecutive floors are independent.
* Ten floors, a span of 9 f, one least-squares line through them. Noise: the residual standard
  deviation of the floors around that line. Growth: the slopes of the span's two halves must each
  exceed K standard errors computed from that residual.
* Steady: no slowing down (the recent half's slope at least C times the earlier half's), no onset
  inside the span (the first third's slope at least C times the middle third's), and no higher
  rate a little earlier (the span's slope at least C times the highest span slope of the last few
  floors, at least C times the previous span's, and at least C times every span slope of the last two
  spans that began two hours or more after the start), each give or take Z standard errors; and a new
  high (the floor above every floor of the two spans before the span). An
  approach to a plateau slows down; a curve seen from its onset has a kink; a curve past its peak
  rate has come down from it; growth that slows like a logarithm slows more from span to span, and
  a leak's rate was never higher in the hours before, and its floor never as high; a slow wander that
  rode one rise through a span has often only climbed back to an earlier level.
* Rate: the span's slope is at least the scale's lowest rate, relative to the floor.
* History: ten floors present, no restart within the span or the floor before it (the process
  start time; for a cgroup, a reset of its page-fault counter, which a recreated cgroup starts again
  from zero, or an OOM kill in it, after which its workload starts afresh), and steady at two consecutive floors. The span before is compared under the same guard.
* Values: a leak alert's value is the slope of the finest scale that holds, in bytes per hour; its
  description shows it humanized.
"""
import argparse
import json
import os
import re
import subprocess
import tempfile

HOUR = 3600
MIN = 60

# (floor window f in seconds, lowest growth rate it reports as a fraction of the floor per hour).
# The span is 9 f. The leak classes of issue 11: >= 4 %/h within 2 h, 1-4 %/h within 4 h,
# >= 0.1 %/h within 24 h; a scale reports 75 % of the lowest rate of the class it serves.
SCALES = [
    (10 * MIN, 0.03),  # 1h30m: fast leaks
    (15 * MIN, 0.0075),  # 2h15m, 3h: moderate leaks
    (20 * MIN, 0.0075),
    (30 * MIN, 0.0075),  # 4h30m to 13h30m: steps, slow cycles and noisy moderate leaks
    (40 * MIN, 0.0075),
    (HOUR, 0.0075),
    (90 * MIN, 0.0075),
    (100 * MIN, 0.00075),  # 15h: slow leaks
]
FAST = 10 * MIN  # the scale of ProcessMemoryLeakFast
CONFIRMED = 100 * MIN  # the scale of the critical alerts
BASE = 10 * MIN  # the finest floor; every coarser one is the minimum of these
EVAL = MIN  # rule evaluation interval (the groups set it)
K = 3.0  # standard errors a half's growth must clear
C = 0.75  # steady: one slope at least this share of the other
Z = 0.5  # give or take this many standard errors of their difference
PERSIST = 2  # consecutive floors at which the growth was steady
# How many floors back the highest earlier span slope is looked for (four by default): at the scales of
# the 2 h and 4 h deadlines only two, so that a leak that follows a warm-up is reported in time.
LOOKBACK = {FAST: 2, 15 * MIN: 2}
# The span's slope is compared with every span slope of the last SETTLED_SPANS spans whose span began at least
# SETTLED after the start: a leak's rate never was higher, a curve that slows down had a steeper span. A leak's
# own warm-up after a start is over by then (six time constants of up to 20 min); a longer wait hides more.
SETTLED_SPANS = 2
SETTLED = 2 * HOUR
OOM_WINDOW = 36 * HOUR  # repeated OOM kills count within this window
LATE = 30 * MIN  # the end of an incarnation judged by late_growth_rules
RHO_LATE = 0.03  # its lowest rate, relative to the level per hour: incarnations of up to ~2h growing 10 % or more
LIMIT_HORIZON = 4 * HOUR
# How long the fast scale's evidence is held within the incarnation that showed it (until its restart).
INCARNATION_HOLD = 12 * HOUR
RUNBOOK = "https://github.com/memleak-exporter/memleak-exporter/blob/main/alerts/runbook.md#"
HERE = os.path.dirname(os.path.abspath(__file__))
MIXIN = os.path.join(HERE, "..", "mixin")
SCALE = 1  # time compression of the whole rule set (--time-scale)


def t(seconds):
    """A duration of the rule set, compressed by --time-scale."""
    return seconds / SCALE


def dur(seconds):
    """A PromQL duration for `seconds` of uncompressed time."""
    s = t(seconds)
    if s != int(s):
        return f"{round(s * 1000)}ms"
    s = int(s)
    parts = [(s // HOUR, "h"), (s % HOUR // MIN, "m"), (s % MIN, "s")]
    return "".join(f"{n}{u}" for n, u in parts if n) or "0s"


def name(seconds):
    """A duration as it appears in recorded names (never compressed)."""
    parts = [(seconds // HOUR, "h"), (seconds % HOUR // MIN, "m")]
    return "".join(f"{n}{u}" for n, u in parts if n)


def num(x):
    return f"{x:.6g}"


def at_boundary(f):
    """The one evaluation that follows a multiple of f since the epoch."""
    return f"on () (vector(time()) % {num(t(f))} < {num(t(EVAL))})"


def floor(target, f):
    return f"memleak:{target}_anon_bytes:min{name(f)}"


def floors(target, series):
    rules = [(floor(target, BASE), f"min_over_time({series}[{dur(BASE)}])\nand {at_boundary(BASE)}")]
    for f in sorted({f for f, _ in SCALES} - {BASE}):
        rules.append((floor(target, f), f"min_over_time({floor(target, BASE)}[{dur(f - EVAL)}])\nand {at_boundary(f)}"))
    return rules


def evidence_name(target, f):
    return f"memleak:{target}_anon_bytes:leak_evidence{name(9 * f)}"


def scale(target, f, rho, guard, settled_guard):
    """The floor-trend test at one scale: its statistics, recorded once per f, and its evidence."""
    F = floor(target, f)
    span, n = 9 * f, 10
    pre = f"{F}_"
    slope, resid = f"{pre}deriv{name(span)}", f"{pre}resid{name(span)}"
    recent, earlier = f"{pre}deriv{name(4 * f)}", f"{pre}deriv{name(4 * f)}_offset{name(5 * f)}"
    first, middle = f"{pre}deriv{name(3 * f)}_offset{name(6 * f)}", f"{pre}deriv{name(3 * f)}_offset{name(3 * f)}"
    previous = f"{pre}deriv{name(span)}_offset{name(span)}"
    settled = f"{pre}deriv{name(span)}_settled"
    steady = f"memleak:{target}_anon_bytes:steady_growth{name(span)}"
    ft = t(f)
    var_t = ft * ft * (n * n - 1) / 12  # variance of ten evenly spaced times
    sxx = {k: ft * ft * k * (k * k - 1) / 12 for k in (4, 5, n)}  # sum of squared time deviations of k points
    se = num(K / sxx[5] ** 0.5)  # K standard errors of a half's slope, per byte of residual
    z = {k: num(Z * (2 / sxx[k]) ** 0.5) for k in sxx}  # Z standard errors of a difference of two slopes
    b = at_boundary(f)
    # The span's first floor begins at least a floor after the last start: the floor that holds a start holds
    # the warm-up's lowest point, a slope no leak test should see (its earlier half failed the halves test and
    # the highest earlier slope kept it for the lookback, so that a fast leak after a start was reported late).
    g = guard(span + 2 * f)
    # The span before likewise, from the moment its own first floor began a floor after the start: a warm-up
    # that rose faster then than now is slowing down, which is what tells it from a leak.
    guard_previous = guard(2 * span + 2 * f)
    # A new high: the floor is above every floor of the two spans before the span. A leak's floor rises by more than
    # eight times the floors' residual per span (the halves test), so it keeps setting new highs; a slow wander that rode one
    # rise through a span has often only climbed back to where it was a few hours before. Judged where those floors
    # lie in the incarnation (a leak's previous incarnation ended higher) and the series existed a floor before the
    # first of them (a series' first floor is the minimum of a part window, as high as any of its samples).
    guard_high = f"{guard(3 * span + 2 * f)}\nand present_over_time(memleak_{target}_anon_bytes[{dur(f)}] offset {dur(3 * span + f)})"
    earlier_high = f"max_over_time({F}[{dur(2 * span - f)}] offset {dur(span + f)})"
    back = LOOKBACK.get(f, 4)
    highest_settled = f"max_over_time({settled}[{dur(SETTLED_SPANS * span)}])"
    return [
        # Slopes only of spans within one incarnation: the highest recent one is compared with the current.
        (slope, f"deriv({F}[{dur(span)}])\nand {g}\nand {b}"),
        (recent, f"deriv({F}[{dur(4 * f)}])\nand {b}"),
        (earlier, f"deriv({F}[{dur(4 * f)}] offset {dur(5 * f)})\nand {b}"),
        (first, f"deriv({F}[{dur(3 * f)}] offset {dur(6 * f)})\nand {b}"),
        (middle, f"deriv({F}[{dur(3 * f)}] offset {dur(3 * f)})\nand {b}"),
        # The slope of the span before, within the same incarnation.
        (previous, f"{slope} offset {dur(span)}\nand {guard_previous}\nand {b}"),
        # The slopes of the spans that began SETTLED or more after the start, the earlier rates a leak never exceeds.
        (settled, f"{slope}\nand {settled_guard(span + max(2 * f, SETTLED))}"),
        (resid, f"sqrt(clamp_min(stdvar_over_time({F}[{dur(span)}]) - {slope} ^ 2 * {num(var_t)}, 0) * {num(n / (n - 2))})"),
        (steady, "\nand ".join([
            slope,
            f"{recent} >= {se} * {resid}",
            f"{earlier} >= {se} * {resid}",
            f"{recent} >= {C} * {earlier} - {z[5]} * {resid}",
            f"{first} >= {C} * {middle} - {z[4]} * {resid}",
            f"{slope} >= {C} * max_over_time({slope}[{dur(back * f)}]) - {z[n]} * {resid}",
            f"({slope} >= {C} * {previous} - {z[n]} * {resid} or {slope} unless {previous})",
            f"({slope} >= {C} * {highest_settled} - {z[n]} * {resid} or {slope} unless {highest_settled})",
            f"({F} > {earlier_high} and {guard_high} or {slope} unless ({earlier_high} and {guard_high}))",
            f"{slope} * {num(t(HOUR))} >= {rho} * {F}",
            f"count_over_time({F}[{dur(span)}]) == {n}",
        ])),
        (evidence_name(target, f), f"{steady}\nand count_over_time({steady}[{dur((PERSIST - 1) * f)}]) == {PERSIST}"),
    ]


def process_guard(seconds):
    return f"time() - memleak_process_start_time_seconds >= {num(t(seconds))}"


def cgroup_guard(seconds):
    return f"sum_over_time({CGROUP_INCARNATIONS}[{dur(seconds)}]) == 0"


def cgroup_settled_guard(seconds):
    """No restart within `seconds`, and the cgroup's series already existed then: a cgroup has no start time,
    and the warm-up of one created after the exporter started shows no counter reset."""
    return f"{cgroup_guard(seconds)}\nand present_over_time(memleak_cgroup_page_faults_total[{dur(10 * MIN)}] offset {dur(seconds)})"


def held(target, f):
    """An evidence series recorded once per floor window, held until the next one."""
    return f"last_over_time({evidence_name(target, f)}[{dur(f - EVAL)}])"


def held_in_incarnation(f):
    """The process evidence at scale f, held from its last record until the incarnation that showed it ends
    (up to INCARNATION_HOLD): a leak's rate relative to its floor falls as the floor rises, so the fast
    scale's evidence ends within a long incarnation while the leak goes on."""
    w = dur(INCARNATION_HOLD)
    return (f"{held('process', f)}\nor\nlast_over_time({evidence_name('process', f)}[{w}])\n"
            f"and last_over_time({evidence_start_time(f)}[{w}]) == memleak_process_start_time_seconds")


def any_scale(target, scales):
    return "\nor\n".join(held(target, f) for f in scales)


def per_hour(target, scales):
    """The evidence as an alert's value: the growth of the finest scale that holds, in bytes per hour."""
    return f"(\n{any_scale(target, scales)}\n)\n* {num(t(HOUR))}"


def last_differs(series, op):
    """The last value of the current ten-minute window `op` the last of the previous one."""
    w = dur(10 * MIN)
    return f"last_over_time({series}[{w}]) {op} last_over_time({series}[{w}] offset {w})"


def window_increase(counter, pad=""):
    """A counter rose within the ten-minute window, or between the previous window's last sample and this
    window's first (a pair of samples that neither window's increase() sees)."""
    return (f"(\n{pad}  increase({counter}[{dur(10 * MIN)}]) > 0\n{pad}  or\n{pad}  {last_differs(counter, '>')}"
            f"\n{pad})")


def late_growth_rules():
    """Leaks whose incarnations are too short for a span (restarted every 1-2 h): the last LATE of each
    incarnation, in three equal parts, still grows in every part beyond K standard errors of the samples'
    own noise, as fast at the end as at the start (C, give or take Z), at RHO_LATE of the level or more.
    A restart warm-up that reaches its plateau within its incarnation (the interval at least four tau)
    fails: with tau under LATE * 2/3 / ln(1/C) (1h10m) its last part rises below C times its first; with a
    longer tau its rate after four tau is at most e^-4 of its amplitude per tau, under RHO_LATE. The
    verdict of an incarnation is taken at the restart that ends it; two in a row are the evidence."""
    x = "memleak_process_anon_bytes"
    part = LATE // 3
    late, resid, se = "memleak:process_anon_bytes:late_growth30m", "memleak:process_anon_bytes:resid30m", \
        "memleak:process_anon_bytes:deriv10m_se"
    at_restart = "memleak:process_anon_bytes:late_growth_at_restart"
    slopes = [f"deriv({x}[{dur(part)}]{f' offset {dur(k * part)}' if k else ''})" for k in (2, 1, 0)]
    n = f"count_over_time({x}[{dur(LATE)}])"
    return [
        # Residual standard deviation of the samples around their line over the last LATE.
        (resid, f"sqrt(\n  clamp_min(stdvar_over_time({x}[{dur(LATE)}]) - deriv({x}[{dur(LATE)}]) ^ 2 * "
                f"{num(t(LATE) ** 2 / 12)}, 0)\n  * {n} / ({n} - 2)\n)"),
        # The standard error of one part's slope (its samples spread evenly over the part).
        (se, f"{resid} / sqrt(count_over_time({x}[{dur(part)}]) * {num(t(part) ** 2 / 12)})"),
        (late, "\nand ".join([
            f"deriv({x}[{dur(LATE)}])",
            *[f"{s} >= {num(K)} * {se}" for s in slopes],
            f"{slopes[-1]} >= {C} * {slopes[0]} - {num(Z * 2 ** 0.5)} * {se}",
            f"deriv({x}[{dur(LATE)}]) * {num(t(HOUR))} >= {RHO_LATE} * {x}",
            process_guard(LATE * 3 // 2),
        ])),
        # At the ten-minute boundary that records a restart: the slope if the verdict held in the last
        # ten to twenty minutes of the incarnation that ended, else 0.
        (at_restart, f"max_over_time({late}[{dur(20 * MIN)}]) and memleak:process_start_time_seconds:changes10m\n"
                     "or memleak:process_start_time_seconds:changes10m * 0"),
        ("memleak:process_anon_bytes:late_growth_two_incarnations",
         f"{at_restart} > 0\nand last_over_time({at_restart}[{dur(OOM_WINDOW)}] offset {dur(10 * MIN)}) > 0"),
    ]


def evidence_start_time(f):
    return f"{evidence_name('process', f)}_start_time"


def process_rules():
    rules = floors("process", "memleak_process_anon_bytes")
    for f, rho in SCALES:
        rules += scale("process", f, rho, process_guard, process_guard)
    return rules + [
        # The start time of the incarnation in which the fast scale's evidence held, so that the evidence can
        # be held for the rest of that incarnation.
        (evidence_start_time(FAST), f"memleak_process_start_time_seconds\nand {evidence_name('process', FAST)}"),
        # Restarts, recorded only at the ten-minute boundary after them. A change between the window's first
        # sample and the previous window's last lies in neither window: it shows as a last value that differs.
        ("memleak:process_start_time_seconds:changes10m",
         f"(\n  changes(memleak_process_start_time_seconds[{dur(10 * MIN)}]) > 0\n  or\n"
         f"  {last_differs('memleak_process_start_time_seconds', '!=')}\n)\nand {at_boundary(10 * MIN)}"),
        # A restart in the same ten minutes as an OOM kill on the host: the group was the victim.
        ("memleak:process_start_time_seconds:oom_restarts10m",
         "memleak:process_start_time_seconds:changes10m\n"
         f"and on (instance, job) {window_increase('memleak_host_memory_oom_kills_total')}"),
        *late_growth_rules(),
        # Growth of RSS, PSS, VmData, the brk heap and anonymous mappings, for the drill-down dashboard.
        *[(f"memleak:process_{m}_bytes:deriv1h", f"deriv(memleak_process_{m}_bytes[{dur(HOUR)}])")
          for m in ("resident", "pss", "data", "heap", "anon_mapped")],
        # Page-fault rate against the group's own daily baseline.
        ("memleak:process_minor_faults:rate5m", f"rate(memleak_process_minor_faults_total[{dur(5 * MIN)}])"),
        ("memleak:process_minor_faults:rate5m_to_baseline_ratio",
         f"memleak:process_minor_faults:rate5m / (avg_over_time(memleak:process_minor_faults:rate5m[{dur(24 * HOUR)}]) > 0)"),
    ]


OOM_KILLS = 'memleak_cgroup_events_total{event="oom_kill"}'
# A new incarnation of the cgroup's workload: the cgroup recreated, or an OOM kill in it.
CGROUP_INCARNATIONS = "memleak:cgroup_incarnations:new10m"


def cgroup_rules():
    rules = [
        # A recreated cgroup starts its counters again from zero. A reset whose last sample before it falls in
        # the previous window is not a decrease within this one: that shows as this window's lowest count
        # below the previous window's last.
        ("memleak:cgroup_page_faults:resets10m",
         f"(\n  resets(memleak_cgroup_page_faults_total[{dur(10 * MIN)}]) > 0\n  or\n"
         f"  min_over_time(memleak_cgroup_page_faults_total[{dur(10 * MIN)}])\n"
         f"  < bool last_over_time(memleak_cgroup_page_faults_total[{dur(10 * MIN)}] offset {dur(10 * MIN)})\n)\n"
         f"and {at_boundary(10 * MIN)}"),
        # An OOM kill ends an incarnation even where the cgroup survives it (a unit, a pod): the killed
        # workload's memory is freed and its successor starts afresh, so a span across the kill mixes two
        # incarnations. A 0 in every other window, so that the guard's sum sees the windows without one.
        (CGROUP_INCARNATIONS,
         "memleak:cgroup_page_faults:resets10m > 0\n"
         f"or\nsum without (event) {window_increase(OOM_KILLS)}\nand {at_boundary(10 * MIN)}\n"
         "or\nmemleak:cgroup_page_faults:resets10m"),
    ]
    rules += floors("cgroup", "memleak_cgroup_anon_bytes")
    for f, rho in SCALES:
        rules += scale("cgroup", f, rho, cgroup_guard, cgroup_settled_guard)
    return rules + [
        # An OOM kill in the cgroup, or the cgroup recreated while at its limit (within 3 %).
        ("memleak:cgroup_usage_bytes:limit_restarts10m",
         f"(\n  sum without (event) {window_increase(OOM_KILLS, '  ')}\n"
         "  or\n  memleak:cgroup_page_faults:resets10m > 0\n"
         f"  and max_over_time(memleak_cgroup_usage_bytes[{dur(20 * MIN)}]) >= 0.97 * memleak_cgroup_limit_bytes\n)\n"
         f"and {at_boundary(10 * MIN)}"),
        # Seconds until the limit at the rate of a steady leak (any scale).
        ("memleak:cgroup_usage_bytes:seconds_to_limit",
         f"(memleak_cgroup_limit_bytes - memleak_cgroup_usage_bytes)\n/ (\n{any_scale('cgroup', [f for f, _ in SCALES])}\n)"),
        ("memleak:cgroup_psi_some:ratio_rate5m",
         f'rate(memleak_cgroup_psi_stall_seconds_total{{kind="some"}}[{dur(5 * MIN)}])'),
    ]


def host_rules():
    return [
        ("memleak:host_memory_available_bytes:seconds_to_exhaustion",
         f"memleak_host_memory_available_bytes / (-deriv(memleak_host_memory_available_bytes[{dur(HOUR)}]) > 0)"),
        ("memleak:psi_some:ratio_rate5m", f'rate(memleak_psi_stall_seconds_total{{kind="some"}}[{dur(5 * MIN)}])'),
        ("memleak:psi_full:ratio_rate5m", f'rate(memleak_psi_stall_seconds_total{{kind="full"}}[{dur(5 * MIN)}])'),
    ]


def alert(name, expr, for_, keep, severity, capture, summary, description):
    """An alerting rule; `keep` and `capture` name _config knobs (see KNOBS), None for none."""
    return {"alert": name, "expr": expr, "for": for_, "keep_firing_for": keep, "severity": severity, "capture": capture,
            "annotations": {"summary": summary, "description": description}}


def alerts():
    g = "process group {{ $labels.group }} on {{ $labels.instance }}"
    c = "cgroup {{ $labels.cgroup }} on {{ $labels.instance }}"
    every = [f for f, _ in SCALES]
    slower = [f for f in every if f != FAST]
    oom = name(OOM_WINDOW)
    steady = "has grown steadily, beyond its noise and without slowing down,"
    rate = "by {{ $value | humanize1024 }}B/h"
    leak, restarts = "leakKeepFiringFor", "restartsKeepFiringFor"
    capture, confirmed = "leakCapture", "confirmedLeakCapture"
    return [
        alert("ProcessMemoryLeakFast", f"(\n{held_in_incarnation(FAST)}\n)\n* {num(t(HOUR))}", 0, leak, "warning",
              capture, f"Fast memory leak in {g}",
              f"The floor of {{{{ $labels.group }}}}'s anonymous memory {steady} {rate} (3 %/h or more) for 1h30m"
              " in its current incarnation."),
        alert("ProcessMemoryLeak", per_hour("process", slower), 0, leak, "warning", capture,
              f"Memory leak suspected in {g}",
              f"The floor of {{{{ $labels.group }}}}'s anonymous memory {steady} {rate} for 2h15m to 15h."),
        alert("ProcessMemoryLeakAcrossRestarts",
              f"count_over_time(memleak:process_start_time_seconds:oom_restarts10m[{dur(OOM_WINDOW)}]) >= 2",
              0, restarts, "warning", capture, f"Memory leak across restarts in {g}",
              f"{{{{ $labels.group }}}} restarted in the same ten minutes as an OOM kill on its host {{{{ $value }}}} times"
              f" within {oom}."),
        alert("ProcessMemoryLeakBetweenRestarts",
              f"last_over_time(memleak:process_anon_bytes:late_growth_two_incarnations[{dur(OOM_WINDOW)}])\n"
              f"* {num(t(HOUR))}", 0, restarts, "warning", capture, f"Memory leak between restarts in {g}",
              f"{{{{ $labels.group }}}} still grew steadily, without slowing down, {rate} in the last 30 minutes"
              " of each of its last two incarnations: a leak that its restarts keep resetting."),
        alert("ProcessMemoryLeakConfirmed", per_hour("process", [CONFIRMED]), 0, leak, "critical", confirmed,
              f"Confirmed memory leak in {g}",
              f"The floor of {{{{ $labels.group }}}}'s anonymous memory {steady} {rate} for 15h: capture allocation stacks."),
        alert("CgroupMemoryLeak", per_hour("cgroup", every), 0, leak, "warning", capture,
              f"Memory leak suspected in {c}",
              f"The floor of the cgroup's anonymous memory {steady} {rate} for 1h30m to 15h."),
        alert("CgroupMemoryLeakAcrossRestarts",
              f"count_over_time(memleak:cgroup_usage_bytes:limit_restarts10m[{dur(OOM_WINDOW)}]) >= 2",
              0, restarts, "warning", capture, f"Memory leak across restarts in {c}",
              f"The cgroup was OOM-killed, or recreated at its memory limit, {{{{ $value }}}} times within {oom}."),
        alert("CgroupMemoryLeakConfirmed", per_hour("cgroup", [CONFIRMED]), 0, leak, "critical", confirmed,
              f"Confirmed memory leak in {c}",
              f"The floor of the cgroup's anonymous memory {steady} {rate} for 15h: capture allocation stacks."),
        # Held as long as the across-restarts alerts: a cgroup that reaches its limit is OOM-killed and approaches it
        # again in its next incarnation, one incident that a 6 h hold split at every kill of a 10-16 h cycle.
        alert("CgroupMemoryLimitApproaching", f"memleak:cgroup_usage_bytes:seconds_to_limit < {num(t(LIMIT_HORIZON))}",
              0, restarts, "warning", None, f"Cgroup {{{{ $labels.cgroup }}}} on {{{{ $labels.instance }}}} will reach its memory limit within 4h",
              "Its anonymous memory grows steadily at a rate that reaches memory.max in {{ $value | humanizeDuration }};"
              " the OOM killer follows."),
        alert("HostMemoryExhaustionPredicted",
              f"predict_linear(memleak_host_memory_available_bytes[{dur(HOUR)}], {num(t(LIMIT_HORIZON))}) < 0\n"
              f"and deriv(memleak_host_memory_available_bytes[{dur(15 * MIN)}]) < 0",
              30 * MIN, None, "warning", None, "{{ $labels.instance }} will run out of available memory within 4h",
              "MemAvailable has fallen for 30m at a rate that reaches zero within 4 hours."),
        alert("MemoryPressureStalls", "memleak:psi_some:ratio_rate5m > 0.1", 10 * MIN, None, "warning", None,
              "Tasks on {{ $labels.instance }} stall on memory more than 10 % of the time",
              "PSI memory 'some' has stayed above 10 % for 10 minutes, now {{ $value | humanizePercentage }}:"
              " reclaim or swap is slowing work down."),
        alert("OOMKillsDetected", f"increase(memleak_host_memory_oom_kills_total[{dur(10 * MIN)}]) > 0", 0, None, "warning",
              None, "The OOM killer ran on {{ $labels.instance }}",
              "The kernel killed a process for lack of memory in the last 10 minutes."),
        alert("CgroupOOMKills", f'increase(memleak_cgroup_events_total{{event="oom_kill"}}[{dur(10 * MIN)}]) > 0', 0, None,
              "warning", None, "The OOM killer ran in cgroup {{ $labels.cgroup }} on {{ $labels.instance }}",
              "A process of the cgroup was killed at its memory limit in the last 10 minutes."),
    ]


def groups():
    """The rule groups, in the order their rules read each other (the alerts last)."""
    return [
        ("memleak-process-leak", process_rules()),
        ("memleak-cgroup-leak", cgroup_rules()),
        ("memleak-host", host_rules()),
        ("memleak-alerts", alerts()),
    ]


# The exporter's own series: `name` or `name{matchers}` (recorded series are named `memleak:...`).
EXPORTER_SERIES = re.compile(r"\b(memleak_[a-z0-9_]+)(?:\{([^}]*)\})?")


def jsonnet_str(text):
    return json.dumps(text)


def jsonnet_expr(expr):
    """A PromQL expression as jsonnet, with `_config.memleakSelector` in every selector of exporter series."""
    if "\n" in expr:
        expr += "\n"  # a YAML block scalar, as the rules have always been written
    if not EXPORTER_SERIES.search(expr):
        return jsonnet_str(expr)

    def select(m):
        if m.group(2) is None:
            return f"{m.group(1)}%(memleakSelectorBraces)s"
        return f"{m.group(1)}{{{m.group(2)}%(memleakSelectorAppended)s}}"

    return f"{jsonnet_str(EXPORTER_SERIES.sub(select, expr.replace('%', '%%')))} % $._config"


def jsonnet_rule(r, indent):
    pad = " " * indent
    if isinstance(r, tuple):
        return [f"{pad}{{ record: {jsonnet_str(r[0])}, expr: {jsonnet_expr(r[1])} }},"]
    out = [f"{pad}{{", f"{pad}  alert: {jsonnet_str(r['alert'])},", f"{pad}  expr: {jsonnet_expr(r['expr'])},"]
    if r["for"]:
        out.append(f"{pad}  'for': {jsonnet_str(dur(r['for']))},")
    if r["keep_firing_for"]:
        out.append(f"{pad}  keep_firing_for: $._config.{r['keep_firing_for']},")
    labels = f"{{ severity: {jsonnet_str(r['severity'])} }}"
    if r["capture"]:
        knob = f"$._config.{r['capture']}"
        labels += f" + (if {knob} != '' then {{ capture: {knob} }} else {{}})"
    out.append(f"{pad}  labels: {labels},")
    out.append(f"{pad}  annotations: {{")
    out += [f"{pad}    {k}: {jsonnet_str(v)}," for k, v in r["annotations"].items()]
    out.append(f"{pad}    runbook_url: $._config.runbookURLBase + {jsonnet_str(r['alert'].lower())},")
    out += [f"{pad}  }},", f"{pad}}},"]
    return out


def knobs():
    """The defaults of the rules' _config knobs (durations compressed by --time-scale)."""
    return {
        "leakKeepFiringFor": dur(6 * HOUR),
        "restartsKeepFiringFor": dur(12 * HOUR),
        "leakCapture": "allocator-profile",
        "confirmedLeakCapture": "ebpf-malloc",
        "runbookURLBase": RUNBOOK,
    }


def resolved(r):
    """An alert's labels and annotations as the mixin renders them with the default _config."""
    k = knobs()
    labels = {"severity": r["severity"], **({"capture": k[r["capture"]]} if r["capture"] else {})}
    return labels, {**r["annotations"], "runbook_url": k["runbookURLBase"] + r["alert"].lower()}


def libsonnet():
    """The rules as a monitoring mixin's fragment: recording rules, alerts and the defaults of their knobs."""
    lines = [f"// Generated by alerts/make_rules.py{f' --time-scale {SCALE}' if SCALE != 1 else ''}:"
             " edit that script, not this file.", "{", "  _config+:: {"]
    lines += [f"    {k}: {jsonnet_str(v)}," for k, v in knobs().items()]
    lines.append("  },")
    kinds = {"prometheusRules": [g for g in groups() if g[0] != "memleak-alerts"],
             "prometheusAlerts": [g for g in groups() if g[0] == "memleak-alerts"]}
    for field, gs in kinds.items():
        lines += [f"  {field}+:: {{", "    groups+: ["]
        for group, rules in gs:
            lines += ["      {", f"        name: {jsonnet_str(group)},", f"        interval: {jsonnet_str(dur(EVAL))},",
                      "        rules: ["]
            for r in rules:
                lines += jsonnet_rule(r, 10)
            lines += ["        ],", "      },"]
        lines += ["    ],", "  },"]
    return "\n".join(lines + ["}"]) + "\n"


# The order of a rule's keys in the YAML, as Prometheus documents them (jsonnet sorts them).
KEY_ORDER = ["name", "interval", "rules", "record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"]


def yaml_lines(value, indent):
    """`value` (a rule file as jsonnet renders it) as YAML lines; multi-line strings as block scalars."""
    pad = " " * indent
    if isinstance(value, list):
        out = []
        for item in value:
            inner = yaml_lines(item, indent + 2)
            out += [f"{pad}- {inner[0].lstrip()}", *inner[1:]]
        return out
    out = []
    for k in sorted(value, key=lambda k: (KEY_ORDER.index(k) if k in KEY_ORDER else len(KEY_ORDER), k)):
        v = value[k]
        if isinstance(v, (dict, list)):
            out += [f"{pad}{k}:", *yaml_lines(v, indent + 2)]
        elif isinstance(v, str) and v.endswith("\n") and "\n" in v[:-1]:
            out += [f"{pad}{k}: |", *[f"{pad}  {line}" for line in v[:-1].split("\n")]]
        else:
            out.append(f"{pad}{k}: {json.dumps(v, ensure_ascii=False)}")
    return out


def render_yaml(fragment, out):
    """Runs jsonnet on the mixin, with `fragment` (a generated alerts.libsonnet) as its rules; writes `out`."""
    mixin = f"(import 'config.libsonnet') + (import {jsonnet_str(os.path.abspath(fragment))})"
    rendered = subprocess.run(["jsonnet", "-J", MIXIN, "--tla-code", f"mixin={mixin}", os.path.join(MIXIN, "rules.jsonnet")],
                              stdout=subprocess.PIPE, check=True, text=True).stdout
    header = (f"# Generated by alerts/make_rules.py{f' --time-scale {SCALE}' if SCALE != 1 else ''}"
              " (jsonnet on mixin/rules.jsonnet, as YAML): edit that script, not this file.")
    with open(out, "w") as f:
        f.write("\n".join([header, *yaml_lines(json.loads(rendered), 0)]) + "\n")


def main():
    global SCALE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time-scale", type=int, default=1, help="divide every duration by this factor")
    ap.add_argument("--libsonnet", help="only write the mixin's rules fragment (mixin/alerts.libsonnet) here")
    ap.add_argument("out", nargs="?", help="the rule file to write (by default rules/memleak.rules.yml, and the mixin's "
                                           "mixin/alerts.libsonnet with it)")
    args = ap.parse_args()
    SCALE = args.time_scale
    if args.libsonnet:
        with open(args.libsonnet, "w") as f:
            f.write(libsonnet())
        return
    with tempfile.TemporaryDirectory() as tmp:
        in_place = args.out is None and SCALE == 1
        fragment = os.path.join(MIXIN, "alerts.libsonnet") if in_place else os.path.join(tmp, "alerts.libsonnet")
        with open(fragment, "w") as f:
            f.write(libsonnet())
        render_yaml(fragment, args.out or os.path.join(HERE, "rules", "memleak.rules.yml"))


if __name__ == "__main__":
    main()
