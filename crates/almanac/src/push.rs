//! Push (DESIGN §3): rows computed elsewhere (a stream job, a request
//! path) written to the online store, the offline history, or both, from
//! one computation, so training and serving see the same value.
//!
//! A push names a *push source* (a source with `batch_source:`). Every
//! feature view bound to it receives the rows: online as keep-if-newer
//! records (a late push never moves an entity back in time), offline as one
//! new Parquet file in the batch source's folder, written atomically. With
//! `online_and_offline` the offline file is written first: if it fails,
//! nothing is written online, so the stores never disagree about a push.
//!
//! Values are checked against the views' schemas before anything is
//! written; a mismatch names the column, the row and what was expected.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use almanac_core::convert::{coerce, to_array, value_at, values_of};
use almanac_core::{DType, FeatureView, Source, TimestampRange, Value};
use almanac_offline::io::write_parquet_durably;
use almanac_offline::{list_source_files, read_source_schema};
use almanac_online::{Entry, Lookup, OnlineStore, RecordCodec, WriteStats, encode_key_row};
use almanac_registry::RegistryState;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, new_null_array};
use arrow::datatypes::{DataType, Field as ArrowField, Schema, TimestampMicrosecondType};

use crate::error::Error;

/// Where pushed rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushTo {
    Online,
    Offline,
    OnlineAndOffline,
}

/// What a push did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PushReport {
    pub push_source: String,
    pub rows: usize,
    pub views: Vec<String>,
    pub online_written: u64,
    pub online_kept_newer: u64,
    /// The Parquet file appended to the batch source, when pushed offline.
    pub offline_file: Option<PathBuf>,
}

/// One column a push source takes.
#[derive(Debug, Clone, PartialEq)]
pub struct PushColumn {
    pub name: String,
    pub dtype: DType,
    pub role: ColumnRole,
}

/// What a pushed column is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// A join key: required, and never null (a row without its key cannot
    /// be stored online, and dropping it silently would lose data).
    Key,
    /// The event time: required, never null, inside the plausible range.
    EventTime,
    /// The created time: optional (null when left out), inside the range.
    CreatedTime,
    /// A feature of a view, or an input column of an aggregation view.
    Feature,
    /// A column of the batch source's files that no view reads (an event
    /// id, a note): optional, kept in the offline history so nothing the
    /// producer sent is lost.
    Extra,
}

impl PushColumn {
    /// Whether the push must carry this column.
    pub fn required(&self) -> bool {
        !matches!(self.role, ColumnRole::CreatedTime | ColumnRole::Extra)
    }
}

fn bad(message: impl Into<String>) -> Error {
    Error::Push(message.into())
}

/// The push source and the views that read it, or an error saying why
/// `name` cannot take pushes.
fn push_target<'a>(state: &'a RegistryState, name: &str) -> Result<(&'a Source, Vec<&'a FeatureView>), Error> {
    let defs = &state.definitions;
    let source = defs.source(name).ok_or_else(|| {
        let names: Vec<&str> = defs.sources.iter().filter(|s| s.batch_source.is_some()).map(|s| s.name.as_str()).collect();
        let help = almanac_core::suggest::closest(name, names.iter().copied()).map(|b| format!("did you mean `{b}`?"));
        Error::Unknown { what: "push source", name: name.to_string(), help }
    })?;
    if source.batch_source.is_none() {
        return Err(bad(format!("`{name}` is a batch source, not a push source; declare one with `batch_source: {name}` and bind views to it")));
    }
    let views: Vec<&FeatureView> = defs.feature_views.iter().filter(|v| v.source == source.name).collect();
    if views.is_empty() {
        return Err(bad(format!("no feature view reads push source `{name}`; bind a view to it with `source: {name}`")));
    }
    Ok((source, views))
}

