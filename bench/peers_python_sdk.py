"""The Python SDK benchmark (issue 15), one mode per process; driven by
bench/python_sdk.sh, which also times each process whole with /usr/bin/time.

Training sets: `fraud_model_v1` (user_txn_stats: txn_count_7d,
txn_amount_avg_7d; merchant_stats: merchant_fraud_rate_30d,
merchant_txn_count_1d) for the 1M labels of the scale-1 reference dataset,
from a pandas DataFrame to a pandas DataFrame. The labels are read into
pandas before the clock starts; the clock covers opening the store (or the
DuckDB connection), the retrieval and the conversion to pandas. Each
historical mode prints one `RESULT {json}` line on stdout and, given an
OUTPUT path (the correctness run), writes its DataFrame there (not timed).

usage: python peers_python_sdk.py MODE ARGS...
  almanac-sdk REPO [OUTPUT.parquet]             almanac.FeatureStore(REPO).get_historical_features(
                                                    entity_df=labels, feature_service="fraud_model_v1").to_pandas()
  feast REPO FEAST_REPO [OUTPUT.parquet]        feast.FeatureStore(FEAST_REPO).get_historical_features(
                                                    entity_df=labels, features=[...]).to_df()  (DuckDB offline store)
  duckdb REPO [OUTPUT.parquet]                  hand-written DuckDB from Python over the registered pandas labels
  compare WORK                                  sdk-{cli,almanac-sdk,duckdb,feast}.parquet in WORK: row by row
  summary TIMES RUNLOG LABELS                   medians, ratios and targets of the timed runs
  pick-ids DATA_DIR OUT.json                    100 users and 100 merchants whose latest row is fresh and non-null
  online-almanac REPO IDS.json OUT.json         in-process get_online_features latency (embedded store)
  online-feast FEAST_REPO IDS.json OUT.json     the same through Feast's SDK (SQLite online store)
  online-summary ALMANAC.json FEAST.json        the two side by side, with the target
  versions                                      package versions in this interpreter
env: ONLINE_TO_DICT=1 also times `.to_dict()` of each online response.
"""
import gc
import json
import math
import os
import statistics
import sys
import time

SERVICE = "fraud_model_v1"
REFS = [
    "user_txn_stats:txn_count_7d",
    "user_txn_stats:txn_amount_avg_7d",
    "merchant_stats:merchant_fraud_rate_30d",
    "merchant_stats:merchant_txn_count_1d",
]
FEATURES = [ref.split(":")[1] for ref in REFS]
# view, join key, TTL in days, the service's features of the view
VIEWS = [
    ("user_txn_stats", "user_id", 3, FEATURES[:2]),
    ("merchant_stats", "merchant_id", 7, FEATURES[2:]),
]


def read_labels(repo):
    import pandas as pd

    return pd.read_parquet(os.path.join(repo, "data", "labels.parquet"))


def report(mode, started, opened, finished, df, output):
    print("RESULT " + json.dumps({
        "mode": mode,
        "seconds": finished - started,
        "open_seconds": opened - started,
        "call_seconds": finished - opened,
        "rows": int(len(df)),
        "columns": [str(c) for c in df.columns],
    }), flush=True)
    print(f"{mode}: {finished - started:.3f} s in process (open {opened - started:.3f} s), {len(df)} rows", file=sys.stderr)
    if output:
        df.to_parquet(output, index=False)


# ---------------------------------------------------------------- training sets


def hist_almanac_sdk(repo, output=None):
    labels = read_labels(repo)
    import almanac

    started = time.perf_counter()
    store = almanac.FeatureStore(repo)
    opened = time.perf_counter()
    df = store.get_historical_features(entity_df=labels, feature_service=SERVICE).to_pandas()
    finished = time.perf_counter()
    report("almanac-sdk", started, opened, finished, df, output)


def hist_feast(repo, feast_repo, output=None):
    labels = read_labels(repo)
    from feast import FeatureStore

    started = time.perf_counter()
    store = FeatureStore(repo_path=feast_repo)
    opened = time.perf_counter()
    df = store.get_historical_features(entity_df=labels, features=REFS).to_df()
    finished = time.perf_counter()
    report("feast", started, opened, finished, df, output)


def sql_literal(text):
    return "'" + text.replace("'", "''") + "'"


