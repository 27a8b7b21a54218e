"""Peers for the PostgreSQL push-down benchmark (bench/pushdown.sh): the same
point-in-time join as `almanac historical --feature-service fraud_model_v1`
computed inside PostgreSQL, by a hand-written LATERAL query and by Feast's
PostgreSQL offline store, on tables loaded from the reference dataset.

Semantics (as bench/peers_historical.py): for each label, the user row with
the latest event_timestamp <= the label's, equal event times broken by the
latest created_at, and none older than the TTL (3 days users, 7 days
merchants; the lower bound is inclusive); the same for the merchant; one
output row per label, in label order (label_id is the labels file's row
number, from 1).

usage:
  python peers_pushdown.py load REPO SCHEMA [URL]       untimed setup: REPO/data/*.parquet -> SCHEMA.*
  python peers_pushdown.py lateral URL SCHEMA OUTPUT.parquet
  python peers_pushdown.py lateral-cursor URL SCHEMA OUTPUT.parquet   (the same, fetched through a
                                                 server-side cursor instead of binary COPY: slower)
  python peers_pushdown.py feast URL SCHEMA OUTPUT.parquet [--entity-sql]
  python peers_pushdown.py compare A.parquet B.parquet

URL is a libpq URL such as postgresql://127.0.0.1:5432/test (the default for
`load`). `feast --entity-sql` hands Feast the labels as a SQL query instead of
a pandas DataFrame (Feast then skips its row-by-row upload); the benchmark
uses the DataFrame, the common way of calling it.
"""
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_URL = "postgresql://127.0.0.1:5432/test"
TABLES = ("user_txn_stats", "merchant_stats", "labels")
KEYS = {"user_txn_stats": "user_id", "merchant_stats": "merchant_id"}
OUTPUT_COLUMNS = [
    "label_id", "user_id", "merchant_id", "event_timestamp", "amount", "is_fraud",
    "txn_count_7d", "txn_amount_avg_7d", "merchant_fraud_rate_30d", "merchant_txn_count_1d",
]
UTC_US = pa.timestamp("us", tz="UTC")
# PostgreSQL's binary timestamps count microseconds from 2000-01-01 00:00 UTC.
PG_EPOCH_US = 946_684_800 * 1_000_000
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
COPY_HEADER = COPY_SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER = b"\xff\xff"


def connect(url, **kwargs):
    import psycopg

    return psycopg.connect(url, **kwargs)


# ---------------------------------------------------------------- load


def pg_type(t):
    if pa.types.is_timestamp(t):
        return "timestamptz"
    if pa.types.is_int64(t):
        return "bigint"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_boolean(t):
        return "boolean"
    raise SystemExit(f"load: no PostgreSQL type for Arrow type {t}")


def _put(buf, positions, values):
    """Scatter fixed-width big-endian `values` into `buf` at byte `positions`."""
    width = values.dtype.itemsize
    buf[positions[:, None] + np.arange(width)] = values.view(np.uint8).reshape(-1, width)


def binary_copy_batch(batch):
    """One record batch in PostgreSQL's binary COPY tuple format (no header),
    built column by column with numpy: each tuple is an int16 field count,
    then per field an int32 length (-1 for NULL) and the big-endian value."""
    n = batch.num_rows
    columns = []
    for field, arr in zip(batch.schema, batch.columns):
        t = field.type
        valid = np.ones(n, bool) if arr.null_count == 0 else arr.is_valid().to_numpy(zero_copy_only=False)
        if pa.types.is_timestamp(t):
            raw = arr.cast(UTC_US).cast(pa.int64()).fill_null(0).to_numpy() - PG_EPOCH_US
            values = raw.astype(">i8")
        elif pa.types.is_int64(t):
            values = arr.fill_null(0).to_numpy().astype(">i8")
        elif pa.types.is_float64(t):
            values = arr.fill_null(0.0).to_numpy().astype(">f8")
        elif pa.types.is_boolean(t):
            values = arr.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8)
        else:
            raise SystemExit(f"load: no PostgreSQL type for Arrow type {t}")
        columns.append((valid, values))
    row_len = np.full(n, 2, np.int64)
    for valid, values in columns:
        row_len += 4 + values.dtype.itemsize * valid
    ends = np.cumsum(row_len)
    starts = ends - row_len
    buf = np.empty(int(ends[-1]) if n else 0, np.uint8)
    _put(buf, starts, np.full(n, len(columns), ">i2"))
    offset = starts + 2
    for valid, values in columns:
        width = values.dtype.itemsize
        _put(buf, offset, np.where(valid, width, -1).astype(">i4"))
        offset = offset + 4
        _put(buf, offset[valid], values[valid])
        offset = offset + width * valid
    return buf.tobytes()


