#!/usr/bin/env python3
# Venv (created by bench/stream.sh, not by this script):
#   python3 -m venv /tmp/almanac-bench/sdk-venv
#   /tmp/almanac-bench/sdk-venv/bin/pip install "feast[duckdb]==0.67.0" "pandas<3" pyarrow redis duckdb polars
# Run with that venv's python, e.g.
#   /tmp/almanac-bench/sdk-venv/bin/python bench/peers_stream.py --events EVENTS.jsonl --work DIR
"""Feast 0.67 peer for the streaming-ingestion benchmark (issue 17).

What is measured: a Feast user's stream job, written the way Feast documents
stream ingestion (a push source fed by the user's own consumer), reading the
same JSON events that Almanac ingests from a Redis stream:

    loop: XREADGROUP COUNT=--batch  ->  json.loads each message
          ->  pandas DataFrame (ts as datetime64[ns, UTC], amount float64)
          ->  store.push("txn_push", df, to=PushMode.ONLINE | ONLINE_AND_OFFLINE)
          ->  XACK the ids
    until the stream is drained.

Only that loop is timed (wall seconds, events/s). Loading the events into the
Redis stream, `feast apply`, opening the FeatureStore and the read-back check
are outside the timing. Peak RSS is the whole process (ru_maxrss); the RSS
reached before the loop is reported too, so the loop's own share can be seen.

Why this is a fair peer: the same events (same file, same --limit), the same
broker-side work (a consumer group, acked reads), micro-batches of 10,000
events by default with one push() per micro-batch (Feast's push API is
per-DataFrame; per-event push would be far slower and is not how a Feast user
would write a throughput job), Feast's default local online store (SQLite),
and the same end state checked afterwards: the latest amount/merchant per
user, read back with get_online_features for a random sample of users.

Feast semantics to keep in mind when reading `matched`: Feast's SQLite
online store upserts unconditionally (no event-timestamp comparison), so the
value left per user is the last one *pushed*, not the one with the latest
`ts`. On a file whose events are in ts order per user both agree; on late
(out-of-order) events they differ, and `matched_last_pushed` shows it.

ONLINE_AND_OFFLINE: Feast's file (dask) and duckdb offline stores append a
push by reading the whole Parquet file, concatenating and rewriting it, so
each push costs O(rows so far) and the loop is quadratic in the stream
length; the note in the JSON output says so. Measured on a 2-core host: the
offline write adds ~10% at 100k events and ~18% at 500k (1.3 s per 100k events
early on, ~1.8 s per 100k by 500k), with +60..130 MB peak RSS: quadratic, but
with a small constant at these sizes.

TTL: Feast 0.67 enforces a view's TTL on online reads only for pre-computed
feature-service vectors; get_online_features over SQLite returns values older
than the 30-day TTL as PRESENT. The check counts them as matches but the note
flags them; generate the events near the wall clock.

Output: progress on stderr; the last line of stdout is one JSON object:
{"events", "seconds", "events_per_s", "peak_rss_mb", "mode", "checked",
 "matched", "feast_version", "note", ...extra diagnostics}.
"""
import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("FEAST_USAGE", "False")  # no telemetry calls from inside the timed loop

COLUMNS = ["txn_id", "user_id", "ts", "amount", "merchant"]
SAMPLE_USERS = 200


def log(*args):
    print("peers_stream:", *args, file=sys.stderr, flush=True)


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KB


def parse_ts(s):
    # RFC 3339 ("...Z" or an offset); pandas parses the same strings in the loop.
    import pandas as pd

    return pd.Timestamp(s).tz_convert("UTC")


def read_lines(path, limit):
    """The first `limit` non-empty lines of the events file (all if None), stripped."""
    n = 0
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if limit is not None and n >= limit:
                return
            n += 1
            yield line


# --- the Feast repo ------------------------------------------------------------
def write_feast_repo(repo, offline_store):
    """A fresh Feast repo: entity `user`, a FileSource over a seeded Parquet file,
    PushSource `txn_push` over it, FeatureView `last_txn`; SQLite online store."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if repo.exists():
        shutil.rmtree(repo)
    (repo / "data").mkdir(parents=True)
    events_parquet = repo / "data" / "txn_events.parquet"
    # Seed rows so the file (and its schema) exist; user ids < 0 never occur in
    # the events and the old timestamps are outside the TTL anyway.
    seed_ts = datetime(2020, 1, 1, tzinfo=timezone.utc)
    schema = pa.schema(
        [
            ("txn_id", pa.string()),
            ("user_id", pa.int64()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("amount", pa.float64()),
            ("merchant", pa.string()),
        ]
    )
    seed = pa.table(
        {
            "txn_id": ["seed-1", "seed-2", "seed-3"],
            "user_id": [-1, -2, -3],
            "ts": [seed_ts, seed_ts, seed_ts],
            "amount": [1.0, 2.0, None],
            "merchant": ["m0", None, "m1"],
        },
        schema=schema,
    )
    pq.write_table(seed, events_parquet)

    (repo / "feature_store.yaml").write_text(
        f"""project: almanac_stream_bench
