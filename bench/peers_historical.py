"""Peers for the historical-retrieval benchmark: the same point-in-time join
as `almanac historical --feature-service fraud_model_v1`, hand-written for
DuckDB (ASOF JOIN) and Polars (join_asof), with the same semantics:
dedupe equal (key, event time) by the latest created_at, as-of backward
(ts <= T), TTL lower bound inclusive (3d users, 7d merchants), input order.

usage: python peers_historical.py duckdb|polars REPO OUTPUT.parquet
"""
import sys
import time


def run_duckdb(repo, output):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads TO {__import__('os').cpu_count()}")
    con.execute(f"""
    COPY (
      WITH labels AS (SELECT *, row_number() OVER () AS _row FROM read_parquet('{repo}/data/labels.parquet')),
      u AS (SELECT user_id, event_timestamp AS u_ts, txn_count_7d, txn_amount_avg_7d FROM read_parquet('{repo}/data/user_txn_stats.parquet')
            QUALIFY row_number() OVER (PARTITION BY user_id, event_timestamp ORDER BY created_at DESC) = 1),
      m AS (SELECT merchant_id, event_timestamp AS m_ts, merchant_fraud_rate_30d, merchant_txn_count_1d FROM read_parquet('{repo}/data/merchant_stats.parquet')
            QUALIFY row_number() OVER (PARTITION BY merchant_id, event_timestamp ORDER BY created_at DESC) = 1),
      lu AS (SELECT l.*, u.u_ts, u.txn_count_7d, u.txn_amount_avg_7d FROM labels l
             ASOF LEFT JOIN u ON l.user_id = u.user_id AND l.event_timestamp >= u.u_ts),
      lum AS (SELECT lu.*, m.m_ts, m.merchant_fraud_rate_30d, m.merchant_txn_count_1d FROM lu
              ASOF LEFT JOIN m ON lu.merchant_id = m.merchant_id AND lu.event_timestamp >= m.m_ts)
      SELECT label_id, user_id, merchant_id, event_timestamp, amount, is_fraud,
        CASE WHEN u_ts >= event_timestamp - INTERVAL 3 DAY THEN txn_count_7d END AS txn_count_7d,
        CASE WHEN u_ts >= event_timestamp - INTERVAL 3 DAY THEN txn_amount_avg_7d END AS txn_amount_avg_7d,
        CASE WHEN m_ts >= event_timestamp - INTERVAL 7 DAY THEN merchant_fraud_rate_30d END AS merchant_fraud_rate_30d,
        CASE WHEN m_ts >= event_timestamp - INTERVAL 7 DAY THEN merchant_txn_count_1d END AS merchant_txn_count_1d
      FROM lum ORDER BY _row
    ) TO '{output}' (FORMAT parquet)
    """)


def run_polars(repo, output):
    import polars as pl
    from datetime import timedelta

    labels = pl.read_parquet(f"{repo}/data/labels.parquet").with_row_index("_row")

    def latest(path, key, features):
        return (
            pl.read_parquet(path)
            .sort([key, "event_timestamp", "created_at"])
            .unique([key, "event_timestamp"], keep="last", maintain_order=True)
            .select([key, pl.col("event_timestamp").alias(f"{key}_ts"), *features])
            .sort(f"{key}_ts")
        )

    users = latest(f"{repo}/data/user_txn_stats.parquet", "user_id", ["txn_count_7d", "txn_amount_avg_7d"])
    merchants = latest(f"{repo}/data/merchant_stats.parquet", "merchant_id", ["merchant_fraud_rate_30d", "merchant_txn_count_1d"])
    joined = (
        labels.sort("event_timestamp")
        .join_asof(users, left_on="event_timestamp", right_on="user_id_ts", by="user_id", strategy="backward")
        .join_asof(merchants, left_on="event_timestamp", right_on="merchant_id_ts", by="merchant_id", strategy="backward")
    )
    # The TTL is applied after the as-of match: a match older than T - ttl is no match.
    user_fresh = pl.col("user_id_ts") >= pl.col("event_timestamp") - timedelta(days=3)
    merchant_fresh = pl.col("merchant_id_ts") >= pl.col("event_timestamp") - timedelta(days=7)
    out = (
        joined.with_columns(
            [pl.when(user_fresh).then(pl.col(c)).alias(c) for c in ["txn_count_7d", "txn_amount_avg_7d"]]
            + [pl.when(merchant_fresh).then(pl.col(c)).alias(c) for c in ["merchant_fraud_rate_30d", "merchant_txn_count_1d"]]
        )
        .sort("_row")
        .drop(["_row", "user_id_ts", "merchant_id_ts"])
    )
    out.write_parquet(output)


if __name__ == "__main__":
    engine, repo, output = sys.argv[1:4]
    started = time.perf_counter()
    {"duckdb": run_duckdb, "polars": run_polars}[engine](repo, output)
    print(f"{engine}: {time.perf_counter() - started:.2f} s", file=sys.stderr)
