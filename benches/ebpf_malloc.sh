#!/usr/bin/env bash
# Benchmark (not a test): what an `ebpf-malloc` capture costs the traced
# program, next to the bpftrace script people run where BCC's memleak cannot
# compile (benches/ebpf_malloc.bt: uprobe malloc/calloc/realloc, their
# uretprobes, free, blocks kept by address with their ustack), side by side in
# one run, and how close each gets to the leak's true size.
#   Loads (bpf/tests/helpers/malloc_churn.c, -O2 with frame pointers): each
#   iteration frees the block of 64 iterations before and allocates one of 16 B
#   to 4 KiB; every 1,000th also leaks 512 B in leak_slowly(); the program prints
#   what it leaked (the truth) and its CPU time.
#   - mallocbench: PAIRS iterations flat out (millions of malloc/free pairs);
#   - service: SERVICE iterations with a 20 ms sleep every 100 (at most 5,000
#     allocations and frees a second, like a busy request handler).
#   Tracers, one after the other on the same load: none; ebpf-malloc at the
#   default budget (5 % of one CPU); ebpf-malloc in full mode (every call,
#   budget 100 %: coverage equal to bpftrace's); bpftrace; none again.
#   Each tracer is attached before the loop starts and the leak's bytes are read
#   while the program still lives (ebpf-malloc: the capture ends when it exits).
#   The target maps a private copy of libc: bpftrace 0.17 attaches its uprobes
#   to every process mapping the library (-p does not narrow them), which on a
#   shared host would slow every process.
# Needs root, bpftrace (scripts/install-test-deps.sh) and cc.
# Usage: benches/ebpf_malloc.sh [PAIRS=2000000] [SERVICE=100000]
#   EXPORTER=path uses that exporter binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-2000000}
service=${2:-100000}
[ "$(id -u)" -eq 0 ] || { echo "ebpf_malloc.sh: needs root (uprobes)" >&2; exit 1; }
command -v bpftrace >/dev/null || { echo "ebpf_malloc.sh: needs bpftrace (Debian package bpftrace)" >&2; exit 1; }
exporter=${EXPORTER:-target/release/memleak-exporter}
[ -n "${EXPORTER:-}" ] || cargo build --release -q -p memleak-exporter
. benches/scratch.sh

cc -O2 -fno-omit-frame-pointer -fno-optimize-sibling-calls -o "$work/malloc_churn" bpf/tests/helpers/malloc_churn.c
mkdir "$work/lib"
cp "$(ldd "$work/malloc_churn" | awk '/libc\.so/ { print $3 }')" "$work/lib/"

port=19951
"$exporter" --web.listen-address=127.0.0.1:$port --capture.dir="$work/spool" --capture.cooldown=0s \
  --capture.max-per-hour=1000 --no-collector.process --no-collector.cgroup \
  --capture.ebpf-malloc.budget=5 2>"$work/exporter.log" & pids+=($!)
"$exporter" --web.listen-address=127.0.0.1:$((port + 1)) --capture.dir="$work/spool-full" --capture.cooldown=0s \
  --capture.max-per-hour=1000 --no-collector.process --no-collector.cgroup \
  --capture.ebpf-malloc.budget=100 2>"$work/exporter-full.log" & pids+=($!)
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:$port/-/ready >/dev/null 2>&1 && curl -sf http://127.0.0.1:$((port + 1))/-/ready >/dev/null 2>&1 && break
  sleep 0.1
done

python3 - "$work" "$port" "$pairs" "$service" <<'PY'
import http.client, json, os, re, signal, subprocess, sys, time

work, port, pairs, service = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
churn, libdir = f"{work}/malloc_churn", f"{work}/lib"
libc = os.path.join(libdir, os.listdir(libdir)[0])
seq = [0]

