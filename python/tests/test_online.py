"""Materialization, online reads and pushes through the SDK (DESIGN §3,
§11) on the hand-built repo: the online answer equals the point-in-time
answer at now, the two request shapes and the CLI agree, and pushes land."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pyarrow as pa
import pytest

import almanac
import almanac_testlib as lib

UTC = timezone.utc
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
ONLINE_VIEWS = ["device_stats", "pair_stats", "scores", "user_stats"]

# Entities to read: known, unknown (user 12345, device zzz, user 9 without
# history) and missing keys.
ENTITY_ROWS: List[Dict[str, Any]] = [
    {"user_id": 1, "device_id": "d1"},
    {"user_id": 2, "device_id": "d2"},
    {"user_id": 5, "device_id": "Ωmega"},
    {"user_id": 3, "device_id": "d3"},
    {"user_id": 9, "device_id": "d4"},
    {"user_id": 12345, "device_id": "zzz"},
    {"user_id": None, "device_id": "d1"},
    {"user_id": 4, "device_id": None},
]


@pytest.fixture(scope="module")
def online_pit(tmp_path_factory: Any) -> Tuple[lib.PitData, Any, List[dict]]:
    """A private adversarial repo, applied, materialized over all its data."""
    data = lib.write_pit_repo(tmp_path_factory.mktemp("online") / "repo")
    store = almanac.FeatureStore(data.root)
    store.apply()
    reports = store.materialize("2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z")
    return data, store, reports


def report_times(report: Dict[str, Any]) -> Tuple[Optional[datetime], datetime]:
    start = None if report["start"] is None else lib.parse_rfc3339(report["start"])
    return start, lib.parse_rfc3339(report["end"])


# ---------------------------------------------------------------- materialization


def test_materialize_reports(online_pit: Any) -> None:
    data, _, reports = online_pit
    assert isinstance(reports, list)
    assert sorted(r["view"] for r in reports) == ONLINE_VIEWS
    for report in reports:
        start, end = report_times(report)
        assert start == datetime(2026, 1, 1, tzinfo=UTC) and end == datetime(2026, 4, 1, tzinfo=UTC)
        rows = data.histories[report["view"]]
        assert report["source_rows"] == len(rows), report
        entities = {r.key for r in rows}
        assert report["entities"] == len(entities), report
        assert report["written"] == len(entities) and report["kept_newer"] == 0, report
        assert report["up_to_date"] is False and report["watermark_before"] is None
        assert report["seconds"] >= 0


def test_materialize_accepts_every_time_form(fresh_pit: Any) -> None:
    store = fresh_pit.store

    def ends(reports: List[dict]) -> set:
        return {report_times(r)[1] for r in reports}

    def starts(reports: List[dict]) -> set:
        return {report_times(r)[0] for r in reports}

    # A naive datetime is UTC; an aware one is converted.
    first = store.materialize(datetime(2026, 2, 1), datetime(2026, 3, 2, 1, 0, tzinfo=PARIS))
    assert sorted(r["view"] for r in first) == ONLINE_VIEWS
    assert starts(first) == {datetime(2026, 2, 1, tzinfo=UTC)}
    assert ends(first) == {datetime(2026, 3, 2, tzinfo=UTC)}
    # pandas Timestamps, naive and aware.
    import pandas as pd

    second = store.materialize(pd.Timestamp("2026-02-01"), pd.Timestamp("2026-03-03T01:00:00", tz="Europe/Paris"))
    assert starts(second) == {datetime(2026, 2, 1, tzinfo=UTC)}
    assert ends(second) == {datetime(2026, 3, 3, tzinfo=UTC)}
    # Strings in the CLI's grammar: RFC 3339, a naive time (UTC), a date.
    third = store.materialize("2026-02-01T00:00:00Z", "2026-03-04")
    assert ends(third) == {datetime(2026, 3, 4, tzinfo=UTC)}
    fourth = store.materialize("2026-02-01 00:00:00", "2026-03-04T12:30:00.250000")
    assert starts(fourth) == {datetime(2026, 2, 1, tzinfo=UTC)}
    assert ends(fourth) == {datetime(2026, 3, 4, 12, 30, 0, 250000, tzinfo=UTC)}

    # Incremental from the watermark: at the watermark there is nothing to do.
    same = store.materialize_incremental(datetime(2026, 3, 4, 12, 30, 0, 250000, tzinfo=UTC))
    assert all(r["up_to_date"] for r in same), same
    later = store.materialize_incremental("2026-03-06T00:00:00+01:00")
    assert ends(later) == {datetime(2026, 3, 5, 23, 0, tzinfo=UTC)}
    for report in later:
        assert report["up_to_date"] is False
        assert lib.parse_rfc3339(report["watermark_before"]) == datetime(2026, 3, 4, 12, 30, 0, 250000, tzinfo=UTC)
    dated = store.materialize_incremental(date(2026, 3, 7), feature_views=["device_stats"])
    assert [r["view"] for r in dated] == ["device_stats"]
    assert ends(dated) == {datetime(2026, 3, 7, tzinfo=UTC)}
    only = store.materialize(pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-03-08", tz="UTC"), feature_views=[store.get_feature_view("scores")])
    assert [r["view"] for r in only] == ["scores"]


def test_materialize_rejects_bad_times(fresh_pit: Any) -> None:
    store = fresh_pit.store
    with pytest.raises(almanac.InvalidInputError, match="2026-13-45"):
        store.materialize("2026-01-01", "2026-13-45")
    with pytest.raises(almanac.InvalidInputError):
        store.materialize_incremental("yesterday-ish")
    with pytest.raises(almanac.InvalidInputError):
        store.materialize_incremental(1_772_000_000)
    with pytest.raises(almanac.NotFoundError, match="device_stats"):
        store.materialize("2026-01-01", "2026-03-01", feature_views=["device_stat"])
    # A watermark past now would make later incremental runs skip data.
    with pytest.raises(almanac.InvalidInputError, match="future"):
        store.materialize_incremental(datetime.now(UTC) + timedelta(days=1))
    for error in (almanac.InvalidInputError, almanac.NotFoundError):
        assert issubclass(error, almanac.AlmanacError)


def test_now_and_a_meant_future_end(fresh_pit: Any) -> None:
    """`"now"` reads as the clock (as on the command line); an end in the
    future is accepted when meant (`allow_future_end`) and becomes the
    watermark."""
    store = fresh_pit.store
    before = datetime.now(UTC)
    reports = store.materialize_incremental("now", feature_views=["device_stats"])
    end = datetime.fromisoformat(reports[0]["end"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= end <= datetime.now(UTC) + timedelta(seconds=1)
    later = datetime.now(UTC) + timedelta(days=1)
    reports = store.materialize_incremental(later, feature_views=["device_stats"], allow_future_end=True)
    assert datetime.fromisoformat(reports[0]["end"].replace("Z", "+00:00")) == later.replace(microsecond=later.microsecond)


# ---------------------------------------------------------------- reads


def expected_online(data: lib.PitData, rows: List[Dict[str, Any]], now: int) -> Dict[str, Tuple[List[Any], List[str], List[Optional[int]]]]:
    """What a read at `now` must answer per feature (values, statuses, event
    times), from the materialized winners and each view's TTL."""
    out: Dict[str, Tuple[List[Any], List[str], List[Optional[int]]]] = {}
    for spec in lib.VIEWS:
        for index, (feature, _) in enumerate(spec.features):
            values, statuses, times = [], [], []
            for row in rows:
                key = tuple(row.get(k) for k in spec.keys)
                record = None if any(k is None for k in key) else lib.latest(spec.name, data.histories, key)
                if record is None:
                    values.append(None), statuses.append("NOT_FOUND"), times.append(None)
                elif spec.ttl and record.ts < now - spec.ttl:
                    values.append(None), statuses.append("OUTSIDE_MAX_AGE"), times.append(record.ts)
                else:
                    value = record.values[index]
                    values.append(value), statuses.append("NULL_VALUE" if value is None else "PRESENT"), times.append(record.ts)
            out[feature] = (values, statuses, times)
    return out


