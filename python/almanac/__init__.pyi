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

import datetime as _dt
import enum as _enum
import os as _os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from ._almanac import (
    AlmanacError as AlmanacError,
    ConflictError as ConflictError,
    DefinitionError as DefinitionError,
    InvalidInputError as InvalidInputError,
    NotFoundError as NotFoundError,
    StoreUnavailableError as StoreUnavailableError,
)

__version__: str
"""The package's version: the Cargo workspace's, as the CLI's ``--version``."""

__all__: List[str]

_TimeLike = Union[str, _dt.datetime, _dt.date, Any]
"""An instant: a ``datetime`` (naive = UTC, aware = converted), a
``datetime.date`` (midnight UTC), a ``pandas.Timestamp``, a
``numpy.datetime64``, or a string in the CLI's grammar (RFC 3339 such as
``2026-06-10T14:00:00Z``; a time without a zone is UTC; a plain date is
midnight UTC)."""

_EntityDataFrame = Any
"""A pandas or polars DataFrame, a pyarrow Table, any object with
``__arrow_c_stream__``, or a mapping of column name to values."""

class PushMode(_enum.Enum):
    """Where :meth:`FeatureStore.push` writes (Feast's ``PushMode``)."""

    ONLINE = "online"
    OFFLINE = "offline"
    ONLINE_AND_OFFLINE = "online_and_offline"

class Field:
    """A feature: its name and dtype (Almanac's dtype names, e.g. ``float64``)."""

    name: str
    """The feature's name."""
    dtype: str
    """Almanac's dtype name: ``bool``, ``int32``, ``int64``, ``float32``,
    ``float64``, ``string``, ``bytes``, ``timestamp`` or ``list<T>``."""
    description: str
    """Free text from the definition ('' when absent)."""
    tags: Dict[str, str]
    """The feature's tags."""
    expr: Optional[str]
    """An on-demand feature's SQL expression (None for stored features)."""
    def __init__(self, data: Mapping[str, Any]) -> None:
        """A field from its registry JSON (``name``, ``dtype``, ...)."""
    def to_dict(self) -> Dict[str, Any]:
        """The field as the registry holds it."""
    def __eq__(self, other: object) -> bool:
        """Equal when the registry JSON is equal."""

class _Definition:
    """An applied definition: its fields as attributes, ``to_dict()`` for all."""

    kind: str
    """The registry's kind name (``entity``, ``feature_view``, ...)."""
    name: str
    """The object's name."""
    description: str
    """Free text ('' when absent)."""
    owner: str
    """The owner ('' when absent)."""
    tags: Dict[str, str]
    """The object's tags."""
    def __init__(self, data: Mapping[str, Any]) -> None:
        """An object from its registry JSON."""
    def to_dict(self) -> Dict[str, Any]:
        """The definition as the registry holds it (JSON-shaped)."""
    def __getattr__(self, name: str) -> Any:
        """Any other field of the registry JSON (e.g. a source's ``path``)."""
    def __eq__(self, other: object) -> bool:
        """Equal when of the same kind and the registry JSON is equal."""

class Entity(_Definition):
    """An entity: ``join_keys`` (names) and ``join_key`` (the first, as Feast)."""

    join_keys: List[str]
    """The join keys' names."""
    join_key: str
    """The first join key (Feast's single-key spelling)."""
    def __init__(self, data: Mapping[str, Any]) -> None:
        """An entity from its registry JSON."""

class DataSource(_Definition):
    """A file source (``path``, ``timestamp_field``,
    ``created_timestamp_column``, ``batch_source`` for a push source, ...),
    its fields read as attributes."""

class RequestSource(_Definition):
    """Fields that arrive with a request (``schema``: list of :class:`Field`)."""

    schema: List[Field]
    """The request fields."""
    def __init__(self, data: Mapping[str, Any]) -> None:
        """A request source from its registry JSON."""

class FeatureView(_Definition):
    """A feature view: ``entities``, ``source``, ``ttl`` (a timedelta or
    None), ``online``, ``features`` (list of :class:`Field`), and for an
    aggregation view ``aggregations``."""

    entities: List[str]
    """The names of the view's entities (empty: a global view)."""
    features: List[Field]
    """The view's features (an aggregation view's derived ones included)."""
    schema: List[Field]
    """The same list as :attr:`features` (Feast's other name)."""
    ttl: Optional[_dt.timedelta]
    """How long a value stays valid (DESIGN §2: ``T - ttl <= ts <= T``, both
    ends inclusive); None: never expires."""
    online: bool
    """Whether materialization and online reads serve the view."""
    aggregations: List[Dict[str, Any]]
    """An aggregation view's windowed aggregates (``name``, ``function``,
    ``column``, ``window``, ...); empty for a view of stored features."""
    def __init__(self, data: Mapping[str, Any]) -> None:
        """A feature view from its registry JSON."""