# The same point-in-time join as `almanac historical`: equal (key, event
# time) rows deduplicated by the latest created_at, the latest row at or
# before the label's time (ASOF), the TTL applied after the match with an
# inclusive lower bound (3d users, 7d merchants), the labels' order.
DUCKDB_SQL = """
WITH u AS (
  SELECT user_id, event_timestamp AS u_ts, txn_count_7d, txn_amount_avg_7d
  FROM read_parquet({users})
  QUALIFY row_number() OVER (PARTITION BY user_id, event_timestamp ORDER BY created_at DESC) = 1),
m AS (
  SELECT merchant_id, event_timestamp AS m_ts, merchant_fraud_rate_30d, merchant_txn_count_1d
  FROM read_parquet({merchants})
  QUALIFY row_number() OVER (PARTITION BY merchant_id, event_timestamp ORDER BY created_at DESC) = 1),
lu AS (
  SELECT e.*, u.u_ts, u.txn_count_7d, u.txn_amount_avg_7d
  FROM entities e ASOF LEFT JOIN u ON e.user_id = u.user_id AND e.event_timestamp >= u.u_ts),
lum AS (
  SELECT lu.*, m.m_ts, m.merchant_fraud_rate_30d, m.merchant_txn_count_1d
  FROM lu ASOF LEFT JOIN m ON lu.merchant_id = m.merchant_id AND lu.event_timestamp >= m.m_ts)
SELECT * EXCLUDE (_row, u_ts, m_ts, txn_count_7d, txn_amount_avg_7d, merchant_fraud_rate_30d, merchant_txn_count_1d),
  CASE WHEN u_ts >= event_timestamp - INTERVAL 3 DAY THEN txn_count_7d END AS txn_count_7d,
  CASE WHEN u_ts >= event_timestamp - INTERVAL 3 DAY THEN txn_amount_avg_7d END AS txn_amount_avg_7d,
  CASE WHEN m_ts >= event_timestamp - INTERVAL 7 DAY THEN merchant_fraud_rate_30d END AS merchant_fraud_rate_30d,
  CASE WHEN m_ts >= event_timestamp - INTERVAL 7 DAY THEN merchant_txn_count_1d END AS merchant_txn_count_1d
FROM lum
ORDER BY _row
"""


def hist_duckdb(repo, output=None):
    labels = read_labels(repo)
    import duckdb
    import numpy as np

    sql = DUCKDB_SQL.format(
        users=sql_literal(os.path.join(repo, "data", "user_txn_stats.parquet")),
        merchants=sql_literal(os.path.join(repo, "data", "merchant_stats.parquet")),
    )
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    opened = time.perf_counter()
    # The row number keeps the labels' order (ASOF joins do not).
    entities = labels.assign(_row=np.arange(len(labels), dtype=np.int64))
    con.register("entities", entities)
    df = con.sql(sql).df()
    finished = time.perf_counter()
    report("duckdb", started, opened, finished, df, output)


# ---------------------------------------------------------------- correctness


def aligned(ref, other, name):
    """`other` with ref's columns, order and dtypes, or (None, why)."""
    import polars as pl

    missing = [c for c in ref.columns if c not in other.columns]
    if missing:
        return None, f"{name} lacks columns {missing} (has {other.columns})"
    if other.height != ref.height:
        return None, f"{name} has {other.height} rows, the CLI {ref.height}"
    other = other.select(ref.columns)
    for c in ref.columns:
        if other.schema[c] != ref.schema[c]:
            try:
                other = other.with_columns(pl.col(c).cast(ref.schema[c]))
            except Exception as e:  # noqa: BLE001 - reported, not raised
                return None, f"{name}.{c} ({other.schema[c]}) does not cast to {ref.schema[c]}: {e}"
    return other, ""


def differing(ref, other):
    """{column: number of rows whose cells differ (null == null)}."""
    out = {}
    for c in ref.columns:
        n = int(ref[c].ne_missing(other[c]).sum())
        if n:
            out[c] = n
    return out


