"""The demo repo (`almanac init --demo --scale 0.01`) through the SDK:
training sets equal to the CLI, on-demand and aggregation features offline
and online (each against an independent computation), the catalog, and
the GIL released while a training set is built."""

from __future__ import annotations

import bisect
import math
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import almanac
import almanac_testlib as lib

UTC = timezone.utc
UNKNOWN = 10**9


def events_by_user(labels: pa.Table) -> Dict[int, List[Tuple[int, float, int]]]:
    """The transactions source (labels.parquet), per user, sorted by time:
    (event time µs, amount, merchant)."""
    users = labels.column("user_id").to_pylist()
    times = labels.column("event_timestamp").cast(pa.int64()).to_pylist()
    amounts = labels.column("amount").to_pylist()
    merchants = labels.column("merchant_id").to_pylist()
    out: Dict[int, List[Tuple[int, float, int]]] = {}
    for user, at, amount, merchant in zip(users, times, amounts, merchants):
        out.setdefault(user, []).append((at, amount, merchant))
    for rows in out.values():
        rows.sort()
    return out


def aggregate(function: str, column: Any, events: List[Tuple[int, float, int]]) -> Any:
    """One aggregation over the events of a window, by brute force (DESIGN §9)."""
    values = [e[1] if column == "amount" else e[2] for e in events] if column else None
    if function == "count":
        return len(events) if column is None else sum(v is not None for v in values)
    if function == "approx_count_distinct":
        return len(set(values))
    if not events:
        return None
    if function == "sum":
        return math.fsum(values)
    if function == "mean":
        return math.fsum(values) / len(values)
    if function == "max":
        return max(values)
    if function == "min":
        return min(values)
    raise AssertionError(f"no brute force for {function}")


def window_events(events: List[Tuple[int, float, int]], at: int, window: int) -> List[Tuple[int, float, int]]:
    """Events with at - window <= ts < at: the half-open window [T - w, T)."""
    times = [e[0] for e in events]
    return events[bisect.bisect_left(times, at - window) : bisect.bisect_left(times, at)]


def close(a: Any, b: Any, function: str) -> bool:
    if a is None or b is None:
        return a is b
    if function == "mean":
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def aggregations(store: Any) -> List[Tuple[str, str, Any, int]]:
    """(feature name, function, column, window µs) of user_txn_windows, as
    the catalog describes them."""
    view = store.get_feature_view("user_txn_windows")
    out = []
    for aggregation in view.aggregations:
        out.append((aggregation["name"], aggregation["function"], aggregation.get("column"), lib.duration_micros(aggregation["window"])))
    assert [f.name for f in view.features] == [a[0] for a in out]
    return out


# ---------------------------------------------------------------- catalog


def test_catalog(demo: Any) -> None:
    store = demo.store
    assert sorted(e.name for e in store.list_entities()) == ["merchant", "user"]
    assert all(isinstance(e, almanac.Entity) for e in store.list_entities())
    assert sorted(v.name for v in store.list_feature_views()) == ["merchant_stats", "user_txn_stats", "user_txn_windows"]
    assert all(isinstance(v, almanac.FeatureView) for v in store.list_feature_views())
    assert [s.name for s in store.list_feature_services()] == ["fraud_model_v1"]
    assert [v.name for v in store.list_on_demand_feature_views()] == ["txn_ratios"]
    assert sorted(s.name for s in store.list_data_sources()) == ["merchant_source", "transactions", "user_txn_source"]
    assert [s.name for s in store.list_request_sources()] == ["txn_request"]
    assert sorted(v.name for v in store.list_feature_views(tags={"domain": "payments"})) == ["merchant_stats", "user_txn_stats"]
    assert [v.name for v in store.list_feature_views(tags={"pii": "false"})] == ["user_txn_stats"]

    view = store.get_feature_view("user_txn_stats")
    assert isinstance(view, almanac.FeatureView)
    assert view.name == "user_txn_stats" and view.entities == ["user"]
    assert [(f.name, f.dtype) for f in view.features] == [("txn_count_7d", "int64"), ("txn_amount_avg_7d", "float64"), ("txn_amount_std_30d", "float64")]
    assert view.features[0].description == "Transactions in the last 7 days"
    assert view.ttl == timedelta(days=3)
    assert view.online is True and view.owner == "fraud-team"
    assert view.tags == {"domain": "payments", "pii": "false"}
    assert view.description == "Rolling transaction statistics per user"
    assert view.source == "user_txn_source"  # any registry field, as an attribute
    assert view.to_dict()["name"] == "user_txn_stats"
    assert store.get_feature_view("merchant_stats").ttl == timedelta(days=7)

    windows = store.get_feature_view("user_txn_windows")
    assert windows.ttl is None and len(windows.aggregations) == 7
    assert "count_1h" in [f.name for f in windows.features] and "count_24h" in [f.name for f in windows.features]

    entity = store.get_entity("user")
    assert entity.join_keys == ["user_id"] and entity.join_key == "user_id" and entity.description == "A card holder"
    source = store.get_data_source("user_txn_source")
    assert source.timestamp_field == "event_timestamp" and source.created_timestamp_column == "created_at"
    assert source.path == "data/user_txn_stats.parquet"
    service = store.get_feature_service("fraud_model_v1")
    assert service.features == ["user_txn_stats:txn_count_7d", "user_txn_stats:txn_amount_avg_7d", "merchant_stats"]
    assert service.owner == "fraud-team"
    odfv = store.get_on_demand_feature_view("txn_ratios")
    assert odfv.sources == ["user_txn_stats", "txn_request"]
    assert [(f.name, f.dtype, f.expr) for f in odfv.features] == [("amount_to_avg_ratio", "float64", "amount / nullif(txn_amount_avg_7d, 0)"), ("is_large", "bool", "amount > 1000")]
    request = store.get_request_source("txn_request")
    assert [(f.name, f.dtype) for f in request.schema] == [("amount", "float64")]
    assert store.get_feature_view("user_txn_stats") == view
    assert "user_txn_stats" in repr(view)


