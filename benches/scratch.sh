# Sourced by the benchmarks (from the repository's root): a scratch folder `$work`, and `pids`,
# the background processes to stop; both cleaned up on exit, however the benchmark ends.
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
