#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, on Debian 12:
#   prometheus, promtool (package `prometheus`): scrape tests, `promtool check/test`;
#   alertmanager, amtool (package `prometheus-alertmanager`): the webhook loop, `amtool check-config`;
#   go (package `golang-go`): `go tool pprof` reads our pprof profiles back;
#   cc (package `gcc`, usually present): builds the page-touching helper of the perf counter test;
#   libtcmalloc.so.4 (package `libgoogle-perftools4`): gperftools' heap profiler for the capture test;
#   clang (package `clang`): compiles the eBPF programs in bpf/build.rs (without it they are left out);
#   c++ (package `g++`), python3 (package `python3`), libjemalloc.so.2 (package `libjemalloc2`): programs
#     the sampler's tests run with the sampler preloaded (C++, Python, jemalloc behind the sampler);
#   objdump (package `binutils`, which gcc brings): the sampler's test that its README states the
#     glibc version the library needs;
#   zstd (package `zstd`): compresses the decompression bombs of the watched-folder budget tests.
# Idempotent: does nothing when everything is present.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v clang >/dev/null 2>&1 || missing+=(clang)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
[ -e /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ] || missing+=(libjemalloc2)
command -v objdump >/dev/null 2>&1 || missing+=(binutils)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
compgen -G '/usr/lib/*/libtcmalloc.so.4' >/dev/null || missing+=(libgoogle-perftools4)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "install-test-deps: need root to install: ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

echo "install-test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
