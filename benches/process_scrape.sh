#!/usr/bin/env bash
# Benchmark (not a test): scrape latency and resident memory of memleak-exporter
# next to prometheus-process-exporter, both reporting the same processes (every
# user-space process, grouped by command name), with ~N extra processes running.
# Also times the physical floor: a minimal loop reading /proc/PID/stat of every process.
#
# Usage: benches/process_scrape.sh [EXTRA_PROCESSES=1000] [SCRAPES=40]
# Needs: Debian package prometheus-process-exporter (installed if missing, as root), curl.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${1:-1000}
scrapes=${2:-40}
ours_port=19487
peer_port=19256
lean_port=19257

if ! command -v prometheus-process-exporter >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-process-exporter >/dev/null
fi
cargo build --release -q -p memleak-exporter
cargo build --release -q -p memleak-signals --example proc_floor

work=$(mktemp -d)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The load: sleeping processes, so the set does not change during the run.
for _ in $(seq "$extra"); do sleep 3600 & pids+=($!); done

cat > "$work/process-exporter.yml" <<'YML'
process_names:
  - name: "{{.Comm}}"
    cmdline:
      - ".+"
YML
./target/release/memleak-exporter --web.listen-address 127.0.0.1:$ours_port --log.level warn &
ours=$!; pids+=($ours)
prometheus-process-exporter -config.path "$work/process-exporter.yml" -web.listen-address 127.0.0.1:$peer_port >/dev/null 2>&1 &
peer=$!; pids+=($peer)
# Its cheapest configuration too: no smaps (PSS) and no per-thread reads.
prometheus-process-exporter -config.path "$work/process-exporter.yml" -web.listen-address 127.0.0.1:$lean_port \
  -gather-smaps=false -threads=false >/dev/null 2>&1 &
lean=$!; pids+=($lean)
sleep 2

scrape() { curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$1/metrics"; }
cpu() { awk '{printf "%d", $14 + $15}' "/proc/$1/stat"; }  # utime + stime, in clock ticks
for _ in 1 2 3; do scrape $ours_port >/dev/null; scrape $peer_port >/dev/null; scrape $lean_port >/dev/null; done
: > "$work/ours"; : > "$work/peer"; : > "$work/lean"
cpu0_ours=$(cpu $ours); cpu0_peer=$(cpu $peer); cpu0_lean=$(cpu $lean)
start=$(date +%s.%N)
for _ in $(seq "$scrapes"); do
  scrape $ours_port >> "$work/ours"
  scrape $peer_port >> "$work/peer"
  scrape $lean_port >> "$work/lean"
done
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
# CPU per scrape, in ms, including background work (our detail refresh) over the run.
tick_ms=$(( 1000 / $(getconf CLK_TCK) ))
cpu_ms() { echo "scale=1; ($(cpu $1) - $2) * $tick_ms / $scrapes" | bc; }

pct() { sort -g "$1" | awk -v q="$2" '{a[NR]=$1} END {i=int((NR-1)*q+0.5)+1; printf "%.2f", a[i]*1000}'; }
rss() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
processes=$(ls /proc | grep -c '^[0-9]')
ours_p50=$(pct "$work/ours" 0.5); ours_p90=$(pct "$work/ours" 0.9)
peer_p50=$(pct "$work/peer" 0.5); peer_p90=$(pct "$work/peer" 0.9)
lean_p50=$(pct "$work/lean" 0.5); lean_p90=$(pct "$work/lean" 0.9)
ours_groups=$(curl -s http://127.0.0.1:$ours_port/metrics | grep -c '^memleak_process_processes{')
ours_selected=$(curl -s http://127.0.0.1:$ours_port/metrics | awk '/^memleak_process_processes\{/ {s+=$2} END {print s}')
peer_selected=$(curl -s http://127.0.0.1:$peer_port/metrics | awk '/^namedprocess_namegroup_num_procs\{/ {s+=$2} END {print s}')
floor=$(./target/release/examples/proc_floor 30 stat statm status smaps_rollup)
stat_p50=$(echo "$floor" | awk '/file=stat / {sub("p50_ms=","",$4); print $4}')

echo "processes on the host: $processes (selected: ours $ours_selected in $ours_groups groups, process-exporter $peer_selected)"
echo "$floor"
echo "scrapes: $scrapes of each, interleaved, over ${elapsed%.*} s"
printf '%-54s p50 %7s ms  p90 %7s ms  CPU/scrape %6s ms  RSS %5s MB\n' \
  "memleak-exporter (defaults)" "$ours_p50" "$ours_p90" "$(cpu_ms $ours $cpu0_ours)" "$(rss $ours)" \
  "process-exporter (defaults)" "$peer_p50" "$peer_p90" "$(cpu_ms $peer $cpu0_peer)" "$(rss $peer)" \
  "process-exporter (-gather-smaps=false -threads=false)" "$lean_p50" "$lean_p90" "$(cpu_ms $lean $cpu0_lean)" "$(rss $lean)"
awk -v o="$ours_p50" -v p="$peer_p50" -v l="$lean_p50" -v f="$stat_p50" 'BEGIN {
  printf "ratio: memleak-exporter is %.1fx faster than process-exporter (defaults), %.1fx faster than its cheapest setup\n", p / o, l / o
  printf "ratio: memleak-exporter p50 / stat floor p50 = %.2fx\n", o / f }'