def load(repo, schema, url=DEFAULT_URL):
    started = time.perf_counter()
    with connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
        for table in TABLES:
            parquet = pq.ParquetFile(f"{repo}/data/{table}.parquet")
            arrow_schema = parquet.schema_arrow
            columns = ", ".join(
                f'"{f.name}" {pg_type(f.type)}{"" if f.nullable else " NOT NULL"}' for f in arrow_schema
            )
            conn.execute(f'CREATE TABLE "{schema}"."{table}" ({columns})')
            names = ", ".join(f'"{f.name}"' for f in arrow_schema)
            with conn.cursor() as cur:
                with cur.copy(f'COPY "{schema}"."{table}" ({names}) FROM STDIN (FORMAT BINARY)') as copy:
                    copy.write(COPY_HEADER)
                    seen = 0
                    for batch in parquet.iter_batches(batch_size=131_072):
                        if table == "labels":
                            # The peers put their output in label order by sorting on
                            # label_id, which must therefore be the file's row number.
                            ids = batch.column("label_id").to_numpy()
                            if not np.array_equal(ids, np.arange(seen + 1, seen + 1 + len(ids))):
                                raise SystemExit("load: label_id is not the labels file's row number (1, 2, ...)")
                        seen += batch.num_rows
                        copy.write(binary_copy_batch(batch))
                    copy.write(COPY_TRAILER)
            if table in KEYS:
                conn.execute(
                    f'CREATE INDEX ON "{schema}"."{table}" ({KEYS[table]}, event_timestamp, created_at)'
                )
            else:
                conn.execute(f'ALTER TABLE "{schema}"."{table}" ADD PRIMARY KEY (label_id)')
        # VACUUM as well as ANALYZE: sets the hint bits and the visibility map
        # now, so the first timed reader does not pay for writing them.
        for table in TABLES:
            conn.execute(f'VACUUM (ANALYZE) "{schema}"."{table}"')
        for table in TABLES:
            rows = conn.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]
            print(f"{schema}.{table}: {rows} rows")
    print(f"load: {time.perf_counter() - started:.2f} s", file=sys.stderr)


# ---------------------------------------------------------------- lateral

# Every nullable output comes as (COALESCE(value, 0), value IS NULL) so each
# tuple of the binary COPY has the same length and numpy reads the stream as
# one structured array; the null flags become validity masks again.
LATERAL_SQL = """
SELECT l.label_id, l.user_id, l.merchant_id, l.event_timestamp, l.amount, l.is_fraud,
       COALESCE(u.txn_count_7d, 0), u.txn_count_7d IS NULL,
       COALESCE(u.txn_amount_avg_7d, 0), u.txn_amount_avg_7d IS NULL,
       COALESCE(m.merchant_fraud_rate_30d, 0), m.merchant_fraud_rate_30d IS NULL,
       COALESCE(m.merchant_txn_count_1d, 0), m.merchant_txn_count_1d IS NULL
FROM "{schema}".labels l
LEFT JOIN LATERAL (
  SELECT u.txn_count_7d, u.txn_amount_avg_7d
  FROM "{schema}".user_txn_stats u
  WHERE u.user_id = l.user_id
    AND u.event_timestamp <= l.event_timestamp
    AND u.event_timestamp >= l.event_timestamp - interval '3 days'
  ORDER BY u.event_timestamp DESC, u.created_at DESC
  LIMIT 1
) u ON true
LEFT JOIN LATERAL (
  SELECT m.merchant_fraud_rate_30d, m.merchant_txn_count_1d
  FROM "{schema}".merchant_stats m
  WHERE m.merchant_id = l.merchant_id
    AND m.event_timestamp <= l.event_timestamp
    AND m.event_timestamp >= l.event_timestamp - interval '7 days'
  ORDER BY m.event_timestamp DESC, m.created_at DESC
  LIMIT 1
) m ON true
ORDER BY l.label_id
"""
# (name, wire type, arrow type); None = the null flag of the column before it.
LATERAL_WIRE = [
    ("label_id", ">i8", pa.int64()), ("user_id", ">i8", pa.int64()), ("merchant_id", ">i8", pa.int64()),
    ("event_timestamp", ">i8", UTC_US), ("amount", ">f8", pa.float64()), ("is_fraud", "u1", pa.bool_()),
    ("txn_count_7d", ">i8", pa.int64()), (None, "u1", None),
    ("txn_amount_avg_7d", ">f8", pa.float64()), (None, "u1", None),
    ("merchant_fraud_rate_30d", ">f8", pa.float64()), (None, "u1", None),
    ("merchant_txn_count_1d", ">i8", pa.int64()), (None, "u1", None),
]
# The labels table, for Feast's entity DataFrame (no NULLs, so no flags).
LABEL_WIRE = LATERAL_WIRE[:6]


