"""The package itself: its version, its public names, and type stubs that
cover every one of them (checked against the source, so they cannot drift)."""

from __future__ import annotations

import ast
import inspect
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, Set

import pytest

import almanac
import almanac_testlib as lib

PACKAGE = lib.REPO_ROOT / "python" / "almanac"


def test_version_is_the_cargo_version() -> None:
    assert isinstance(almanac.__version__, str) and almanac.__version__
    assert almanac.__version__ == lib.cargo_version()
    assert almanac._almanac.version() == almanac.__version__
    assert lib.run_cli(["--version"]).stdout.split()[-1] == almanac.__version__


def test_public_names() -> None:
    for name in almanac.__all__:
        assert hasattr(almanac, name), name
    for name in ("FeatureStore", "RetrievalJob", "OnlineResponse", "PushMode", "AlmanacError", "DefinitionError", "NotFoundError", "InvalidInputError", "StoreUnavailableError", "ConflictError"):
        assert name in almanac.__all__
    # Feast's method names.
    for method in ("plan", "apply", "get_historical_features", "materialize", "materialize_incremental", "get_online_features", "push", "list_entities", "list_feature_views", "list_feature_services", "list_on_demand_feature_views", "list_data_sources", "get_feature_view", "get_entity", "get_feature_service", "get_data_source", "refresh_registry"):
        assert callable(getattr(almanac.FeatureStore, method)), method
    for method in ("to_arrow", "to_pandas", "to_df", "to_polars"):
        assert callable(getattr(almanac.RetrievalJob, method)), method
    for method in ("to_dict", "to_pandas", "to_df", "to_arrow"):
        assert callable(getattr(almanac.OnlineResponse, method)), method


def test_instants_follow_the_cli_grammar() -> None:
    parse = almanac._almanac.parse_instant
    expected = lib.micros(datetime(2026, 6, 10, 14, 0, tzinfo=timezone.utc))
    for text in ("2026-06-10T14:00:00Z", "2026-06-10T16:00:00+02:00", "2026-06-10 14:00:00", "2026-06-10T14:00:00", " 2026-06-10T14:00:00.000000Z "):
        assert parse(text) == expected, text
    assert parse("2026-06-10") == lib.micros(datetime(2026, 6, 10, tzinfo=timezone.utc))
    assert parse("2026-06-10T14:00:00.123456Z") == expected + 123456
    with pytest.raises(almanac.InvalidInputError, match="RFC 3339"):
        parse("tomorrow")


def _stub_names(path: Path) -> Dict[str, Set[str]]:
    """Top-level names of a stub, and for each class its members."""
    tree = ast.parse(path.read_text())
    names: Dict[str, Set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    members.update(t.id for t in item.targets if isinstance(t, ast.Name))
            names[node.name] = members
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = set()
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = set()
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = set()
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                names[alias.asname or alias.name] = set()
    return names


def _public_members(cls: type) -> Set[str]:
    own = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("almanac"):
            own.update(n for n in vars(klass) if not n.startswith("_") or n in ("__init__", "__arrow_c_stream__", "__len__"))
    return own


def test_the_package_stub_covers_every_public_name() -> None:
    stub = _stub_names(PACKAGE / "__init__.pyi")
    for name in almanac.__all__:
        assert name in stub, f"__init__.pyi lacks {name}"
        value = getattr(almanac, name)
        if inspect.isclass(value) and not issubclass(value, BaseException):
            missing = {m for m in _public_members(value) if m not in ("kind",)} - stub[name]
            # Members defined by a base class in the stub count too.
            missing = {m for m in missing if not any(m in stub.get(base.__name__, set()) for base in value.__mro__[1:])}
            assert not missing, f"__init__.pyi: {name} lacks {sorted(missing)}"


def test_the_native_stub_covers_the_native_module() -> None:
    stub = _stub_names(PACKAGE / "_almanac.pyi")
    native = almanac._almanac
    for name in dir(native):
        if name.startswith("_"):
            continue
        assert name in stub, f"_almanac.pyi lacks {name}"
        value = getattr(native, name)
        if inspect.isclass(value) and not issubclass(value, BaseException):
            members = {m for m in dir(value) if not m.startswith("_")} | ({"__arrow_c_stream__", "__len__"} & set(dir(value)))
            assert members <= stub[name], f"_almanac.pyi: {name} lacks {sorted(members - stub[name])}"


def test_stubs_have_docstrings() -> None:
    for path in (PACKAGE / "__init__.pyi", PACKAGE / "_almanac.pyi"):
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree), path
        for node in ast.walk(tree):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and not node.name.startswith("_"):
                assert ast.get_docstring(node), f"{path.name}: {node.name} has no docstring"


def test_feature_store_repr_and_path(pit) -> None:
    assert Path(pit.store.repo_path).resolve() == pit.root.resolve()
    assert "FeatureStore" in repr(pit.store)
    assert pit.store.refresh_registry() is None
    # Durations as Feast's timedelta TTLs.
    assert pit.store.get_feature_view("pair_stats").ttl == timedelta(hours=2)
    assert pit.store.get_feature_view("device_stats").ttl is None
