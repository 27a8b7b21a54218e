"""Import a Feast feature repo as an Almanac repo.

Run as::

    python -m almanac.feast_import FEAST_REPO [--output DIR] [--json] [--no-check]

or from Python::

    from almanac.feast_import import import_feast
    report = import_feast("path/to/feature_repo", "path/to/almanac_repo")
    print(report.to_text())

The Feast repo is loaded with the ``feast`` package the way ``feast plan``
loads it (every ``*.py`` file of the repo imported, objects collected by
``feast.repo_operations.parse_repo``, ``feature_store.yaml`` read by Feast's
``RepoConfig``, features and timestamp fields inferred from the files), so
no Feast registry is needed and nothing is written into the Feast repo.

The output folder gets ``almanac.yaml`` (project, stores), one definitions
file ``features.yaml``, ``.gitignore`` and ``IMPORT_REPORT.md``. An existing
``almanac.yaml`` there is never overwritten. Everything that is not
converted is listed in the report with the reason; nothing is dropped
silently. On-demand feature views are translated to SQL expressions only
when their function is simple arithmetic or comparisons over input columns;
the translation reproduces pandas' (or Python's) numeric types with explicit
casts, so values match Feast's.

This file needs only the standard library, ``feast`` (and the numpy and
PyYAML it brings), so it also runs as a plain script in a Feast venv. The
written repo is checked with ``almanac plan``: the CLI named by
``ALMANAC_BIN`` when set, else the Almanac SDK, else ``almanac`` on the
PATH; a rejection is reported, not raised.

Exit status: 0 when the repo was written (even with items not converted or
a failed check: the report says so), 1 when the Feast repo cannot be read
or the output folder already holds an ``almanac.yaml``, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as _dt
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

__all__ = ["FEAST_TO_ALMANAC_DTYPE", "Report", "import_feast", "main"]

# ---------------------------------------------------------------- the type table

#: How each Feast type is written as an Almanac dtype: the ONE table to edit
#: when Almanac's dtypes change. Keys are Feast's type names (``str()`` of a
#: primitive type; ``Array``, ``Set`` and ``Struct`` for the complex ones).
#: ``None`` means "no Almanac dtype": such a feature is not converted and
#: the report says why. ``{inner}`` is the element's dtype, ``{fields}`` a
#: struct's ``name: dtype`` pairs joined by ``, ``.
FEAST_TO_ALMANAC_DTYPE: Dict[str, Optional[str]] = {
    "String": "string",
    "Bytes": "bytes",
    "PdfBytes": "bytes",
    "ImageBytes": "bytes",
    "Bool": "bool",
    "Int32": "int32",
    "Int64": "int64",
    "Float32": "float32",
    "Float64": "float64",
    "UnixTimestamp": "timestamp",
    "ZonedTimestamp": "timestamp",
    "Uuid": "string",
    "TimeUuid": "string",
    "Json": "json",
    # Feast's Map has no element type; what its file holds decides (see
    # `map_dtype_from_file`): a struct column (as in Feast's own template) is
    # `struct<...>`, an Arrow map `map<T>`, JSON text `json`. Both struct and
    # map are served as a JSON object, as Feast serves a Map.
    "Map": None,
    "Struct": "struct<{fields}>",
    "Array": "list<{inner}>",
    "Set": "list<{inner}>",
    "Decimal": None,
    "ScalarMap": None,
    "Invalid": None,
}

#: Why a type maps to ``None`` above (shown in the report).
UNSUPPORTED_TYPE_REASONS: Dict[str, str] = {
    "Decimal": "Almanac has no decimal dtype (Feast stores Decimal as text); declare it `string` or `float64` by hand",
    "ScalarMap": "Almanac's `map` has string keys only (Feast's ScalarMap has non-string keys)",
    "Invalid": "the Feast type is Invalid",
    "Map": "Feast's Map has no element type and its source file could not be read to find one; declare it by hand as `struct<...>` (a struct column), `map<T>` (an Arrow map) or `json` (JSON text)",
}

#: Conversions that keep the values but not every property of the Feast type.
TYPE_NOTES: Dict[str, str] = {
    "ZonedTimestamp": "Feast's ZonedTimestamp keeps each value's zone; Almanac's `timestamp` is a UTC instant (the zone is dropped)",
    "Set": "Feast's Set is read as an Almanac `list` (uniqueness is not enforced)",
    "Uuid": "Feast's Uuid is read as an Almanac `string`",
    "TimeUuid": "Feast's TimeUuid is read as an Almanac `string`",
    "PdfBytes": "Feast's PdfBytes is read as Almanac `bytes`",
    "ImageBytes": "Feast's ImageBytes is read as Almanac `bytes`",
}

#: Dtype spellings added to Almanac together with this importer. An Almanac
#: build that predates them rejects them at apply; the report says so.
NEW_DTYPE_PREFIXES = ("json", "map", "struct<")


def arrow_dtype(data_type: Any) -> Optional[str]:
    """The Almanac dtype of a pyarrow type, or None when there is none."""
    import pyarrow as pa

    t = data_type
    if pa.types.is_dictionary(t):
        return arrow_dtype(t.value_type)
    simple = [
        (pa.types.is_boolean, "bool"), (pa.types.is_int32, "int32"), (pa.types.is_int64, "int64"),
        (pa.types.is_float32, "float32"), (pa.types.is_float64, "float64"), (pa.types.is_timestamp, "timestamp"),
    ]
    for test, name in simple:
        if test(t):
            return name
    if pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _: False)(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytes"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = arrow_dtype(t.value_type)
        return None if inner is None or inner.startswith("list<") else f"list<{inner}>"
    if pa.types.is_map(t):
        inner = arrow_dtype(t.item_type)
        string_keys = pa.types.is_string(t.key_type) or pa.types.is_large_string(t.key_type)
        return f"map<{inner}>" if inner and string_keys else None
    if pa.types.is_struct(t):
        parts = []
        for field in t:
            inner = arrow_dtype(field.type)
            if inner is None or not _is_identifier(field.name):
                return None
            parts.append(f"{field.name}: {inner}")
        return f"struct<{', '.join(parts)}>" if parts else None
    return None


def map_dtype_from_file(data_type: Any) -> Tuple[Optional[str], Optional[str], List[str]]:
    """``(dtype, reason_if_none, notes)`` for a Feast Map feature whose file
    column has the pyarrow type ``data_type``."""
    import pyarrow as pa

    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "json", None, ["Feast's Map stored as JSON text is an Almanac `json` feature: served as the text (Feast's server parses it into an object)"]
    dtype = arrow_dtype(data_type)
    if dtype and (dtype.startswith("struct<") or dtype.startswith("map<")):
        notes = [f"Feast's Map is a {dtype.split('<')[0]} column in the file: an Almanac `{dtype}`, served as a JSON object as Feast serves it"]
        return dtype, None, notes
    return None, f"its file column is {data_type}, which is not a struct, a map or JSON text", []


def almanac_dtype(feast_type: Any) -> Tuple[Optional[str], Optional[str], List[str]]:
    """``(dtype, reason_if_none, notes)`` for a Feast type (``feast.types``)."""
    notes: List[str] = []
    kind = type(feast_type).__name__
    if kind == "Struct":
        parts = []
        for name, inner in feast_type.fields.items():
            if not _is_identifier(name):
                return None, f"struct field `{name}` is not a plain name (letters, digits, `_`)", notes
            dtype, reason, inner_notes = almanac_dtype(inner)
            if dtype is None:
                return None, f"struct field `{name}`: {reason}", notes
            notes.extend(inner_notes)
            parts.append(f"{name}: {dtype}")
        template = FEAST_TO_ALMANAC_DTYPE.get("Struct")
        if template is None:
            return None, "Almanac has no struct dtype", notes
        return template.format(fields=", ".join(parts)), None, notes
    if kind in ("Array", "Set"):
        template = FEAST_TO_ALMANAC_DTYPE.get(kind)
        if template is None:
            return None, f"Almanac has no dtype for Feast's {kind}", notes
        if type(feast_type.base_type).__name__ in ("Array", "Set"):
            return None, f"`{feast_type}` is a list of lists, which Almanac does not have", notes
        inner, reason, inner_notes = almanac_dtype(feast_type.base_type)
        if inner is None:
            return None, f"element type of `{feast_type}`: {reason}", notes
        notes.extend(inner_notes)
        if kind in TYPE_NOTES:
            notes.append(TYPE_NOTES[kind])
        return template.format(inner=inner), None, notes
    name = str(feast_type)
    if name not in FEAST_TO_ALMANAC_DTYPE:
        return None, f"Feast type `{name}` is unknown to this importer", notes
    dtype = FEAST_TO_ALMANAC_DTYPE[name]
    if dtype is None:
        return None, UNSUPPORTED_TYPE_REASONS.get(name, f"Almanac has no dtype for Feast's `{name}`"), notes
    if name in TYPE_NOTES:
        notes.append(TYPE_NOTES[name])
    return dtype, None, notes


def _is_new_dtype(dtype: str) -> bool:
    """Whether `dtype` uses one of the spellings in NEW_DTYPE_PREFIXES (at any depth)."""
    return any(re.search(r"(^|[<\s])" + re.escape(p), dtype) for p in NEW_DTYPE_PREFIXES)


# ---------------------------------------------------------------- the report


@dataclass
class Report:
    """What an import converted, and everything it did not (with reasons)."""

    feast_repo: str
    output: str
    project: str = ""
    files: List[str] = field(default_factory=list)
    #: ``{"kind", "name", "detail"}``: objects written to the Almanac repo.
    converted: List[Dict[str, str]] = field(default_factory=list)
    #: ``{"kind", "name", "reason"}``: objects (or parts) not converted.
    not_converted: List[Dict[str, str]] = field(default_factory=list)
    #: ``{"kind", "name", "note"}``: converted, with a difference or an action to take.
    notes: List[Dict[str, str]] = field(default_factory=list)
    #: The result of ``almanac plan`` on the written repo (``ran``, ``ok``, ``tool``, ``errors``, ``hint``).
    check: Dict[str, Any] = field(default_factory=dict)

    def add_converted(self, kind: str, name: str, detail: str = "") -> None:
        self.converted.append({"kind": kind, "name": name, "detail": detail})

    def add_not_converted(self, kind: str, name: str, reason: str) -> None:
        self.not_converted.append({"kind": kind, "name": name, "reason": reason})

    def add_note(self, kind: str, name: str, note: str) -> None:
        entry = {"kind": kind, "name": name, "note": note}
        if entry not in self.notes:
            self.notes.append(entry)

    @property
    def ok(self) -> bool:
        """Everything converted and the written repo passed ``almanac plan``."""
        return not self.not_converted and self.check.get("ok", True)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "feast_repo": self.feast_repo,
            "output": self.output,
            "project": self.project,
            "files": list(self.files),
            "converted": list(self.converted),
            "not_converted": list(self.not_converted),
            "notes": list(self.notes),
            "check": dict(self.check),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        lines = [f"Imported the Feast repo {self.feast_repo}", f"into the Almanac repo {self.output} (project `{self.project}`)", ""]
        lines.append(f"Converted ({len(self.converted)}):")
        for item in self.converted:
            lines.append(f"  {item['kind']} {item['name']}" + (f": {item['detail']}" if item["detail"] else ""))
        lines.append("")
        lines.append(f"Not converted ({len(self.not_converted)}):" if self.not_converted else "Not converted: nothing")
        for item in self.not_converted:
            lines.append(f"  {item['kind']} {item['name']}: {item['reason']}")
        if self.notes:
            lines.append("")
            lines.append(f"Notes ({len(self.notes)}):")
            for item in self.notes:
                lines.append(f"  {item['kind']} {item['name']}: {item['note']}")
        lines.append("")
        lines.extend(self._check_lines())
        return "\n".join(lines) + "\n"

    def _check_lines(self) -> List[str]:
        check = self.check
        if not check.get("ran"):
            return [f"Check: not run ({check.get('reason', 'disabled')}); run `almanac --repo {self.output} plan`"]
        if check.get("ok"):
            return [f"Check: `almanac plan` accepts the repo ({check.get('tool')}); next: `almanac --repo {self.output} apply`"]
        lines = [f"Check: `almanac plan` rejects the repo ({check.get('tool')}):"]
        for error in check.get("errors", []):
            lines.append(f"  {error}")
        if check.get("hint"):
            lines.append(f"  {check['hint']}")
        return lines

    def to_markdown(self) -> str:
        out = [
            "# Import report",
            "",
            f"Feast repo: `{self.feast_repo}`  ",
            f"Almanac repo: `{self.output}` (project `{self.project}`)",
            "",
            f"## Converted ({len(self.converted)})",
            "",
        ]
        out.extend(f"- {i['kind']} `{i['name']}`" + (f": {i['detail']}" if i["detail"] else "") for i in self.converted)
        out += ["", f"## Not converted ({len(self.not_converted)})", ""]
        out.extend(f"- {i['kind']} `{i['name']}`: {i['reason']}" for i in self.not_converted)
        if not self.not_converted:
            out.append("Nothing.")
        out += ["", f"## Notes ({len(self.notes)})", ""]
        out.extend(f"- {i['kind']} `{i['name']}`: {i['note']}" for i in self.notes)
        if not self.notes:
            out.append("None.")
        out += ["", "## Check", ""]
        out.extend(self._check_lines())
        return "\n".join(out) + "\n"


class ImportFailed(Exception):
    """The Feast repo could not be read, or the output folder is unusable."""


# ---------------------------------------------------------------- loading the Feast repo


@dataclass
class _FeastRepo:
    root: Path
    config: Any
    raw_config: Dict[str, Any]
    contents: Any
    inference_errors: List[str]


def _find_config(path: Path) -> Tuple[Path, Path]:
    """The Feast repo root and its ``feature_store.yaml`` (``feast init``
    writes ``NAME/feature_repo/feature_store.yaml``; either folder works)."""
    path = path.resolve()
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        return path.parent, path
    for candidate in (path / "feature_store.yaml", path / "feature_repo" / "feature_store.yaml"):
        if candidate.is_file():
            return candidate.parent, candidate
    raise ImportFailed(f"no feature_store.yaml in {path} (nor in {path / 'feature_repo'}); give the folder of a Feast feature repo")


@contextlib.contextmanager
def _feast_import_context(root: Path) -> Iterator[None]:
    """What ``feast plan`` sets up: the repo as the working directory and on
    ``sys.path``; no bytecode written into the repo. Modules imported from the
    repo are forgotten afterwards, so two repos with the same file names can
    be imported in one process."""
    before = set(sys.modules)
    cwd = os.getcwd()
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    sys.path.insert(0, str(root))
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(cwd)
        with contextlib.suppress(ValueError):
            sys.path.remove(str(root))
        sys.dont_write_bytecode = dont_write
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules.get(name), "__file__", None) or ""
            if module_file and Path(module_file).resolve().is_relative_to(root):
                del sys.modules[name]


def _load_feast_repo(path: Path) -> _FeastRepo:
    try:
        import feast  # noqa: F401
        from feast.repo_config import load_repo_config
        from feast.repo_operations import parse_repo
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportFailed(f"the `feast` package is not importable by {sys.executable} ({error}); install it (`pip install feast`) in the Python that runs the import, or point ALMANAC_PYTHON at a Python that has it") from error
    import yaml

    root, config_path = _find_config(path)
    load_notes: List[str] = []
    try:
        raw = yaml.safe_load(os.path.expandvars(config_path.read_text())) or {}
    except Exception as error:
        raise ImportFailed(f"{config_path}: not readable YAML: {error}") from error
    if not isinstance(raw, dict) or not raw.get("project"):
        raise ImportFailed(f"{config_path}: no `project:` (is this a Feast feature_store.yaml?)")
    try:
        config = load_repo_config(root, config_path)
    except Exception as error:
        # Feast validates store settings by importing their modules, which
        # needs the store's extra (feast[redis], feast[gcp], ...). The
        # definitions do not depend on the stores: read them with the local
        # ones, and map the settings as written.
        from feast.repo_config import RepoConfig

        local = {k: v for k, v in raw.items() if k not in ("online_store", "offline_store", "batch_engine", "auth", "feature_server", "flags")}
        local["project"] = _identifier(str(raw["project"]))  # SQLite's rule; the project is read from `raw`
        try:
            config = RepoConfig(**local)
            config.repo_path = root
        except Exception as second:
            raise ImportFailed(f"{config_path}: Feast cannot read it: {error}") from second
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        load_notes.append(f"Feast could not load the store settings as written ({first_line}); the definitions were read with Feast's local stores, and the settings mapped from feature_store.yaml")
    # The repo's own prints (and Feast's) go to stderr: stdout carries the report (`--json`).
    with _feast_import_context(root), contextlib.redirect_stdout(sys.stderr):
        try:
            contents = parse_repo(root)
        except SystemExit as error:
            raise ImportFailed(f"importing the Feast repo's Python files exited ({error})") from error
        except Exception as error:
            raise ImportFailed(f"importing the Feast repo's Python files failed: {type(error).__name__}: {error}") from error
        errors = _infer(contents, config)
    return _FeastRepo(root=root, config=config, raw_config=raw, contents=contents, inference_errors=load_notes + errors)


def _infer(contents: Any, config: Any) -> List[str]:
    """Feast's own inference (what ``feast plan`` runs): timestamp fields of
    sources, features and entity columns of views from their files. Nothing
    touches the Feast registry."""
    errors: List[str] = []
    try:
        from feast.inference import (
            update_data_sources_with_inferred_event_timestamp_col,
            update_feature_views_with_inferred_features_and_entities,
        )
        from feast.infra.provider import get_provider
    except ImportError as error:  # pragma: no cover
        return [f"Feast's inference is unavailable: {error}"]
    views = list(contents.feature_views) + list(contents.stream_feature_views)
    sources = list(contents.data_sources) + [v.batch_source for v in views if v.batch_source is not None]
    for source in sources:
        try:
            update_data_sources_with_inferred_event_timestamp_col([source], config)
        except Exception as error:
            errors.append(f"source `{getattr(source, 'name', '?')}`: timestamp field not inferred: {error}")
    try:
        provider = get_provider(config)
    except Exception as error:
        return errors + [f"Feast's provider could not be created, so features were not inferred from the files: {error}"]
    entities = list(contents.entities)
    for view in views:
        try:
            update_feature_views_with_inferred_features_and_entities(provider, [view], entities, config)
        except Exception as error:
            errors.append(f"feature view `{view.name}`: features not inferred from its source: {error}")
    return errors


# ---------------------------------------------------------------- YAML (written by hand: a small, fixed shape)

_PLAIN = re.compile(r"^([A-Za-z_./][A-Za-z0-9_./-]*|[0-9]+[smhdw])$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~", ".inf", ".nan", "."}


def _q(value: Any) -> str:
    """A YAML scalar: plain when unambiguous, else a JSON string (valid YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


def _flow(mapping: Dict[str, Any]) -> str:
    parts = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            parts.append(f"{key}: {_flow(value)}")
        elif isinstance(value, list):
            parts.append(f"{key}: [{', '.join(_q(v) for v in value)}]")
        else:
            parts.append(f"{key}: {_q(value)}")
    return "{" + ", ".join(parts) + "}"


def _block(obj: Dict[str, Any], indent: int = 4) -> List[str]:
    """One object of a top-level list: ``- name: ...`` then its keys."""
    pad = " " * indent
    lines: List[str] = []
    first = True
    for key, value in obj.items():
        if value is None or value == "" or value == {} or value == []:
            continue
        prefix = (" " * (indent - 2) + "- ") if first else pad
        first = False
        if isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{prefix}{key}:")
            lines.extend(f"{pad}  - {_flow(item)}" for item in value)
        elif isinstance(value, list):
            lines.append(f"{prefix}{key}: [{', '.join(_q(v) for v in value)}]")
        elif isinstance(value, dict):
            lines.append(f"{prefix}{key}: {_flow(value)}")
        else:
            lines.append(f"{prefix}{key}: {_q(value)}")
    return lines


def _definitions_yaml(sections: Dict[str, List[Dict[str, Any]]], header: str) -> str:
    out = [header.rstrip(), ""]
    for section, items in sections.items():
        if not items:
            continue
        out.append(f"{section}:")
        for item in items:
            out.extend(_block(item))
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- names, durations, paths


def _is_identifier(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", text or ""))


def _identifier(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", text or "")
    if not name or name[0].isdigit():
        name = "_" + name
    return name


def _duration(ttl: Optional[_dt.timedelta]) -> Tuple[Optional[str], Optional[str]]:
    """Almanac duration text for a Feast TTL (``None``: never expires), and a note."""
    if ttl is None:
        return None, None
    micros = ttl // _dt.timedelta(microseconds=1)
    if micros <= 0:
        return None, None
    seconds, rest = divmod(micros, 1_000_000)
    note = None
    if rest:
        seconds += 1
        note = f"TTL {ttl} rounded up to {seconds}s (Almanac durations are whole seconds)"
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}", note
    return f"{seconds}s", note  # pragma: no cover


def _governance(obj: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    description = (getattr(obj, "description", "") or "").strip()
    if description:
        out["description"] = description
    owner = (getattr(obj, "owner", "") or "").strip()
    if owner:
        out["owner"] = owner
    tags = getattr(obj, "tags", None) or {}
    if tags:
        out["tags"] = {str(k): str(v) for k, v in tags.items()}
    return out


_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# ---------------------------------------------------------------- the converter


_SQL_TYPES = {"bool": "BOOLEAN", "int32": "INT", "int64": "BIGINT", "float32": "REAL", "float64": "DOUBLE"}
_SQL_KEYWORDS = {
    "all", "and", "as", "asc", "between", "by", "case", "cast", "count", "date", "default", "desc", "distinct", "else",
    "end", "false", "from", "group", "having", "in", "interval", "is", "join", "like", "limit", "not", "null", "on",
    "or", "order", "select", "table", "then", "time", "timestamp", "true", "union", "user", "value", "values", "when",
    "where", "with",
}


class _Converter:
    def __init__(self, repo: _FeastRepo, output: Path, report: Report):
        self.repo = repo
        self.output = output
        self.report = report
        self.entities: List[Dict[str, Any]] = []
        self.sources: List[Dict[str, Any]] = []
        self.request_sources: List[Dict[str, Any]] = []
        self.views: List[Dict[str, Any]] = []
        self.odfvs: List[Dict[str, Any]] = []
        self.services: List[Dict[str, Any]] = []
        # Feast name -> Almanac name, per kind (only converted objects).
        self.entity_names: Dict[str, str] = {}
        self.entity_keys: Dict[str, List[str]] = {}
        self.source_names: Dict[int, str] = {}  # id(feast source) -> Almanac name
        self.request_names: Dict[str, str] = {}
        self.request_fields: Dict[str, Dict[str, str]] = {}  # almanac request source -> field -> dtype
        self.view_names: Dict[str, str] = {}
        self.view_features: Dict[str, Dict[str, str]] = {}  # almanac view -> feature -> dtype
        self.odfv_names: Dict[str, str] = {}
        self.odfv_features: Dict[str, Dict[str, str]] = {}
        self.used_names: Dict[str, set] = {}

    # -- names

    def _name(self, kind: str, feast_name: str) -> str:
        """A unique Almanac identifier for a Feast name (renames are noted)."""
        taken = self.used_names.setdefault(kind, set())
        name = feast_name if _is_identifier(feast_name) else _identifier(feast_name)
        base, n = name, 2
        while name in taken:
            name = f"{base}_{n}"
            n += 1
        taken.add(name)
        if name != feast_name:
            self.report.add_note(kind, name, f"renamed from Feast's `{feast_name}` (Almanac names are letters, digits and `_`, unique per kind)")
        return name

    # -- project and stores

    def config(self) -> Tuple[str, List[str]]:
        cfg = self.repo.config
        raw = self.repo.raw_config
        projects = list(getattr(self.repo.contents, "projects", []) or [])
        feast_project = projects[0].name if projects else str(raw.get("project") or cfg.project)
        project = _identifier(feast_project)
        self.report.project = project
        if project != feast_project:
            self.report.add_note("project", project, f"renamed from Feast's `{feast_project}`")
        lines = ["# Imported from the Feast repo " + str(self.repo.root) + " by `almanac import-feast`.", f"project: {_q(project)}"]
        description = (getattr(projects[0], "description", "") if projects else "") or (raw.get("project_description") or "")
        if description:
            lines.insert(1, "# " + " ".join(str(description).split()))

        # Offline store.
        offline = raw.get("offline_store")
        offline_type = offline.get("type") if isinstance(offline, dict) else offline
        offline_type = offline_type or "file"
        if offline_type in ("file", "dask", "duckdb"):
            self.report.add_converted("offline store", str(offline_type), "embedded (DataFusion + Almanac's as-of join over the same Parquet files)")
        else:
            self.report.add_not_converted("offline store", str(offline_type), "no Almanac equivalent in this version (Almanac's offline store is embedded over Parquet/CSV files); the repo uses the embedded engine")
        # Online store.
        online = raw.get("online_store")
        online_type = (online.get("type") if isinstance(online, dict) else online) or "sqlite"
        online_lines = self._online_store(str(online_type), online if isinstance(online, dict) else {})
        lines.extend(online_lines)

        # Everything else in feature_store.yaml.
        registry = raw.get("registry")
        if registry is not None:
            self.report.add_note("registry", "registry", "Feast's registry is not carried over: Almanac keeps its own (`.almanac/registry.json`), written by `almanac apply` from the YAML definitions")
        provider = raw.get("provider", "local")
        if provider not in (None, "local"):
            self.report.add_not_converted("setting", "provider", f"`provider: {provider}` has no Almanac equivalent (stores are set in almanac.yaml)")
        auth = raw.get("auth")
        if isinstance(auth, dict) and auth.get("type") not in (None, "no_auth"):
            self.report.add_not_converted("setting", "auth", f"Feast auth `{auth.get('type')}` has no Almanac equivalent; `almanac serve --token-file FILE` requires a bearer token")
        known = {"project", "project_description", "registry", "provider", "online_store", "offline_store", "entity_key_serialization_version", "auth", "repo_path"}
        for key in raw:
            if key not in known:
                self.report.add_not_converted("setting", str(key), f"feature_store.yaml `{key}` has no Almanac equivalent")
        return project, lines

    def _online_store(self, kind: str, settings: Dict[str, Any]) -> List[str]:
        report = self.report
        if kind == "sqlite":
            report.add_converted("online store", "sqlite", "embedded (LMDB in .almanac/online); values are not copied: run `almanac materialize`")
            return []
        if kind == "redis":
            for key in ("key_ttl_seconds",):
                if settings.get(key):
                    report.add_not_converted("setting", f"online_store.{key}", "Almanac does not expire Redis keys; it enforces each view's TTL on every read instead")
            redis_type = str(settings.get("redis_type", "redis"))
            connection = str(settings.get("connection_string", "localhost:6379"))
            nodes, params = _parse_redis_connection(connection)
            if redis_type.endswith("redis_cluster"):
                urls = [_redis_url(host, port, params, db=False) for host, port in nodes]
                report.add_converted("online store", "redis (cluster)", ", ".join(urls))
                self._redis_params_notes(params, cluster=True)
                return ["online:", "  type: redis-cluster", "  nodes: [" + ", ".join(_q(u) for u in urls) + "]"]
            if redis_type.endswith("redis_sentinel"):
                report.add_not_converted("online store", "redis (sentinel)", "Almanac connects to Redis or Redis Cluster, not through Sentinel; the repo uses the embedded store: set `online: {type: redis, url: redis://MASTER:6379/0}` by hand")
                return []
            host, port = nodes[0] if nodes else ("localhost", "6379")
            url = _redis_url(host, port, params, db=True)
            report.add_converted("online store", "redis", url)
            self._redis_params_notes(params, cluster=False)
            return ["online:", "  type: redis", f"  url: {_q(url)}"]
        report.add_not_converted("online store", kind, "no Almanac equivalent (Almanac's online stores are embedded, Redis and Redis Cluster); the repo uses the embedded store")
        return []

    def _redis_params_notes(self, params: Dict[str, str], cluster: bool) -> None:
        for key in params:
            if key not in ("password", "ssl", "db", "username") and not (cluster and key == "skip_full_coverage_check"):
                self.report.add_not_converted("setting", f"online_store.connection_string {key}", "no Almanac equivalent")
        if "password" in params:
            self.report.add_note("online store", "redis", "the password from Feast's connection string is written into the URL in almanac.yaml; keep that file private or use a URL from your secret store")

    # -- entities

    def convert_entities(self) -> None:
        from feast.types import VALUE_TYPES_TO_FEAST_TYPES
        from feast.value_type import ValueType

        column_types: Dict[str, Any] = {}
        for view in self.repo.contents.feature_views:
            for column in getattr(view, "entity_columns", []) or []:
                column_types.setdefault(column.name, column.dtype)
        for entity in self.repo.contents.entities:
            if entity.name == "__dummy":
                continue
            keys = list(getattr(entity, "join_keys", None) or [entity.join_key])
            bad = [k for k in keys if not _is_identifier(k)]
            if bad:
                self.report.add_not_converted("entity", entity.name, f"join key `{bad[0]}` is not a plain name (letters, digits, `_`), which Almanac needs for a column")
                continue
            name = self._name("entity", entity.name)
            feast_type = None
            if entity.value_type not in (None, ValueType.UNKNOWN):
                feast_type = VALUE_TYPES_TO_FEAST_TYPES.get(entity.value_type)
            join_keys: List[Any] = []
            for key in keys:
                key_type = feast_type if feast_type is not None else column_types.get(key)
                dtype = almanac_dtype(key_type)[0] if key_type is not None else None
                if dtype in ("int64", "string"):
                    join_keys.append({"name": key, "dtype": dtype})
                else:
                    if dtype is not None:
                        self.report.add_note("entity", name, f"join key `{key}` is `{dtype}` in Feast; Almanac join keys are int64 or string, so its type is left to apply (read from the files)")
                    join_keys.append(key)
            obj: Dict[str, Any] = {"name": name}
            simple = all(isinstance(k, str) for k in join_keys)
            obj["join_keys"] = join_keys if simple else [k if isinstance(k, dict) else {"name": k} for k in join_keys]
            obj.update(_governance(entity))
            self.entities.append(obj)
            self.entity_names[entity.name] = name
            self.entity_keys[name] = keys
            detail = "join keys " + ", ".join(f"{k['name']} ({k['dtype']})" if isinstance(k, dict) and "dtype" in k else (k["name"] if isinstance(k, dict) else k) for k in join_keys)
            self.report.add_converted("entity", name, detail)

    # -- sources

    def convert_sources(self) -> None:
        from feast.data_source import KafkaSource, KinesisSource, PushSource, RequestSource
        from feast.infra.offline_stores.file_source import FileSource

        all_sources = list(self.repo.contents.data_sources)
        # Batch sources first, so push sources can name them.
        ordered = [s for s in all_sources if isinstance(s, FileSource)] + [s for s in all_sources if not isinstance(s, FileSource)]
        for source in ordered:
            label = source.name or getattr(source, "path", "") or type(source).__name__
            if isinstance(source, FileSource):
                self._file_source(source)
            elif isinstance(source, PushSource):
                self._push_source(source)
            elif isinstance(source, RequestSource):
                self._request_source(source)
            elif isinstance(source, (KafkaSource, KinesisSource)):
                kind = "Kafka" if isinstance(source, KafkaSource) else "Kinesis"
                self.report.add_not_converted(
                    "source", label,
                    f"{kind} stream source: Almanac consumes NATS JetStream or Redis Streams (`stream:` sources, README \"Streams\"); its batch source is converted and views read their history from it",
                )
            else:
                self.report.add_not_converted(
                    "source", label,
                    f"{type(source).__name__} is not a file source: Almanac's embedded offline store reads Parquet or CSV files (a file, a folder or a glob); export the table to Parquet and declare a source with `path:`",
                )

    def _file_source(self, source: Any) -> None:
        from feast.data_format import DeltaFormat, ParquetFormat

        label = source.name or source.path
        path = source.path or ""
        if _REMOTE.match(path) and not path.startswith("file://"):
            self.report.add_not_converted("source", label, f"`{path}` is not a local file; Almanac reads local Parquet/CSV files: copy the data locally (or mount it) and set `path:`")
            return
        if path.startswith("file://"):
            path = path[len("file://"):]
        fmt = getattr(source, "file_format", None)
        if isinstance(fmt, DeltaFormat):
            self.report.add_not_converted("source", label, "Delta tables are not readable by this Almanac version (Parquet or CSV); export the table to Parquet")
            return
        if fmt is not None and not isinstance(fmt, ParquetFormat):
            self.report.add_not_converted("source", label, f"file format `{type(fmt).__name__}` is not supported (Parquet or CSV)")
            return
        timestamp = source.timestamp_field or ""
        if not timestamp:
            self.report.add_not_converted("source", label, "it has no timestamp field and Feast could not infer one; set `timestamp_field` in Feast (or write the source by hand)")
            return
        absolute = Path(path) if os.path.isabs(path) else (self.repo.root / path)
        absolute = Path(os.path.normpath(absolute))
        try:
            relative = os.path.relpath(absolute, self.output)
        except ValueError:  # another drive (Windows)
            relative = str(absolute)
        name = self._name("source", source.name or Path(path).stem + "_source")
        obj: Dict[str, Any] = {"name": name, "path": relative, "timestamp_field": timestamp}
        if absolute.suffix.lower() not in (".parquet", ".csv") and not absolute.is_dir():
            obj["format"] = "parquet"
        if source.created_timestamp_column:
            obj["created_timestamp_column"] = source.created_timestamp_column
        if source.field_mapping:
            obj["field_mapping"] = {str(k): str(v) for k, v in source.field_mapping.items()}
        obj.update(_governance(source))
        self.sources.append(obj)
        self.source_names[id(source)] = name
        self.report.add_converted("source", name, f"file {relative}")
        if not absolute.exists():
            self.report.add_note("source", name, f"{absolute} does not exist yet; `almanac apply` checks the file")
        if getattr(source, "date_partition_column", None):
            self.report.add_note("source", name, f"Feast's date_partition_column `{source.date_partition_column}` is not needed (Almanac prunes by event time) and was dropped")

    def _push_source(self, source: Any) -> None:
        batch = source.batch_source
        batch_name = self.source_names.get(id(batch)) if batch is not None else None
        if batch_name is None:
            self.report.add_not_converted("source", source.name, "push source whose batch source was not converted (see that source)")
            return
        name = self._name("source", source.name)
        obj: Dict[str, Any] = {"name": name, "batch_source": batch_name}
        obj.update(_governance(source))
        self.sources.append(obj)
        self.source_names[id(source)] = name
        self.report.add_converted("push source", name, f"batch source {batch_name}")
        batch_obj = next(s for s in self.sources if s["name"] == batch_name)
        batch_path = Path(os.path.normpath(self.output / batch_obj["path"]))
        if not batch_path.is_dir():
            folder = Path(batch_obj["path"]).with_suffix("")
            self.report.add_note(
                "push source", name,
                f"its batch source `{batch_name}` is a single file ({batch_obj['path']}): online pushes work, but Almanac appends offline pushes "
                f"as new Parquet files to a folder, so pushes `to: offline` or `online_and_offline` are refused until it is one: move the file "
                f"into a folder ({folder}/{batch_path.name}) and set `path: {folder}` on `{batch_name}` "
                f"(Feast's DuckDB store reads the same files with the path `{folder}/*.parquet`)",
            )

    def _request_source(self, source: Any) -> None:
        fields, dropped = self._fields(source.schema or [], "request source", source.name)
        if not fields:
            self.report.add_not_converted("request source", source.name, "none of its fields has an Almanac dtype" + (f" ({dropped[0]})" if dropped else ""))
            return
        name = self._name("request source", source.name)
        obj: Dict[str, Any] = {"name": name, **_governance(source), "schema": fields}
        self.request_sources.append(obj)
        self.request_names[source.name] = name
        self.request_fields[name] = {f["name"]: f["dtype"] for f in fields}
        self.report.add_converted("request source", name, ", ".join(f"{f['name']} ({f['dtype']})" for f in fields))

    def _file_types(self, source: Any) -> Dict[str, Any]:
        """Feature name → pyarrow type of its column in the source's file (the
        first Parquet file of a folder); empty when it cannot be read."""
        path = (getattr(source, "path", None) or "").replace("file://", "", 1)
        if not path or _REMOTE.match(path):
            return {}
        absolute = Path(path) if os.path.isabs(path) else self.repo.root / path
        try:
            import pyarrow.parquet as pq

            if absolute.is_dir():
                files = sorted(absolute.rglob("*.parquet"))
                if not files:
                    return {}
                absolute = files[0]
            schema = pq.read_schema(absolute)
        except Exception:  # unreadable or absent: Map features are then reported
            return {}
        mapping = dict(getattr(source, "field_mapping", None) or {})
        return {mapping.get(field.name, field.name): field.type for field in schema}

    def _fields(self, schema: Sequence[Any], kind: str, owner: str, file_types: Optional[Dict[str, Any]] = None) -> Tuple[List[Dict[str, Any]], List[str]]:
        """Schema entries with Almanac dtypes; unconvertible fields are reported."""
        fields: List[Dict[str, Any]] = []
        dropped: List[str] = []
        for item in schema:
            if not _is_identifier(item.name):
                reason = f"`{item.name}` is not a plain name (letters, digits, `_`)"
                self.report.add_not_converted("feature" if kind != "request source" else "field", f"{owner}:{item.name}", reason)
                dropped.append(reason)
                continue
            dtype, reason, notes = almanac_dtype(item.dtype)
            if str(item.dtype) == "Map" and file_types and item.name in file_types:
                dtype, reason, notes = map_dtype_from_file(file_types[item.name])
            if dtype is None:
                self.report.add_not_converted("feature" if kind != "request source" else "field", f"{owner}:{item.name}", f"type `{item.dtype}`: {reason}")
                dropped.append(str(reason))
                continue
            for note in notes:
                self.report.add_note("feature", f"{owner}:{item.name}", note)
            entry: Dict[str, Any] = {"name": item.name, "dtype": dtype}
            description = (getattr(item, "description", "") or "").strip()
            if description:
                entry["description"] = description
            tags = getattr(item, "tags", None) or {}
            if tags:
                entry["tags"] = {str(k): str(v) for k, v in tags.items()}
            if getattr(item, "vector_index", False):
                self.report.add_note("feature", f"{owner}:{item.name}", "Feast's vector index (similarity search) has no Almanac equivalent; the vector is served as a list")
            fields.append(entry)
        return fields, dropped

    # -- feature views

    def convert_feature_views(self) -> None:
        from feast.data_source import KafkaSource, KinesisSource, PushSource

        contents = self.repo.contents
        for view in contents.stream_feature_views:
            self.report.add_not_converted(
                "feature view", view.name,
                "a stream feature view (a transformation over a Kafka/Kinesis stream): Almanac has stream sources (NATS, Redis Streams) and aggregation views (`aggregations:`); write it by hand",
            )
        for label_view in getattr(contents, "label_views", []) or []:
            self.report.add_not_converted(
                "label view", label_view.name,
                "Almanac has no label views: labels are columns of the entity table given to `get_historical_features`; its sources are converted",
            )
        for view in contents.feature_views:
            kind = type(view).__name__
            if kind == "BatchFeatureView" and (getattr(view, "udf", None) is not None or getattr(view, "feature_transformation", None) is not None):
                self.report.add_not_converted("feature view", view.name, "a batch feature view with a transformation: Almanac views read precomputed features; compute them into a Parquet file first")
                continue
            if getattr(view, "source_views", None):
                self.report.add_not_converted("feature view", view.name, "a view derived from other feature views: Almanac views read a source; materialize the derived data into a Parquet file first")
                continue
            if getattr(view, "mode", None):
                self.report.add_not_converted("feature view", view.name, f"a view with a `{view.mode}` transformation: Almanac views read precomputed features")
                continue
            stream = getattr(view, "stream_source", None)
            if isinstance(stream, PushSource):
                source_name = self.source_names.get(id(stream))
            elif isinstance(stream, (KafkaSource, KinesisSource)):
                source_name = self.source_names.get(id(view.batch_source))
                if source_name:
                    self.report.add_note("feature view", view.name, f"its stream source `{stream.name}` is not converted; the view reads its batch source `{source_name}` (training sets are the same; online values come from `almanac materialize`)")
            else:
                source_name = self.source_names.get(id(view.batch_source)) if view.batch_source is not None else None
            if source_name is None:
                source = stream or view.batch_source
                self.report.add_not_converted("feature view", view.name, f"its source `{getattr(source, 'name', None) or 'none'}` was not converted (see that source)")
                continue
            entities = []
            missing = []
            for entity in view.entities:
                if entity == "__dummy":
                    continue
                if entity in self.entity_names:
                    entities.append(self.entity_names[entity])
                else:
                    missing.append(entity)
            if missing:
                self.report.add_not_converted("feature view", view.name, f"its entity `{missing[0]}` was not converted (see that entity)")
                continue
            batch = view.batch_source if view.batch_source is not None else getattr(stream, "batch_source", None)
            fields, _ = self._fields(view.features, "feature view", view.name, self._file_types(batch))
            if not fields:
                self.report.add_not_converted("feature view", view.name, "none of its features has an Almanac dtype (see the features above)" if view.features else "it has no features (Feast could not infer them from the source)")
                continue
            name = self._name("feature view", view.name)
            ttl, ttl_note = _duration(view.ttl)
            if ttl_note:
                self.report.add_note("feature view", name, ttl_note)
            obj: Dict[str, Any] = {"name": name, "entities": entities, "source": source_name}
            if not entities:
                obj["entities"] = None
            if ttl:
                obj["ttl"] = ttl
            obj["online"] = bool(view.online)
            obj.update(_governance(view))
            obj["schema"] = fields
            self.views.append(obj)
            self.view_names[view.name] = name
            self.view_features[name] = {f["name"]: f["dtype"] for f in fields}
            detail = f"{len(fields)} features, source {source_name}, ttl {ttl or 'none (never expires)'}" + ("" if view.online else ", offline only")
            self.report.add_converted("feature view", name, detail)
            if not entities:
                self.report.add_note("feature view", name, "no entities: an Almanac global view (one record)")
            if getattr(view, "offline", False):
                self.report.add_note("feature view", name, "Feast's `offline=True` (write pushes to the offline store) is what Almanac's `to: online_and_offline` push does")

    # -- on-demand feature views

    def convert_on_demand_views(self) -> None:
        for odfv in self.repo.contents.on_demand_feature_views:
            try:
                obj, notes = self._on_demand_view(odfv)
            except _Untranslatable as error:
                self.report.add_not_converted("on-demand feature view", odfv.name, f"not translated: {error}")
                continue
            self.odfvs.append(obj)
            self.odfv_names[odfv.name] = obj["name"]
            self.odfv_features[obj["name"]] = {f["name"]: f["dtype"] for f in obj["features"]}
            self.report.add_converted("on-demand feature view", obj["name"], "; ".join(f"{f['name']} = {f['expr']}" for f in obj["features"]))
            for note in notes:
                self.report.add_note("on-demand feature view", obj["name"], note)

    def _on_demand_view(self, odfv: Any) -> Tuple[Dict[str, Any], List[str]]:
        mode = str(getattr(odfv, "mode", "pandas") or "pandas").lower()
        if mode not in ("pandas", "python"):
            raise _Untranslatable(f"mode `{mode}` (only pandas and python functions are translated)")
        if getattr(odfv, "aggregations", None):
            raise _Untranslatable("it aggregates (`aggregations=`): write an Almanac aggregation view instead")
        if getattr(odfv, "explode", False):
            raise _Untranslatable("it explodes rows (`explode=True`)")
        notes: List[str] = []
        if getattr(odfv, "write_to_online_store", False):
            notes.append("Feast's write_to_online_store=True precomputes values at write time; Almanac computes them on every read (and in training sets) with the same expression")
        # Inputs the function may read: a feature or request field by its own
        # name when one source has it (two: only by the view's full name,
        # `view__feature`, as in Feast), as (SQL reference, Almanac dtype).
        inputs: Dict[str, Tuple[str, str]] = {}
        holders: Dict[str, List[Tuple[str, str]]] = {}
        sources: List[str] = []
        for projection in odfv.source_feature_view_projections.values():
            view = self.view_names.get(projection.name)
            if view is None:
                raise _Untranslatable(f"its input view `{projection.name}` was not converted")
            sources.append(view)
            wanted = {f.name for f in projection.features} or set(self.view_features[view])
            for feature, dtype in self.view_features[view].items():
                if feature in wanted:
                    inputs[f"{projection.name}__{feature}"] = (f"{_sql_name(view)}.{_sql_name(feature)}", dtype)
                    holders.setdefault(feature, []).append((view, dtype))
        for request in odfv.source_request_sources.values():
            if request.name.startswith("__"):  # Feast's internal request source for `input_schema=`
                name = self._input_schema_request_source(odfv, request)
            else:
                name = self.request_names.get(request.name)
            if name is None:
                raise _Untranslatable(f"its request source `{request.name}` was not converted")
            sources.append(name)
            for feature, dtype in self.request_fields[name].items():
                holders.setdefault(feature, []).append((name, dtype))
        for feature, owners in holders.items():
            if len(owners) == 1:
                inputs[feature] = (_sql_name(feature), owners[0][1])
        outputs: Dict[str, str] = {}
        features = []
        for item in odfv.features:
            dtype, reason, _ = almanac_dtype(item.dtype)
            if dtype is None:
                raise _Untranslatable(f"output `{item.name}` has type `{item.dtype}`: {reason}")
            if not _is_identifier(item.name):
                raise _Untranslatable(f"output `{item.name}` is not a plain name")
            outputs[item.name] = dtype
        if not outputs:
            raise _Untranslatable("it declares no output features")
        source_text = getattr(odfv, "udf_string", "") or ""
        if not source_text and getattr(odfv, "udf", None) is not None:
            try:
                source_text = inspect.getsource(odfv.udf)
            except (OSError, TypeError):
                source_text = ""
        if not source_text:
            raise _Untranslatable("the function's source code is not available")
        translator = _Translator(mode=mode, singleton=bool(getattr(odfv, "singleton", False)), inputs=inputs)
        exprs = translator.translate(source_text, outputs)
        notes.extend(translator.notes)
        for item in odfv.features:
            sql, result = exprs[item.name]
            declared = outputs[item.name]
            if result != declared:
                if declared in _SQL_TYPES:
                    sql = f"CAST({sql} AS {_SQL_TYPES[declared]})"
                    if _narrows(result, declared):
                        notes.append(f"`{item.name}` computes as {result} and is cast to the declared {declared}")
                else:
                    raise _Untranslatable(f"output `{item.name}` is declared `{declared}` but computes as {result}")
            entry: Dict[str, Any] = {"name": item.name, "dtype": declared, "expr": sql}
            description = (getattr(item, "description", "") or "").strip()
            if description:
                entry["description"] = description
            features.append(entry)
        name = self._name("on-demand feature view", odfv.name)
        obj: Dict[str, Any] = {"name": name, "sources": sources}
        obj.update(_governance(odfv))
        obj["features"] = features
        return obj, notes

    def _input_schema_request_source(self, odfv: Any, request: Any) -> Optional[str]:
        fields, _ = self._fields(request.schema or [], "request source", f"{odfv.name}_input")
        if not fields:
            return None
        name = self._name("request source", f"{odfv.name}_input")
        self.request_sources.append({"name": name, "description": f"The request data of the on-demand view {odfv.name} (Feast's input_schema)", "schema": fields})
        self.request_names[request.name] = name
        self.request_fields[name] = {f["name"]: f["dtype"] for f in fields}
        self.report.add_converted("request source", name, f"from the `input_schema` of {odfv.name}")
        return name

    # -- feature services

    def convert_feature_services(self) -> None:
        for service in self.repo.contents.feature_services:
            refs: List[str] = []
            for projection in service.feature_view_projections:
                view = self.view_names.get(projection.name)
                known = self.view_features.get(view) if view else None
                if view is None:
                    view = self.odfv_names.get(projection.name)
                    known = self.odfv_features.get(view) if view else None
                if view is None or known is None:
                    self.report.add_not_converted("feature service reference", f"{service.name}: {projection.name}", f"the view `{projection.name}` was not converted")
                    continue
                if getattr(projection, "join_key_map", None):
                    self.report.add_not_converted("feature service reference", f"{service.name}: {projection.name}", "`with_join_key_map` (reading a view under other join keys) has no Almanac equivalent")
                    continue
                if getattr(projection, "name_alias", None):
                    self.report.add_note("feature service", service.name, f"Feast's alias `{projection.name_alias}` for `{projection.name}` is dropped: Almanac names the features after the view (`{view}__feature` with full feature names)")
                wanted = [f.name for f in projection.features] or list(known)
                present = [f for f in wanted if f in known]
                for feature in wanted:
                    if feature not in known:
                        self.report.add_not_converted("feature service reference", f"{service.name}: {projection.name}:{feature}", "the feature was not converted (see it above)")
                if not present:
                    continue
                if set(present) == set(known) and len(wanted) == len(known):
                    refs.append(view)
                else:
                    refs.extend(f"{view}:{f}" for f in present)
            if not refs:
                self.report.add_not_converted("feature service", service.name, "none of its features was converted")
                continue
            name = self._name("feature service", service.name)
            obj: Dict[str, Any] = {"name": name}
            obj.update(_governance(service))
            obj["features"] = refs
            self.services.append(obj)
            self.report.add_converted("feature service", name, ", ".join(refs))
            if getattr(service, "logging_config", None) is not None:
                self.report.add_not_converted("setting", f"feature service {name}: logging_config", "Almanac does not log served features to a destination (see `/metrics` and `almanac monitor`)")

    # -- permissions and the rest

    def convert_rest(self) -> None:
        for permission in getattr(self.repo.contents, "permissions", []) or []:
            self.report.add_not_converted("permission", permission.name, "Almanac has no per-object permissions; the server takes a bearer token (`--token-file`)")
        for error in self.repo.inference_errors:
            self.report.add_note("feast", "feature_store.yaml" if error.startswith("Feast could not load") else "inference", error)

    def definitions(self) -> Dict[str, List[Dict[str, Any]]]:
        return {
            "entities": self.entities,
            "sources": self.sources,
            "request_sources": self.request_sources,
            "feature_views": self.views,
            "on_demand_feature_views": self.odfvs,
            "feature_services": self.services,
        }


def _parse_redis_connection(connection: str) -> Tuple[List[Tuple[str, str]], Dict[str, str]]:
    """Feast's ``host:port[,host:port...],key=value,...``."""
    nodes: List[Tuple[str, str]] = []
    params: Dict[str, str] = {}
    for part in connection.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            key, value = part.split("=", 1)
            params[key.strip()] = value.strip()
        else:
            host, _, port = part.rpartition(":") if ":" in part else (part, "", "6379")
            nodes.append((host or part, port or "6379"))
    return nodes, params


def _redis_url(host: str, port: str, params: Dict[str, str], db: bool) -> str:
    from urllib.parse import quote

    scheme = "rediss" if str(params.get("ssl", "")).lower() in ("true", "1", "yes") else "redis"
    auth = ""
    if params.get("password"):
        auth = f"{quote(params.get('username', ''), safe='')}:{quote(params['password'], safe='')}@"
    url = f"{scheme}://{auth}{host}:{port}"
    if db:
        url += f"/{params.get('db', '0')}"
    return url


def _narrows(have: str, want: str) -> bool:
    """Whether casting a `have` result to the declared `want` can change values."""
    if have == want:
        return False
    if "bool" in (have, want) or (have.startswith("float") and want.startswith("int")):
        return True
    if want == "float32" and have != "float32":
        return True  # float64 rounds; int64 and int32 lose digits past 2^24
    return {"int32": 1, "int64": 2, "float32": 3, "float64": 4}[want] < {"int32": 1, "int64": 2, "float32": 3, "float64": 4}[have]


def _sql_name(name: str) -> str:
    if name == name.lower() and name.lower() not in _SQL_KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


# ---------------------------------------------------------------- on-demand translation


class _Untranslatable(Exception):
    pass


@dataclass
class _Expr:
    sql: str
    dtype: str  # bool, int32, int64, float32, float64
    literal: Any = None  # the Python value of a literal (weakly typed, as NumPy treats scalars)
    is_literal: bool = False


_NUMERIC = ("int32", "int64", "float32", "float64")


class _Translator:
    """Turns the body of a Feast on-demand function into SQL expressions.

    Accepted shapes (Feast's templates):

    * pandas: ``df = pd.DataFrame()``, then ``df["out"] = EXPR`` lines, then
      ``return df`` (or ``pd.DataFrame({"out": EXPR, ...})``);
    * python: ``output = {"out": EXPR, ...}`` (or ``output = {}`` then
      ``output["out"] = EXPR``) and ``return output``, or ``return {...}``;
      with ``singleton=True`` each input is a value, otherwise a list and
      each EXPR is ``[e for a, b in zip(inputs["a"], inputs["b"])]``.

    EXPR: input columns (``inputs["a"]``, ``inputs.a`` in pandas), earlier
    outputs, numbers, ``+ - * /``, unary minus, ``abs()``, one comparison
    (``< <= > >= == !=``), and ``& | ~`` (pandas) or ``and or not``
    (python) over booleans. Numeric types follow NumPy (pandas) or Python
    rules and are made explicit with casts, so the SQL computes in the same
    type as Feast does (float32 + int64 is float64, float32 * 2.5 stays
    float32, int / int is float64).
    """

    def __init__(self, mode: str, singleton: bool, inputs: Dict[str, Tuple[str, str]]):
        self.mode = mode
        self.singleton = singleton
        self.inputs = inputs
        self.notes: List[str] = []
        self.arg = "inputs"
        self.frame: Optional[str] = None
        self.done: Dict[str, _Expr] = {}
        self.local: Dict[str, _Expr] = {}
        self.source = ""
        self.compared = False

    # -- structure

    def translate(self, source: str, outputs: Dict[str, str]) -> Dict[str, Tuple[str, str]]:
        self.source = textwrap.dedent(source)
        try:
            tree = ast.parse(self.source)
        except SyntaxError as error:
            raise _Untranslatable(f"its source does not parse ({error.msg})") from error
        function = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
        if function is None:
            raise _Untranslatable("no function definition in its source")
        args = function.args.args
        if len(args) != 1:
            raise _Untranslatable(f"the function takes {len(args)} arguments (expected one: the inputs)")
        self.arg = args[0].arg
        body = list(function.body)
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            body = body[1:]
        if not body or not isinstance(body[-1], ast.Return) or body[-1].value is None:
            raise _Untranslatable("its last statement is not `return <frame or dict>`")
        for statement in body[:-1]:
            self._statement(statement)
        self._return(body[-1].value)
        missing = [name for name in outputs if name not in self.done]
        if missing:
            raise _Untranslatable(f"it does not compute the declared feature `{missing[0]}`")
        extra = [name for name in self.done if name not in outputs]
        if extra:
            self.notes.append(f"the function also computes `{extra[0]}`, which its schema does not declare (dropped, as Feast does)")
        if self.compared:
            self.notes.append(
                "comparisons with a missing input: Feast's pandas gives False (True for `!=`), Almanac gives null (SQL); NaN compares above every number in Almanac"
            )
        return {name: (self.done[name].sql, self.done[name].dtype) for name in outputs}

    def _segment(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node) or type(node).__name__
        text = " ".join(text.split())
        return text if len(text) <= 80 else text[:77] + "..."

    def _statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            node = ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno, col_offset=node.col_offset)
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            raise _Untranslatable(f"`{self._segment(node)}` is not a simple assignment")
        target, value = node.targets[0], node.value
        if isinstance(target, ast.Name) and self.frame is None:
            if self._is_frame_constructor(value):
                self.frame = target.id
                self._frame_items(value)
                return
            raise _Untranslatable(f"`{self._segment(node)}`: only the output {'frame' if self.mode == 'pandas' else 'dict'} may be assigned to a name")
        if (
            isinstance(target, ast.Subscript)
            and isinstance(target.value, ast.Name)
            and target.value.id == self.frame
            and isinstance(_subscript_key(target), str)
        ):
            self.done[_subscript_key(target)] = self._output_value(value)
            return
        raise _Untranslatable(f"`{self._segment(node)}` is not `{self.frame or 'df'}[\"name\"] = ...`")

    def _is_frame_constructor(self, node: ast.expr) -> bool:
        if self.mode == "pandas":
            return (
                isinstance(node, ast.Call)
                and ((isinstance(node.func, ast.Attribute) and node.func.attr == "DataFrame") or (isinstance(node.func, ast.Name) and node.func.id == "DataFrame"))
                and len(node.args) <= 1
                and not node.keywords
                and (not node.args or isinstance(node.args[0], ast.Dict))
            )
        return isinstance(node, ast.Dict) or (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args and not node.keywords)

    def _frame_items(self, node: ast.expr) -> None:
        mapping = node.args[0] if isinstance(node, ast.Call) and node.args else node
        if not isinstance(mapping, ast.Dict):
            return
        for key, value in zip(mapping.keys, mapping.values):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                raise _Untranslatable("an output name that is not a string literal")
            self.done[key.value] = self._output_value(value)

    def _return(self, node: ast.expr) -> None:
        if isinstance(node, ast.Name) and node.id == self.frame:
            return
        if self.frame is None and self._is_frame_constructor(node):
            self._frame_items(node)
            return
        raise _Untranslatable(f"`return {self._segment(node)}` does not return the output {'frame' if self.mode == 'pandas' else 'dict'}")

    def _output_value(self, node: ast.expr) -> _Expr:
        if self.mode == "python" and not self.singleton:
            if not isinstance(node, ast.ListComp):
                raise _Untranslatable(f"`{self._segment(node)}`: in python mode (not singleton) each output must be a list comprehension over the inputs, `[a + b for a, b in zip(inputs[\"a\"], inputs[\"b\"])]`")
            return self._comprehension(node)
        expr = self._expr(node)
        if expr.is_literal:
            raise _Untranslatable(f"`{self._segment(node)}` is a constant")
        return expr

    def _comprehension(self, node: ast.ListComp) -> _Expr:
        if len(node.generators) != 1:
            raise _Untranslatable(f"`{self._segment(node)}` has several `for` clauses")
        generator = node.generators[0]
        if generator.ifs or getattr(generator, "is_async", 0):
            raise _Untranslatable(f"`{self._segment(node)}` filters (`if`) rows")
        targets = generator.target.elts if isinstance(generator.target, ast.Tuple) else [generator.target]
        if not all(isinstance(t, ast.Name) for t in targets):
            raise _Untranslatable(f"`{self._segment(node)}`: the loop variables must be plain names")
        it = generator.iter
        if len(targets) == 1 and not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "zip"):
            columns = [it]
        elif isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "zip" and not it.keywords and len(it.args) == len(targets):
            columns = list(it.args)
        else:
            raise _Untranslatable(f"`{self._segment(node)}` does not loop over `zip(inputs[...], ...)`")
        saved = dict(self.local)
        for target, column in zip(targets, columns):
            self.local[target.id] = self._column(column, allow_list=True)
        try:
            return self._expr(node.elt)
        finally:
            self.local = saved

    # -- expressions

    def _column(self, node: ast.expr, allow_list: bool = False) -> _Expr:
        name = None
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == self.arg:
            name = _subscript_key(node)
        elif self.mode == "pandas" and isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == self.arg:
            name = node.attr
        if not isinstance(name, str):
            raise _Untranslatable(f"`{self._segment(node)}` is not an input column")
        if name not in self.inputs:
            raise _Untranslatable(f"it reads `{name}`, which none of its converted sources provides (or two provide; use the view's full name)")
        if self.mode == "python" and not self.singleton and not allow_list:
            raise _Untranslatable(f"`{self._segment(node)}` is a whole list in python mode; loop over it with a comprehension")
        sql, dtype = self.inputs[name]
        if dtype not in _NUMERIC + ("bool",):
            raise _Untranslatable(f"input `{name}` is `{dtype}`; only numeric and boolean inputs are translated")
        if self.mode == "python" and dtype in _NUMERIC:
            # Python values: floats are float64 and ints int64, whatever the column type.
            promoted = "float64" if dtype.startswith("float") else "int64"
            return _Expr(_cast(sql, dtype, promoted), promoted)
        return _Expr(sql, dtype)

    def _expr(self, node: ast.expr) -> _Expr:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            value = node.value
            if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
                raise _Untranslatable("a NaN or infinite constant")
            dtype = "bool" if isinstance(value, bool) else ("float64" if isinstance(value, float) else "int64")
            return _Expr(_literal(value), dtype, literal=value, is_literal=True)
        if isinstance(node, ast.Name) and node.id in self.local:
            return self.local[node.id]
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == self.frame and _subscript_key(node) in self.done:
            return self.done[_subscript_key(node)]
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == self.arg) or (
            isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == self.arg
        ):
            return self._column(node)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.BoolOp) and self.mode == "python":
            parts = [self._expr(v) for v in node.values]
            if any(p.dtype != "bool" for p in parts):
                raise _Untranslatable(f"`{self._segment(node)}`: `and`/`or` over non-booleans")
            joiner = " AND " if isinstance(node.op, ast.And) else " OR "
            return _Expr("(" + joiner.join(p.sql for p in parts) + ")", "bool")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "abs" and len(node.args) == 1 and not node.keywords:
            inner = self._expr(node.args[0])
            if inner.dtype not in _NUMERIC:
                raise _Untranslatable(f"`{self._segment(node)}`: abs of a non-number")
            if inner.is_literal:
                return _Expr(_literal(abs(inner.literal)), inner.dtype, literal=abs(inner.literal), is_literal=True)
            return _Expr(f"abs({inner.sql})", inner.dtype)
        if isinstance(node, ast.Call):
            raise _Untranslatable(f"it calls `{self._segment(node.func)}` (only arithmetic, comparisons and abs() are translated)")
        raise _Untranslatable(f"`{self._segment(node)}` is not simple arithmetic or a comparison over input columns")

    def _binop(self, node: ast.BinOp) -> _Expr:
        ops = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
        left, right = self._expr(node.left), self._expr(node.right)
        if isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            if self.mode != "pandas" or left.dtype != "bool" or right.dtype != "bool":
                raise _Untranslatable(f"`{self._segment(node)}`: `&`/`|` are translated over booleans in pandas mode only")
            word = "AND" if isinstance(node.op, ast.BitAnd) else "OR"
            return _Expr(f"({left.sql} {word} {right.sql})", "bool")
        symbol = ops.get(type(node.op))
        if symbol is None:
            raise _Untranslatable(f"`{self._segment(node)}` uses `{_op_text(node.op)}` (Python's floor division, modulo and power differ from SQL's; only + - * / are translated)")
        if left.dtype == "bool" or right.dtype == "bool":
            raise _Untranslatable(f"`{self._segment(node)}` does arithmetic on booleans")
        if left.is_literal and right.is_literal:
            try:
                value = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}[symbol](left.literal, right.literal)
            except ZeroDivisionError as error:
                raise _Untranslatable(f"`{self._segment(node)}` divides by zero") from error
            dtype = "float64" if isinstance(value, float) else "int64"
            return _Expr(_literal(value), dtype, literal=value, is_literal=True)
        result = self._result_type(left, right)
        if symbol == "/" and not result.startswith("float"):
            result = "float64"  # true division
        return _Expr(f"({self._as(left, result)} {symbol} {self._as(right, result)})", result)

    def _unary(self, node: ast.UnaryOp) -> _Expr:
        inner = self._expr(node.operand)
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            if inner.dtype not in _NUMERIC:
                raise _Untranslatable(f"`{self._segment(node)}`: a sign on a non-number")
            if isinstance(node.op, ast.UAdd):
                return inner
            if inner.is_literal:
                return _Expr(_literal(-inner.literal), inner.dtype, literal=-inner.literal, is_literal=True)
            return _Expr(f"(-{inner.sql})", inner.dtype)
        if isinstance(node.op, ast.Invert) and self.mode == "pandas" and inner.dtype == "bool":
            return _Expr(f"(NOT {inner.sql})", "bool")
        if isinstance(node.op, ast.Not) and self.mode == "python" and inner.dtype == "bool":
            return _Expr(f"(NOT {inner.sql})", "bool")
        raise _Untranslatable(f"`{self._segment(node)}` uses `{_op_text(node.op)}` on a `{inner.dtype}`")

    def _compare(self, node: ast.Compare) -> _Expr:
        if len(node.ops) != 1:
            raise _Untranslatable(f"`{self._segment(node)}` chains comparisons")
        ops = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "=", ast.NotEq: "<>"}
        symbol = ops.get(type(node.ops[0]))
        if symbol is None:
            raise _Untranslatable(f"`{self._segment(node)}` uses `{_op_text(node.ops[0])}`")
        left, right = self._expr(node.left), self._expr(node.comparators[0])
        if (left.dtype == "bool") != (right.dtype == "bool"):
            raise _Untranslatable(f"`{self._segment(node)}` compares a boolean with a number")
        common = "bool" if left.dtype == "bool" else self._result_type(left, right)
        self.compared = True
        return _Expr(f"({self._as(left, common)} {symbol} {self._as(right, common)})", "bool")

    def _result_type(self, left: _Expr, right: _Expr) -> str:
        """The type NumPy (pandas mode) or Python (python mode) computes in."""
        if self.mode == "python":
            return "float64" if "float" in left.dtype + right.dtype else "int64"
        import numpy as np

        def operand(e: _Expr) -> Any:
            return e.literal if e.is_literal else np.dtype(e.dtype)

        try:
            result = np.result_type(operand(left), operand(right)).name
        except Exception as error:  # pragma: no cover
            raise _Untranslatable(f"no common type for {left.dtype} and {right.dtype}") from error
        if result not in _NUMERIC:
            raise _Untranslatable(f"{left.dtype} with {right.dtype} computes as {result} in pandas, which Almanac has no dtype for")
        return result

    def _as(self, expr: _Expr, dtype: str) -> str:
        if expr.is_literal:
            value = expr.literal
            if dtype.startswith("float") and isinstance(value, int):
                value = float(value)
            if dtype == "float32" or dtype == "int32":
                return f"CAST({_literal(value)} AS {_SQL_TYPES[dtype]})"
            if dtype == "int64" and isinstance(value, float):
                raise _Untranslatable("a float constant in integer arithmetic")  # pragma: no cover
            return _literal(value)
        return _cast(expr.sql, expr.dtype, dtype)


