#!/usr/bin/env bash
# Python SDK benchmark (issue 15), peers in the same run, at scale 1.
#
# Training sets: `fraud_model_v1` for the 1M labels of the reference dataset
# (DESIGN §8, fixed dates), from a pandas DataFrame to a pandas DataFrame:
#   almanac SDK  almanac.FeatureStore(repo).get_historical_features(
#                    entity_df=labels, feature_service="fraud_model_v1").to_pandas()
#   almanac CLI  `almanac historical --feature-service fraud_model_v1` (Parquet in and out)
#   DuckDB       hand-written from Python: the pandas labels registered, ASOF LEFT JOIN
#                (same dedupe by created_at and inclusive TTL as bench/peers_historical.py), .df()
#   Feast 0.67   feast.FeatureStore(repo).get_historical_features(entity_df=labels,
#                    features=[...the same 4 refs...]).to_df(), DuckDB offline store
#                    (`offline_store: type: duckdb`) over the same Parquet files
# It first checks correctness (SDK == CLI == DuckDB row by row; Feast's
# differing cells are counted and explained, never fatal), then runs each
# RUNS times, interleaved: in-process seconds (the timed call inside Python,
# labels already in pandas), whole-process wall seconds and peak RSS
# (/usr/bin/time), and the ratios the issue names.
#
# Online: get_online_features in process, 1 entity x 2 views (20,000 calls)
# and 100 entities x 2 views (2,000 calls), after 1,000 warm-up calls, the
# same 4 features, Almanac's embedded store against Feast's SQLite online
# store. Both stores check TTLs against the wall clock, so this part uses a
# fresh scale-1 demo repo whose data ends now (the reference dates are
# months old: every value would be outside its TTL), materialized over its
# whole range by `almanac materialize` and `feast materialize`.
#
# usage: bench/python_sdk.sh [RUNS]     (default 5)
# env:   BENCH_DIR       work folder (default /tmp/almanac-bench; the reference repo
#                        repo-1 is shared with bench/historical.sh and bench/online.sh)
#        FEAST_RUNS      timed Feast training-set runs (default and at most RUNS; Feast is the slow one)
#        ONLINE_TO_DICT=1  also time `.to_dict()` of each online response
#        SKIP_FEAST=1    leave Feast's runs out (the venv still installs it)
#
# Creates (or reuses) the venv BENCH_DIR/sdk-venv with feast[duckdb]==0.67.0,
# pandas, pyarrow, polars and duckdb. The Almanac SDK is the release build
# staged by scripts/python-sdk.sh, imported with PYTHONPATH=target/python-sdk.
# Logs: BENCH_DIR/sdk-stderr.log (Almanac, DuckDB), BENCH_DIR/sdk-feast.log (Feast).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
FEAST_RUNS=${FEAST_RUNS:-$RUNS}
WORK=${BENCH_DIR:-/tmp/almanac-bench}
VENV="$WORK/sdk-venv"
PY="$VENV/bin/python"
FEAST_VERSION=0.67.0
PEERS="$PWD/bench/peers_python_sdk.py"
ERRLOG="$WORK/sdk-stderr.log"      # stderr of the Almanac and DuckDB processes
FEAST_LOG="$WORK/sdk-feast.log"    # Feast's stderr (it warns a lot)
export FEAST_USAGE=False PYTHONWARNINGS=ignore
trap 'echo "python_sdk: failed (line $LINENO); see $ERRLOG and $FEAST_LOG" >&2' ERR

cargo build --release -p almanac-cli -p almanac-python --quiet
PROFILE=release bash scripts/python-sdk.sh stage
BIN="$PWD/target/release/almanac"
export PYTHONPATH="$PWD/target/python-sdk${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$WORK"
: >"$ERRLOG"
: >"$FEAST_LOG"

# --- the venv ------------------------------------------------------------------
venv_ok() {
  "$PY" - "$FEAST_VERSION" >/dev/null 2>&1 <<'EOF'
import importlib.metadata as m, sys
assert m.version("feast") == sys.argv[1]
import duckdb, pandas, polars, pyarrow, ibis
ibis.duckdb.connect()   # Feast's DuckDB offline store runs on ibis' DuckDB backend
EOF
}
[ -x "$PY" ] || python3 -m venv "$VENV"
if ! venv_ok; then
  echo "== installing feast[duckdb]==$FEAST_VERSION, pandas, pyarrow, polars, duckdb into $VENV"
  "$VENV/bin/pip" install --quiet "feast[duckdb]==$FEAST_VERSION" pandas pyarrow polars duckdb
  if ! venv_ok; then
    echo "   the duckdb extra did not bring ibis' DuckDB backend; installing it explicitly"
    "$VENV/bin/pip" install --quiet "feast==$FEAST_VERSION" duckdb "ibis-framework[duckdb]"
  fi
  venv_ok || { echo "python_sdk: $VENV has no working feast $FEAST_VERSION + ibis DuckDB backend" >&2; exit 1; }
