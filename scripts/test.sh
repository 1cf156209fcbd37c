#!/usr/bin/env bash
# Runs every test of memleak-exporter: installs the tools the tests use, then
# checks formatting, runs clippy with warnings denied, and runs all tests.
# Under CI=true a test whose tool is missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
cargo test --workspace --locked
