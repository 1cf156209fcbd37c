#!/usr/bin/env bash
# Benchmark (not a test): what naming frames with source files, lines and inlined calls costs next
# to function names alone. Program A's real jemalloc dump (the fixtures) is ingested with its
# binary in a --symbols folder, once as built (-g) and once stripped of its debug info
# (`strip --strip-debug`: the symbol tables stay). Prints median wall time and peak RSS of RUNS runs.
#
# Usage: benches/symbolize.sh [RUNS=5]   (BIN=path/to/memleak-exporter to measure another build)
# Needs: strip (binutils).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
source benches/scratch.sh
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p memleak-exporter
  BIN=./target/release/memleak-exporter
fi
dump=artifacts/tests/fixtures/jemalloc/a.jeprof.heap
mkdir -p "$work/dwarf" "$work/stripped"
cp artifacts/tests/fixtures/bin/a_cachesvc "$work/dwarf/"
strip --strip-debug -o "$work/stripped/a_cachesvc" artifacts/tests/fixtures/bin/a_cachesvc

# Median wall seconds and largest peak RSS (KiB) of RUNS ingestions with the binary of folder $1.
measure() {
  for i in $(seq "$runs"); do
    /usr/bin/time -f '%e %M' -o "$work/time" "$BIN" ingest --symbols "$work/$1" --out "$work/out-$1-$i" "$dump" >/dev/null
    cat "$work/time"
  done | sort -g | awk '{t[NR]=$1; if ($2 > m) m = $2} END {printf "%s %s", t[int((NR+1)/2)], m}'
}
read -r t_names m_names <<<"$(measure stripped)"
read -r t_lines m_lines <<<"$(measure dwarf)"
echo "program A's jemalloc dump, binary $(stat -c %s "$work/dwarf/a_cachesvc") B with debug info, $(stat -c %s "$work/stripped/a_cachesvc") B without; median of $runs runs; $BIN"
awk -v a="$t_names" -v am="$m_names" -v b="$t_lines" -v bm="$m_lines" 'BEGIN {
  printf "names only (stripped binary)      %6.3f s  %6.1f MiB peak\n", a, am / 1024
  printf "names, files, lines and inlines   %6.3f s  %6.1f MiB peak\n", b, bm / 1024 }'
grep -h -o '"top_sites": \[{[^}]*}' "$work"/out-dwarf-1/*.json | head -1