@pytest.mark.parametrize(
    "call, name, suggestion",
    [
        ("get_feature_view", "user_txn_stat", "user_txn_stats"),
        ("get_entity", "usr", "user"),
        ("get_feature_service", "fraud_model_v2", "fraud_model_v1"),
        ("get_on_demand_feature_view", "txn_ratio", "txn_ratios"),
        ("get_data_source", "merchant_sources", "merchant_source"),
    ],
)
def test_unknown_names_suggest(demo: Any, call: str, name: str, suggestion: str) -> None:
    with pytest.raises(almanac.NotFoundError) as caught:
        getattr(demo.store, call)(name)
    message = str(caught.value)
    assert name in message and f"did you mean `{suggestion}`" in message, message
    assert isinstance(caught.value, almanac.AlmanacError)


def test_plan_and_apply_match_the_cli(tmp_path: Path) -> None:
    data = lib.write_pit_repo(tmp_path / "repo")
    store = almanac.FeatureStore(data.root)
    plan = store.plan()
    assert isinstance(plan, almanac.Plan) and not plan.is_empty
    assert plan.to_dict() == lib.cli_json(["plan"], repo=data.root)
    assert lib.run_cli(["plan"], repo=data.root).stdout.startswith(str(plan))
    assert {(c["kind"], c["name"], c["action"]) for c in plan.changes} >= {("entity", "user", "add"), ("feature_view", "user_stats", "add"), ("feature_service", "svc_all", "add")}
    applied = store.apply()
    assert applied.version == 1 and applied.changes == plan.changes
    again = store.apply()
    assert again.is_empty and again.version == 1
    assert store.plan().is_empty
    assert lib.cli_json(["plan"], repo=data.root)["changes"] == []
    with pytest.raises(almanac.InvalidInputError, match="YAML"):
        store.apply(objects=[store.get_entity("user")])
    with pytest.raises(almanac.InvalidInputError):
        store.apply([])


# ---------------------------------------------------------------- training sets


def test_service_training_set_equals_the_cli(demo: Any, tmp_path: Path) -> None:
    import pandas as pd
    import polars as pl

    labels_path = demo.root / "data" / "labels.parquet"
    out = tmp_path / "train.parquet"
    lib.run_cli(["historical", "--entities", labels_path, "--feature-service", "fraud_model_v1", "--output", out], repo=demo.root)
    cli = pq.read_table(out)
    frame = pd.read_parquet(labels_path)
    sdk = demo.store.get_historical_features(entity_df=frame, feature_service="fraud_model_v1").to_arrow()
    features = ["txn_count_7d", "txn_amount_avg_7d", "merchant_fraud_rate_30d", "merchant_txn_count_1d"]
    assert sdk.column_names == demo.labels.column_names + features
    assert cli.column_names == sdk.column_names
    for name in sdk.column_names:
        assert sdk.column(name).to_pylist() == cli.column(name).to_pylist(), name
    assert sdk.column("txn_count_7d").null_count < sdk.num_rows, "some labels find a value"
    # polars and naive pandas timestamps: the same answer.
    naive = frame.assign(event_timestamp=frame["event_timestamp"].dt.tz_convert(None))
    by_polars = demo.store.get_historical_features(entity_df=pl.read_parquet(labels_path), feature_service="fraud_model_v1").to_arrow()
    by_naive = demo.store.get_historical_features(entity_df=naive, feature_service="fraud_model_v1").to_arrow()
    for name in features:
        assert by_polars.column(name).to_pylist() == sdk.column(name).to_pylist(), name
        assert by_naive.column(name).to_pylist() == sdk.column(name).to_pylist(), name


