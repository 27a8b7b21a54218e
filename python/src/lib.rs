//! # almanac-python
//!
//! The native half of the Python SDK (`import almanac`): a thin PyO3 layer
//! over the facade ([`almanac::FeatureStore`]), as Polars' Python layer is
//! over its core. The core never sees PyO3; this crate owns only what
//! crossing the boundary needs: Arrow in and out through the C stream
//! interface (PyCapsules, no copies: [`arrow_io`]), Python values to plain
//! values for online requests, and the one mapping of Almanac's errors to
//! Python exceptions ([`errors`]). Every call that reads files, touches a
//! store or computes releases the GIL. The pure-Python package
//! (`python/almanac/`) turns pandas/polars/pyarrow inputs into Arrow and
//! shapes results the way Feast's users expect.

mod arrow_io;
mod errors;

use std::path::PathBuf;

use almanac::core::{ObjectKind, Value};
use almanac::materialize::Quiet;
use almanac::offline::HistoricalOptions;
use almanac::push::PushTo;
use almanac::{FeatureSelection, FeatureStore, MaterializeRequest, OnlineResponse};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};

use crate::arrow_io::Table;
use crate::errors::{InvalidInputError, to_py};

/// An opened feature repo (`almanac.FeatureStore` wraps it).
#[pyclass(frozen, module = "almanac._almanac")]
struct Store {
    inner: FeatureStore,
}

#[pymethods]
impl Store {
    #[new]
    fn new(py: Python<'_>, repo_path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| FeatureStore::open(&repo_path)).map_err(to_py)?;
        Ok(Store { inner })
    }

    /// The repo's folder.
    fn repo_path(&self) -> PathBuf {
        self.inner.root().to_path_buf()
    }

    /// What `apply` would change: `(text as the CLI prints it, JSON)`.
    fn plan(&self, py: Python<'_>) -> PyResult<(String, String)> {
        let plan = py.detach(|| self.inner.plan()).map_err(to_py)?;
        Ok((plan.to_string(), json(&plan)?))
    }

    /// Check and apply the definitions: `(text, JSON of the plan, registry version)`.
    fn apply(&self, py: Python<'_>) -> PyResult<(String, String, u64)> {
        let outcome = py.detach(|| self.inner.apply()).map_err(to_py)?;
        Ok((outcome.plan.to_string(), json(&outcome.plan)?, outcome.version))
    }

    /// A point-in-time-correct training set from an entity table (any
    /// object with `__arrow_c_stream__`).
    #[pyo3(signature = (entities, features=None, feature_service=None, full_feature_names=false, timestamp_column="event_timestamp".to_string()))]
    fn historical(&self, py: Python<'_>, entities: &Bound<'_, PyAny>, features: Option<Vec<String>>, feature_service: Option<String>, full_feature_names: bool, timestamp_column: String) -> PyResult<Table> {
        let selection = selection(features, feature_service)?;
        let (given, entities) = arrow_io::read_entities(entities)?;
        let options = HistoricalOptions { timestamp_column, full_feature_names };
        let joined = py.detach(|| self.inner.get_historical_features(&entities, &selection, &options)).map_err(to_py)?;
        // The input columns come back as given (a categorical stays a
        // categorical), the features after them.
        Ok(Table::new(arrow_io::with_input_columns(&given, &joined)?))
    }

    /// Materialize `[start, end]` (µs since the epoch; `start=None` with
    /// `incremental` = from each view's watermark). Returns the per-view
    /// reports as JSON.
    #[pyo3(signature = (end, start=None, views=None, incremental=false, allow_future_end=false))]
    fn materialize(&self, py: Python<'_>, end: i64, start: Option<i64>, views: Option<Vec<String>>, incremental: bool, allow_future_end: bool) -> PyResult<String> {
        let request = MaterializeRequest { start: start.map(instant).transpose()?, end: instant(end)?, views, incremental, allow_future_end };
        let reports = py.detach(|| self.inner.materialize(&request, &Quiet)).map_err(to_py)?;
        json(&reports)
    }

