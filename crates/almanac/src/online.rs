//! Online reads (DESIGN §3): the serving path.
//!
//! A request is planned once per shape (which features, which naming) and
//! the plan is cached until the registry changes, so a request costs a hash
//! lookup, one store round trip and the decoding of its records, however
//! large the registry is. References resolve through [`crate::resolve`],
//! the same code training sets use, so serving and training cannot disagree
//! about what `view:feature` means.
//!
//! The TTL is enforced here, on every read, for every store: a record older
//! than `now - ttl` is reported `OUTSIDE_MAX_AGE` with its value withheld,
//! matching the historical join, which would find no candidate in the TTL
//! window either.

use std::collections::HashMap;
use std::sync::Arc;

use almanac_core::convert::{describe, to_array, value_at};
use almanac_core::{DType, FeatureRef, Value};
use almanac_online::{Decoded, KeyPart, Lookup, OnlineStore, RecordCodec, encode_key};
use almanac_registry::RegistryState;
use arrow::array::{Array, ArrayRef, Int64Array, NullArray, RecordBatch, RecordBatchOptions, StringArray};
use arrow::datatypes::{DataType, Field as ArrowField, Schema};

use crate::error::Error;
use crate::resolve::{self, FeatureSelection};

/// Feast's field statuses, by the names Feast's clients expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldStatus {
    Present,
    NullValue,
    NotFound,
    OutsideMaxAge,
}

impl FieldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldStatus::Present => "PRESENT",
            FieldStatus::NullValue => "NULL_VALUE",
            FieldStatus::NotFound => "NOT_FOUND",
            FieldStatus::OutsideMaxAge => "OUTSIDE_MAX_AGE",
        }
    }
}

/// The answer to an online request, column-major like Feast's: an Arrow
/// batch of values (join keys as sent, in request order, then the features
/// in the order requested, one column per name) and, per column and row, a
/// status and an event time. Wire formats (Feast's JSON) and tables are
/// rendered from it at the edges.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineResponse {
    pub values: RecordBatch,
    /// `statuses[column][row]`.
    pub statuses: Vec<Vec<FieldStatus>>,
    /// `event_timestamps[column][row]`: µs since the epoch; `None` where
    /// nothing was found and for join keys (Feast renders those as
    /// `1970-01-01T00:00:00Z`).
    pub event_timestamps: Vec<Vec<Option<i64>>>,
}

impl OnlineResponse {
    /// Column names: join keys, then features.
    pub fn feature_names(&self) -> Vec<&str> {
        self.values.schema_ref().fields().iter().map(|f| f.name().as_str()).collect()
    }

    pub fn num_rows(&self) -> usize {
        self.values.num_rows()
    }

    /// One cell as a plain value (for renderings and comparisons).
    pub fn value(&self, column: usize, row: usize) -> Value {
        value_at(self.values.column(column).as_ref(), row)
    }
}

/// Entity rows given as plain values (a CLI's `--entity`, a JSON body) as
/// the Arrow batch the facade reads: integers become an int64 column,
/// strings a string column; nulls fit either. Every column must have the
/// same length, and a column may not mix integers and strings.
pub fn entity_batch(columns: &[(String, Vec<Value>)]) -> Result<RecordBatch, Error> {
    let Some((first_name, first)) = columns.first() else {
        return Err(Error::BadRequest("no entities given; pass join-key columns such as {\"user_id\": [1, 2]}".into()));
    };
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (name, values) in columns {
        if values.len() != first.len() {
            return Err(Error::BadRequest(format!("entity columns have different lengths: `{first_name}` has {}, `{name}` has {}", first.len(), values.len())));
        }
        let all = |test: fn(&Value) -> bool| values.iter().all(|v| v.is_null() || test(v));
        let array: ArrayRef = if values.iter().all(Value::is_null) {
            Arc::new(NullArray::new(values.len()))
        } else if all(|v| matches!(v, Value::Int64(_) | Value::Int32(_))) {
            Arc::new(values.iter().map(|v| match v { Value::Int64(i) => Some(*i), Value::Int32(i) => Some(i64::from(*i)), _ => None }).collect::<Int64Array>())
        } else if all(|v| matches!(v, Value::String(_))) {
            Arc::new(values.iter().map(|v| if let Value::String(s) = v { Some(s.as_str()) } else { None }).collect::<StringArray>())
        } else if all(|v| matches!(v, Value::Int64(_) | Value::Int32(_) | Value::Float64(_) | Value::Float32(_))) {
            // A request field with floats (ints among them widen).
            Arc::new(values.iter().map(|v| match v { Value::Int64(i) => Some(*i as f64), Value::Int32(i) => Some(f64::from(*i)), Value::Float64(f) => Some(*f), Value::Float32(f) => Some(f64::from(*f)), _ => None }).collect::<arrow::array::Float64Array>())
        } else if all(|v| matches!(v, Value::Bool(_))) {
            Arc::new(values.iter().map(|v| if let Value::Bool(b) = v { Some(*b) } else { None }).collect::<arrow::array::BooleanArray>())
        } else {
            let odd = values.iter().find(|v| !matches!(v, Value::Null | Value::Int64(_) | Value::Int32(_))).map(describe).unwrap_or_default();
            return Err(Error::BadRequest(format!("entity `{name}` mixes value types (found {odd}); a column's values are all integers, all numbers, all strings or all booleans")));
        };
        fields.push(ArrowField::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(first.len()));
    Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)?)
}