def test_on_demand_features_offline(demo: Any, tmp_path: Path) -> None:
    refs = ["txn_ratios", "user_txn_stats:txn_amount_avg_7d"]
    job = demo.store.get_historical_features(entity_df=demo.labels, features=refs)
    table = job.to_arrow()
    assert table.column_names == demo.labels.column_names + ["amount_to_avg_ratio", "is_large", "txn_amount_avg_7d"]
    amounts = table.column("amount").to_pylist()
    averages = table.column("txn_amount_avg_7d").to_pylist()
    ratios = table.column("amount_to_avg_ratio").to_pylist()
    large = table.column("is_large").to_pylist()
    for amount, average, ratio, is_large in zip(amounts, averages, ratios, large):
        assert ratio == (None if average is None or average == 0 else amount / average)
        assert is_large == (amount > 1000)
    assert any(r is not None for r in ratios) and any(r is None for r in ratios)
    assert any(large) and not all(large)
    out = tmp_path / "odfv.parquet"
    lib.run_cli(["historical", "--entities", demo.root / "data" / "labels.parquet", "--features", ",".join(refs), "--output", out], repo=demo.root)
    cli = pq.read_table(out)
    for name in table.column_names:
        assert cli.column(name).to_pylist() == table.column(name).to_pylist(), name
    # Request data is a column of the entity table; without it, an error naming it.
    with pytest.raises(almanac.InvalidInputError, match="amount"):
        demo.store.get_historical_features(entity_df=demo.labels.drop(["amount"]), features=["txn_ratios:is_large"])


def test_aggregation_features_offline(demo: Any, tmp_path: Path) -> None:
    """Every aggregate at every label's own T over [T - w, T), brute force."""
    specs = aggregations(demo.store)
    table = demo.store.get_historical_features(entity_df=demo.labels, features=["user_txn_windows"]).to_arrow()
    events = events_by_user(demo.labels)
    users = demo.labels.column("user_id").to_pylist()
    times = demo.labels.column("event_timestamp").cast(pa.int64()).to_pylist()
    for name, function, column, window in specs:
        got = table.column(name).to_pylist()
        for i, (user, at) in enumerate(zip(users, times)):
            want = aggregate(function, column, window_events(events.get(user, []), at, window))
            assert close(got[i], want, function), f"{name} of label {i} (user {user}, T={lib.from_micros(at)}): got {got[i]!r}, brute force {want!r}"
    counts = table.column("count_7d").to_pylist()
    assert any(c > 0 for c in counts) and any(c == 0 for c in counts)
    out = tmp_path / "windows.parquet"
    lib.run_cli(["historical", "--entities", demo.root / "data" / "labels.parquet", "--features", "user_txn_windows", "--output", out], repo=demo.root)
    cli = pq.read_table(out)
    for name, *_ in specs:
        assert cli.column(name).to_pylist() == table.column(name).to_pylist(), name


# ---------------------------------------------------------------- online


def test_materialized_demo(demo_online: Any) -> None:
    reports = {r["view"]: r for r in demo_online.reports}
    assert sorted(reports) == ["merchant_stats", "user_txn_stats", "user_txn_windows"]
    demo = demo_online.demo
    assert reports["user_txn_stats"]["source_rows"] == demo.users.num_rows
    assert reports["user_txn_stats"]["entities"] == len(set(demo.users.column("user_id").to_pylist()))
    assert reports["merchant_stats"]["entities"] == len(set(demo.merchants.column("merchant_id").to_pylist()))
    assert reports["user_txn_windows"].get("state_bytes", 0) > 0
    for report in reports.values():
        assert lib.parse_rfc3339(report["end"]) == demo_online.end


def _recent(table: pa.Table, key: str, within: int, count: int) -> List[Tuple[int, int]]:
    """`count` keys whose newest event time is within `within` µs of now,
    with that time."""
    keys = table.column(key).to_pylist()
    times = table.column("event_timestamp").cast(pa.int64()).to_pylist()
    newest: Dict[int, int] = {}
    for k, t in zip(keys, times):
        newest[k] = max(newest.get(k, t), t)
    now = lib.now_micros()
    fresh = sorted((k, t) for k, t in newest.items() if t > now - within)
    assert len(fresh) >= count, f"too few fresh {key}s"
    return fresh[:count]