/// The columns a push to `source` carries: every view's join keys, the
/// event time, the created time (optional), every view's features.
fn expected_columns(state: &RegistryState, source: &Source, views: &[&FeatureView]) -> Vec<PushColumn> {
    let defs = &state.definitions;
    let mut expected: Vec<PushColumn> = Vec::new();
    let mut add = |name: &str, dtype: DType, role: ColumnRole| {
        if !expected.iter().any(|c| c.name == name) {
            expected.push(PushColumn { name: name.to_string(), dtype, role });
        }
    };
    for view in views {
        for key in defs.view_join_keys(view) {
            add(&key.name, key.dtype.clone().unwrap_or(DType::Int64), ColumnRole::Key);
        }
    }
    add(&source.timestamp_field, DType::Timestamp, ColumnRole::EventTime);
    if let Some(created) = &source.created_timestamp_column {
        add(created, DType::Timestamp, ColumnRole::CreatedTime);
    }
    for view in views {
        if view.is_aggregation() {
            // An aggregation view takes the events' input columns; its
            // schema (the aggregates) is computed, never pushed.
            for aggregation in &view.aggregations {
                if let (Some(column), Some(dtype)) = (&aggregation.column, &aggregation.input_dtype) {
                    add(column, dtype.clone(), ColumnRole::Feature);
                }
            }
        } else {
            for field in &view.schema {
                add(&field.name, field.dtype.clone(), ColumnRole::Feature);
            }
        }
    }
    expected
}

/// `expected` plus the batch source files' other columns, optional, so a
/// push (or a stream event) can carry what no view reads without losing it.
fn with_extras(source: &Source, mut expected: Vec<PushColumn>, file_schema: Option<&Schema>) -> Vec<PushColumn> {
    for field in file_schema.map(|s| s.fields().iter().collect::<Vec<_>>()).unwrap_or_default() {
        let name = source.field_mapping.get(field.name()).cloned().unwrap_or_else(|| field.name().clone());
        if expected.iter().any(|c| c.name == name) {
            continue;
        }
        if let Some(dtype) = DType::from_arrow(field.data_type()) {
            expected.push(PushColumn { name, dtype, role: ColumnRole::Extra });
        }
    }
    expected
}

/// The columns push source `name` takes (see [`crate::FeatureStore::push_columns`]).
pub(crate) fn columns_of(state: &RegistryState, name: &str) -> Result<Vec<PushColumn>, Error> {
    let (source, views) = push_target(state, name)?;
    Ok(expected_columns(state, source, &views))
}

pub(crate) struct Push<'a> {
    pub root: &'a std::path::Path,
    pub state: &'a RegistryState,
    pub online: &'a dyn OnlineStore,
    /// The instants an event or created time may carry.
    pub range: TimestampRange,
    /// Batch-source folder → the schema its files share, so an offline
    /// push does not re-read every file's footer each time.
    pub schemas: &'a SchemaCache,
}

/// The file schema of each batch-source folder offline pushes append to,
/// per registry version. A push that does not fit the cached schema re-reads
/// the folder once before failing, so files added by other means are seen.
#[derive(Default)]
pub struct SchemaCache {
    schemas: std::sync::Mutex<std::collections::HashMap<(u64, PathBuf), arrow::datatypes::SchemaRef>>,
}

/// The push's columns, checked and converted to their declared dtypes'
/// canonical Arrow types.
struct Rows {
    n: usize,
    columns: Vec<(String, ArrayRef)>,
}

impl Rows {
    fn get(&self, name: &str) -> Option<&ArrayRef> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, array)| array)
    }
}