def _tuple_dtype(wire):
    names, formats, offsets, pos = ["_nfields"], [">i2"], [0], 2
    for i, (_, fmt, _) in enumerate(wire):
        names += [f"_len{i}", f"f{i}"]
        formats += [">i4", fmt]
        offsets += [pos, pos + 4]
        pos += 4 + np.dtype(fmt).itemsize
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": pos})


def _columns_to_arrow(records, wire):
    if len(records) and (
        (records["_nfields"] != len(wire)).any()
        or any((records[f"_len{i}"] != np.dtype(fmt).itemsize).any() for i, (_, fmt, _) in enumerate(wire))
    ):
        raise SystemExit("unexpected tuple layout in the binary COPY stream (a NULL where none was expected?)")
    arrays, names = [], []
    i = 0
    while i < len(wire):
        name, fmt, arrow_type = wire[i]
        values = records[f"f{i}"]
        nulls = None
        if i + 1 < len(wire) and wire[i + 1][0] is None:
            nulls = records[f"f{i + 1}"].astype(bool)
            i += 1
        i += 1
        if arrow_type == pa.bool_():
            arr = pa.array(values.astype(bool), mask=nulls)
        elif pa.types.is_timestamp(arrow_type):
            arr = pa.array(values.astype(np.int64) + PG_EPOCH_US, pa.int64(), mask=nulls).cast(arrow_type)
        else:
            arr = pa.array(values.astype(values.dtype.newbyteorder("=")), arrow_type, mask=nulls)
        arrays.append(arr)
        names.append(name)
    return pa.table(arrays, names=names)


def fetch_fixed_width(conn, query, wire):
    """Run `query` as COPY (...) TO STDOUT (FORMAT BINARY) and parse the
    fixed-length tuples with numpy as they stream in."""
    dtype = _tuple_dtype(wire)
    pending = bytearray()
    parts = []
    header_done = False
    with conn.cursor() as cur:
        with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)") as copy:
            for data in copy:
                pending += data
                if not header_done:
                    if len(pending) < 19:
                        continue
                    if bytes(pending[:11]) != COPY_SIGNATURE:
                        raise SystemExit("not a binary COPY stream")
                    ext = int.from_bytes(pending[15:19], "big")
                    del pending[: 19 + ext]
                    header_done = True
                whole = len(pending) // dtype.itemsize
                if whole >= 65_536:
                    take = whole * dtype.itemsize
                    parts.append(_columns_to_arrow(np.frombuffer(bytes(pending[:take]), dtype), wire))
                    del pending[:take]
    if bytes(pending[-2:]) != COPY_TRAILER:
        raise SystemExit("binary COPY stream without its trailer")
    del pending[-2:]
    if len(pending) % dtype.itemsize:
        raise SystemExit("binary COPY tuples are not of the expected width")
    parts.append(_columns_to_arrow(np.frombuffer(bytes(pending), dtype), wire))
    return pa.concat_tables(parts)


def fetch_cursor(conn, query, wire):
    """The alternative fetch: a server-side (named) cursor, rows as Python
    tuples, itersize rows a round trip (slower; kept for comparison)."""
    cols = [[] for _ in wire]
    with conn.cursor(name="lateral") as cur:
        cur.itersize = 50_000
        cur.execute(query)
        for row in cur:
            for c, v in zip(cols, row):
                c.append(v)
    arrays, names = [], []
    for i, (name, _, arrow_type) in enumerate(wire):
        if name is None:
            continue
        flagged = i + 1 < len(wire) and wire[i + 1][0] is None
        mask = np.array(cols[i + 1], bool) if flagged else None
        arrays.append(pa.array(cols[i], arrow_type, mask=mask))
        names.append(name)
    return pa.table(arrays, names=names)