def test_online_equals_the_point_in_time_answer_at_now(online_pit: Any) -> None:
    data, store, _ = online_pit
    response = store.get_online_features(features=lib.ALL_REFS, entity_rows=ENTITY_ROWS)
    now = lib.now_micros()
    values = response.to_dict()
    assert list(values) == ["user_id", "device_id"] + lib.ALL_NAMES
    assert values["user_id"] == [r["user_id"] for r in ENTITY_ROWS]
    assert values["device_id"] == [r["device_id"] for r in ENTITY_ROWS]
    statuses = response.statuses
    times = response.event_timestamps
    assert statuses["user_id"] == ["PRESENT"] * len(ENTITY_ROWS)
    assert times["user_id"] == [None] * len(ENTITY_ROWS)
    for feature, (want_values, want_statuses, want_times) in expected_online(data, ENTITY_ROWS, now).items():
        assert values[feature] == want_values, feature
        assert statuses[feature] == want_statuses, feature
        assert [None if t is None else lib.micros(t) for t in times[feature]] == want_times, feature
    # The data is dated March 2026: the 1-day and 2-hour TTLs have passed,
    # the views without a TTL still serve.
    assert set(statuses["f_int"]) <= {"OUTSIDE_MAX_AGE", "NOT_FOUND"} and "OUTSIDE_MAX_AGE" in statuses["f_int"]
    assert "PRESENT" in statuses["risk"] and "NOT_FOUND" in statuses["risk"]
    assert statuses["score"][5] == "NOT_FOUND" and values["score"][5] is None
    # Parity (DESIGN §3): for views without TTL, online == the training set at now.
    entity_df = pa.table({"user_id": pa.array([r["user_id"] for r in ENTITY_ROWS], pa.int64()), "device_id": pa.array([r["device_id"] for r in ENTITY_ROWS], pa.string()), "event_timestamp": pa.array([now] * len(ENTITY_ROWS), pa.int64()).cast(pa.timestamp("us", tz="UTC"))})
    training = store.get_historical_features(entity_df=entity_df, features=lib.ALL_REFS).to_arrow()
    for name in lib.ALL_NAMES:
        assert training.column(name).to_pylist() == values[name], name


