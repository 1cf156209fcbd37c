#!/usr/bin/env python3
"""Generates the Grafana dashboards (memleak-*.json) so that they stay uniform:
a datasource variable, stable uids, a unit on every panel. Edit this script, run
it, and commit both. The test suite parses every query and checks the series it
names (exporter/tests/consistency.rs); Grafana itself is not installable on the
build machines.
"""
import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}


def var_query(name, query, label, multi=True):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
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


def panel(pid, title, targets, unit, x, y, w=12, h=8, kind="timeseries", description=""):
    return {
        "id": pid, "type": kind, "title": title, "description": description, "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(targets)],
    }


def dashboard(uid, title, description, panels, extra_vars=(), links=()):
    templating = {"list": TEMPLATING["list"] + list(extra_vars)}
    return {
        "uid": uid, "title": title, "description": description, "tags": ["memleak"],
        "editable": True, "schemaVersion": 39, "version": 1, "timezone": "browser",
        "time": {"from": "now-24h", "to": "now"}, "refresh": "1m",
        "templating": templating, "annotations": {"list": []},
        "links": [{"title": t, "type": "dashboards", "tags": ["memleak"], "asDropdown": False} for t in ["memleak"]]
        + list(links),
        "panels": panels,
    }


I = 'instance=~"$instance"'

fleet = dashboard("memleak-fleet", "memleak: fleet overview",
                  "Where memory grows across the fleet: top growing groups and cgroups, time to limits, pressure, OOM kills, firing leak alerts.", [
    panel(1, "Top growing process groups (slope of the anon floor over 3h)",
          [(f"topk(10, last_over_time(memleak:process_anon_bytes:min20m_deriv3h{{{I}}}[20m]))", "{{instance}} {{group}}")],
          "Bps", 0, 0),
    panel(2, "Top growing cgroups (slope of the anon floor over 3h)",
          [(f"topk(10, last_over_time(memleak:cgroup_anon_bytes:min20m_deriv3h{{{I}}}[20m]))", "{{instance}} {{cgroup}}")],
          "Bps", 12, 0),
    panel(3, "Cgroups closest to their memory limit",
          [(f"bottomk(10, memleak:cgroup_usage_bytes:seconds_to_limit{{{I}}})", "{{instance}} {{cgroup}}")], "s", 0, 8),
    panel(4, "Time until MemAvailable runs out",
          [(f"memleak:host_memory_available_bytes:seconds_to_exhaustion{{{I}}}", "{{instance}}")], "s", 12, 8),
    panel(5, "Memory pressure (PSI)",
          [(f"memleak:psi_some:ratio_rate5m{{{I}}}", "{{instance}} some"),
           (f"memleak:psi_full:ratio_rate5m{{{I}}}", "{{instance}} full")], "percentunit", 0, 16),
    panel(6, "OOM kills (per hour)",
          [(f"increase(memleak_host_memory_oom_kills_total{{{I}}}[1h])", "{{instance}} host"),
           (f'sum by (instance) (increase(memleak_cgroup_events_total{{{I}, event="oom_kill"}}[1h]))', "{{instance}} cgroups")],
          "short", 12, 16),
    panel(7, "Firing leak alerts",
          [('ALERTS{alertstate="firing", alertname=~"(Process|Cgroup)MemoryLeak.*"}', "{{alertname}} {{instance}} {{group}}{{cgroup}}")],
          "short", 0, 24, w=16, kind="table"),
    panel(8, "Exporter collectors healthy",
          [(f"min by (collector) (memleak_exporter_collector_success{{{I}}})", "{{collector}}")], "bool", 16, 24, w=8, kind="stat"),
])

