#!/usr/bin/env bash
# PostgreSQL push-down benchmark: historical retrieval (the point-in-time join
# of `almanac historical --feature-service fraud_model_v1`) computed inside
# PostgreSQL, on the same tables in the same run, by
#   almanac-postgres  Almanac with its PostgreSQL offline store
#   lateral           a careful hand-written LEFT JOIN LATERAL ... LIMIT 1 query
#                     (bench/peers_pushdown.py lateral), labels read from SCHEMA.labels
#   feast             Feast 0.67's PostgreSQL offline store (bench/peers_pushdown.py feast),
#                     labels handed over as a pandas DataFrame (Feast uploads them)
# and, for reference, off PostgreSQL on the same Parquet files:
#   almanac-embedded  Almanac's embedded offline store (DataFusion + its as-of join)
#   duckdb            the ASOF JOIN of bench/peers_historical.py
# and the demo's aggregation view `user_txn_windows` (7 windowed aggregates
# over the transactions, i.e. SCHEMA.labels) for the same labels:
#   windows-postgres  events selected inside PostgreSQL, windows computed by Almanac
#   windows-embedded  the same view over the Parquet file
# Whole process each (labels in, Parquet out). At every scale the five outputs
# are first checked to be identical row for row (bench/peers_pushdown.py
# compare), then each is timed RUNS times, interleaved; prints the median wall
# time, labels/s and peak RSS (/usr/bin/time), plus Almanac's stage timings.
#
# usage: bench/pushdown.sh [RUNS] [SCALE ...]     (defaults: 3 runs; scale 1)
# env:   PG_URL     PostgreSQL to use (default postgresql://127.0.0.1:5432/test; trust auth)
#        BENCH_DIR  work folder (default /tmp/almanac-bench; the demo repos are shared
#                   with bench/historical.sh)
#        KEEP=1     keep the loaded schemas (almanac_bench_s<scale>) afterwards
#        PEERS=0    time Almanac only (no LATERAL, Feast or DuckDB): for large scales
# Needs a running PostgreSQL; each scale's schema is dropped and reloaded first
# (untimed), with indexes on (key, event_timestamp, created_at), then VACUUM ANALYZE.
# Exits 1 if any output differed from almanac-postgres's (the timings still run).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
shift || true
if [ $# -gt 0 ]; then SCALES=("$@"); else SCALES=(1); fi
WORK=${BENCH_DIR:-/tmp/almanac-bench}
VENV="$WORK/venv-pushdown"
PY="$VENV/bin/python"
PG_URL=${PG_URL:-postgresql://127.0.0.1:5432/test}
export FEAST_USAGE=False PYTHONWARNINGS=ignore

cargo build --release -p almanac-cli --quiet
BIN="$PWD/target/release/almanac"
mkdir -p "$WORK"
if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'feast[postgres]==0.67.0' 'psycopg[binary]' pyarrow duckdb
fi
"$PY" -c 'import sys, psycopg; psycopg.connect(sys.argv[1]).close()' "$PG_URL" \
  || { echo "pushdown: cannot connect to PostgreSQL at $PG_URL" >&2; exit 2; }

STATUS=0
for SCALE in "${SCALES[@]}"; do
  REPO="$WORK/repo-$SCALE"
  PGREPO="$WORK/repo-$SCALE-postgres"
  SCHEMA="almanac_bench_s${SCALE//./_}"
  OUT="$WORK/pushdown-$SCALE"
  LABELS="$REPO/data/labels.parquet"
  mkdir -p "$OUT"
  if [ ! -f "$REPO/.almanac/registry.json" ]; then
    rm -rf "$REPO"
    "$BIN" init --demo --scale "$SCALE" --reference-dates "$REPO" >/dev/null
    "$BIN" --repo "$REPO" apply >/dev/null
  fi

  echo "== scale $SCALE: loading $SCHEMA (untimed)"
  "$PY" bench/peers_pushdown.py load "$REPO" "$SCHEMA" "$PG_URL" 2>&1 | sed 's/^/   /'

  # The same definitions with the offline store on PostgreSQL: each source
  # reads SCHEMA.<table> instead of data/<table>.parquet.
  rm -rf "$PGREPO"
  mkdir -p "$PGREPO"
  cp "$REPO/.gitignore" "$PGREPO/"
  "$PY" - "$REPO" "$PGREPO" "$SCHEMA" "$PG_URL" <<'PY'
import sys
repo, pgrepo, schema, url = sys.argv[1:5]
# The demo's aggregation view `user_txn_windows` (over `transactions`, now
# SCHEMA.labels) runs on PostgreSQL too (the windows-* contenders).
text = open(f"{repo}/features.yaml").read()
for table in ("user_txn_stats", "merchant_stats", "labels"):
    old = f"path: data/{table}.parquet"
    if text.count(old) != 1:
        raise SystemExit(f"pushdown: expected one '{old}' in {repo}/features.yaml")
    text = text.replace(old, f"table: {schema}.{table}")
if "path:" in text:
    raise SystemExit(f"pushdown: {repo}/features.yaml has a source this script does not rewrite")
open(f"{pgrepo}/features.yaml", "w").write(text)
config = open(f"{repo}/almanac.yaml").read()
if "offline:" in config:
    raise SystemExit(f"pushdown: {repo}/almanac.yaml already names an offline store")
config = config.rstrip("\n") + f'\noffline:\n  type: postgres\n  url: "{url}"\n'
open(f"{pgrepo}/almanac.yaml", "w").write(config)
PY
  "$BIN" --repo "$PGREPO" apply >/dev/null

  ALMANAC_PG=("$BIN" --repo "$PGREPO" historical --entities "$LABELS" --feature-service fraud_model_v1 --output "$OUT/almanac-postgres.parquet")
  ALMANAC_EMB=("$BIN" --repo "$REPO" historical --entities "$LABELS" --feature-service fraud_model_v1 --output "$OUT/almanac-embedded.parquet")
  LATERAL=("$PY" bench/peers_pushdown.py lateral "$PG_URL" "$SCHEMA" "$OUT/lateral.parquet")
  FEAST=("$PY" bench/peers_pushdown.py feast "$PG_URL" "$SCHEMA" "$OUT/feast.parquet")
  DUCKDB=("$PY" bench/peers_historical.py duckdb "$REPO" "$OUT/duckdb.parquet")
  WINDOWS_PG=("$BIN" --repo "$PGREPO" historical --entities "$LABELS" --features user_txn_windows --output "$OUT/windows-postgres.parquet")
  WINDOWS_EMB=("$BIN" --repo "$REPO" historical --entities "$LABELS" --features user_txn_windows --output "$OUT/windows-embedded.parquet")
  if [ "${PEERS:-1}" = 0 ]; then PEER_NAMES=(); else PEER_NAMES=(lateral feast duckdb); fi

  echo "== scale $SCALE: correctness (every output must equal almanac-postgres's)"
  ALMANAC_TIMINGS=1 "${ALMANAC_PG[@]}" >/dev/null 2>"$OUT/stages-postgres.txt"
  ALMANAC_TIMINGS=1 "${ALMANAC_EMB[@]}" >/dev/null 2>"$OUT/stages-embedded.txt"
  ALMANAC_TIMINGS=1 "${WINDOWS_PG[@]}" >/dev/null 2>"$OUT/stages-windows-postgres.txt"
  "${WINDOWS_EMB[@]}" >/dev/null
  if [ "${PEERS:-1}" != 0 ]; then
    "${LATERAL[@]}" 2>/dev/null
    "${FEAST[@]}" 2>"$OUT/feast.log" || { cat "$OUT/feast.log" >&2; exit 1; }
    "${DUCKDB[@]}" 2>/dev/null
  fi
  for PAIR in almanac-postgres:almanac-embedded "${PEER_NAMES[@]/#/almanac-postgres:}" windows-postgres:windows-embedded; do
    OURS=${PAIR%%:*}; PEER=${PAIR#*:}
    if "$PY" bench/peers_pushdown.py compare "$OUT/$OURS.parquet" "$OUT/$PEER.parquet" >"$OUT/compare-$PEER.txt"; then
      echo "   $OURS == $PEER: $(tail -1 "$OUT/compare-$PEER.txt")"
    else
      echo "   $OURS != $PEER: MISMATCH"; sed 's/^/     /' "$OUT/compare-$PEER.txt"; STATUS=1
    fi
  done
  echo "   almanac-postgres stages (one run):"; sed 's/^/     /' "$OUT/stages-postgres.txt"
  echo "   windows-postgres stages (one run):"; sed 's/^/     /' "$OUT/stages-windows-postgres.txt"
  if [ "${PEERS:-1}" != 0 ]; then echo "   feast (one run): $(tail -1 "$OUT/feast.log")"; fi

  : > "$OUT/times.txt"
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "almanac-postgres %e %M" "${ALMANAC_PG[@]}" >/dev/null 2>>"$OUT/times.txt"
    /usr/bin/time -f "almanac-embedded %e %M" "${ALMANAC_EMB[@]}" >/dev/null 2>>"$OUT/times.txt"
    /usr/bin/time -f "windows-postgres %e %M" "${WINDOWS_PG[@]}" >/dev/null 2>>"$OUT/times.txt"
    /usr/bin/time -f "windows-embedded %e %M" "${WINDOWS_EMB[@]}" >/dev/null 2>>"$OUT/times.txt"
    if [ "${PEERS:-1}" != 0 ]; then
      /usr/bin/time -f "lateral %e %M" "${LATERAL[@]}" >/dev/null 2>>"$OUT/times.txt"
      /usr/bin/time -f "feast %e %M" "${FEAST[@]}" >/dev/null 2>>"$OUT/times.txt"
      /usr/bin/time -f "duckdb %e %M" "${DUCKDB[@]}" >/dev/null 2>>"$OUT/times.txt"
    fi
  done
  echo "== scale $SCALE: $RUNS runs each, interleaved, whole process (client side; PostgreSQL's own memory is not in the peak RSS)"
  "$PY" - "$OUT/times.txt" "$LABELS" <<'PY'
import sys, statistics, collections, pyarrow.parquet as pq
names = ("almanac-postgres", "almanac-embedded", "lateral", "feast", "duckdb", "windows-postgres", "windows-embedded")
rows = pq.ParquetFile(sys.argv[2]).metadata.num_rows
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 3 and parts[0] in names:
        runs[parts[0]].append((float(parts[1]), int(parts[2]) / 1024))
base = statistics.median(r[0] for r in runs["almanac-postgres"])
for name in (n for n in names if runs[n]):
    t = sorted(r[0] for r in runs[name]); m = statistics.median(r[1] for r in runs[name]); med = statistics.median(t)
    print(f"   {name:<17} {med:8.2f} s (min {t[0]:.2f}, max {t[-1]:.2f})  {rows / med / 1e6:6.3f} M labels/s  peak RSS {m:6.0f} MB  {med / base:5.2f}x almanac-postgres's time")
PY
  if [ "${KEEP:-0}" != 1 ]; then
    "$PY" -c 'import sys, psycopg; c = psycopg.connect(sys.argv[1], autocommit=True); c.execute(f"DROP SCHEMA IF EXISTS {sys.argv[2]} CASCADE")' "$PG_URL" "$SCHEMA"
  fi
done
exit $STATUS
