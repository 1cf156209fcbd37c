"""Runs many scenario draws through `promtool test rules` in a few batched test files, and reads back
when each alert fired.

promtool evaluates the real rule file minute by minute over every draw of a batch at once (each draw
has its own `instance`, so host series never mix). One PromQL test per batch, evaluated at its end,
asks for each alert's first and last firing minute and its number of firing episodes; it expects
nothing, so promtool prints what it got, and that is parsed here.
"""
import os
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

JOB = "memleak"


def target_labels(index, draw):
    """The labels that name a draw's target: its own instance, and a group or a cgroup."""
    labels = {"instance": f"d{index}:9487", "job": JOB}
    if draw.kind == "process":
        labels["group"] = f"svc{index}"
    else:
        labels.update({"cgroup": f"/system.slice/svc{index}.service", "unit": f"svc{index}.service"})
    return labels


def encode(values):
    out = []
    for v in values:
        if v is None:
            out.append("_")
        elif v == "stale":
            out.append("stale")
        else:
            out.append(str(round(v)))
    return " ".join(out)


# Evaluated after the real rules at every step: when each alert starts and stops firing.
SCORING_RULES = """groups:
  - name: detection-scoring
    rules:
      - record: scoring:alerts:started_at
        expr: time() * (ALERTS{{alertstate="firing"}} unless ALERTS{{alertstate="firing"}} offset {step})
      - record: scoring:alerts:ended_at
        expr: time() * (ALERTS{{alertstate="firing"}} offset {step} unless ALERTS{{alertstate="firing"}})
"""


def group_names(rules):
    with open(rules) as f:
        return re.findall(r"^  - name: (\S+)", f.read(), re.M)


def render(rules, scoring, batch, step):
    """One promtool test file for a batch of (index, draw), the rules evaluated every `step`."""
    horizon = max(d.horizon for _, d in batch)
    lines = ["rule_files:", f"  - {rules}", f"  - {scoring}", f"evaluation_interval: {step}", "group_eval_order:"]
    lines += [f"  - {name}" for name in group_names(rules) + ["detection-scoring"]]
    lines += ["tests:", "  - interval: 1m", "    input_series:"]
    for index, draw in batch:
        target = target_labels(index, draw)
        for (metric, extra), values in draw.series.items():
            labels = {"instance": target["instance"], "job": JOB}
            if not metric.startswith("memleak_host_"):
                labels = {**target, **dict(extra)}
            text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            lines.append(f"      - series: '{metric}{{{text}}}'")
            lines.append(f"        values: '{encode(values)}'")
    window = f"[{horizon}m]"
    stats = {
        "first": f"min_over_time(scoring:alerts:started_at{window})",
        "episodes": f"count_over_time(scoring:alerts:started_at{window})",
        "last": f"max_over_time(scoring:alerts:ended_at{window})",
        "end": 'time() * ALERTS{alertstate="firing"}',
    }
    expr = " or ".join(f'label_replace({e}, "stat", "{name}", "", "")' for name, e in stats.items())
    lines += ["    promql_expr_test:", f"      - expr: '{expr}'", f"        eval_time: {horizon}m",
              "        exp_samples: []"]
    return "\n".join(lines) + "\n"


SAMPLE = re.compile(r"\{([^}]*)\} (\S+?)(?:,|$)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(output):
    """(labels, value) pairs from promtool's `got:` line; an empty list when nothing fired."""
    if "err:" in output or "error" in output.lower() and "FAILED" not in output:
        raise RuntimeError(f"promtool could not evaluate the rules:\n{output[-4000:]}")
    got = [line for line in output.splitlines() if line.strip().startswith("got:")]
    samples = []
    for line in got:
        for labels, value in SAMPLE.findall(line.strip()[4:]):
            samples.append((dict(LABEL.findall(labels)), float(value)))
    return samples


def run_batch(promtool, rules, batch, workdir, step):
    path = os.path.join(workdir, f"batch-{batch[0][0]}.test.yml")
    with open(path, "w") as f:
        f.write(render(rules, os.path.join(workdir, "scoring.rules.yml"), batch, step))
    proc = subprocess.run([promtool, "test", "rules", path], capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 and "got:" not in output:
        raise RuntimeError(f"promtool failed on {path}:\n{output[-4000:]}")
    return parse(output)


def evaluate(draws, rules, promtool="promtool", jobs=2, batch_size=100, step="5m"):
    """Runs every draw; returns {index: {alertname: {"first": min, "last": min, "episodes": n}}}."""
    indexed = sorted(enumerate(draws), key=lambda x: x[1].horizon)
    batches, current, cost = [], [], 0
    for index, draw in indexed:
        # promtool's engine loads at most 10,000 samples per query: a 1-hour window over 1-minute
        # samples takes 61 per series, so a batch holds at most 100 draws.
        if len(current) == batch_size:
            batches.append(current)
            current = []
        current.append((index, draw))
    if current:
        batches.append(current)
    results = {i: {} for i in range(len(draws))}
    rules = os.path.abspath(rules)
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(jobs) as pool:
        with open(os.path.join(workdir, "scoring.rules.yml"), "w") as f:
            f.write(SCORING_RULES.format(step=step))
        for samples in pool.map(lambda b: run_batch(promtool, rules, b, workdir, step), batches):
            for labels, value in samples:
                index = int(labels["instance"].split(":")[0][1:])
                alert = results[index].setdefault(labels["alertname"], {})
                stat = labels["stat"]
                if stat == "first":
                    alert[stat] = min(alert.get(stat, value / 60), value / 60)
                elif stat in ("last", "end"):
                    alert["last"] = max(alert.get("last", value / 60), value / 60)
                else:
                    alert[stat] = alert.get(stat, 0) + int(value)
    return results
