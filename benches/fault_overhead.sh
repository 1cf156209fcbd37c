#!/usr/bin/env bash
# Benchmark (not a test): the cost of the exporter's collectors on a pure
# page-fault loop (64 MiB mapped, touched and unmapped 40 times, run in a cgroup
# v2 of its own), in one run: the default collectors, + pmc (perf counters per
# cgroup), + page_faults (eBPF sampling, period 1000), and page_faults with
# period 1 (every fault). Each measurement is paired with a baseline run right
# before it (no exporter), and the median of the pairs' ratios is reported:
# this VM's speed drifts, and pairing cancels the drift.
#
# Usage (root): benches/fault_overhead.sh [PAIRS=7]
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-7}
cargo build --release -q -p memleak-exporter
work=$(mktemp -d)
pid=""
v2=/sys/fs/cgroup; [ -f $v2/cgroup.controllers ] || v2=/sys/fs/cgroup/unified
cg="$v2/memleak-bench-$$"
mkdir "$cg"
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; rmdir "$cg" 2>/dev/null || true; }
trap cleanup EXIT
cc -O2 -o "$work/fault_loop" benches/workload/fault_loop.c

loop_seconds() {
  local s e
  s=$(date +%s.%N)
  sh -c "echo \$\$ > '$cg/cgroup.procs'; exec '$work/fault_loop' 40"
  e=$(date +%s.%N)
  echo "$e - $s" | bc
}

with_exporter() {
  ./target/release/memleak-exporter --web.listen-address 127.0.0.1:19911 --log.level warn "$@" &
  pid=$!
  sleep 0.7
  curl -s -o /dev/null http://127.0.0.1:19911/metrics   # opens counters, loads and attaches programs
  loop_seconds
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

declare -A ratios
configs=("default collectors|" "+ pmc (perf counters per cgroup)|--collector.pmc"
         "+ page_faults (eBPF, period 1000)|--collector.page_faults"
         "+ page_faults (eBPF, period 1)|--collector.page_faults --collector.page_faults.period 1")
for _ in $(seq "$pairs"); do
  for c in "${configs[@]}"; do
    name=${c%%|*}; args=${c#*|}
    base=$(loop_seconds)
    # shellcheck disable=SC2086
    with=$(with_exporter $args)
    ratios[$name]+="$(echo "scale=6; $with / $base" | bc) "
  done
done
echo "fault loop (40 × 64 MiB), median over $pairs pairs of (with / without the exporter):"
for c in "${configs[@]}"; do
  name=${c%%|*}
  printf '%s\n' ${ratios[$name]} | sort -g | awk -v n="$name" '{a[NR]=$1} END { m=a[int((NR+1)/2)]; printf "  %-36s %+6.1f %%  (range %+.1f … %+.1f %%)\n", n, (m-1)*100, (a[1]-1)*100, (a[NR]-1)*100 }'
done
