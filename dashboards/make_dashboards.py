#!/usr/bin/env python3
"""Generates the Grafana dashboards of the monitoring mixin (mixin/dashboards.libsonnet) so that they
stay uniform: a datasource variable, stable uids, a unit and a description on every panel, links
between them. Then renders memleak-*.json with jsonnet and the mixin's default _config. Edit this
script, run it, and commit all three (exporter/tests/consistency.rs checks they are current, parses
every query and checks the series it names; Grafana itself is not installable on the build machines).

    python3 dashboards/make_dashboards.py                 # rewrites the libsonnet and the JSON
    python3 dashboards/make_dashboards.py --libsonnet OUT # only writes the libsonnet, to OUT
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MIXIN = os.path.join(HERE, "..", "mixin")
sys.path.insert(0, os.path.join(HERE, "..", "alerts"))
import make_rules  # noqa: E402


class Config:
    """A reference to a _config knob, written as `$._config.NAME` in the libsonnet."""

    def __init__(self, name):
        self.name = name


class Formatted:
    """A string with `%(knob)s` references to _config knobs."""

    def __init__(self, text):
        self.text = text


class Expr:
    """A PromQL query: the mixin's selector goes into every selector of exporter series."""

    def __init__(self, text):
        self.text = text


def jsonnet(value, indent=0):
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(value, Config):
        return f"$._config.{value.name}"
    if isinstance(value, Formatted):
        return f"{json.dumps(value.text.replace('%', '%%').replace('%%(', '%('))} % $._config"
    if isinstance(value, Expr):
        return make_rules.jsonnet_expr(value.text)
    if isinstance(value, dict):
        if not value:
            return "{}"
        fields = [f"{inner}{json.dumps(k)}: {jsonnet(v, indent + 2)}," for k, v in value.items()]
        return "{\n" + "\n".join(fields) + f"\n{pad}}}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + "\n".join(f"{inner}{jsonnet(v, indent + 2)}," for v in value) + f"\n{pad}]"
    return json.dumps(value)

DS = {"type": "prometheus", "uid": "${datasource}"}


def var_query(name, query, label, multi=True):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": Expr(query), "refId": f"{name}-var"}, "definition": Expr(query),
        "refresh": 2, "includeAll": multi, "multi": multi, "allValue": ".*" if multi else None,
        "current": {}, "options": [], "sort": 1,
    }


TEMPLATING = {
    "list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "options": [], "refresh": 1},
        var_query("instance", "label_values(memleak_exporter_build_info, instance)", "Instance"),
    ]
}


def var_all(var):
    """A variable that opens on every value (of the selected instances) rather than an arbitrary first one."""
    return {**var, "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}


# _config knobs of the dashboards and their defaults.
KNOBS = {
    "dashboardTags": ["memleak"],
    "dashboardRefresh": "1m",
    "dashboardTimeFrom": "now-24h",
    "fleetDashboardUID": "memleak-fleet",
    "drilldownDashboardUID": "memleak-drilldown",
    "capturesDashboardUID": "memleak-captures",
}
# Grafana keeps the data source and the time range across these links.
KEEP = "${datasource:queryparam}&${__url_time_range}"


def to_drilldown(title, *variables):
    """A data link from a series to the drill-down, on its instance and the given labels."""
    params = "&".join(f"var-{v}=${{__field.labels.{v}}}" for v in ("instance", *variables))
    return {"title": title, "url": Formatted(f"/d/%(drilldownDashboardUID)s?{params}&{KEEP}")}


def to_dashboard(title, knob):
    """A panel link to another dashboard, on the same instances."""
    return {"title": title, "url": Formatted(f"/d/%({knob})s?${{instance:queryparam}}&{KEEP}")}


def panel(pid, title, targets, unit, x, y, description, w=12, h=8, kind="timeseries", links=(), data_links=()):
    return {
        "id": pid, "type": kind, "title": title, "description": description, "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit, **({"links": list(data_links)} if data_links else {})},
                        "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        **({"links": list(links)} if links else {}),
        "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": Expr(expr), "legendFormat": legend}
                    for i, (expr, legend) in enumerate(targets)],
    }


