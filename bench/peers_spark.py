"""The Spark peer of the pushdown benchmark: the point-in-time join of
`almanac historical --feature-service fraud_model_v1`, hand-written in Spark
SQL the way a Spark user writes it (and Feast's Spark offline store
generates it): join each label to its key's history within the TTL
(`ts <= T` and `ts >= T - ttl`), keep the newest row per label
(`ROW_NUMBER() ... ORDER BY ts DESC, created DESC`), in label order. The
same local[2] session settings as Almanac's driver (UTC, 4 shuffle
partitions). Prints Spark's startup and the query time separately.

usage: python peers_spark.py REPO OUTPUT.parquet
"""
import sys
import time

T0 = time.time()


def main(repo, output):
    import os
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("almanac-bench-spark-peer")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    started = time.time()
    print(f"spark startup {started - T0:.2f} s", file=sys.stderr)
    for name in ("labels", "user_txn_stats", "merchant_stats"):
        spark.read.parquet(f"{repo}/data/{name}.parquet").createOrReplaceTempView(name)
    spark.sql("""
    WITH l AS (SELECT * FROM labels),
    u AS (
      SELECT label_id, txn_count_7d, txn_amount_avg_7d FROM (
        SELECT l.label_id, s.txn_count_7d, s.txn_amount_avg_7d,
          ROW_NUMBER() OVER (PARTITION BY l.label_id ORDER BY s.event_timestamp DESC, s.created_at DESC) AS rn
        FROM l JOIN user_txn_stats s ON s.user_id = l.user_id
          AND s.event_timestamp <= l.event_timestamp AND s.event_timestamp >= l.event_timestamp - INTERVAL 3 DAYS
      ) WHERE rn = 1),
    m AS (
      SELECT label_id, merchant_fraud_rate_30d, merchant_txn_count_1d FROM (
        SELECT l.label_id, s.merchant_fraud_rate_30d, s.merchant_txn_count_1d,
          ROW_NUMBER() OVER (PARTITION BY l.label_id ORDER BY s.event_timestamp DESC, s.created_at DESC) AS rn
        FROM l JOIN merchant_stats s ON s.merchant_id = l.merchant_id
          AND s.event_timestamp <= l.event_timestamp AND s.event_timestamp >= l.event_timestamp - INTERVAL 7 DAYS
      ) WHERE rn = 1)
    SELECT l.label_id, l.user_id, l.merchant_id, l.event_timestamp, l.amount, l.is_fraud,
      u.txn_count_7d, u.txn_amount_avg_7d, m.merchant_fraud_rate_30d, m.merchant_txn_count_1d
    FROM l LEFT JOIN u ON u.label_id = l.label_id LEFT JOIN m ON m.label_id = l.label_id
    ORDER BY l.label_id
    """).coalesce(1).write.mode("overwrite").parquet(output + ".dir")
    print(f"spark query {time.time() - started:.2f} s", file=sys.stderr)
    # One file, like every other contender's output.
    import glob
    import shutil
    part = sorted(glob.glob(output + ".dir/part-*.parquet"))[0]
    shutil.move(part, output)
    shutil.rmtree(output + ".dir")
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
