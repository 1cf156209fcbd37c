#!/usr/bin/env python3
"""Generates scenarios.test.yml: one worked example per alert for `promtool test rules`, with the
exact labels and annotations each alert carries, and a few non-leaks that must stay quiet.

The randomized test (detection.py) judges the rules statistically over hundreds of draws; these
examples pin down what an alert looks like when it fires. Leak examples assert that the alert is
silent before the rules can possibly have evidence (one span of floors after the onset) and firing
by the leak's deadline (issue 11: >= 4 %/h within 2 h, 1-4 %/h within 4 h, >= 0.1 %/h within 24 h,
leaks through restarts within three incarnations). Run this script after changing the rules, then
`promtool test rules scenarios.test.yml`; both files are committed. alerts/README.md lists them.
"""
import math
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import make_rules  # noqa: E402

INSTANCE = "host-a:9487"
JOB = "memleak"
MB = 1_000_000
GB = 1_000_000_000
MiB = 1 << 20
GiB = 1 << 30
LONG_AGO = -3 * 24 * 3600  # start time of a process running since before the test (seconds since 0)
# The rules record their floors at multiples of their windows (10m, 15m, ... 1h40m), all multiples of
# five minutes: evaluating every five minutes (as the randomized test does) sees every boundary at a
# fifth of promtool's time. promtool evaluates the groups in a map's order unless told: the alerts
# must follow the recording rules they read, as they do a minute later in Prometheus.
STEP = "5m"
GROUP_ORDER = [name for name, _ in make_rules.groups()]


def noise(seed, amplitude):
    rng = random.Random(seed)
    return lambda: rng.gauss(0, amplitude)


def encode(values):
    """promtool's expanding notation: runs with a constant step become `a+bxn`."""
    out, i = [], 0
    while i < len(values):
        if values[i] is None:
            j = i
            while j + 1 < len(values) and values[j + 1] is None:
                j += 1
            out.append(f"_x{j - i + 1}" if j > i else "_")
            i = j + 1
            continue
        j, step = i + 1, None
        if j < len(values) and values[j] is not None:
            step = values[j] - values[i]
            while j + 1 < len(values) and values[j + 1] is not None and values[j + 1] - values[j] == step:
                j += 1
        if step is not None and j - i >= 2:
            out.append(f"{values[i]}{'+' if step >= 0 else '-'}{abs(step)}x{j - i}")
            i = j + 1
        else:
            out.append(str(values[i]))
            i += 1
    return " ".join(out)


def series(name, labels, fn, minutes, per_minute=1):
    """A series sampled `per_minute` times a minute (promtool's input interval is a minute over that)."""
    lbl = ",".join(f'{k}="{v}"' for k, v in {**labels, "instance": INSTANCE, "job": JOB}.items())
    values = [fn(i / per_minute) for i in range(minutes * per_minute + 1)]
    return {"series": f"{name}{{{lbl}}}", "values": encode([None if v is None else round(v) for v in values]),
            "per_minute": per_minute}


def interval(inputs):
    """promtool's input interval of one test: its series are all sampled alike."""
    (per_minute,) = {s["per_minute"] for s in inputs}
    return "1m" if per_minute == 1 else f"{60 // per_minute}s"


def hm(minutes):
    h, m = divmod(minutes, 60)
    return f"{h}h{m}m" if h and m else f"{h}h" if h else f"{m}m"


def process(group, anon, minutes, start=lambda t: LONG_AGO, oom=None):
    out = [series("memleak_process_anon_bytes", {"group": group}, anon, minutes),
           series("memleak_process_start_time_seconds", {"group": group}, start, minutes)]
    if oom:
        out.append(series("memleak_host_memory_oom_kills_total", {}, oom, minutes))
    return {"group": group}, out