class OnDemandFeatureView(_Definition):
    """An on-demand view: ``sources`` and ``features`` (each with ``expr``)."""

    features: List[Field]
    """The computed features, each with its SQL ``expr``."""
    sources: List[str]
    """The feature views and request sources the expressions read."""
    def __init__(self, data: Mapping[str, Any]) -> None:
        """An on-demand view from its registry JSON."""

class FeatureService(_Definition):
    """A named list of feature references (``features``: ``view:feature`` strings)."""

    features: List[str]
    """The references, ``view:feature`` or a bare ``view`` (all its features)."""
    def __init__(self, data: Mapping[str, Any]) -> None:
        """A feature service from its registry JSON."""

class Plan:
    """What ``apply`` changes (or changed): ``str(plan)`` prints like the CLI,
    ``changes`` lists them, ``is_empty`` says whether there is nothing to do."""

    changes: List[Dict[str, Any]]
    """One dict per change: ``kind``, ``name``, ``action`` (``add``,
    ``change`` with ``fields``, ``remove``)."""
    version: Optional[int]
    """The registry version after ``apply`` (None for ``plan``)."""
    def __init__(self, text: str, data: str, version: Optional[int] = None) -> None:
        """A plan from the core's text and JSON."""
    @property
    def is_empty(self) -> bool:
        """True when there is nothing to change."""
    def to_dict(self) -> Dict[str, Any]:
        """The plan as ``almanac plan --json`` prints it."""

class RetrievalJob:
    """A training set (Feast's ``RetrievalJob``). It is computed when
    ``get_historical_features`` returns; each ``to_*`` hands the same Arrow
    buffers to the library asked for, without copying them across the
    boundary."""

    def __init__(self, table: Any) -> None:
        """Wrap the core's result table."""
    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The Arrow C stream PyCapsule (any Arrow consumer reads the job)."""
    def to_arrow(self) -> Any:
        """A ``pyarrow.Table``."""
    def to_pandas(self) -> Any:
        """A pandas DataFrame (timestamps are UTC-aware)."""
    def to_df(self) -> Any:
        """Feast's name for :meth:`to_pandas`."""
    def to_polars(self) -> Any:
        """A polars DataFrame."""
    @property
    def num_rows(self) -> int:
        """Rows: exactly one per entity row."""
    @property
    def columns(self) -> List[str]:
        """The entity table's columns, then the features."""
    def __len__(self) -> int:
        """The number of rows."""

class OnlineResponse:
    """An online answer (Feast's ``OnlineResponse``): ``to_dict()`` maps each
    name (join keys, then features) to its values; ``statuses`` and
    ``event_timestamps`` give, per name, each row's status (``PRESENT``,
    ``NULL_VALUE``, ``NOT_FOUND``, ``OUTSIDE_MAX_AGE``) and event time."""

    def __init__(self, native: Any) -> None:
        """Wrap the core's answer."""
    def to_arrow(self) -> Any:
        """The values as a ``pyarrow.Table`` (declared dtypes)."""
    def to_dict(self, include_event_timestamps: bool = False) -> Dict[str, List[Any]]:
        """``{name: [value per entity row]}``; with ``include_event_timestamps``
        each feature also gets ``{name}__ts`` (Feast's spelling)."""
    def to_pandas(self, include_event_timestamps: bool = False) -> Any:
        """A pandas DataFrame, one row per entity row."""
    def to_df(self, include_event_timestamps: bool = False) -> Any:
        """Feast's name for :meth:`to_pandas`."""
    @property
    def statuses(self) -> Dict[str, List[str]]:
        """Per name, each row's status; join keys are ``PRESENT``."""
    @property
    def event_timestamps(self) -> Dict[str, List[Optional[_dt.datetime]]]:
        """Per name, each row's event time (UTC-aware), or None (join keys,
        on-demand features, nothing found)."""

