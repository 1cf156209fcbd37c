#!/usr/bin/env python3
"""Generates scenarios.test.yml: the labelled scenario corpus for `promtool test rules`.

Each scenario is a memory time series with a known truth (leak or not). Leak
scenarios assert that their alert fires by a stated time and not before an
earlier one; non-leak scenarios assert that no alert fired at all during the
whole run (from the ALERTS series promtool records). Run this script after
changing a scenario or the rules, then `promtool test rules scenarios.test.yml`;
both files are committed. The table in alerts/README.md lists the scenarios.
"""
import os
import random

MINUTES = 12 * 60
INSTANCE = "host-a:9487"
JOB = "memleak"
MB = 1_000_000
GB = 1_000_000_000
RUNBOOK = "https://github.com/memleak-exporter/memleak-exporter/blob/main/alerts/runbook.md#"


def noise(seed, amplitude):
    rng = random.Random(seed)
    return lambda: rng.randint(-amplitude, amplitude)


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
        j = i + 1
        if j < len(values):
            step = values[j] - values[i] if values[j] is not None else None
            while step is not None and j + 1 < len(values) and values[j + 1] is not None and values[j + 1] - values[j] == step:
                j += 1
        if step is not None and j - i >= 2:
            sign = "+" if step >= 0 else "-"
            out.append(f"{values[i]}{sign}{abs(step)}x{j - i}")
            i = j + 1
        else:
            out.append(str(values[i]))
            i += 1
    return " ".join(out)


def series(name, labels, fn):
    lbl = ",".join(f'{k}="{v}"' for k, v in {**labels, "instance": INSTANCE, "job": JOB}.items())
    values = [fn(t) for t in range(MINUTES + 1)]
    return {"series": f"{name}{{{lbl}}}", "values": encode([None if v is None else int(v) for v in values])}


def hm(minutes):
    h, m = divmod(minutes, 60)
    return f"{h}h{m}m" if m else f"{h}h"


# Alert name -> (labels it adds, annotation templates rendered for a target).
ALERTS = {
    "ProcessMemoryLeakFast": ({"severity": "warning", "capture": "allocator-profile"}, "process"),
    "ProcessMemoryLeak": ({"severity": "warning", "capture": "allocator-profile"}, "process"),
    "ProcessMemoryLeakConfirmed": ({"severity": "critical", "capture": "ebpf-malloc"}, "process"),
    "CgroupMemoryLeak": ({"severity": "warning", "capture": "allocator-profile"}, "cgroup"),
    "CgroupMemoryLeakConfirmed": ({"severity": "critical", "capture": "ebpf-malloc"}, "cgroup"),
    "CgroupMemoryLimitApproaching": ({"severity": "warning"}, "cgroup"),
    "HostMemoryExhaustionPredicted": ({"severity": "warning"}, "host"),
    "MemoryPressureStalls": ({"severity": "warning"}, "host"),
    "OOMKillsDetected": ({"severity": "warning"}, "host"),
    "CgroupOOMKills": ({"severity": "warning"}, "cgroup"),
}


def annotations(alert, target):
    g = target.get("group", "")
    c = target.get("cgroup", "")
    i = INSTANCE
    text = {
        "ProcessMemoryLeakFast": (f"Fast memory leak in process group {g} on {i}",
                                  f"Anonymous memory of {g} has risen by more than 1 % every 15 minutes for over 1h45m, with no restart."),
        "ProcessMemoryLeak": (f"Memory leak suspected in process group {g} on {i}",
                              f"The floor of {g}'s anonymous memory has risen in three consecutive 2h windows, with no restart."),
        "ProcessMemoryLeakConfirmed": (f"Confirmed memory leak in process group {g} on {i}",
                                       f"The floor of {g}'s anonymous memory has kept rising for over 9h: capture allocation stacks."),
        "CgroupMemoryLeak": (f"Memory leak suspected in cgroup {c} on {i}",
                             "The floor of the cgroup's anonymous memory has risen in three consecutive 2h windows."),
        "CgroupMemoryLeakConfirmed": (f"Confirmed memory leak in cgroup {c} on {i}",
                                      "The floor of the cgroup's anonymous memory has kept rising for over 9h: capture allocation stacks."),
        "CgroupMemoryLimitApproaching": (f"Cgroup {c} on {i} will reach its memory limit within 4h",
                                         "Usage has grown for 30m at a rate that reaches memory.max within 4 hours; the OOM killer follows."),
        "HostMemoryExhaustionPredicted": (f"{i} will run out of available memory within 4h",
                                          "MemAvailable has fallen for 30m at a rate that reaches zero within 4 hours."),
        "MemoryPressureStalls": (f"Tasks on {i} stall on memory more than 10 % of the time",
                                 "PSI memory 'some' has stayed above 10 % for 10 minutes: reclaim or swap is slowing work down."),
        "OOMKillsDetected": (f"The OOM killer ran on {i}", "The kernel killed a process for lack of memory in the last 10 minutes."),
        "CgroupOOMKills": (f"The OOM killer ran in cgroup {c} on {i}",
                           "A process of the cgroup was killed at its memory limit in the last 10 minutes."),
    }[alert]
    return {"summary": text[0], "description": text[1], "runbook_url": RUNBOOK + alert.lower()}


