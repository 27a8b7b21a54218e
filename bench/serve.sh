#!/usr/bin/env bash
# Feature-server benchmark (issue 6): bounded wrk load on loopback against
# `almanac serve` (embedded store and Redis) and, in the same run, Feast's
# own Python feature server over the same data and Redis (bench/feast_peer.sh).
# Bodies: 1 entity x 2 views (5 features) and 100 entities x 2 views, at
# concurrency 1, 8 and 32. One JSON line per run (rps, p50/p99/p99.9 in ms),
# also appended to target/serve-bench/results.jsonl.
#
# usage: bench/serve.sh [SECONDS_PER_RUN]   (default 10)
#   env: SKIP_FEAST=1 to measure Almanac only (reuses the bodies of an earlier run)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
WORK=${BENCH_DIR:-/tmp/almanac-bench}/serve
BODIES=target/serve-bench
OUT=$BODIES/results.jsonl
mkdir -p "$WORK" "$BODIES"
cargo build --release -p almanac-cli --quiet
BIN="$PWD/target/release/almanac"

REPO="$WORK/demo"
if [ ! -f "$REPO/.almanac/registry.json" ]; then
  rm -rf "$REPO"
  "$BIN" init --demo "$REPO" >/dev/null   # scale 0.1, dates ending now
  "$BIN" --repo "$REPO" apply >/dev/null
fi
RED="$WORK/demo-redis"
rm -rf "$RED"; mkdir -p "$RED"; ln -s "$REPO/data" "$RED/data"; cp "$REPO"/*.yaml "$RED/"
sed -i '/^online:/d' "$RED/almanac.yaml"; echo 'online: {type: redis, url: "redis://127.0.0.1:6379/3"}' >> "$RED/almanac.yaml"
redis-cli -n 3 flushdb >/dev/null
"$BIN" --repo "$RED" apply >/dev/null
for r in "$REPO" "$RED"; do "$BIN" --repo "$r" materialize --start 2000-01-01T00:00:00Z --end now >/dev/null; done

if [ "${SKIP_FEAST:-0}" != 1 ]; then
  OUT="$OUT" BENCH_DIR="$BODIES" SECONDS_PER_RUN="$SECS" bash bench/feast_peer.sh "$REPO/data"
fi
[ -f "$BODIES/body_1x2.json" ] || { echo "no request bodies; run once without SKIP_FEAST" >&2; exit 1; }

PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
# embedded and redis: the defaults (one worker thread per core);
# embedded-workers1: `--workers 1`, which leaves a core to the load generator.
for store in embedded embedded-workers1 redis; do
  repo=$REPO; [ "$store" = redis ] && repo=$RED
  args=(); [ "$store" = embedded-workers1 ] && args=(--workers 1)
  log="$WORK/serve-$store.log"
  "$BIN" --repo "$repo" serve --port 0 "${args[@]}" > "$log" 2>/dev/null &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "Serving on" "$log" && break; sleep 0.1; done
  url=$(sed -n 's/^Serving on //p' "$log" | head -1)
  bash bench/serve_load.sh "$url" "$BODIES/body_1x2.json" 8 2 >/dev/null   # warm-up
  for body in 1x2 100x2; do
    for c in 1 8 32; do
      line=$(bash bench/serve_load.sh "$url" "$BODIES/body_$body.json" "$c" "$SECS")
      line=$(echo "$line" | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); d.update(engine='almanac', config='$store', body='$body', concurrency=$c); print(json.dumps(d))")
      echo "$line" | tee -a "$OUT"
    done
  done
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true   # one server at a time
done