class FeatureStore:
    """An Almanac repo (a folder with ``almanac.yaml``)."""

    def __init__(self, repo_path: Union[str, "_os.PathLike[str]", None] = None, *, fs_yaml_file: Any = None) -> None:
        """Open the repo at ``repo_path`` (default: the current folder), or
        the folder of ``fs_yaml_file`` (Feast's spelling). Reads
        ``almanac.yaml`` only; raises :class:`AlmanacError` when it is not
        a repo and :class:`DefinitionError` when ``almanac.yaml`` is wrong."""
    @property
    def repo_path(self) -> str:
        """The repo's folder."""
    def plan(self) -> Plan:
        """What ``apply`` would change; writes nothing. Raises
        :class:`DefinitionError` (with ``diagnostics``) on any mistake."""
    def apply(self, objects: Any = None) -> Plan:
        """Check the repo's definitions against its data and write the registry.
        Definitions live in the repo's YAML, so ``objects`` must be None
        (anything else raises :class:`InvalidInputError`)."""
    def refresh_registry(self) -> None:
        """Serve online reads from the registry as applied now."""
    def get_historical_features(
        self,
        entity_df: _EntityDataFrame,
        features: Union[Sequence[str], FeatureService, None] = None,
        full_feature_names: bool = False,
        *,
        feature_service: Union[str, FeatureService, None] = None,
        timestamp_column: str = "event_timestamp",
    ) -> RetrievalJob:
        """A point-in-time-correct training set: one row per row of
        ``entity_df`` (pandas, polars, pyarrow), in its order, its columns
        unchanged, then the features as they were at each row's timestamp.

        ``features`` are ``view:feature`` references (a bare ``view`` means
        all its features) or a :class:`FeatureService`; or give
        ``feature_service`` by name. ``full_feature_names`` names features
        ``view__feature``. A timezone-naive timestamp column is UTC."""
    def materialize(self, start_date: _TimeLike, end_date: _TimeLike, feature_views: Optional[Sequence[Union[str, FeatureView]]] = None, *, allow_future_end: bool = False) -> List[Dict[str, Any]]:
        """Load each online view's latest values in ``[start_date, end_date]``
        into the online store. Returns one report per view (``view``,
        ``start``, ``end``, ``source_rows``, ``entities``, ``written``,
        ``kept_newer``, ``seconds``, ``up_to_date``, ``watermark_before``).
        An ``end_date`` more than 5 minutes in the future is refused unless
        ``allow_future_end``."""
    def materialize_incremental(self, end_date: _TimeLike, feature_views: Optional[Sequence[Union[str, FeatureView]]] = None, *, allow_future_end: bool = False) -> List[Dict[str, Any]]:
        """Materialize each view from its watermark (its last run's end) to ``end_date``."""
    def get_online_features(
        self,
        features: Union[Sequence[str], FeatureService, None] = None,
        entity_rows: Optional[Sequence[Mapping[str, Any]]] = None,
        full_feature_names: bool = False,
        *,
        entities: Optional[Mapping[str, Any]] = None,
        feature_service: Union[str, FeatureService, None] = None,
    ) -> OnlineResponse:
        """Latest feature values for ``entity_rows`` (a list of dicts: join
        keys and request fields) or ``entities`` (a dict of columns)."""
    def push(
        self,
        push_source_name: str,
        df: _EntityDataFrame,
        allow_registry_cache: bool = True,
        to: Union[PushMode, str] = PushMode.ONLINE,
    ) -> Dict[str, Any]:
        """Write rows through a push source to the online store, the offline
        history, or both. Returns what was written (``rows``, ``views``,
        ``online_written``, ``online_kept_newer``, ``offline_file``)."""
    def list_entities(self, tags: Optional[Mapping[str, str]] = None) -> List[Entity]:
        """Applied entities (only those with every tag given, when ``tags``)."""
    def list_data_sources(self, tags: Optional[Mapping[str, str]] = None) -> List[DataSource]:
        """Applied sources, push sources included."""
    def list_request_sources(self, tags: Optional[Mapping[str, str]] = None) -> List[RequestSource]:
        """Applied request sources."""
    def list_feature_views(self, tags: Optional[Mapping[str, str]] = None) -> List[FeatureView]:
        """Applied feature views (aggregation views included)."""
    def list_on_demand_feature_views(self, tags: Optional[Mapping[str, str]] = None) -> List[OnDemandFeatureView]:
        """Applied on-demand feature views."""
    def list_feature_services(self, tags: Optional[Mapping[str, str]] = None) -> List[FeatureService]:
        """Applied feature services."""
    def get_entity(self, name: str) -> Entity:
        """One entity; :class:`NotFoundError` (with the closest name) if unknown."""
    def get_data_source(self, name: str) -> DataSource:
        """One source; :class:`NotFoundError` (with the closest name) if unknown."""
    def get_request_source(self, name: str) -> RequestSource:
        """One request source; :class:`NotFoundError` if unknown."""
    def get_feature_view(self, name: str) -> FeatureView:
        """One feature view; :class:`NotFoundError` (with the closest name) if unknown."""
    def get_on_demand_feature_view(self, name: str) -> OnDemandFeatureView:
        """One on-demand view; :class:`NotFoundError` if unknown."""
    def get_feature_service(self, name: str) -> FeatureService:
        """One feature service; :class:`NotFoundError` if unknown."""
