#!/usr/bin/env bash
# Benchmark (not a test): what the OTLP push costs the exporter, in one run.
# Two release exporters watch the same host with 1,000 extra processes (100
# command names), each scraped every 15 s by this script and each ingesting the
# heaptrack and memcheck fixtures from its own watched folder every 30 s; one also
# pushes every signal over OTLP/HTTP (gzip) every 10 s to a small receiver on
# loopback that counts the bytes of each export: metrics, the ingested records
# as logs and profiles, and (as root) the page-fault profile of
# --collector.page_faults, which both exporters run. Prints each exporter's CPU
# time and RSS, their ratios, and the bytes on the wire per export of each
# signal (compressed and not).
#
# Usage: benches/otlp_overhead.sh [SECONDS=120] [PROCESSES=1000]
# (MEMLEAK_EXPORTER_BIN=path runs that binary instead of building the release one.)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
processes=${2:-1000}
bin=${MEMLEAK_EXPORTER_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -q -p memleak-exporter
  bin=target/release/memleak-exporter
fi
. benches/scratch.sh

# 1,000 sleeping processes under 100 command names (comm is the name of the path executed).
mkdir -p "$work/bin"
for i in $(seq -w 0 99); do ln -s "$(command -v sleep)" "$work/bin/worker-$i"; done
for i in $(seq 0 $((processes - 1))); do
  "$work/bin/worker-$(printf %02d $((i % 100)))" $((seconds + 60)) &
  pids+=($!)
done

# The receiver: answers 200 to every OTLP/HTTP export and logs "PATH COMPRESSED RAW" per request.
cat >"$work/receiver.py" <<'EOF'
import gzip, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
log = open(sys.argv[2], "a", buffering=1)
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        raw = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
        log.write(f"{self.path} {len(body)} {len(raw)}\n")
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
python3 "$work/receiver.py" 14318 "$work/wire.log" &
pids+=($!)

mkdir -p "$work/in-a" "$work/in-b"
# The page-fault collector (eBPF) needs root; both exporters run the same collectors.
both=()
if [ "$(id -u)" = 0 ]; then both+=(--collector.page_faults); fi
"$bin" --web.listen-address 127.0.0.1:19487 --ingest.dir "$work/in-a" --ingest.interval 2s "${both[@]}" 2>"$work/a.log" &
a=$!
pids+=($a)
"$bin" --web.listen-address 127.0.0.1:19488 --ingest.dir "$work/in-b" --ingest.interval 2s "${both[@]}" \
  --otlp.endpoint http://127.0.0.1:14318 --otlp.protocol http/protobuf --otlp.interval 10s 2>"$work/b.log" &
b=$!
pids+=($b)
sleep 3

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
a0=$(ticks $a)
b0=$(ticks $b)
start=$(date +%s)
n=0
while [ $(($(date +%s) - start)) -lt "$seconds" ]; do
  if [ $((n % 2)) -eq 0 ]; then
    for dir in "$work/in-a" "$work/in-b"; do
      cp artifacts/tests/fixtures/heaptrack/a.zst "$dir/heaptrack.$n.zst"  # profiles
      cp artifacts/tests/fixtures/memcheck/a.xml "$dir/memcheck.$n.xml"    # leak records: logs
    done
  fi
  curl -s -o /dev/null http://127.0.0.1:19487/metrics
  curl -s -o /dev/null http://127.0.0.1:19488/metrics
  n=$((n + 1))
  sleep 15
done
hz=$(getconf CLK_TCK)
cpu_a=$(echo "($(ticks $a) - $a0) / $hz" | bc -l)
cpu_b=$(echo "($(ticks $b) - $b0) / $hz" | bc -l)
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
series=$(curl -s http://127.0.0.1:19488/metrics | grep -vc '^#')
printf 'run: %s s, %s extra processes, %s series per collection, collectors: defaults %s\n' \
  "$seconds" "$processes" "$series" "${both[*]}"
printf 'scrape-only    CPU %6.2f s  RSS %6d KiB  peak %6d KiB\n' "$cpu_a" "$(rss $a)" "$(hwm $a)"
printf 'OTLP push 10 s CPU %6.2f s  RSS %6d KiB  peak %6d KiB\n' "$cpu_b" "$(rss $b)" "$(hwm $b)"
printf 'ratio (push / scrape-only): CPU %.2f  RSS %.2f\n' \
  "$(echo "$cpu_b / $cpu_a" | bc -l)" "$(echo "$(rss $b) / $(rss $a)" | bc -l)"
curl -s http://127.0.0.1:19488/metrics | grep '^memleak_exporter_otlp_' || true
awk '{ n[$1]++; c[$1] += $2; r[$1] += $3 }
     END { for (p in n) printf "%-26s %4d exports, per export %9.0f bytes gzip, %9.0f bytes raw\n", p, n[p], c[p] / n[p], r[p] / n[p] }' \
  "$work/wire.log" | sort