def call(p, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", p, timeout=30)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, data

def capture(p, cid):
    reply = json.loads(call(p, "GET", f"/api/v1/captures/{cid}")[1])
    return reply["capture"], reply.get("summary") or {}

def start_capture(p, pid, full):
    seq[0] += 1
    annotations = {"capture_duration": "600s"}
    if full:
        annotations["ebpf_malloc_mode"] = "full"
    alert = {"status": "firing", "fingerprint": f"e{os.getpid()}x{seq[0]}", "annotations": annotations,
             "labels": {"alertname": "Bench", "capture": "ebpf-malloc", "group": "malloc_churn", "pid": str(pid)}}
    out = json.loads(call(p, "POST", "/api/v1/alerts", {"version": "4", "alerts": [alert]})[1])["outcomes"][0]
    assert out["outcome"] == "accepted", out
    cid = out["capture"]
    while True:
        c, _ = capture(p, cid)
        if c.get("phase") == "window" or c["status"] != "running":
            return cid
        time.sleep(0.05)

def leak_in_bpftrace(text):
    # @inuse[\n frames \n]: BYTES, the stack with leak_slowly.
    for stack, value in re.findall(r"@inuse\[(.*?)\]: (-?\d+)", text, re.S):
        if "leak_slowly" in stack:
            return int(value)
    return 0

def run(load, tracer):
    iterations, sleep_us = (pairs, 0) if load == "mallocbench" else (service, 20000)
    env = dict(os.environ, LD_LIBRARY_PATH=libdir)
    target = subprocess.Popen([churn, str(iterations), "1000", str(sleep_us)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    time.sleep(0.3)  # the dynamic loader maps libc
    bt, cid, p = None, None, None
    if tracer == "bpftrace":
        log = open(f"{work}/bpftrace.out", "w")
        bt = subprocess.Popen(["bpftrace", "-B", "none", "-p", str(target.pid), "benches/ebpf_malloc.bt", libc, str(target.pid)],
                              stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, BPFTRACE_MAP_KEYS_MAX="262144"))
        deadline = time.time() + 60
        while "Attaching" not in open(f"{work}/bpftrace.out").read():
            assert time.time() < deadline and bt.poll() is None, open(f"{work}/bpftrace.out").read()
            time.sleep(0.05)
        time.sleep(1.0)  # "Attaching" comes before the probes are in
    elif tracer != "none":
        p = port + (1 if tracer == "ebpf-malloc full" else 0)
        cid = start_capture(p, target.pid, tracer == "ebpf-malloc full")
    t0 = time.perf_counter()
    target.stdin.write(b"go\n"); target.stdin.flush()
    line = target.stdout.readline().decode()
    wall = time.perf_counter() - t0
    f = line.split()
    truth, cpu, sys_cpu = int(f[1]), int(f[4]) / 1e9, int(f[6]) / 1e9
    estimate, note = None, ""
    if bt:
        bt.send_signal(signal.SIGINT); bt.wait()
        estimate = leak_in_bpftrace(open(f"{work}/bpftrace.out").read())
    target.stdin.close(); target.wait()
    if cid:
        while True:
            c, summary = capture(p, cid)
            if c["status"] != "running":
                break
            time.sleep(0.1)
        sites = {s["function"]: s["values"].get("inuse_space", 0) for s in summary.get("top_sites", [])}
        estimate = sites.get("leak_slowly", 0)
        totals = summary.get("totals", {})
        activity = totals.get("allocation_probe_activity_share")
        activity = f'{100 * activity:.1f} %' if isinstance(activity, (int, float)) else "unmeasured"
        note = (f'{c["status"]}: {(c.get("reason") or "")[:90]}; probes attached {100 * totals.get("allocation_probe_share", 0):.1f} % '
                f'of the time, {activity} of the frees; detached in {totals.get("detach_seconds", 0):.3f} s')
    return {"wall": wall, "cpu": cpu, "sys": sys_cpu, "truth": truth, "estimate": estimate, "note": note}

for load in ("mallocbench", "service"):
    results = []
    for tracer in ("none", "ebpf-malloc 5 %", "ebpf-malloc full", "bpftrace", "none"):
        r = run(load, tracer); r["tracer"] = tracer; results.append(r)
        print(f"  {load} {tracer}: {r}", file=sys.stderr, flush=True)
    base = [r for r in results if r["tracer"] == "none"]
    base_cpu = sum(r["cpu"] for r in base) / len(base)
    base_wall = sum(r["wall"] for r in base) / len(base)
    iterations = pairs if load == "mallocbench" else service
    print(f"\n{load}: {iterations:,} iterations; untraced {base_cpu:.3f} s CPU, {base_wall:.3f} s wall (mean of the two)")
    print("| tracer | loop wall | loop CPU (system) | slowdown (wall) | added CPU, share of one CPU over the loop | leak bytes found / true | capture |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        added = (r["cpu"] - base_cpu) / r["wall"]
        found = "" if r["estimate"] is None else f'{r["estimate"]:,} / {r["truth"]:,} ({r["estimate"] / r["truth"]:.2f})'
        print(f'| {r["tracer"]} | {r["wall"]:.3f} s | {r["cpu"]:.3f} s ({r["sys"]:.3f} s) | {r["wall"] / base_wall:.2f}x '
              f'| {100 * added:.1f} % | {found} | {r["note"]} |')
PY
