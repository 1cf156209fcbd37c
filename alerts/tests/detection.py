#!/usr/bin/env python3
"""The randomized detection test: draws scenarios from every family, runs the real rules over them
with promtool, and scores the alerts against each draw's truth.

    python3 alerts/tests/detection.py --seed 7 --draws 30            # print the tables
    python3 alerts/tests/detection.py --seed 7 --draws 30 --check    # and fail when a target is missed
    python3 alerts/tests/detection.py --seed 7 --draws 30 --no-worse # or when worse than the previous rules
    python3 alerts/tests/detection.py ... --report docs/detection.md # rewrite the report's result section

A leak is detected when an alert whose name says "Leak" fires for its target by the draw's deadline.
A non-leak is a false positive when any alert at all fires for its target during the 36 h it is
watched. An alert that fires, resolves and fires again for the same target has flapped once.
Targets (issue 11): at least 98 % of leaks detected by their deadlines, at most 1 % of non-leaks
raising any alert, no alert flapping more than once per incident.
"""
import argparse
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import families  # noqa: E402
import promtool_batch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(HERE, "..", "rules", "memleak.rules.yml")
TARGET_DETECTED = 0.98
TARGET_FALSE_POSITIVES = 0.01
MAX_EPISODES = 2  # fired, resolved, fired again: one flap
# The alerts that say "leak"; any other alert (OOM kills, pressure, limits) does not count as detecting one.
LEAK_ALERTS = {"ProcessMemoryLeakFast", "ProcessMemoryLeak", "ProcessMemoryLeakAcrossRestarts", "ProcessMemoryLeakBetweenRestarts",
               "ProcessMemoryLeakConfirmed", "CgroupMemoryLeak", "CgroupMemoryLeakAcrossRestarts",
               "CgroupMemoryLeakConfirmed"}
# Alerts about one event each (an OOM kill): every kill is its own incident, so they fire once per kill.
EVENT_ALERTS = {"OOMKillsDetected", "CgroupOOMKills"}
# What the rules measured on the held-out seed ci-heldout-1, 15 draws per family, when they were last
# changed (round 6: the holds, the cgroup OOM-kill guard and a new high; round 5: no steeper span in
# the last two spans): 130 of 135 leaks detected by their deadlines, 6 of 165 non-leaks alerting
# (round 4 measured 130/135 and 7/165, round 3 128/135 and 7/165). --no-worse fails when the rules do worse on either: the gate the test suite applies while
# the targets are not met (docs/detection.md says by how much and on which families).
PREVIOUS_DETECTED = 130 / 135
PREVIOUS_FALSE_POSITIVES = 6 / 165


def draw_all(seed, count, names=None):
    draws = []
    for family in families.FAMILIES:
        if names and family.__name__ not in names:
            continue
        for i in range(count):
            draws.append(family(random.Random(f"{seed}:{family.__name__}:{i}")))
    return draws


def score(draw, alerts):
    """(detected by deadline, minutes to detect or None, alerted at all, most episodes of one alert)."""
    episodes = max((a.get("episodes", 0) for name, a in alerts.items() if name not in EVENT_ALERTS), default=0)
    if draw.leak:
        firsts = [a["first"] for name, a in alerts.items() if name in LEAK_ALERTS and "first" in a]
        first = min(firsts, default=None)
        ttd = None if first is None else first - draw.onset
        return ttd is not None and ttd <= draw.deadline, ttd, bool(alerts), episodes
    return False, None, bool(alerts), episodes


def quantile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def fmt_minutes(m):
    if m is None:
        return "–"
    m = round(m)
    return f"{m // 60}h{m % 60:02d}" if m >= 60 else f"{m}m"


def tables(draws, results):
    rows, misses, flaps = [], [], []
    by_family = {}
    for i, d in enumerate(draws):
        by_family.setdefault(d.family, []).append((i, d))
    totals = {"leaks": 0, "detected": 0, "ok": 0, "alerted": 0}
    for family, members in by_family.items():
        leak = members[0][1].leak
        detected, alerted, ttds, ratios, worst = 0, 0, [], [], 0
        for i, d in members:
            hit, ttd, any_alert, episodes = score(d, results[i])
            worst = max(worst, episodes)
            if episodes > MAX_EPISODES:
                flaps.append((d, results[i]))
            if leak:
                detected += hit
                if ttd is not None:
                    ttds.append(ttd)
                    ratios.append(ttd / d.deadline)
                if not hit:
                    misses.append((d, results[i], ttd))
            else:
                alerted += any_alert
                if any_alert:
                    misses.append((d, results[i], None))
        n = len(members)
        if leak:
            totals["leaks"] += n
            totals["detected"] += detected
            rows.append((family, "leak", n, f"{detected}/{n}", f"{n - detected}", fmt_minutes(quantile(ttds, 0.5)),
                         fmt_minutes(quantile(ttds, 0.9)), fmt_minutes(max(ttds, default=None)),
                         f"{quantile(ratios, 0.9):.2f}" if ratios else "–", worst))
        else:
            totals["ok"] += n
            totals["alerted"] += alerted
            rows.append((family, "no leak", n, "–", f"{alerted}/{n}", "–", "–", "–", "–", worst))
    return rows, totals, misses, flaps