/// A request planned against one registry version.
#[derive(Debug)]
pub struct OnlinePlan {
    pub registry_version: u64,
    views: Vec<PlannedView>,
    /// Requested on-demand views, compiled.
    on_demand: Vec<PlannedOnDemand>,
    /// What to answer, in request order.
    outputs: Vec<Output>,
}

/// An output column's Arrow field, built once per plan (not per request).
type OutputField = arrow::datatypes::FieldRef;

#[derive(Debug)]
struct Output {
    from: OutputSource,
    name: String,
    /// Its Arrow field, built once per plan (not per request).
    field: OutputField,
}

#[derive(Debug, Clone, Copy)]
enum OutputSource {
    /// A stored feature: `(view index, schema index)`.
    Stored { view: usize, field: usize },
    /// An on-demand feature: `(on-demand view index, position in its wanted list)`.
    OnDemand { view: usize, wanted: usize },
}

#[derive(Debug)]
struct PlannedOnDemand {
    compiled: almanac_transform::CompiledView,
    /// Where each input of the compiled view comes from.
    inputs: Vec<PlannedInput>,
    /// The requested features (indices into the view's features).
    wanted: Vec<usize>,
}

#[derive(Debug)]
enum PlannedInput {
    Stored { view: usize, field: usize },
    /// A request field: sent beside the join keys (or in `request_context`).
    Request { name: String, dtype: DType },
}

/// How many on-demand values became null because their expression failed
/// on that row (integer division by zero, overflow), since the process
/// started: exported as a metric, since a silent null is worth noticing.
pub static ON_DEMAND_FAILED_ROWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Debug)]
struct PlannedView {
    name: String,
    codec: RecordCodec,
    ttl_micros: Option<i64>,
    join_keys: Vec<(String, DType)>,
    /// The view's feature dtypes, in schema order (for building columns).
    dtypes: Vec<DType>,
    /// An aggregation view's aggregations, in schema order (empty otherwise):
    /// its record is the entity's events, folded at the read's instant.
    aggregations: Vec<almanac_core::Aggregation>,
}