G = 'instance=~"$instance", group=~"$group"'
C = 'instance=~"$instance", cgroup=~"$cgroup"'
drill = dashboard("memleak-drilldown", "memleak: process group and cgroup drill-down",
                  "Every layer-1 signal of one process group or cgroup, with the floors and the growth slopes the leak alerts use.", [
    panel(1, "Process group memory",
          [(f"memleak_process_anon_bytes{{{G}}}", "anon {{group}}"), (f"memleak_process_resident_bytes{{{G}}}", "RSS {{group}}"),
           (f"memleak_process_pss_bytes{{{G}}}", "PSS {{group}}"), (f"memleak_process_data_bytes{{{G}}}", "VmData {{group}}")],
          "bytes", 0, 0),
    panel(2, "Floors of anonymous memory (what the leak alerts watch)",
          [(f"last_over_time(memleak:process_anon_bytes:min10m{{{G}}}[10m])", "10m floor {{group}}"),
           (f"last_over_time(memleak:process_anon_bytes:min1h40m{{{G}}}[100m])", "1h40m floor {{group}}")], "bytes", 12, 0),
    panel(3, "Growth rate (least-squares slope)",
          [(f"last_over_time(memleak:process_anon_bytes:min10m_deriv1h30m{{{G}}}[10m])", "anon floor 1h30m {{group}}"),
           (f"last_over_time(memleak:process_anon_bytes:min1h40m_deriv15h{{{G}}}[100m])", "anon floor 15h {{group}}"),
           (f"memleak:process_data_bytes:deriv1h{{{G}}}", "VmData 1h {{group}}"),
           (f"memleak:process_heap_bytes:deriv1h{{{G}}}", "brk heap 1h {{group}}"),
           (f"memleak:process_anon_mapped_bytes:deriv1h{{{G}}}", "anon mmap 1h {{group}}")], "Bps", 0, 8),
    panel(4, "Steady growth found by the leak test, by span (slope)",
          [(f"last_over_time(memleak:process_anon_bytes:leak_evidence1h30m{{{G}}}[10m])", "1h30m {{group}}"),
           (f"last_over_time(memleak:process_anon_bytes:leak_evidence3h{{{G}}}[20m])", "3h {{group}}"),
           (f"last_over_time(memleak:process_anon_bytes:leak_evidence9h{{{G}}}[1h])", "9h {{group}}"),
           (f"last_over_time(memleak:process_anon_bytes:leak_evidence15h{{{G}}}[100m])", "15h {{group}}")], "Bps", 12, 8),
    panel(5, "Page faults",
          [(f"memleak:process_minor_faults:rate5m{{{G}}}", "minor/s {{group}}"),
           (f"rate(memleak_process_major_faults_total{{{G}}}[5m])", "major/s {{group}}")], "ops", 0, 16),
    panel(6, "Page-fault rate against its daily baseline",
          [(f"memleak:process_minor_faults:rate5m_to_baseline_ratio{{{G}}}", "{{group}}")], "percentunit", 12, 16),
    panel(7, "Processes and restarts",
          [(f"memleak_process_processes{{{G}}}", "processes {{group}}"),
           (f"changes(memleak_process_start_time_seconds{{{G}}}[1h])", "restarts/h {{group}}")], "short", 0, 24),
    panel(8, "Cgroup memory",
          [(f"memleak_cgroup_usage_bytes{{{C}}}", "usage {{cgroup}}"), (f"memleak_cgroup_limit_bytes{{{C}}}", "limit {{cgroup}}"),
           (f"memleak_cgroup_anon_bytes{{{C}}}", "anon {{cgroup}}"), (f"memleak_cgroup_file_bytes{{{C}}}", "file {{cgroup}}"),
           (f"memleak_cgroup_kernel_bytes{{{C}}}", "kernel {{cgroup}}"),
           (f"memleak_cgroup_slab_unreclaimable_bytes{{{C}}}", "unreclaimable slab {{cgroup}}")], "bytes", 12, 24),
    panel(9, "Cgroup memory events",
          [(f"increase(memleak_cgroup_events_total{{{C}}}[5m])", "{{event}} {{cgroup}}")], "short", 0, 32),
    panel(10, "Cgroup memory pressure (PSI some)",
          [(f"memleak:cgroup_psi_some:ratio_rate5m{{{C}}}", "{{cgroup}}")], "percentunit", 12, 32),
    panel(11, "Cgroup time to limit",
          [(f"memleak:cgroup_usage_bytes:seconds_to_limit{{{C}}}", "{{cgroup}}")], "s", 0, 40),
    panel(12, "Cgroup steady growth found by the leak test, by span (slope)",
          [(f"last_over_time(memleak:cgroup_anon_bytes:leak_evidence1h30m{{{C}}}[10m])", "1h30m {{cgroup}}"),
           (f"last_over_time(memleak:cgroup_anon_bytes:leak_evidence3h{{{C}}}[20m])", "3h {{cgroup}}"),
           (f"last_over_time(memleak:cgroup_anon_bytes:leak_evidence15h{{{C}}}[100m])", "15h {{cgroup}}")], "Bps", 12, 40),
    panel(13, "Page faults by memory region (eBPF, --collector.page_faults)",
          [(f"sum by (cgroup, region) (rate(memleak_page_faults_region_estimated_total{{{C}}}[5m]))",
            "{{region}} {{cgroup}}")], "ops", 0, 48,
          description="Sampled faulting addresses attributed to heap, anonymous mappings, files and stack. "
                      "A leak faults in fresh heap or anon pages steadily."),
    panel(14, "Net brk and mmap growth (eBPF, --collector.memory_syscalls)",
          [(f'sum by (cgroup) (rate(memleak_memory_syscalls_brk_moved_bytes_total{{{C}, direction="grown"}}[5m]))'
            f' - sum by (cgroup) (rate(memleak_memory_syscalls_brk_moved_bytes_total{{{C}, direction="shrunk"}}[5m]))',
            "brk {{cgroup}}"),
           (f"sum by (cgroup) (rate(memleak_memory_syscalls_mapped_bytes_total{{{C}}}[5m]))"
            f" - sum by (cgroup) (rate(memleak_memory_syscalls_unmapped_bytes_total{{{C}}}[5m]))",
            "mmap - munmap {{cgroup}}")], "Bps", 12, 48,
          description="Bytes the program break and the mappings grew by, net of what was given back."),
    panel(15, "mmap lengths (eBPF, --collector.memory_syscalls)",
          [(f"histogram_quantile(0.5, sum by (le, cgroup) (rate(memleak_memory_syscalls_mmap_size_bytes_bucket{{{C}}}[5m])))",
            "p50 {{cgroup}}"),
           (f"histogram_quantile(0.99, sum by (le, cgroup) (rate(memleak_memory_syscalls_mmap_size_bytes_bucket{{{C}}}[5m])))",
            "p99 {{cgroup}}")], "bytes", 0, 56),
], extra_vars=[
    var_query("group", 'label_values(memleak_process_processes{instance=~"$instance"}, group)', "Process group"),
    var_query("cgroup", 'label_values(memleak_cgroup_usage_bytes{instance=~"$instance"}, cgroup)', "Cgroup"),
])