def _cast(sql: str, have: str, want: str) -> str:
    return sql if have == want else f"CAST({sql} AS {_SQL_TYPES[want]})"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"({value})" if value < 0 else str(value)
    text = repr(float(value))
    if "e" not in text and "." not in text:
        text += ".0"
    return f"({text})" if value < 0 else text


def _subscript_key(node: ast.Subscript) -> Any:
    key = node.slice
    if isinstance(key, ast.Index):  # Python < 3.9  # pragma: no cover
        key = key.value  # type: ignore[attr-defined]
    return key.value if isinstance(key, ast.Constant) else None


def _op_text(op: ast.AST) -> str:
    return {
        ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>", ast.BitXor: "^",
        ast.MatMult: "@", ast.Invert: "~", ast.Not: "not", ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
        ast.BitAnd: "&", ast.BitOr: "|",
    }.get(type(op), type(op).__name__)


# ---------------------------------------------------------------- checking the written repo


def _check(output: Path) -> Dict[str, Any]:
    """``almanac plan`` on the written repo: with the CLI named by
    ``ALMANAC_BIN`` when set (``almanac import-feast`` sets it to itself, so
    the check uses the Almanac the user runs), else the SDK when importable,
    else ``almanac`` on the PATH."""
    result: Dict[str, Any] = {"ran": False}
    errors: List[str] = []
    binary = os.environ.get("ALMANAC_BIN")
    store_class = None
    if not binary:
        try:
            import almanac  # the SDK (present when run as `python -m almanac.feast_import`)

            store_class = getattr(almanac, "FeatureStore", None)
        except Exception:
            store_class = None
        if store_class is None:
            binary = shutil.which("almanac")
    if store_class is not None:
        result.update(ran=True, tool="the almanac Python SDK")
        try:
            store_class(str(output)).plan()
            result["ok"] = True
        except Exception as error:  # DefinitionError carries one dict per mistake
            diagnostics = getattr(error, "diagnostics", None) or []
            for d in diagnostics:
                where = f"{d.get('file')}:{d.get('line')}:{d.get('column')}"
                errors.append(f"{where}: {d.get('message')}" + (f" (help: {d['help']})" if d.get("help") else ""))
            if not diagnostics:
                errors.append(f"{type(error).__name__}: {error}")
            result["ok"] = False
    elif binary:
        result.update(ran=True, tool=binary)
        try:
            proc = subprocess.run([binary, "--repo", str(output), "plan"], capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as error:
            return {"ran": False, "reason": f"{binary} could not run: {error}"}
        result["ok"] = proc.returncode == 0
        if proc.returncode != 0:
            errors.extend(_cli_errors(proc.stderr))
    else:
        return {"ran": False, "reason": "neither the almanac CLI (ALMANAC_BIN, or on the PATH) nor the almanac Python SDK was found"}
    result["errors"] = errors
    if errors and any(("dtype" in e and any(w in e for w in ("`json", "`map", "`struct", "list<json", "list<map", "list<struct"))) for e in errors):
        result["hint"] = (
            "this Almanac build does not know the json/map/struct dtypes the import writes for Feast's Json, Map and Struct; "
            "upgrade Almanac, or remove those features from features.yaml"
        )
    return result


def _cli_errors(stderr: str) -> List[str]:
    """The CLI's diagnostics (`error: M`, `--> FILE:L:C`, `= help: H`), one line each."""
    errors: List[str] = []
    message, where, help_text = None, "", ""

    def flush() -> None:
        if message is not None:
            errors.append(f"{where + ': ' if where else ''}{message}" + (f" (help: {help_text})" if help_text else ""))

    for line in stderr.splitlines():
        text = line.strip()
        if text.startswith("error:") and not re.match(r"^error: \d+ errors?", text):
            flush()
            message, where, help_text = text[len("error:"):].strip(), "", ""
        elif text.startswith("-->") and message is not None:
            where = text[3:].strip()
        elif text.startswith("= help:") and message is not None:
            help_text = text[len("= help:"):].strip()
    flush()
    return errors or [stderr.strip().splitlines()[-1] if stderr.strip() else "almanac plan failed"]


# ---------------------------------------------------------------- entry points


def default_output(feast_repo: Path) -> Path:
    """``<FEAST_REPO>-almanac`` beside the folder given."""
    path = Path(feast_repo).resolve()
    if path.is_file():
        path = path.parent
    return path.parent / f"{path.name}-almanac"


def import_feast(feast_repo: "os.PathLike[str] | str", output: "os.PathLike[str] | str | None" = None, *, check: bool = True) -> Report:
    """Convert the Feast repo at ``feast_repo`` into an Almanac repo in
    ``output`` (default ``<repo>-almanac`` beside it) and return the report
    (also written to ``output/IMPORT_REPORT.md``). Raises :class:`ImportFailed`
    when the Feast repo cannot be read or ``output`` already holds an
    ``almanac.yaml``."""
    feast_path = Path(feast_repo).resolve()
    if not feast_path.exists():
        raise ImportFailed(f"{feast_path} does not exist")
    out = Path(output).resolve() if output is not None else default_output(feast_path)
    if (out / "almanac.yaml").exists():
        raise ImportFailed(f"{out / 'almanac.yaml'} already exists; choose another --output folder (the import never overwrites a repo)")
    if out.exists() and not out.is_dir():
        raise ImportFailed(f"{out} exists and is not a folder")
    repo = _load_feast_repo(feast_path)
    report = Report(feast_repo=str(repo.root), output=str(out))
    converter = _Converter(repo, out, report)
    project, config_lines = converter.config()
    converter.convert_entities()
    converter.convert_sources()
    converter.convert_feature_views()
    converter.convert_on_demand_views()
    converter.convert_feature_services()
    converter.convert_rest()
    out.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Definitions imported from the Feast repo {repo.root}\n"
        "# by `almanac import-feast`; IMPORT_REPORT.md lists what was not converted and why.\n"
    )
    files = {
        "almanac.yaml": "\n".join(config_lines) + "\n",
        "features.yaml": _definitions_yaml(converter.definitions(), header),
    }
    gitignore = out / ".gitignore"
    if not gitignore.exists():
        files[".gitignore"] = ".almanac/\n"
    # The definitions first and almanac.yaml last: a half-written folder is never taken for a repo.
    for name in ("features.yaml", ".gitignore", "almanac.yaml"):
        if name in files:
            _write(out / name, files[name])
            report.files.append(str(out / name))
    report.check = _check(out) if check else {"ran": False, "reason": "--no-check"}
    if not report.check.get("ran"):
        for view in converter.views:
            for feature in view["schema"]:
                if _is_new_dtype(feature["dtype"]):
                    report.add_note("feature", f"{view['name']}:{feature['name']}", f"dtype `{feature['dtype']}` needs an Almanac that has the dtypes for Feast's Json, Map and Struct")
    _write(out / "IMPORT_REPORT.md", report.to_markdown())
    report.files.append(str(out / "IMPORT_REPORT.md"))
    return report


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="almanac import-feast",
        description="Convert a Feast feature repo into an Almanac repo (almanac.yaml + features.yaml) and report what was not converted.",
    )
    parser.add_argument("feast_repo", metavar="FEAST_REPO", help="the Feast repo: the folder with feature_store.yaml (or the folder `feast init` made)")
    parser.add_argument("--output", "-o", metavar="DIR", help="where to write the Almanac repo (default: <FEAST_REPO>-almanac beside it); must not hold an almanac.yaml")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-check", action="store_true", help="do not run `almanac plan` on the written repo")
    args = parser.parse_args(argv)
    try:
        report = import_feast(args.feast_repo, args.output, check=not args.no_check)
    except ImportFailed as error:
        if args.json:
            print(json.dumps({"error": str(error)}))
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report.to_json() if args.json else report.to_text(), end="" if not args.json else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