impl Push<'_> {
    pub fn run(&self, source_name: &str, batch: &RecordBatch, to: PushTo) -> Result<PushReport, Error> {
        self.run_named(source_name, batch, to, None)
    }

    /// Every column push source `name` takes: [`columns_of`] plus the batch
    /// source files' other columns (optional).
    pub fn columns(&self, source_name: &str) -> Result<Vec<PushColumn>, Error> {
        let (source, views) = push_target(self.state, source_name)?;
        Ok(with_extras(source, expected_columns(self.state, source, &views), self.cached_folder_schema(source).as_deref()))
    }

    /// [`Push::run`], naming the offline file (a stream names its files so
    /// they sort in ingestion order and can be found again after a crash).
    pub fn run_named(&self, source_name: &str, batch: &RecordBatch, to: PushTo, file_name: Option<&str>) -> Result<PushReport, Error> {
        let (source, views) = push_target(self.state, source_name)?;
        let expected = with_extras(source, expected_columns(self.state, source, &views), self.cached_folder_schema(source).as_deref());
        let rows = check(source, &expected, batch, &self.range)?;
        let mut report = PushReport { push_source: source_name.to_string(), rows: rows.n, views: views.iter().map(|v| v.name.clone()).collect(), online_written: 0, online_kept_newer: 0, offline_file: None };
        if rows.n == 0 {
            return Ok(report);
        }
        if matches!(to, PushTo::Offline | PushTo::OnlineAndOffline) {
            let stage = std::time::Instant::now();
            report.offline_file = Some(self.append_offline(source, &rows, file_name)?);
            almanac_offline::report_stage("push: offline file", stage);
            // Fault injection for the crash tests: die between the two
            // stores, the worst instant (the tests set it; nothing else does).
            if std::env::var_os("ALMANAC_FAULT_ABORT_AFTER_OFFLINE_PUSH").is_some() {
                std::process::abort();
            }
        }
        if matches!(to, PushTo::Online | PushTo::OnlineAndOffline) {
            let stats = self.write_online(source, &views, &rows)?;
            report.online_written = stats.written;
            report.online_kept_newer = stats.kept_newer;
        }
        Ok(report)
    }

    fn write_online(&self, source: &Source, views: &[&FeatureView], rows: &Rows) -> Result<WriteStats, Error> {
        let defs = &self.state.definitions;
        let mut stats = WriteStats::default();
        let event = rows.get(&source.timestamp_field).and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>()).ok_or_else(|| Error::Internal("the checked push has no µs event-time column".into()))?;
        let created = source.created_timestamp_column.as_ref().and_then(|c| rows.get(c)).and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>());
        for view in views.iter().filter(|v| v.online) {
            let keys: Vec<ArrayRef> = defs.view_join_keys(view).iter().filter_map(|k| rows.get(&k.name).cloned()).collect();
            let stage = std::time::Instant::now();
            if view.is_aggregation() {
                stats += self.merge_states(view, &keys, event, rows)?;
                almanac_offline::report_stage("push: online aggregation state", stage);
                continue;
            }
            let codec = RecordCodec::new(&view.schema);
            let features: Vec<ArrayRef> = view.schema.iter().filter_map(|f| rows.get(&f.name).cloned()).collect();
            let mut entries = Vec::with_capacity(rows.n);
            for row in 0..rows.n {
                let key = store_key(&keys, row)?;
                if event.is_null(row) {
                    continue;
                }
                let created_ts = created.filter(|c| !c.is_null(row)).map(|c| c.value(row));
                let mut record = Vec::with_capacity(64);
                codec.encode_row(&features, row, event.value(row), created_ts, &mut record)?;
                entries.push(Entry { key, record });
            }
            stats += self.online.write(&view.name, &entries)?;
            almanac_offline::report_stage("push: online latest values", stage);
        }
        Ok(stats)
    }

    /// Fold pushed events into each entity's aggregation state (DESIGN §9):
    /// the stored events plus the new ones, in `(event time, arrival)`
    /// order (an event ties after the ones already held, as a later file's
    /// row does in the offline sweep), stamped with the newest instant the
    /// state is complete up to, and cut to the widest window before it.
    /// The state is then exactly what materializing the same history would
    /// store, so a read folds the same bits either way.
    fn merge_states(&self, view: &FeatureView, keys: &[ArrayRef], event: &arrow::array::TimestampMicrosecondArray, rows: &Rows) -> Result<WriteStats, Error> {
        let codec = RecordCodec::new(&almanac_aggregate::state_schema(view));
        // The state's input columns after its event times, each with the
        // dtype its list items have.
        let state_inputs = view.aggregation_inputs();
        let inputs: Vec<&ArrayRef> = state_inputs.iter().map(|f| rows.get(&f.name).ok_or_else(|| Error::Internal(format!("the checked push has no input column `{}` of `{}`", f.name, view.name)))).collect::<Result<_, _>>()?;
        let widest = view.largest_window().map_or(0, |w| w.micros());
        let mut order: Vec<Vec<u8>> = Vec::new();
        let mut by_key: std::collections::HashMap<Vec<u8>, Vec<usize>> = std::collections::HashMap::new();
        for row in (0..rows.n).filter(|&r| !event.is_null(r)) {
            let key = store_key(keys, row)?;
            by_key.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                Vec::new()
            }).push(row);
        }
        let lookups: Vec<Lookup> = order.iter().map(|key| Lookup { view: &view.name, key }).collect();
        let stored = self.online.read(&lookups)?;
        // Scalar inputs in their canonical Arrow types (the common case) are
        // merged as bytes; anything else through values. Both write the
        // same record.
        let item_dtypes: Vec<DType> = state_inputs.into_iter().map(|f| f.dtype).collect();
        let as_bytes = codec.is_scalar_lists() && inputs.iter().zip(&item_dtypes).all(|(column, dtype)| column.data_type() == &dtype.to_arrow());
        let mut entries = Vec::with_capacity(order.len());
        for (key, old) in order.iter().zip(stored) {
            let new_rows = by_key.get(key).map(Vec::as_slice).unwrap_or_default();
            let mut record = Vec::with_capacity(64);
            if as_bytes {
                merge_items(&codec, old.as_deref(), new_rows, event, &inputs, &item_dtypes, widest, &mut record)?;
            } else {
                merge_values(&codec, old.as_deref(), new_rows, event, &inputs, widest, &mut record)?;
            }
            entries.push(Entry { key: key.clone(), record });
        }
        Ok(self.online.write(&view.name, &entries)?)
    }

    /// One new Parquet file in the batch source's folder, with the files'
    /// own column names and types, so scans read it like any other file.
    fn append_offline(&self, source: &Source, rows: &Rows, file_name: Option<&str>) -> Result<PathBuf, Error> {
        if source.table.is_some() || source.query.is_some() {
            return Err(bad(format!("push source `{}` cannot append offline: its batch source is a database table or query, which Almanac reads but does not write; push `to: online`, and write the history where the table is fed", source.name)));
        }
        let folder = self.root.join(&source.path);
        if !folder.is_dir() {
            return Err(bad(format!("push source `{}` cannot append offline: its batch source's path `{}` is not a folder; make it a folder of Parquet files", source.name, source.path)));
        }
        let key = (self.state.version, folder.clone());
        let cached = self.schemas.schemas.lock().ok().and_then(|map| map.get(&key).cloned());
        let batch = match cached.map(|schema| file_batch(source, rows, &schema)) {
            Some(Ok(batch)) => batch,
            // Not cached yet, or the folder's files changed: read it again.
            _ => {
                let schema = self.folder_schema(source)?;
                let batch = file_batch(source, rows, &schema)?;
                if let Ok(mut map) = self.schemas.schemas.lock() {
                    map.retain(|(version, _), _| *version == self.state.version);
                    map.insert(key, schema);
                }
                batch
            }
        };
        let path = folder.join(file_name.map_or_else(push_file_name, str::to_string));
        write_parquet_durably(&path, &batch)?;
        Ok(path)
    }
}