HEADER = ("family", "truth", "draws", "detected by deadline", "missed / alerted", "time to detect p50",
          "p90", "max", "p90 / deadline", "most episodes")


def markdown(rows, totals, seed, count, seconds):
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    out.append("")
    detected = totals["detected"] / max(1, totals["leaks"])
    alerted = totals["alerted"] / max(1, totals["ok"])
    out.append(f"Seed `{seed}`, {count} draws per family, {totals['leaks']} leaks and {totals['ok']} non-leaks: "
               f"**{detected:.1%} of leaks detected by their deadlines**, "
               f"**{alerted:.1%} of non-leaks raised an alert** "
               f"({seconds:.0f} s of promtool on this machine).")
    return "\n".join(out)


def describe(draw, alerts, ttd=None):
    fired = ", ".join(f"{n} at {fmt_minutes(a.get('first'))} (x{a.get('episodes', 0)})" for n, a in alerts.items())
    extra = f" onset {fmt_minutes(draw.onset)} deadline {fmt_minutes(draw.deadline)}" if draw.leak else ""
    return f"  {draw.family}: {draw.params}{extra} -> {fired or 'nothing fired'}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", default="1")
    ap.add_argument("--draws", type=int, default=25, help="draws per family")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--families", help="comma-separated family function names (default: all)")
    ap.add_argument("--rules", default=RULES)
    ap.add_argument("--step", default="5m", help="rule evaluation interval of the promtool runs")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target of issue 11 is missed")
    ap.add_argument("--no-worse", action="store_true",
                    help="exit 1 when the rules do worse than the previous rules did on ci-heldout-1")
    ap.add_argument("--report", help="rewrite the results section of this markdown file")
    args = ap.parse_args()

    names = set(args.families.split(",")) if args.families else None
    draws = draw_all(args.seed, args.draws, names)
    started = time.monotonic()
    results = promtool_batch.evaluate(draws, args.rules, jobs=args.jobs, step=args.step)
    seconds = time.monotonic() - started
    rows, totals, misses, flaps = tables(draws, results)
    text = markdown(rows, totals, args.seed, args.draws, seconds)
    print(text)
    if misses:
        print("\nMissed leaks and alerting non-leaks:")
        for d, alerts, ttd in misses:
            print(describe(d, alerts, ttd))
    if flaps:
        print(f"\nAlerts with more than {MAX_EPISODES} firing episodes:")
        for d, alerts in flaps:
            print(describe(d, alerts))
    if args.report:
        replace_section(args.report, text)
    failed = []
    detected = totals["detected"] / max(1, totals["leaks"])
    alerted = totals["alerted"] / max(1, totals["ok"])
    if args.check:
        if detected < TARGET_DETECTED:
            failed.append(f"detected {totals['detected']}/{totals['leaks']} leaks by their deadlines (target >= 98 %)")
        if alerted > TARGET_FALSE_POSITIVES:
            failed.append(f"{totals['alerted']}/{totals['ok']} non-leaks raised an alert (target <= 1 %)")
        if flaps:
            failed.append(f"{len(flaps)} draws had an alert flapping more than once (target: none)")
    if args.no_worse:
        if detected < PREVIOUS_DETECTED:
            failed.append(f"detected {detected:.1%} of leaks, fewer than the previous rules ({PREVIOUS_DETECTED:.1%})")
        if alerted > PREVIOUS_FALSE_POSITIVES:
            failed.append(f"{alerted:.1%} of non-leaks alerted, more than the previous rules ({PREVIOUS_FALSE_POSITIVES:.1%})")
    if failed:
        print("\nMISSED: " + "; ".join(failed), file=sys.stderr)
        sys.exit(1)


BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def replace_section(path, text):
    with open(path) as f:
        doc = f.read()
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    with open(path, "w") as f:
        f.write(f"{head}{BEGIN}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
