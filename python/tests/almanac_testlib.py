"""Shared helpers of the SDK tests.

* the ``almanac`` binary (``ALMANAC_BIN``) run as a subprocess, to compare
  the SDK with the CLI;
* instants as integer microseconds (the tests' one clock);
* a hand-built, adversarial feature repo (``write_pit_repo``) and an
  independent brute-force reading of DESIGN §2 over its rows (``oracle``),
  written here from the contract, not from the engine's code.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

REPO_ROOT = Path(__file__).resolve().parents[2]

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

# ---------------------------------------------------------------- the CLI


def almanac_bin() -> Path:
    """The CLI binary: ``ALMANAC_BIN``, relative paths from the repo root."""
    path = Path(os.environ.get("ALMANAC_BIN", "target/debug/almanac"))
    return path if path.is_absolute() else REPO_ROOT / path


def run_cli(args: Sequence[Any], *, repo: Optional[Path] = None, json_output: bool = False, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run ``almanac [--repo R] [--json] ARGS``; on failure (with ``check``)
    raise with both output streams, so a test failure shows the CLI's words."""
    command = [str(almanac_bin())]
    if repo is not None:
        command += ["--repo", str(repo)]
    if json_output:
        command.append("--json")
    command += [str(a) for a in args]
    process = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and process.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {process.returncode}\n--- stdout\n{process.stdout}\n--- stderr\n{process.stderr}")
    return process


def cli_json(args: Sequence[Any], *, repo: Optional[Path] = None) -> Any:
    return json.loads(run_cli(args, repo=repo, json_output=True).stdout)


def cargo_version() -> str:
    """The workspace version (``[workspace.package] version``)."""
    text = (REPO_ROOT / "Cargo.toml").read_text()
    section = re.search(r"^\[workspace\.package\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    assert section, "Cargo.toml has no [workspace.package]"
    version = re.search(r'^version\s*=\s*"([^"]+)"', section.group(1), re.M)
    assert version, "[workspace.package] has no version"
    return version.group(1)


# ---------------------------------------------------------------- time


def micros(value: datetime) -> int:
    """An aware datetime as µs since the epoch (exact integer arithmetic)."""
    assert value.tzinfo is not None, "pass an aware datetime"
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: Optional[int]) -> Optional[datetime]:
    return None if value is None else EPOCH + timedelta(microseconds=value)


def now_micros() -> int:
    return micros(datetime.now(UTC))


def parse_rfc3339(text: str) -> datetime:
    """RFC 3339 as the CLI and the reports write it (``Z``, 0-9 fraction
    digits), on any Python >= 3.9."""
    text = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    match = re.match(r"^(.*?)(?:\.(\d+))?([+-]\d\d:\d\d)$", text)
    assert match, f"not RFC 3339: {text!r}"
    head, fraction, offset = match.groups()
    fraction = ((fraction or "") + "000000")[:6]
    return datetime.fromisoformat(f"{head}.{fraction}{offset}").astimezone(UTC)