def test_entity_rows_and_entities_dict_agree(online_pit: Any) -> None:
    import numpy as np
    import pandas as pd

    _, store, _ = online_pit
    by_rows = store.get_online_features(features=lib.ALL_REFS, entity_rows=ENTITY_ROWS)
    columns = {"user_id": [r["user_id"] for r in ENTITY_ROWS], "device_id": [r["device_id"] for r in ENTITY_ROWS]}
    by_columns = store.get_online_features(features=lib.ALL_REFS, entities=columns)
    assert by_columns.to_dict() == by_rows.to_dict()
    assert by_columns.statuses == by_rows.statuses
    # Event times can only differ by a record written in between: none here.
    assert by_columns.event_timestamps == by_rows.event_timestamps
    # numpy and pandas values are unwrapped (pd.NA, numpy ints).
    known = [r for r in ENTITY_ROWS if r["user_id"] is not None and r["device_id"] is not None]
    by_numpy = store.get_online_features(features=lib.ALL_REFS, entities={"user_id": np.array([r["user_id"] for r in known], dtype="int64"), "device_id": pd.Series([r["device_id"] for r in known])})
    by_known_rows = store.get_online_features(features=lib.ALL_REFS, entity_rows=known)
    assert by_numpy.to_dict() == by_known_rows.to_dict()
    with_na = store.get_online_features(features=lib.ALL_REFS, entity_rows=[{"user_id": pd.NA, "device_id": "d1"}, {"user_id": np.int64(1), "device_id": "d1"}])
    assert with_na.to_dict()["user_id"] == [None, 1]
    assert with_na.statuses["f_int"][0] == "NOT_FOUND"
    # A DataFrame of entity rows works like the list of dicts.
    frame = pd.DataFrame({"user_id": [r["user_id"] for r in known], "device_id": [r["device_id"] for r in known]})
    assert store.get_online_features(features=lib.ALL_REFS, entity_rows=frame).to_dict() == by_known_rows.to_dict()


def _cli_entity_flag(row: Dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in row.items() if v is not None)


def assert_same_as_cli(response: Any, body: Dict[str, Any]) -> None:
    """An SDK response equals `almanac online --json` (Feast's shape:
    column-major results, join keys first)."""
    names = body["metadata"]["feature_names"]
    assert names == list(response.to_dict())
    values, statuses, times = response.to_dict(), response.statuses, response.event_timestamps
    for name, result in zip(names, body["results"]):
        assert result["values"] == values[name], name
        assert result["statuses"] == statuses[name], name
        cli_times = [lib.parse_rfc3339(t) for t in result["event_timestamps"]]
        assert cli_times == [lib.EPOCH if t is None else t for t in times[name]], name


def test_cli_online_equals_sdk(online_pit: Any) -> None:
    data, store, _ = online_pit
    rows = [r for r in ENTITY_ROWS if r["user_id"] is not None and r["device_id"] is not None]
    args = ["online", "--features", ",".join(lib.ALL_REFS)]
    for row in rows:
        args += ["--entity", _cli_entity_flag(row)]
    body = lib.cli_json(args, repo=data.root)
    response = store.get_online_features(features=lib.ALL_REFS, entity_rows=rows)
    assert_same_as_cli(response, body)
    # A feature service, full names, both ways.
    service_args = ["online", "--feature-service", "svc_all", "--full-feature-names"]
    for row in rows:
        service_args += ["--entity", _cli_entity_flag(row)]
    body = lib.cli_json(service_args, repo=data.root)
    response = store.get_online_features(feature_service="svc_all", entity_rows=rows, full_feature_names=True)
    assert body["metadata"]["feature_names"][2:] == [ref.replace(":", "__") for ref in lib.SERVICE_REFS]
    assert_same_as_cli(response, body)