def same_as_cli_eventually(read_sdk: Callable[[], Any], read_cli: Callable[[], Dict[str, Any]], attempts: int = 3) -> Tuple[Any, Dict[str, Any]]:
    """The SDK's answer equals the CLI's. Both read at their own `now`, so a
    value crossing a TTL or window edge in between may differ once: retry."""
    failure: Any = None
    for _ in range(attempts):
        response, body = read_sdk(), read_cli()
        try:
            assert_cli_shape(response, body)
            return response, body
        except AssertionError as error:  # pragma: no cover - timing only
            failure = error
    raise failure


def assert_cli_shape(response: Any, body: Dict[str, Any]) -> None:
    names = body["metadata"]["feature_names"]
    assert names == list(response.to_dict())
    values, statuses, times = response.to_dict(), response.statuses, response.event_timestamps
    for name, result in zip(names, body["results"]):
        assert result["values"] == values[name], name
        assert result["statuses"] == statuses[name], name
        assert [lib.parse_rfc3339(t) for t in result["event_timestamps"]] == [lib.EPOCH if t is None else t for t in times[name]], name


def test_online_service_equals_the_cli(demo_online: Any) -> None:
    demo = demo_online.demo
    users = _recent(demo.users, "user_id", lib.DAY, 3)
    merchants = _recent(demo.merchants, "merchant_id", lib.DAY, 3)
    rows = [{"user_id": u, "merchant_id": m} for (u, _), (m, _) in zip(users, merchants)] + [{"user_id": UNKNOWN, "merchant_id": UNKNOWN}]
    args = ["online", "--feature-service", "fraud_model_v1"]
    for row in rows:
        args += ["--entity", f"user_id={row['user_id']},merchant_id={row['merchant_id']}"]
    response, _ = same_as_cli_eventually(lambda: demo.store.get_online_features(feature_service="fraud_model_v1", entity_rows=rows), lambda: lib.cli_json(args, repo=demo.root))
    statuses, times = response.statuses, response.event_timestamps
    for i, (user, newest) in enumerate(users):
        assert statuses["txn_count_7d"][i] == "PRESENT"
        assert lib.micros(times["txn_count_7d"][i]) == newest
    for i, (merchant, newest) in enumerate(merchants):
        assert statuses["merchant_fraud_rate_30d"][i] in ("PRESENT", "NULL_VALUE")
        assert lib.micros(times["merchant_txn_count_1d"][i]) == newest
    last = len(rows) - 1
    for name in ("txn_count_7d", "txn_amount_avg_7d", "merchant_fraud_rate_30d", "merchant_txn_count_1d"):
        assert statuses[name][last] == "NOT_FOUND" and response.to_dict()[name][last] is None
    by_columns = demo.store.get_online_features(feature_service="fraud_model_v1", entities={"user_id": [r["user_id"] for r in rows], "merchant_id": [r["merchant_id"] for r in rows]})
    assert by_columns.to_dict() == response.to_dict()


def test_online_on_demand_features(demo_online: Any) -> None:
    demo = demo_online.demo
    users = [u for u, _ in _recent(demo.users, "user_id", lib.DAY, 2)]
    rows = [{"user_id": users[0], "amount": 1250.0}, {"user_id": users[1], "amount": 3.5}, {"user_id": UNKNOWN, "amount": 20.0}]
    refs = ["txn_ratios:amount_to_avg_ratio", "txn_ratios:is_large", "user_txn_stats:txn_amount_avg_7d"]
    args = ["online", "--features", ",".join(refs)]
    for row in rows:
        args += ["--entity", f"user_id={row['user_id']}"]
    for row in rows:
        args += ["--request", f"amount={row['amount']}"]
    response, _ = same_as_cli_eventually(lambda: demo.store.get_online_features(features=refs, entity_rows=rows), lambda: lib.cli_json(args, repo=demo.root))
    values, statuses = response.to_dict(), response.statuses
    assert list(values) == ["user_id", "amount", "amount_to_avg_ratio", "is_large", "txn_amount_avg_7d"]
    for i, row in enumerate(rows):
        average = values["txn_amount_avg_7d"][i]
        want = None if average is None or average == 0 else row["amount"] / average
        assert values["amount_to_avg_ratio"][i] == want
        assert statuses["amount_to_avg_ratio"][i] == ("NULL_VALUE" if want is None else "PRESENT")
        assert values["is_large"][i] == (row["amount"] > 1000) and statuses["is_large"][i] == "PRESENT"
    assert statuses["txn_amount_avg_7d"][2] == "NOT_FOUND" and values["amount_to_avg_ratio"][2] is None
    # An integer amount widens to float64, as over HTTP.
    widened = demo.store.get_online_features(features=["txn_ratios:is_large"], entity_rows=[{"user_id": users[0], "amount": 2000}])
    assert widened.to_dict()["is_large"] == [True]
    with pytest.raises(almanac.InvalidInputError, match="amount"):
        demo.store.get_online_features(features=refs, entity_rows=[{"user_id": users[0]}])