def dashboard(uid, title, description, panels, extra_vars=(), links=()):
    templating = {"list": TEMPLATING["list"] + list(extra_vars)}
    return {
        "uid": Config(uid), "title": title, "description": description, "tags": Config("dashboardTags"),
        "editable": True, "schemaVersion": 39, "version": 1, "timezone": "browser",
        "time": {"from": Config("dashboardTimeFrom"), "to": "now"}, "refresh": Config("dashboardRefresh"),
        "templating": templating, "annotations": {"list": []},
        "links": [{"title": "memleak", "type": "dashboards", "tags": Config("dashboardTags"), "asDropdown": False,
                   "includeVars": True, "keepTime": True}]
        + list(links),
        "panels": panels,
    }


I = 'instance=~"$instance"'
GROUPS_TO_DRILL = [to_drilldown("Drill down into this process group", "group")]
CGROUPS_TO_DRILL = [to_drilldown("Drill down into this cgroup", "cgroup")]

fleet = dashboard("fleetDashboardUID", "memleak: fleet overview",
                  "Where memory grows across the fleet: top growing groups and cgroups, time to limits, pressure, OOM kills, firing leak alerts.", [
    panel(1, "Top growing process groups (slope of the anon floor over 3h)",
          [(f"topk(10, last_over_time(memleak:process_anon_bytes:min20m_deriv3h{{{I}}}[20m]))", "{{instance}} {{group}}")],
          "Bps", 0, 0, "Least-squares slope of the 20-minute floors of each group's anonymous memory over 3 h, the "
          "statistic the leak alerts test. Click a series to open its drill-down.", data_links=GROUPS_TO_DRILL),
    panel(2, "Top growing cgroups (slope of the anon floor over 3h)",
          [(f"topk(10, last_over_time(memleak:cgroup_anon_bytes:min20m_deriv3h{{{I}}}[20m]))", "{{instance}} {{cgroup}}")],
          "Bps", 12, 0, "Least-squares slope of the 20-minute floors of each cgroup's anonymous memory over 3 h. "
          "Click a series to open its drill-down.", data_links=CGROUPS_TO_DRILL),
    panel(3, "Cgroups closest to their memory limit",
          [(f"bottomk(10, memleak:cgroup_usage_bytes:seconds_to_limit{{{I}}})", "{{instance}} {{cgroup}}")], "s", 0, 8,
          "Time until memory.max at the rate of a steady leak the leak test found (any span); only cgroups with "
          "such a leak and a limit appear.", data_links=CGROUPS_TO_DRILL),
    panel(4, "Time until MemAvailable runs out",
          [(f"memleak:host_memory_available_bytes:seconds_to_exhaustion{{{I}}}", "{{instance}}")], "s", 12, 8,
          "MemAvailable divided by its rate of decline over the last hour; absent while it is not declining."),
    panel(5, "Memory pressure (PSI)",
          [(f"memleak:psi_some:ratio_rate5m{{{I}}}", "{{instance}} some"),
           (f"memleak:psi_full:ratio_rate5m{{{I}}}", "{{instance}} full")], "percentunit", 0, 16,
          "Share of time some (or all) tasks stalled waiting for memory, from /proc/pressure/memory."),
    panel(6, "OOM kills (per hour)",
          [(f"increase(memleak_host_memory_oom_kills_total{{{I}}}[1h])", "{{instance}} host"),
           (f'sum by (instance) (increase(memleak_cgroup_events_total{{{I}, event="oom_kill"}}[1h]))', "{{instance}} cgroups")],
          "short", 12, 16, "Processes the kernel's OOM killer killed, host-wide and in cgroups at their limit."),
    panel(7, "Firing leak alerts",
          [('ALERTS{alertstate="firing", alertname=~"(Process|Cgroup)MemoryLeak.*"}', "{{alertname}} {{instance}} {{group}}{{cgroup}}")],
          "short", 0, 24, "Leak alerts firing now; the captures dashboard shows what the exporters captured for them.",
          w=16, kind="table", links=[to_dashboard("Captures for these alerts", "capturesDashboardUID")]),
    panel(8, "Exporter collectors healthy",
          [(f"min by (collector) (memleak_exporter_collector_success{{{I}}})", "{{collector}}")], "bool", 16, 24,
          "0 when a collector failed its last scrape on any selected instance; the exporter's log says why.",
          w=8, kind="stat"),
])