def test_online_selection_forms_and_conversions(online_pit: Any) -> None:
    import pandas as pd

    _, store, _ = online_pit
    by_refs = store.get_online_features(features=lib.SERVICE_REFS, entity_rows=ENTITY_ROWS)
    by_name = store.get_online_features(feature_service="svc_all", entity_rows=ENTITY_ROWS)
    by_object = store.get_online_features(features=store.get_feature_service("svc_all"), entity_rows=ENTITY_ROWS)
    assert by_name.to_dict() == by_refs.to_dict() == by_object.to_dict()
    assert by_name.statuses == by_refs.statuses
    full = store.get_online_features(features=["device_stats:risk", "scores:score"], entity_rows=ENTITY_ROWS, full_feature_names=True)
    assert list(full.to_dict()) == ["user_id", "device_id", "device_stats__risk", "scores__score"]
    assert full.to_dict()["device_stats__risk"] == by_refs.to_dict()["risk"]

    response = store.get_online_features(features=["device_stats:risk", "device_stats:device_label", "scores:clicks"], entity_rows=ENTITY_ROWS)
    table = response.to_arrow()
    assert isinstance(table, pa.Table) and table.to_pydict() == response.to_dict()
    assert table.schema.field("clicks").type == pa.int64() and table.schema.field("risk").type == pa.float64()
    frame = response.to_pandas()
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(response.to_dict())
    pd.testing.assert_frame_equal(frame, table.to_pandas())
    pd.testing.assert_frame_equal(response.to_df(), frame)
    with_times = response.to_dict(include_event_timestamps=True)
    assert with_times["risk__ts"] == response.event_timestamps["risk"]
    assert "user_id__ts" not in with_times  # join keys carry no event time
    assert list(response.to_pandas(include_event_timestamps=True).columns) == list(with_times)
    assert "OnlineResponse" in repr(response)


def test_online_mistakes(online_pit: Any) -> None:
    _, store, _ = online_pit
    with pytest.raises(almanac.InvalidInputError, match="device_id"):
        store.get_online_features(features=["pair_stats:pair_count"], entity_rows=[{"user_id": 1}])
    with pytest.raises(almanac.NotFoundError, match="did you mean `device_stats:risk`"):
        store.get_online_features(features=["device_stats:rsik"], entity_rows=[{"device_id": "d1"}])
    with pytest.raises(almanac.InvalidInputError, match="either"):
        store.get_online_features(features=["device_stats:risk"], entity_rows=[{"device_id": "d1"}], entities={"device_id": ["d1"]})
    with pytest.raises(almanac.InvalidInputError):
        store.get_online_features(features=["device_stats:risk"])
    with pytest.raises(almanac.InvalidInputError, match="same keys"):
        store.get_online_features(features=["device_stats:risk"], entity_rows=[{"device_id": "d1"}, {"user_id": 1}])
    with pytest.raises(almanac.InvalidInputError, match="user_id"):
        store.get_online_features(features=["user_stats:f_int"], entity_rows=[{"user_id": 1}, {"user_id": "two"}])
    with pytest.raises(almanac.InvalidInputError):
        store.get_online_features(features=["user_stats:f_int"], entity_rows=[{"user_id": 2**70}])


def test_two_stores_on_one_repo_in_one_process(online_pit: Any) -> None:
    """A notebook that opens the repo again (the embedded store is shared,
    not opened twice)."""
    data, store, _ = online_pit
    again = almanac.FeatureStore(repo_path=data.root)
    first = store.get_online_features(features=["device_stats:risk"], entity_rows=ENTITY_ROWS).to_dict()
    assert again.get_online_features(features=["device_stats:risk"], entity_rows=ENTITY_ROWS).to_dict() == first
    by_yaml = almanac.FeatureStore(fs_yaml_file=data.root / "almanac.yaml")
    assert Path(by_yaml.repo_path).resolve() == data.root.resolve()
    assert by_yaml.get_online_features(features=["device_stats:risk"], entity_rows=ENTITY_ROWS).to_dict() == first


# ---------------------------------------------------------------- push


def _push_frame(user: int, at: datetime, score: float, clicks: int) -> Any:
    import pandas as pd

    return pd.DataFrame({"user_id": [user], "event_timestamp": [pd.Timestamp(at)], "score": [score], "clicks": [clicks]})