impl Push<'_> {
    /// The batch source folder's file schema, when it is a folder of
    /// Parquet files (cached per registry version); `None` otherwise, since
    /// an online-only push needs no files.
    fn cached_folder_schema(&self, source: &Source) -> Option<arrow::datatypes::SchemaRef> {
        let folder = self.root.join(&source.path);
        if !folder.is_dir() {
            return None;
        }
        let key = (self.state.version, folder);
        if let Some(schema) = self.schemas.schemas.lock().ok().and_then(|map| map.get(&key).cloned()) {
            return Some(schema);
        }
        let schema = self.folder_schema(source).ok()?;
        if let Ok(mut map) = self.schemas.schemas.lock() {
            map.retain(|(version, _), _| *version == self.state.version);
            map.insert(key, schema.clone());
        }
        Some(schema)
    }

    /// The schema the batch source's files share. Failing to read files
    /// that are already in the folder is the server's problem (a damaged
    /// file), not the pusher's.
    fn folder_schema(&self, source: &Source) -> Result<arrow::datatypes::SchemaRef, Error> {
        let files = list_source_files(self.root, source).map_err(|e| Error::Storage(e.to_string()))?;
        if files.format != almanac_core::FileFormat::Parquet {
            return Err(bad(format!("push source `{}` cannot append offline: its batch source holds {} files; offline pushes write Parquet", source.name, files.format)));
        }
        read_source_schema(&files).map_err(|e| Error::Storage(format!("push source `{}`: {e}", source.name)))
    }
}

