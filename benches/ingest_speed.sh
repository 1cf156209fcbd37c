#!/usr/bin/env bash
# Benchmark (not a test): how fast `memleak-exporter ingest` reads large Massif
# and heaptrack files, next to the tools' own readers (ms_print, heaptrack_print)
# on the same files in the same run. Prints MB/s and the ratios.
#
# Usage: benches/ingest_speed.sh [MASSIF_ALLOCS=200000] [HEAPTRACK_ALLOCS=3000000] [RUNS=5]
# Needs: gcc, valgrind (ms_print), heaptrack (Debian packages; installed if missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
massif_n=${1:-200000}
heaptrack_n=${2:-3000000}
runs=${3:-5}
for tool in valgrind heaptrack; do
  command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
done
cargo build --release -q -p memleak-exporter
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O0 -g -fno-omit-frame-pointer -fno-inline benches/workload/churn.c -o "$work/churn"

valgrind --tool=massif --detailed-freq=1 --max-snapshots=1000 --depth=30 \
  --massif-out-file="$work/massif.out" "$work/churn" "$massif_n" 2>/dev/null
heaptrack -o "$work/heaptrack.churn" "$work/churn" "$heaptrack_n" >/dev/null 2>&1
ht=$(ls "$work"/heaptrack.churn*.zst)
zstd -dq -c "$ht" > "$work/heaptrack.plain" 2>/dev/null || python3 -c "print()" >/dev/null

# Median wall time of RUNS runs of a command, in seconds.
median() {
  local times=()
  for _ in $(seq "$runs"); do
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc)")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

mb() { echo "scale=2; $(stat -c %s "$1") / 1000000" | bc; }
bin=./target/release/memleak-exporter
massif_mb=$(mb "$work/massif.out")
plain_mb=$( [ -s "$work/heaptrack.plain" ] && mb "$work/heaptrack.plain" || echo 0)
t_ms_print=$(median ms_print "$work/massif.out")
t_ours_massif=$(median "$bin" ingest "$work/massif.out")
t_ht_print=$(median heaptrack_print -f "$ht")
t_ours_ht=$(median "$bin" ingest "$ht")

echo "massif file: ${massif_mb} MB ($massif_n allocations, detailed snapshots); heaptrack file: $(mb "$ht") MB zstd, ${plain_mb} MB plain ($heaptrack_n allocations); median of $runs runs"
awk -v a="$t_ms_print" -v b="$t_ours_massif" -v s="$massif_mb" 'BEGIN {
  printf "ms_print                      %7.3f s  %7.1f MB/s\n", a, s / a
  printf "memleak-exporter ingest       %7.3f s  %7.1f MB/s   (%.1fx faster)\n", b, s / b, a / b }'
awk -v a="$t_ht_print" -v b="$t_ours_ht" -v s="$plain_mb" 'BEGIN {
  printf "heaptrack_print               %7.3f s  %7.1f MB/s of plain data\n", a, s / a
  printf "memleak-exporter ingest       %7.3f s  %7.1f MB/s of plain data   (%.1fx faster)\n", b, s / b, a / b }'
