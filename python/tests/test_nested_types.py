"""Feast's Json, Map and Struct value types (and lists of structs) as Almanac
dtypes, end to end: Parquet files whose columns are structs (in another
field order, with an extra field), Arrow maps, JSON text and lists of
structs; `apply`; training sets; materialization into the embedded store and
Redis; online reads from the SDK, the CLI and the HTTP server, whose JSON
has Feast's shapes (a struct or map is an object, JSON is its text, as
Feast's server sends it)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import almanac_testlib as lib

UTC = timezone.utc
T0 = datetime(2026, 3, 1, tzinfo=UTC)

FEATURES_YAML = """\
entities:
  - name: driver
    join_keys: [driver_id]
sources:
  - name: drivers
    path: data/drivers.parquet
    timestamp_field: event_timestamp
feature_views:
  - name: driver_profile
    entities: [driver]
    source: drivers
    schema:
      - {name: profile, dtype: "struct<name: string, age: int64>"}
      - {name: metadata, dtype: "struct<vehicle_type: string, rating: string>"}
      - {name: scores, dtype: "map<float64>"}
      - {name: config, dtype: json}
      - {name: stops, dtype: "list<struct<x: float64, label: string>>"}
"""

FEATURES = ["driver_profile:profile", "driver_profile:metadata", "driver_profile:scores", "driver_profile:config", "driver_profile:stops"]
NAMES = [f.split(":")[1] for f in FEATURES]

# (driver, hours after T0, profile, metadata, scores, config, stops); the
# file's struct holds `age` before `name` and an extra field.
ROWS: List[Any] = [
    (1, 0, {"age": 31, "name": "ann", "extra": 1.5}, {"vehicle_type": "car", "rating": "4.5"}, [("a", 1.0), ("b", None)], '{"a": [1, 2], "b": null}', [{"x": 1.0, "label": "p"}, None]),
    (1, 5, {"age": None, "name": "ann2", "extra": None}, None, [], '"just text"', []),
    (2, 1, None, {"vehicle_type": "van", "rating": None}, None, None, None),
    (3, 2, {"age": 40, "name": None, "extra": 0.0}, {"vehicle_type": None, "rating": "3"}, [("k", -0.5)], "[1, 2, 3]", [{"x": None, "label": None}]),
]


def expected_value(name: str, row: Any) -> Any:
    """What Almanac serves for one cell, as JSON would carry it."""
    _, _, profile, metadata, scores, config, stops = row
    if name == "profile":
        return None if profile is None else {"name": profile["name"], "age": profile["age"]}
    if name == "metadata":
        return metadata
    if name == "scores":
        return None if scores is None else dict(scores)
    if name == "config":
        return config
    return stops


def write_repo(root: Path, online: str) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "almanac.yaml").write_text(f"project: nested_{uuid.uuid4().hex[:8]}\n{online}")
    (root / "features.yaml").write_text(FEATURES_YAML)
    profile_type = pa.struct([("age", pa.int64()), ("name", pa.string()), ("extra", pa.float64())])
    metadata_type = pa.struct([("vehicle_type", pa.string()), ("rating", pa.string())])
    stops_type = pa.list_(pa.struct([("x", pa.float64()), ("label", pa.string())]))
    table = pa.table(
        {
            "driver_id": pa.array([r[0] for r in ROWS], pa.int64()),
            "event_timestamp": pa.array([T0 + timedelta(hours=r[1]) for r in ROWS], pa.timestamp("us", tz="UTC")),
            "profile": pa.array([r[2] for r in ROWS], profile_type),
            "metadata": pa.array([r[3] for r in ROWS], metadata_type),
            "scores": pa.array([r[4] for r in ROWS], pa.map_(pa.string(), pa.float64())),
            "config": pa.array([r[5] for r in ROWS], pa.large_string()),
            "stops": pa.array([r[6] for r in ROWS], stops_type),
        }
    )
    pq.write_table(table, root / "data" / "drivers.parquet")
    return root


def normalize(value: Any) -> Any:
    """pyarrow gives maps as (key, value) pairs; JSON gives objects."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return {k: normalize(v) for k, v in value}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    return value


