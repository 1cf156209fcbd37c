#!/usr/bin/env bash
# Benchmark (not a test): what the allocation sampler (sampler/, libmemleak_sampler.so) costs the
# programs it is loaded into, next to the peers, in one run, on two loads:
#   malloc   benches/workload/mallocbench.c: 2,000,000 malloc/free pairs of mixed sizes
#   service  benches/workload/json_service.py: a Python JSON encode/decode loop
# and these configurations (each load's own "plain" is the reference, jemalloc's profiler is
# compared with plain jemalloc):
#   plain               the load alone (glibc malloc)
#   sampler idle        LD_PRELOAD=libmemleak_sampler.so, default mean (512 KiB), markers not probed
#   sampler probed      the same with uprobes on both markers, recording into a trace instance
#                       (what a capture costs; root only)
#   heaptrack           heaptrack 1.4 (Debian), its recording written to a temporary file
#   massif              valgrind --tool=massif (Debian)
#   jemalloc            LD_PRELOAD=libjemalloc.so.2 (Debian libjemalloc2)
#   jemalloc prof       the same with MALLOC_CONF=prof:true,lg_prof_sample:19 (its sampling
#                       profiler at the sampler's default mean)
#   sampler + jemalloc  the sampler idle in front of jemalloc (compared with plain jemalloc)
# Each round measures every configuration right after a run of its reference (a pair), in a
# rotating order: the pair's ratio cancels the drift of this shared VM. Reported: the median of
# the pairs' ratios with their range, for wall time and for CPU time (user + system, children
# included: heaptrack's interpreter runs in a process of its own). Then, as a noise-free
# complement, the instructions executed (callgrind) on a tenth of the malloc load.
#
# Usage: benches/sampler_overhead.sh [ROUNDS=7] [PAIRS=2000000] [SERVICE_ITERATIONS=4000] [CONFIGS=REGEX]
#   CONFIGS picks configurations by name (e.g. 'sampler|jemalloc' for more rounds of the cheap
#   ones); the references (plain, jemalloc) always run.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
pairs=${2:-2000000}
iterations=${3:-4000}
only=${4:-.}

cargo build --release -q -p memleak-sampler
sampler=$PWD/target/release/libmemleak_sampler.so
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
for tool in heaptrack valgrind python3 cc; do
  command -v "$tool" >/dev/null || { echo "missing $tool (Debian packages heaptrack, valgrind, python3, gcc)" >&2; exit 1; }
done
[ -e "$jemalloc" ] || { echo "missing $jemalloc (Debian package libjemalloc2)" >&2; exit 1; }
work=$(mktemp -d)
tracefs=/sys/kernel/tracing
group=msampler_bench_$$
probing=false
cleanup() {
  if [ -d "$tracefs/instances/$group" ]; then
    echo 0 > "$tracefs/instances/$group/events/$group/enable" || true
    rmdir "$tracefs/instances/$group" || true
    echo "-:$group/alloc" >> "$tracefs/uprobe_events" || true
    echo "-:$group/free" >> "$tracefs/uprobe_events" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
cc -O2 -o "$work/mallocbench" benches/workload/mallocbench.c

# File offset of a dynamic symbol of the library (what a uprobe attaches to).
offset_of() {
  local address _ off va pa fsz msz
  address=$((16#$(readelf -W --dyn-syms "$sampler" | awk -v s="$1" '$8 == s { print $2 }')))
  while read -r _ off va pa fsz msz _; do
    if [ "$address" -ge $((va)) ] && [ "$address" -lt $((va + msz)) ]; then
      printf '0x%x\n' $((address - va + off)); return
    fi
  done < <(readelf -lW "$sampler" | grep '^ *LOAD')
  echo "no segment holds $1" >&2; exit 1
}
if [ "$(id -u)" -eq 0 ]; then
  [ -e "$tracefs/uprobe_events" ] || mount -t tracefs nodev "$tracefs"
  echo "p:$group/alloc $sampler:$(offset_of memleak_sampler_alloc) ptr=%di:x64 size=%si:u64" >> "$tracefs/uprobe_events"
  echo "p:$group/free $sampler:$(offset_of memleak_sampler_free) ptr=%di:x64" >> "$tracefs/uprobe_events"
  mkdir "$tracefs/instances/$group"
  echo 8192 > "$tracefs/instances/$group/buffer_size_kb"
  probing=true
else
  echo "not root: the 'sampler probed' configuration is left out" >&2
fi
probes() {   # on | off: the markers' uprobes record into the instance only while on
  [ "$1" = on ] && echo > "$tracefs/instances/$group/trace"
  echo $([ "$1" = on ] && echo 1 || echo 0) > "$tracefs/instances/$group/events/$group/enable"
}

# The interpreter itself, not a wrapper script (pyenv's shim would be what valgrind measures).
python=$(python3 -c 'import sys; print(sys.executable)')
declare -A load=(
  [malloc]="'$work/mallocbench' $pairs"
  [service]="'$python' benches/workload/json_service.py $iterations"
)
configs=(plain "sampler idle" "sampler probed" heaptrack massif jemalloc "jemalloc prof" "sampler + jemalloc")
picked=()
for c in "${configs[@]}"; do
  [ "$c" = "sampler probed" ] && ! $probing && continue
  if [ "$c" = plain ] || [ "$c" = jemalloc ] || [[ $c =~ $only ]]; then picked+=("$c"); fi
done
configs=("${picked[@]}")
reference() { case $1 in "jemalloc prof" | "sampler + jemalloc") echo jemalloc ;; *) echo plain ;; esac; }

command_of() {   # config load → the shell command
  local cmd=${load[$2]}
  case $1 in
    plain) echo "$cmd" ;;
    "sampler idle" | "sampler probed") echo "LD_PRELOAD='$sampler' $cmd" ;;
    heaptrack) echo "heaptrack -o '$work/heaptrack' $cmd >/dev/null" ;;
    massif) echo "valgrind -q --tool=massif --massif-out-file='$work/massif.out' $cmd" ;;
    jemalloc) echo "LD_PRELOAD='$jemalloc' $cmd" ;;
    "jemalloc prof") echo "LD_PRELOAD='$jemalloc' MALLOC_CONF=prof:true,lg_prof_sample:19 $cmd" ;;
    "sampler + jemalloc") echo "LD_PRELOAD='$sampler $jemalloc' $cmd" ;;
  esac
}