def compare(work):
    import polars as pl

    ref = pl.read_parquet(os.path.join(work, "sdk-cli.parquet"))
    print(f"   reference: `almanac historical --feature-service {SERVICE}` (CLI): {ref.height} rows x {ref.width} columns")
    ok = True
    for name in ("almanac-sdk", "duckdb"):
        path = os.path.join(work, f"sdk-{name}.parquet")
        other, why = aligned(ref, pl.read_parquet(path), name)
        if other is None:
            print(f"   {name} == CLI: False ({why})")
            ok = False
            continue
        same = ref.equals(other, null_equal=True)
        print(f"   {name} == CLI, row by row: {same}")
        if not same:
            ok = False
            for c, n in differing(ref, other).items():
                print(f"     {c}: {n} rows differ")

    path = os.path.join(work, "sdk-feast.parquet")
    if not os.path.exists(path):
        print("   feast: no output (its run failed; see the log); not compared")
    else:
        # Feast returns the rows in the join's order, not the labels': align
        # both on label_id (unique, 1..n) before comparing cell by cell.
        other, why = aligned(ref, pl.read_parquet(path), "feast")
        if other is None:
            print(f"   feast == CLI: not comparable ({why})")
        else:
            a, b = ref.sort("label_id"), other.sort("label_id")
            diffs = differing(a, b)
            if not diffs:
                print("   feast == CLI, after sorting both by label_id: True")
            else:
                cells = sum(diffs.values())
                print(f"   feast == CLI, after sorting both by label_id: False ({cells} differing cells of {a.height * a.width})")
                for c, n in diffs.items():
                    col_a, col_b = a[c], b[c]
                    only_cli = int((col_a.is_not_null() & col_b.is_null()).sum())
                    only_feast = int((col_a.is_null() & col_b.is_not_null()).sum())
                    print(f"     {c}: {n} rows differ ({only_cli} null only in Feast, {only_feast} null only in the CLI, "
                          f"{n - only_cli - only_feast} both non-null)")
                joined = a.join(b, on="label_id", suffix="_feast")
                first = next(iter(diffs))
                sample = joined.filter(pl.col(first).ne_missing(pl.col(f"{first}_feast"))).head(3)
                print("     first differing rows (CLI -> Feast):")
                for row in sample.iter_rows(named=True):
                    cells = ", ".join(f"{c} {row[c]} -> {row[c + '_feast']}" for c in diffs if c != "label_id")
                    print(f"       label_id {row['label_id']} (user {row['user_id']}, merchant {row['merchant_id']}, "
                          f"at {row['event_timestamp']}): {cells}")
                print("     (Feast's ibis join keeps every feature row with ts <= T and ts + ttl >= T, then the latest "
                      "by (ts, created_at); a difference here is Feast's, not a benchmark failure)")
    if not ok:
        print("   MISMATCH: the Almanac SDK or the DuckDB peer differs from the CLI")
    sys.exit(0 if ok else 1)


# ---------------------------------------------------------------- summary


