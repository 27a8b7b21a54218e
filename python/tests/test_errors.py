"""Errors: one hierarchy, the CLI's messages, definition mistakes located
at file:line with a fix, and nothing written when apply fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List

import pytest

import almanac
import almanac_testlib as lib

ERRORS = [almanac.DefinitionError, almanac.NotFoundError, almanac.InvalidInputError, almanac.StoreUnavailableError, almanac.ConflictError]


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the only line containing `needle`."""
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    assert len(lines) == 1, f"{needle!r} is on lines {lines}"
    return lines[0]


def test_the_hierarchy() -> None:
    assert issubclass(almanac.AlmanacError, Exception)
    for error in ERRORS:
        assert issubclass(error, almanac.AlmanacError), error
        assert error is not almanac.AlmanacError
    assert almanac.AlmanacError.__module__ == "almanac"


def broken_repo(tmp_path: Path, definitions: str) -> Path:
    data = lib.write_pit_repo(tmp_path / "repo", definitions=definitions)
    return data.root


def test_definition_error_is_located_like_the_cli(tmp_path: Path) -> None:
    text = lib.PIT_DEFINITIONS.replace("    timestamp_field: ts\n", "    timestamp_feild: ts\n").replace("    entities: [user, device]\n", "    entities: [usr, device]\n")
    root = broken_repo(tmp_path, text)
    typo_line, entity_line = line_of(text, "timestamp_feild"), line_of(text, "[usr, device]")
    store = almanac.FeatureStore(root)
    with pytest.raises(almanac.DefinitionError) as caught:
        store.apply()
    error = caught.value
    assert isinstance(error, almanac.AlmanacError)
    message = str(error)
    assert f"features.yaml:{typo_line}:5" in message and f"features.yaml:{entity_line}:" in message, message
    diagnostics: List[dict] = error.diagnostics
    assert isinstance(diagnostics, list) and diagnostics
    for diagnostic in diagnostics:
        assert isinstance(diagnostic, dict)
        assert {"file", "line", "column", "message", "help"} <= set(diagnostic)
        assert diagnostic["file"] == "features.yaml"
        assert isinstance(diagnostic["line"], int) and isinstance(diagnostic["column"], int) and diagnostic["column"] >= 1
        assert isinstance(diagnostic["message"], str) and diagnostic["message"]
    typo = [d for d in diagnostics if d["line"] == typo_line and "timestamp_feild" in d["message"]]
    assert typo, diagnostics
    assert typo[0]["column"] == 5 and "did you mean `timestamp_field`" in (typo[0]["help"] or "")
    entity = [d for d in diagnostics if d["line"] == entity_line and "usr" in d["message"]]
    assert entity, diagnostics
    assert "user" in (entity[0]["help"] or "")

    # The CLI says exactly the same, and exits 1.
    cli = lib.run_cli(["apply"], repo=root, check=False)
    assert cli.returncode == 1
    assert cli.stderr.strip() == message.strip()
    # plan() checks the same way; nothing was written.
    with pytest.raises(almanac.DefinitionError):
        store.plan()
    assert store.list_feature_views() == [] and store.list_entities() == []


def test_apply_time_check_against_the_files(tmp_path: Path) -> None:
    """A dtype that disagrees with the Parquet file is caught at apply, at
    the feature's line."""
    text = lib.PIT_DEFINITIONS.replace("{name: f_int, dtype: int64}", "{name: f_int, dtype: string}")
    root = broken_repo(tmp_path, text)
    line = line_of(text, "{name: f_int, dtype: string}")
    with pytest.raises(almanac.DefinitionError) as caught:
        almanac.FeatureStore(root).apply()
    assert f"features.yaml:{line}:" in str(caught.value)
    assert any(d["line"] == line and "f_int" in d["message"] for d in caught.value.diagnostics), caught.value.diagnostics
    assert lib.run_cli(["apply"], repo=root, check=False).stderr.strip() == str(caught.value).strip()


def test_yaml_syntax_error(tmp_path: Path) -> None:
    text = lib.PIT_DEFINITIONS.replace("    join_keys: [device_id]\n", "    join_keys: [device_id\n")
    root = broken_repo(tmp_path, text)
    with pytest.raises(almanac.DefinitionError) as caught:
        almanac.FeatureStore(root).apply()
    assert "features.yaml:" in str(caught.value)
    assert all(d["file"] == "features.yaml" for d in caught.value.diagnostics)


def test_not_a_repo(tmp_path: Path) -> None:
    with pytest.raises(almanac.AlmanacError, match="almanac.yaml"):
        almanac.FeatureStore(tmp_path / "nowhere")


def test_a_broken_almanac_yaml(tmp_path: Path) -> None:
    root = broken_repo(tmp_path, lib.PIT_DEFINITIONS)
    (root / "almanac.yaml").write_text("project: pit_suite\nonline: {type: embeded}\n")
    with pytest.raises(almanac.DefinitionError) as caught:
        almanac.FeatureStore(root)
    assert "almanac.yaml:2" in str(caught.value)


def test_errors_carry_the_cli_message(pit: Any, tmp_path: Path) -> None:
    """The same mistake through the SDK and the CLI: the same words."""
    import pyarrow.parquet as pq

    entities = pit.data.entity_table().drop(["event_timestamp"])
    path = tmp_path / "entities.parquet"
    pq.write_table(entities, path)
    with pytest.raises(almanac.InvalidInputError) as caught:
        pit.store.get_historical_features(entity_df=entities, features=["user_stats:f_int"])
    cli = lib.run_cli(["historical", "--entities", path, "--features", "user_stats:f_int", "--output", tmp_path / "out.parquet"], repo=pit.root, check=False)
    assert cli.returncode == 1
    assert str(caught.value) in cli.stderr
    with pytest.raises(almanac.NotFoundError) as unknown:
        pit.store.get_historical_features(entity_df=pit.data.entity_table(), features=["user_stats:f_itn"])
    pq.write_table(pit.data.entity_table(), path)
    cli = lib.run_cli(["historical", "--entities", path, "--features", "user_stats:f_itn", "--output", tmp_path / "out.parquet"], repo=pit.root, check=False)
    assert cli.returncode == 1 and str(unknown.value) in cli.stderr


def test_errors_are_catchable_as_the_base(pit: Any) -> None:
    caught = []
    for call in (
        lambda: pit.store.get_feature_view("nope"),
        lambda: pit.store.get_historical_features(entity_df="SELECT 1", features=["user_stats:f_int"]),
        lambda: pit.store.materialize("not a time", "2026-01-01"),
        lambda: pit.store.apply(objects=["x"]),
        lambda: pit.store.push("nope", {"user_id": [1]}),
    ):
        with pytest.raises(almanac.AlmanacError) as error:
            call()
        caught.append(type(error.value))
    assert caught == [almanac.NotFoundError, almanac.InvalidInputError, almanac.InvalidInputError, almanac.InvalidInputError, almanac.NotFoundError]
