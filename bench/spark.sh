#!/usr/bin/env bash
# Spark push-down benchmark: the point-in-time join of `almanac historical
# --feature-service fraud_model_v1` run inside a real local Spark (local[2],
# pyspark from scripts/spark-venv.sh on the machine's Java 17), on the same
# Parquet files in the same run, by
#   almanac-spark     Almanac with its Spark offline store (the planner's Spark SQL)
#   spark-sql         a hand-written Spark SQL point-in-time query (bench/peers_spark.py)
#   almanac-embedded  Almanac's embedded engine, to say when pushdown pays
# Outputs are first checked to be identical row for row, then each is timed
# RUNS times, interleaved. Whole process each, plus Spark's startup and the
# query time reported apart (Almanac's from ALMANAC_TIMINGS, the peer's own).
#
# usage: bench/spark.sh [RUNS] [SCALE ...]     (defaults: 3 runs; scale 0.1)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
shift || true
if [ $# -gt 0 ]; then SCALES=("$@"); else SCALES=(0.1); fi
WORK=${BENCH_DIR:-/tmp/almanac-bench}
PY=$(bash scripts/spark-venv.sh | tail -n 1)
CMP="$WORK/venv-pushdown/bin/python"
[ -x "$CMP" ] || { python3 -m venv "$WORK/venv-pushdown"; "$CMP" -m pip install --quiet pyarrow; }

cargo build --release -p almanac-cli --quiet
BIN="$PWD/target/release/almanac"
mkdir -p "$WORK"
for SCALE in "${SCALES[@]}"; do
  REPO="$WORK/repo-$SCALE"
  SPARKREPO="$WORK/repo-$SCALE-spark"
  OUT="$WORK/spark-$SCALE"
  LABELS="$REPO/data/labels.parquet"
  mkdir -p "$OUT"
  if [ ! -f "$REPO/.almanac/registry.json" ]; then
    rm -rf "$REPO"
    "$BIN" init --demo --scale "$SCALE" --reference-dates "$REPO" >/dev/null
    "$BIN" --repo "$REPO" apply >/dev/null
  fi
  # The same definitions and files, the offline store on Spark.
  rm -rf "$SPARKREPO"; mkdir -p "$SPARKREPO"
  cp "$REPO/features.yaml" "$SPARKREPO/"
  ln -s "$REPO/data" "$SPARKREPO/data"
  { cat "$REPO/almanac.yaml"; printf 'offline: {type: spark, master: "local[2]", python: "%s"}\n' "$PY"; } > "$SPARKREPO/almanac.yaml"
  "$BIN" --repo "$SPARKREPO" apply >/dev/null

  ALMANAC_SPARK=("$BIN" --repo "$SPARKREPO" historical --entities "$LABELS" --feature-service fraud_model_v1 --output "$OUT/almanac-spark.parquet")
  ALMANAC_EMB=("$BIN" --repo "$REPO" historical --entities "$LABELS" --feature-service fraud_model_v1 --output "$OUT/almanac-embedded.parquet")
  PEER=("$PY" bench/peers_spark.py "$REPO" "$OUT/spark-sql.parquet")

  echo "== scale $SCALE: correctness (every output must equal almanac-spark's)"
  ALMANAC_TIMINGS=1 "${ALMANAC_SPARK[@]}" >/dev/null 2>"$OUT/stages-spark.txt"
  "${ALMANAC_EMB[@]}" >/dev/null
  "${PEER[@]}" 2>"$OUT/peer.log" >/dev/null
  for OTHER in almanac-embedded spark-sql; do
    if "$CMP" bench/peers_pushdown.py compare "$OUT/almanac-spark.parquet" "$OUT/$OTHER.parquet" >"$OUT/compare-$OTHER.txt"; then
      echo "   almanac-spark == $OTHER: $(tail -1 "$OUT/compare-$OTHER.txt")"
    else
      echo "   almanac-spark != $OTHER: MISMATCH"; sed 's/^/     /' "$OUT/compare-$OTHER.txt"
    fi
  done
  : > "$OUT/times.txt"
  for _ in $(seq "$RUNS"); do
    ALMANAC_TIMINGS=1 /usr/bin/time -f "almanac-spark %e %M" "${ALMANAC_SPARK[@]}" >/dev/null 2>>"$OUT/times.txt"
    /usr/bin/time -f "spark-sql %e %M" "${PEER[@]}" >/dev/null 2>>"$OUT/times.txt"
    /usr/bin/time -f "almanac-embedded %e %M" "${ALMANAC_EMB[@]}" >/dev/null 2>>"$OUT/times.txt"
  done
  echo "== scale $SCALE: $RUNS runs each, interleaved (startup = JVM + Spark session; query = the join, written and read back)"
  "$CMP" - "$OUT/times.txt" <<'PY'
import sys, statistics, collections
runs = collections.defaultdict(list); startup = collections.defaultdict(list); query = collections.defaultdict(list)
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 3 and p[0] in ("almanac-spark", "spark-sql", "almanac-embedded"):
        runs[p[0]].append(float(p[1]))
    elif line.startswith("spark: start driver and session"):
        startup["almanac-spark"].append(float(p[-2]))
    elif line.startswith("spark: query + write result") or line.startswith("spark: read result"):
        query["almanac-spark"].append(float(p[-2]))
    elif line.startswith("spark startup"):
        startup["spark-sql"].append(float(p[2]))
    elif line.startswith("spark query"):
        query["spark-sql"].append(float(p[2]))
for name in ("almanac-spark", "spark-sql", "almanac-embedded"):
    t = sorted(runs[name]); s = startup.get(name); q = query.get(name)
    extra = f"  startup {statistics.median(s):6.2f} s  query {sum(q) / len(s):6.2f} s" if s and q else ""
    print(f"   {name:<17} {statistics.median(t):8.2f} s whole process (min {t[0]:.2f}){extra}")
PY
done