def typed(value: Any, data_type: Any) -> Any:
    """A cell as JSON would carry it, by its Arrow type (an empty map is
    `{}`, not pyarrow's empty list of pairs)."""
    if value is None:
        return None
    if pa.types.is_map(data_type):
        return {k: typed(v, data_type.item_type) for k, v in value}
    if pa.types.is_struct(data_type):
        return {f.name: typed(value.get(f.name), f.type) for f in data_type}
    if pa.types.is_list(data_type):
        return [typed(v, data_type.value_type) for v in value]
    return value


@pytest.fixture(scope="module")
def repo(tmp_path_factory: Any, almanac: Any) -> Path:
    root = write_repo(tmp_path_factory.mktemp("nested") / "repo", "")
    almanac.FeatureStore(root).apply()
    return root


def test_training_sets_carry_structs_maps_json_and_lists_of_structs(repo: Path, almanac: Any) -> None:
    store = almanac.FeatureStore(repo)
    view = store.get_feature_view("driver_profile")
    assert [(f.name, f.dtype) for f in view.features] == [
        ("profile", "struct<name: string, age: int64>"),
        ("metadata", "struct<vehicle_type: string, rating: string>"),
        ("scores", "map<float64>"),
        ("config", "json"),
        ("stops", "list<struct<x: float64, label: string>>"),
    ]
    probes = [(1, 0), (1, 4), (1, 6), (2, 1), (3, 3), (4, 3), (1, -1)]
    entity_df = pa.table({"driver_id": [p[0] for p in probes], "event_timestamp": pa.array([T0 + timedelta(hours=p[1]) for p in probes], pa.timestamp("us", tz="UTC"))})
    table = store.get_historical_features(entity_df=entity_df, features=FEATURES).to_arrow()
    assert table.schema.field("profile").type == pa.struct([("name", pa.string()), ("age", pa.int64())])
    assert pa.types.is_map(table.schema.field("scores").type)
    for index, (driver, hours) in enumerate(probes):
        candidates = [r for r in ROWS if r[0] == driver and r[1] <= hours]
        winner = max(candidates, key=lambda r: r[1]) if candidates else None
        for name in NAMES:
            got = typed(table.column(name)[index].as_py(), table.schema.field(name).type)
            want = None if winner is None else expected_value(name, winner)
            assert got == want, (driver, hours, name, got, want)
    # The CLI writes the same training set to Parquet.
    labels = repo / "labels.parquet"
    pq.write_table(entity_df, labels)
    out = repo / "train.parquet"
    lib.run_cli(["historical", "--entities", str(labels), "--features", ",".join(FEATURES), "--output", str(out)], repo=repo)
    assert pq.read_table(out).select(NAMES).to_pylist() == table.select(NAMES).to_pylist()


def read_online(repo: Path, almanac: Any) -> Dict[str, List[Any]]:
    store = almanac.FeatureStore(repo)
    reports = store.materialize(T0 - timedelta(days=1), datetime.now(UTC))
    assert reports[0]["entities"] == 3
    response = store.get_online_features(features=FEATURES, entity_rows=[{"driver_id": 1}, {"driver_id": 2}, {"driver_id": 3}, {"driver_id": 9}])
    values = response.to_dict()
    assert response.statuses["profile"] == ["PRESENT", "NULL_VALUE", "PRESENT", "NOT_FOUND"]
    latest = {1: ROWS[1], 2: ROWS[2], 3: ROWS[3]}
    for name in NAMES:
        got = [normalize(v) for v in values[name]]
        assert got == [expected_value(name, latest[d]) for d in (1, 2, 3)] + [None], (name, got)
    return values