def _scores_at(store: Any, user: int, at_micros: int) -> Tuple[Any, Any]:
    table = pa.table({"user_id": pa.array([user], pa.int64()), "event_timestamp": pa.array([at_micros], pa.int64()).cast(pa.timestamp("us", tz="UTC"))})
    out = store.get_historical_features(entity_df=table, features=["scores:score", "scores:clicks"]).to_arrow()
    return out.column("score")[0].as_py(), out.column("clicks")[0].as_py()


def test_push_online_then_online_and_offline(fresh_pit: Any) -> None:
    data, store = fresh_pit.data, fresh_pit.store
    user = 3
    store.materialize("2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z", feature_views=["scores"])
    before = lib.latest("scores", data.histories, (user,))
    assert before is not None
    online = store.get_online_features(features=["scores:score", "scores:clicks"], entity_rows=[{"user_id": user}])
    assert online.to_dict()["score"] == [before.values[0]]

    # Online only: the online store has it, the offline history does not.
    first_at = datetime.now(UTC).replace(microsecond=123456) - timedelta(minutes=2)
    report = store.push("scores_push", _push_frame(user, first_at, 42.5, 7), to="online")
    assert report["rows"] == 1 and report["views"] == ["scores"]
    assert report["online_written"] == 1 and report["offline_file"] is None
    online = store.get_online_features(features=["scores:score", "scores:clicks"], entity_rows=[{"user_id": user}])
    assert online.to_dict() == {"user_id": [user], "score": [42.5], "clicks": [7]}
    assert online.statuses["score"] == ["PRESENT"]
    assert online.event_timestamps["score"] == [first_at]
    assert _scores_at(store, user, lib.now_micros()) == before.values

    # Online and offline: both stores see it.
    second_at = first_at + timedelta(seconds=30)
    report = store.push("scores_push", _push_frame(user, second_at, 43.25, 8), to=almanac.PushMode.ONLINE_AND_OFFLINE)
    assert report["online_written"] == 1 and report["offline_file"]
    written = Path(report["offline_file"])
    assert written.is_file() and written.parent.resolve() == (data.root / "data" / "scores").resolve()
    online = store.get_online_features(features=["scores:score", "scores:clicks"], entity_rows=[{"user_id": user}])
    assert online.to_dict()["score"] == [43.25] and online.to_dict()["clicks"] == [8]
    assert online.event_timestamps["clicks"] == [second_at]
    assert _scores_at(store, user, lib.now_micros()) == (43.25, 8)
    assert _scores_at(store, user, lib.micros(second_at) - 1) == before.values

    # An older push never moves the entity back in time.
    report = store.push("scores_push", _push_frame(user, first_at - timedelta(days=1), 1.0, 1), to=almanac.PushMode.ONLINE)
    assert report["online_written"] == 0 and report["online_kept_newer"] == 1
    assert store.get_online_features(features=["scores:score"], entity_rows=[{"user_id": user}]).to_dict()["score"] == [43.25]

    # Offline only, from a polars frame: the training set sees it, online does not change.
    import polars as pl

    third_at = second_at + timedelta(seconds=5)
    frame = pl.DataFrame({"user_id": [user], "event_timestamp": [third_at], "score": [50.0], "clicks": [9]})
    report = store.push("scores_push", frame, to="offline")
    assert report["online_written"] == 0 and report["offline_file"]
    assert _scores_at(store, user, lib.now_micros()) == (50.0, 9)
    assert store.get_online_features(features=["scores:score"], entity_rows=[{"user_id": user}]).to_dict()["score"] == [43.25]


def test_push_mistakes(fresh_pit: Any) -> None:
    store = fresh_pit.store
    at = datetime.now(UTC) - timedelta(minutes=1)
    with pytest.raises(almanac.NotFoundError, match="did you mean `scores_push`"):
        store.push("scores_psuh", _push_frame(1, at, 1.0, 1))
    with pytest.raises(almanac.InvalidInputError, match="push source"):
        store.push("user_source", _push_frame(1, at, 1.0, 1))
    with pytest.raises(almanac.InvalidInputError, match="clicks"):
        store.push("scores_push", _push_frame(1, at, 1.0, 1).drop(columns=["clicks"]))
    with pytest.raises(almanac.InvalidInputError, match="sideways"):
        store.push("scores_push", _push_frame(1, at, 1.0, 1), to="sideways")
    assert [m.value for m in almanac.PushMode] == ["online", "offline", "online_and_offline"]