def summary(times_path, runlog_path, labels_path):
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(labels_path).metadata.num_rows
    whole = {}
    for line in open(times_path):
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("cli", "almanac-sdk", "duckdb", "feast"):
            whole.setdefault(parts[0], []).append((float(parts[1]), int(parts[2]) / 1024))
    inproc = {}
    for line in open(runlog_path):
        if line.startswith("RESULT "):
            r = json.loads(line[len("RESULT "):])
            inproc.setdefault(r["mode"], []).append(r)

    def med(xs):
        return statistics.median(xs) if xs else None

    names = {"cli": "almanac CLI", "almanac-sdk": "almanac SDK", "duckdb": "DuckDB (Python)", "feast": "Feast 0.67"}
    print(f"   {'':<16} {'in process (median, min-max)':<34} {'open':>7} {'whole process':>14} {'peak RSS':>9}  runs")
    stats = {}
    for mode in ("cli", "almanac-sdk", "duckdb", "feast"):
        w = whole.get(mode, [])
        i = inproc.get(mode, [])
        if not w and not i:
            print(f"   {names[mode]:<16} (no runs)")
            continue
        t_in = sorted(r["seconds"] for r in i)
        m_in = med(t_in)
        m_open = med([r["open_seconds"] for r in i])
        m_whole = med([x[0] for x in w])
        m_rss = med([x[1] for x in w])
        stats[mode] = (m_in, m_whole)
        col_in = f"{m_in:7.2f} s ({t_in[0]:.2f}-{t_in[-1]:.2f})" if t_in else "      - (the whole process)"
        col_open = f"{m_open:5.2f} s" if m_open is not None else "      -"
        col_whole = f"{m_whole:7.2f} s" if m_whole is not None else "-"
        col_rss = f"{m_rss:6.0f} MB" if m_rss is not None else "-"
        print(f"   {names[mode]:<16} {col_in:<34} {col_open:>7} {col_whole:>14} {col_rss:>9}  {max(len(w), len(i))}")
    sdk = stats.get("almanac-sdk", (None, None))
    if sdk[0]:
        print(f"   almanac SDK: {rows / sdk[0] / 1e6:.2f} M labels/s in process")

    def ratio(a, b):
        return a / b if a and b else None

    def fmt(x):
        return f"{x:5.2f}x" if x is not None else "    -"

    def verdict(x, ok):
        return "-" if x is None else ("met" if ok(x) else "MISSED")

    print("   ratios (in process = the timed call inside Python; whole = the process under /usr/bin/time):")
    for peer, target in (("feast", 5.0), ("duckdb", 2.0)):
        if peer not in stats or not sdk[0]:
            print(f"   {names[peer]} / almanac SDK: no figures")
            continue
        r_in = ratio(stats[peer][0], sdk[0])
        r_whole = ratio(stats[peer][1], sdk[1])
        print(f"   {names[peer]:<16} / almanac SDK: in process {fmt(r_in)}, whole process {fmt(r_whole)}"
              f"   (target >= {target:.0f}x, in process: {verdict(r_in, lambda x: x >= target)})")
    if "cli" in stats and sdk[0]:
        cli_whole = stats["cli"][1]
        r_in = ratio(sdk[0], cli_whole)
        r_whole = ratio(sdk[1], cli_whole)
        print(f"   almanac SDK      / CLI:         SDK in process / CLI whole {fmt(r_in)}, SDK whole / CLI whole {fmt(r_whole)}"
              f"   (target <= 1.2x: in process {verdict(r_in, lambda x: x <= 1.2)}, whole {verdict(r_whole, lambda x: x <= 1.2)})")


# ---------------------------------------------------------------- online


def pick_ids(data_dir, out):
    """100 users and 100 merchants whose latest row (by event time, then
    created_at) is within the view's TTL of now, with an hour to spare, and
    has every requested feature non-null."""
    import pandas as pd

    now = pd.Timestamp.now(tz="UTC")
    picked = {}
    for view, key, ttl_days, feats in VIEWS:
        df = pd.read_parquet(os.path.join(data_dir, f"{view}.parquet"), columns=[key, "event_timestamp", "created_at", *feats])
        latest = df.sort_values([key, "event_timestamp", "created_at"]).drop_duplicates(key, keep="last")
        fresh = latest["event_timestamp"] >= now - pd.Timedelta(days=ttl_days) + pd.Timedelta(hours=1)
        ok = latest[fresh & latest[feats].notna().all(axis=1)]
        if len(ok) < 100:
            sys.exit(f"{view}: only {len(ok)} keys have a fresh, non-null latest row (is the data dated to end now?)")
        picked[key] = [int(k) for k in ok[key].sample(n=100, random_state=42)]
        print(f"   {view}: {len(ok)} of {len(latest)} keys fresh and non-null; picked 100")
    with open(out, "w") as f:
        json.dump(picked, f)


def percentile(sorted_values, q):
    """Nearest rank."""
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]


