#!/usr/bin/env bash
# Benchmark (not a test): the capture loop, in one run, on loopback.
#   1. From an alert reaching the exporter to the capture listed as running:
#      through the webhook (POST, then GET /api/v1/captures), and through
#      polling (the alert posted to Alertmanager 0.25, the exporter polling it
#      every second), next to the poll interval.
#   2. The exporter's own CPU and memory: idle, then while allocator-profile
#      captures of the Go service (tests/helpers/leakysvc.go) run back to back.
#   3. The target's slowdown during pull-based captures: the Go service answers
#      /work requests (64 KiB allocated and dropped each, like a JSON handler)
#      from a keep-alive client; its throughput with no capture and with
#      captures running is measured in alternating 10 s phases (pairs cancel
#      this VM's drift) and the median of the pairs' ratios is reported, for
#      one 10 s capture per phase (two pulls) and for back-to-back 1 s captures
#      (a pull every half second: the worst case).
# Usage: benches/capture.sh [PAIRS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-3}
cargo build --release -q -p memleak-exporter
. benches/scratch.sh

GOCACHE="$work/go" HOME="$work/go" GO111MODULE=off go build -o "$work/leakysvc" exporter/tests/helpers/leakysvc.go
"$work/leakysvc" > "$work/svc.addr" 2>/dev/null & pids+=($!)
svc_pid=$!
for _ in $(seq 50); do [ -s "$work/svc.addr" ] && break; sleep 0.1; done
svc=$(head -1 "$work/svc.addr")

am_port=19941
printf 'route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n' > "$work/am.yml"
prometheus-alertmanager --config.file="$work/am.yml" --storage.path="$work/am" \
  --web.listen-address=127.0.0.1:$am_port --cluster.listen-address= 2>"$work/am.log" & pids+=($!)

port=19931
target/release/memleak-exporter --web.listen-address=127.0.0.1:$port --capture.dir="$work/spool" \
  --capture.pprof.allow='127.0.0.1:*' --capture.cooldown=0s --capture.max-per-hour=1000000 \
  --capture.max-concurrent=4 --capture.keep=20 --no-collector.process --no-collector.cgroup \
  --alertmanager.url=http://127.0.0.1:$am_port --alertmanager.interval=1s 2>"$work/exporter.log" & pids+=($!)
exporter_pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/-/ready >/dev/null 2>&1 && curl -sf http://127.0.0.1:$am_port/-/ready >/dev/null 2>&1 && break; sleep 0.1; done

python3 - "$port" "$am_port" "$svc" "$exporter_pid" "$pairs" <<'PY'
import http.client, json, os, statistics, sys, threading, time

port, am_port, svc, exporter_pid, pairs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
svc_host, svc_port = svc.rsplit(":", 1)
heap = f"http://{svc}/debug/pprof/heap?gc=1"
seq = [0]

def call(p, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", p, timeout=30)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, data

def listed():
    return json.loads(call(port, "GET", "/api/v1/captures")[1])["captures"]

def alert(duration, extra=None):
    seq[0] += 1
    labels = {"alertname": "Bench", "capture": "allocator-profile", "group": "leakysvc"}
    labels.update(extra or {})
    return {"status": "firing", "labels": labels, "fingerprint": f"b{os.getpid()}x{seq[0]}",
            "annotations": {"pprof_url": heap, "capture_duration": duration}}

def post(duration):
    a = alert(duration)
    status, data = call(port, "POST", "/api/v1/alerts", {"version": "4", "alerts": [a]})
    out = json.loads(data)["outcomes"][0]
    assert out["outcome"] == "accepted", out
    return out["capture"]

def wait_done(ids):
    while any(c["status"] == "running" for c in listed() if c["id"] in ids):
        time.sleep(0.05)

# 1a. Webhook: alert POSTed → listed as running.
lat = []
for _ in range(30):
    t0 = time.perf_counter()
    cid = post("1s")
    while not any(c["id"] == cid and c["status"] == "running" for c in listed()):
        pass
    lat.append((time.perf_counter() - t0) * 1000)
    wait_done({cid})
print(f"webhook: alert to listed running: median {statistics.median(lat):.1f} ms, max {max(lat):.1f} ms ({len(lat)} alerts)")

# 1b. Polling (interval 1 s): alert posted to Alertmanager → listed as running.
lat = []
for i in range(10):
    labels = {"alertname": "BenchPoll", "capture": "allocator-profile", "group": "leakysvc",
              "instance": f"127.0.0.1:{port}", "bench": str(i)}
    t0 = time.perf_counter()
    call(am_port, "POST", "/api/v2/alerts", [{"labels": labels, "annotations": {"pprof_url": heap, "capture_duration": "1s"}}])
    found = None
    while found is None:
        found = next((c for c in listed() if c["labels"].get("bench") == str(i)), None)
        time.sleep(0.01)
    lat.append((time.perf_counter() - t0) * 1000)
    wait_done({found["id"]})
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    call(am_port, "POST", "/api/v2/alerts", [{"labels": labels, "endsAt": now}])
print(f"polling every 1 s: alert to listed running: median {statistics.median(lat):.0f} ms, max {max(lat):.0f} ms (10 alerts; one interval is 1000 ms)")

def cpu_rss(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status") if ":" in l)
    return cpu, int(status["VmRSS"].split()[0]) * 1024, int(status["VmHWM"].split()[0]) * 1024

# 2. The exporter's CPU and memory: idle, then captures back to back.
c0, rss_idle, _ = cpu_rss(exporter_pid); time.sleep(10); c1, _, _ = cpu_rss(exporter_pid)
ids, t0 = [], time.time()
while time.time() - t0 < 10:
    ids.append(post("1s")); wait_done({ids[-1]})
c2, rss_busy, hwm = cpu_rss(exporter_pid)
print(f"exporter idle: {c1 - c0:.3f} CPU s in 10 s, {rss_idle / 2**20:.1f} MiB resident")
print(f"exporter with {len(ids)} captures back to back (2 pulls, decode, diff, pprof + SVG + JSON each): "
      f"{c2 - c1:.3f} CPU s in {time.time() - t0:.1f} s = {(c2 - c1) / len(ids) * 1000:.0f} ms per capture; "
      f"{rss_busy / 2**20:.1f} MiB resident, peak {hwm / 2**20:.1f} MiB")

# 3. The target's throughput with and without captures.
def load(seconds):
    c = http.client.HTTPConnection(svc_host, int(svc_port), timeout=30)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        c.request("GET", "/work?size=65536"); c.getresponse().read(); n += 1
    c.close()
    return n / (time.perf_counter() - t0)

def with_captures(seconds, window):
    stop = threading.Event()
    def run():
        while not stop.is_set():
            wait_done({post(window)})
    t = threading.Thread(target=run); t.start()
    rps = load(seconds); stop.set(); t.join()
    return rps

for label, window in (("one 10 s capture per phase", "10s"), ("1 s captures back to back", "1s")):
    ratios = []
    for _ in range(pairs):
        base = load(10)
        busy = with_captures(10, window)
        ratios.append(busy / base)
        print(f"  {label}: {base:.0f} req/s without, {busy:.0f} req/s with ({busy / base:.3f})")
    print(f"target throughput with {label}: median ratio {statistics.median(ratios):.3f} of no capture ({pairs} pairs)")
PY