registry: {repo}/registry.db
provider: local
offline_store:
  type: {offline_store}
online_store:
  type: sqlite
  path: {repo}/online.db
entity_key_serialization_version: 3
"""
    )
    (repo / "features.py").write_text(
        f"""from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Float64, Int64, String

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)

txn_events = FileSource(
    name="txn_events",
    path="{events_parquet}",
    timestamp_field="ts",
)
txn_push = PushSource(name="txn_push", batch_source=txn_events)

last_txn = FeatureView(
    name="last_txn",
    entities=[user],
    ttl=timedelta(days=30),
    schema=[
        Field(name="user_id", dtype=Int64),
        Field(name="amount", dtype=Float64),
        Field(name="merchant", dtype=String),
    ],
    source=txn_push,
    online=True,
)
"""
    )
    feast_bin = Path(sys.executable).parent / "feast"
    cmd = [str(feast_bin), "apply"] if feast_bin.exists() else [sys.executable, "-m", "feast.cli.cli", "apply"]
    with open(repo / "apply.log", "wb") as out:
        rc = subprocess.run(cmd, cwd=repo, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        sys.stderr.write((repo / "apply.log").read_text())
        raise SystemExit(f"peers_stream: feast apply failed (rc {rc})")
    return events_parquet


# --- the broker ----------------------------------------------------------------
def load_stream(r, key, events, limit):
    """XADD every event (field `data` = the JSON line), pipelined; untimed.
    Returns (event count, the set of user ids)."""
    r.delete(key)
    users = set()
    n = 0
    pipe = r.pipeline(transaction=False)
    for line in read_lines(events, limit):
        pipe.xadd(key, {"data": line})
        # user ids for the sample; a full json.loads is not needed for that,
        # but it is the simplest honest way and it is untimed
        users.add(json.loads(line)["user_id"])
        n += 1
        if n % 10000 == 0:
            pipe.execute()
    pipe.execute()
    return n, users


def expected_for(events, limit, sample):
    """For the sampled users: the latest event by ts (ties: last in file order)
    and the last event in file order (= last pushed)."""
    latest, last = {}, {}
    for line in read_lines(events, limit):
        ev = json.loads(line)
        u = ev["user_id"]
        if u not in sample:
            continue
        t = parse_ts(ev["ts"])
        if u not in latest or t >= latest[u][0]:
            latest[u] = (t, ev.get("amount"), ev.get("merchant"))
        last[u] = (t, ev.get("amount"), ev.get("merchant"))
    return latest, last


# --- the timed consumer ------------------------------------------------------------
def consume(r, key, group, store, batch, push_mode):
    """The Feast user's stream job. Returns (events pushed, wall seconds, pushes)."""
    import pandas as pd

    consumer = "feast-consumer-1"
    n = pushes = 0
    t0 = time.perf_counter()
    while True:
        resp = r.xreadgroup(group, consumer, {key: ">"}, count=batch)
        if not resp or not resp[0][1]:
            break
        msgs = resp[0][1]
        ids = [mid for mid, _ in msgs]
        rows = [json.loads(fields[b"data"]) for _, fields in msgs]
        df = pd.DataFrame.from_records(rows, columns=COLUMNS)
        df["user_id"] = df["user_id"].astype("int64")
        df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
        # a batch whose amounts are all whole numbers would otherwise be int64
        df["amount"] = df["amount"].astype("float64")
        store.push("txn_push", df, to=push_mode)
        r.xack(key, group, *ids)
        n += len(msgs)
        pushes += 1
        if pushes % 10 == 0:
            log(f"  {n} events pushed, {time.perf_counter() - t0:.1f} s")
    return n, time.perf_counter() - t0, pushes