G = 'instance=~"$instance", group=~"$group"'
C = 'instance=~"$instance", cgroup=~"$cgroup"'
TO_CAPTURES = [to_dashboard("Captures of the leak alerts", "capturesDashboardUID")]
TO_FLEET = [to_dashboard("Fleet overview", "fleetDashboardUID")]
drill = dashboard("drilldownDashboardUID", "memleak: process group and cgroup drill-down",
                  "Every layer-1 signal of one process group or cgroup, with the floors and the growth slopes the leak alerts use.", [
    panel(1, "Process group memory",
          [(f"memleak_process_anon_bytes{{{G}}}", "anon {{group}}"), (f"memleak_process_resident_bytes{{{G}}}", "RSS {{group}}"),
           (f"memleak_process_pss_bytes{{{G}}}", "PSS {{group}}"), (f"memleak_process_data_bytes{{{G}}}", "VmData {{group}}")],
          "bytes", 0, 0, "Anonymous memory (what the leak test watches), RSS, PSS and VmData summed over the group's "
          "processes.", links=TO_FLEET),
    panel(2, "Floors of anonymous memory (what the leak alerts watch)",
          [(f"last_over_time(memleak:process_anon_bytes:min10m{{{G}}}[10m])", "10m floor {{group}}"),
           (f"last_over_time(memleak:process_anon_bytes:min1h40m{{{G}}}[100m])", "1h40m floor {{group}}")], "bytes", 12, 0,
          "The minimum of anonymous memory per window: garbage-collection sawtooths and spikes vanish, a leak raises "
          "every floor."),
    panel(3, "Growth rate (least-squares slope)",
          [(f"last_over_time(memleak:process_anon_bytes:min10m_deriv1h30m{{{G}}}[10m])", "anon floor 1h30m {{group}}"),
           (f"last_over_time(memleak:process_anon_bytes:min1h40m_deriv15h{{{G}}}[100m])", "anon floor 15h {{group}}"),
           (f"memleak:process_data_bytes:deriv1h{{{G}}}", "VmData 1h {{group}}"),
           (f"memleak:process_heap_bytes:deriv1h{{{G}}}", "brk heap 1h {{group}}"),
           (f"memleak:process_anon_mapped_bytes:deriv1h{{{G}}}", "anon mmap 1h {{group}}")], "Bps", 0, 8,
          "Slopes of the floors over the fastest and slowest spans the leak test uses, and of VmData, the brk heap "
          "and anonymous mappings over an hour: which kind of memory grows."),
    panel(4, "Steady growth found by the leak test, by span (slope)",
          [(f"last_over_time(memleak:process_anon_bytes:leak_evidence1h30m{{{G}}}[10m])", "1h30m {{group}}"),
           (f"last_over_time(memleak:process_anon_bytes:leak_evidence3h{{{G}}}[20m])", "3h {{group}}"),
           (f"last_over_time(memleak:process_anon_bytes:leak_evidence9h{{{G}}}[1h])", "9h {{group}}"),
           (f"last_over_time(memleak:process_anon_bytes:leak_evidence15h{{{G}}}[100m])", "15h {{group}}")], "Bps", 12, 8,
          "Present only while the leak test holds at that span (the slope it found); a leak alert fires on these. "
          "The captures dashboard shows the profiles it asked for.", links=TO_CAPTURES),
    panel(5, "Page faults",
          [(f"memleak:process_minor_faults:rate5m{{{G}}}", "minor/s {{group}}"),
           (f"rate(memleak_process_major_faults_total{{{G}}}[5m])", "major/s {{group}}")], "ops", 0, 16,
          "Minor faults map fresh pages (a leak touches new memory steadily); major faults read from disk."),
    panel(6, "Page-fault rate against its daily baseline",
          [(f"memleak:process_minor_faults:rate5m_to_baseline_ratio{{{G}}}", "{{group}}")], "percentunit", 12, 16,
          "The minor-fault rate divided by its own average over the last 24 h."),
    panel(7, "Processes and restarts",
          [(f"memleak_process_processes{{{G}}}", "processes {{group}}"),
           (f"changes(memleak_process_start_time_seconds{{{G}}}[1h])", "restarts/h {{group}}")], "short", 0, 24,
          "Processes in the group and how often its start time changed: a restart resets the leak test."),
    panel(8, "Cgroup memory",
          [(f"memleak_cgroup_usage_bytes{{{C}}}", "usage {{cgroup}}"), (f"memleak_cgroup_limit_bytes{{{C}}}", "limit {{cgroup}}"),
           (f"memleak_cgroup_anon_bytes{{{C}}}", "anon {{cgroup}}"), (f"memleak_cgroup_file_bytes{{{C}}}", "file {{cgroup}}"),
           (f"memleak_cgroup_kernel_bytes{{{C}}}", "kernel {{cgroup}}"),
           (f"memleak_cgroup_slab_unreclaimable_bytes{{{C}}}", "unreclaimable slab {{cgroup}}")], "bytes", 12, 24,
          "memory.current against memory.max, and its anonymous, file, kernel and unreclaimable slab parts "
          "(memory.stat)."),
    panel(9, "Cgroup memory events",
          [(f"increase(memleak_cgroup_events_total{{{C}}}[5m])", "{{event}} {{cgroup}}")], "short", 0, 32,
          "memory.events: reclaim at memory.high or memory.max, and OOM kills."),
    panel(10, "Cgroup memory pressure (PSI some)",
          [(f"memleak:cgroup_psi_some:ratio_rate5m{{{C}}}", "{{cgroup}}")], "percentunit", 12, 32,
          "Share of time some tasks of the cgroup stalled waiting for memory (memory.pressure)."),
    panel(11, "Cgroup time to limit",
          [(f"memleak:cgroup_usage_bytes:seconds_to_limit{{{C}}}", "{{cgroup}}")], "s", 0, 40,
          "Time until memory.max at the rate of the steady leak the leak test found."),
    panel(12, "Cgroup steady growth found by the leak test, by span (slope)",
          [(f"last_over_time(memleak:cgroup_anon_bytes:leak_evidence1h30m{{{C}}}[10m])", "1h30m {{cgroup}}"),
           (f"last_over_time(memleak:cgroup_anon_bytes:leak_evidence3h{{{C}}}[20m])", "3h {{cgroup}}"),
           (f"last_over_time(memleak:cgroup_anon_bytes:leak_evidence15h{{{C}}}[100m])", "15h {{cgroup}}")], "Bps", 12, 40,
          "Present only while the leak test holds for the cgroup at that span (the slope it found).",
          links=TO_CAPTURES),
    panel(13, "Page faults by memory region (eBPF, --collector.page_faults)",
          [(f"sum by (cgroup, region) (rate(memleak_page_faults_region_estimated_total{{{C}}}[5m]))",
            "{{region}} {{cgroup}}")], "ops", 0, 48,
          "Sampled faulting addresses attributed to heap, anonymous mappings, files and stack. "
          "A leak faults in fresh heap or anon pages steadily."),
    panel(14, "Net brk and mmap growth (eBPF, --collector.memory_syscalls)",
          [(f'sum by (cgroup) (rate(memleak_memory_syscalls_brk_moved_bytes_total{{{C}, direction="grown"}}[5m]))'
            f' - sum by (cgroup) (rate(memleak_memory_syscalls_brk_moved_bytes_total{{{C}, direction="shrunk"}}[5m]))',
            "brk {{cgroup}}"),
           (f"sum by (cgroup) (rate(memleak_memory_syscalls_mapped_bytes_total{{{C}}}[5m]))"
            f" - sum by (cgroup) (rate(memleak_memory_syscalls_unmapped_bytes_total{{{C}}}[5m]))",
            "mmap - munmap {{cgroup}}")], "Bps", 12, 48,
          "Bytes the program break and the mappings grew by, net of what was given back."),
    panel(15, "mmap lengths (eBPF, --collector.memory_syscalls)",
          [(f"histogram_quantile(0.5, sum by (le, cgroup) (rate(memleak_memory_syscalls_mmap_size_bytes_bucket{{{C}}}[5m])))",
            "p50 {{cgroup}}"),
           (f"histogram_quantile(0.99, sum by (le, cgroup) (rate(memleak_memory_syscalls_mmap_size_bytes_bucket{{{C}}}[5m])))",
            "p99 {{cgroup}}")], "bytes", 0, 56,
          "Median and 99th percentile of the lengths the cgroup's processes pass to mmap."),
], extra_vars=[
    var_all(var_query("group", 'label_values(memleak_process_processes{instance=~"$instance"}, group)', "Process group")),
    var_all(var_query("cgroup", 'label_values(memleak_cgroup_usage_bytes{instance=~"$instance"}, cgroup)', "Cgroup")),
])

