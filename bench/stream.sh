#!/usr/bin/env bash
# Streaming ingestion benchmark (issue 17), on the machine's NATS JetStream
# (4222) and Redis (6379).
#
# Dataset: EVENTS JSON events for USERS users over the 7 days before now,
# in time order with +-5 minutes of jitter (inside the 1h allowed
# lateness), unique ids. The repo has a stream source over a batch folder,
# a plain view (amount, merchant: latest per user) and an aggregation view
# (count 1h/24h/7d, sum and mean of amount 7d, max 30d, distinct merchants
# 7d), both online: every event updates both stores.
#
#   1. Sustained ingest, per broker, RUNS times: the events are published
#      first (untimed), then `almanac ingest --until-idle` is timed as a
#      whole process (start-up, broker reads, decode, dedupe, Parquet files,
#      online writes, acks) with its peak RSS; events/s = EVENTS / wall.
#   2. Event-to-servable latency at 10,000 events/s, per broker:
#      `almanac serve --ingest` and `almanac-bench stream-latency` (a paced
#      publisher plus a probe every 100 ms polled over HTTP until servable).
#   3. The peer: a Feast 0.67 push loop (a Python consumer on a Redis stream
#      calling store.push per 10,000-event micro-batch, SQLite online store),
#      bench/peers_stream.py, on the first FEAST_EVENTS of the same events.
#
# usage: bench/stream.sh [RUNS] [EVENTS USERS]   (defaults: 3; 1000000 100000)
# env:   BENCH_DIR (default /tmp/almanac-bench), FEAST_EVENTS (default 200000),
#        SKIP_FEAST=1, LATENCY_SECONDS (default 20), BATCH_DELAY (serve --batch-delay in part 2, default 20ms)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
EVENTS=${2:-1000000}
USERS=${3:-100000}
FEAST_EVENTS=${FEAST_EVENTS:-200000}
LATENCY_SECONDS=${LATENCY_SECONDS:-20}
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

EVENTS_FILE="$WORK/stream-events-$EVENTS-$USERS.jsonl"
if [ ! -f "$EVENTS_FILE" ]; then
  echo "== generating $EVENTS events for $USERS users"
  "$PY" - "$EVENTS_FILE" "$EVENTS" "$USERS" <<'PY'
import datetime as dt, random, sys
path, n, users = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(17)
end = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
start = end - dt.timedelta(days=7)
span = (end - start).total_seconds()
with open(path, "w") as f:
    for i in range(n):
        t = start + dt.timedelta(seconds=span * i / n + rng.uniform(-300, 300))
        t = min(t, end)
        f.write('{"txn_id": "e%d", "user_id": %d, "ts": "%s", "amount": %.2f, "merchant": "m%d"}\n'
                % (i, rng.randrange(users), t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), rng.uniform(1, 500), rng.randrange(5000)))
PY
fi

# write_repo DIR BROKER_YAML: the repo, its seed file, applied.
write_repo() {
  rm -rf "$1"; mkdir -p "$1/data/txns"
  echo "project: streambench" >"$1/almanac.yaml"
  cat >"$1/features.yaml" <<YAML
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: txns
    path: data/txns
    timestamp_field: ts
  - name: txn_stream
    batch_source: txns
    stream: $2
    event_id_field: txn_id
    allowed_lateness: 1h
feature_views:
  - name: last_txn
    entities: [user]
    source: txn_stream
    ttl: 30d
    schema:
      - {name: amount, dtype: float64}
      - {name: merchant, dtype: string}
  - name: txn_windows
    entities: [user]
    source: txn_stream
    aggregations:
      - {function: count, window: 1h}
      - {function: count, window: 24h}
      - {function: count, window: 7d}
      - {column: amount, function: sum, window: 7d}
      - {column: amount, function: mean, window: 7d}
      - {column: amount, function: max, window: 30d}
      - {column: merchant, function: approx_count_distinct, window: 7d}
YAML
  "$PY" - "$1/data/txns/seed.parquet" <<'PY'
import sys, pyarrow as pa, pyarrow.parquet as pq
pq.write_table(pa.table({"txn_id": pa.array([], pa.string()), "user_id": pa.array([], pa.int64()),
    "ts": pa.array([], pa.timestamp("us", tz="UTC")), "amount": pa.array([], pa.float64()),
    "merchant": pa.array([], pa.string())}), sys.argv[1])
PY
  "$BIN" --repo "$1" apply >/dev/null
}