def test_online_aggregation_features(demo_online: Any) -> None:
    """Each aggregate at the read's instant over [now - w, now), against the
    transactions by brute force (the instant lies between two clock reads)."""
    demo = demo_online.demo
    specs = aggregations(demo.store)
    events = events_by_user(demo.labels)
    now = lib.now_micros()
    busiest = sorted(events, key=lambda u: (-len(window_events(events[u], now, 7 * lib.DAY)), u))[:4]
    assert len(window_events(events[busiest[0]], now, 7 * lib.DAY)) > 0
    rows = [{"user_id": u} for u in busiest] + [{"user_id": UNKNOWN}]
    refs = [f"user_txn_windows:{name}" for name, *_ in specs]
    for _ in range(3):
        before = lib.now_micros()
        response = demo.store.get_online_features(features=refs, entity_rows=rows)
        after = lib.now_micros()
        # The window's ends are known to within [before, after]: the event
        # sets at both ends must agree for the answer to be exact.
        stable = all(window_events(events.get(r["user_id"], []), before, w) == window_events(events.get(r["user_id"], []), after, w) for r in rows for *_, w in specs)
        if stable:
            break
    assert stable, "events kept crossing a window edge during the read"
    values, statuses = response.to_dict(), response.statuses
    for name, function, column, window in specs:
        for i, row in enumerate(rows):
            want = aggregate(function, column, window_events(events.get(row["user_id"], []), before, window))
            assert close(values[name][i], want, function), f"{name} of user {row['user_id']}: got {values[name][i]!r}, brute force {want!r}"
            assert statuses[name][i] == ("NULL_VALUE" if want is None else "PRESENT"), (name, i, statuses[name][i])
    assert values["count_7d"][len(rows) - 1] == 0  # no events: the empty window
    args = ["online", "--features", ",".join(refs)]
    for row in rows:
        args += ["--entity", f"user_id={row['user_id']}"]
    same_as_cli_eventually(lambda: demo.store.get_online_features(features=refs, entity_rows=rows), lambda: lib.cli_json(args, repo=demo.root))


# ---------------------------------------------------------------- the GIL


def test_gil_is_released_while_a_training_set_is_built(demo: Any) -> None:
    """A Python thread keeps counting while the core builds a training set:
    it advances throughout the call, not only before and after it."""
    import numpy as np

    labels = demo.labels.select(["user_id", "merchant_id", "event_timestamp"])
    rng = np.random.default_rng(0)
    demo.store.get_historical_features(entity_df=labels.slice(0, 10), feature_service="fraud_model_v1")  # warm up (runtime, caches)

    rows = 300_000
    for _ in range(5):
        entities = labels.take(pa.array(rng.integers(0, labels.num_rows, rows))).combine_chunks()
        samples: List[float] = []
        counter = [0]
        running = [True]

        def spin() -> None:
            count = 0
            clock = time.perf_counter
            while running[0]:
                count += 1
                if count & 255 == 0:
                    samples.append(clock())
                    counter[0] = count
            counter[0] = count

        thread = threading.Thread(target=spin, daemon=True)
        thread.start()
        while counter[0] < 256 * 20:  # the thread is up and counting
            time.sleep(0.001)
        start_count, start = counter[0], time.perf_counter()
        job = demo.store.get_historical_features(entity_df=entities, feature_service="fraud_model_v1")
        end, end_count = time.perf_counter(), counter[0]
        running[0] = False
        thread.join()
        assert job.num_rows == rows
        seconds = end - start
        if seconds >= 0.4 or rows >= 3_000_000:
            break
        rows *= 2  # too quick to tell: a bigger table
    inside = [start] + [s for s in samples if start < s < end] + [end]
    longest_pause = max(b - a for a, b in zip(inside, inside[1:]))
    advanced = end_count - start_count
    assert advanced > 1000, f"the Python thread counted only {advanced} while the call ran {seconds:.3f} s: the GIL was held"
    assert longest_pause < 0.5 * seconds, f"the Python thread stood still for {longest_pause:.3f} s of a {seconds:.3f} s call ({rows} rows): the GIL was held"
