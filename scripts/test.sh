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

# Services and tools the end-to-end tests use (they fail loudly without them):
# Redis on 127.0.0.1:6379 (started here if it is not answering; tests that
# need a Redis Cluster start their own from redis-server), and headless
# Chromium for the monitoring report test.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "Redis is not answering on 127.0.0.1:6379; starting redis-server" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi
# NATS with JetStream on 127.0.0.1:4222 for the stream tests (started here
# from nats-server if nothing answers there).
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  echo "NATS is not answering on 127.0.0.1:4222; starting nats-server with JetStream" >&2
  (nats-server -js -a 127.0.0.1 -p 4222 -sd "${TMPDIR:-/tmp}/almanac-nats" >/dev/null 2>&1 &) || true
  sleep 1
fi
# PostgreSQL on 127.0.0.1:5432 (database `test`, trust auth) for the
# PostgreSQL offline store and team registry tests (started here if down).
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "PostgreSQL is not answering on 127.0.0.1:5432; starting it" >&2
  (service postgresql start || pg_ctlcluster 15 main start) >/dev/null 2>&1 || true
  sleep 2
fi
# A real Spark for the Spark offline store's tests: pyspark in a venv of
# its own (one-time download), run on the machine's Java 17.
ALMANAC_SPARK_PYTHON=$(bash scripts/spark-venv.sh | tail -n 1) || echo "could not install pyspark; the Spark tests will fail" >&2
export ALMANAC_SPARK_PYTHON
if ! command -v chromium >/dev/null 2>&1; then
  echo "Chromium not found; installing it from Debian's packages (one-time)..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "could not install chromium" >&2
fi

# A cold CI build gains nothing from incremental compilation's bookkeeping
# (it only writes caches no later build reads).
if [ "${CI:-}" = "true" ]; then
  export CARGO_INCREMENTAL=0
fi

# One build for everything: the Rust tests and the Python SDK's native
# module (a cdylib member of the workspace) share one feature resolution,
# profile and target directory, so the dependencies compile once.
cargo build --workspace --lib --bins --tests

status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@" || status=$?
else
  echo "cargo-nextest unavailable; running cargo test instead" >&2
  cargo test --workspace --no-fail-fast "$@" || status=$?
fi

# The Python SDK: pytest in a venv this script makes (pytest, pandas,
# pyarrow, polars from PyPI), against the module just built, staged beside
# the pure-Python package (what `pip install ./python` installs).
bash scripts/python-sdk.sh stage
VENV=target/py-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade "pytest>=7" "pandas>=2" "pyarrow>=15" "polars>=1"
PYTHONPATH="$PWD/target/python-sdk" ALMANAC_BIN="$PWD/target/debug/almanac" "$VENV/bin/python" -m pytest python/tests -q --ignore=python/tests/test_feast_import.py || status=$?

# `almanac import-feast` against Feast itself (python/tests/test_feast_import.py,
# left out above): a venv of its own, because Feast 0.67 pins pandas<3 while
# the SDK tests run on the newest pandas. ALMANAC_FEAST_TESTS=1 makes a
# missing `feast` a failure instead of a skip.
FEAST_VENV=target/py-venv-feast
if [ ! -x "$FEAST_VENV/bin/python" ]; then
  python3 -m venv "$FEAST_VENV"
fi
"$FEAST_VENV/bin/python" -m pip install -q "feast[duckdb]==0.67.0" "pytest>=7" "pyarrow>=15" || echo "could not install feast; the Feast import tests will fail" >&2
ALMANAC_FEAST_TESTS=1 PYTHONPATH="$PWD/target/python-sdk" ALMANAC_BIN="$PWD/target/debug/almanac" "$FEAST_VENV/bin/python" -m pytest python/tests/test_feast_import.py -q || status=$?
exit "$status"