# The exporter's captures API, on the instance a row or the variable names.
CAPTURES_API = "http://${instance}/api/v1/captures"
ROW_CAPTURES_API = "http://${__data.fields.instance}/api/v1/captures"

alerts_table = panel(5, "Alerts asking for a capture",
                     [('ALERTS{alertstate="firing", capture!=""}', "{{alertname}} {{capture}} {{instance}} {{group}}{{cgroup}}")],
                     "short", 0, 16, w=24, kind="table",
                     description="Each row is a target an exporter was asked to capture. The instance links to that "
                                 "exporter's captures (/api/v1/captures: status, summary, profile.pb.gz, flamegraph.svg).")
alerts_table["fieldConfig"]["overrides"] = [{
    "matcher": {"id": "byName", "options": "instance"},
    "properties": [{"id": "links", "value": [{"title": "Captures of this exporter", "url": ROW_CAPTURES_API,
                                               "targetBlank": True}]}],
}]

captures = dashboard("memleak-captures", "memleak: captures",
                     "Captures run by the exporters for leak alerts (webhook or Alertmanager polling): outcomes, refusals, "
                     "durations, and the alerts that asked for them, linked to each exporter's captures API.", [
    panel(1, "Captures finished (per hour)",
          [(f"sum by (kind, outcome) (increase(memleak_exporter_captures_total{{{I}}}[1h]))", "{{kind}} {{outcome}}")],
          "short", 0, 0),
    panel(2, "Alerts that started no capture, by reason (per hour)",
          [(f"sum by (kind, reason) (increase(memleak_exporter_capture_rejections_total{{{I}}}[1h]))", "{{kind}} {{reason}}")],
          "short", 12, 0),
    panel(3, "Capture duration (p90)",
          [(f"histogram_quantile(0.9, sum by (kind, le) (rate(memleak_exporter_capture_duration_seconds_bucket{{{I}}}[1h])))",
            "{{kind}}")], "s", 0, 8),
    panel(4, "Capture requests by alert status and webhook answers (per hour)",
          [(f"sum by (kind, status) (increase(memleak_exporter_capture_requests_total{{{I}}}[1h]))", "{{kind}} {{status}}"),
           (f"sum by (code) (increase(memleak_exporter_webhook_requests_total{{{I}}}[1h]))", "HTTP {{code}}")],
          "short", 12, 8),
    alerts_table,
], links=[{"title": "Captures API (the selected instance)", "type": "link", "url": CAPTURES_API, "targetBlank": True,
           "tooltip": "GET /api/v1/captures on the exporter; with a webhook token, add the Authorization header"}])

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    for d in (fleet, drill, captures):
        with open(os.path.join(here, f"{d['uid']}.json"), "w") as f:
            json.dump(d, f, indent=2)
            f.write("\n")