def cgroup(cg, anon, minutes, limit=None, kills=None, cache=100 * MB):
    labels = {"cgroup": cg, "unit": cg.rsplit("/", 1)[-1]}
    out = [series("memleak_cgroup_anon_bytes", labels, anon, minutes),
           series("memleak_cgroup_usage_bytes", labels, lambda t: None if anon(t) is None else anon(t) + cache, minutes),
           series("memleak_cgroup_page_faults_total", labels, lambda t: 1000 * t, minutes)]
    if limit:
        out.append(series("memleak_cgroup_limit_bytes", labels, lambda t: limit, minutes))
    if kills:
        out.append(series("memleak_cgroup_events_total", {**labels, "event": "oom_kill"}, kills, minutes))
    return labels, out


def linear(base, per_hour, onset, n):
    return lambda t: base + per_hour * max(0, t - onset) / 60 + n()


def ramp(base, per_hour, onset):
    """A noise-free leak whose floors all lie on one line, so that the slope an alert shows is exactly
    `per_hour` (choose it a multiple of 15 MiB/h, so that every per-minute sample is a whole byte)."""
    assert per_hour % 60 == 0
    return lambda t: base + per_hour * max(0, t - onset) // 60


def straddling_oom_restarts(group, every, minutes):
    """A group OOM-killed and restarted every `every` minutes, scraped at half past each minute (every
    other sample of a 30 s input missing): each kill and restart falls between the last sample of one
    ten-minute window and the first of the next, where neither window's changes() or increase() sees it."""
    def scraped(fn):
        return lambda t: fn(t) if t % 1 == 0.5 else None

    def restarts(t):
        return int(t // every)

    labels = {"group": group}
    return labels, [
        series("memleak_process_anon_bytes", labels, scraped(lambda t: 200 * MB + (t % every) * 4 * MB), minutes, 2),
        series("memleak_process_start_time_seconds", labels,
               scraped(lambda t: LONG_AGO if t < every else restarts(t) * every * 60), minutes, 2),
        series("memleak_host_memory_oom_kills_total", {}, scraped(restarts), minutes, 2),
    ]


def recreated_cgroup(cg, every, minutes):
    """A cgroup that leaks into its 2 GB limit and is recreated every `every` minutes: no sample for the
    first two minutes of each new one (the last sample of the old one falls in the window before), its
    page-fault counter starting again from zero."""
    labels = {"cgroup": cg, "unit": cg.rsplit("/", 1)[-1]}

    def age(t):
        return None if t >= every and t % every < 2 else t % every

    def anon(t):
        return None if age(t) is None else GB + 900 * MB * age(t) / every + n4()

    return labels, [
        series("memleak_cgroup_anon_bytes", labels, anon, minutes),
        series("memleak_cgroup_usage_bytes", labels, lambda t: None if anon(t) is None else anon(t) + 100 * MB, minutes),
        series("memleak_cgroup_page_faults_total", labels, lambda t: None if age(t) is None else 1000 * age(t), minutes),
        series("memleak_cgroup_limit_bytes", labels, lambda t: 2 * GB, minutes),
    ]


def surviving_oom_cgroup(cg, first, every, minutes):
    """A cgroup that survives its OOM kills (a unit, a pod): its workload holds 600 MiB for its first five
    minutes, then leaks from 1 GiB at 345 MiB/h, noise-free; it is killed first at `first`, then every `every`
    minutes, and starts again while the page-fault counter runs on. A span across a kill (the drop, then the
    warm-up) is steeper than the leak, and the no-steeper-span test compares with spans up to two spans back."""
    def age(t):
        return t if t < first else (t - first) % every

    def anon(t):
        return 600 * MiB if age(t) < 5 else ramp(GiB, 345 * MiB, 5)(age(t))

    return cgroup(cg, anon, minutes, limit=2 * GB, kills=lambda t: 0 if t < first else 1 + (t - first) // every)


# A leak becomes visible once the floors of its first span all follow the onset: nothing can fire
# before the onset plus a span plus a floor window.
FAST_SPAN = 9 * 10 + 10
n1, n2, n3, n4, n5, n6 = (noise(i, a) for i, a in enumerate([2 * MB, 300_000, 20 * MB, 2 * MB, 3 * MB, 1 * MB], 1))


def scenarios():
    """(name, truth, minutes, target labels, input series, {alert: (silent_at, fires_by[, $value as shown])})

    The leaks whose alerts show their rate are noise-free ramps, so that the text is known by hand: a
    ramp's floors lie on one line, whose slope is the leak's rate (humanize1024: 120 MiB/h -> "120Mi")."""
    restart_every = 150  # minutes between OOM kills of the restarting leaker
    redeploy_every = 80  # minutes between redeploys of the leaker no OOM kill reveals
    redeploy_long = 21 * 60  # minutes of the first incarnation of a leak whose fast evidence ends within it
    # 172 MiB of headroom at 2 MiB/min is 86 min; 17476 B more is 0.49999 s at 120 MiB/h (humanizeDuration
    # truncates to whole seconds: a headroom of a whole number of seconds would sit on a rounding edge).
    headroom_at_2h = 2 * GiB + 17476
    return [
        ("fast leak: 1 GiB + 120 MiB/h from 1h, noise-free", "leak", 240,
         *process("fast-leak", ramp(GiB, 120 * MiB, 60), 240),
         {"ProcessMemoryLeakFast": (60 + FAST_SPAN - 10, 60 + 120, "120Mi")}),
        ("moderate leak: 1 GiB + 30 MiB/h from 1h, noise-free", "leak", 360,
         *process("moderate-leak", ramp(GiB, 30 * MiB, 60), 360),
         # The 15-minute floors are minima of the 10-minute ones, so they lag their time by 15 and 20 minutes in
         # turn: a line through ten of them, the first lagging 15, has a slope of 98/99 of the rate (29.70 MiB/h).
         {"ProcessMemoryLeak": (60 + 9 * 15, 60 + 240, "29.7Mi")}),
        ("slow leak: 8 GiB + 15 MiB/h from 1h, noise-free", "leak", 25 * 60,
         *process("slow-leak", ramp(8 * GiB, 15 * MiB, 60), 25 * 60),
         {"ProcessMemoryLeakConfirmed": (60 + 9 * 100, 60 + 24 * 60, "15Mi")}),
        ("leak through OOM restarts: 200 MB -> 1.2 GB in 2h30m, killed, again", "leak", 8 * 60,
         *process("oom-leak", lambda t: 200 * MB + (t % restart_every) * 1000 * MB / restart_every + n4(), 8 * 60,
                  start=lambda t: LONG_AGO if t < restart_every else (t // restart_every) * restart_every * 60,
                  oom=lambda t: t // restart_every),
         {"ProcessMemoryLeakAcrossRestarts": (restart_every, 3 * restart_every - 10, "2")}),
        ("OOM kills and restarts every 2h30m between two scrapes that straddle a 10-minute boundary", "leak", 6 * 60,
         *straddling_oom_restarts("straddling-oom-leak", restart_every, 6 * 60),
         {"ProcessMemoryLeakAcrossRestarts": (2 * restart_every, 2 * restart_every + 20, "2")}),
        # 60 MiB/h is 3 %/h of a floor of 2000 MiB, reached 16h20m into each incarnation: the fast scale's evidence
        # ends there while the leak goes on. Held until the restart at 21h and 6h after it, the alert bridges the
        # 2 h until the next incarnation shows the evidence again; held only 6h, it had resolved by 22h40m.
        ("leak redeployed after 21h: 1 GiB + 60 MiB/h from each start, noise-free", "leak", 23 * 60,
         *process("long-incarnations", lambda t: ramp(GiB, 60 * MiB, 0)(t % redeploy_long), 23 * 60,
                  start=lambda t: LONG_AGO if t < redeploy_long else redeploy_long * 60),
         {"ProcessMemoryLeakFast": (FAST_SPAN - 10, redeploy_long + 100, "60Mi")}),
        ("leak through redeploys every 1h20m: 200 MB + 240 MiB/h from each start, noise-free", "leak", 5 * 60,
         *process("redeployed-leak", lambda t: 200 * MB + ramp(0, 240 * MiB, 0)(t % redeploy_every), 5 * 60,
                  start=lambda t: LONG_AGO if t < redeploy_every else (t // redeploy_every) * redeploy_every * 60),
         # Silent after one restart (one incarnation judged), firing at the boundary after the second.
         {"ProcessMemoryLeakBetweenRestarts": (redeploy_every + 20, 2 * redeploy_every + 10, "240Mi")}),
        ("cgroup leak: anon 1 GiB + 120 MiB/h from 1h, limit 8 GiB, noise-free", "leak", 240,
         *cgroup("/system.slice/leaky.service", ramp(GiB, 120 * MiB, 60), 240, limit=8 * GiB),
         {"CgroupMemoryLeak": (60 + FAST_SPAN - 10, 60 + 120, "120Mi")}),
        ("cgroup leak towards its limit: 1.5 GiB + 120 MiB/h, page cache 100 MiB, limit 2 GiB, noise-free", "leak", 240,
         *cgroup("/system.slice/filling.service", ramp(3 * GiB // 2, 120 * MiB, 0), 240, limit=headroom_at_2h,
                 cache=100 * MiB),
         {"CgroupMemoryLimitApproaching": (FAST_SPAN - 10, 120, "1h 26m 0s")}),
        ("slow cgroup leak: anon 8 GiB + 15 MiB/h from 1h, noise-free", "leak", 25 * 60,
         *cgroup("/system.slice/slow.service", ramp(8 * GiB, 15 * MiB, 60), 25 * 60),
         {"CgroupMemoryLeakConfirmed": (60 + 9 * 100, 60 + 24 * 60, "15Mi")}),
        ("cgroup OOM-killed twice: oom_kill at 2h and 4h", "leak", 6 * 60,
         *cgroup("/system.slice/oom.service", lambda t: GB + n4(), 6 * 60, limit=2 * GB,
                 kills=lambda t: 0 if t < 120 else 1 if t < 240 else 2),
         {"CgroupMemoryLeakAcrossRestarts": (200, 250, "2"), "CgroupOOMKills": (110, 120)}),
        ("cgroup recreated at its limit every 2h, each time across a 10-minute boundary", "leak", 6 * 60,
         *recreated_cgroup("/system.slice/recreated.service", 120, 6 * 60),
         {"CgroupMemoryLeakAcrossRestarts": (200, 250, "2")}),
        # An OOM kill starts a new incarnation where the cgroup survives it: the leak test's guard counts it, so
        # that the second incarnation is judged on its own (without it, never reported in 8 hours).
        ("cgroup that survives its OOM kills: leaking, killed at 2h and then every 2h30m", "leak", 8 * 60,
         *surviving_oom_cgroup("/system.slice/killed.service", 120, 150, 8 * 60),
         {"CgroupMemoryLeak": (120 + FAST_SPAN - 10, 120 + 140, "345Mi")}),
        ("GC sawtooth over a flat floor: 500 MB + 0..300 MB every 7 min", "no leak", 24 * 60,
         *process("gc-sawtooth", lambda t: 500 * MB + (t % 7) * 300 * MB / 7 + n4(), 24 * 60), {}),
        ("cache warm-up: 200 MB -> 1.2 GB, tau 1 h, from 1h", "no leak", 24 * 60,
         *process("cache-warmup", lambda t: 200 * MB + GB * (1 - math.exp(-max(0, t - 60) / 60)) + n5(), 24 * 60), {}),
        ("batch spikes: +500 MB for 20 min every 2h", "no leak", 24 * 60,
         *process("batch-spikes", lambda t: GB + (500 * MB if t % 120 >= 100 else 0) + n4(), 24 * 60), {}),
        ("restart every 5h with a 20-minute warm-up", "no leak", 24 * 60,
         *process("restarts", lambda t: 150 * MB + 850 * MB * (1 - math.exp(-(t % 300) / 20)) + n4(), 24 * 60,
                  start=lambda t: LONG_AGO if t < 300 else (t // 300) * 300 * 60), {}),
        ("redeployed every 1h20m with a 20-minute warm-up (the shortest interval for its tau: four tau)", "no leak",
         24 * 60, *process("redeploys", lambda t: 150 * MB + 850 * MB * (1 - math.exp(-(t % 80) / 20)) + n6(), 24 * 60,
                           start=lambda t: LONG_AGO if t < 80 else (t // 80) * 80 * 60), {}),
        ("noisy flat usage: 1 GB +- 20 MB", "no leak", 24 * 60, *process("noisy-flat", lambda t: GB + n3(), 24 * 60), {}),
        ("cgroup filling to 92 % of its limit in 20 min, then flat", "no leak", 24 * 60,
         *cgroup("/system.slice/busy.service", lambda t: GB + min(max(t - 60, 0), 20) * 740 * MB / 20 + n5(), 24 * 60,
                 limit=2 * GB), {}),
    ]


def host_scenarios():
    avail = [series("memleak_host_memory_available_bytes", {}, lambda t: 8 * GB - t * GB // 60 if t < 400 else GB, 720)]
    psi = [series("memleak_psi_stall_seconds_total", {"kind": "some"},
                  lambda t: 0 if t < 60 else (t - 60) * 60 * 0.2 if t < 120 else 720, 720)]
    oom = [series("memleak_host_memory_oom_kills_total", {}, lambda t: 0 if t < 100 else 1, 720)]
    return [
        ("host memory running out: MemAvailable 8 GB - 1 GB/h", "exhaustion", 720, {}, avail,
         {"HostMemoryExhaustionPredicted": (230, 285)}),
        ("memory pressure: PSI some at 20 % for 1h", "pressure", 720, {"kind": "some"}, psi,
         {"MemoryPressureStalls": (65, 80, "20%")}),
        ("one OOM kill at 1h40m", "oom", 720, {}, oom, {"OOMKillsDetected": (99, 101)}),
    ]


def render_template(text, labels, value=None):
    """An annotation as Prometheus renders it: labels filled in, and `{{ $value ... }}` (with or without a
    humanizing function) as `value`, the text worked out by hand for the scenario."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)
    shown = re.sub(r"\{\{ \$value( \| \w+)? \}\}", lambda m: value, text) if value is not None else text
    assert "$value" not in shown, f"the scenario does not say how {text!r} shows its value"
    return shown


def yaml_str(s):
    return "'" + s.replace("'", "''") + "'"


def render():
    rules = {a["alert"]: a for a in make_rules.alerts()}
    lines = ["# Generated by make_scenarios.py: edit that script, not this file.", "rule_files:",
             "  - ../rules/memleak.rules.yml", f"evaluation_interval: {STEP}", "group_eval_order:",
             *[f"  - {g}" for g in GROUP_ORDER], "tests:"]
    for name, truth, minutes, target, inputs, expectations in scenarios() + host_scenarios():
        lines += [f"  - name: {yaml_str(name + ' (' + truth + ')')}", f"    interval: {interval(inputs)}", "    input_series:"]
        for s in inputs:
            lines += [f"      - series: {yaml_str(s['series'])}", f"        values: {yaml_str(s['values'])}"]
        if expectations:
            lines.append("    alert_rule_test:")
            for alert, (silent_at, fires_by, *value) in expectations.items():
                rule_labels, annotations = make_rules.resolved(rules[alert])
                labels = {**target, "instance": INSTANCE, "job": JOB, **rule_labels}
                if alert == "CgroupOOMKills":
                    labels["event"] = "oom_kill"
                lines += [f"      - eval_time: {hm(silent_at)}", f"        alertname: {alert}", "        exp_alerts: []",
                          f"      - eval_time: {hm(fires_by)}", f"        alertname: {alert}", "        exp_alerts:",
                          "          - exp_labels:"]
                lines += [f"              {k}: {yaml_str(v)}" for k, v in sorted(labels.items())]
                lines.append("            exp_annotations:")
                lines += [f"              {k}: {yaml_str(render_template(v, labels, *value))}"
                          for k, v in annotations.items()]
        else:
            # No alert of any kind may have fired at any time of the run.
            lines += ["    promql_expr_test:",
                      f"      - expr: count_over_time(ALERTS{{alertstate=\"firing\"}}[{minutes}m])",
                      f"        eval_time: {hm(minutes)}", "        exp_samples: []"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "scenarios.test.yml")
    with open(out, "w") as f:
        f.write(render())
