#!/usr/bin/env bash
# On-demand view benchmark (issue 13), three figures, each a pair measured in
# the same run (without and with the demo's `txn_ratios`: 2 expressions over
# `user_txn_stats` and the request's `amount`), runs alternated:
#   1. in-process read, 1 entity x 2 views: p50/p99 (almanac-bench read-latency)
#   2. HTTP, c = 8, 1 entity x 2 views (the same 4 features): requests/s
#      (bench/serve_load.sh) with the on-demand view, against the same
#      request without its two features, and against the body without the
#      request field `amount` too; three bodies alternated
#   3. offline, the scale-1 training set (1M labels): whole-process wall time
#      of `almanac historical` without / with `txn_ratios`, and the peer
#      Feast runs: pandas applying the same expressions to the joined frame
#      (`df["amount"] / df["txn_amount_avg_7d"]` ...), in-process, after the
#      join; its values are checked equal to Almanac's first.
#
# usage: bench/on_demand.sh [RUNS]      (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
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
"$VENV/bin/python" -c "import pandas" 2>/dev/null || "$VENV/bin/pip" install --quiet pandas

# The demo repo at scale 0.1, materialized (online figures).
ONLINE_REPO="$WORK/od-online"
if [ ! -f "$ONLINE_REPO/.almanac/registry.json" ]; then
  rm -rf "$ONLINE_REPO"
  "$BIN" init --demo --scale 0.1 "$ONLINE_REPO" >/dev/null
  "$BIN" --repo "$ONLINE_REPO" apply >/dev/null
  "$BIN" --repo "$ONLINE_REPO" materialize-incremental --end now >/dev/null
fi

echo "== 1. in-process read, 1 entity x 2 views (50k reads per run)"
for i in $(seq "$RUNS"); do
  printf 'plain     '; "$BENCH" read-latency --repo "$ONLINE_REPO" --iterations 50000 | tr -d '\n'; echo
  printf 'on-demand '; "$BENCH" read-latency --repo "$ONLINE_REPO" --iterations 50000 --on-demand | tr -d '\n'; echo
done

echo "== 2. HTTP, c = 8, 1 entity x 2 views, ${RUNS} runs of 8 s each"
PORT=6611
"$BIN" --repo "$ONLINE_REPO" serve --port "$PORT" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
USER_ID=$("$VENV/bin/python" -c "import pyarrow.parquet as pq; print(pq.read_table('$ONLINE_REPO/data/labels.parquet', columns=['user_id']).column(0)[0])")
MERCHANT_ID=$("$VENV/bin/python" -c "import pyarrow.parquet as pq; print(pq.read_table('$ONLINE_REPO/data/labels.parquet', columns=['merchant_id']).column(0)[0])")
STORED_JSON='"user_txn_stats:txn_count_7d", "user_txn_stats:txn_amount_avg_7d", "merchant_stats:merchant_fraud_rate_30d", "merchant_stats:merchant_txn_count_1d"'
echo "{\"features\": [$STORED_JSON], \"entities\": {\"user_id\": [$USER_ID], \"merchant_id\": [$MERCHANT_ID]}}" >"$WORK/od-plain.json"
echo "{\"features\": [$STORED_JSON, \"txn_ratios:amount_to_avg_ratio\", \"txn_ratios:is_large\"], \"entities\": {\"user_id\": [$USER_ID], \"merchant_id\": [$MERCHANT_ID], \"amount\": [125.5]}}" >"$WORK/od-request.json"
# The same request without the on-demand view: the on-demand body minus its
# two features (the caller still sends `amount`, echoed like Feast echoes
# request data); `od-plain.json` above is the body without `amount` too.
echo "{\"features\": [$STORED_JSON], \"entities\": {\"user_id\": [$USER_ID], \"merchant_id\": [$MERCHANT_ID], \"amount\": [125.5]}}" >"$WORK/od-same.json"
curl -sf -X POST "http://127.0.0.1:$PORT/get-online-features" -d @"$WORK/od-request.json" | head -c 600; echo
: >"$WORK/od-http.txt"
for _ in $(seq "$RUNS"); do
  for body in plain same request; do
    line=$(bash bench/serve_load.sh "http://127.0.0.1:$PORT" "$WORK/od-$body.json" 8 8)
    printf '%-9s %s\n' "$body" "$line"
    echo "$body $line" >>"$WORK/od-http.txt"
  done
done
"$VENV/bin/python" - "$WORK/od-http.txt" <<'PY'
import sys, json, statistics, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, body = line.split(None, 1)
    runs[name].append(json.loads(body)["rps"])
