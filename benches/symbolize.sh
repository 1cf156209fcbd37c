#!/usr/bin/env bash
# Benchmark (not a test): what naming frames with source files and lines costs. The real program
# is the exporter itself (Rust, ~170 MB of DWARF in a debug build): its own heap profile, taken
# from /debug/pprof/heap (addresses and mappings, no names), is ingested with its binary in a
# --symbols folder, once with the debug info and once stripped of it (`strip --strip-debug`:
# function names only). Peer in the same run: `go tool pprof -lines -top` symbolizing the same
# profile from the same binary (pprof runs binutils' addr2line). Prints wall time and peak RSS.
#
# Usage: benches/symbolize.sh [RUNS=3]   (BIN=path/to/memleak-exporter to measure another build)
# Needs: go (golang-go), strip and addr2line (binutils), curl.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
source benches/scratch.sh
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p memleak-exporter
  BIN=./target/release/memleak-exporter
fi
# The profiled program: a debug build, whose DWARF is the large case.
cargo build -q -p memleak-exporter
target=./target/debug/memleak-exporter
port=19587
"$target" --web.listen-address="127.0.0.1:$port" >/dev/null 2>&1 &
pids+=($!)
scrape() { curl -fsS -H 'Host: localhost' "http://127.0.0.1:$port/metrics" >/dev/null 2>&1; }
for _ in $(seq 100); do scrape && break; sleep 0.1; done
for _ in $(seq 20); do scrape; done
curl -fsS -H 'Host: localhost' "http://127.0.0.1:$port/debug/pprof/heap" -o "$work/heap.pb.gz"

mkdir -p "$work/dwarf" "$work/stripped"
cp "$target" "$work/dwarf/memleak-exporter"
strip --strip-debug -o "$work/stripped/memleak-exporter" "$target"
dwarf_bytes=0
while read -r size; do dwarf_bytes=$((dwarf_bytes + 16#$size)); done < <(readelf -SW "$target" | awk '/ \.debug_/ {print $6}')
dwarf_mb=$((dwarf_bytes / 1000000))

# Median wall seconds and the largest peak RSS (KiB) of RUNS runs of a command.
measure() {
  local out=()
  for _ in $(seq "$runs"); do
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>/dev/null || true
    out+=("$(cat "$work/time")")
  done
  printf '%s\n' "${out[@]}" | sort -g | awk '{t[NR]=$1; if ($2 > m) m = $2} END {printf "%s %s", t[int((NR+1)/2)], m}'
}

ingest() { "$BIN" ingest --symbols "$1" --out "$work/out-$(basename "$1")" "$work/heap.pb.gz"; }
read -r t_dwarf m_dwarf <<<"$(measure ingest "$work/dwarf")"
lines=$(grep -c '"line": [0-9]' "$work/out-dwarf"/*.json 2>/dev/null || echo 0)
read -r t_names m_names <<<"$(measure ingest "$work/stripped")"
read -r t_go m_go <<<"$(cd "$work" && PPROF_BINARY_PATH="$work/dwarf" HOME="$work" GOCACHE="$work/gocache" \
  measure go tool pprof -lines -top -symbolize=local "$work/heap.pb.gz")"

echo "profile: the exporter's own heap ($(stat -c %s "$work/heap.pb.gz") B pprof); binary with ${dwarf_mb} MB of debug sections; median of $runs runs; ingest by $BIN"
awk -v a="$t_names" -v am="$m_names" -v b="$t_dwarf" -v bm="$m_dwarf" -v c="$t_go" -v cm="$m_go" 'BEGIN {
  printf "ingest, names only (stripped)          %7.2f s  %7.0f MiB peak\n", a, am / 1024
  printf "ingest, names + files, lines, inlines  %7.2f s  %7.0f MiB peak   (%.1fx the time of names only)\n", b, bm / 1024, b / a
  printf "go tool pprof -lines -top (addr2line)  %7.2f s  %7.0f MiB peak   (ours: %.2fx its time)\n", c, cm / 1024, b / c }'
