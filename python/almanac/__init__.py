"""Almanac's Python SDK: the feature store from a notebook.

The method names are Feast's, so a notebook ports by changing the import::

    import almanac
    store = almanac.FeatureStore("path/to/repo")
    store.apply()
    job = store.get_historical_features(entity_df=labels, features=["user_txn_stats:txn_count_7d"])
    training = job.to_pandas()
    store.materialize_incremental(end_date=datetime.now(timezone.utc))
    store.get_online_features(features=[...], entity_rows=[{"user_id": 1}]).to_dict()

Tables cross into the Rust core and back as Arrow through the C stream
interface (``__arrow_c_stream__``), without copies. The GIL is released
while the core works. Errors are :class:`AlmanacError` subclasses carrying
the CLI's message (definition errors: file, line and a fix).
"""

from __future__ import annotations

import datetime as _dt
import enum as _enum
import json as _json
import os as _os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from . import _almanac
from ._almanac import (
    AlmanacError,
    ConflictError,
    DefinitionError,
    InvalidInputError,
    NotFoundError,
    StoreUnavailableError,
)

__version__: str = _almanac.version()

__all__ = [
    "AlmanacError",
    "ConflictError",
    "DataSource",
    "DefinitionError",
    "Entity",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "Field",
    "InvalidInputError",
    "NotFoundError",
    "OnDemandFeatureView",
    "OnlineResponse",
    "Plan",
    "PushMode",
    "RequestSource",
    "RetrievalJob",
    "StoreUnavailableError",
    "__version__",
]


class PushMode(_enum.Enum):
    """Where :meth:`FeatureStore.push` writes (Feast's ``PushMode``)."""

    ONLINE = "online"
    OFFLINE = "offline"
    ONLINE_AND_OFFLINE = "online_and_offline"


# ---------------------------------------------------------------- conversions

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_TimeLike = Union[str, _dt.datetime, _dt.date, Any]


def _to_micros(value: _TimeLike, what: str) -> int:
    """An instant as µs since the epoch: a naive time is UTC, an aware one is
    converted, a date is midnight UTC; strings follow the CLI's grammar."""
    if isinstance(value, str):
        return _almanac.parse_instant(value)
    module = type(value).__module__
    if module.startswith("pandas") and hasattr(value, "value") and hasattr(value, "tzinfo"):
        # pd.Timestamp: `.value` is ns since the epoch (naive read as UTC).
        return int(value.value) // 1_000
    if module == "numpy" and type(value).__name__ == "datetime64":
        return int(value.astype("datetime64[us]").astype("int64"))
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, _dt.date):
        return _to_micros(_dt.datetime(value.year, value.month, value.day), what)
    raise InvalidInputError(
        f"`{what}` is a {type(value).__name__}; pass a datetime, a pandas Timestamp, a date or a string such as '2026-06-10T14:00:00Z'"
    )


def _arrow_input(data: Any, what: str) -> Any:
    """A table as an object the core reads through ``__arrow_c_stream__``."""
    module = type(data).__module__
    if module.startswith("pandas") and type(data).__name__ == "DataFrame":
        import pyarrow as pa

        # The index is not a column of the entity table (Feast ignores it too).
        return pa.Table.from_pandas(data, preserve_index=False)
    if module.startswith("polars") and type(data).__name__ == "DataFrame":
        return data.to_arrow()
    if hasattr(data, "__arrow_c_stream__"):
        return data
    if isinstance(data, Mapping):
        import pyarrow as pa

        return pa.table(dict(data))
    if isinstance(data, str):
        raise InvalidInputError(
            f"`{what}` is a string; Almanac takes the entity table as data (pandas, polars, pyarrow), not as SQL. "
            "Read the query's result into a DataFrame first."
        )
    raise InvalidInputError(
        f"`{what}` is a {type(data).__name__}; pass a pandas or polars DataFrame, a pyarrow Table, or any object with __arrow_c_stream__"
    )


