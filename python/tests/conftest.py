"""Fixtures of the SDK tests.

Run by ``scripts/test.sh`` as::

    PYTHONPATH=target/python-sdk ALMANAC_BIN=target/debug/almanac python -m pytest python/tests -q

``almanac`` is the staged package (the pure-Python layer beside the native
module cargo built); ``ALMANAC_BIN`` is the CLI the results are compared
with. Every repo lives in a temporary folder on the embedded defaults (no
services). Data is small so the whole run stays well under a minute.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, List

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import almanac_testlib as lib  # noqa: E402


def pytest_configure(config: Any) -> None:
    binary = lib.almanac_bin()
    if not binary.is_file():
        raise pytest.UsageError(f"the CLI is not built: {binary} (set ALMANAC_BIN, or run `cargo build -p almanac-cli`)")


@pytest.fixture(scope="session")
def almanac():
    """The SDK under test (imported once, so a broken build fails loudly)."""
    import almanac as module

    return module


# ---------------------------------------------------------------- the hand-built repo


@dataclass
class Pit:
    data: lib.PitData
    store: Any

    @property
    def root(self) -> Path:
        return self.data.root


@pytest.fixture(scope="session")
def pit(tmp_path_factory: Any, almanac: Any) -> Pit:
    """The adversarial repo, applied; only read from (training sets)."""
    data = lib.write_pit_repo(tmp_path_factory.mktemp("pit") / "repo")
    store = almanac.FeatureStore(data.root)
    store.apply()
    return Pit(data=data, store=store)


@pytest.fixture
def fresh_pit(tmp_path: Path, almanac: Any) -> Pit:
    """A private copy of the adversarial repo, applied, for tests that write
    (materialization, pushes)."""
    data = lib.write_pit_repo(tmp_path / "repo")
    store = almanac.FeatureStore(data.root)
    store.apply()
    return Pit(data=data, store=store)


# ---------------------------------------------------------------- the demo repo


@dataclass
class Demo:
    root: Path
    store: Any
    labels: Any  # pyarrow.Table of data/labels.parquet (also the transactions source)
    users: Any  # pyarrow.Table of data/user_txn_stats.parquet
    merchants: Any  # pyarrow.Table of data/merchant_stats.parquet


@pytest.fixture(scope="session")
def demo(tmp_path_factory: Any, almanac: Any) -> Demo:
    """`almanac init --demo --scale 0.01` (the period ends now, so online
    values are fresh), applied through the SDK."""
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("demo") / "repo"
    lib.run_cli(["init", root, "--demo", "--scale", "0.01"])
    store = almanac.FeatureStore(root)
    store.apply()
    return Demo(
        root=root,
        store=store,
        labels=pq.read_table(root / "data" / "labels.parquet"),
        users=pq.read_table(root / "data" / "user_txn_stats.parquet"),
        merchants=pq.read_table(root / "data" / "merchant_stats.parquet"),
    )


@dataclass
class DemoOnline:
    demo: Demo
    reports: List[dict]
    end: datetime


@pytest.fixture(scope="session")
def demo_online(demo: Demo) -> DemoOnline:
    """The demo materialized up to (just before) now."""
    end = datetime.now(timezone.utc) - timedelta(seconds=1)
    reports = demo.store.materialize(end - timedelta(days=400), end)
    return DemoOnline(demo=demo, reports=reports, end=end)
