#!/usr/bin/env bash
# Historical-retrieval benchmark (issue 4): Almanac vs a hand-written DuckDB
# ASOF JOIN vs Polars join_asof on the reference dataset, whole process each,
# in the same run; the three outputs are cross-checked for equality first.
#
# usage: bench/historical.sh [SCALE] [RUNS]     (defaults: 1 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-1}
RUNS=${2:-3}
WORK=${BENCH_DIR:-/tmp/almanac-bench}
VENV="$WORK/venv"

cargo build --release -p almanac-cli --quiet
BIN="$PWD/target/release/almanac"
mkdir -p "$WORK"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet duckdb polars pyarrow
fi
REPO="$WORK/repo-$SCALE"
if [ ! -f "$REPO/.almanac/registry.json" ]; then
  rm -rf "$REPO"
  "$BIN" init --demo --scale "$SCALE" --reference-dates "$REPO" >/dev/null
  "$BIN" --repo "$REPO" apply >/dev/null
fi

almanac() { "$BIN" --repo "$REPO" historical --entities "$REPO/data/labels.parquet" --feature-service fraud_model_v1 --output "$1"; }
peer() { "$VENV/bin/python" bench/peers_historical.py "$1" "$REPO" "$2"; }

echo "== correctness: the three outputs must agree"
almanac "$WORK/almanac.parquet" >/dev/null
peer duckdb "$WORK/duckdb.parquet" 2>/dev/null
peer polars "$WORK/polars.parquet" 2>/dev/null
"$VENV/bin/python" - "$WORK" <<'PY'
import sys, polars as pl
w = sys.argv[1]
a = pl.read_parquet(f"{w}/almanac.parquet")
for peer in ["duckdb", "polars"]:
    b = pl.read_parquet(f"{w}/{peer}.parquet").select(a.columns)
    b = b.with_columns([pl.col(c).cast(a.schema[c]) for c in a.columns])
    same = a.equals(b, null_equal=True)
    print(f"almanac == {peer}: {same} ({a.height} rows)")
    if not same:
        diff = a.with_row_index().join(b.with_row_index(), on="index", suffix="_peer")
        for c in a.columns:
            n = diff.filter(pl.col(c).ne_missing(pl.col(f"{c}_peer"))).height
            if n: print(f"  {c}: {n} rows differ")
PY

measure() {  # name, command...
  local name=$1; shift
  for i in $(seq "$RUNS"); do
    /usr/bin/time -f "$name %e s %M KB" "$@" >/dev/null 2>>"$WORK/times.txt" || true
  done
}
: > "$WORK/times.txt"
echo "== timing: $RUNS runs each, whole process (wall seconds, peak RSS)"
measure almanac "$BIN" --repo "$REPO" historical --entities "$REPO/data/labels.parquet" --feature-service fraud_model_v1 --output "$WORK/almanac.parquet"
measure duckdb "$VENV/bin/python" bench/peers_historical.py duckdb "$REPO" "$WORK/duckdb.parquet"
measure polars "$VENV/bin/python" bench/peers_historical.py polars "$REPO" "$WORK/polars.parquet"
"$VENV/bin/python" - "$WORK/times.txt" <<'PY'
import sys, statistics, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 5 and parts[0] in ("almanac", "duckdb", "polars"):
        runs[parts[0]].append((float(parts[1]), int(parts[3]) / 1024))
for name in sorted(runs):
    t = sorted(r[0] for r in runs[name]); m = [r[1] for r in runs[name]]
    print(f"{name:<8} median {statistics.median(t):6.2f} s  (min {t[0]:.2f}, max {t[-1]:.2f})   peak RSS median {statistics.median(m):5.0f} MB")
PY