/// The pushed rows in the files' own column names and types, so scans read
/// the new file like any other.
fn file_batch(source: &Source, rows: &Rows, file_schema: &Schema) -> Result<RecordBatch, Error> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for field in file_schema.fields() {
        let name = source.field_mapping.get(field.name()).cloned().unwrap_or_else(|| field.name().clone());
        let array = match rows.get(&name) {
            Some(array) => almanac_core::convert::conform_to(array, field.data_type()).map_err(|e| bad(format!("column `{name}` does not fit the files' type {}: {e}", field.data_type())))?,
            None => new_null_array(field.data_type(), rows.n),
        };
        fields.push(ArrowField::new(field.name(), field.data_type().clone(), true));
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// A stored record's event time, from its header.
fn header_stamp(bytes: &[u8]) -> Result<i64, Error> {
    almanac_online::RecordHeader::parse(bytes).map(|h| h.event_ts).ok_or_else(|| Error::Internal("an aggregation state shorter than its header".into()))
}

/// A checked row's store key, by the online store's one key encoding
/// (`check` refused null keys; keys are int64 or string).
fn store_key(keys: &[ArrayRef], row: usize) -> Result<Vec<u8>, Error> {
    let mut key = Vec::with_capacity(16);
    if !encode_key_row(keys, row, &mut key)? {
        return Err(Error::Internal(format!("a checked push row {row} has a null key")));
    }
    Ok(key)
}

/// An entity's aggregation state while events are merged into it: event
/// times and, per input column, one value per event, in `(time, arrival)`
/// order; `stamp` is the instant it is complete up to.
struct State {
    stamp: i64,
    ts: Vec<i64>,
    columns: Vec<Vec<Value>>,
}

impl State {
    fn empty(columns: usize) -> State {
        State { stamp: i64::MIN, ts: Vec::new(), columns: vec![Vec::new(); columns] }
    }

    fn decode(codec: &RecordCodec, bytes: &[u8], columns: usize) -> Result<State, Error> {
        let mut lists = codec.decode(bytes)?.values.into_iter().map(|value| match value {
            Value::List(items) => items,
            _ => Vec::new(),
        });
        let ts = lists.next().unwrap_or_default().into_iter().map(|v| if let Value::Timestamp(t) = v { Ok(t) } else { Err(Error::Internal(format!("an aggregation state holds the event time {v:?}"))) }).collect::<Result<Vec<_>, _>>()?;
        let columns: Vec<Vec<Value>> = (0..columns).map(|_| lists.next().unwrap_or_default()).collect();
        if columns.iter().any(|c| c.len() != ts.len()) {
            return Err(Error::Internal("an aggregation state's lists differ in length".into()));
        }
        Ok(State { stamp: header_stamp(bytes)?, ts, columns })
    }

    /// Insert after every event at the same instant or earlier.
    fn insert(&mut self, at: i64, values: impl Iterator<Item = Value>) {
        let index = self.ts.partition_point(|&t| t <= at);
        self.ts.insert(index, at);
        for (column, value) in self.columns.iter_mut().zip(values) {
            column.insert(index, value);
        }
        self.stamp = self.stamp.max(at);
    }

    /// Drop events before `stamp − widest`: no read the state can answer
    /// (a read at `t ≥ stamp`) has them in its window.
    fn cut(&mut self, widest: i64) {
        let from = self.stamp.saturating_sub(widest);
        let cut = self.ts.partition_point(|&t| t < from);
        self.ts.drain(..cut);
        for column in &mut self.columns {
            column.drain(..cut);
        }
    }

    fn into_values(self) -> Vec<Value> {
        let mut values = vec![Value::List(self.ts.into_iter().map(Value::Timestamp).collect())];
        values.extend(self.columns.into_iter().map(Value::List));
        values
    }
}

/// The merge through values ([`State`]): any input type.
fn merge_values(codec: &RecordCodec, stored: Option<&[u8]>, new_rows: &[usize], event: &arrow::array::TimestampMicrosecondArray, inputs: &[&ArrayRef], widest: i64, out: &mut Vec<u8>) -> Result<(), Error> {
    let mut state = match stored {
        Some(bytes) => State::decode(codec, bytes, inputs.len())?,
        None => State::empty(inputs.len()),
    };
    for &row in new_rows {
        state.insert(event.value(row), inputs.iter().map(|column| value_at(column.as_ref(), row)));
    }
    state.cut(widest);
    let stamp = state.stamp;
    codec.encode_values(&state.into_values(), stamp, None, out)?;
    Ok(())
}

/// Where a merged state's event comes from: the stored state's item, or a
/// pushed row (by its position among the entity's new rows).
#[derive(Clone, Copy)]
enum Origin {
    Stored(usize),
    Pushed(usize),
}

/// [`State`]'s merge done on the record's bytes (the streaming hot path):
/// the stored events and the pushed rows in `(event time, arrival)` order
/// (a stable sort of stored-then-pushed is exactly inserting each pushed
/// event after every event at its instant or earlier), stamped with the
/// newest instant, cut to the widest window before it, and written as the
/// same bytes decoding, inserting, cutting and encoding values gives.
#[allow(clippy::too_many_arguments)]
fn merge_items(codec: &RecordCodec, stored: Option<&[u8]>, new_rows: &[usize], event: &arrow::array::TimestampMicrosecondArray, inputs: &[&ArrayRef], item_dtypes: &[DType], widest: i64, out: &mut Vec<u8>) -> Result<(), Error> {
    let corrupt = |what: &str| Error::Internal(format!("an aggregation state {what}"));
    let (mut stamp, lists) = match stored {
        Some(bytes) => {
            let (header, lists) = codec.list_items(bytes)?;
            (header.event_ts, lists)
        }
        None => (i64::MIN, vec![Vec::new(); inputs.len() + 1]),
    };
    let stored_ts: Vec<i64> = lists[0].iter().map(|item| item.and_then(|b| <[u8; 8]>::try_from(b).ok()).map(i64::from_le_bytes).ok_or_else(|| corrupt("holds a null or malformed event time"))).collect::<Result<_, _>>()?;
    if lists.iter().any(|list| list.len() != stored_ts.len()) {
        return Err(corrupt("has lists of different lengths"));
    }
    // The pushed rows' items, written once into one buffer.
    let mut scratch: Vec<u8> = Vec::with_capacity(new_rows.len() * 8 * (inputs.len() + 1));
    let mut pushed: Vec<Vec<Option<std::ops::Range<usize>>>> = vec![Vec::with_capacity(new_rows.len()); inputs.len() + 1];
    for &row in new_rows {
        let at = event.value(row);
        stamp = stamp.max(at);
        let start = scratch.len();
        scratch.extend_from_slice(&at.to_le_bytes());
        pushed[0].push(Some(start..scratch.len()));
        for ((column, dtype), items) in inputs.iter().zip(item_dtypes).zip(pushed.iter_mut().skip(1)) {
            if column.is_null(row) {
                items.push(None);
            } else {
                let start = scratch.len();
                almanac_online::record::encode_item(column.as_ref(), dtype, row, &mut scratch)?;
                items.push(Some(start..scratch.len()));
            }
        }
    }
    let mut order: Vec<(i64, Origin)> = stored_ts.iter().enumerate().map(|(i, &t)| (t, Origin::Stored(i))).chain(new_rows.iter().enumerate().map(|(j, &row)| (event.value(row), Origin::Pushed(j)))).collect();
    order.sort_by_key(|(t, _)| *t);
    let from = stamp.saturating_sub(widest);
    let kept = &order[order.partition_point(|(t, _)| *t < from)..];
    let merged: Vec<Vec<Option<&[u8]>>> = (0..lists.len())
        .map(|field| {
            kept.iter()
                .map(|(_, origin)| match *origin {
                    Origin::Stored(i) => lists[field][i],
                    Origin::Pushed(j) => pushed[field][j].clone().map(|range| &scratch[range]),
                })
                .collect()
        })
        .collect();
    codec.encode_list_items(&merged, stamp, out)?;
    Ok(())
}

/// A name no other push (this process or another) uses: time, process id
/// and a per-process counter.
fn push_file_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
    format!("push-{stamp}-{}-{}.parquet", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Every expected column present (or optional), nothing unexpected, each
/// converted to its dtype's canonical Arrow type.
fn check(source: &Source, expected: &[PushColumn], batch: &RecordBatch, range: &TimestampRange) -> Result<Rows, Error> {
    let schema = batch.schema();
    let given: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    if let Some(name) = given.iter().find(|name| !expected.iter().any(|c| c.name == **name)) {
        let help = almanac_core::suggest::closest(name, expected.iter().map(|c| c.name.as_str())).map(|b| format!(" (did you mean `{b}`?)")).unwrap_or_default();
        return Err(bad(format!("column `{name}` is not part of push source `{}`{help}; expected columns: {}", source.name, expected.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "))));
    }
    let n = batch.num_rows();
    let mut out = Vec::with_capacity(expected.len());
    for column in expected {
        let array = match batch.column_by_name(&column.name) {
            Some(array) => as_dtype(&column.name, array, &column.dtype)?,
            None if column.required() => return Err(bad(format!("the push is missing column `{}` ({}); it has: {}", column.name, column.dtype, given.join(", ")))),
            None => new_null_array(&column.dtype.to_arrow(), n),
        };
        let null_row = || (0..n).find(|&row| array.is_null(row));
        match column.role {
            ColumnRole::EventTime => {
                if let Some(row) = null_row() {
                    return Err(bad(format!("column `{}`, row {row}: the event timestamp is required", column.name)));
                }
                check_range(&column.name, &array, range)?;
            }
            ColumnRole::CreatedTime => check_range(&column.name, &array, range)?,
            ColumnRole::Key => {
                if let Some(row) = null_row() {
                    return Err(bad(format!("column `{}`, row {row}: the join key is null; every pushed row needs its key (the row cannot be stored online)", column.name)));
                }
            }
            ColumnRole::Feature | ColumnRole::Extra => {}
        }
        out.push((column.name.clone(), array));
    }
    Ok(Rows { n, columns: out })
}

/// Every instant of a timestamp column inside the plausible range (an
/// instant far in the future would win keep-if-newer for ever).
fn check_range(name: &str, array: &ArrayRef, range: &TimestampRange) -> Result<(), Error> {
    let Some(times) = array.as_primitive_opt::<TimestampMicrosecondType>() else { return Ok(()) };
    for (row, micros) in times.iter().enumerate() {
        if let Some(why) = micros.and_then(|m| range.refusal(m)) {
            return Err(bad(format!("column `{name}`, row {row}: {why}")));
        }
    }
    Ok(())
}

/// A pushed column as `dtype`'s canonical Arrow type. A column already of
/// that type is taken as it is; anything else goes through the one
/// coercion rule of `almanac_core::convert` (so text timestamps use the one
/// grammar and integers for a timestamp are epoch seconds, whoever pushes).
fn as_dtype(name: &str, array: &ArrayRef, dtype: &DType) -> Result<ArrayRef, Error> {
    // JSON text is checked value by value (it must parse), so it takes the
    // coercing path even when it arrives as plain strings.
    if array.data_type() == &dtype.to_arrow() && *dtype != DType::Json {
        return Ok(array.clone());
    }
    if array.data_type() == &DataType::Null {
        return Ok(new_null_array(&dtype.to_arrow(), array.len()));
    }
    let coerced = values_of(array.as_ref())
        .iter()
        .enumerate()
        .map(|(row, value)| coerce(value, dtype).map_err(|why| bad(format!("column `{name}`, row {row}: {why}"))))
        .collect::<Result<Vec<_>, _>>()?;
    to_array(name, &coerced, dtype).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use almanac_core::{AggFunction, Aggregation, Duration, FeatureView};
    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use proptest::prelude::*;

    use super::*;

    fn view() -> FeatureView {
        let aggregation = |column: Option<&str>, function, dtype: Option<DType>| Aggregation { name: format!("{column:?}{function:?}"), column: column.map(str::to_string), function, window: Duration::from_seconds(50), n: None, input_dtype: dtype, description: String::new(), tags: Default::default() };
        FeatureView {
            name: "w".into(),
            entities: vec!["user".into()],
            source: "s".into(),
            ttl: None,
            online: true,
            schema: Vec::new(),
            aggregations: vec![
                aggregation(None, AggFunction::Count, None),
                aggregation(Some("amount"), AggFunction::Sum, Some(DType::Float64)),
                aggregation(Some("shop"), AggFunction::ApproxCountDistinct, Some(DType::String)),
                aggregation(Some("n"), AggFunction::Max, Some(DType::Int64)),
            ],
            tile: None,
            monitoring: Default::default(),
            governance: Default::default(),
        }
    }

    type Row = (i64, Option<f64>, Option<String>, Option<i64>);

    fn row_strategy() -> impl Strategy<Value = Row> {
        (0i64..120, proptest::option::of(prop_oneof![Just(0.0), Just(-0.0), Just(f64::NAN), -1e6f64..1e6]), proptest::option::of("[a-c]{0,3}"), proptest::option::of(any::<i64>()))
    }

    fn columns(rows: &[Row]) -> (TimestampMicrosecondArray, Vec<ArrayRef>) {
        let event = TimestampMicrosecondArray::from(rows.iter().map(|r| r.0 * 1_000_000).collect::<Vec<_>>());
        let amount: ArrayRef = Arc::new(rows.iter().map(|r| r.1).collect::<Float64Array>());
        let shop: ArrayRef = Arc::new(rows.iter().map(|r| r.2.clone()).collect::<StringArray>());
        let n: ArrayRef = Arc::new(rows.iter().map(|r| r.3).collect::<Int64Array>());
        (event, vec![amount, shop, n])
    }

    proptest! {
        /// Merging as bytes writes exactly the record merging through
        /// values writes, batch after batch (ties, nulls, NaN, -0.0, cuts).
        #[test]
        fn merging_bytes_equals_merging_values(batches in proptest::collection::vec(proptest::collection::vec(row_strategy(), 0..12), 1..5)) {
            let view = view();
            let codec = RecordCodec::new(&almanac_aggregate::state_schema(&view));
            let item_dtypes = [DType::Float64, DType::String, DType::Int64];
            prop_assert!(codec.is_scalar_lists());
            let widest = 50_000_000;
            let mut stored: Option<Vec<u8>> = None;
            for batch in &batches {
                let (event, arrays) = columns(batch);
                let inputs: Vec<&ArrayRef> = arrays.iter().collect();
                let rows: Vec<usize> = (0..batch.len()).collect();
                let (mut by_values, mut by_items) = (Vec::new(), Vec::new());
                merge_values(&codec, stored.as_deref(), &rows, &event, &inputs, widest, &mut by_values).expect("values");
                merge_items(&codec, stored.as_deref(), &rows, &event, &inputs, &item_dtypes, widest, &mut by_items).expect("items");
                prop_assert_eq!(&by_items, &by_values);
                stored = Some(by_items);
            }
        }
    }
}
