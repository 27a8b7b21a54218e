"""Aggregation-view benchmark helpers (issue 14): the dataset generator and
the peers, the same 12 windowed aggregates (count, sum, mean, max of
`amount` over 1d, 7d and 30d) at every label's instant T over the half-open
window [T - w, T), written by hand for DuckDB (a range join with FILTERed
aggregates) and Polars (`rolling(closed="left")` over labels and events
together), and the check that compares two outputs.

usage: python peers_aggregations.py generate DIR EVENTS USERS LABELS
       python peers_aggregations.py duckdb|polars DIR OUTPUT.parquet
       python peers_aggregations.py compare A.parquet B.parquet
"""
import sys

WINDOWS = [("1d", 1), ("7d", 7), ("30d", 30)]
FUNCTIONS = ["count", "sum", "mean", "max"]


def names():
    out = []
    for label, _ in WINDOWS:
        out.append(f"count_{label}")
        out += [f"amount_{f}_{label}" for f in FUNCTIONS[1:]]
    return out


def generate(directory, events, users, labels):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    import time

    rng = np.random.default_rng(14)
    # 180 days ending at the minute the data is generated, so the online
    # figures read real windows at the server's own "now".
    end = int(time.time() // 60 * 60 * 1_000_000)
    day = 86_400_000_000
    start, label_start = end - 180 * day, end - 150 * day
    ts = np.sort(rng.integers(start, end, events))
    table = pa.table({
        "user_id": pa.array(rng.integers(0, users, events), pa.int64()),
        "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "amount": pa.array(np.round(rng.lognormal(3.5, 1.0, events), 2), pa.float64()),
        "merchant_id": pa.array(rng.integers(0, 10_000, events), pa.int64()),
    })
    pq.write_table(table, f"{directory}/data/events.parquet", row_group_size=1 << 20)
    table = pa.table({
        "label_id": pa.array(np.arange(labels), pa.int64()),
        "user_id": pa.array(rng.integers(0, users, labels), pa.int64()),
        "event_timestamp": pa.array(rng.integers(label_start, end, labels), pa.timestamp("us", tz="UTC")),
    })
    pq.write_table(table, f"{directory}/data/labels.parquet", row_group_size=1 << 20)


def run_duckdb(directory, output):
    import duckdb
    import os

    con = duckdb.connect()
    con.execute(f"SET threads TO {os.cpu_count()}")
    aggregates = []
    for label, days in WINDOWS:
        inside = f"ets >= t - INTERVAL {days} DAY"
        aggregates += [
            f"count(*) FILTER (WHERE {inside}) AS count_{label}",
            f"sum(amount) FILTER (WHERE {inside}) AS amount_sum_{label}",
            f"avg(amount) FILTER (WHERE {inside}) AS amount_mean_{label}",
            f"max(amount) FILTER (WHERE {inside}) AS amount_max_{label}",
        ]
    outputs = [f"coalesce({n}, 0) AS {n}" if n.startswith("count") else n for n in names()]
    con.execute(f"""
    COPY (
      WITH l AS (SELECT *, row_number() OVER () AS _row FROM read_parquet('{directory}/data/labels.parquet')),
      j AS (SELECT l._row, l.event_timestamp AS t, e.event_timestamp AS ets, e.amount
            FROM l JOIN read_parquet('{directory}/data/events.parquet') e
              ON e.user_id = l.user_id AND e.event_timestamp < l.event_timestamp
             AND e.event_timestamp >= l.event_timestamp - INTERVAL 30 DAY),
      a AS (SELECT _row, {", ".join(aggregates)} FROM j GROUP BY _row)
      SELECT l.label_id, l.user_id, l.event_timestamp, {", ".join(outputs)}
      FROM l LEFT JOIN a USING (_row) ORDER BY l._row
    ) TO '{output}' (FORMAT parquet)
    """)


def run_polars(directory, output):
    import polars as pl

    labels = pl.read_parquet(f"{directory}/data/labels.parquet").with_row_index("_row")
    events = pl.read_parquet(f"{directory}/data/events.parquet", columns=["user_id", "event_timestamp", "amount"])
    both = pl.concat([
        events.with_columns(pl.lit(1, pl.Int64).alias("is_event"), pl.lit(None, pl.UInt32).alias("_row")),
        labels.select(["user_id", "event_timestamp"]).with_columns(pl.lit(None, pl.Float64).alias("amount"), pl.lit(0, pl.Int64).alias("is_event"), labels["_row"]),
    ], how="diagonal").sort(["user_id", "event_timestamp"])
    result = both
    for label, days in WINDOWS:
        rolled = both.rolling(index_column="event_timestamp", period=f"{days}d", closed="left", group_by="user_id").agg(
            pl.col("is_event").sum().alias(f"count_{label}"),
            pl.col("amount").sum().alias(f"amount_sum_{label}"),
            pl.col("amount").mean().alias(f"amount_mean_{label}"),
            pl.col("amount").max().alias(f"amount_max_{label}"),
        )
        # An empty window's sum is null (SQL), not Polars' 0.
        rolled = rolled.with_columns(pl.when(pl.col(f"amount_mean_{label}").is_null()).then(None).otherwise(pl.col(f"amount_sum_{label}")).alias(f"amount_sum_{label}"))
        result = result.with_columns(rolled.drop(["user_id", "event_timestamp"]))
    result = result.filter(pl.col("is_event") == 0).sort("_row")
    labels.select(["label_id", "user_id", "event_timestamp", "_row"]).join(result.select(["_row", *names()]), on="_row", how="left").sort("_row").drop("_row").write_parquet(output)


def compare(a_path, b_path):
    import polars as pl

    a = pl.read_parquet(a_path)
    b = pl.read_parquet(b_path)
    ok = a.height == b.height
    for name in names():
        x, y = a[name].cast(pl.Float64), b[name].cast(pl.Float64)
        nulls = (x.is_null() != y.is_null()).sum()
        both = x.is_not_null() & y.is_not_null()
        rel = ((x - y).abs() / y.abs().clip(lower_bound=1e-300)).filter(both)
        worst = rel.max() if rel.len() else 0.0
        exact = name.startswith("count") or "_max_" in name
        bad = nulls > 0 or (worst or 0.0) > (0.0 if exact else 1e-9)
        ok = ok and not bad
        if bad:
            print(f"   {name}: {nulls} null mismatches, worst relative difference {worst}")
    print(f"   {a_path.split('/')[-1]} == {b_path.split('/')[-1]}: {ok} ({a.height} rows; counts and max exact, sums and means within 1e-9)")


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "generate":
        generate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif command == "duckdb":
        run_duckdb(sys.argv[2], sys.argv[3])
    elif command == "polars":
        run_polars(sys.argv[2], sys.argv[3])
    elif command == "compare":
        compare(sys.argv[2], sys.argv[3])