    /// Online features for entity rows given as columns (join keys and
    /// request fields; Python values: int, float, str, bool, bytes, None).
    #[pyo3(signature = (columns, features=None, feature_service=None, full_feature_names=false))]
    fn online(&self, py: Python<'_>, columns: Vec<(String, Vec<Bound<'_, PyAny>>)>, features: Option<Vec<String>>, feature_service: Option<String>, full_feature_names: bool) -> PyResult<Online> {
        let selection = selection(features, feature_service)?;
        let columns = columns.into_iter().map(|(name, values)| values.iter().map(|v| plain_value(&name, v)).collect::<PyResult<Vec<_>>>().map(|values| (name, values))).collect::<PyResult<Vec<_>>>()?;
        let response = py
            .detach(|| {
                let entities = almanac::entity_batch(&columns)?;
                self.inner.get_online_features(&selection, &entities, full_feature_names)
            })
            .map_err(to_py)?;
        Ok(Online { response })
    }

    /// Push rows (any object with `__arrow_c_stream__`) through a push
    /// source; returns the report as JSON.
    fn push(&self, py: Python<'_>, push_source: String, rows: &Bound<'_, PyAny>, to: &str) -> PyResult<String> {
        let to = match to {
            "online" => PushTo::Online,
            "offline" => PushTo::Offline,
            "online_and_offline" => PushTo::OnlineAndOffline,
            other => return Err(InvalidInputError::new_err(format!("`to` is {other:?}; use \"online\", \"offline\" or \"online_and_offline\""))),
        };
        let (_, rows) = arrow_io::read_entities(rows)?;
        let report = py.detach(|| self.inner.push(&push_source, &rows, to)).map_err(to_py)?;
        json(&report)
    }

    /// The applied definitions, as JSON (the catalog calls read them).
    fn definitions(&self, py: Python<'_>) -> PyResult<String> {
        let state = py.detach(|| self.inner.registry_state()).map_err(to_py)?;
        json(&state.definitions)
    }

    /// One applied definition as JSON; an unknown name is a `NotFoundError`
    /// with the closest name as a suggestion.
    fn object(&self, py: Python<'_>, kind: &str, name: &str) -> PyResult<String> {
        let Some(kind) = ObjectKind::ALL.into_iter().find(|k| k.name() == kind) else {
            return Err(InvalidInputError::new_err(format!("unknown kind {kind:?}")));
        };
        let state = py.detach(|| self.inner.registry_state()).map_err(to_py)?;
        match state.definitions.object_json(kind, name) {
            Some(object) => json(&object),
            None => Err(to_py(almanac::Error::Unknown { what: kind.noun(), name: name.to_string(), help: almanac::core::suggest::help(name, state.definitions.names(kind)) })),
        }
    }

    /// Serve reads from the registry as applied now (online reads keep the
    /// state they first read until this is called, like Feast's
    /// `refresh_registry`). Returns whether it changed.
    fn refresh(&self, py: Python<'_>) -> PyResult<bool> {
        py.detach(|| self.inner.refresh()).map_err(to_py)
    }

    /// The applied registry version (0: never applied).
    fn version(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(py.detach(|| self.inner.registry_state()).map_err(to_py)?.version)
    }
}

/// The answer to an online request: values as an Arrow table, and per
/// column and row a status and an event time.
#[pyclass(frozen, module = "almanac._almanac")]
struct Online {
    response: OnlineResponse,
}

#[pymethods]
impl Online {
    /// Join keys (as sent) then features, in request order.
    fn names(&self) -> Vec<String> {
        self.response.feature_names().into_iter().map(str::to_string).collect()
    }

    fn values(&self) -> Table {
        Table::new(self.response.values.clone())
    }

    /// `statuses()[column][row]`: PRESENT, NULL_VALUE, NOT_FOUND or OUTSIDE_MAX_AGE.
    fn statuses(&self) -> Vec<Vec<&'static str>> {
        self.response.statuses.iter().map(|column| column.iter().map(|s| s.as_str()).collect()).collect()
    }

    /// `event_timestamps()[column][row]`: µs since the epoch, or None.
    fn event_timestamps(&self) -> Vec<Vec<Option<i64>>> {
        self.response.event_timestamps.clone()
    }
}

/// An instant in the CLI's grammar (RFC 3339; a naive time is UTC, a plain
/// date midnight UTC; `now`) as µs since the epoch.
#[pyfunction]
fn parse_instant(text: &str) -> PyResult<i64> {
    if text.trim().eq_ignore_ascii_case("now") {
        return Ok(chrono::Utc::now().timestamp_micros());
    }
    almanac::core::time::parse_timestamp_micros(text.trim()).ok_or_else(|| InvalidInputError::new_err(format!("cannot read {text:?} as a time; write RFC 3339 such as 2026-06-10T14:00:00Z, a naive time (UTC) or a date")))
}

fn instant(micros: i64) -> PyResult<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_micros(micros).ok_or_else(|| InvalidInputError::new_err(format!("{micros} µs since the epoch is out of range")))
}

fn selection(features: Option<Vec<String>>, feature_service: Option<String>) -> PyResult<FeatureSelection> {
    match (features, feature_service) {
        (Some(_), Some(_)) => Err(InvalidInputError::new_err("give either `features` or `feature_service`, not both")),
        (Some(features), None) => FeatureSelection::parse_refs(&features.join(",")).map_err(to_py),
        (None, Some(service)) => Ok(FeatureSelection::Service(service)),
        (None, None) => Err(InvalidInputError::new_err("pass `features` (a list of \"view:feature\") or `feature_service`")),
    }
}

/// A Python value of an entity row as a plain value (`bool` is checked
/// before `int`: in Python it is one).
fn plain_value(column: &str, value: &Bound<'_, PyAny>) -> PyResult<Value> {
    if value.is_none() {
        return Ok(Value::Null);
    }
    if value.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(value.extract()?));
    }
    if value.is_instance_of::<PyInt>() {
        return value.extract::<i64>().map(Value::Int64).map_err(|_| InvalidInputError::new_err(format!("`{column}`: {value} does not fit int64")));
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(Value::Float64(value.extract()?));
    }
    if value.is_instance_of::<PyString>() {
        return Ok(Value::String(value.extract()?));
    }
    if value.is_instance_of::<PyBytes>() {
        return Ok(Value::Bytes(value.extract()?));
    }
    Err(InvalidInputError::new_err(format!("`{column}`: {} values are not accepted; pass int, float, str, bool, bytes or None", value.get_type().name()?)))
}

fn json(value: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| errors::AlmanacError::new_err(format!("internal error: cannot render JSON: {e}")))
}

/// The version of the native module (the workspace's).
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _almanac(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Store>()?;
    module.add_class::<Online>()?;
    module.add_class::<Table>()?;
    module.add_function(wrap_pyfunction!(parse_instant, module)?)?;
    module.add_function(wrap_pyfunction!(version, module)?)?;
    errors::register(module)
}
