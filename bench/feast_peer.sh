#!/usr/bin/env bash
# Online-serving peer benchmark: Feast's own Python feature server
# (`feast serve`, Redis online store) under bounded wrk load on loopback, with
# the same HTTP API Almanac's server speaks (POST /get-online-features).
#
# usage: bench/feast_peer.sh DATA_DIR [REDIS_URL]
#   DATA_DIR   folder holding user_txn_stats.parquet and merchant_stats.parquet
#              (e.g. the data/ folder written by `almanac init DIR --demo`)
#   REDIS_URL  redis://HOST:PORT/DB on loopback; default redis://127.0.0.1:6379/15.
#              DB 0 is refused (other tests use it). The DB is FLUSHED first.
# env: OUT           append every result line (JSON) to this file too
#      SECONDS_PER_RUN  length of each measured run (default 10)
#      CONCURRENCY   space-separated connection counts (default "1 8 32")
#      CONFIGS       which server configurations (default "default best")
#      BENCH_DIR     where the request bodies are written (default
#                    target/serve-bench); reuse body_1x2.json / body_100x2.json
#                    there to load Almanac's server with identical requests
#      FEAST_VERSION feast version to install in target/feast-venv (default 0.67.0)
#      BEST_WORKERS  gunicorn workers for the "best" configuration (default 2)
#      WRK_LOG       wrk's full text output is appended here (default BENCH_DIR/wrk-feast.log)
#      KEEP=1        keep the temporary Feast repo and server logs
#
# What it does: creates (or reuses) the venv target/feast-venv with
# feast[redis]==FEAST_VERSION; writes an equivalent Feast repo into a temp
# folder (entities user/merchant, FileSources over the two files with
# event_timestamp / created_at, views user_txn_stats (ttl 3d) and
# merchant_stats (ttl 7d)); `feast apply`; `feast materialize` over the
# files' full event-time range; then for each configuration starts
# `feast serve` on a free 127.0.0.1 port, checks one response's shape (fails
# loudly if the materialized values are missing), warms up, and runs
# bench/serve_load.sh for each body (1x2: one user + one merchant, all 5
# features; 100x2: 100 users + 100 merchants) at each concurrency. One JSON
# line per run on stdout; progress on stderr. Servers are stopped on exit.
#
# Configurations:
#   default  `feast serve` as shipped: 1 gunicorn/uvicorn worker, access log on
#            (to a file), worker recycled every 1000(+<=50) requests, keep-alive 30 s,
#            registry refreshed every 60 s
#   best     --workers ${BEST_WORKERS:-2} --no-access-log --max-requests 0 --max-requests-jitter 0
#            --keep-alive-timeout 600 --registry_ttl_sec 3600
#            (max-requests 0 disables gunicorn's worker recycling)
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then sed -n '2,40p' "$0" >&2; exit 2; fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA_DIR=$(cd "$1" && pwd)
REDIS_URL=${2:-redis://127.0.0.1:6379/15}
SECS=${SECONDS_PER_RUN:-10}
CONCURRENCY=${CONCURRENCY:-1 8 32}
CONFIGS=${CONFIGS:-default best}
BENCH_DIR=${BENCH_DIR:-$ROOT/target/serve-bench}
FEAST_VERSION=${FEAST_VERSION:-0.67.0}
VENV=$ROOT/target/feast-venv
PY=$VENV/bin/python
export FEAST_USAGE=False PYTHONWARNINGS=ignore

log() { echo "feast_peer: $*" >&2; }
die() { echo "feast_peer: FAIL: $*" >&2; exit 1; }

for f in user_txn_stats.parquet merchant_stats.parquet; do
  [ -r "$DATA_DIR/$f" ] || die "$DATA_DIR/$f not found"
done
if [[ "$REDIS_URL" =~ ^redis://([^/:]+):([0-9]+)/([0-9]+)$ ]]; then
  REDIS_HOST=${BASH_REMATCH[1]} REDIS_PORT=${BASH_REMATCH[2]} REDIS_DB=${BASH_REMATCH[3]}
else
  die "REDIS_URL must look like redis://127.0.0.1:6379/15 (got '$REDIS_URL')"
fi
case "$REDIS_HOST" in 127.*|localhost) ;; *) die "Redis must be on loopback (got $REDIS_HOST)";; esac
[ "$REDIS_DB" != 0 ] || die "refusing Redis DB 0 (other tests use it); use e.g. /15"

# --- venv with a pinned Feast -------------------------------------------------
if [ ! -x "$PY" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('feast') != '$FEAST_VERSION')" 2>/dev/null; then
  log "pip install feast[redis]==$FEAST_VERSION"
  "$VENV/bin/pip" install --quiet "feast[redis]==$FEAST_VERSION" >&2
fi
FEAST_VER=$("$PY" -c "import importlib.metadata as m; print(m.version('feast'))")
log "feast $FEAST_VER (redis-py $("$PY" -c "import importlib.metadata as m; print(m.version('redis'))"), gunicorn $("$PY" -c "import importlib.metadata as m; print(m.version('gunicorn'))"), uvicorn $("$PY" -c "import importlib.metadata as m; print(m.version('uvicorn'))"))"

"$PY" - "$REDIS_HOST" "$REDIS_PORT" "$REDIS_DB" <<'EOF' || die "Redis at $REDIS_URL does not answer"
import sys, redis
r = redis.Redis(host=sys.argv[1], port=int(sys.argv[2]), db=int(sys.argv[3]), socket_timeout=5)
r.ping()
r.flushdb()   # only the benchmark's own DB (never 0, checked above)
EOF

# --- temp Feast repo --------------------------------------------------------------
WORK=$(mktemp -d /tmp/feast-peer.XXXXXX)
SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    # the server was started with setsid: its pid is its process group
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
cleanup() {
  stop_server
  if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

REPO=$WORK/repo
mkdir -p "$REPO" "$BENCH_DIR"
export WRK_LOG=${WRK_LOG:-$BENCH_DIR/wrk-feast.log}
cat >"$REPO/feature_store.yaml" <<EOF
project: almanac_bench
registry: $REPO/registry.db
provider: local
online_store:
  type: redis
  connection_string: "$REDIS_HOST:$REDIS_PORT,db=$REDIS_DB"
offline_store:
  type: file
entity_key_serialization_version: 3
EOF
cat >"$REPO/features.py" <<EOF
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)

user_txn_stats_source = FileSource(
    name="user_txn_stats_source",
    path="$DATA_DIR/user_txn_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created_at",
)
merchant_stats_source = FileSource(
    name="merchant_stats_source",
    path="$DATA_DIR/merchant_stats.parquet",
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
    source=user_txn_stats_source,
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
    source=merchant_stats_source,
    online=True,
)
EOF

# --- event-time range and request bodies (ids whose latest row is within TTL and non-null)
read -r START END < <("$PY" - "$DATA_DIR" "$BENCH_DIR" <<'EOF'
import json, sys
from datetime import timedelta
import pyarrow.parquet as pq

data, out = sys.argv[1], sys.argv[2]
feats = ["user_txn_stats:txn_count_7d", "user_txn_stats:txn_amount_avg_7d",
         "user_txn_stats:txn_amount_std_30d", "merchant_stats:merchant_fraud_rate_30d",
         "merchant_stats:merchant_txn_count_1d"]
def latest(name, key, ttl_days):
    df = pq.read_table(f"{data}/{name}.parquet").to_pandas()
    lo, hi = df.event_timestamp.min(), df.event_timestamp.max()
    last = df.sort_values(["event_timestamp", "created_at"]).groupby(key).tail(1)
    ok = last[(last.event_timestamp >= hi - timedelta(days=ttl_days)) & last.notna().all(axis=1)]
    if len(ok) < 100:
        sys.exit(f"{name}: fewer than 100 keys with a fresh, non-null latest row")
    return lo, hi, ok[key].sample(n=100, random_state=42).astype(int).tolist()
ulo, uhi, users = latest("user_txn_stats", "user_id", 3)
mlo, mhi, merchants = latest("merchant_stats", "merchant_id", 7)
for tag, n in (("1x2", 1), ("100x2", 100)):
    with open(f"{out}/body_{tag}.json", "w") as f:
        json.dump({"features": feats, "entities": {"user_id": users[:n], "merchant_id": merchants[:n]}}, f)
lo, hi = min(ulo, mlo), max(uhi, mhi)
fmt = lambda t: t.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S")
print(fmt(lo - timedelta(seconds=1)), fmt(hi + timedelta(seconds=1)))
EOF
) || die "could not read the parquet files"
log "event-time range $START .. $END (UTC); bodies in $BENCH_DIR/body_{1x2,100x2}.json"

log "feast apply"
(cd "$REPO" && "$VENV/bin/feast" apply) >"$WORK/apply.log" 2>&1 || { cat "$WORK/apply.log" >&2; die "feast apply"; }
log "feast materialize $START $END"
T0=$(date +%s)
(cd "$REPO" && "$VENV/bin/feast" materialize "$START" "$END") >"$WORK/materialize.log" 2>&1 \
  || { cat "$WORK/materialize.log" >&2; die "feast materialize"; }
log "materialized in $(( $(date +%s) - T0 )) s"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

check_response() {  # URL BODYFILE: every requested feature present, statuses PRESENT, values not all null
  "$PY" - "$1" "$2" <<'EOF'
import json, sys, urllib.request
url, path = sys.argv[1], sys.argv[2]
body = json.load(open(path))
req = urllib.request.Request(url + "/get-online-features", data=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
resp = json.load(urllib.request.urlopen(req, timeout=30))
names = resp["metadata"]["feature_names"]
n = len(body["entities"]["user_id"])
bad = []
for feat in body["features"]:
    short = feat.split(":")[1]
    if short not in names:
        bad.append(f"{short}: missing from metadata.feature_names {names}"); continue
    col = resp["results"][names.index(short)]
    vals, st = col["values"], col.get("statuses", [])
    if len(vals) != n:
        bad.append(f"{short}: {len(vals)} values for {n} entities")
    elif all(v is None for v in vals):
        bad.append(f"{short}: all values null (statuses {sorted(set(st))}) - materialization did not land?")
if bad:
    sys.exit("response shape check failed:\n  " + "\n  ".join(bad) + "\n" + json.dumps(resp)[:2000])
print(json.dumps({n_: resp["results"][i]["values"][:2] for i, n_ in enumerate(names)}))
EOF
}

tag_line() {  # LINE CONFIG BODY CONC VERSION ARGS LOADAVG -> JSON with the run's labels first
  "$PY" -c '
import json, sys
line, cfg, body, conc, ver, args, load = sys.argv[1:8]
d = {"engine": "feast", "engine_version": ver, "config": cfg, "body": body,
     "concurrency": int(conc), "server_args": args, "loadavg_1m_before": float(load)}
d.update(json.loads(line))
print(json.dumps(d))' "$@"
}

for CFG in $CONFIGS; do
  case "$CFG" in
    default) ARGS=() ;;
    best) ARGS=(--workers "${BEST_WORKERS:-2}" --no-access-log --max-requests 0 --max-requests-jitter 0
                --keep-alive-timeout 600 --registry_ttl_sec 3600) ;;
    *) die "unknown config $CFG" ;;
  esac
  PORT=$(free_port)
  URL=http://127.0.0.1:$PORT
  log "[$CFG] feast serve -h 127.0.0.1 -p $PORT ${ARGS[*]}"
  (cd "$REPO" && exec setsid "$VENV/bin/feast" serve -h 127.0.0.1 -p "$PORT" "${ARGS[@]}") \
    >"$WORK/serve-$CFG.log" 2>&1 &
  SERVER_PID=$!
  for i in $(seq 1 240); do
    curl -fsS -o /dev/null --max-time 2 "$URL/health" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 40 "$WORK/serve-$CFG.log" >&2; die "[$CFG] server exited"; }
    [ "$i" -lt 240 ] || { tail -n 40 "$WORK/serve-$CFG.log" >&2; die "[$CFG] server did not answer in 120 s"; }
    sleep 0.5
  done
  for B in 1x2 100x2; do
    SAMPLE=$(check_response "$URL" "$BENCH_DIR/body_$B.json") || die "[$CFG] body $B"
    log "[$CFG] body $B shape ok: $SAMPLE"
  done
  log "[$CFG] warm-up (3 s per body, 8 connections)"
  for B in 1x2 100x2; do "$ROOT/bench/serve_load.sh" "$URL" "$BENCH_DIR/body_$B.json" 8 3 >/dev/null; done
  for B in 1x2 100x2; do
    for C in $CONCURRENCY; do
      LOAD=$(cut -d' ' -f1 /proc/loadavg)
      LINE=$("$ROOT/bench/serve_load.sh" "$URL" "$BENCH_DIR/body_$B.json" "$C" "$SECS")
      LINE=$(tag_line "$LINE" "$CFG" "$B" "$C" "$FEAST_VER" "${ARGS[*]:-}" "$LOAD")
      echo "$LINE"
      if [ -n "${OUT:-}" ]; then echo "$LINE" >>"$OUT"; fi
    done
  done
  stop_server
done
log "done"