on = runs["request"]
for base, label in (("same", "the same request without the on-demand features"), ("plain", "the body without `amount` either")):
    pairs = [o / b for o, b in zip(on, runs[base])]
    print(f"   on-demand {statistics.median(on):,.0f}/s vs {label} {statistics.median(runs[base]):,.0f}/s: "
          f"{100 * statistics.median(on) / statistics.median(runs[base]):.1f} % of medians (per-run pairs {min(pairs):.1%}-{max(pairs):.1%}, median pair {statistics.median(pairs):.1%})")
PY
kill $SERVER 2>/dev/null || true
trap - EXIT

echo "== 3. offline, scale-1 training set (1M labels), whole process"
REPO="$WORK/repo-1"
if [ ! -f "$REPO/.almanac/registry.json" ] || ! grep -q txn_ratios "$REPO"/*.yaml 2>/dev/null; then
  rm -rf "$REPO"
  "$BIN" init --demo --scale 1 --reference-dates "$REPO" >/dev/null
  "$BIN" --repo "$REPO" apply >/dev/null
fi
LABELS="$REPO/data/labels.parquet"
STORED="user_txn_stats:txn_count_7d,user_txn_stats:txn_amount_avg_7d,merchant_stats"
PLAIN=("$BIN" --repo "$REPO" historical --entities "$LABELS" --features "$STORED" --output "$WORK/od-plain.parquet")
WITH=("$BIN" --repo "$REPO" historical --entities "$LABELS" --features "$STORED,txn_ratios" --output "$WORK/od-with.parquet")
"${PLAIN[@]}" >/dev/null
"${WITH[@]}" >/dev/null
: >"$WORK/od-times.txt"
for _ in $(seq "$RUNS"); do
  /usr/bin/time -f "plain %e %M" "${PLAIN[@]}" >/dev/null 2>>"$WORK/od-times.txt"
  /usr/bin/time -f "with %e %M" "${WITH[@]}" >/dev/null 2>>"$WORK/od-times.txt"
done
"$VENV/bin/python" - "$WORK" "$RUNS" <<'PY'
import sys, statistics, collections, time
import numpy as np, pandas as pd, pyarrow.parquet as pq
work, runs = sys.argv[1], int(sys.argv[2])
times = collections.defaultdict(list)
for line in open(f"{work}/od-times.txt"):
    p = line.split()
    if len(p) == 3 and p[0] in ("plain", "with"):
        times[p[0]].append((float(p[1]), int(p[2]) / 1024))
plain = statistics.median(t for t, _ in times["plain"]); with_ = statistics.median(t for t, _ in times["with"])
for name in ("plain", "with"):
    t = sorted(x for x, _ in times[name]); m = statistics.median(r for _, r in times[name])
    print(f"   almanac {name:<6} {statistics.median(t):6.3f} s (min {t[0]:.3f}, max {t[-1]:.3f})  peak RSS {m:5.0f} MB")
print(f"   added by txn_ratios: {with_ - plain:+.3f} s = {100 * (with_ - plain) / plain:+.1f} % of the plain training set")

# The peer: the joined frame in pandas, the same two expressions as Feast's
# pandas on-demand view computes them, timed in-process (median of runs).
df = pq.read_table(f"{work}/od-plain.parquet").to_pandas()
def feast_style(df):
    out = pd.DataFrame()
    avg = df["txn_amount_avg_7d"]
    out["amount_to_avg_ratio"] = df["amount"] / avg.where(avg != 0)
    out["is_large"] = df["amount"] > 1000
    return out
samples = []
for _ in range(max(runs, 5)):
    started = time.perf_counter(); got = feast_style(df); samples.append(time.perf_counter() - started)
print(f"   pandas, the same expressions after the join (in-process, {len(df):,} rows): {statistics.median(samples) * 1000:.1f} ms median")
ours = pq.read_table(f"{work}/od-with.parquet", columns=["amount_to_avg_ratio", "is_large", "amount"]).to_pandas()
ratio_equal = np.array_equal(ours["amount_to_avg_ratio"].to_numpy(dtype=float, na_value=np.nan), got["amount_to_avg_ratio"].to_numpy(dtype=float, na_value=np.nan), equal_nan=True)
# pandas compares NaN/null as False where SQL gives null: compare where Almanac has a value.
mask = ours["is_large"].notna()
large_equal = (ours["is_large"][mask].astype(bool) == got["is_large"][mask]).all()
print(f"   values equal to pandas: ratio {ratio_equal}, is_large {large_equal} (null amount: Almanac null, pandas False)")
PY
