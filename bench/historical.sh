#!/usr/bin/env bash
# Historical-retrieval benchmark (issue 4): Almanac vs a hand-written DuckDB
# ASOF LEFT JOIN vs a Polars join_asof pipeline on the reference dataset
# (DESIGN §8, fixed dates), whole process each (Parquet in, Parquet out), in
# the same run. At every scale the three outputs are first checked to be
# identical row by row, then each is timed. Prints wall time, labels/s and
# peak RSS (medians), plus Almanac's own stage timings.
#
# usage: bench/historical.sh [RUNS] [SCALE ...]     (defaults: 3 runs; scales 0.1 1 10)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
shift || true
if [ $# -gt 0 ]; then SCALES=("$@"); else SCALES=(0.1 1 10); fi
WORK=${BENCH_DIR:-/tmp/almanac-bench}
VENV="$WORK/venv"

cargo build --release -p almanac-cli --quiet
BIN="$PWD/target/release/almanac"
mkdir -p "$WORK"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet duckdb polars pyarrow
fi

for SCALE in "${SCALES[@]}"; do
  REPO="$WORK/repo-$SCALE"
  if [ ! -f "$REPO/.almanac/registry.json" ]; then
    rm -rf "$REPO"
    "$BIN" init --demo --scale "$SCALE" --reference-dates "$REPO" >/dev/null
    "$BIN" --repo "$REPO" apply >/dev/null
  fi
  LABELS="$REPO/data/labels.parquet"
  ALMANAC=("$BIN" --repo "$REPO" historical --entities "$LABELS" --feature-service fraud_model_v1 --output "$WORK/almanac.parquet")
  DUCKDB=("$VENV/bin/python" bench/peers_historical.py duckdb "$REPO" "$WORK/duckdb.parquet")
  POLARS=("$VENV/bin/python" bench/peers_historical.py polars "$REPO" "$WORK/polars.parquet")

  echo "== scale $SCALE: correctness (the three outputs must be identical)"
  ALMANAC_TIMINGS=1 "${ALMANAC[@]}" >/dev/null 2>"$WORK/stages.txt"
  "${DUCKDB[@]}" 2>/dev/null
  "${POLARS[@]}" 2>/dev/null
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
  echo "   almanac stages (one run):"; sed 's/^/     /' "$WORK/stages.txt"

  : > "$WORK/times.txt"
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "almanac %e %M" "${ALMANAC[@]}" >/dev/null 2>>"$WORK/times.txt"
    /usr/bin/time -f "duckdb %e %M" "${DUCKDB[@]}" >/dev/null 2>>"$WORK/times.txt"
    /usr/bin/time -f "polars %e %M" "${POLARS[@]}" >/dev/null 2>>"$WORK/times.txt"
  done
  echo "== scale $SCALE: $RUNS runs each, interleaved, whole process"
  "$VENV/bin/python" - "$WORK/times.txt" "$LABELS" <<'PY'
import sys, statistics, collections, pyarrow.parquet as pq
rows = pq.ParquetFile(sys.argv[2]).metadata.num_rows
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 3 and parts[0] in ("almanac", "duckdb", "polars"):
        runs[parts[0]].append((float(parts[1]), int(parts[2]) / 1024))
base = statistics.median(r[0] for r in runs["almanac"])
for name in ("almanac", "duckdb", "polars"):
    t = sorted(r[0] for r in runs[name]); m = statistics.median(r[1] for r in runs[name]); med = statistics.median(t)
    print(f"   {name:<8} {med:7.2f} s (min {t[0]:.2f}, max {t[-1]:.2f})  {rows / med / 1e6:6.2f} M labels/s  peak RSS {m:6.0f} MB  {med / base:4.2f}x almanac's time")
PY
done
