#!/usr/bin/env bash
# `stage`: put the pure-Python package and the native module cargo built
# (dev profile, the workspace's target directory) together in
# target/python-sdk/almanac, importable with PYTHONPATH=target/python-sdk.
# This is what the test suite imports; `pip install ./python` builds the
# same package with maturin (release profile) for users.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-stage}" in
  stage)
    profile="${PROFILE:-debug}"
    native="target/$profile/lib_almanac.so"
    if [ ! -f "$native" ]; then
      echo "no $native; build it first: cargo build -p almanac-python" >&2
      exit 1
    fi
    rm -rf target/python-sdk
    mkdir -p target/python-sdk/almanac
    cp python/almanac/*.py python/almanac/py.typed target/python-sdk/almanac/
    cp python/almanac/*.pyi target/python-sdk/almanac/ 2>/dev/null || true
    cp "$native" target/python-sdk/almanac/_almanac.abi3.so
    ;;
  *)
    echo "usage: scripts/python-sdk.sh stage" >&2
    exit 2
    ;;
esac
