#!/usr/bin/env bash
# Benchmark (not a test): scrape latency of memleak-exporter while an attacker
# holds more connections than the open-file limit, next to node_exporter (a Go
# net/http server, the usual peer on the same hosts) attacked the same way in
# the same run. Both run under `ulimit -n 1024` (the systemd unit's
# LimitNOFILE); the attacker holds 1,200 connections from 127.0.0.2, half idle,
# half with a request head half sent; the scraper comes from 127.0.0.1 and
# gives up on a scrape after 5 s.
#
# Usage: benches/http_under_attack.sh [SCRAPES=20]
# Needs: Debian package prometheus-node-exporter (installed if missing, as root), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
scrapes=${1:-20}
ours_port=19487
peer_port=19100

if ! command -v prometheus-node-exporter >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter >/dev/null
fi
cargo build --release -q -p memleak-exporter

pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Started directly with `&` (no shell function around them), so that `$!` is the
# server itself once `exec` ran and the cleanup stops it; their stdout is not the
# script's, so a pipe after the script ends when the script does.
limit='ulimit -n 1024 && exec "$@"'
bash -c "$limit" _ target/release/memleak-exporter --web.listen-address "127.0.0.1:$ours_port" >/dev/null 2>&1 &
pids+=($!)
bash -c "$limit" _ prometheus-node-exporter --web.listen-address "127.0.0.1:$peer_port" >/dev/null 2>&1 &
pids+=($!)
sleep 2

# Prints "calm_median attacked_median failed opened" (connections the attacker opened) for the server on port $1.
measure() {
  python3 - "$1" "$scrapes" <<'PY'
import resource, socket, statistics, sys, time
port, scrapes = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

def scrape():
    started = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.settimeout(max(0.1, 5 - (time.monotonic() - started)))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := s.recv(1 << 16):
            answer += chunk
        s.close()
        return time.monotonic() - started if answer.startswith(b"HTTP/1.1 200") else None
    except OSError:
        return None

def run():
    times = [scrape() for _ in range(scrapes)]
    ok = [t for t in times if t is not None]
    return (statistics.median(ok) if ok else float("nan")), scrapes - len(ok)

calm, _ = run()
held = []
for i in range(1200):
    try:
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        # A server out of files stops accepting: its backlog fills and connects hang.
        s.settimeout(0.5)
        s.connect(("127.0.0.1", port))
        if i % 2:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        held.append(s)
    except OSError:
        pass
attacked, failed = run()
print(f"{calm:.4f} {attacked:.4f} {failed} {len(held)}")
PY
}

printf '%-18s %12s %14s %8s %16s %10s\n' server "calm (s)" "attacked (s)" ratio "failed scrapes" "opened"
for entry in "memleak-exporter:$ours_port" "node_exporter:$peer_port"; do
  read -r calm attacked failed held < <(measure "${entry#*:}")
  ratio=$(python3 -c "import math, sys; c, a = map(float, sys.argv[1:]); print('n/a' if math.isnan(a) else f'{a/c:.2f}x')" "$calm" "$attacked")
  printf '%-18s %12s %14s %8s %13s/%s %10s\n' "${entry%%:*}" "$calm" "$attacked" "$ratio" "$failed" "$scrapes" "$held"
done
