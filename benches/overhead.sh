#!/usr/bin/env bash
# Benchmark (not a test): what the exporter costs the programs it watches, in
# one run, on three loads, each run in a cgroup v2 of its own:
#   faults   a pure page-fault loop (64 MiB mapped, touched, unmapped; 40 times)
#   syscalls 2,000,000 getppid + 100,000 mmap/munmap of 64 KiB
#   service  a Python JSON encode/decode loop (20,000 requests)
# for each configuration: the default collectors, + pmc, + page_faults
# (sampled, period 1000), + page_faults every-fault, + memory_syscalls.
# Each measurement (the load's CPU time, user + system) is paired with a
# baseline run right before it (no exporter) and the median of the pairs'
# ratios is reported: this VM's speed drifts, and pairing cancels the drift. The exporter is scraped once before each run
# (programs attached, counters open) and every 5 s during it.
#
# Then the exporter's own CPU: seconds of CPU per minute while the service load
# runs, with 1,000 extra sleeping processes (a busy host's process count) and
# Prometheus-like scrapes every 15 s, for the default set and for every
# collector enabled.
#
# Usage (root): benches/overhead.sh [PAIRS=7] [CONFIGS=REGEX]
#   CONFIGS picks configurations by name (e.g. 'default' for more pairs of the
#   default set alone); the CPU-per-minute part runs only when all are picked.
#   PAIRS=0 runs the CPU-per-minute part alone.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-7}
only=${2:-.}
cargo build --release -q -p memleak-exporter
work=$(mktemp -d)
pid=""
scraper=""
v2=/sys/fs/cgroup; [ -f $v2/cgroup.controllers ] || v2=/sys/fs/cgroup/unified
cg="$v2/memleak-bench-$$"
mkdir "$cg"
sleepers=()
cleanup() {
  [ ${#sleepers[@]} -gt 0 ] && kill "${sleepers[@]}" 2>/dev/null
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  wait 2>/dev/null || true; rm -rf "$work"; rmdir "$cg" 2>/dev/null || true
}
trap cleanup EXIT
cc -O2 -o "$work/fault_loop" benches/workload/fault_loop.c
cc -O2 -o "$work/syscall_loop" benches/workload/syscall_loop.c
port=19911
url=http://127.0.0.1:$port/metrics

declare -A commands=(
  [faults]="'$work/fault_loop' 40"
  [syscalls]="'$work/syscall_loop' 1"
  [service]="python3 benches/workload/json_service.py 20000"
)
workloads=(faults syscalls service)

run_seconds() {   # workload → its CPU seconds (user + system), run inside the bench cgroup
  # CPU time, not wall time: what the kernel paths and BPF programs add is charged to the
  # workload, and CPU time does not count waiting for a core this shared VM gives elsewhere.
  local TIMEFORMAT='%U %S' t
  t=$( { time sh -c "echo \$\$ > '$cg/cgroup.procs'; exec ${commands[$1]}" ; } 2>&1 )
  echo "$t" | awk '{print $1 + $2}'
}

start_exporter() {
  ./target/release/memleak-exporter --web.listen-address 127.0.0.1:$port --log.level warn "$@" &
  pid=$!
  for _ in $(seq 50); do curl -s -o /dev/null "$url" && return; sleep 0.1; done
  echo "the exporter did not start" >&2; exit 1
}

stop_exporter() {
  [ -n "$scraper" ] && { kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null || true; scraper=""; }
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

scrape_every() {   # seconds
  ( while sleep "$1"; do curl -s -o /dev/null "$url" || true; done ) &
  scraper=$!
}

declare -A ratios
configs=("default collectors|"
         "+ pmc (perf counters per cgroup)|--collector.pmc"
         "+ page_faults sampled, period 1000|--collector.page_faults"
         "+ page_faults every-fault|--collector.page_faults --collector.page_faults.mode every-fault"
         "+ memory_syscalls (tracepoints)|--collector.memory_syscalls")
picked=()
for c in "${configs[@]}"; do [[ ${c%%|*} =~ $only ]] && picked+=("$c"); done
configs=("${picked[@]}")
for _ in $(seq "$pairs"); do
  for c in "${configs[@]}"; do
    name=${c%%|*}; args=${c#*|}
    for w in "${workloads[@]}"; do
      base=$(run_seconds "$w")
      # shellcheck disable=SC2086
      start_exporter $args
      scrape_every 5
      with=$(run_seconds "$w")
      stop_exporter
      ratios[$name/$w]+="$(echo "scale=6; $with / $base" | bc) "
    done
  done
done

[ "$pairs" -gt 0 ] && echo "overhead on the watched program's CPU time: median over $pairs pairs of (with / without the exporter) - 1"
[ "$pairs" -gt 0 ] && printf '  %-38s %22s %22s %22s\n' "" "faults" "syscalls" "service"
[ "$pairs" -gt 0 ] && for c in "${configs[@]}"; do
  name=${c%%|*}
  printf '  %-38s' "$name"
  for w in "${workloads[@]}"; do
    printf '%s\n' ${ratios[$name/$w]} | sort -g | awk '{a[NR]=$1} END { m=a[int((NR+1)/2)]; printf " %+6.1f%% (%+.1f…%+.1f)", (m-1)*100, (a[1]-1)*100, (a[NR]-1)*100 }'
  done
  echo
done

[ "$only" = . ] || exit 0
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for _ in $(seq 1000); do sleep 3600 & sleepers+=($!); done
echo "exporter CPU while the service load runs, $(ls /proc | grep -c '^[0-9]') processes, scraped every 15 s, over 60 s:"
for c in "default collectors|" "every collector|--collector.pmc --collector.page_faults --collector.memory_syscalls"; do
  name=${c%%|*}; args=${c#*|}
  # shellcheck disable=SC2086
  start_exporter $args
  ( end=$((SECONDS + 62)); while [ $SECONDS -lt $end ]; do run_seconds service >/dev/null; done ) &
  load=$!
  before=$(cpu_ticks "$pid")
  scrape_every 15
  sleep 60
  after=$(cpu_ticks "$pid")
  kill "$load" 2>/dev/null; wait "$load" 2>/dev/null || true
  stop_exporter
  hz=$(getconf CLK_TCK)
  printf '  %-20s %.2f CPU seconds per minute\n' "$name" "$(echo "scale=4; ($after - $before) / $hz" | bc)"
done