broker_yaml() { # KIND UNIQUE
  case "$1" in
    nats) echo "{type: nats, url: \"nats://127.0.0.1:4222\", stream: BENCH_$2, subject: bench.$2}" ;;
    redis) echo "{type: redis, url: \"redis://127.0.0.1:6379/0\", key: \"bench:$2\"}" ;;
  esac
}

echo
echo "== 1. sustained ingest: $EVENTS events, $USERS users, plain + aggregation views, both stores"
for kind in nats redis; do
  for run in $(seq 1 "$RUNS"); do
    REPO="$WORK/stream-$kind"
    write_repo "$REPO" "$(broker_yaml "$kind" "$$_$run")"
    "$BIN" --repo "$REPO" publish txn_stream --file "$EVENTS_FILE" >/dev/null
    /usr/bin/time -f "%e %M" -o "$WORK/stream-time" "$BIN" --repo "$REPO" ingest --until-idle --json >"$WORK/stream-summary.json"
    read -r wall rss <"$WORK/stream-time"
    files=$(ls "$REPO/data/txns" | grep -c '^stream-' || true)
    "$PY" - "$WORK/stream-summary.json" "$wall" "$rss" "$kind" "$run" "$EVENTS" "$files" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))[0]
wall, rss, kind, run, events, files = float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]), sys.argv[7]
assert s["ingested"] == events, s
print(f"{kind:5} run {run}: {events / wall:>9,.0f} events/s  wall {wall:6.2f} s  peak RSS {rss / 1024:6.0f} MB  "
      f"ingested {s['ingested']:,}  dup {s['duplicates']}  late {s['late']}  rejected {s['rejected']}  batches {s['batches']}  files {files}")
PY
    state_bytes=$(du -sb "$REPO/.almanac/online" | cut -f1)
    echo "      online store on disk: $((state_bytes / 1024 / 1024)) MB; history: $(du -sm "$REPO/data/txns" | cut -f1) MB"
    "$BENCH" stream-delete --repo "$REPO" --source txn_stream
  done
done

echo
echo "== 2. event-to-servable latency at 10,000 events/s ($LATENCY_SECONDS s, a probe every 100 ms)"
for kind in nats redis; do
  REPO="$WORK/stream-latency-$kind"
  write_repo "$REPO" "$(broker_yaml "$kind" "lat_$$")"
  "$BIN" --repo "$REPO" serve --port 0 --ingest --batch-delay "${BATCH_DELAY:-20ms}" >"$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVER=$!
  for _ in $(seq 1 100); do grep -q "Serving on" "$WORK/serve.out" && break; sleep 0.1; done
  ADDR=$(sed -n 's|Serving on http://||p' "$WORK/serve.out")
  RESULT=$("$BENCH" stream-latency --repo "$REPO" --source txn_stream --server "$ADDR" --rate 10000 --seconds "$LATENCY_SECONDS")
  RSS=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$SERVER/status")
  INTERNAL=$(curl -s "http://$ADDR/metrics" | grep -E "^almanac_stream_event_to_servable_seconds_(bucket\{.*le=\"0.1\"|count)" | awk "{print \$2}" | paste -sd/)
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
  echo "$kind: $RESULT  server peak RSS ${RSS} MB  (server histogram: events servable within 100 ms / all = $INTERNAL)"
  "$BENCH" stream-delete --repo "$REPO" --source txn_stream
done

if [ "${SKIP_FEAST:-0}" != 1 ]; then
  echo
  echo "== 3. peer: Feast 0.67 push loop on the first $FEAST_EVENTS events (Redis stream, store.push per 10,000)"
  FEAST_VENV="$WORK/sdk-venv"
  if ! "$FEAST_VENV/bin/python" -c "import feast, redis" 2>/dev/null; then
    python3 -m venv "$FEAST_VENV"
    "$FEAST_VENV/bin/pip" install --quiet "feast[duckdb]==0.67.0" "pandas<3" pyarrow redis duckdb polars
  fi
  for mode in online online_and_offline; do
    "$FEAST_VENV/bin/python" bench/peers_stream.py --events "$EVENTS_FILE" --limit "$FEAST_EVENTS" --mode "$mode" --work "$WORK/feast-stream" 2>"$WORK/feast-stream.log" | tail -1
  done
fi
