#!/usr/bin/env bash
# Aggregation-view benchmark (issue 14). Dataset: EVENTS raw events for
# USERS users over the 180 days before the data is generated, LABELS labels
# over the last 150 days; one
# aggregation view of 12 aggregates (count, sum, mean, max of amount over
# 1d, 7d, 30d). Measures, in one run:
#   1. offline: the training set, whole process, Almanac vs a hand-written
#      DuckDB range join and a Polars rolling(closed="left") pipeline; the
#      outputs are checked equal first (counts and max exact, sums and
#      means within 1e-9 relative);
#   2. materialization of the states into the embedded store (events/s);
#   3. in-process online read of the 12 aggregates for 1 entity (p50/p99)
#      and the state bytes per entity;
#   4. HTTP at c = 8 with those 12 aggregates (requests/s).
#
# usage: bench/aggregations.sh [RUNS] [EVENTS USERS LABELS]   (defaults: 3; 10000000 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
EVENTS=${2:-10000000}
USERS=${3:-100000}
LABELS=${4:-1000000}
WORK=${BENCH_DIR:-/tmp/almanac-bench}
VENV="$WORK/venv"
mkdir -p "$WORK"

cargo build --release -p almanac-cli -p almanac-bench --quiet
BIN="$PWD/target/release/almanac"
BENCH="$PWD/target/release/almanac-bench"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet duckdb polars pyarrow pandas
fi
PY="$VENV/bin/python"

REPO="$WORK/agg-$EVENTS-$USERS-$LABELS"
if [ ! -f "$REPO/.almanac/registry.json" ]; then
  rm -rf "$REPO"; mkdir -p "$REPO/data"
  echo "project: aggbench" >"$REPO/almanac.yaml"
  cat >"$REPO/features.yaml" <<'YAML'
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: events
    path: data/events.parquet
    timestamp_field: event_timestamp
feature_views:
  - name: windows
    entities: [user]
    source: events
    aggregations:
      - {function: count, window: 1d}
      - {column: amount, function: sum, window: 1d}
      - {column: amount, function: mean, window: 1d}
      - {column: amount, function: max, window: 1d}
      - {function: count, window: 7d}
      - {column: amount, function: sum, window: 7d}
      - {column: amount, function: mean, window: 7d}
      - {column: amount, function: max, window: 7d}
      - {function: count, window: 30d}
      - {column: amount, function: sum, window: 30d}
      - {column: amount, function: mean, window: 30d}
      - {column: amount, function: max, window: 30d}
YAML
  "$PY" bench/peers_aggregations.py generate "$REPO" "$EVENTS" "$USERS" "$LABELS"
  "$BIN" --repo "$REPO" apply >/dev/null
fi
LABELS_FILE="$REPO/data/labels.parquet"
ALMANAC=("$BIN" --repo "$REPO" historical --entities "$LABELS_FILE" --features windows --output "$WORK/agg-almanac.parquet")
DUCKDB=("$PY" bench/peers_aggregations.py duckdb "$REPO" "$WORK/agg-duckdb.parquet")
POLARS=("$PY" bench/peers_aggregations.py polars "$REPO" "$WORK/agg-polars.parquet")

echo "== 1. offline: $EVENTS events, $USERS users, $LABELS labels, 12 aggregates"
"${ALMANAC[@]}" >/dev/null
"${DUCKDB[@]}"
"${POLARS[@]}"
"$PY" bench/peers_aggregations.py compare "$WORK/agg-almanac.parquet" "$WORK/agg-duckdb.parquet"
"$PY" bench/peers_aggregations.py compare "$WORK/agg-almanac.parquet" "$WORK/agg-polars.parquet"
: >"$WORK/agg-times.txt"
for _ in $(seq "$RUNS"); do
  /usr/bin/time -f "almanac %e %M" "${ALMANAC[@]}" >/dev/null 2>>"$WORK/agg-times.txt"
  /usr/bin/time -f "duckdb %e %M" "${DUCKDB[@]}" >/dev/null 2>>"$WORK/agg-times.txt"
  /usr/bin/time -f "polars %e %M" "${POLARS[@]}" >/dev/null 2>>"$WORK/agg-times.txt"
done
"$PY" - "$WORK/agg-times.txt" <<'PY'
import sys, statistics, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 3 and p[0] in ("almanac", "duckdb", "polars"):
        runs[p[0]].append((float(p[1]), int(p[2]) / 1024))
base = statistics.median(t for t, _ in runs["almanac"])
for name in ("almanac", "duckdb", "polars"):
    t = sorted(x for x, _ in runs[name]); m = statistics.median(r for _, r in runs[name])
    print(f"   {name:<8} {statistics.median(t):7.2f} s (min {t[0]:.2f}, max {t[-1]:.2f})  peak RSS {m:6.0f} MB  {statistics.median(t) / base:4.2f}x almanac's time")
PY

echo "== 2. materialization of the states (embedded store), up to now"
rm -rf "$REPO/.almanac/online"
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
/usr/bin/time -f "wall %e s, peak RSS %M KB" "$BIN" --repo "$REPO" --json materialize --start 2000-01-01T00:00:00Z --end "$NOW" >"$WORK/agg-mat.json" 2>"$WORK/agg-mat-time.txt"
cat "$WORK/agg-mat-time.txt"
"$PY" -c "
import json; r = json.load(open('$WORK/agg-mat.json'))[0]
print(f\"   {r['source_rows']:,} events read (the widest window before the end), {r['entities']:,} states, {r['state_bytes']:,} bytes ({r['state_bytes'] / max(r['entities'], 1):.0f} per entity), {r['seconds']:.2f} s in the job: {r['source_rows'] / r['seconds'] / 1e6:.2f} M events/s\")"

echo "== 3. in-process online read: 12 aggregates, 1 entity, at $NOW"
for _ in $(seq "$RUNS"); do "$BENCH" view-latency --repo "$REPO" --view windows --at "$NOW" --iterations 20000; done

echo "== 4. HTTP, c = 8, 12 aggregates for 1 entity (at the server's now)"
PORT=6612
"$BIN" --repo "$REPO" serve --port "$PORT" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
echo '{"features": ["windows"], "entities": {"user_id": [42]}}' >"$WORK/agg-request.json"
curl -sf -X POST "http://127.0.0.1:$PORT/get-online-features" -d @"$WORK/agg-request.json" | head -c 300; echo
for _ in $(seq "$RUNS"); do bash bench/serve_load.sh "http://127.0.0.1:$PORT" "$WORK/agg-request.json" 8 8; done
