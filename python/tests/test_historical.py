"""Training sets through the SDK (DESIGN §2, §11) on the hand-built
adversarial repo: equal to a brute-force oracle and to the CLI, whatever
form the entity table comes in."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Dict, List

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import almanac
import almanac_testlib as lib


def assert_features(table: pa.Table, expected: Dict[str, List[Any]], refs: List[str], names: List[str], context: Any = None) -> None:
    for ref, name in zip(refs, names):
        assert name in table.column_names, f"no column {name!r} in {table.column_names}"
        actual = table.column(name).to_pylist()
        problem = lib.mismatches(actual, expected[ref], context)
        assert not problem, f"{ref} ({name}) differs from the oracle:\n{problem}"


def row_context(pit: Any, rows: List[Dict[str, Any]] = None) -> List[str]:
    rows = pit.data.entity_rows if rows is None else rows
    return [f"user={r['user_id']} device={r['device_id']} T={lib.from_micros(r['event_timestamp'])}" for r in rows]


# ---------------------------------------------------------------- the oracle


def test_the_data_is_adversarial(pit: Any) -> None:
    """The oracle's cases are really exercised (otherwise the equality
    tests below would prove little)."""
    stats = pit.data.stats
    for case in ("null_key", "null_time", "tie_on_created", "tie_on_values", "at_exactly_ts", "at_exactly_ttl_edge", "just_past_ttl", "null_in_winner", "duplicates"):
        assert stats[case] > 0, f"no entity row exercises {case}: {stats}"
    expected = pit.data.expected()
    for ref, values in expected.items():
        assert any(v is not None for v in values), f"{ref} is never found"
        assert any(v is None for v in values), f"{ref} is never null"


def test_sdk_equals_the_oracle(pit: Any) -> None:
    entities = pit.data.entity_table()
    job = pit.store.get_historical_features(entity_df=entities, features=lib.ALL_REFS)
    table = job.to_arrow()
    assert table.num_rows == entities.num_rows
    assert table.column_names == lib.ENTITY_COLUMNS + lib.ALL_NAMES
    # Input columns unchanged, in input order (duplicates kept).
    for name in lib.ENTITY_COLUMNS:
        assert table.column(name).to_pylist() == entities.column(name).to_pylist(), name
    assert table.column("row_id").to_pylist() == list(range(entities.num_rows))
    assert_features(table, pit.data.expected(), lib.ALL_REFS, lib.ALL_NAMES, row_context(pit))
    # Declared dtypes (an int64 feature with nulls stays int64).
    types = {f.name: f.type for f in table.schema}
    assert types["f_int"] == pa.int64() and types["pair_count"] == pa.int64() and types["clicks"] == pa.int64()
    assert types["f_float"] == pa.float64() and types["risk"] == pa.float64()
    assert pa.types.is_string(types["f_str"]) or pa.types.is_large_string(types["f_str"])


def test_cli_equals_sdk_and_oracle(pit: Any, tmp_path: Path) -> None:
    entities = pit.data.entity_table()
    path = tmp_path / "entities.parquet"
    pq.write_table(entities, path)
    expected = pit.data.expected()

    out = tmp_path / "cli.parquet"
    lib.run_cli(["historical", "--entities", path, "--features", ",".join(lib.ALL_REFS), "--output", out], repo=pit.root)
    cli = pq.read_table(out)
    sdk = pit.store.get_historical_features(entity_df=entities, features=lib.ALL_REFS).to_arrow()
    assert cli.column_names == sdk.column_names
    assert_features(cli, expected, lib.ALL_REFS, lib.ALL_NAMES, row_context(pit))
    for name in sdk.column_names:
        assert cli.column(name).to_pylist() == sdk.column(name).to_pylist(), name

    # Full feature names and a feature service, both ways.
    full = tmp_path / "full.parquet"
    lib.run_cli(["historical", "--entities", path, "--feature-service", "svc_all", "--full-feature-names", "--output", full], repo=pit.root)
    cli_full = pq.read_table(full)
    sdk_full = pit.store.get_historical_features(entity_df=entities, feature_service="svc_all", full_feature_names=True).to_arrow()
    full_names = [ref.replace(":", "__") for ref in lib.SERVICE_REFS]
    assert cli_full.column_names == lib.ENTITY_COLUMNS + full_names
    assert sdk_full.column_names == cli_full.column_names
    for name in full_names:
        assert sdk_full.column(name).to_pylist() == cli_full.column(name).to_pylist(), name
    assert_features(sdk_full, expected, lib.SERVICE_REFS, full_names)


def test_timestamp_column_option(pit: Any) -> None:
    entities = pit.data.entity_table()
    renamed = entities.rename_columns(["row_id", "user_id", "device_id", "as_of", "y", "segment"])
    job = pit.store.get_historical_features(entity_df=renamed, features=lib.ALL_REFS, timestamp_column="as_of")
    table = job.to_arrow()
    assert table.column_names[:6] == ["row_id", "user_id", "device_id", "as_of", "y", "segment"]
    assert_features(table, pit.data.expected(), lib.ALL_REFS, lib.ALL_NAMES)


# ---------------------------------------------------------------- entity table forms


def _pandas_base(pit: Any, rows: List[Dict[str, Any]] = None) -> Any:
    """The entity rows as pandas: nullable Int64 user ids, object strings
    with None, tz-aware UTC timestamps (NaT where missing)."""
    import pandas as pd

    rows = pit.data.entity_rows if rows is None else rows
    stamps = pd.Series([pd.NaT if r["event_timestamp"] is None else pd.Timestamp(r["event_timestamp"], unit="us", tz="UTC") for r in rows])
    assert str(stamps.dt.tz) == "UTC"
    return pd.DataFrame(
        {
            "row_id": pd.Series([r["row_id"] for r in rows], dtype="int64"),
            "user_id": pd.array([r["user_id"] for r in rows], dtype="Int64"),
            "device_id": pd.Series([r["device_id"] for r in rows], dtype="object"),
            "event_timestamp": stamps,
            "y": pd.Series([r["y"] for r in rows], dtype="float64"),
            "segment": pd.Series([r["segment"] for r in rows], dtype="object"),
        }
    )


def pandas_naive(pit: Any) -> Any:
    frame = _pandas_base(pit)
    frame["event_timestamp"] = frame["event_timestamp"].dt.tz_convert(None)  # naive = UTC wall time
    assert frame["event_timestamp"].dt.tz is None
    return frame


def pandas_paris(pit: Any) -> Any:
    frame = _pandas_base(pit)
    frame["event_timestamp"] = frame["event_timestamp"].dt.tz_convert("Europe/Paris")
    return frame


def pandas_categorical(pit: Any) -> Any:
    frame = _pandas_base(pit)
    frame["device_id"] = frame["device_id"].astype("category")
    frame["segment"] = frame["segment"].astype("category")
    return frame


def pandas_with_index(pit: Any) -> Any:
    # A shuffled, non-default index is not a column (and not an order).
    frame = _pandas_base(pit)
    frame.index = list(reversed(range(100, 100 + len(frame))))
    return frame


def polars_frame(pit: Any) -> Any:
    import polars as pl

    return pl.from_arrow(pit.data.entity_table())


def polars_naive(pit: Any) -> Any:
    import polars as pl

    frame = pl.from_arrow(pit.data.entity_table())
    return frame.with_columns(pl.col("event_timestamp").dt.replace_time_zone(None))


def pyarrow_table(pit: Any) -> Any:
    return pit.data.entity_table()


def pyarrow_chunked_nanos(pit: Any) -> Any:
    # Several chunks and nanosecond timestamps: read whole, compared exactly.
    table = pit.data.entity_table()
    table = table.set_column(3, "event_timestamp", table.column("event_timestamp").cast(pa.timestamp("ns", tz="UTC")))
    half = table.num_rows // 2
    return pa.concat_tables([table.slice(0, half), table.slice(half)])


def dict_of_columns(pit: Any) -> Any:
    return pit.data.entity_table().to_pydict()


FORMS: Dict[str, Callable[[Any], Any]] = {
    "pandas-naive": pandas_naive,
    "pandas-aware-paris": pandas_paris,
    "pandas-categorical": pandas_categorical,
    "pandas-index": pandas_with_index,
    "polars": polars_frame,
    "polars-naive": polars_naive,
    "pyarrow": pyarrow_table,
    "pyarrow-chunked-ns": pyarrow_chunked_nanos,
    "dict": dict_of_columns,
}


@pytest.mark.parametrize("form", list(FORMS))
def test_entity_df_forms_give_the_oracles_answer(pit: Any, form: str) -> None:
    entity_df = FORMS[form](pit)
    job = pit.store.get_historical_features(entity_df=entity_df, features=lib.ALL_REFS)
    table = job.to_arrow()
    rows = pit.data.entity_rows
    assert table.num_rows == len(rows)
    assert table.column_names == lib.ENTITY_COLUMNS + lib.ALL_NAMES
    # Input values unchanged and in input order (whatever their encoding).
    assert table.column("row_id").to_pylist() == [r["row_id"] for r in rows]
    assert table.column("user_id").to_pylist() == [r["user_id"] for r in rows]
    assert table.column("device_id").to_pylist() == [r["device_id"] for r in rows]
    assert table.column("segment").to_pylist() == [r["segment"] for r in rows]
    instants = [None if t is None else lib.micros(t if t.tzinfo else t.replace(tzinfo=lib.UTC)) for t in table.column("event_timestamp").cast(pa.timestamp("us", tz=table.schema.field("event_timestamp").type.tz)).to_pylist()]
    assert instants == [r["event_timestamp"] for r in rows]
    assert_features(table, pit.data.expected(), lib.ALL_REFS, lib.ALL_NAMES, row_context(pit))


def test_aware_paris_equals_utc_instants(pit: Any) -> None:
    """A non-UTC zone gives exactly the answer of the same UTC instants."""
    utc = pit.store.get_historical_features(entity_df=_pandas_base(pit), features=lib.ALL_REFS).to_arrow()
    paris = pit.store.get_historical_features(entity_df=pandas_paris(pit), features=lib.ALL_REFS).to_arrow()
    naive = pit.store.get_historical_features(entity_df=pandas_naive(pit), features=lib.ALL_REFS).to_arrow()
    for name in lib.ALL_NAMES:
        assert paris.column(name).to_pylist() == utc.column(name).to_pylist(), name
        assert naive.column(name).to_pylist() == utc.column(name).to_pylist(), name
    # The input column itself keeps its zone (input columns are unchanged).
    assert str(paris.schema.field("event_timestamp").type.tz) == "Europe/Paris"


def test_nullable_int64_key_with_a_missing_value(pit: Any) -> None:
    import pandas as pd

    frame = _pandas_base(pit)
    assert frame["user_id"].dtype == "Int64"
    missing = [i for i, r in enumerate(pit.data.entity_rows) if r["user_id"] is None and r["event_timestamp"] is not None]
    assert missing, "the suite has rows with a missing user_id"
    table = pit.store.get_historical_features(entity_df=frame, features=lib.ALL_REFS).to_arrow()
    for i in missing:
        assert pd.isna(frame["user_id"].iloc[i])
        for name in ("f_int", "f_float", "f_str", "pair_count", "score", "clicks"):
            assert table.column(name)[i].as_py() is None, (i, name)


def test_plain_int64_and_string_keys(pit: Any) -> None:
    """numpy int64 user ids (no missing values) and plain string device ids."""
    import pandas as pd

    rows = [r for r in pit.data.entity_rows if r["user_id"] is not None]
    frame = _pandas_base(pit, rows)
    frame["user_id"] = frame["user_id"].astype("int64")
    frame["device_id"] = frame["device_id"].astype("string")
    assert frame["user_id"].dtype == "int64"
    table = pit.store.get_historical_features(entity_df=frame, features=lib.ALL_REFS).to_arrow()
    assert_features(table, pit.data.expected(rows), lib.ALL_REFS, lib.ALL_NAMES, row_context(pit, rows))
    assert isinstance(frame, pd.DataFrame)


def test_only_the_keys_the_views_need(pit: Any) -> None:
    """A string-keyed view needs no user_id column."""
    rows = pit.data.entity_rows
    table = pa.table({"device_id": pa.array([r["device_id"] for r in rows], pa.string()), "event_timestamp": pit.data.entity_table().column("event_timestamp")})
    job = pit.store.get_historical_features(entity_df=table, features=["device_stats:risk", "device_stats:device_label"])
    assert job.columns == ["device_id", "event_timestamp", "risk", "device_label"]
    assert_features(job.to_arrow(), pit.data.expected(), ["device_stats:risk", "device_stats:device_label"], ["risk", "device_label"])


def test_empty_entity_table(pit: Any) -> None:
    empty = pit.data.entity_table().slice(0, 0)
    table = pit.store.get_historical_features(entity_df=empty, features=lib.ALL_REFS).to_arrow()
    assert table.num_rows == 0
    assert table.column_names == lib.ENTITY_COLUMNS + lib.ALL_NAMES


# ---------------------------------------------------------------- selecting features


def test_features_list_service_name_and_service_object_agree(pit: Any) -> None:
    entities = pit.data.entity_table()
    by_refs = pit.store.get_historical_features(entity_df=entities, features=lib.SERVICE_REFS).to_arrow()
    by_name = pit.store.get_historical_features(entity_df=entities, feature_service="svc_all").to_arrow()
    service = pit.store.get_feature_service("svc_all")
    assert isinstance(service, almanac.FeatureService)
    assert service.features == ["user_stats", "device_stats:risk", "pair_stats"]
    by_object = pit.store.get_historical_features(entity_df=entities, features=service).to_arrow()  # Feast style
    by_object_kw = pit.store.get_historical_features(entity_df=entities, feature_service=service).to_arrow()
    names = [ref.split(":")[1] for ref in lib.SERVICE_REFS]
    assert by_name.column_names == lib.ENTITY_COLUMNS + names
    for other in (by_name, by_object, by_object_kw):
        assert other.equals(by_refs)
    assert_features(by_name, pit.data.expected(), lib.SERVICE_REFS, names)


def test_a_bare_view_and_request_order(pit: Any) -> None:
    entities = pit.data.entity_table()
    refs = ["scores:clicks", "device_stats", "user_stats:f_str", "scores:score"]
    table = pit.store.get_historical_features(entity_df=entities, features=refs).to_arrow()
    names = ["clicks", "risk", "device_label", "f_str", "score"]
    assert table.column_names == lib.ENTITY_COLUMNS + names
    assert_features(table, pit.data.expected(), ["scores:clicks", "device_stats:risk", "device_stats:device_label", "user_stats:f_str", "scores:score"], names)
    # A single string is one reference; a tuple works like a list.
    one = pit.store.get_historical_features(entity_df=entities, features="scores:clicks").to_arrow()
    assert one.column_names == lib.ENTITY_COLUMNS + ["clicks"]
    assert pit.store.get_historical_features(entity_df=entities, features=tuple(refs)).to_arrow().equals(table)


def test_full_feature_names(pit: Any) -> None:
    entities = pit.data.entity_table()
    short = pit.store.get_historical_features(entity_df=entities, features=lib.ALL_REFS).to_arrow()
    full = pit.store.get_historical_features(entity_df=entities, features=lib.ALL_REFS, full_feature_names=True).to_arrow()
    full_names = [ref.replace(":", "__") for ref in lib.ALL_REFS]
    assert full.column_names == lib.ENTITY_COLUMNS + full_names
    assert full_names[0] == "user_stats__f_int"
    for name, full_name in zip(lib.ALL_NAMES, full_names):
        assert full.column(full_name).to_pylist() == short.column(name).to_pylist()


def test_a_feature_named_like_an_input_column(pit: Any) -> None:
    entities = pit.data.entity_table().append_column("risk", pa.array([0.0] * pit.data.entity_table().num_rows))
    with pytest.raises(almanac.InvalidInputError, match="full"):
        pit.store.get_historical_features(entity_df=entities, features=["device_stats:risk"])
    table = pit.store.get_historical_features(entity_df=entities, features=["device_stats:risk"], full_feature_names=True).to_arrow()
    assert table.column("risk").to_pylist() == [0.0] * entities.num_rows
    assert table.column("device_stats__risk").to_pylist() == pit.data.expected()["device_stats:risk"]


# ---------------------------------------------------------------- results


def test_result_conversions_agree(pit: Any) -> None:
    import pandas as pd
    import polars as pl

    job = pit.store.get_historical_features(entity_df=pit.data.entity_table(), features=lib.ALL_REFS)
    arrow = job.to_arrow()
    assert isinstance(arrow, pa.Table)
    assert job.to_arrow().equals(arrow), "reading the result twice gives the same table"
    assert pa.table(job).equals(arrow), "the job itself speaks __arrow_c_stream__"
    assert len(job) == job.num_rows == arrow.num_rows
    assert job.columns == arrow.column_names

    frame = job.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    pd.testing.assert_frame_equal(frame, arrow.to_pandas())
    pd.testing.assert_frame_equal(job.to_df(), frame)
    assert list(frame.columns) == arrow.column_names
    assert str(frame["event_timestamp"].dt.tz) == "UTC"

    polars_frame = job.to_polars()
    assert isinstance(polars_frame, pl.DataFrame)
    assert polars_frame.columns == arrow.column_names
    assert polars_frame.to_dicts() == arrow.to_pylist()
    assert "RetrievalJob" in repr(job)


# ---------------------------------------------------------------- mistakes


def test_missing_timestamp_column(pit: Any) -> None:
    entities = pit.data.entity_table().drop(["event_timestamp"])
    with pytest.raises(almanac.InvalidInputError, match="event_timestamp") as caught:
        pit.store.get_historical_features(entity_df=entities, features=lib.ALL_REFS)
    assert isinstance(caught.value, almanac.AlmanacError)
    with pytest.raises(almanac.InvalidInputError, match="as_of"):
        pit.store.get_historical_features(entity_df=pit.data.entity_table(), features=lib.ALL_REFS, timestamp_column="as_of")


def test_missing_or_mistyped_join_key(pit: Any) -> None:
    entities = pit.data.entity_table()
    with pytest.raises(almanac.InvalidInputError, match="user_id"):
        pit.store.get_historical_features(entity_df=entities.drop(["user_id"]), features=["user_stats:f_int"])
    as_float = entities.set_column(1, "user_id", entities.column("user_id").cast(pa.float64()))
    with pytest.raises(almanac.InvalidInputError, match="user_id") as caught:
        pit.store.get_historical_features(entity_df=as_float, features=["user_stats:f_int"])
    assert "int64" in str(caught.value)


def test_unknown_references(pit: Any) -> None:
    entities = pit.data.entity_table()
    with pytest.raises(almanac.NotFoundError, match="did you mean `user_stats:f_int`"):
        pit.store.get_historical_features(entity_df=entities, features=["user_stats:f_itn"])
    with pytest.raises(almanac.NotFoundError, match="did you mean `user_stats`"):
        pit.store.get_historical_features(entity_df=entities, features=["user_stat:f_int"])
    with pytest.raises(almanac.NotFoundError, match="svc_all"):
        pit.store.get_historical_features(entity_df=entities, feature_service="svc_al")


def test_bad_arguments(pit: Any) -> None:
    entities = pit.data.entity_table()
    with pytest.raises(almanac.InvalidInputError, match="SQL|not as SQL"):
        pit.store.get_historical_features(entity_df="SELECT * FROM labels", features=lib.ALL_REFS)
    with pytest.raises(almanac.InvalidInputError, match="pandas"):
        pit.store.get_historical_features(entity_df=[1, 2, 3], features=lib.ALL_REFS)
    with pytest.raises(almanac.InvalidInputError, match="either"):
        pit.store.get_historical_features(entity_df=entities, features=lib.ALL_REFS, feature_service="svc_all")
    with pytest.raises(almanac.InvalidInputError):
        pit.store.get_historical_features(entity_df=entities)
    with pytest.raises(almanac.InvalidInputError):
        pit.store.get_historical_features(entity_df=entities, features=[])


def test_never_applied_repo(tmp_path: Path) -> None:
    data = lib.write_pit_repo(tmp_path / "repo")
    store = almanac.FeatureStore(data.root)
    with pytest.raises(almanac.NotFoundError, match="apply"):
        store.get_historical_features(entity_df=data.entity_table(), features=lib.ALL_REFS)
    assert store.list_feature_views() == []


def test_ttl_edges_and_null_winner_by_hand(pit: Any) -> None:
    """DESIGN §2's inclusive ends on a row alone at its instant: visible at
    ts and at ts + ttl, not at ts - 1 µs nor at ts + ttl + 1 µs; and a
    winner whose values are null stays null (no older row fills in)."""
    old, null = lib.OLD_ROW, lib.NULL_ROW
    probes = [(8, old.ts - 1), (8, old.ts), (8, old.ts + lib.DAY), (8, old.ts + lib.DAY + 1), (5, null.ts - 1), (5, null.ts), (5, null.ts + lib.HOUR)]
    table = pa.table({"user_id": pa.array([u for u, _ in probes], pa.int64()), "event_timestamp": pa.array([t for _, t in probes], pa.int64()).cast(pa.timestamp("us", tz="UTC"))})
    out = pit.store.get_historical_features(entity_df=table, features=["user_stats:f_int", "user_stats:f_float", "user_stats:f_str"]).to_arrow()
    got = list(zip(out.column("f_int").to_pylist(), out.column("f_float").to_pylist(), out.column("f_str").to_pylist()))
    assert got[0] == (None, None, None)
    assert got[1] == got[2] == (99, 9.5, "old")
    assert got[3] == (None, None, None)
    before = lib.winner(lib.VIEW_BY_NAME["user_stats"], pit.data.histories["user_stats"], (5,), null.ts - 1)
    assert before is not None and any(v is not None for v in before.values), "an older row with values exists"
    assert got[4] == before.values
    assert got[5] == got[6] == (None, None, None)
    assert pit.store.get_feature_view("user_stats").ttl == timedelta(days=1)


def test_input_columns_keep_their_encodings(pit: Any) -> None:
    """DESIGN §2.4: input columns come back unchanged, types included: a
    pandas categorical stays a categorical, a large string a large string,
    even though the join reads them as plain strings."""
    frame = pandas_categorical(pit)
    out = pit.store.get_historical_features(entity_df=frame, features=lib.ALL_REFS).to_pandas()
    assert str(out["device_id"].dtype) == "category"
    assert str(out["segment"].dtype) == "category"
    assert list(out["device_id"].astype(object).where(out["device_id"].notna(), None)) == [r["device_id"] for r in pit.data.entity_rows]
    table = pit.data.entity_table()
    large = table.set_column(table.schema.get_field_index("device_id"), "device_id", table.column("device_id").cast(pa.large_string()))
    result = pit.store.get_historical_features(entity_df=large, features=lib.ALL_REFS).to_arrow()
    assert result.schema.field("device_id").type == pa.large_string()
    assert_features(result, pit.data.expected(), lib.ALL_REFS, lib.ALL_NAMES, row_context(pit))