impl OnlinePlan {
    pub fn new(state: &RegistryState, selection: &FeatureSelection, full_feature_names: bool) -> Result<Self, Error> {
        let resolved = resolve::resolve(state, selection)?;
        let mut views = Vec::with_capacity(resolved.views.len());
        for request in &resolved.views {
            if !request.view.online {
                return Err(Error::NotOnline { view: request.view.name.clone() });
            }
            let join_keys = request.join_keys.iter().map(|(_, key)| (key.name.clone(), key.dtype.clone().unwrap_or(DType::Int64))).collect();
            views.push(PlannedView {
                name: request.view.name.clone(),
                codec: if request.view.is_aggregation() { RecordCodec::new(&almanac_aggregate::state_schema(&request.view)) } else { RecordCodec::new(&request.view.schema) },
                ttl_micros: request.view.ttl.filter(|t| !t.is_zero()).map(|t| t.micros()),
                join_keys,
                dtypes: request.view.schema.iter().map(|f| f.dtype.clone()).collect(),
                aggregations: request.view.aggregations.clone(),
            });
        }
        // `resolve` built `views` from exactly these pairs, so the lookups
        // succeed; a miss is a bug, reported rather than guessed.
        let stored = |view_name: &str, feature: &str| -> Result<OutputSource, Error> {
            let view = resolved.views.iter().position(|v| v.view.name == view_name).ok_or_else(|| Error::Internal(format!("resolved view `{view_name}` is missing from the plan")))?;
            let field = resolved.views[view].view.schema.iter().position(|f| f.name == feature).ok_or_else(|| Error::Internal(format!("resolved feature `{view_name}:{feature}` is missing from its view")))?;
            Ok(OutputSource::Stored { view, field })
        };
        let mut on_demand: Vec<PlannedOnDemand> = Vec::with_capacity(resolved.on_demand.len());
        for odfv in &resolved.on_demand {
            let compiled = crate::store::compile_on_demand(odfv, state)?;
            let inputs = compiled
                .inputs
                .iter()
                .map(|input| {
                    if input.from_request {
                        Ok(PlannedInput::Request { name: input.name.clone(), dtype: input.dtype.clone() })
                    } else {
                        match stored(&input.source, &input.name)? {
                            OutputSource::Stored { view, field } => Ok(PlannedInput::Stored { view, field }),
                            OutputSource::OnDemand { .. } => Err(Error::Internal("an on-demand input resolved to an on-demand view".into())),
                        }
                    }
                })
                .collect::<Result<Vec<_>, Error>>()?;
            on_demand.push(PlannedOnDemand { compiled, inputs, wanted: Vec::new() });
        }
        let mut outputs = Vec::with_capacity(resolved.order.len());
        for (view_name, feature) in &resolved.order {
            let (from, dtype) = match on_demand.iter().position(|p| p.compiled.name == *view_name) {
                Some(index) => {
                    let planned = &mut on_demand[index];
                    let (position, dtype) = planned.compiled.features().enumerate().find(|(_, (name, _))| name == feature).map(|(i, (_, dtype))| (i, dtype.clone())).ok_or_else(|| Error::Internal(format!("on-demand feature `{view_name}:{feature}` is missing")))?;
                    planned.wanted.push(position);
                    (OutputSource::OnDemand { view: index, wanted: planned.wanted.len() - 1 }, dtype)
                }
                None => match stored(view_name, feature)? {
                    OutputSource::Stored { view, field } => (OutputSource::Stored { view, field }, views[view].dtypes[field].clone()),
                    OutputSource::OnDemand { .. } => return Err(Error::Internal(format!("stored feature `{view_name}:{feature}` resolved as on-demand"))),
                },
            };
            let name = if full_feature_names { format!("{view_name}__{feature}") } else { feature.clone() };
            let field = Arc::new(ArrowField::new(&name, dtype.to_arrow(), true));
            outputs.push(Output { from, name, field });
        }
        if !full_feature_names {
            check_clashes(&outputs, &resolved.order)?;
        }
        Ok(OnlinePlan { registry_version: state.version, views, on_demand, outputs })
    }

    /// The request fields this plan needs, with their dtypes (for parsing
    /// a CLI's `--request` and for error messages).
    pub fn request_fields(&self) -> Vec<(&str, &DType)> {
        let mut fields: Vec<(&str, &DType)> = Vec::new();
        for planned in &self.on_demand {
            for input in &planned.inputs {
                if let PlannedInput::Request { name, dtype } = input
                    && !fields.iter().any(|(n, _)| n == name)
                {
                    fields.push((name, dtype));
                }
            }
        }
        fields
    }