def _python_value(value: Any) -> Any:
    """A cell of an entity row as a plain Python value (numpy and pandas
    scalars unwrapped, pandas' missing values as None)."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    name = type(value).__name__
    if name in ("NAType", "NaTType"):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _selection(features: Any, feature_service: Any) -> Dict[str, Any]:
    """Feast passes a service as `features=`; both spellings work here."""
    if isinstance(features, FeatureService):
        return {"features": None, "feature_service": features.name}
    if isinstance(feature_service, FeatureService):
        feature_service = feature_service.name
    if isinstance(features, str):
        features = [features]
    if features is not None:
        features = list(features)
    return {"features": features, "feature_service": feature_service}


def _has_map(data_type: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_map(data_type):
        return True
    if pa.types.is_struct(data_type):
        return any(_has_map(data_type.field(i).type) for i in range(data_type.num_fields))
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return _has_map(data_type.value_type)
    return False


def _with_dicts(value: Any, data_type: Any) -> Any:
    """A cell as Feast's ``to_dict`` gives it: maps as dicts (pyarrow gives
    them as lists of ``(key, value)`` pairs), inside structs and lists too."""
    import pyarrow as pa

    if value is None:
        return None
    if pa.types.is_map(data_type):
        return {k: _with_dicts(v, data_type.item_type) for k, v in value}
    if pa.types.is_struct(data_type):
        return {f.name: _with_dicts(value.get(f.name), f.type) for f in data_type}
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return [_with_dicts(v, data_type.value_type) for v in value]
    return value


def _arrow_table(table: Any) -> Any:
    import pyarrow as pa

    return pa.table(table)


# ---------------------------------------------------------------- catalog objects


class Field:
    """A feature: its name and dtype (Almanac's dtype names, e.g. ``float64``)."""

    def __init__(self, data: Mapping[str, Any]):
        self._data = dict(data)
        self.name: str = data["name"]
        self.dtype: str = data["dtype"] if isinstance(data["dtype"], str) else _json.dumps(data["dtype"])
        self.description: str = data.get("description", "")
        self.tags: Dict[str, str] = dict(data.get("tags", {}))
        self.expr: Optional[str] = data.get("expr")

    def to_dict(self) -> Dict[str, Any]:
        return dict(self._data)

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, dtype={self.dtype!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Field) and other._data == self._data


class _Definition:
    """An applied definition: its fields as attributes, ``to_dict()`` for all."""

    kind: str = ""

    def __init__(self, data: Mapping[str, Any]):
        self._data = dict(data)
        self.name: str = data["name"]
        self.description: str = data.get("description", "")
        self.owner: str = data.get("owner", "")
        self.tags: Dict[str, str] = dict(data.get("tags", {}))

    def to_dict(self) -> Dict[str, Any]:
        """The definition as the registry holds it (JSON-shaped)."""
        return _json.loads(_json.dumps(self._data))

    def __getattr__(self, name: str) -> Any:
        data = self.__dict__.get("_data", {})
        if name in data:
            return data[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._data == self._data  # type: ignore[attr-defined]


def _duration(text: Optional[str]) -> Optional[_dt.timedelta]:
    if not text:
        return None
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
    seconds = 0.0
    number = ""
    unit = ""
    for char in text + " ":
        if char.isdigit() or char == ".":
            if unit:
                seconds += float(number) * units[unit]
                number, unit = "", ""
            number += char
        elif char.isalpha():
            unit += char
        elif number:
            seconds += float(number) * units.get(unit, 1)
            number, unit = "", ""
    return _dt.timedelta(seconds=seconds)


class Entity(_Definition):
    """An entity: ``join_keys`` (names) and ``join_key`` (the first, as Feast)."""

    kind = "entity"

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        self.join_keys: List[str] = [key["name"] for key in data.get("join_keys", [])]
        self.join_key: str = self.join_keys[0] if self.join_keys else ""


class DataSource(_Definition):
    """A file source (``path``, ``timestamp_field``, ...)."""

    kind = "source"


class RequestSource(_Definition):
    """Fields that arrive with a request (``schema``: list of :class:`Field`)."""

    kind = "request_source"

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        self.schema: List[Field] = [Field(f) for f in data.get("schema", [])]


class FeatureView(_Definition):
    """A feature view: ``entities``, ``source``, ``ttl`` (a timedelta or
    None), ``online``, ``features`` (list of :class:`Field`), and for an
    aggregation view ``aggregations``."""

    kind = "feature_view"

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        self.entities: List[str] = list(data.get("entities", []))
        self.features: List[Field] = [Field(f) for f in data.get("schema", [])]
        self.schema: List[Field] = self.features
        self.ttl: Optional[_dt.timedelta] = _duration(data.get("ttl"))
        self.online: bool = bool(data.get("online", True))
        self.aggregations: List[Dict[str, Any]] = list(data.get("aggregations", []))


class OnDemandFeatureView(_Definition):
    """An on-demand view: ``sources`` and ``features`` (each with ``expr``)."""

    kind = "on_demand_feature_view"

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        self.features: List[Field] = [Field(f) for f in data.get("features", [])]
        self.sources: List[str] = list(data.get("sources", []))


class FeatureService(_Definition):
    """A named list of feature references (``features``: ``view:feature`` strings)."""

    kind = "feature_service"

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        features = data.get("features", [])
        self.features: List[str] = [f if isinstance(f, str) else _reference_text(f) for f in features]


def _reference_text(reference: Mapping[str, Any]) -> str:
    feature = reference.get("feature")
    return f"{reference['view']}:{feature}" if feature else str(reference["view"])


_KINDS = {
    "entity": ("entities", Entity),
    "source": ("sources", DataSource),
    "request_source": ("request_sources", RequestSource),
    "feature_view": ("feature_views", FeatureView),
    "on_demand_feature_view": ("on_demand_feature_views", OnDemandFeatureView),
    "feature_service": ("feature_services", FeatureService),
}


class Plan:
    """What ``apply`` changes (or changed): ``str(plan)`` prints like the CLI,
    ``changes`` lists them, ``is_empty`` says whether there is nothing to do."""

    def __init__(self, text: str, data: str, version: Optional[int] = None):
        self._text = text
        self._data = _json.loads(data)
        self.changes: List[Dict[str, Any]] = list(self._data.get("changes", []))
        #: The registry version after ``apply`` (None for ``plan``).
        self.version = version

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def to_dict(self) -> Dict[str, Any]:
        return dict(self._data)

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Plan({len(self.changes)} changes)"


# ---------------------------------------------------------------- results


class RetrievalJob:
    """A training set (Feast's ``RetrievalJob``). It is computed when
    ``get_historical_features`` returns; each ``to_*`` hands the same Arrow
    buffers to the library asked for, without copying them across the
    boundary."""

    def __init__(self, table: Any):
        self._table = table

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self._table.__arrow_c_stream__(requested_schema)

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table``."""
        return _arrow_table(self._table)

    def to_pandas(self) -> Any:
        """A pandas DataFrame (timestamps are UTC-aware)."""
        return self.to_arrow().to_pandas()

    def to_df(self) -> Any:
        """Feast's name for :meth:`to_pandas`."""
        return self.to_pandas()

    def to_polars(self) -> Any:
        """A polars DataFrame."""
        import polars as pl

        return pl.from_arrow(self.to_arrow())

    @property
    def num_rows(self) -> int:
        return self._table.num_rows

    @property
    def columns(self) -> List[str]:
        return list(self._table.column_names)

    def __len__(self) -> int:
        return self._table.num_rows

    def __repr__(self) -> str:
        return f"RetrievalJob({self.num_rows} rows, columns={self.columns})"


class OnlineResponse:
    """An online answer (Feast's ``OnlineResponse``): ``to_dict()`` maps each
    name (join keys, then features) to its values; ``statuses`` and
    ``event_timestamps`` give, per name, each row's status (``PRESENT``,
    ``NULL_VALUE``, ``NOT_FOUND``, ``OUTSIDE_MAX_AGE``) and event time."""

    def __init__(self, native: Any):
        self._native = native
        self._names: List[str] = list(native.names())

    def to_arrow(self) -> Any:
        return _arrow_table(self._native.values())

    def to_dict(self, include_event_timestamps: bool = False) -> Dict[str, List[Any]]:
        """``{name: [value per entity row]}``; with ``include_event_timestamps``
        each feature also gets ``{name}__ts`` (Feast's spelling)."""
        table = self.to_arrow()
        values = table.to_pydict()
        for field in table.schema:
            if _has_map(field.type):
                values[field.name] = [_with_dicts(v, field.type) for v in values[field.name]]
        if not include_event_timestamps:
            return values
        out: Dict[str, List[Any]] = {}
        for name, times in zip(self._names, self.event_timestamps.values()):
            out[name] = values[name]
            if any(t is not None for t in times):
                out[f"{name}__ts"] = times
        return out

    def to_pandas(self, include_event_timestamps: bool = False) -> Any:
        """A pandas DataFrame, one row per entity row."""
        if not include_event_timestamps:
            return self.to_arrow().to_pandas()
        import pandas as pd

        return pd.DataFrame(self.to_dict(include_event_timestamps=True))

    def to_df(self, include_event_timestamps: bool = False) -> Any:
        """Feast's name for :meth:`to_pandas`."""
        return self.to_pandas(include_event_timestamps)

    @property
    def statuses(self) -> Dict[str, List[str]]:
        return dict(zip(self._names, self._native.statuses()))

    @property
    def event_timestamps(self) -> Dict[str, List[Optional[_dt.datetime]]]:
        def when(micros: Optional[int]) -> Optional[_dt.datetime]:
            return None if micros is None else _EPOCH + _dt.timedelta(microseconds=micros)

        return {name: [when(t) for t in column] for name, column in zip(self._names, self._native.event_timestamps())}

    def __repr__(self) -> str:
        return f"OnlineResponse(names={self._names})"


# ---------------------------------------------------------------- the store


class FeatureStore:
    """An Almanac repo (a folder with ``almanac.yaml``)."""

    def __init__(self, repo_path: Union[str, "_os.PathLike[str]", None] = None, *, fs_yaml_file: Any = None):
        if fs_yaml_file is not None and repo_path is None:
            repo_path = _os.path.dirname(_os.fspath(fs_yaml_file)) or "."
        self._store = _almanac.Store(_os.fspath(repo_path if repo_path is not None else "."))

    @property
    def repo_path(self) -> str:
        return str(self._store.repo_path())

    def __repr__(self) -> str:
        return f"FeatureStore({self.repo_path!r})"

    # -- definitions

    def plan(self) -> Plan:
        """What ``apply`` would change; writes nothing."""
        text, data = self._store.plan()
        return Plan(text, data)

    def apply(self, objects: Any = None) -> Plan:
        """Check the repo's definitions against its data and write the registry.
        Definitions live in the repo's YAML, so ``objects`` must be None."""
        if objects is not None:
            raise InvalidInputError(
                "Almanac's definitions live in the repo's YAML files, not in Python objects; "
                "edit them and call apply() without arguments"
            )
        text, data, version = self._store.apply()
        self._store.refresh()
        return Plan(text, data, version)

    def refresh_registry(self) -> None:
        """Serve online reads from the registry as applied now."""
        self._store.refresh()

    # -- training

    def get_historical_features(
        self,
        entity_df: Any,
        features: Union[Sequence[str], "FeatureService", None] = None,
        full_feature_names: bool = False,
        *,
        feature_service: Union[str, "FeatureService", None] = None,
        timestamp_column: str = "event_timestamp",
    ) -> RetrievalJob:
        """A point-in-time-correct training set: one row per row of
        ``entity_df`` (pandas, polars, pyarrow), in its order, its columns
        unchanged, then the features as they were at each row's timestamp."""
        table = _arrow_input(entity_df, "entity_df")
        native = self._store.historical(
            table,
            full_feature_names=full_feature_names,
            timestamp_column=timestamp_column,
            **_selection(features, feature_service),
        )
        return RetrievalJob(native)

    # -- materialization

    def materialize(
        self,
        start_date: _TimeLike,
        end_date: _TimeLike,
        feature_views: Optional[Sequence[str]] = None,
        *,
        allow_future_end: bool = False,
    ) -> List[Dict[str, Any]]:
        """Load each online view's latest values in ``[start_date, end_date]``
        into the online store. Returns one report per view. An ``end_date``
        more than 5 minutes in the future is refused unless
        ``allow_future_end`` (a watermark in the future makes later
        incremental runs skip the data in between)."""
        start = _to_micros(start_date, "start_date")
        end = _to_micros(end_date, "end_date")
        reports = self._store.materialize(end, start=start, views=_names(feature_views), incremental=False, allow_future_end=allow_future_end)
        self._store.refresh()
        return _json.loads(reports)

    def materialize_incremental(
        self,
        end_date: _TimeLike,
        feature_views: Optional[Sequence[str]] = None,
        *,
        allow_future_end: bool = False,
    ) -> List[Dict[str, Any]]:
        """Materialize each view from its watermark (its last run's end) to ``end_date``."""
        end = _to_micros(end_date, "end_date")
        reports = self._store.materialize(end, start=None, views=_names(feature_views), incremental=True, allow_future_end=allow_future_end)
        self._store.refresh()
        return _json.loads(reports)

    # -- serving

    def get_online_features(
        self,
        features: Union[Sequence[str], "FeatureService", None] = None,
        entity_rows: Optional[Sequence[Mapping[str, Any]]] = None,
        full_feature_names: bool = False,
        *,
        entities: Optional[Mapping[str, Any]] = None,
        feature_service: Union[str, "FeatureService", None] = None,
    ) -> OnlineResponse:
        """Latest feature values for ``entity_rows`` (a list of dicts: join
        keys and request fields) or ``entities`` (a dict of columns)."""
        columns = _entity_columns(entity_rows, entities)
        native = self._store.online(columns, full_feature_names=full_feature_names, **_selection(features, feature_service))
        return OnlineResponse(native)

    def push(
        self,
        push_source_name: str,
        df: Any,
        allow_registry_cache: bool = True,
        to: Union[PushMode, str] = PushMode.ONLINE,
    ) -> Dict[str, Any]:
        """Write rows through a push source to the online store, the offline
        history, or both. Returns what was written."""
        if not allow_registry_cache:
            # As in Feast: reload the registry first (pushes, like online
            # reads, otherwise use the state they loaded).
            self._store.refresh()
        mode = to.value if isinstance(to, PushMode) else str(to)
        report = self._store.push(push_source_name, _arrow_input(df, "df"), mode)
        return _json.loads(report)

    # -- catalog

    def _list(self, kind: str, tags: Optional[Mapping[str, str]] = None) -> List[Any]:
        section, cls = _KINDS[kind]
        definitions = _json.loads(self._store.definitions())
        objects = [cls(data) for data in definitions.get(section, [])]
        if tags:
            objects = [o for o in objects if all(o.tags.get(k) == v for k, v in tags.items())]
        return objects

    def _get(self, kind: str, name: str) -> Any:
        return _KINDS[kind][1](_json.loads(self._store.object(kind, name)))

    def list_entities(self, tags: Optional[Mapping[str, str]] = None) -> List[Entity]:
        return self._list("entity", tags)

    def list_data_sources(self, tags: Optional[Mapping[str, str]] = None) -> List[DataSource]:
        return self._list("source", tags)

    def list_request_sources(self, tags: Optional[Mapping[str, str]] = None) -> List[RequestSource]:
        return self._list("request_source", tags)

    def list_feature_views(self, tags: Optional[Mapping[str, str]] = None) -> List[FeatureView]:
        return self._list("feature_view", tags)

    def list_on_demand_feature_views(self, tags: Optional[Mapping[str, str]] = None) -> List[OnDemandFeatureView]:
        return self._list("on_demand_feature_view", tags)

    def list_feature_services(self, tags: Optional[Mapping[str, str]] = None) -> List[FeatureService]:
        return self._list("feature_service", tags)

    def get_entity(self, name: str) -> Entity:
        return self._get("entity", name)

    def get_data_source(self, name: str) -> DataSource:
        return self._get("source", name)

    def get_request_source(self, name: str) -> RequestSource:
        return self._get("request_source", name)

    def get_feature_view(self, name: str) -> FeatureView:
        return self._get("feature_view", name)

    def get_on_demand_feature_view(self, name: str) -> OnDemandFeatureView:
        return self._get("on_demand_feature_view", name)

    def get_feature_service(self, name: str) -> FeatureService:
        return self._get("feature_service", name)


def _names(views: Optional[Iterable[Any]]) -> Optional[List[str]]:
    if views is None:
        return None
    return [v if isinstance(v, str) else v.name for v in views]


def _entity_columns(entity_rows: Optional[Sequence[Mapping[str, Any]]], entities: Optional[Mapping[str, Any]]) -> List[Any]:
    """Entity rows (Feast's list of dicts) or a dict of columns, as the
    ``[(name, [values])]`` the core reads."""
    if entity_rows is not None and entities is not None:
        raise InvalidInputError("give either `entity_rows` or `entities`, not both")
    if entities is not None:
        columns = []
        for name, values in entities.items():
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                values = [values]
            columns.append((str(name), [_python_value(v) for v in values]))
        return columns
    if entity_rows is None:
        raise InvalidInputError("pass `entity_rows` (a list of dicts such as [{'user_id': 1}]) or `entities` (a dict of columns)")
    if hasattr(entity_rows, "to_dict") and type(entity_rows).__module__.startswith("pandas"):
        entity_rows = entity_rows.to_dict("records")  # a DataFrame of entity rows
    names: List[str] = []
    for row in entity_rows:
        for name in row:
            if name not in names:
                names.append(name)
    columns = []
    for name in names:
        values = []
        for index, row in enumerate(entity_rows):
            if name not in row:
                raise InvalidInputError(f"entity row {index} has no `{name}`; every row needs the same keys")
            values.append(_python_value(row[name]))
        columns.append((name, values))
    return columns
