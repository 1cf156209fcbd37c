#!/usr/bin/env bash
# Benchmark (not a test), as root: what a `sampler` capture costs the process it runs on, on the
# malloc load of benches/sampler_overhead.sh (mallocbench: malloc/free pairs of mixed sizes), with
# the exporter's real capture (uprobes from bpf/src/c/sampler_markers.bpf.c: a user stack and 1 KiB
# of stack words per sampled allocation), next to heaptrack in the same run:
#   plain      the load with only the gate library (exporter/tests/helpers/gate.c) preloaded
#   idle       plus libmemleak_sampler.so, default mean (512 KiB), no capture
#   captured   plus a sampler capture of the process over its whole run
#   heaptrack  heaptrack 1.4 on the load, against a plain run timed the same way
#   massif     valgrind --tool=massif on the load, timed the same way
# then plain, idle and captured again on a service-like load: a Python JSON encode/decode loop
# (CPython's small objects come from its own arenas, so most of its calls never reach malloc).
# The gate holds each process before main and at exit, so the capture is in its window before the
# load starts; CPU is the process's utime + stime (/proc/PID/stat, 10 ms ticks) read at the exit
# gate. Each round runs plain, idle and captured in a rotating order, then heaptrack and plain
# under `time` (user + sys, children included). Reported: median ratio over rounds (range).
# Then a reachability pause: one capture with reachability on a process holding MIB MiB.
#
# Usage: benches/sampler_capture.sh [ROUNDS=5] [PAIRS=2000000] [MIB=1024] [PY_LOOPS=200000]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
pairs=${2:-2000000}
mib=${3:-1024}
py_loops=${4:-200000}
[ "$(id -u)" = 0 ] || { echo "run as root (uprobes, ptrace)" >&2; exit 1; }
for tool in heaptrack valgrind cc curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (Debian packages heaptrack, valgrind, gcc, curl, python3)" >&2; exit 1; }
done
cargo build --release -q -p memleak-sampler
sampler=$PWD/target/release/libmemleak_sampler.so
exporter=target/release/memleak-exporter
[ -x "$exporter" ] || exporter=target/debug/memleak-exporter
[ -x "$exporter" ] || { echo "build the exporter first (cargo build [--release] -p memleak-exporter)" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $exporter_pid 2>/dev/null || true; rm -rf "$work"' EXIT
cc -O2 -o "$work/mallocbench" benches/workload/mallocbench.c
cc -O1 -shared -fPIC -o "$work/libgate.so" exporter/tests/helpers/gate.c
cc -O1 -pthread -o "$work/big_heap" exporter/tests/helpers/big_heap.c
mkfifo "$work/gate"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$exporter" --web.listen-address "127.0.0.1:$port" --capture.dir "$work/spool" --capture.cooldown 0s \
  --capture.max-per-hour 100000 --capture.reachability.max-pause 10s 2>"$work/exporter.log" &
exporter_pid=$!
until curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null; do sleep 0.1; done
echo "exporter: $exporter" >&2

alert() {   # status fingerprint pid comm annotations-json
  curl -sf -X POST -H "Content-Type: application/json" "http://127.0.0.1:$port/api/v1/alerts" -d "{\"version\":\"4\",\"status\":\"$1\",\"receiver\":\"r\",\"alerts\":[{\"status\":\"$1\",\"fingerprint\":\"$2\",\"labels\":{\"alertname\":\"Bench\",\"capture\":\"sampler\",\"group\":\"$4\",\"pid\":\"$3\"},\"annotations\":$5}]}"
}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
wait_phase() {   # capture-id python-condition
  until curl -sf "http://127.0.0.1:$port/api/v1/captures" | field "any($2 for c in d['captures'] if c['id'] == '$1')" | grep -q True; do
    sleep 0.02
  done
}
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# The load the gated runs use, and the name its process is grouped by.
load=("$work/mallocbench" "$pairs")
load_group=mallocbench
n=0
gated() {   # config → CPU ticks of one run
  local preload=$work/libgate.so id pid
  [ "$1" != plain ] && preload="$sampler $preload"
  LD_PRELOAD="$preload" MEMLEAK_TEST_GATE="$work/gate" "${load[@]}" &
  pid=$!
  exec 3>"$work/gate"
  if [ "$1" = captured ]; then
    n=$((n + 1))
    id=$(alert firing "b$n" "$pid" "$load_group" '{"capture_duration":"10m"}' | field "d['outcomes'][0]['capture']")
    wait_phase "$id" "c['phase'] == 'window'"
  fi
  printf g >&3
  until [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$pid/stat")" = S ]; do sleep 0.01; done
  cpu_ticks "$pid"
  if [ "$1" = captured ]; then
    alert resolved "b$n" "$pid" "$load_group" '{}' >/dev/null
    wait_phase "$id" "c['status'] != 'running'"
    curl -sf "http://127.0.0.1:$port/api/v1/captures/$id" | field "d['summary']['totals']['sampled_allocations']" >>"$work/hits"
  fi
  exec 3>&-
  wait "$pid"
}
timed() {   # command… → user + sys seconds
  local TIMEFORMAT='%U %S' t
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  echo "$t" | awk '{ print $1 + $2 }'
}

configs=(plain idle captured)
for round in $(seq "$rounds"); do
  declare -A t=()
  for i in 0 1 2; do
    c=${configs[$(((i + round) % 3))]}
    t[$c]=$(gated "$c")
  done
  plain_s=$(timed "$work/mallocbench" "$pairs")
  heaptrack_s=$(timed heaptrack -o "$work/ht" "$work/mallocbench" "$pairs")
  massif_s=$(timed valgrind --tool=massif --massif-out-file="$work/massif.out" "$work/mallocbench" "$pairs")
  rm -f "$work"/ht* "$work/massif.out"
  echo "${t[idle]} ${t[plain]} ${t[captured]} $heaptrack_s $plain_s $massif_s" >>"$work/rounds"
  echo "  round $round: plain ${t[plain]} idle ${t[idle]} captured ${t[captured]} ticks; plain ${plain_s}s heaptrack ${heaptrack_s}s massif ${massif_s}s" >&2
done

ratio() {   # awk expression over a round's fields [file] → median (min-max)
  awk "{ print $1 }" "${2:-$work/rounds}" | sort -g |
    awk '{ v[NR] = $1 } END { printf "%.2fx (%.2f-%.2f)", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[1], v[NR] }'
}
echo
echo "malloc load, $pairs pairs, $rounds rounds: median CPU ratio (range)"
echo "  idle / plain          $(ratio '$1 / $2')"
echo "  captured / plain      $(ratio '$3 / $2')"
echo "  captured / idle       $(ratio '$3 / $1')"
echo "  heaptrack / plain     $(ratio '$4 / $5')"
echo "  massif / plain        $(ratio '$6 / $5')"
echo "  sampled allocations per captured run: $(sort -g "$work/hits" | tr '\n' ' ')"

# The service-like load: the same three configurations on a Python JSON loop.
# The interpreter itself, not a launcher script (pyenv's python3 is a shell script that would be
# the gated, sampled and captured process instead).
python=$(python3 -c 'import sys; print(sys.executable)')
load=("$python" benches/workload/json_service.py "$py_loops")
load_group=$(basename "$python" | cut -c1-15)
: >"$work/hits"
for round in $(seq "$rounds"); do
  declare -A t=()
  for i in 0 1 2; do
    c=${configs[$(((i + round) % 3))]}
    t[$c]=$(gated "$c")
  done
  echo "${t[idle]} ${t[plain]} ${t[captured]}" >>"$work/service_rounds"
  echo "  service round $round: plain ${t[plain]} idle ${t[idle]} captured ${t[captured]} ticks" >&2
done
echo
echo "service load (Python JSON loop, $py_loops iterations), $rounds rounds: median CPU ratio (range)"
echo "  idle / plain          $(ratio '$1 / $2' "$work/service_rounds")"
echo "  captured / plain      $(ratio '$3 / $2' "$work/service_rounds")"
echo "  sampled allocations per captured run: $(sort -g "$work/hits" | tr '\n' ' ')"

# The reachability pause on a process holding $mib MiB (written) and four threads allocating.
LD_PRELOAD="$sampler" "$work/big_heap" "$mib" >"$work/big.out" &
big=$!
until grep -q ready "$work/big.out"; do sleep 0.05; done
id=$(alert firing reach "$big" big_heap '{"capture_duration":"1s","reachability":"true"}' | field "d['outcomes'][0]['capture']")
wait_phase "$id" "c['status'] != 'running'"
kill "$big"
curl -sf "http://127.0.0.1:$port/api/v1/captures/$id" |
  field "'reachability: pause %.3f s for %.0f MiB scanned (%.3f s per GiB), %d threads' % (d['summary']['totals']['reachability_pause_seconds'], d['summary']['totals']['reachability_scanned_bytes'] / 2**20, d['summary']['totals']['reachability_pause_seconds'] / (d['summary']['totals']['reachability_scanned_bytes'] / 2**30), d['summary']['totals']['reachability_threads'])"
# The peer floor: reading the same amount of memory with one process_vm_readv-free copy (dd of /dev/zero).
echo "  for scale: dd copying $mib MiB in memory: $(dd if=/dev/zero of=/dev/null bs=1M count="$mib" 2>&1 | tail -1 | awk '{ print $(NF-3), $(NF-2) }')"
