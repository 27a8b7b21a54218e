#!/usr/bin/env bash
# Online-store benchmark (issue 5), on this machine's real services:
#  - materialization of the reference dataset at scale 1 (6.05M source rows,
#    110k entities), whole process, into the embedded store and into Redis:
#    source rows/s and peak RSS;
#  - the dense case (1M entities, one row each): records written/s;
#  - in-process online read latency (p50/p99/p99.9) for 1 entity x 2 views
#    and 100 entities x 2 views, embedded and Redis;
#  - side by side, redis-benchmark's own GET latency at one connection (the
#    floor any client can reach).
# Medians of RUNS runs. Redis database 2 is flushed before each Redis run.
#
# usage: bench/online.sh [RUNS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
WORK=${BENCH_DIR:-/tmp/almanac-bench}
REDIS_URL="redis://127.0.0.1:6379/2"
mkdir -p "$WORK"
cargo build --release -p almanac-cli -p almanac-bench --quiet
BIN="$PWD/target/release/almanac"
BENCH="$PWD/target/release/almanac-bench"
redis-cli -n 2 ping >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# A repo that shares another's data and definitions but has its own online
# store settings and registry.
sibling() { # SRC DST ONLINE_YAML
  rm -rf "$2"; mkdir -p "$2"
  ln -s "$1/data" "$2/data"
  cp "$1"/*.yaml "$2/"
  sed -i '/^online:/d' "$2/almanac.yaml"
  echo "$3" >> "$2/almanac.yaml"
  "$BIN" --repo "$2" apply >/dev/null
}

# time_materialize REPO LABEL RESET_CMD: median wall, rows/s, records/s, RSS.
time_materialize() {
  local repo=$1 label=$2 reset=$3 walls=() rss=() out
  for _ in $(seq "$RUNS"); do
    eval "$reset"
    out=$( { /usr/bin/time -f "%e %M" "$BIN" --repo "$repo" --json materialize --start 2026-01-01T00:00:00Z --end 2026-07-01T00:00:00Z > "$WORK/mat.json"; } 2>&1 | tail -1)
    walls+=("$(echo "$out" | cut -d' ' -f1)"); rss+=("$(echo "$out" | cut -d' ' -f2)")
  done
  local wall; wall=$(printf '%s\n' "${walls[@]}" | median)
  local mem; mem=$(printf '%s\n' "${rss[@]}" | median)
  local rows; rows=$(python3 -c "import json;print(sum(r['source_rows'] for r in json.load(open('$WORK/mat.json'))))")
  local recs; recs=$(python3 -c "import json;print(sum(r['written'] for r in json.load(open('$WORK/mat.json'))))")
  python3 -c "print(f'{\"$label\":<34} wall {$wall:6.2f} s   {$rows/$wall/1e6:5.2f} M source rows/s   {$recs/$wall/1e6:5.2f} M records/s   peak RSS {$mem/1024:6.0f} MB   ({$rows} rows, {$recs} records; runs: ${walls[*]})')"
}

REF="$WORK/repo-1"
if [ ! -f "$REF/.almanac/registry.json" ]; then
  rm -rf "$REF"
  "$BIN" init --demo --scale 1 --reference-dates "$REF" >/dev/null
  "$BIN" --repo "$REF" apply >/dev/null
fi
EMB="$WORK/online-embedded"; RED="$WORK/online-redis"
sibling "$REF" "$EMB" "online: {type: embedded, path: .almanac/online}"
sibling "$REF" "$RED" "online: {type: redis, url: \"$REDIS_URL\"}"

DENSE="$WORK/dense"
if [ ! -f "$DENSE/data/dense.parquet" ]; then "$BENCH" dense-repo "$DENSE" --entities 1000000 >/dev/null; fi
DEMB="$WORK/dense-embedded"; DRED="$WORK/dense-redis"
sibling "$DENSE" "$DEMB" "online: {type: embedded, path: .almanac/online}"
sibling "$DENSE" "$DRED" "online: {type: redis, url: \"$REDIS_URL\"}"

echo "== materialization (whole process, $RUNS runs, median)"
time_materialize "$EMB" "scale 1 -> embedded" "rm -rf '$EMB/.almanac/online'"
time_materialize "$RED" "scale 1 -> redis" "redis-cli -n 2 flushdb >/dev/null"
time_materialize "$DEMB" "dense 1M -> embedded" "rm -rf '$DEMB/.almanac/online'"
time_materialize "$DRED" "dense 1M -> redis" "redis-cli -n 2 flushdb >/dev/null"

echo "== online reads, in process (fraud_model_v1: 2 views, 4 features)"
"$BIN" --repo "$RED" materialize --start 2026-01-01T00:00:00Z --end 2026-07-01T00:00:00Z >/dev/null
echo "embedded: $("$BENCH" read-latency --repo "$EMB" --iterations 50000)"
echo "redis:    $("$BENCH" read-latency --repo "$RED" --iterations 20000)"

echo "== redis-benchmark GET, 1 connection, 100-byte values (the floor for any client)"
redis-benchmark -h 127.0.0.1 -p 6379 -t get -n 200000 -c 1 -d 100 -q --precision 3 2>/dev/null | tr "\r" "\n" | grep -a "per second" | tail -1 || true
redis-benchmark -h 127.0.0.1 -p 6379 -t get -n 200000 -c 1 -d 100 --precision 3 2>/dev/null | grep -A2 "latency summary" || true
