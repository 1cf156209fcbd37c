#!/usr/bin/env bash
# Benchmark (not a test), as root: the sampler's cost on the issue's service-like load (a CPython
# JSON encode/decode loop, benches/workload/json_service.py), where the effect (~1 %) is ten times
# smaller than the spread of CPU time between identical runs on a shared VM (±15 %), so a timed
# ratio (benches/sampler_capture.sh) can neither show nor refute it. Composed instead from quantities that can be measured precisely:
#   idle      instructions executed with the sampler preloaded / without (valgrind's cachegrind,
#             exact and repeatable with PYTHONHASHSEED fixed); the same ratio for mallocbench is
#             printed next to it to compare with the timed ratios of benches/sampler_overhead.sh
#   captured  idle + (sampled allocations x ns per alloc hit + sampled frees x ns per free hit) /
#             the plain run's CPU time. The hits are counted with bpftrace on the two markers of a
#             preloaded run (the count does not depend on the probe's program), the ns per hit are
#             measured in this run by benches/sampler_hit_cost.sh (the exporter's real capture), the
#             CPU time is the least of three plain runs (interference only ever adds to it).
#
# Usage: benches/sampler_service_cost.sh [LOOPS=20000] [HIT_RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
loops=${1:-20000}
hit_runs=${2:-3}
[ "$(id -u)" = 0 ] || { echo "run as root (uprobes)" >&2; exit 1; }
for tool in valgrind bpftrace cc python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (Debian packages valgrind, bpftrace, gcc, python3)" >&2; exit 1; }
done
source benches/scratch.sh
cargo build --release -q -p memleak-sampler
sampler=$PWD/target/release/libmemleak_sampler.so
cc -O2 -o "$work/mallocbench" benches/workload/mallocbench.c
# The interpreter itself: pyenv's python3 is a launcher script.
python=$(python3 -c 'import sys; print(sys.executable)')
export PYTHONHASHSEED=0

instructions() {   # preload-or-empty command... → instructions executed
  LD_PRELOAD="$1" valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "${@:2}" 2>&1 >/dev/null |
    sed -n 's/.*I *refs: *//p' | tr -d ,
}
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.4f}')" "$1" "$2"; }

# Instructions of the loop alone: a run of 0 iterations is subtracted from each.
py_loops=$((loops / 10))
py_plain=$(($(instructions "" "$python" benches/workload/json_service.py "$py_loops") - $(instructions "" "$python" benches/workload/json_service.py 0)))
py_idle=$(($(instructions "$sampler" "$python" benches/workload/json_service.py "$py_loops") - $(instructions "$sampler" "$python" benches/workload/json_service.py 0)))
mb_plain=$(instructions "" "$work/mallocbench" 200000)
mb_idle=$(instructions "$sampler" "$work/mallocbench" 200000)
idle=$(ratio "$py_idle" "$py_plain")

hits=$(bpftrace -e "uprobe:$sampler:memleak_sampler_alloc { @a = count(); } uprobe:$sampler:memleak_sampler_free { @f = count(); }" \
  -c "/usr/bin/env LD_PRELOAD=$sampler $python benches/workload/json_service.py $loops" 2>/dev/null | sed -n 's/^@[af]: //p' | tr '\n' ' ')
read -r alloc_hits free_hits <<<"$hits"
cpu_ns=$(for _ in 1 2 3; do
  /usr/bin/time -f '%U %S' "$python" benches/workload/json_service.py "$loops" 2>&1 >/dev/null | awk '{ printf "%.0f\n", ($1 + $2) * 1e9 }'
done | sort -g | head -1)

benches/sampler_hit_cost.sh "$hit_runs" 50 >"$work/hit_cost" 2>/dev/null
read -r alloc_ns free_ns < <(sed -n 's/.*captured *alloc \([0-9]*\) .*free \([0-9]*\) .*/\1 \2/p' "$work/hit_cost")
captured=$(python3 -c "import sys; i, a, f, an, fn, cpu = map(float, sys.argv[1:]); print(f'{i + (a * an + f * fn) / cpu:.4f}')" \
  "$idle" "$alloc_hits" "$free_hits" "$alloc_ns" "$free_ns" "$cpu_ns")

echo "service load (CPython JSON loop), sampler at its default mean (512 KiB):"
echo "  instructions of $py_loops iterations: plain $py_plain, sampler idle $py_idle"
echo "  idle / plain (instructions)                 ${idle}x"
echo "  $loops iterations: least plain CPU $((cpu_ns / 1000000)) ms, sampled allocations $alloc_hits, sampled frees $free_hits"
echo "  ns per marker hit under a capture (sampler_hit_cost.sh, median of $hit_runs): alloc $alloc_ns, free $free_ns"
echo "  captured / plain (idle + hits x cost / CPU) ${captured}x"
echo "for comparison, mallocbench 200000 pairs: idle / plain (instructions) $(ratio "$mb_idle" "$mb_plain")x"