    /// Read the planned features for `entities` (one join-key column per
    /// key) at instant `now_micros`.
    pub fn execute(&self, store: &dyn OnlineStore, entities: &RecordBatch, now_micros: i64) -> Result<OnlineResponse, Error> {
        if entities.num_columns() == 0 {
            return Err(Error::BadRequest("no entities given; pass join-key columns such as {\"user_id\": [1, 2]}".into()));
        }
        let rows = entities.num_rows();
        // Every view's keys for every row, then one read for all of them.
        let mut keys: Vec<Vec<Option<Vec<u8>>>> = Vec::with_capacity(self.views.len());
        for view in &self.views {
            keys.push(view_keys(view, entities, rows)?);
        }
        let mut lookups = Vec::with_capacity(rows * self.views.len());
        let mut slots: Vec<Vec<Option<usize>>> = Vec::with_capacity(self.views.len());
        for (view, view_keys) in self.views.iter().zip(&keys) {
            let mut view_slots = Vec::with_capacity(rows);
            for key in view_keys {
                view_slots.push(key.as_ref().map(|key| {
                    lookups.push(Lookup { view: &view.name, key });
                    lookups.len() - 1
                }));
            }
            slots.push(view_slots);
        }
        let records = store.read(&lookups)?;
        let decoded: Vec<Vec<Option<Decoded>>> = self
            .views
            .iter()
            .zip(&slots)
            .map(|(view, view_slots)| {
                view_slots
                    .iter()
                    .map(|slot| match slot.and_then(|i| records.get(i)).and_then(Option::as_ref) {
                        Some(record) => view.codec.decode(record).map(Some).map_err(|error| Error::OnlineRecord { view: view.name.clone(), error }),
                        None => Ok(None),
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?;

        let width = entities.num_columns() + self.outputs.len();
        let mut fields: Vec<OutputField> = entities.schema_ref().fields().iter().cloned().collect();
        let mut arrays: Vec<ArrayRef> = entities.columns().to_vec();
        let mut statuses = Vec::with_capacity(width);
        let mut event_timestamps = Vec::with_capacity(width);
        for _ in 0..entities.num_columns() {
            statuses.push(vec![FieldStatus::Present; rows]);
            event_timestamps.push(vec![None; rows]);
        }
        let stored = |view_index: usize, schema_index: usize| -> Result<StoredColumn, Error> {
            let view = &self.views[view_index];
            if !view.aggregations.is_empty() {
                return view.aggregate(&decoded[view_index], &slots[view_index], schema_index, now_micros);
            }
            let oldest = view.ttl_micros.map(|ttl| now_micros.saturating_sub(ttl));
            let mut column = StoredColumn { values: Vec::with_capacity(rows), statuses: Vec::with_capacity(rows), times: Vec::with_capacity(rows) };
            for record in &decoded[view_index] {
                let (value, status, ts) = match record {
                    None => (Value::Null, FieldStatus::NotFound, None),
                    Some(record) if oldest.is_some_and(|oldest| record.event_ts < oldest) => (Value::Null, FieldStatus::OutsideMaxAge, Some(record.event_ts)),
                    Some(record) => {
                        // The codec decodes exactly one value per schema field.
                        let value = record.values.get(schema_index).cloned().ok_or_else(|| Error::Internal(format!("a decoded record of `{}` has no feature {schema_index}", view.name)))?;
                        let status = if value.is_null() { FieldStatus::NullValue } else { FieldStatus::Present };
                        (value, status, Some(record.event_ts))
                    }
                };
                column.values.push(value);
                column.statuses.push(status);
                column.times.push(ts);
            }
            Ok(column)
        };
        let on_demand = self.evaluate_on_demand(&stored, entities, rows)?;
        for output in &self.outputs {
            let (array, column_statuses, times) = match output.from {
                OutputSource::Stored { view, field } => {
                    let column = stored(view, field)?;
                    let dtype = &self.views[view].dtypes[field];
                    let array = to_array(&output.name, &column.values, dtype).map_err(|e| Error::Internal(format!("decoded values of `{}` do not fit their dtype: {e}", self.views[view].name)))?;
                    (array, column.statuses, column.times)
                }
                OutputSource::OnDemand { view, wanted } => {
                    let array = on_demand[view][wanted].clone();
                    let statuses = (0..rows).map(|row| if array.is_null(row) { FieldStatus::NullValue } else { FieldStatus::Present }).collect();
                    (array, statuses, vec![None; rows])
                }
            };
            fields.push(output.field.clone());
            arrays.push(array);
            statuses.push(column_statuses);
            event_timestamps.push(times);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let values = RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)?;
        Ok(OnlineResponse { values, statuses, event_timestamps })
    }
}

impl PlannedView {
    /// Aggregation `index` at `now` for every row, from the entities' stored
    /// events (DESIGN §9): the window `[now − w, now)` folded by the same
    /// states the offline sweep uses. No record is the empty window
    /// (`count` 0, `PRESENT`). A state holds events from its instant minus
    /// the widest window on; a read so far before that instant that its
    /// window starts earlier cannot be answered exactly and is
    /// `OUTSIDE_MAX_AGE` (training sets answer the past). A null join key
    /// is `NOT_FOUND` with a null, as a training row with a null key is null.
    fn aggregate(&self, records: &[Option<Decoded>], slots: &[Option<usize>], index: usize, now: i64) -> Result<StoredColumn, Error> {
        let aggregation = self.aggregations.get(index).ok_or_else(|| Error::Internal(format!("view `{}` has no aggregation {index}", self.name)))?;
        let widest = self.aggregations.iter().map(|a| a.window.micros()).max().unwrap_or(0);
        let names: Vec<String> = almanac_aggregate::state_schema_names(&self.aggregations);
        let mut column = StoredColumn { values: Vec::with_capacity(records.len()), statuses: Vec::with_capacity(records.len()), times: Vec::with_capacity(records.len()) };
        for (record, slot) in records.iter().zip(slots) {
            let (value, status, time) = match record {
                // A null join key has no entity, hence no window (as offline).
                None if slot.is_none() => (Value::Null, FieldStatus::NotFound, None),
                Some(record) if now.saturating_sub(aggregation.window.micros()) < record.event_ts.saturating_sub(widest) => (Value::Null, FieldStatus::OutsideMaxAge, Some(record.event_ts)),
                Some(record) => {
                    let times: Vec<i64> = match record.values.first() {
                        Some(Value::List(items)) => items.iter().map(|v| if let Value::Timestamp(t) = v { *t } else { i64::MIN }).collect(),
                        _ => Vec::new(),
                    };
                    let lists: Vec<(&str, &[Value])> = names.iter().zip(record.values.iter().skip(1)).map(|(name, v)| (name.as_str(), if let Value::List(items) = v { items.as_slice() } else { &[][..] })).collect();
                    let value = almanac_aggregate::fold(aggregation, &almanac_aggregate::StoredEvents { ts: &times, columns: &lists }, now);
                    let status = if value.is_null() { FieldStatus::NullValue } else { FieldStatus::Present };
                    (value, status, Some(record.event_ts))
                }
                None => {
                    let value = almanac_aggregate::fold(aggregation, &almanac_aggregate::StoredEvents { ts: &[], columns: &[] }, now);
                    let status = if value.is_null() { FieldStatus::NullValue } else { FieldStatus::Present };
                    (value, status, None)
                }
            };
            column.values.push(value);
            column.statuses.push(status);
            column.times.push(time);
        }
        Ok(column)
    }
}

/// One stored feature's column for every entity row, TTL applied.
struct StoredColumn {
    values: Vec<Value>,
    statuses: Vec<FieldStatus>,
    times: Vec<Option<i64>>,
}

impl OnlinePlan {
    /// Every requested on-demand view's wanted features, by the one
    /// evaluator training sets use: inputs that are `NOT_FOUND` or
    /// `OUTSIDE_MAX_AGE` enter as null; request fields come from the
    /// entities batch, converted to their declared dtype.
    fn evaluate_on_demand(&self, stored: &dyn Fn(usize, usize) -> Result<StoredColumn, Error>, entities: &RecordBatch, rows: usize) -> Result<Vec<Vec<ArrayRef>>, Error> {
        let mut out = Vec::with_capacity(self.on_demand.len());
        for planned in &self.on_demand {
            let mut columns = Vec::with_capacity(planned.inputs.len());
            for input in &planned.inputs {
                columns.push(match input {
                    PlannedInput::Stored { view, field } => {
                        let column = stored(*view, *field)?;
                        to_array("input", &column.values, &self.views[*view].dtypes[*field]).map_err(|e| Error::Internal(e.to_string()))?
                    }
                    PlannedInput::Request { name, dtype } => request_column(entities, name, dtype, &planned.compiled.name)?,
                });
            }
            let batch = planned.compiled.input_batch(columns, rows)?;
            let evaluated = planned.compiled.evaluate(&batch, &planned.wanted)?;
            if evaluated.failed_rows > 0 {
                ON_DEMAND_FAILED_ROWS.fetch_add(evaluated.failed_rows as u64, std::sync::atomic::Ordering::Relaxed);
            }
            out.push(evaluated.columns);
        }
        Ok(out)
    }
}

/// A request field's column from the entities batch, as its declared dtype.
/// Missing or of the wrong type, it is the caller's mistake, named.
fn request_column(entities: &RecordBatch, name: &str, dtype: &DType, view: &str) -> Result<ArrayRef, Error> {
    let Some(column) = entities.column_by_name(name) else {
        return Err(Error::BadRequest(format!("missing request field `{name}` ({dtype}), needed by on-demand view `{view}`; send it beside the join keys in `entities` (or in `request_context`; CLI: --request {name}=VALUE)")));
    };
    request_values(column, name, dtype)
}

/// A request field's values as its declared dtype, by the one coercion rule
/// (`almanac_core::convert::coerce`), for online reads and training sets
/// alike: a column already of that type is taken as it is.
pub(crate) fn request_values(column: &ArrayRef, name: &str, dtype: &DType) -> Result<ArrayRef, Error> {
    if column.data_type() == &dtype.to_arrow() {
        return Ok(column.clone());
    }
    let values = almanac_core::convert::values_of(column.as_ref())
        .iter()
        .map(|value| almanac_core::convert::coerce(value, dtype).map_err(|_| Error::BadRequest(format!("request field `{name}` is {dtype}; got {}", describe(value)))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(to_array(name, &values, dtype)?)
}

fn check_clashes(outputs: &[Output], order: &[(String, String)]) -> Result<(), Error> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (Output { name, .. }, (view, _)) in outputs.iter().zip(order) {
        if let Some(other) = seen.insert(name.as_str(), view.as_str())
            && other != view {
                return Err(Error::BadRequest(format!("feature `{name}` is requested from both `{other}` and `{view}`; set full_feature_names (CLI: --full-feature-names) to name them `view__feature`")));
            }
    }
    Ok(())
}

/// A view's encoded key for every entity row (`None` where a key is null).
fn view_keys(view: &PlannedView, entities: &RecordBatch, rows: usize) -> Result<Vec<Option<Vec<u8>>>, Error> {
    let mut columns = Vec::with_capacity(view.join_keys.len());
    for (key, dtype) in &view.join_keys {
        let column = entities.column_by_name(key).ok_or_else(|| {
            let given: Vec<&str> = entities.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
            Error::BadRequest(format!("feature view `{}` needs join key `{key}`, but the request's entities are: {}", view.name, given.join(", ")))
        })?;
        columns.push((key, dtype, column));
    }
    let mut out = Vec::with_capacity(rows);
    let mut parts = Vec::with_capacity(columns.len());
    for row in 0..rows {
        parts.clear();
        for (key, dtype, column) in &columns {
            match key_part(key, dtype, column.as_ref(), row)? {
                Some(part) => parts.push(part),
                None => break,
            }
        }
        if parts.len() < columns.len() {
            out.push(None);
            continue;
        }
        let mut bytes = Vec::with_capacity(16);
        encode_key(&parts, &mut bytes);
        out.push(Some(bytes));
    }
    Ok(out)
}

/// One row's part of an entity key, read by the column's actual type: an
/// int64 key takes any integer column, a string key any string column.
fn key_part(key: &str, dtype: &DType, column: &dyn Array, row: usize) -> Result<Option<KeyPart>, Error> {
    if column.is_null(row) {
        return Ok(None);
    }
    if let (DType::Int64 | DType::Int32, DataType::Int64) = (dtype, column.data_type())
        && let Some(ints) = column.as_any().downcast_ref::<Int64Array>()
    {
        // The serving hot path: no `Value` in between.
        return Ok(Some(KeyPart::Int(ints.value(row))));
    }
    let value = value_at(column, row);
    Ok(Some(match (dtype, value) {
        (_, Value::Null) => return Ok(None),
        (DType::String, Value::String(s)) => KeyPart::Str(s),
        (DType::String, value) => return Err(Error::BadRequest(format!("join key `{key}` is a string; got {}", describe(&value)))),
        (_, Value::Int64(v)) => KeyPart::Int(v),
        (_, Value::Int32(v)) => KeyPart::Int(i64::from(v)),
        (_, value) => return Err(Error::BadRequest(format!("join key `{key}` is an int64; got {} (join keys are integers (int64) or strings)", describe(&value)))),
    }))
}

/// Parse a join-key value written on the command line (`user_id=42`) to the
/// key's registered dtype.
pub fn parse_key_text(key: &str, text: &str, dtype: &DType) -> Result<Value, Error> {
    match dtype {
        DType::String => Ok(Value::String(text.to_string())),
        _ => text.trim().parse::<i64>().map(Value::Int64).map_err(|_| Error::BadRequest(format!("join key `{key}` is an int64, and `{text}` is not an integer"))),
    }
}

/// Plans cached per request shape; dropped whenever the registry changes.
/// Bounded in bytes, not entries: a shape's key is its whole feature list,
/// so a client sending ever-longer lists must not grow memory without end.
#[derive(Default)]
pub struct PlanCache {
    plans: std::sync::RwLock<CachedPlans>,
}

#[derive(Default)]
struct CachedPlans {
    by_shape: HashMap<(String, bool), Arc<OnlinePlan>>,
    /// Estimated bytes of every key and plan held.
    bytes: usize,
}

/// The cache's byte budget: thousands of realistic shapes, a few MB.
const PLAN_CACHE_BYTES: usize = 16 << 20;

impl PlanCache {
    pub fn get_or_plan(&self, state: &RegistryState, selection: &FeatureSelection, full_feature_names: bool) -> Result<Arc<OnlinePlan>, Error> {
        let shape = (selection_key(selection), full_feature_names);
        if let Ok(plans) = self.plans.read()
            && let Some(plan) = plans.by_shape.get(&shape).filter(|p| p.registry_version == state.version) {
                return Ok(plan.clone());
            }
        let plan = Arc::new(OnlinePlan::new(state, &selection.deduplicated(), full_feature_names)?);
        if let Ok(mut plans) = self.plans.write() {
            if plans.by_shape.values().any(|p| p.registry_version != state.version) {
                plans.by_shape.retain(|_, p| p.registry_version == state.version);
                plans.bytes = plans.by_shape.iter().map(|(key, plan)| entry_bytes(&key.0, plan)).sum();
            }
            let bytes = entry_bytes(&shape.0, &plan);
            // A simple, predictable bound: start over when full (shapes in
            // real traffic are few and are planned again in microseconds).
            if plans.bytes + bytes > PLAN_CACHE_BYTES {
                plans.by_shape.clear();
                plans.bytes = 0;
            }
            if bytes <= PLAN_CACHE_BYTES && plans.by_shape.insert(shape, plan.clone()).is_none() {
                plans.bytes += bytes;
            }
        }
        Ok(plan)
    }

    /// Bytes the cache holds now (estimated), for tests and metrics.
    pub fn bytes(&self) -> usize {
        self.plans.read().map_or(0, |plans| plans.bytes)
    }
}

/// A cache entry's size: its key plus the plan's names and decoders.
fn entry_bytes(key: &str, plan: &OnlinePlan) -> usize {
    let outputs: usize = plan.outputs.iter().map(|output| output.name.len() + 48).sum();
    let on_demand: usize = plan.on_demand.iter().map(|p| 4096 + 256 * p.inputs.len()).sum();
    let views: usize = plan.views.iter().map(|v| v.name.len() + 64 * (v.dtypes.len() + v.join_keys.len()) + 256).sum();
    key.len() + outputs + views + on_demand + 128
}

/// The cache key of a selection: its references in order, each once (a
/// repeat adds nothing to the key, so 100,000 repeats of one feature are
/// the shape of one). Written straight into one string: this runs on every
/// request.
fn selection_key(selection: &FeatureSelection) -> String {
    use std::fmt::Write;
    match selection {
        FeatureSelection::Service(name) => format!("service:{name}"),
        FeatureSelection::Refs(refs) => {
            let mut key = String::with_capacity(refs.len() * 32);
            let mut seen: Option<std::collections::HashSet<&FeatureRef>> = (refs.len() > 16).then(std::collections::HashSet::new);
            for (index, reference) in refs.iter().enumerate() {
                let repeated = match seen.as_mut() {
                    Some(seen) => !seen.insert(reference),
                    None => refs[..index].contains(reference),
                };
                if !repeated {
                    let _ = write!(key, "{reference},");
                }
            }
            key
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_values_become_typed_columns() {
        let batch = entity_batch(&[("user_id".into(), vec![Value::Int64(1), Value::Null]), ("region".into(), vec![Value::String("eu".into()), Value::Null])]).expect("batch");
        assert_eq!(batch.schema().field(0).data_type(), &DataType::Int64);
        assert_eq!(batch.schema().field(1).data_type(), &DataType::Utf8);
        assert_eq!(batch.num_rows(), 2);
        let mixed = entity_batch(&[("user_id".into(), vec![Value::Int64(1), Value::String("a".into())])]).expect_err("mixed");
        assert!(mixed.to_string().contains("mixes value types"), "{mixed}");
        let uneven = entity_batch(&[("a".into(), vec![Value::Int64(1)]), ("b".into(), vec![])]).expect_err("uneven");
        assert!(uneven.to_string().contains("different lengths"), "{uneven}");
        assert!(entity_batch(&[]).expect_err("empty").to_string().contains("no entities given"));
    }

    /// A registry with one view of 40 features, for planning tests.
    fn state() -> RegistryState {
        use almanac_core::defs::Governance;
        use almanac_core::{Definitions, Entity, FeatureView, Field, JoinKey, Source};
        let field = |i: usize| Field { name: format!("feature_with_a_long_name_{i}"), dtype: DType::Float64, description: String::new(), tags: Default::default() };
        let mut state = RegistryState::empty("p");
        state.version = 1;
        state.definitions = Definitions {
            entities: vec![Entity { name: "user".into(), join_keys: vec![JoinKey { name: "user_id".into(), dtype: Some(DType::Int64) }], governance: Governance::default() }],
            sources: vec![Source { name: "s".into(), path: "s.parquet".into(), format: None, timestamp_field: "ts".into(), created_timestamp_column: None, field_mapping: Default::default(), table: None, query: None, batch_source: None, stream: None, governance: Governance::default() }],
            feature_views: vec![FeatureView { name: "v".into(), entities: vec!["user".into()], source: "s".into(), ttl: None, online: true, schema: (0..40).map(field).collect(), aggregations: Vec::new(), tile: None, monitoring: Default::default(), governance: Governance::default() }],
            feature_services: vec![],
            ..Default::default()
        };
        state
    }

    /// Regression: the cache counted entries, so ever-longer feature lists
    /// grew it without bound. It is bounded in bytes, and repeated
    /// references are merged before they become a key.
    #[test]
    fn the_plan_cache_is_bounded_in_bytes_and_merges_repeats() {
        let state = state();
        let cache = PlanCache::default();
        let refs = |picks: &[usize]| FeatureSelection::Refs(picks.iter().map(|i| almanac_core::FeatureRef::new("v", &format!("feature_with_a_long_name_{i}"))).collect());
        let once = cache.get_or_plan(&state, &refs(&[1]), false).expect("plan");
        let repeated = cache.get_or_plan(&state, &refs(&[1; 5_000]), false).expect("plan");
        assert!(Arc::ptr_eq(&once, &repeated), "5,000 repeats of one feature are the same shape as one");
        // Thousands of distinct long shapes (every order of many features).
        let mut picks: Vec<usize> = (0..40).collect();
        for round in 0..20_000usize {
            picks.rotate_left(1 + round % 7);
            picks.swap(round % 40, (round * 13) % 40);
            cache.get_or_plan(&state, &refs(&picks), round % 2 == 0).expect("plan");
            assert!(cache.bytes() <= PLAN_CACHE_BYTES, "{} bytes after {round} shapes", cache.bytes());
        }
        assert!(cache.bytes() > 0);
    }

    #[test]
    fn key_parts_follow_the_actual_column_type() {
        let ints: ArrayRef = Arc::new(arrow::array::Int32Array::from(vec![7]));
        assert_eq!(key_part("k", &DType::Int64, ints.as_ref(), 0).expect("int32 column"), Some(KeyPart::Int(7)));
        let text: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
        let error = key_part("user_id", &DType::Int64, text.as_ref(), 0).expect_err("string for int key");
        assert!(error.to_string().contains("join key `user_id` is an int64"), "{error}");
    }
}