def lateral(url, schema, output, fetch="copy"):
    started = time.perf_counter()
    with connect(url) as conn:
        # A plan of a million index probes costs enough to trigger JIT
        # compilation, which only adds seconds here.
        conn.execute("SET jit = off")
        query = LATERAL_SQL.format(schema=schema)
        table = (fetch_fixed_width if fetch == "copy" else fetch_cursor)(conn, query, LATERAL_WIRE)
    pq.write_table(table, output)
    print(f"lateral: {time.perf_counter() - started:.2f} s ({table.num_rows} rows)", file=sys.stderr)


# ---------------------------------------------------------------- feast


def feast(url, schema, output, entity_sql=False):
    started = time.perf_counter()
    import getpass
    import os
    import tempfile
    import warnings
    from datetime import timedelta

    os.environ.setdefault("FEAST_USAGE", "False")
    warnings.filterwarnings("ignore")
    from psycopg.conninfo import conninfo_to_dict

    from feast import Entity, FeatureStore, FeatureView, Field
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import PostgreSQLOfflineStoreConfig
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
    from feast.repo_config import RegistryConfig, RepoConfig
    from feast.types import Float64, Int64
    from feast.value_type import ValueType

    info = conninfo_to_dict(url)
    with tempfile.TemporaryDirectory(prefix="feast-pushdown-") as repo:
        config = RepoConfig(
            project="fraud_pushdown",
            provider="local",
            registry=RegistryConfig(path=f"{repo}/registry.db"),
            offline_store=PostgreSQLOfflineStoreConfig(
                host=info.get("host", "127.0.0.1"),
                port=int(info.get("port", 5432)),
                database=info.get("dbname", "test"),
                db_schema=schema,
                user=info.get("user") or os.environ.get("PGUSER") or getpass.getuser(),
                password=info.get("password", ""),
                sslmode=info.get("sslmode", "disable"),
            ),
            online_store=SqliteOnlineStoreConfig(path=f"{repo}/online.db"),
            entity_key_serialization_version=3,
            repo_path=repo,
        )
        store = FeatureStore(config=config)
        user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
        merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)
        user_source = PostgreSQLSource(
            name="user_txn_source", table=f"{schema}.user_txn_stats",
            timestamp_field="event_timestamp", created_timestamp_column="created_at",
        )
        merchant_source = PostgreSQLSource(
            name="merchant_source", table=f"{schema}.merchant_stats",
            timestamp_field="event_timestamp", created_timestamp_column="created_at",
        )
        user_view = FeatureView(
            name="user_txn_stats", entities=[user], ttl=timedelta(days=3), source=user_source, online=False,
            schema=[Field(name="txn_count_7d", dtype=Int64), Field(name="txn_amount_avg_7d", dtype=Float64),
                    Field(name="txn_amount_std_30d", dtype=Float64)],
        )
        merchant_view = FeatureView(
            name="merchant_stats", entities=[merchant], ttl=timedelta(days=7), source=merchant_source, online=False,
            schema=[Field(name="merchant_fraud_rate_30d", dtype=Float64),
                    Field(name="merchant_txn_count_1d", dtype=Int64)],
        )
        store.apply([user, merchant, user_source, merchant_source, user_view, merchant_view])
        setup = time.perf_counter()

        if entity_sql:
            entity_df = f'SELECT * FROM "{schema}".labels'
        else:
            with connect(url) as conn:
                labels = fetch_fixed_width(conn, f'SELECT {", ".join(n for n, _, _ in LABEL_WIRE)} FROM "{schema}".labels ORDER BY label_id', LABEL_WIRE)
            entity_df = labels.to_pandas()
        read = time.perf_counter()
        job = store.get_historical_features(
            entity_df=entity_df,
            features=[
                "user_txn_stats:txn_count_7d", "user_txn_stats:txn_amount_avg_7d",
                "merchant_stats:merchant_fraud_rate_30d", "merchant_stats:merchant_txn_count_1d",
            ],
        )
        result = job.to_arrow()
        retrieved = time.perf_counter()

    # Feast's result has no order: back into label order (label_id is the row number).
    result = result.sort_by("label_id")
    target = pa.schema([
        ("label_id", pa.int64()), ("user_id", pa.int64()), ("merchant_id", pa.int64()),
        ("event_timestamp", UTC_US), ("amount", pa.float64()), ("is_fraud", pa.bool_()),
        ("txn_count_7d", pa.int64()), ("txn_amount_avg_7d", pa.float64()),
        ("merchant_fraud_rate_30d", pa.float64()), ("merchant_txn_count_1d", pa.int64()),
    ])
    columns = []
    for field in target:
        col = result.column(field.name)
        if pa.types.is_timestamp(col.type) and col.type.tz is None:
            col = col.cast(pa.timestamp(col.type.unit, tz="UTC"))  # Feast hands back naive UTC times
        columns.append(col.cast(field.type))
    out = pa.table(columns, schema=target)
    pq.write_table(out, output)
    print(
        f"feast: {time.perf_counter() - started:.2f} s ({out.num_rows} rows; import+apply {setup - started:.2f} s, "
        f"read labels {read - setup:.2f} s, get_historical_features+to_arrow {retrieved - read:.2f} s)",
        file=sys.stderr,
    )