def duration_micros(text: str) -> int:
    """A registry duration (``90s``, ``15m``, ``6h``, ``3d``, ``2w``) in µs."""
    units = {"s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY}
    match = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    assert match, f"not a duration: {text!r}"
    return int(match.group(1)) * units[match.group(2)]


# ---------------------------------------------------------------- the hand-built repo

BASE = micros(datetime(2026, 3, 1, tzinfo=UTC))
DEVICES = ["d1", "d2", "d3", "d4", "Ωmega"]

PIT_CONFIG = "project: pit_suite\n"

# Keep the `timestamp_feild`-free, well-formed original: tests that need a
# broken repo edit a copy of this text.
PIT_DEFINITIONS = """\
entities:
  - name: user
    join_keys: [user_id]
    description: A user of the adversarial suite
  - name: device
    join_keys: [device_id]
sources:
  - name: user_source
    path: data/user_stats.parquet
    timestamp_field: event_timestamp
    created_timestamp_column: created_at
  - name: device_source
    path: data/device_stats.parquet
    timestamp_field: ts
  - name: pair_source
    path: data/pair_stats.parquet
    timestamp_field: event_timestamp
    created_timestamp_column: created_at
  - name: scores_batch
    path: data/scores
    timestamp_field: event_timestamp
  - name: scores_push
    batch_source: scores_batch
feature_views:
  - name: user_stats
    entities: [user]
    source: user_source
    ttl: 1d
    online: true
    owner: suite-team
    description: Adversarial per-user features
    tags: {suite: pit, kind: user}
    schema:
      - {name: f_int, dtype: int64}
      - {name: f_float, dtype: float64}
      - {name: f_str, dtype: string}
  - name: device_stats
    entities: [device]
    source: device_source
    tags: {suite: pit}
    schema:
      - {name: risk, dtype: float64}
      - {name: device_label, dtype: string}
  - name: pair_stats
    entities: [user, device]
    source: pair_source
    ttl: 2h
    schema:
      - {name: pair_count, dtype: int64}
  - name: scores
    entities: [user]
    source: scores_push
    schema:
      - {name: score, dtype: float64}
      - {name: clicks, dtype: int64}
feature_services:
  - name: svc_all
    features: [user_stats, device_stats:risk, pair_stats]
    owner: suite-team
"""


@dataclass(frozen=True)
class ViewSpec:
    name: str
    keys: Tuple[str, ...]
    ttl: Optional[int]  # µs; None = never expires
    features: Tuple[Tuple[str, str], ...]


VIEWS: Tuple[ViewSpec, ...] = (
    ViewSpec("user_stats", ("user_id",), DAY, (("f_int", "int64"), ("f_float", "float64"), ("f_str", "string"))),
    ViewSpec("device_stats", ("device_id",), None, (("risk", "float64"), ("device_label", "string"))),
    ViewSpec("pair_stats", ("user_id", "device_id"), 2 * HOUR, (("pair_count", "int64"),)),
    ViewSpec("scores", ("user_id",), None, (("score", "float64"), ("clicks", "int64"))),
)
VIEW_BY_NAME = {v.name: v for v in VIEWS}
ALL_REFS: List[str] = [f"{v.name}:{f}" for v in VIEWS for f, _ in v.features]
ALL_NAMES: List[str] = [f for v in VIEWS for f, _ in v.features]
# svc_all: [user_stats, device_stats:risk, pair_stats], a bare view = all its features.
SERVICE_REFS: List[str] = ["user_stats:f_int", "user_stats:f_float", "user_stats:f_str", "device_stats:risk", "pair_stats:pair_count"]
ENTITY_COLUMNS = ["row_id", "user_id", "device_id", "event_timestamp", "y", "segment"]


@dataclass(frozen=True)
class HistoryRow:
    key: Tuple[Any, ...]
    ts: int
    created: Optional[int]
    values: Tuple[Any, ...]


OLD_ROW = HistoryRow((8,), BASE - 5 * DAY, BASE - 5 * DAY, (99, 9.5, "old"))
NULL_ROW = HistoryRow((5,), BASE + 3 * DAY + 30 * MINUTE, BASE + 3 * DAY + 30 * MINUTE, (None, None, None))


@dataclass
class PitData:
    root: Path
    histories: Dict[str, List[HistoryRow]]
    # Entity rows: dicts with row_id, user_id, device_id, event_timestamp (µs or None), y, segment.
    entity_rows: List[Dict[str, Any]]
    stats: Dict[str, int] = field(default_factory=dict)

    def entity_table(self, rows: Optional[List[Dict[str, Any]]] = None) -> Any:
        return entity_table(self.entity_rows if rows is None else rows)

    def expected(self, rows: Optional[List[Dict[str, Any]]] = None) -> Dict[str, List[Any]]:
        """The oracle's answer, ``view:feature`` → values, one per entity row."""
        answer, _ = oracle(self.histories, self.entity_rows if rows is None else rows)
        return answer


def _maybe(rng: random.Random, p: float, value: Any) -> Any:
    return None if rng.random() < p else value


def _generate(seed: int) -> Tuple[Dict[str, List[HistoryRow]], List[Dict[str, Any]]]:
    rng = random.Random(seed)

    def user_values() -> Tuple[Any, ...]:
        return (_maybe(rng, 0.15, rng.randint(-5, 5)), _maybe(rng, 0.15, rng.randint(-9999, 9999) / 1000), _maybe(rng, 0.15, rng.choice(["a", "b", "c", "zz", ""])))

    # user_stats: a 30-minute grid over three days, so event times collide;
    # twins at the same event time, later created (must win), equal created
    # (the values break the tie), or no created time (loses the tie).
    users: List[HistoryRow] = []
    for user in range(1, 9):
        for _ in range(rng.randint(5, 12)):
            ts = BASE + rng.randint(0, 144) * 30 * MINUTE
            created = _maybe(rng, 0.1, ts + rng.choice([0, 5, 10]) * MINUTE)
            users.append(HistoryRow((user,), ts, created, user_values()))
    for row in rng.sample(users, len(users) // 3):
        kind = rng.random()
        if kind < 0.45:
            created = (row.created if row.created is not None else row.ts) + rng.randint(1, 60) * MINUTE
        elif kind < 0.85:
            created = row.created
        else:
            created = None
        users.append(HistoryRow(row.key, row.ts, created, user_values()))
    # Added after the twins, so each is alone at its instant: user 8's one
    # old row (TTL edges by hand), user 5's newest row with every value null
    # (a null winner stays null, no fallback to an older row).
    users.append(OLD_ROW)
    users.append(NULL_ROW)

    # device_stats: string keys, no created column (ties go to the values),
    # timestamps stored in milliseconds, no TTL.
    devices: List[HistoryRow] = []
    for device in DEVICES:
        for _ in range(rng.randint(3, 8)):
            ts = BASE + rng.randint(-24, 72) * HOUR
            devices.append(HistoryRow((device,), ts, None, (_maybe(rng, 0.15, rng.randint(0, 1000) / 100), _maybe(rng, 0.15, rng.choice(["low", "mid", "high"])))))
    for row in rng.sample(devices, 6):
        devices.append(HistoryRow(row.key, row.ts, None, (_maybe(rng, 0.15, rng.randint(0, 1000) / 100), _maybe(rng, 0.15, rng.choice(["low", "mid", "high"])))))

    # pair_stats: a compound key (int, string), a 2-hour TTL.
    pairs: List[HistoryRow] = []
    for user in range(1, 7):
        for device in DEVICES[:3]:
            if rng.random() < 0.3:
                continue
            for _ in range(rng.randint(2, 5)):
                ts = BASE + rng.randint(0, 144) * 30 * MINUTE
                pairs.append(HistoryRow((user, device), ts, ts + rng.choice([0, 1, 2]) * MINUTE, (_maybe(rng, 0.1, rng.randint(0, 50)),)))
    for row in rng.sample(pairs, max(1, len(pairs) // 4)):
        pairs.append(HistoryRow(row.key, row.ts, row.created, (_maybe(rng, 0.1, rng.randint(0, 50)),)))

    # scores (behind a push source): the batch folder's first file.
    scores: List[HistoryRow] = []
    for user in range(1, 9):
        for _ in range(rng.randint(2, 4)):
            ts = BASE + rng.randint(0, 72) * HOUR
            scores.append(HistoryRow((user,), ts, None, (_maybe(rng, 0.1, rng.randint(0, 100) / 10), _maybe(rng, 0.1, rng.randint(0, 20)))))
    for row in rng.sample(scores, 3):
        scores.append(HistoryRow(row.key, row.ts, None, (rng.randint(0, 100) / 10, rng.randint(0, 20))))

    for rows in (users, devices, pairs, scores):
        rng.shuffle(rows)
    histories = {"user_stats": users, "device_stats": devices, "pair_stats": pairs, "scores": scores}

    # Entity rows: random (half on the grid, hitting event times exactly),
    # unknown users (9, 10) and devices (d9), null keys, probes at exactly
    # ts, ts + ttl (visible), ts + ttl + 1 µs and ts - 1 µs (not), duplicates
    # and one null timestamp.
    keys_user: List[Optional[int]] = list(range(1, 11))
    keys_device: List[Optional[str]] = DEVICES + ["d9"]
    rows: List[Tuple[Optional[int], Optional[str], Optional[int]]] = []
    for _ in range(260):
        user = None if rng.random() < 0.05 else rng.choice(keys_user)
        device = None if rng.random() < 0.05 else rng.choice(keys_device)
        if rng.random() < 0.5:
            at = BASE + rng.randint(-4, 160) * 30 * MINUTE
        else:
            at = BASE + rng.randint(-2 * HOUR, 4 * DAY)
        rows.append((user, device, at))
    for row in rng.sample(users, 25):
        for at in (row.ts, row.ts + DAY, row.ts + DAY + 1, row.ts - 1):
            rows.append((row.key[0], rng.choice(keys_device), at))
    for row in rng.sample(pairs, min(10, len(pairs))):
        for at in (row.ts, row.ts + 2 * HOUR, row.ts + 2 * HOUR + 1, row.ts - 1):
            rows.append((row.key[0], row.key[1], at))
    for row in rng.sample(devices, 8):
        for at in (row.ts, row.ts - 1):
            rows.append((rng.choice(keys_user), row.key[0], at))
    rng.shuffle(rows)
    for _ in range(20):
        rows.insert(rng.randrange(len(rows) + 1), rng.choice(rows))
    rows.insert(rng.randrange(len(rows) + 1), (1, "d1", None))
    entity_rows = [
        {"row_id": i, "user_id": user, "device_id": device, "event_timestamp": at, "y": round(rng.random(), 6), "segment": rng.choice(["gold", "silver", "bronze"])}
        for i, (user, device, at) in enumerate(rows)
    ]
    return histories, entity_rows


def _history_table(spec: ViewSpec, rows: List[HistoryRow]) -> Any:
    import pyarrow as pa

    ts_unit = "ms" if spec.name == "device_stats" else "us"
    ts_name = "ts" if spec.name == "device_stats" else "event_timestamp"
    columns: Dict[str, Any] = {}
    for i, key in enumerate(spec.keys):
        columns[key] = pa.array([r.key[i] for r in rows], pa.int64() if key == "user_id" else pa.string())
    scale = 1_000 if ts_unit == "ms" else 1
    columns[ts_name] = pa.array([r.ts // scale for r in rows], pa.int64()).cast(pa.timestamp(ts_unit, tz="UTC"))
    if spec.name in ("user_stats", "pair_stats"):
        columns["created_at"] = pa.array([r.created for r in rows], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    types = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string()}
    for i, (name, dtype) in enumerate(spec.features):
        columns[name] = pa.array([r.values[i] for r in rows], types[dtype])
    return pa.table(columns)


def write_pit_repo(root: Path, seed: int = 20260301, definitions: str = PIT_DEFINITIONS) -> PitData:
    """Write the adversarial repo into ``root`` (created) and return its rows."""
    import pyarrow.parquet as pq

    histories, entity_rows = _generate(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "data" / "scores").mkdir(parents=True, exist_ok=True)
    (root / "almanac.yaml").write_text(PIT_CONFIG)
    (root / "features.yaml").write_text(definitions)
    files = {"user_stats": "data/user_stats.parquet", "device_stats": "data/device_stats.parquet", "pair_stats": "data/pair_stats.parquet", "scores": "data/scores/part-0.parquet"}
    for spec in VIEWS:
        # Small row groups: the scans must not depend on file layout.
        pq.write_table(_history_table(spec, histories[spec.name]), root / files[spec.name], row_group_size=16)
    data = PitData(root=root, histories=histories, entity_rows=entity_rows)
    _, data.stats = oracle(histories, entity_rows)
    return data


def entity_table(rows: List[Dict[str, Any]]) -> Any:
    """Entity rows as a pyarrow Table (timestamps µs UTC; nullable keys)."""
    import pyarrow as pa

    return pa.table(
        {
            "row_id": pa.array([r["row_id"] for r in rows], pa.int64()),
            "user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
            "device_id": pa.array([r["device_id"] for r in rows], pa.string()),
            "event_timestamp": pa.array([r["event_timestamp"] for r in rows], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "y": pa.array([r["y"] for r in rows], pa.float64()),
            "segment": pa.array([r["segment"] for r in rows], pa.string()),
        }
    )


# ---------------------------------------------------------------- the oracle

_NO_CREATED = -(2**63)


def _values_rank(values: Tuple[Any, ...]) -> Tuple[Any, ...]:
    # Nulls first, then the value: the greatest tuple wins a full tie.
    return tuple((0, 0) if v is None else (1, v) for v in values)


def winner(spec: ViewSpec, rows: Sequence[HistoryRow], key: Tuple[Any, ...], at: Optional[int], ttl: Optional[int] = None, use_ttl: bool = True) -> Optional[HistoryRow]:
    """DESIGN §2 by brute force: among rows with the same key and
    ``T - ttl <= ts <= T``, the greatest (ts, created, values)."""
    if at is None or any(k is None for k in key):
        return None
    ttl = spec.ttl if (use_ttl and ttl is None) else ttl
    best: Optional[HistoryRow] = None
    best_rank: Any = None
    for row in rows:
        if row.key != key or row.ts > at:
            continue
        if ttl and row.ts < at - ttl:
            continue
        rank = (row.ts, row.created if row.created is not None else _NO_CREATED, _values_rank(row.values))
        if best is None or rank > best_rank:
            best, best_rank = row, rank
    return best


def oracle(histories: Dict[str, List[HistoryRow]], entity_rows: List[Dict[str, Any]]) -> Tuple[Dict[str, List[Any]], Dict[str, int]]:
    """Every feature of every view for every entity row, and counts of the
    adversarial cases the rows exercised (so tests can check they did)."""
    answer: Dict[str, List[Any]] = {ref: [] for ref in ALL_REFS}
    stats = {"rows": len(entity_rows), "null_key": 0, "null_time": 0, "tie_on_created": 0, "tie_on_values": 0, "at_exactly_ts": 0, "at_exactly_ttl_edge": 0, "just_past_ttl": 0, "null_in_winner": 0, "duplicates": 0}
    by_key: Dict[str, Dict[Tuple[Any, ...], List[HistoryRow]]] = {}
    for spec in VIEWS:
        index: Dict[Tuple[Any, ...], List[HistoryRow]] = {}
        for row in histories[spec.name]:
            index.setdefault(row.key, []).append(row)
        by_key[spec.name] = index
    seen = set()
    for entity in entity_rows:
        signature = (entity["user_id"], entity["device_id"], entity["event_timestamp"])
        stats["duplicates"] += signature in seen
        seen.add(signature)
        if entity["event_timestamp"] is None:
            stats["null_time"] += 1
        for spec in VIEWS:
            key = tuple(entity[k] for k in spec.keys)
            at = entity["event_timestamp"]
            if any(k is None for k in key):
                stats["null_key"] += 1
            candidates = by_key[spec.name].get(key, [])
            best = winner(spec, candidates, key, at)
            if best is not None:
                same_ts = [r for r in candidates if r.ts == best.ts and r is not best]
                if any((r.created if r.created is not None else _NO_CREATED) != (best.created if best.created is not None else _NO_CREATED) for r in same_ts):
                    stats["tie_on_created"] += 1
                if any(r.created == best.created and r.values != best.values for r in same_ts):
                    stats["tie_on_values"] += 1
                stats["at_exactly_ts"] += best.ts == at
                if spec.ttl:
                    stats["at_exactly_ttl_edge"] += best.ts == at - spec.ttl
                stats["null_in_winner"] += any(v is None for v in best.values)
            elif spec.ttl and at is not None and any(r.ts == at - spec.ttl - 1 for r in candidates):
                stats["just_past_ttl"] += 1
            for i, (feature, _) in enumerate(spec.features):
                answer[f"{spec.name}:{feature}"].append(None if best is None else best.values[i])
    return answer, stats


def latest(spec_name: str, histories: Dict[str, List[HistoryRow]], key: Tuple[Any, ...]) -> Optional[HistoryRow]:
    """The record materialization keeps for ``key``: the winner over all
    history, the TTL not applied (reads apply it)."""
    spec = VIEW_BY_NAME[spec_name]
    return winner(spec, histories[spec_name], key, 2**62, use_ttl=False)


def mismatches(actual: Sequence[Any], expected: Sequence[Any], context: Optional[Sequence[Any]] = None, limit: int = 5) -> str:
    """A readable list of the first differing rows ('' when equal)."""
    if len(actual) != len(expected):
        return f"lengths differ: {len(actual)} != {len(expected)}"
    lines = []
    for i, (a, e) in enumerate(zip(actual, expected)):
        if not same_value(a, e):
            where = f" ({context[i]})" if context is not None else ""
            lines.append(f"row {i}{where}: got {a!r}, expected {e!r}")
            if len(lines) >= limit:
                break
    return "\n".join(lines)


def same_value(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, and a bool never equal to an int."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b