fi
echo "== versions"
"$PY" "$PEERS" versions

# --- the reference repo (fixed dates; shared with bench/historical.sh) ------------
REPO="$WORK/repo-1"
if [ ! -f "$REPO/.almanac/registry.json" ]; then
  rm -rf "$REPO"
  "$BIN" init --demo --scale 1 --reference-dates "$REPO" >/dev/null
  "$BIN" --repo "$REPO" apply >/dev/null
fi
LABELS="$REPO/data/labels.parquet"

# --- an equivalent Feast repo over a data folder ------------------------------------
# The views of `fraud_model_v1` as the demo defines them (crates/almanac/src/
# scaffold.rs): user_txn_stats (ttl 3d) and merchant_stats (ttl 7d), sources
# with event_timestamp and created_at.
write_feast_repo() { # DIR DATA_DIR
  local dir=$1 data=$2
  rm -rf "$dir"
  mkdir -p "$dir"
  cat >"$dir/feature_store.yaml" <<EOF
project: almanac_sdk_bench
registry: $dir/registry.db
provider: local
offline_store:
  type: duckdb
online_store:
  type: sqlite
  path: $dir/online.db
entity_key_serialization_version: 3
EOF
  cat >"$dir/features.py" <<EOF
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)

user_txn_source = FileSource(
    name="user_txn_source",
    path="$data/user_txn_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created_at",
)
merchant_source = FileSource(
    name="merchant_source",
    path="$data/merchant_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created_at",
)

user_txn_stats = FeatureView(
    name="user_txn_stats",
    entities=[user],
    ttl=timedelta(days=3),
    schema=[
        Field(name="user_id", dtype=Int64),
        Field(name="txn_count_7d", dtype=Int64),
        Field(name="txn_amount_avg_7d", dtype=Float64),
        Field(name="txn_amount_std_30d", dtype=Float64),
    ],
    source=user_txn_source,
    online=True,
)
merchant_stats = FeatureView(
    name="merchant_stats",
    entities=[merchant],
    ttl=timedelta(days=7),
    schema=[
        Field(name="merchant_id", dtype=Int64),
        Field(name="merchant_fraud_rate_30d", dtype=Float64),
        Field(name="merchant_txn_count_1d", dtype=Int64),
    ],
    source=merchant_source,
    online=True,
)

fraud_model_v1 = FeatureService(
    name="fraud_model_v1",
    features=[user_txn_stats[["txn_count_7d", "txn_amount_avg_7d"]], merchant_stats],
)
EOF
  (cd "$dir" && "$VENV/bin/feast" apply) >"$dir/apply.log" 2>&1 || { cat "$dir/apply.log" >&2; return 1; }
}

FEAST_OK=1
[ "${SKIP_FEAST:-0}" = 1 ] && FEAST_OK=0
FEAST_HIST="$WORK/sdk-feast-repo"
if [ "$FEAST_OK" = 1 ]; then
  write_feast_repo "$FEAST_HIST" "$REPO/data" || { echo "   feast apply failed: Feast left out"; FEAST_OK=0; }
fi

# --- training sets: correctness --------------------------------------------------
CLI=("$BIN" --repo "$REPO" historical --entities "$LABELS" --feature-service fraud_model_v1 --output "$WORK/sdk-cli.parquet")
SDK=("$PY" "$PEERS" almanac-sdk "$REPO")
DUCK=("$PY" "$PEERS" duckdb "$REPO")
FEAST=("$PY" "$PEERS" feast "$REPO" "$FEAST_HIST")
CHECKLOG="$WORK/sdk-check.log"
rm -f "$WORK"/sdk-{cli,almanac-sdk,duckdb,feast}.parquet
: >"$CHECKLOG"

echo "== training set, scale 1 ($LABELS): correctness (SDK == CLI == DuckDB; Feast compared)"
ALMANAC_TIMINGS=1 "${CLI[@]}" >/dev/null 2>"$WORK/sdk-stages.txt"
"${SDK[@]}" "$WORK/sdk-almanac-sdk.parquet" >>"$CHECKLOG" 2>>"$ERRLOG"
"${DUCK[@]}" "$WORK/sdk-duckdb.parquet" >>"$CHECKLOG" 2>>"$ERRLOG"
if [ "$FEAST_OK" = 1 ]; then
  echo "   (Feast's first run: this can take a while)"
  if ! "${FEAST[@]}" "$WORK/sdk-feast.parquet" >>"$CHECKLOG" 2>>"$FEAST_LOG"; then
    echo "   Feast's run failed (last lines of $FEAST_LOG below); Feast left out of the timings"
    tail -n 20 "$FEAST_LOG" | sed 's/^/     /'
    FEAST_OK=0
  fi
fi
MATCH=1
"$PY" "$PEERS" compare "$WORK" || MATCH=0
echo "   almanac CLI stages (one run, ALMANAC_TIMINGS=1):"
sed 's/^/     /' "$WORK/sdk-stages.txt"