# ---------------------------------------------------------------- compare


def _normalized(col):
    """(values as a comparable numpy array, validity mask) for one column."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = col.type
    valid = col.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_timestamp(t):
        # Instants: compare microseconds since the epoch (a naive timestamp is taken as UTC).
        if t.unit == "ns":
            ns = col.cast(pa.int64()).fill_null(0).to_numpy()
            if (ns % 1000).any():
                raise SystemExit(f"compare: timestamp column {t} has sub-microsecond values")
            return ns // 1000, valid
        return col.cast(pa.timestamp(t.unit)).cast(pa.timestamp("us")).cast(pa.int64()).fill_null(0).to_numpy(), valid
    if pa.types.is_floating(t):
        # Bitwise: NaN == NaN of the same payload, 0.0 != -0.0.
        return col.cast(pa.float64()).fill_null(0.0).to_numpy().view(np.uint64), valid
    if pa.types.is_integer(t):
        return col.cast(pa.int64()).fill_null(0).to_numpy(), valid
    if pa.types.is_boolean(t):
        return col.fill_null(False).to_numpy(zero_copy_only=False), valid
    return np.array(col.fill_null("").to_pylist(), dtype=object), valid


def compare(a_path, b_path, show=5):
    a, b = pq.read_table(a_path), pq.read_table(b_path)
    problems = []
    if a.column_names != b.column_names:
        print(f"columns differ:\n  {a_path}: {a.column_names}\n  {b_path}: {b.column_names}")
        return 1
    if a.num_rows != b.num_rows:
        print(f"row counts differ: {a_path} has {a.num_rows}, {b_path} has {b.num_rows}")
        problems.append("rows")
    for fa, fb in zip(a.schema, b.schema):
        if fa.type != fb.type:
            print(f"note: column {fa.name} is {fa.type} in A, {fb.type} in B (values compared as the same kind)")
    n = min(a.num_rows, b.num_rows)
    bad = np.zeros(n, bool)
    per_column = {}
    for name in a.column_names:
        va, ma = _normalized(a.column(name).slice(0, n))
        vb, mb = _normalized(b.column(name).slice(0, n))
        differs = (ma != mb) | (ma & mb & (va != vb))
        if differs.any():
            per_column[name] = int(differs.sum())
            bad |= differs
    if per_column:
        print(f"{int(bad.sum())} of {n} rows differ; by column: {per_column}")
        ra, rb = a.slice(0, n), b.slice(0, n)
        for i in np.flatnonzero(bad)[:show]:
            i = int(i)
            print(f"  row {i}:")
            print(f"    A {ra.slice(i, 1).to_pylist()[0]}")
            print(f"    B {rb.slice(i, 1).to_pylist()[0]}")
        problems.append("values")
    if problems:
        return 1
    print(f"identical: {n} rows x {len(a.column_names)} columns")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    command, rest = args[0], args[1:]
    if command == "load" and len(rest) in (2, 3):
        load(*rest)
    elif command == "lateral" and len(rest) == 3:
        lateral(*rest)
    elif command == "lateral-cursor" and len(rest) == 3:
        lateral(*rest, fetch="cursor")
    elif command == "feast" and len(rest) in (3, 4):
        feast(*rest[:3], entity_sql=rest[3:] == ["--entity-sql"])
    elif command == "compare" and len(rest) == 2:
        sys.exit(compare(*rest))
    else:
        raise SystemExit(__doc__)
