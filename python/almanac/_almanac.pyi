"""The native half of the Python SDK (``almanac._almanac``): a thin PyO3
layer over the Rust facade. Tables cross as Arrow C streams (PyCapsules,
no copies), instants as microseconds since the epoch, structured answers
(plans, reports, definitions) as JSON text that ``almanac`` parses. Every
call that reads files, touches a store or computes releases the GIL.

Use the ``almanac`` package rather than this module: it accepts pandas,
polars and pyarrow, datetimes and strings, and shapes results as Feast does.
"""

from typing import Any, List, Optional, Sequence, Tuple

class AlmanacError(Exception):
    """Base class of every error Almanac raises."""

class DefinitionError(AlmanacError):
    """Mistakes in the repo's definitions, each located (file:line:col) with a fix; see `diagnostics`."""

    diagnostics: List[dict]
    """One dict per mistake: ``file`` (relative to the repo), ``line`` and
    ``column`` (1-based), ``message``, ``help`` (a fix, or None)."""

class NotFoundError(AlmanacError):
    """An unknown feature view, feature, service or source, or a repo never applied."""

class InvalidInputError(AlmanacError):
    """Arguments or data that do not fit (a missing column, a wrong type, a bad timestamp)."""

class StoreUnavailableError(AlmanacError):
    """An online store that does not answer (retry later)."""

class ConflictError(AlmanacError):
    """Another process holds a lock this call needs (a materialization of the same view)."""

class Table:
    """A result table. Python reads it through ``__arrow_c_stream__`` (what
    ``pyarrow.table(t)`` calls): the buffers move to the consumer, no copy.
    It can be read any number of times."""

    def __arrow_c_stream__(self, requested_schema: Optional[Any] = None) -> Any:
        """An ``arrow_array_stream`` PyCapsule over the table (the schema is
        the table's own; ``requested_schema`` is a hint it does not follow)."""
    @property
    def num_rows(self) -> int:
        """The number of rows."""
    @property
    def column_names(self) -> List[str]:
        """The column names, in order."""
    def __len__(self) -> int:
        """The number of rows."""

class Online:
    """The answer to an online request: values as an Arrow table, and per
    column and row a status and an event time."""

    def names(self) -> List[str]:
        """Join keys (as sent) then features, in request order."""
    def values(self) -> Table:
        """The values, one column per name."""
    def statuses(self) -> List[List[str]]:
        """``statuses()[column][row]``: PRESENT, NULL_VALUE, NOT_FOUND or OUTSIDE_MAX_AGE."""
    def event_timestamps(self) -> List[List[Optional[int]]]:
        """``event_timestamps()[column][row]``: µs since the epoch, or None."""

class Store:
    """An opened feature repo (``almanac.FeatureStore`` wraps it)."""

    def __init__(self, repo_path: str) -> None:
        """Open the repo at ``repo_path`` (reads ``almanac.yaml`` only)."""
    def repo_path(self) -> str:
        """The repo's folder."""
    def plan(self) -> Tuple[str, str]:
        """What ``apply`` would change: ``(text as the CLI prints it, JSON)``."""
    def apply(self) -> Tuple[str, str, int]:
        """Check and apply the definitions: ``(text, JSON of the plan, registry version)``."""
    def historical(
        self,
        entities: Any,
        features: Optional[Sequence[str]] = None,
        feature_service: Optional[str] = None,
        full_feature_names: bool = False,
        timestamp_column: str = "event_timestamp",
    ) -> Table:
        """A point-in-time-correct training set from an entity table (any
        object with ``__arrow_c_stream__``). Give exactly one of
        ``features`` and ``feature_service``."""
    def materialize(self, end: int, start: Optional[int] = None, views: Optional[Sequence[str]] = None, incremental: bool = False, allow_future_end: bool = False) -> str:
        """Materialize ``[start, end]`` (µs since the epoch; ``start=None``
        with ``incremental`` = from each view's watermark). Returns the
        per-view reports as JSON."""
    def online(self, columns: Sequence[Tuple[str, Sequence[Any]]], features: Optional[Sequence[str]] = None, feature_service: Optional[str] = None, full_feature_names: bool = False) -> Online:
        """Online features for entity rows given as columns (join keys and
        request fields; values: int, float, str, bool, bytes or None)."""
    def push(self, push_source: str, rows: Any, to: str) -> str:
        """Push rows (any object with ``__arrow_c_stream__``) through a push
        source; ``to`` is ``online``, ``offline`` or ``online_and_offline``.
        Returns the report as JSON."""
    def definitions(self) -> str:
        """The applied definitions, as JSON (the catalog calls read them)."""
    def object(self, kind: str, name: str) -> str:
        """One applied definition as JSON (``kind``: ``entity``, ``source``,
        ``request_source``, ``feature_view``, ``on_demand_feature_view``,
        ``feature_service``); an unknown name is a ``NotFoundError`` with
        the closest name as a suggestion."""
    def refresh(self) -> bool:
        """Serve reads from the registry as applied now; returns whether it changed."""
    def version(self) -> int:
        """The applied registry version (0: never applied)."""

def parse_instant(text: str) -> int:
    """An instant in the CLI's grammar (RFC 3339; a naive time is UTC, a
    plain date midnight UTC; ``now``) as µs since the epoch; ``InvalidInputError``
    otherwise."""

def version() -> str:
    """The version of the native module (the Cargo workspace's)."""