# --- training sets: timings --------------------------------------------------------
TIMES="$WORK/sdk-times.txt"
RUNLOG="$WORK/sdk-runs.log"
: >"$TIMES"
: >"$RUNLOG"
echo "== training set: $RUNS runs each (Feast: $([ "$FEAST_OK" = 1 ] && echo "$FEAST_RUNS" || echo 0)), interleaved"
for i in $(seq "$RUNS"); do
  /usr/bin/time -a -o "$TIMES" -f "cli %e %M" "${CLI[@]}" >/dev/null 2>>"$ERRLOG"
  /usr/bin/time -a -o "$TIMES" -f "almanac-sdk %e %M" "${SDK[@]}" >>"$RUNLOG" 2>>"$ERRLOG"
  /usr/bin/time -a -o "$TIMES" -f "duckdb %e %M" "${DUCK[@]}" >>"$RUNLOG" 2>>"$ERRLOG"
  if [ "$FEAST_OK" = 1 ] && [ "$i" -le "$FEAST_RUNS" ]; then
    if ! /usr/bin/time -a -o "$TIMES" -f "feast %e %M" "${FEAST[@]}" >>"$RUNLOG" 2>>"$FEAST_LOG"; then
      sed -i '$d' "$TIMES"   # a failed run's time is no figure
      echo "   Feast run $i failed; see $FEAST_LOG"
    fi
  fi
  echo "   round $i/$RUNS done"
done
"$PY" "$PEERS" summary "$TIMES" "$RUNLOG" "$LABELS"

# --- online ---------------------------------------------------------------------
ONLINE="$WORK/sdk-online"
FEAST_ONLINE="$WORK/sdk-feast-online"
IDS="$WORK/sdk-online-ids.json"
echo "== online: a fresh scale-1 demo repo (data ending now), materialized into both stores"
rm -rf "$ONLINE" "$WORK"/sdk-online-{almanac,feast}.json
"$BIN" init --demo --scale 1 "$ONLINE" >/dev/null
"$BIN" --repo "$ONLINE" apply >/dev/null
START_T=$(date -u -d '200 days ago' +%Y-%m-%dT%H:%M:%S)   # the demo data spans 181 days
END_T=$(date -u +%Y-%m-%dT%H:%M:%S)
/usr/bin/time -o "$WORK/sdk-mat-almanac.txt" -f "%e %M" \
  "$BIN" --repo "$ONLINE" materialize --start "${START_T}Z" --end "${END_T}Z" --views user_txn_stats,merchant_stats >/dev/null 2>>"$ERRLOG"
read -r MA_S MA_KB <"$WORK/sdk-mat-almanac.txt"
echo "   almanac materialize ($START_T .. $END_T UTC, 2 views): $MA_S s, peak RSS $((MA_KB / 1024)) MB"
FEAST_ONLINE_OK=0   # independent of the training-set part: a failure there does not skip this
if [ "${SKIP_FEAST:-0}" != 1 ]; then
  FEAST_ONLINE_OK=1
  if ! write_feast_repo "$FEAST_ONLINE" "$ONLINE/data"; then
    echo "   feast apply failed: Feast left out of the online part"; FEAST_ONLINE_OK=0
  elif ! (cd "$FEAST_ONLINE" && /usr/bin/time -o "$WORK/sdk-mat-feast.txt" -f "%e %M" \
            "$VENV/bin/feast" materialize "$START_T" "$END_T") >>"$FEAST_LOG" 2>&1; then
    echo "   feast materialize failed (see $FEAST_LOG): Feast left out of the online part"; FEAST_ONLINE_OK=0
  else
    read -r MF_S MF_KB < <(tail -n 1 "$WORK/sdk-mat-feast.txt")
    echo "   feast materialize (same range, DuckDB offline store -> SQLite): $MF_S s, peak RSS $((MF_KB / 1024)) MB"
  fi
fi
"$PY" "$PEERS" pick-ids "$ONLINE/data" "$IDS"
echo "   almanac: get_online_features in process ..."
"$PY" "$PEERS" online-almanac "$ONLINE" "$IDS" "$WORK/sdk-online-almanac.json" 2>>"$ERRLOG"
if [ "$FEAST_ONLINE_OK" = 1 ]; then
  echo "   feast: get_online_features in process ..."
  "$PY" "$PEERS" online-feast "$FEAST_ONLINE" "$IDS" "$WORK/sdk-online-feast.json" 2>>"$FEAST_LOG" \
    || { echo "   Feast's online run failed; see $FEAST_LOG"; tail -n 5 "$FEAST_LOG" | sed 's/^/     /'; }
fi
"$PY" "$PEERS" online-summary "$WORK/sdk-online-almanac.json" "$WORK/sdk-online-feast.json"

if [ "$MATCH" != 1 ]; then
  echo "python_sdk: the training sets differ (see the correctness section above): these timings compare different results" >&2
  exit 1
fi