# The exporter's captures API, on the instance a row or the variable names.
CAPTURES_API = "http://${instance}/api/v1/captures"
ROW_CAPTURES_API = "http://${__data.fields.instance}/api/v1/captures"

alerts_table = panel(5, "Alerts asking for a capture",
                     [('ALERTS{alertstate="firing", capture!=""}', "{{alertname}} {{capture}} {{instance}} {{group}}{{cgroup}}")],
                     "short", 0, 16,
                     "Each row is a target an exporter was asked to capture. The instance links to that "
                     "exporter's captures (/api/v1/captures: status, summary, profile.pb.gz, flamegraph.svg).",
                     w=24, kind="table", links=[to_dashboard("Drill-down of these targets", "drilldownDashboardUID")])
alerts_table["fieldConfig"]["overrides"] = [{
    "matcher": {"id": "byName", "options": "instance"},
    "properties": [{"id": "links", "value": [{"title": "Captures of this exporter", "url": ROW_CAPTURES_API,
                                               "targetBlank": True}]}],
}]

captures = dashboard("capturesDashboardUID", "memleak: captures and ingestion",
                     "Captures run by the exporters for leak alerts (webhook or Alertmanager polling): outcomes, refusals, "
                     "durations, and the alerts that asked for them, linked to each exporter's captures API; and what "
                     "the exporters ingested from their watched folders.", [
    panel(1, "Captures finished (per hour)",
          [(f"sum by (kind, outcome) (increase(memleak_exporter_captures_total{{{I}}}[1h]))", "{{kind}} {{outcome}}")],
          "short", 0, 0, "Captures that ended, by kind and outcome.", links=TO_FLEET),
    panel(2, "Alerts that started no capture, by reason (per hour)",
          [(f"sum by (kind, reason) (increase(memleak_exporter_capture_rejections_total{{{I}}}[1h]))", "{{kind}} {{reason}}")],
          "short", 12, 0, "Capture requests that started no capture, by the reason the exporter "
          "gives (its log and the captures API say more)."),
    panel(3, "Capture duration (p90)",
          [(f"histogram_quantile(0.9, sum by (kind, le) (rate(memleak_exporter_capture_duration_seconds_bucket{{{I}}}[1h])))",
            "{{kind}}")], "s", 0, 8, "90th percentile of how long captures took over the last hour, by kind."),
    panel(4, "Capture requests by alert status and webhook answers (per hour)",
          [(f"sum by (kind, status) (increase(memleak_exporter_capture_requests_total{{{I}}}[1h]))", "{{kind}} {{status}}"),
           (f"sum by (code) (increase(memleak_exporter_webhook_requests_total{{{I}}}[1h]))", "HTTP {{code}}")],
          "short", 12, 8, "Alerts received asking for a capture, by their status, and the HTTP codes the webhook "
          "answered with."),
    alerts_table,
    panel(6, "Ingested files by format and outcome (per hour)",
          [(f"sum by (format, outcome) (increase(memleak_ingest_files_total{{{I}}}[1h]))", "{{format}} {{outcome}}"),
           (f"sum by (reason) (increase(memleak_ingest_failures_total{{{I}}}[1h]))", "failed: {{reason}}")],
          "short", 0, 24, "Files taken from the watched folders (--ingest.dir), by detected format and outcome, "
          "and why the failed ones failed (moved to .failed)."),
    panel(7, "Leaked and in-use bytes of the ingested reports",
          [(f"sum by (instance, format, file) (memleak_ingest_leaked_bytes{{{I}}})", "leaked {{format}} {{file}}"),
           (f"sum by (instance, format, file) (memleak_ingest_inuse_bytes{{{I}}})", "in use {{format}} {{file}}")],
          "bytes", 12, 24, "Leaked bytes (memcheck, LSan, heaptrack) and in-use bytes (heap profiles, Massif's peak) "
          "of each kept ingested report.", kind="table"),
], links=[{"title": "Captures API (the selected instance)", "type": "link", "url": CAPTURES_API, "targetBlank": True,
           "tooltip": "GET /api/v1/captures on the exporter; with a webhook token, add the Authorization header"}])

DASHBOARDS = [fleet, drill, captures]


def libsonnet():
    """The dashboards as a monitoring mixin's fragment: grafanaDashboards and the defaults of their knobs."""
    files = {f"{KNOBS[d['uid'].name]}.json": d for d in DASHBOARDS}
    return (f"// Generated by dashboards/make_dashboards.py: edit that script, not this file.\n"
            f"{{\n  _config+:: {jsonnet(KNOBS, 2)},\n  grafanaDashboards+:: {jsonnet(files, 2)},\n}}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--libsonnet", help="only write the mixin's dashboards fragment here")
    args = ap.parse_args()
    out = args.libsonnet or os.path.join(MIXIN, "dashboards.libsonnet")
    with open(out, "w") as f:
        f.write(libsonnet())
    if not args.libsonnet:
        subprocess.run(["jsonnet", "-m", HERE, os.path.join(MIXIN, "dashboards.jsonnet")], check=True,
                       stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