def test_online_on_the_embedded_store_and_the_cli(repo: Path, almanac: Any) -> None:
    read_online(repo, almanac)
    process = lib.run_cli(["online", "--features", ",".join(FEATURES), "--entity", "driver_id=1", "--entity", "driver_id=3", "--json"], repo=repo)
    body = json.loads(process.stdout)
    names = body["metadata"]["feature_names"]
    results = dict(zip(names, body["results"]))
    assert results["profile"]["values"] == [{"name": "ann2", "age": None}, {"name": None, "age": 40}]
    assert results["scores"]["values"] == [{}, {"k": -0.5}]
    assert results["config"]["values"] == ['"just text"', "[1, 2, 3]"]
    assert results["stops"]["values"] == [[], [{"x": None, "label": None}]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(root: Path) -> Iterator[str]:
    """`almanac serve` on the repo at a free port, until the block ends; its URL."""
    port = free_port()
    server = subprocess.Popen([str(lib.almanac_bin()), "--repo", str(root), "serve", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def post(url: str, body: Dict[str, Any]) -> Tuple[int, Any]:
    """POST JSON; the status and the JSON answer (error bodies included)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        return 200, json.loads(urllib.request.urlopen(request, timeout=10).read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_http_server_answers_in_feasts_shapes_and_takes_pushes_of_them(repo: Path, almanac: Any) -> None:
    almanac.FeatureStore(repo).materialize(T0 - timedelta(days=1), datetime.now(UTC))
    with served(repo) as url:
        status, body = post(f"{url}/get-online-features", {"features": FEATURES, "entities": {"driver_id": [1, 2]}})
        assert status == 200, body
        results = dict(zip(body["metadata"]["feature_names"], body["results"]))
        # Feast's server: a struct or a map is a JSON object, JSON is its text.
        assert results["metadata"]["values"] == [None, {"vehicle_type": "van", "rating": None}]
        assert results["profile"]["values"] == [{"name": "ann2", "age": None}, None]
        assert results["scores"]["values"] == [{}, None]
        assert results["config"]["values"] == ['"just text"', None]
        assert results["metadata"]["statuses"] == ["NULL_VALUE", "PRESENT"]


def test_redis_stores_the_same_values(tmp_path: Path, almanac: Any) -> None:
    root = write_repo(tmp_path / "repo", 'online: {type: redis, url: "redis://127.0.0.1:6379/0"}\n')
    almanac.FeatureStore(root).apply()
    read_online(root, almanac)


def test_pushes_and_mistakes(tmp_path: Path, almanac: Any) -> None:
    """Values pushed as Python objects, converted by the declared dtypes; a
    wrong shape and invalid JSON are refused with the column named."""
    root = write_repo(tmp_path / "repo", "")
    text = (root / "features.yaml").read_text()
    text = text.replace("    path: data/drivers.parquet\n", "    path: data/drivers\n")
    text = text.replace("feature_views:\n", "  - name: drivers_push\n    batch_source: drivers\nfeature_views:\n")
    (root / "data" / "drivers").mkdir()
    (root / "data" / "drivers.parquet").rename(root / "data" / "drivers" / "part-0.parquet")
    # The push source is a source with a batch_source; the view reads it.
    text = text.replace("    source: drivers\n", "    source: drivers_push\n")
    (root / "features.yaml").write_text(text)
    store = almanac.FeatureStore(root)
    store.apply()
    now = datetime.now(UTC)
    pushed = pa.table(
        {
            "driver_id": [7],
            "event_timestamp": pa.array([now], pa.timestamp("us", tz="UTC")),
            "profile": pa.array([{"name": "zed", "age": 50}], pa.struct([("name", pa.string()), ("age", pa.int64())])),
            "metadata": pa.array([{"vehicle_type": "bus", "rating": "5"}], pa.struct([("vehicle_type", pa.string()), ("rating", pa.string())])),
            "scores": pa.array([[("q", 9.0)]], pa.map_(pa.string(), pa.float64())),
            "config": ['{"ok": true}'],
            "stops": pa.array([[{"x": 2.0, "label": "s"}]], pa.list_(pa.struct([("x", pa.float64()), ("label", pa.string())]))),
        }
    )
    store.push("drivers_push", pushed, to="online_and_offline")
    got = store.get_online_features(features=FEATURES, entity_rows=[{"driver_id": 7}]).to_dict()
    assert normalize(got["profile"]) == [{"name": "zed", "age": 50}]
    assert normalize(got["scores"]) == [{"q": 9.0}]
    assert got["config"] == ['{"ok": true}']
    train = store.get_historical_features(entity_df=pa.table({"driver_id": [7], "event_timestamp": pa.array([now], pa.timestamp("us", tz="UTC"))}), features=FEATURES).to_arrow()
    assert train.column("metadata").to_pylist() == [{"vehicle_type": "bus", "rating": "5"}]
    bad = pushed.set_column(5, "config", pa.array(["{not json"]))
    with pytest.raises(almanac.AlmanacError, match="config"):
        store.push("drivers_push", bad, to="online")

    # The same through the HTTP server's /push, Feast's JSON body: objects for
    # structs and maps, a JSON value (or its text) for a json feature.
    with served(root) as url:
        stamp = (now + timedelta(seconds=1)).isoformat()
        df = {
            "driver_id": [8],
            "event_timestamp": [stamp],
            "profile": [{"name": "yan", "age": 22}],
            "metadata": [{"vehicle_type": "bike", "rating": None}],
            "scores": [{"m": 1, "n": 2.5}],
            "config": [{"nested": [1, {"x": None}]}],
            "stops": [[{"x": 3, "label": "t"}]],
        }
        status, body = post(f"{url}/push", {"push_source_name": "drivers_push", "df": df, "to": "online"})
        assert status == 200, body
        status, body = post(f"{url}/get-online-features", {"features": FEATURES, "entities": {"driver_id": [8]}})
        results = dict(zip(body["metadata"]["feature_names"], body["results"]))
        assert results["profile"]["values"] == [{"name": "yan", "age": 22}]
        assert results["metadata"]["values"] == [{"vehicle_type": "bike", "rating": None}]
        assert results["scores"]["values"] == [{"m": 1.0, "n": 2.5}]
        assert json.loads(results["config"]["values"][0]) == {"nested": [1, {"x": None}]}
        assert results["stops"]["values"] == [[{"x": 3.0, "label": "t"}]]
        # A field the struct does not have is a 400 naming it.
        wrong = dict(df, profile=[{"name": "yan", "height": 2}])
        status, body = post(f"{url}/push", {"push_source_name": "drivers_push", "df": wrong, "to": "online"})
        assert status == 400 and "height" in json.dumps(body), (status, body)


def test_a_wrong_dtype_suggests_the_struct_the_file_holds(tmp_path: Path, almanac: Any) -> None:
    """The apply-time check names the file's type as a valid dtype, quoted
    for YAML (not Arrow's `Struct("age": Int64, ...)`)."""
    root = write_repo(tmp_path / "repo", "")
    text = (root / "features.yaml").read_text().replace('{name: profile, dtype: "struct<name: string, age: int64>"}', "{name: profile, dtype: string}")
    (root / "features.yaml").write_text(text)
    with pytest.raises(almanac.DefinitionError) as error:
        almanac.FeatureStore(root).apply()
    message = str(error.value)
    assert 'declare `dtype: "struct<age: int64, name: string, extra: float64>"`' in message, message
    assert "features.yaml:13" in message, message
    # The suggestion, pasted in, applies.
    (root / "features.yaml").write_text(text.replace("{name: profile, dtype: string}", '{name: profile, dtype: "struct<age: int64, name: string, extra: float64>"}'))
    assert almanac.FeatureStore(root).apply().version == 1
