#!/usr/bin/env bash
# Make (idempotently) the Python venv that Almanac's Spark offline store runs
# its managed driver (crates/spark/driver/almanac_spark_driver.py) in, and
# print the venv's python path on the last line.
#
# Needs python3 with venv and a Java 17+ runtime (pyspark 4.x runs on 17/21).
# The driver needs only pyspark (Almanac writes and reads the Parquet).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/target/py-venv-spark"
pyspark_pin="pyspark==4.3.0"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c 'import pyspark, sys; sys.exit(pyspark.__version__ != "4.3.0")' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$pyspark_pin" >&2
fi
echo "$venv/bin/python"
