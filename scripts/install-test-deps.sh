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
#   heaptrack_print (package `heaptrack`): its report without -l, which ingest answers with a hint;
#   valgrind (package `valgrind`): memcheck runs whose LEAK SUMMARY the memcheck parser is checked against;
#   openssl (package `openssl`): the OTLP TLS test makes its own certificate authority, and so does
#     the --web.config.file test (whose bcrypt hashes come from python3's crypt, i.e. libxcrypt);
#   curl (package `curl`): the --web.config.file test's HTTPS client with and without certificates;
#   bpftool (package `bpftool`): the ebpf-malloc kill test lists the kernel's BPF programs and links;
#   bpftrace (package `bpftrace`): the peer of the ebpf-malloc capture in benches/ebpf_malloc.sh;
#   jsonnet (package `jsonnet`): renders the monitoring mixin (mixin/) into the rule file and dashboards;
#   libc's separate debug file (package `libc6-dbg`): symbolization names libc's local functions
#     (`__libc_start_call_main`) from its build-id debug file's symbol table;
#   zstd (package `zstd`): compresses the decompression bombs of the watched-folder budget tests;
#   a Python venv (package `python3-venv`) with the OTLP receivers of the OTLP tests: rotel (its
#     rotel-agent binary receives metrics and logs) and the official opentelemetry-proto and grpcio
#     packages (tests/otlp/profiles_receiver.py decodes profiles); at $MEMLEAK_OTLP_VENV, by default
#     ~/.cache/memleak-exporter/otlp-venv, where the tests look for it.
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
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v heaptrack_print >/dev/null 2>&1 || missing+=(heaptrack)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v bpftool >/dev/null 2>&1 || [ -x /usr/sbin/bpftool ] || missing+=(bpftool)
command -v bpftrace >/dev/null 2>&1 || missing+=(bpftrace)
dpkg-query -W -f='${Status}' libc6-dbg 2>/dev/null | grep -q 'ok installed' || missing+=(libc6-dbg)
command -v jsonnet >/dev/null 2>&1 || missing+=(jsonnet)
compgen -G '/usr/lib/*/libtcmalloc.so.4' >/dev/null || missing+=(libgoogle-perftools4)
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

# The OTLP receivers' venv, once the packages above are there.
otlp_venv() {
  local venv="${MEMLEAK_OTLP_VENV:-$HOME/.cache/memleak-exporter/otlp-venv}"
  if "$venv/bin/python3" -c 'import grpc, rotel, opentelemetry.proto.profiles.v1development' >/dev/null 2>&1; then
    return 0
  fi
  echo "install-test-deps: building the OTLP receivers' venv in $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q rotel==0.0.1a15 opentelemetry-proto==1.45.2 grpcio==1.85.3
}

if [ ${#missing[@]} -eq 0 ]; then
  otlp_venv
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
otlp_venv