def same_value(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return float(a) == float(b)
    return a == b


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", required=True, help="JSON-lines events file")
    ap.add_argument("--limit", type=int, default=None, help="use the first N events (default all)")
    ap.add_argument("--work", required=True, help="scratch folder (feast_repo/ is recreated in it)")
    ap.add_argument("--batch", type=int, default=10000, help="micro-batch size: XREADGROUP COUNT and rows per push")
    ap.add_argument("--mode", choices=["online", "online_and_offline"], default="online")
    ap.add_argument("--offline-store", choices=["file", "duckdb"], default="file",
                    help="Feast offline store behind the FileSource (only written in online_and_offline)")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--redis-key", default=f"feastbench:{os.getpid()}")
    ap.add_argument("--seed", type=int, default=17, help="seed of the user sample")
    args = ap.parse_args()

    import importlib.metadata

    import pyarrow.parquet as pq
    import redis
    from feast import FeatureStore
    from feast.data_source import PushMode

    feast_version = importlib.metadata.version("feast")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    repo = work / "feast_repo"

    log(f"feast {feast_version}: writing and applying {repo} (offline store: {args.offline_store})")
    events_parquet = write_feast_repo(repo, args.offline_store)
    store = FeatureStore(repo_path=str(repo))
    push_mode = PushMode.ONLINE if args.mode == "online" else PushMode.ONLINE_AND_OFFLINE

    r = redis.Redis.from_url(args.redis_url)
    key, group = args.redis_key, "feastbench"
    try:
        t = time.perf_counter()
        n_loaded, users = load_stream(r, key, args.events, args.limit)
        log(f"loaded {n_loaded} events ({len(users)} users) into Redis stream {key} in {time.perf_counter() - t:.1f} s")
        r.xgroup_create(key, group, id="0", mkstream=True)

        rng = random.Random(args.seed)
        sample = set(rng.sample(sorted(users), min(SAMPLE_USERS, len(users))))
        del users
        latest, last = expected_for(args.events, args.limit, sample)

        # Warm the registry cache and the SQLite connection outside the timing, as a
        # long-running stream job would have (one get_online_features of an absent key).
        store.get_online_features(features=["last_txn:amount"], entity_rows=[{"user_id": -1}]).to_dict()
        rss_before = rss_mb()

        log(f"consuming: batch {args.batch}, push to {push_mode.name}")
        n, seconds, pushes = consume(r, key, group, store, args.batch, push_mode)
        peak = rss_mb()
        pending = r.xpending(key, group)["pending"]
        log(f"done: {n} events in {seconds:.2f} s ({n / seconds:,.0f} events/s), {pushes} pushes, "
            f"peak RSS {peak:.0f} MB, {pending} unacked")
    finally:
        r.delete(key)

    # --- correctness spot check (untimed) ---
    ids = sorted(sample)
    got = {"amount": [], "merchant": []}
    if ids:
        got = store.get_online_features(
            features=["last_txn:amount", "last_txn:merchant"],
            entity_rows=[{"user_id": u} for u in ids],
        ).to_dict()
    matched = matched_last = 0
    mismatches = []
    for i, u in enumerate(ids):
        val = (got["amount"][i], got["merchant"][i])
        exp = latest[u][1:]
        if same_value(val[0], exp[0]) and same_value(val[1], exp[1]):
            matched += 1
        elif len(mismatches) < 5:
            mismatches.append({"user_id": u, "got": list(val), "expected": list(exp)})
        if same_value(val[0], last[u][1]) and same_value(val[1], last[u][2]):
            matched_last += 1
    log(f"check: {matched}/{len(ids)} users match the latest event by ts, "
        f"{matched_last}/{len(ids)} the last event pushed")
    for m in mismatches:
        log(f"  mismatch: {m}")

    notes = []
    if args.mode == "online_and_offline":
        offline_rows = pq.ParquetFile(events_parquet).metadata.num_rows - 3  # minus the seed rows
        notes.append(
            f"offline store '{args.offline_store}': each push reads, concatenates and rewrites the whole "
            f"Parquet file, so the loop is O(N^2/batch) in the stream length; "
            f"{offline_rows} of {n} events found in the offline file afterwards")
    else:
        offline_rows = None
        notes.append("online only (PushMode.ONLINE): SQLite online store")
    notes.append("Feast's SQLite online write is an unconditional upsert: last pushed wins, not latest ts")
    # Feast 0.67 checks TTLs on read only for pre-computed feature-service vectors;
    # a plain get_online_features over SQLite returns expired values as PRESENT.
    now = datetime.now(timezone.utc)
    expired = sum(1 for u in ids if (now - latest[u][0]).total_seconds() > 30 * 86400)
    if expired:
        notes.append(f"{expired} sampled users' latest events are older than the 30-day TTL by the wall clock; "
                     f"Feast's SQLite read still returns them (no TTL check on this path), a TTL-enforcing "
                     f"store would not: generate the events near now")

    result = {
        "events": n,
        "seconds": round(seconds, 3),
        "events_per_s": round(n / seconds, 1) if seconds > 0 else None,
        "peak_rss_mb": round(peak, 1),
        "mode": args.mode,
        "checked": len(ids),
        "matched": matched,
        "feast_version": feast_version,
        "note": "; ".join(notes),
        "matched_last_pushed": matched_last,
        "rss_before_loop_mb": round(rss_before, 1),
        "batch": args.batch,
        "pushes": pushes,
        "offline_store": args.offline_store if args.mode == "online_and_offline" else None,
        "offline_rows": offline_rows,
        "unacked": pending,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