declare -A wall cpu ref_wall ref_cpu
measure() {   # config load → "wall cpu" seconds
  local TIMEFORMAT='%R %U %S' t
  [ "$1" = "sampler probed" ] && probes on
  t=$( { time sh -c "$(command_of "$1" "$2")" >/dev/null 2>&1 ; } 2>&1 )
  [ "$1" = "sampler probed" ] && probes off
  rm -rf "$work"/heaptrack* "$work"/massif.out
  echo "$t" | awk '{ print $1, $2 + $3 }'
}

echo "sampler overhead: $rounds rounds; malloc = $pairs malloc/free pairs, service = $iterations JSON requests" >&2
for round in $(seq "$rounds"); do
  n=${#configs[@]}
  for l in malloc service; do
    for i in $(seq 0 $((n - 1))); do
      c=${configs[$(((i + round) % n))]}
      read -r w u <<< "$(measure "$(reference "$c")" "$l")"
      ref_wall[$round/$l/$c]=$w
      ref_cpu[$round/$l/$c]=$u
      read -r w u <<< "$(measure "$c" "$l")"
      wall[$round/$l/$c]=$w
      cpu[$round/$l/$c]=$u
    done
  done
  echo "  round $round done" >&2
done

median() { sort -g | awk '{ v[NR] = $1 } END { printf "%s %s %s", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[1], v[NR] }'; }

summary() {   # config load times-array reference-times-array → median seconds, median pair ratio (min-max)
  local c=$1 l=$2 seconds ratio low high
  local -n times=$3 refs=$4
  read -r seconds _ _ <<< "$(for r in $(seq "$rounds"); do echo "${times[$r/$l/$c]}"; done | median)"
  read -r ratio low high <<< "$(for r in $(seq "$rounds"); do
    echo "${times[$r/$l/$c]} ${refs[$r/$l/$c]}"; done | awk '{ printf "%.6f\n", ($2 > 0 ? $1 / $2 : 0) }' | median)"
  printf '%7.3fs %6.2fx (%.2f-%.2f)' "$seconds" "$ratio" "$low" "$high"
}

for l in malloc service; do
  echo
  echo "$l load: median seconds, median ratio to the reference (range over $rounds rounds)"
  printf '  %-20s %-12s %-34s %-34s\n' configuration "against" "wall" "cpu (user+sys)"
  for c in "${configs[@]}"; do
    printf '  %-20s %-12s %-34s %-34s\n' "$c" "$(reference "$c")" "$(summary "$c" "$l" wall ref_wall)" \
      "$(summary "$c" "$l" cpu ref_cpu)"
  done
done

# Instructions are what the sampler adds on the CPU whatever the machine's load; callgrind
# counts them exactly (its own slowdown does not matter here). The loads run a tenth of their size.
instructions() {   # config load → instructions executed
  local preload= cmd
  case $1 in
    "sampler idle") preload=$sampler ;;
    jemalloc) preload=$jemalloc ;;
    "sampler + jemalloc") preload="$sampler $jemalloc" ;;
  esac
  case $2 in
    malloc) cmd=("$work/mallocbench" $((pairs / 10))) ;;
    service) cmd=("$python" benches/workload/json_service.py $((iterations / 10))) ;;
  esac
  # valgrind hands LD_PRELOAD on to the program it runs.
  LD_PRELOAD=$preload valgrind --tool=callgrind --callgrind-out-file=/dev/null "${cmd[@]}" 2>&1 |
    awk '/Collected/ { print $NF }'
}
echo
echo "instructions executed (callgrind), a tenth of each load: $((pairs / 10)) pairs, $((iterations / 10)) requests"
for l in malloc service; do
  plain_ir=$(instructions plain $l); idle_ir=$(instructions "sampler idle" $l)
  je_ir=$(instructions jemalloc $l); sje_ir=$(instructions "sampler + jemalloc" $l)
  awk -v l=$l -v p="$plain_ir" -v s="$idle_ir" -v j="$je_ir" -v sj="$sje_ir" 'BEGIN {
    printf "  %-8s %-20s %14d\n", l, "plain", p
    printf "  %-8s %-20s %14d  %.4fx plain\n", l, "sampler idle", s, s / p
    printf "  %-8s %-20s %14d\n", l, "jemalloc", j
    printf "  %-8s %-20s %14d  %.4fx jemalloc\n", l, "sampler + jemalloc", sj, sj / j }'
done
