#!/usr/bin/env bash
# Streams on the demo repo (README, "Streams"): a card-event stream source
# on the machine's Redis (BROKER=nats: NATS JetStream), ingested by
# `almanac serve --ingest`; events published with `almanac publish` show up
# in /get-online-features within a second, in both a plain view and an
# aggregation view.
#
# usage: scripts/stream-demo.sh [REPO]     (default: a new temp folder)
# env:   BROKER=redis|nats, ALMANAC_BIN (default target/release/almanac, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
BROKER=${BROKER:-redis}
BIN=${ALMANAC_BIN:-$PWD/target/release/almanac}
[ -x "$BIN" ] || cargo build --release -p almanac-cli --quiet
REPO=${1:-$(mktemp -d)/demo}
"$BIN" init "$REPO" --demo --scale 0.01 >/dev/null
ID="demo_$$"
case "$BROKER" in
  nats) STREAM="{type: nats, url: \"nats://127.0.0.1:4222\", stream: CARD_EVENTS_$ID, subject: card.events.$ID}" ;;
  redis) STREAM="{type: redis, url: \"redis://127.0.0.1:6379/0\", key: \"card_events:$ID\"}" ;;
  *) echo "BROKER must be redis or nats" >&2; exit 2 ;;
esac

# The stream definitions, in a file of their own beside the demo's.
cat >"$REPO/streams.yaml" <<YAML
sources:
  - name: card_events
    path: data/card_events          # the folder ingested events are appended to
    timestamp_field: event_timestamp
  - name: card_stream
    batch_source: card_events
    stream: $STREAM
    event_id_field: txn_id
    allowed_lateness: 10m
feature_views:
  - name: last_card_event
    entities: [user]
    source: card_stream
    ttl: 1d
    schema:
      - {name: amount, dtype: float64}
      - {name: merchant_id, dtype: int64}
  - name: card_windows
    entities: [user]
    source: card_stream
    aggregations:
      - {function: count, window: 10m}
      - {column: amount, function: sum, window: 1h}
YAML
"$BIN" --repo "$REPO" apply >/dev/null
echo "== repo: $REPO (stream: $STREAM)"

"$BIN" --repo "$REPO" serve --port 0 --ingest >"$REPO/serve.out" 2>"$REPO/serve.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q "Serving on" "$REPO/serve.out" && break; sleep 0.1; done
ADDR=$(sed -n 's|Serving on http://||p' "$REPO/serve.out")
ask() {
  curl -s "http://$ADDR/get-online-features" -d '{"features": ["last_card_event:amount", "card_windows:count_10m", "card_windows:amount_sum_1h"], "entities": {"user_id": [42]}}' \
    | python3 -c 'import json,sys; r=json.load(sys.stdin)["results"]; print("  amount", r[1]["values"][0], r[1]["statuses"][0], "| count_10m", r[2]["values"][0], "| amount_sum_1h", r[3]["values"][0])'
}
echo "== before: user 42"
ask
now() { date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }
printf '{"txn_id": "d1", "user_id": 42, "event_timestamp": "%s", "amount": 12.5, "merchant_id": 7}\n{"txn_id": "d2", "user_id": 42, "event_timestamp": "%s", "amount": 30.0, "merchant_id": 9}\n{"txn_id": "d2", "user_id": 42, "event_timestamp": "%s", "amount": 30.0, "merchant_id": 9}\n' "$(now)" "$(now)" "$(now)" \
  | "$BIN" --repo "$REPO" publish card_stream
START=$(date +%s%N)
for _ in $(seq 1 200); do
  if curl -s "http://$ADDR/get-online-features" -d '{"features": ["card_windows:count_10m"], "entities": {"user_id": [42]}}' | grep -q '"values":\[2\]'; then break; fi
  sleep 0.005
done
echo "== after publishing 3 events (one a duplicate): servable after $(( ($(date +%s%N) - START) / 1000000 )) ms"
ask
echo "== ingest metrics"
curl -s "http://$ADDR/metrics" | grep -E '^almanac_stream_(events_total|newest_event)' | sed 's/^/  /'
echo "== the events are history too: $(ls "$REPO/data/card_events" | grep -c '^stream-') new Parquet file(s) in data/card_events"
