"""Almanac's managed PySpark driver process.

Almanac's Rust Spark offline store spawns this script and talks to it over
pipes; it owns one local SparkSession for the life of the process.

    PYTHON almanac_spark_driver.py --master local[2] [--app-name NAME]
        [--shuffle-partitions 4] [--driver-memory 2g]

Protocol: one JSON object per line on stdin, exactly one JSON line back on
stdout per request (flushed). Nothing else is ever written to stdout: fd 1 is
re-pointed at stderr before Spark starts, so the JVM, py4j and Python logging
all land on stderr.

On startup, once the session is up:
    {"ready": true, "startup_seconds": <float>, "spark_version": "<ver>"}

Requests and replies:
    {"op": "register", "name": N, "path": P, "format": "parquet"|"csv"}
        -> {"ok": true, "schema": [[col, simple_type], ...]}
       read P (file, folder or glob) and create or replace temp view N, with
       two more columns: __almanac_file and __almanac_block (each row's file
       path and split start, from _metadata).
       CSV: header=true, inferSchema=true; ISO/RFC3339 text infers as timestamp.
    {"op": "query", "sql": S, "output": DIR}
        -> {"ok": true, "rows": <rows written>, "seconds": <query+write time>}
       run S once and write the result as Parquet into DIR (overwrite).
    {"op": "schema", "sql": S}
        -> {"ok": true, "schema": [...]}      (analysed, not executed)
    {"op": "shutdown"}
        -> {"ok": true}, then stop the session and exit 0 (EOF does the same).
    Any failure:
        -> {"ok": false, "error": "<ExceptionClass>: <first line of message>"}
       and the driver keeps serving.
"""

import time

_T0 = time.time()  # before the heavy imports: startup_seconds counts them

import argparse
import json
import logging
import os
import sys
import tempfile


def _protocol_stream():
    """Keep the real stdout for replies; send fd 1 (and sys.stdout) to stderr.

    The JVM is a child process that inherits fd 1, so redirecting at the fd
    level is the only way to keep stray JVM output off the protocol channel.
    """
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _schema(struct):
    return [[f.name, f.dataType.simpleString()] for f in struct.fields]


def _error_line(exc):
    """'<Class>: <first line>'; for raw Py4J errors, the Java exception's."""
    name, text = type(exc).__name__, str(exc)
    java = getattr(exc, "java_exception", None)
    if java is not None and name == "Py4JJavaError":
        try:
            text = java.toString()  # e.g. "java.io.FileNotFoundException: ..."
            name = ""
        except Exception:  # noqa: BLE001 - best effort
            pass
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    first = lines[0] if lines else "(no message)"
    return f"{name}: {first}" if name else first


def main():
    ap = argparse.ArgumentParser(description="Almanac managed PySpark driver")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--app-name", default="almanac-spark-driver")
    ap.add_argument("--shuffle-partitions", type=int, default=4)
    ap.add_argument("--driver-memory", default="2g")
    args = ap.parse_args()

    out = _protocol_stream()

    def reply(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    if args.master.startswith("local"):
        # Local mode needs no external interface; also silences the
        # "hostname resolves to a loopback address" warning.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    from pyspark.sql import Observation, SparkSession
    from pyspark.sql import functions as F

    spark = (
        SparkSession.builder.master(args.master)
        .appName(args.app_name)
        .config("spark.driver.memory", args.driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
        .config("spark.sql.ansi.enabled", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Only temp views are used; keep Spark's default ./spark-warehouse
        # folder out of whatever directory the driver was started in.
        .config("spark.sql.warehouse.dir",
                os.path.join(tempfile.gettempdir(), "almanac-spark-warehouse"))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    try:  # pyspark 4 logs each SQL error with a full JVM trace; one line is enough
        from pyspark.logger import PySparkLogger

        for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
            PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
    except ImportError:
        pass
    reply({"ready": True, "startup_seconds": round(time.time() - _T0, 3),
           "spark_version": spark.version})

    def register(req):
        fmt = req.get("format", "parquet")
        reader = spark.read
        if fmt == "csv":
            reader = reader.option("header", "true").option("inferSchema", "true")
        elif fmt != "parquet":
            raise ValueError(f"unsupported format {fmt!r} (parquet or csv)")
        df = reader.format(fmt).load(req["path"])
        # Where each row was read from: aggregation views order events of
        # one instant by it (a file's later row is newer), and a temporary
        # view hides the `_metadata` column itself.
        df = df.select("*", F.col("_metadata.file_path").alias("__almanac_file"),
                       F.col("_metadata.file_block_start").alias("__almanac_block"))
        df.createOrReplaceTempView(req["name"])
        return {"ok": True, "schema": _schema(df.schema)}

    def query(req):
        start = time.time()
        # Row count: an Observation counts rows as they stream into the write,
        # in the same single job. Cheaper than either alternative: no second
        # Spark job (spark.read.parquet(DIR).count()) and no Parquet footer
        # reads or pyarrow dependency here.
        obs = Observation("almanac_rows")
        df = spark.sql(req["sql"]).observe(obs, F.count(F.lit(1)).alias("rows"))
        df.write.mode("overwrite").parquet(req["output"])
        rows = obs.get["rows"]
        return {"ok": True, "rows": int(rows), "seconds": round(time.time() - start, 3)}

    def schema(req):
        return {"ok": True, "schema": _schema(spark.sql(req["sql"]).schema)}

    ops = {"register": register, "query": query, "schema": schema}

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            op = req.get("op") if isinstance(req, dict) else None
            if op == "shutdown":
                reply({"ok": True})
                break
            if op not in ops:
                raise ValueError(f"unknown op {op!r}")
            reply(ops[op](req))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reply
            err = _error_line(exc)
            print(f"almanac-spark-driver: request failed: {err}", file=sys.stderr, flush=True)
            reply({"ok": False, "error": err})

    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
