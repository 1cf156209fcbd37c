#!/usr/bin/env bash
# Benchmark (not a test), as root: what one marker hit costs a process under a `sampler` capture
# (the uprobe's trap plus sampler_markers.bpf.c's program), apart from any allocator.
# benches/workload/marker_hits.c calls the two markers directly (ROUNDS x 1000 alloc markers, then
# the 1000 frees, each batch timed with the thread's CPU clock), once with no capture and once
# inside a real capture's window (the exporter's webhook, its uprobes on this process), in turn,
# RUNS times. Reported: the median nanoseconds per alloc hit and per free hit of each (range).
#
# Usage: benches/sampler_hit_cost.sh [RUNS=5] [ROUNDS=100]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
rounds=${2:-100}
[ "$(id -u)" = 0 ] || { echo "run as root (uprobes)" >&2; exit 1; }
for tool in cc curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (Debian packages gcc, curl, python3)" >&2; exit 1; }
done
cargo build --release -q -p memleak-sampler
sampler=$PWD/target/release/libmemleak_sampler.so
exporter=target/release/memleak-exporter
[ -x "$exporter" ] || exporter=target/debug/memleak-exporter
[ -x "$exporter" ] || { echo "build the exporter first (cargo build [--release] -p memleak-exporter)" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $exporter_pid 2>/dev/null || true; rm -rf "$work"' EXIT
cc -O2 -o "$work/marker_hits" benches/workload/marker_hits.c
cc -O1 -shared -fPIC -o "$work/libgate.so" exporter/tests/helpers/gate.c
mkfifo "$work/gate"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$exporter" --web.listen-address "127.0.0.1:$port" --capture.dir "$work/spool" --capture.cooldown 0s \
  --capture.max-per-hour 100000 2>"$work/exporter.log" &
exporter_pid=$!
until curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null; do sleep 0.1; done
echo "exporter: $exporter" >&2

alert() {   # status fingerprint pid
  curl -sf -X POST -H "Content-Type: application/json" "http://127.0.0.1:$port/api/v1/alerts" -d "{\"version\":\"4\",\"status\":\"$1\",\"receiver\":\"r\",\"alerts\":[{\"status\":\"$1\",\"fingerprint\":\"$2\",\"labels\":{\"alertname\":\"Bench\",\"capture\":\"sampler\",\"group\":\"marker_hits\",\"pid\":\"$3\"},\"annotations\":{\"capture_duration\":\"10m\"}}]}"
}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
wait_phase() {   # capture-id python-condition
  until curl -sf "http://127.0.0.1:$port/api/v1/captures" | field "any($2 for c in d['captures'] if c['id'] == '$1')" | grep -q True; do
    sleep 0.02
  done
}

n=0
run() {   # plain|captured → "ns-per-alloc-hit ns-per-free-hit"
  local pid id
  LD_PRELOAD="$sampler $work/libgate.so" MEMLEAK_TEST_GATE="$work/gate" "$work/marker_hits" "$rounds" >"$work/out" &
  pid=$!
  exec 3>"$work/gate"
  if [ "$1" = captured ]; then
    n=$((n + 1))
    id=$(alert firing "h$n" "$pid" | field "d['outcomes'][0]['capture']")
    wait_phase "$id" "c['phase'] == 'window'"
  fi
  printf g >&3
  until [ -s "$work/out" ]; do sleep 0.01; done
  if [ "$1" = captured ]; then
    alert resolved "h$n" "$pid" >/dev/null
    wait_phase "$id" "c['status'] != 'running'"
  fi
  exec 3>&-
  wait "$pid"
  cat "$work/out"
}

for r in $(seq "$runs"); do
  echo "$(run plain) $(run captured)" >>"$work/runs"
  echo "  run $r: $(tail -1 "$work/runs") (plain alloc, free; captured alloc, free: ns per hit)" >&2
done
median() {   # column → median (min-max)
  awk "{ print \$$1 }" "$work/runs" | sort -g |
    awk '{ v[NR] = $1 } END { printf "%.0f (%.0f-%.0f)", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[1], v[NR] }'
}
echo
echo "marker hits, $runs runs of $((rounds * 1000)) alloc and free markers: CPU ns per hit, median (range)"
echo "  no capture   alloc $(median 1)  free $(median 2)"
echo "  captured     alloc $(median 3)  free $(median 4)"