def process(group, anon, start_time=lambda t: 1_700_000_000):
    return ({"group": group}, [series("memleak_process_anon_bytes", {"group": group}, anon),
                               series("memleak_process_start_time_seconds", {"group": group}, start_time)])


CG_LABELS = lambda cg: {"cgroup": cg, "unit": cg.rsplit("/", 1)[-1]}


def cgroup(cg, anon, usage=None, limit=None):
    labels = CG_LABELS(cg)
    out = [series("memleak_cgroup_anon_bytes", labels, anon),
           series("memleak_cgroup_usage_bytes", labels, usage or (lambda t: anon(t) + 100 * MB))]
    if limit is not None:
        out.append(series("memleak_cgroup_limit_bytes", labels, lambda t: limit))
    return labels, out


# --- the corpus --------------------------------------------------------------
# (name, truth, target labels, input series, {alert: (fires_by_minute, silent_at_minute)})
n1, n2, n3, n4, n5 = noise(1, 2 * MB), noise(2, 200_000), noise(3, 20 * MB), noise(4, 2 * MB), noise(5, 3 * MB)

SCENARIOS = [
    ("steady fast leak: 1 GB + 100 MB/h", "leak",
     *process("fast-leak", lambda t: GB + t * 100 * MB // 60 + n1()),
     {"ProcessMemoryLeakFast": (105, 90), "ProcessMemoryLeak": (360, 240), "ProcessMemoryLeakConfirmed": (480, 360)}),
    ("steady slow leak: 1 GB + 1 MB/h", "leak",
     *process("slow-leak", lambda t: GB + t * MB // 60 + n2()),
     {"ProcessMemoryLeak": (360, 240), "ProcessMemoryLeakConfirmed": (480, 360)}),
    ("step leak: +64 MB every 2h", "leak",
     *process("step-leak", lambda t: GB + ((t + 90) // 120) * 64 * MB + n4()),
     {"ProcessMemoryLeak": (360, 240), "ProcessMemoryLeakConfirmed": (480, 360)}),
    ("GC sawtooth with a flat floor: 500 MB + 0..60 MB every 10 min", "no leak",
     *process("gc-sawtooth", lambda t: 500 * MB + (t % 10) * 6 * MB), {}),
    ("cache warm-up that plateaus: 200 MB -> 1.2 GB over 30 min, then flat", "no leak",
     *process("cache-warmup", lambda t: 200 * MB + min(max(t - 60, 0), 30) * GB // 30 + n5()), {}),
    ("periodic batch spikes: +500 MB for 20 min every 2h", "no leak",
     *process("batch-spikes", lambda t: GB + (500 * MB if t % 120 >= 100 else 0) + n4()), {}),
    ("process restart: steady 1 GB, restart at 5h, warm-up of 20 min", "no leak",
     *process("restart", lambda t: GB + n4() if t < 300 else 150 * MB + min(t - 300, 20) * 850 * MB // 20 + n4(),
              start_time=lambda t: 1_700_000_000 if t < 300 else 1_700_018_000), {}),
    ("process restart with a series gap: gone 10 min at 6h, back at 200 MB, warm-up of 20 min", "no leak",
     *process("restart-gap", lambda t: GB + n4() if t < 360 else None if t < 370 else 200 * MB + min(t - 370, 20) * 800 * MB // 20 + n4(),
              start_time=lambda t: 1_700_000_000 if t < 360 else None if t < 370 else 1_700_022_200), {}),
    ("noisy flat usage: 1 GB +- 20 MB", "no leak",
     *process("noisy-flat", lambda t: GB + n3()), {}),
    ("cgroup leak: anon 1 GB + 50 MB/h, limit 8 GB", "leak",
     *cgroup("/system.slice/leaky.service", lambda t: GB + t * 50 * MB // 60 + n1(), limit=8 * GB),
     {"CgroupMemoryLeak": (360, 240), "CgroupMemoryLeakConfirmed": (480, 360)}),
    ("cgroup leak towards its limit: usage 1.5 GB + 100 MB/h, limit 2 GB", "leak",
     *cgroup("/system.slice/filling.service", lambda t: 1400 * MB + t * 100 * MB // 60 + n1(),
             limit=2 * GB),
     {"CgroupMemoryLimitApproaching": (105, 20), "CgroupMemoryLeak": (360, 240)}),
    ("memory-limit approach without a leak: 1 GB -> 92 % of 2 GB in 20 min, then flat", "no leak",
     *cgroup("/system.slice/busy.service", lambda t: 900 * MB + min(max(t - 60, 0), 20) * 840 * MB // 20 + n5(),
             usage=lambda t: GB + min(max(t - 60, 0), 20) * 840 * MB // 20 + n5(), limit=2 * GB), {}),
]


def host_scenarios():
    avail = [series("memleak_host_memory_available_bytes", {}, lambda t: 8 * GB - t * GB // 60 if t < 400 else GB)]
    psi = [series("memleak_psi_stall_seconds_total", {"kind": "some"},
                  lambda t: 0 if t < 60 else (t - 60) * 60 * 0.2 if t < 120 else 720)]
    oom = [series("memleak_host_memory_oom_kills_total", {}, lambda t: 0 if t < 100 else 1)]
    cg_labels = CG_LABELS("/system.slice/oom.service")
    cg_oom = [series("memleak_cgroup_events_total", {**cg_labels, "event": "oom_kill"}, lambda t: 0 if t < 100 else 2)]
    return [
        ("host memory running out: MemAvailable 8 GB - 1 GB/h", "exhaustion", {}, avail,
         {"HostMemoryExhaustionPredicted": (285, 230)}),
        ("memory pressure: PSI some at 20 % for 1h", "pressure", {"kind": "some"}, psi, {"MemoryPressureStalls": (75, 65)}),
        ("one OOM kill at 1h40m", "oom", {}, oom, {"OOMKillsDetected": (101, 99)}),
        ("OOM kills in a cgroup at 1h40m", "oom", cg_labels, cg_oom, {"CgroupOOMKills": (101, 99)}),
    ]


def yaml_str(s):
    return "'" + s.replace("'", "''") + "'"


def render():
    lines = [
        "# Generated by make_scenarios.py: edit that script, not this file.",
        "rule_files:",
        "  - ../rules/memleak.rules.yml",
        "evaluation_interval: 1m",
        "tests:",
    ]
    for name, truth, target, inputs, expectations in SCENARIOS + host_scenarios():
        lines += [f"  - name: {yaml_str(name + ' (' + truth + ')')}", "    interval: 1m", "    input_series:"]
        for s in inputs:
            lines += [f"      - series: {yaml_str(s['series'])}", f"        values: {yaml_str(s['values'])}"]
        if expectations:
            lines.append("    alert_rule_test:")
            for alert, (fires_by, silent_at) in expectations.items():
                extra, _ = ALERTS[alert]
                labels = {**target, "instance": INSTANCE, "job": JOB, **extra, "alertname": alert}
                if alert in ("CgroupOOMKills",):
                    labels["event"] = "oom_kill"
                lines += [f"      - eval_time: {hm(silent_at)}", f"        alertname: {alert}", "        exp_alerts: []"]
                lines += [f"      - eval_time: {hm(fires_by)}", f"        alertname: {alert}", "        exp_alerts:",
                          "          - exp_labels:"]
                for k, v in sorted(labels.items()):
                    if k != "alertname":
                        lines.append(f"              {k}: {yaml_str(v)}")
                lines.append("            exp_annotations:")
                for k, v in annotations(alert, target).items():
                    lines.append(f"              {k}: {yaml_str(v)}")
        else:
            # No alert of any kind may have fired at any time of the 12h run.
            lines += ["    promql_expr_test:",
                      f"      - expr: count_over_time(ALERTS{{alertstate=\"firing\"}}[{MINUTES}m])",
                      f"        eval_time: {hm(MINUTES)}",
                      "        exp_samples: []"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "scenarios.test.yml"), "w") as f:
        f.write(render())