def online(kind, repo, ids_path, out):
    with open(ids_path) as f:
        ids = json.load(f)
    pairs = [{"user_id": u, "merchant_id": m} for u, m in zip(ids["user_id"], ids["merchant_id"])]
    if kind == "almanac":
        import almanac

        store = almanac.FeatureStore(repo)
        version = almanac.__version__
    else:
        import importlib.metadata

        from feast import FeatureStore

        store = FeatureStore(repo_path=repo)
        version = importlib.metadata.version("feast")
    with_dict = os.environ.get("ONLINE_TO_DICT") == "1"

    # Every value must be there: the ids were picked fresh and non-null.
    answer = store.get_online_features(features=REFS, entity_rows=pairs).to_dict()
    present = sum(v is not None for name in FEATURES for v in answer[name])
    expected = len(FEATURES) * len(pairs)
    if present == 0:
        sys.exit(f"{kind}: every value is null for the picked entities: materialization did not land? {answer}")
    print(f"{kind}: {present} of {expected} values present", file=sys.stderr)

    get = store.get_online_features
    clock = time.perf_counter_ns
    cases = {}
    for label, batches, calls in (("1x2", [[p] for p in pairs], 20_000), ("100x2", [pairs], 2_000)):
        for i in range(1_000):  # warm-up
            get(features=REFS, entity_rows=batches[i % len(batches)])
        gc.collect()
        nanos = [0] * calls
        nb = len(batches)
        for i in range(calls):
            rows = batches[i % nb]
            t = clock()
            response = get(features=REFS, entity_rows=rows)
            if with_dict:
                response.to_dict()
            nanos[i] = clock() - t
            del response
        nanos.sort()
        cases[label] = {
            "calls": calls,
            "p50_us": percentile(nanos, 0.50) / 1e3,
            "p99_us": percentile(nanos, 0.99) / 1e3,
            "p999_us": percentile(nanos, 0.999) / 1e3,
            "mean_us": statistics.fmean(nanos) / 1e3,
        }
        print(f"{kind} {label}: {json.dumps(cases[label])}", file=sys.stderr)
    result = {"store": kind, "version": version, "to_dict_timed": with_dict, "present": present, "expected": expected, "cases": cases}
    with open(out, "w") as f:
        json.dump(result, f)


def duration(us):
    return f"{us / 1e3:.2f} ms" if us >= 1_000 else f"{us:.1f} us"


def online_summary(almanac_path, feast_path):
    results = []
    for path in (almanac_path, feast_path):
        if os.path.exists(path):
            with open(path) as f:
                results.append(json.load(f))
    timed = "get_online_features + to_dict()" if any(r["to_dict_timed"] for r in results) else "get_online_features"
    print(f"   ({timed}, per call, perf_counter_ns; after 1,000 warm-up calls)")
    print(f"   {'store':<20} {'request':<24} {'p50':>10} {'p99':>10} {'p99.9':>10} {'mean':>10} {'calls':>7}  values present")
    names = {"1x2": "1 entity x 2 views", "100x2": "100 entities x 2 views"}
    by_store = {}
    for r in results:
        store = f"{r['store']} {r['version']}"
        by_store[r["store"]] = r
        for label, c in r["cases"].items():
            cells = " ".join(f"{duration(c[k]):>10}" for k in ("p50_us", "p99_us", "p999_us", "mean_us"))
            print(f"   {store:<20} {names[label]:<24} {cells} {c['calls']:>7}  {r['present']}/{r['expected']}")
    a = by_store.get("almanac")
    f = by_store.get("feast")
    if a:
        p99 = a["cases"]["1x2"]["p99_us"]
        print(f"   almanac 1 entity x 2 views p99 {p99:.1f} us: target < 50 us: {'met' if p99 < 50 else 'MISSED'}")
    if a and f:
        for label in ("1x2", "100x2"):
            print(f"   Feast / almanac, {names[label]}: p50 {f['cases'][label]['p50_us'] / a['cases'][label]['p50_us']:.1f}x,"
                  f" p99 {f['cases'][label]['p99_us'] / a['cases'][label]['p99_us']:.1f}x")
    if not f:
        print("   feast: no figures (its run failed; see the log)")


def versions():
    import importlib.metadata as m

    parts = [f"python {sys.version.split()[0]}"]
    for name in ("feast", "ibis-framework", "duckdb", "pandas", "pyarrow", "polars", "numpy"):
        try:
            parts.append(f"{name} {m.version(name)}")
        except m.PackageNotFoundError:
            parts.append(f"{name} (missing)")
    try:
        import almanac

        parts.append(f"almanac SDK {almanac.__version__} ({os.path.dirname(almanac.__file__)})")
    except Exception as e:  # noqa: BLE001 - reported
        parts.append(f"almanac SDK not importable: {e}")
    print("   " + ", ".join(parts))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    mode, args = sys.argv[1], sys.argv[2:]
    modes = {
        "almanac-sdk": hist_almanac_sdk,
        "feast": hist_feast,
        "duckdb": hist_duckdb,
        "compare": compare,
        "summary": summary,
        "pick-ids": pick_ids,
        "online-almanac": lambda *a: online("almanac", *a),
        "online-feast": lambda *a: online("feast", *a),
        "online-summary": online_summary,
        "versions": versions,
    }
    if mode not in modes:
        sys.exit(__doc__)
    modes[mode](*args)
