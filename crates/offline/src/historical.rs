//! Point-in-time retrieval (DESIGN §2) and exports, over any source.
//!
//! The flow for each requested view: normalize the entity table's keys and
//! timestamps, work out the event-time range the request can see
//! (`min(T) - ttl ..= max(T)`), scan only that range and only the needed
//! columns, run the native as-of join, and `take` the winners' features in
//! input order, cast to their declared dtypes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use almanac_core::convert::conform;
use almanac_core::{DType, Field, JoinKey};
use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::{cast, filter_record_batch, interleave, take};
use arrow::datatypes::{DataType, Field as ArrowField, Schema};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use rayon::prelude::*;

use crate::asof::{self, History, Probes};
use crate::{HistoricalOptions, OfflineStore, TimeRange, ViewRequest, ViewRows};
use crate::error::OfflineError;
use crate::partition::{Spill, partition_of, rows_by_partition};
use crate::scan::{self, ScanRequest};
use crate::source::{SourceFiles, list_source_files, read_source_schema};
use crate::request::{PreparedRequest, assemble, prepare};
use crate::time::to_nanos;

/// The embedded engine: DataFusion scans of the sources' files plus the
/// native as-of join.
pub struct EmbeddedOfflineStore {
    root: PathBuf,
    runtime: tokio::runtime::Runtime,
    ctx: SessionContext,
    /// One partition: files in path order, rows in file order (aggregation
    /// views' `last` counts the later of two equal-time rows as newer).
    ordered_ctx: SessionContext,
    /// Scanned history (Arrow bytes) above which a view is hash-partitioned
    /// and spilled to disk instead of joined in memory.
    memory_budget: usize,
}

/// The default budget: 256 MiB of scanned history per view, or
/// `ALMANAC_MEMORY_BUDGET_MB` when set.
pub fn default_memory_budget() -> usize {
    std::env::var("ALMANAC_MEMORY_BUDGET_MB").ok().and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(256).saturating_mul(1 << 20)
}

/// A view's history, in memory or partitioned on disk.
enum Loaded {
    InMemory(HistoryTable),
    Spilled(Spill),
}

impl EmbeddedOfflineStore {
    pub fn new(root: impl AsRef<Path>) -> Result<Self, OfflineError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
            .enable_all()
            .build()
            .map_err(|e| OfflineError::Runtime(e.to_string()))?;
        Ok(EmbeddedOfflineStore { root: root.as_ref().to_path_buf(), runtime, ctx: scan::session(), ordered_ctx: scan::ordered_session(), memory_budget: default_memory_budget() })
    }

    /// Whether the views' source files together are no larger than the
    /// memory budget (a cheap stand-in for "their histories fit at once").
    fn files_fit_budget(&self, files: &[SourceFiles]) -> bool {
        let bytes: u64 = files.iter().flat_map(|f| &f.files).filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
        bytes <= self.memory_budget as u64
    }

    /// A view's source files, resolved once per request.
    fn source_files(&self, request: &ViewRequest) -> Result<SourceFiles, OfflineError> {
        list_source_files(&self.root, &request.source).map_err(|error| OfflineError::Source { source_name: request.source.name.clone(), error: Box::new(error) })
    }

    /// Override the memory budget (bytes of scanned history per view).
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = bytes.max(1);
        self
    }

    /// The view's history (key columns, event/created times, features),
    /// pruned to `range`: in memory while it fits the budget, otherwise
    /// hash-partitioned by key into spill files as it streams in.
    fn load(&self, request: &ViewRequest, files: &SourceFiles, range: TimeRange) -> Result<Loaded, OfflineError> {
        let source = &request.source;
        let schema = read_source_schema(files).map_err(|error| OfflineError::Source { source_name: source.name.clone(), error: Box::new(error) })?;
        let mut columns: Vec<String> = request.join_keys.iter().map(|(_, k)| source.file_column(&k.name).to_string()).collect();
        columns.push(source.file_column(&source.timestamp_field).to_string());
        if let Some(created) = &source.created_timestamp_column {
            columns.push(source.file_column(created).to_string());
        }
        // Every feature of the view is read, not only the requested ones: the
        // last-resort tie-break compares all of them, so the winning row never
        // depends on which subset a request (or materialization) asked for.
        columns.extend(history_fields(request).iter().map(|f| source.file_column(&f.name).to_string()));
        let on_disk: u64 = files.files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
        let scan_request = ScanRequest { source, files, schema, columns, range: (range.start, range.end) };
        let ctx = if request.view.is_aggregation() { &self.ordered_ctx } else { &self.ctx };
        let mut stream = self.runtime.block_on(scan::scan(ctx, &scan_request)).map_err(|error| scan::name_the_file(error, files))?;
        // A failure mid-scan names the file that causes it when one can be
        // found (DataFusion's message often names only the operation).
        let scan_error = |e: datafusion::error::DataFusionError| scan::name_the_file(OfflineError::Scan { source_name: source.name.clone(), reason: e.to_string() }, files);
        let (mut buffered, mut bytes, mut spill): (Vec<RecordBatch>, usize, Option<Spill>) = (Vec::new(), 0, None);
        while let Some(batch) = self.runtime.block_on(stream.next()) {
            let batch = batch.map_err(scan_error)?;
            if let Some(spill) = spill.as_mut() {
                spill.write(&batch, &partition_of(&history_keys(request, &batch)?, spill.partitions())?)?;
                continue;
            }
            bytes += batch.get_array_memory_size();
            buffered.push(batch);
            if bytes > self.memory_budget {
                // Aim for partitions of a quarter of the budget, assuming the
                // files expand in memory at least as much as what was read so far.
                let expected = (on_disk as usize).saturating_mul(4).max(bytes * 2);
                let partitions = expected.div_ceil((self.memory_budget / 4).max(1)).clamp(2, 4096);
                let mut fresh = Spill::new(buffered[0].schema(), partitions)?;
                for batch in buffered.drain(..) {
                    fresh.write(&batch, &partition_of(&history_keys(request, &batch)?, partitions)?)?;
                }
                spill = Some(fresh);
            }
        }
        if let Some(mut spill) = spill {
            spill.finish()?;
            return Ok(Loaded::Spilled(spill));
        }
        Ok(Loaded::InMemory(HistoryTable::from_batches(request, buffered)?))
    }

    /// The history for exports, which are always in memory.
    fn history(&self, request: &ViewRequest, range: TimeRange) -> Result<HistoryTable, OfflineError> {
        match self.load(request, &self.source_files(request)?, range)? {
            Loaded::InMemory(history) => Ok(history),
            Loaded::Spilled(spill) => {
                let parts = (0..spill.partitions()).filter_map(|p| spill.read(p).transpose()).collect::<Result<Vec<_>, _>>()?;
                HistoryTable::from_batches(request, parts)
            }
        }
    }

    /// The requested features of one view for every entity row.
    fn join_view(&self, request: &ViewRequest, files: &SourceFiles, keys: &[ArrayRef], at: &[Option<i64>], range: TimeRange) -> Result<Vec<ArrayRef>, OfflineError> {
        let ttl = request.view.ttl.filter(|t| !t.is_zero()).map(|t| t.micros().saturating_mul(1_000));
        let rows = at.len();
        let started = std::time::Instant::now();
        let loaded = self.load(request, files, range)?;
        crate::report_stage(&format!("{}: scan + normalize", request.view.name), started);
        let started = std::time::Instant::now();
        let _report = Deferred(|| crate::report_stage(&format!("{}: as-of join + take", request.view.name), started));
        // The requested features of `history`'s keys for these entity rows.
        let compute = |history: &HistoryTable, keys: &[ArrayRef], at: &[Option<i64>]| -> Result<Vec<ArrayRef>, OfflineError> {
            if request.view.is_aggregation() {
                return aggregate_features(request, history, keys, at);
            }
            let indices = asof::asof_join(&history.as_history(), &Probes { keys, at }, ttl)?;
            request.features.iter().map(|f| Ok(conform(&take(history.features[schema_index(request, f)?].as_ref(), &indices, None)?, &f.dtype)?)).collect()
        };
        match loaded {
            Loaded::InMemory(history) => compute(&history, keys, at),
            Loaded::Spilled(spill) => {
                let partitions = spill.partitions();
                let by_partition = rows_by_partition(&partition_of(keys, partitions)?, partitions);
                // Output row -> (part, offset); the last "part" is a single null.
                let mut parts: Vec<Vec<ArrayRef>> = vec![Vec::new(); request.features.len()];
                let mut positions = vec![(usize::MAX, 0usize); rows];
                for (partition, entity_rows) in by_partition.into_iter().enumerate() {
                    if entity_rows.is_empty() {
                        continue;
                    }
                    let Some(batch) = spill.read(partition)? else { continue };
                    let history = HistoryTable::from_batches(request, vec![batch])?;
                    let picked = UInt32Array::from(entity_rows.clone());
                    let part_keys = keys.iter().map(|k| take(k.as_ref(), &picked, None)).collect::<Result<Vec<_>, _>>()?;
                    let part_at: Vec<Option<i64>> = entity_rows.iter().map(|&r| at[r as usize]).collect();
                    let part_index = parts[0].len();
                    for (out, column) in parts.iter_mut().zip(compute(&history, &part_keys, &part_at)?) {
                        out.push(column);
                    }
                    for (offset, &row) in entity_rows.iter().enumerate() {
                        positions[row as usize] = (part_index, offset);
                    }
                }
                // One part list per requested feature, all of equal length; with
                // no features requested there is nothing to interleave at all.
                // A row whose key is in no partition's history still gets the
                // empty window from an aggregation view, not a null.
                let empty_keys: Vec<ArrayRef> = keys.iter().map(|k| arrow::array::new_null_array(k.data_type(), 0)).collect();
                let unmatched: Vec<usize> = positions.iter().enumerate().filter(|(_, p)| p.0 == usize::MAX).map(|(row, _)| row).collect();
                if request.view.is_aggregation() && !unmatched.is_empty() {
                    let picked = UInt32Array::from(unmatched.iter().map(|&r| r as u32).collect::<Vec<_>>());
                    let part_keys = keys.iter().map(|k| take(k.as_ref(), &picked, None)).collect::<Result<Vec<_>, _>>()?;
                    let part_at: Vec<Option<i64>> = unmatched.iter().map(|&r| at[r]).collect();
                    let nothing = HistoryTable::empty(request, &empty_keys);
                    let part_index = parts[0].len();
                    for (out, column) in parts.iter_mut().zip(compute(&nothing, &part_keys, &part_at)?) {
                        out.push(column);
                    }
                    for (offset, &row) in unmatched.iter().enumerate() {
                        positions[row] = (part_index, offset);
                    }
                }
                let null_part = parts.first().map_or(0, Vec::len);
                for position in positions.iter_mut().filter(|p| p.0 == usize::MAX) {
                    *position = (null_part, 0);
                }
                parts
                    .into_iter()
                    .zip(&request.features)
                    .map(|(mut arrays, field)| {
                        arrays.push(arrow::array::new_null_array(&field.dtype.to_arrow(), 1));
                        let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
                        Ok(interleave(&refs, &positions)?)
                    })
                    .collect()
            }
        }
    }
}

/// Runs a closure when dropped (reports a stage's time on every exit path).
struct Deferred<F: Fn()>(F);

impl<F: Fn()> Drop for Deferred<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// A batch's key columns as the join compares them (for partitioning).
fn history_keys(request: &ViewRequest, batch: &RecordBatch) -> Result<Vec<ArrayRef>, OfflineError> {
    request
        .join_keys
        .iter()
        .map(|(_, key)| {
            let name = request.source.file_column(&key.name);
            let column = batch.column_by_name(name).ok_or_else(|| OfflineError::Scan { source_name: request.source.name.clone(), reason: format!("column `{name}` is missing") })?;
            Ok(cast(column, &key_type(key))?)
        })
        .collect()
}

/// A view's scanned history, normalized for the join.
struct HistoryTable {
    keys: Vec<ArrayRef>,
    ts: Vec<i64>,
    ts_valid: Vec<bool>,
    /// `i64::MIN` for a null created time (it loses every tie).
    created: Option<Vec<i64>>,
    /// Every feature of the view, in schema order.
    features: Vec<ArrayRef>,
}

impl HistoryTable {
    /// Normalize scanned batches, consuming them one by one so that raw
    /// time and key columns are freed as soon as they are converted.
    fn from_batches(request: &ViewRequest, batches: Vec<RecordBatch>) -> Result<Self, OfflineError> {
        let source = &request.source;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut keys: Vec<Vec<ArrayRef>> = vec![Vec::new(); request.join_keys.len()];
        let fields = history_fields(request);
        let mut features: Vec<Vec<ArrayRef>> = vec![Vec::new(); fields.len()];
        let (mut ts, mut ts_valid) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
        let mut created = source.created_timestamp_column.as_ref().map(|_| Vec::with_capacity(rows));
        for batch in batches {
            let get = |name: &str| -> Result<ArrayRef, OfflineError> {
                let file_name = source.file_column(name);
                batch.column_by_name(file_name).cloned().ok_or_else(|| OfflineError::Scan {
                    source_name: source.name.clone(),
                    reason: format!("column `{file_name}` disappeared from the files since `almanac apply`; run `almanac apply` to re-check the definitions"),
                })
            };
            for (out, (_, key)) in keys.iter_mut().zip(&request.join_keys) {
                out.push(cast(&get(&key.name)?, &key_type(key))?);
            }
            for nanos in to_nanos(&get(&source.timestamp_field)?, &source.timestamp_field)? {
                ts.push(nanos.unwrap_or(i64::MIN));
                ts_valid.push(nanos.is_some());
            }
            if let (Some(out), Some(name)) = (created.as_mut(), &source.created_timestamp_column) {
                out.extend(to_nanos(&get(name)?, name)?.into_iter().map(|t| t.unwrap_or(i64::MIN)));
            }
            for (out, field) in features.iter_mut().zip(&fields) {
                let column = get(&field.name)?;
                // Files may lay out a struct's fields differently: read them
                // by name into the declared layout before batches are joined.
                out.push(if field.dtype.is_nested() { conform(&column, &field.dtype)? } else { column });
            }
        }
        let concat_all = |parts: Vec<Vec<ArrayRef>>, types: Vec<DataType>| -> Result<Vec<ArrayRef>, OfflineError> {
            parts
                .into_iter()
                .zip(types)
                .map(|(parts, data_type)| match parts.len() {
                    0 => Ok(arrow::array::new_empty_array(&data_type)),
                    1 => Ok(parts[0].clone()),
                    _ => Ok(arrow::compute::concat(&parts.iter().map(|a| a.as_ref()).collect::<Vec<_>>())?),
                })
                .collect()
        };
        let keys = concat_all(keys, request.join_keys.iter().map(|(_, k)| key_type(k)).collect())?;
        let features = concat_all(features, fields.iter().map(|f| f.dtype.to_arrow()).collect())?;
        Ok(HistoryTable { keys, ts, ts_valid, created, features })
    }

    /// No events: every known-key probe reads the empty window.
    fn empty(request: &ViewRequest, keys: &[ArrayRef]) -> Self {
        let features = history_fields(request).iter().map(|f| arrow::array::new_empty_array(&f.dtype.to_arrow())).collect();
        HistoryTable { keys: keys.to_vec(), ts: Vec::new(), ts_valid: Vec::new(), created: None, features }
    }

    fn as_history(&self) -> History<'_> {
        History { keys: &self.keys, ts: &self.ts, created: self.created.as_deref(), ts_valid: Some(&self.ts_valid), features: &self.features }
    }
}

/// The columns a view's history holds beside keys and times: the features
/// of a plain view; an aggregation view's input columns (each once, with
/// the dtype `apply` resolved from the files).
fn history_fields(request: &ViewRequest) -> Vec<Field> {
    if !request.view.is_aggregation() {
        return request.view.schema.clone();
    }
    request.view.aggregation_inputs()
}

/// The events an aggregation view's states need for `range`: those in
/// `[end − widest window, end]`.
pub fn held_range(request: &ViewRequest, range: TimeRange) -> Result<TimeRange, OfflineError> {
    let end = range.end.ok_or_else(|| OfflineError::Internal(format!("aggregation states of `{}` need an end instant", request.view.name)))?;
    let widest = request.view.aggregations.iter().map(|a| a.window.micros().saturating_mul(1_000)).max().unwrap_or(0);
    Ok(TimeRange { start: Some(end.saturating_sub(widest)), end: Some(end) })
}

/// States for every entity with an event in `range`, from a history that
/// holds the events of [`held_range`].
fn states_of_history(request: &ViewRequest, history: &HistoryTable, range: TimeRange) -> Result<(ViewRows, usize), OfflineError> {
    let held = held_range(request, range)?;
    let (Some(held_from), Some(end)) = (held.start, held.end) else { return Err(OfflineError::Internal("a held range is bounded".into())) };
    let changed_from = range.start.map_or(held_from, |start| start.max(held_from));
    crate::window::states(request, &history.keys, &history.ts, &history.ts_valid, &history.features, &history_fields(request), changed_from, end)
}

/// The columns, by their names in the source, of the events an engine
/// hands back for an aggregation view: join keys, event time, created time
/// (when the source has one), then [`almanac_core::FeatureView::aggregation_inputs`].
pub fn event_columns(request: &ViewRequest) -> Vec<(String, DType)> {
    let source = &request.source;
    let mut columns: Vec<(String, DType)> = request.join_keys.iter().map(|(_, key)| (source.file_column(&key.name).to_string(), key.dtype.clone().unwrap_or(DType::Int64))).collect();
    columns.push((source.file_column(&source.timestamp_field).to_string(), DType::Timestamp));
    if let Some(created) = &source.created_timestamp_column {
        columns.push((source.file_column(created).to_string(), DType::Timestamp));
    }
    columns.extend(history_fields(request).into_iter().map(|field| (source.file_column(&field.name).to_string(), field.dtype)));
    columns
}

/// An engine's event columns (positional, in [`event_columns`]' order)
/// named as the source names them, for [`aggregates_from_events`] and
/// [`states_from_events`].
pub fn event_batch(request: &ViewRequest, columns: Vec<ArrayRef>) -> Result<RecordBatch, OfflineError> {
    let layout = event_columns(request);
    if layout.len() != columns.len() {
        return Err(OfflineError::Internal(format!("view `{}`: the engine returned {} event columns, the layout has {}", request.view.name, columns.len(), layout.len())));
    }
    let rows = columns.first().map_or(0, |c| c.len());
    let fields: Vec<ArrowField> = layout.iter().zip(&columns).map(|((name, _), column)| ArrowField::new(name, column.data_type().clone(), true)).collect();
    Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)))?)
}

/// An aggregation view's requested features for entity rows (`keys`, `at`
/// in ns, as [`crate::request::prepare`] gives them), from the events a
/// pushdown engine selected (`events`, laid out as [`event_columns`], in
/// source order): the engine narrows the history, the one evaluator
/// computes every window exactly as it does over files.
pub fn aggregates_from_events(request: &ViewRequest, events: Vec<RecordBatch>, keys: &[ArrayRef], at: &[Option<i64>]) -> Result<Vec<ArrayRef>, OfflineError> {
    aggregate_features(request, &HistoryTable::from_batches(request, events)?, keys, at)
}

/// What [`OfflineStore::aggregation_states`] returns, from the events of
/// [`held_range`] a pushdown engine selected (laid out as
/// [`event_columns`], in source order).
pub fn states_from_events(request: &ViewRequest, events: Vec<RecordBatch>, range: TimeRange) -> Result<(ViewRows, usize), OfflineError> {
    states_of_history(request, &HistoryTable::from_batches(request, events)?, range)
}

/// The requested aggregates of an aggregation view for these entity rows.
fn aggregate_features(request: &ViewRequest, history: &HistoryTable, keys: &[ArrayRef], at: &[Option<i64>]) -> Result<Vec<ArrayRef>, OfflineError> {
    let fields = history_fields(request);
    let aggregations = request
        .features
        .iter()
        .map(|f| request.view.aggregations.iter().find(|a| a.name == f.name).ok_or_else(|| OfflineError::Scan { source_name: request.source.name.clone(), reason: format!("`{}` is not an aggregation of view `{}`", f.name, request.view.name) }))
        .collect::<Result<Vec<_>, _>>()?;
    let events = crate::window::Events { keys: &history.keys, ts: &history.ts, ts_valid: &history.ts_valid };
    let column = |name: &str| fields.iter().position(|f| f.name == name).map(|i| &history.features[i]);
    let columns = crate::window::window_aggregates(&events, &Probes { keys, at }, &aggregations, column)?;
    columns.iter().zip(&request.features).map(|(c, f)| Ok(conform(c, &f.dtype)?)).collect()
}

/// Nanosecond instants (with `i64::MIN` or a false validity for nulls) as a
/// microsecond UTC timestamp column, Almanac's `timestamp` dtype.
fn micros_column(nanos: &[i64], valid: Option<&[bool]>) -> ArrayRef {
    let values = nanos.iter().enumerate().map(|(i, &n)| (valid.is_none_or(|v| v[i]) && n != i64::MIN).then(|| n.div_euclid(1_000)));
    Arc::new(arrow::array::TimestampMicrosecondArray::from_iter(values).with_timezone("UTC"))
}

/// The Arrow type keys are compared as: int64 or string.
pub(crate) fn key_type(key: &JoinKey) -> DataType {
    match key.dtype {
        Some(DType::String) => DataType::Utf8,
        _ => DataType::Int64,
    }
}

impl OfflineStore for EmbeddedOfflineStore {
    fn get_historical_features(&self, entities: &RecordBatch, views: &[ViewRequest], options: &HistoricalOptions) -> Result<RecordBatch, OfflineError> {
        let PreparedRequest { names, at_nanos: at, keys: view_keys } = prepare(entities, views, options)?;
        let (min_at, max_at) = (at.iter().flatten().min().copied(), at.iter().flatten().max().copied());
        // Views are independent: scan and join them concurrently (each join
        // is itself parallel; this overlaps one view's scan with another's work).
        // Only when their files together fit the memory budget, though:
        // large views are joined one after another to keep memory bounded.
        let files = views.iter().map(|v| self.source_files(v)).collect::<Result<Vec<_>, _>>()?;
        let join_one = |((request, keys), files): ((&ViewRequest, &Vec<ArrayRef>), &SourceFiles)| match (min_at, max_at) {
                (Some(min_at), Some(max_at)) => {
                    // How far back a row can see: the TTL, or an aggregation view's widest window.
                    let reach = match request.view.aggregations.iter().map(|a| a.window.micros()).max() {
                        Some(widest) => Some(widest),
                        None => request.view.ttl.filter(|t| !t.is_zero()).map(|t| t.micros()),
                    };
                    let range = TimeRange { start: reach.map(|r| min_at.saturating_sub(r.saturating_mul(1_000))), end: Some(max_at) };
                    self.join_view(request, files, keys, &at, range)
                }
                // No row has a timestamp (or there are no rows): nothing can match.
            _ => Ok(request.features.iter().map(|f| arrow::array::new_null_array(&f.dtype.to_arrow(), entities.num_rows())).collect()),
        };
        let per_view: Vec<Result<Vec<ArrayRef>, OfflineError>> = if self.files_fit_budget(&files) {
            views.par_iter().zip(view_keys.par_iter()).zip(files.par_iter()).map(join_one).collect()
        } else {
            views.iter().zip(view_keys.iter()).zip(files.iter()).map(join_one).collect()
        };
        assemble(entities, views, names, per_view.into_iter().collect::<Result<Vec<_>, _>>()?)
    }

    fn export(&self, request: &ViewRequest, range: TimeRange, latest: bool) -> Result<ViewRows, OfflineError> {
        let windowed = window_rows(request, &self.history(request, range)?, range)?;
        if latest { latest_rows(request, &windowed) } else { Ok(windowed) }
    }

    fn aggregation_states(&self, request: &ViewRequest, range: TimeRange) -> Result<(ViewRows, usize), OfflineError> {
        let held = held_range(request, range)?;
        states_of_history(request, &self.history(request, held)?, range)
    }

    fn latest_per_entity(&self, request: &ViewRequest, range: TimeRange) -> Result<(ViewRows, usize), OfflineError> {
        match self.load(request, &self.source_files(request)?, range)? {
            Loaded::InMemory(history) => latest_in_range(request, &history, range),
            Loaded::Spilled(spill) => {
                // Partitions split the keys, so each one's winners are final:
                // only one partition's history is in memory at a time.
                let (mut parts, mut scanned) = (Vec::new(), 0);
                for partition in 0..spill.partitions() {
                    let Some(batch) = spill.read(partition)? else { continue };
                    let (winners, rows) = latest_in_range(request, &HistoryTable::from_batches(request, vec![batch])?, range)?;
                    scanned += rows;
                    parts.push(winners.into_batch());
                }
                let schema = match parts.first() {
                    Some(part) => part.schema(),
                    None => window_rows(request, &HistoryTable::from_batches(request, Vec::new())?, range)?.batch().schema(),
                };
                Ok((ViewRows::from_batch(request, arrow::compute::concat_batches(&schema, &parts)?)?, scanned))
            }
        }
    }
}

/// A view's rows with event time in `range`, as exported: keys, event time,
/// created time (when the source has one), then every feature, cast to its
/// declared dtype.
fn window_rows(request: &ViewRequest, history: &HistoryTable, range: TimeRange) -> Result<ViewRows, OfflineError> {
    let in_range: BooleanArray = history.ts.iter().zip(&history.ts_valid).map(|(t, valid)| Some(*valid && range.start.is_none_or(|s| *t >= s) && range.end.is_none_or(|e| *t <= e))).collect();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for ((_, key), array) in request.join_keys.iter().zip(&history.keys) {
        fields.push(ArrowField::new(&key.name, array.data_type().clone(), true));
        columns.push(array.clone());
    }
    let timestamp = DType::Timestamp.to_arrow();
    fields.push(ArrowField::new(&request.source.timestamp_field, timestamp.clone(), true));
    columns.push(micros_column(&history.ts, Some(&history.ts_valid)));
    if let (Some(name), Some(created)) = (&request.source.created_timestamp_column, &history.created) {
        fields.push(ArrowField::new(name, timestamp.clone(), true));
        columns.push(micros_column(created, None));
    }
    for field in &request.view.schema {
        let array = &history.features[schema_index(request, field)?];
        let target = field.dtype.to_arrow();
        fields.push(ArrowField::new(&field.name, target.clone(), true));
        columns.push(conform(array, &field.dtype)?);
    }
    let all = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    if all.num_rows() == 0 {
        return ViewRows::from_batch(request, all);
    }
    ViewRows::from_batch(request, filter_record_batch(&all, &in_range)?)
}

/// The winning row per entity among history rows with event time in
/// `range` (the join's winner rule), laid out as `window_rows` lays rows
/// out, and how many rows the window held. Winners are picked on the
/// normalized history directly; only the winners' rows are materialized.
fn latest_in_range(request: &ViewRequest, history: &HistoryTable, range: TimeRange) -> Result<(ViewRows, usize), OfflineError> {
    let valid: Vec<bool> = history.ts.iter().zip(&history.ts_valid).map(|(t, valid)| *valid && range.start.is_none_or(|s| *t >= s) && range.end.is_none_or(|e| *t <= e)).collect();
    let scanned = valid.iter().filter(|v| **v).count();
    let in_range = History { keys: &history.keys, ts: &history.ts, created: history.created.as_deref(), ts_valid: Some(&valid), features: &history.features };
    let winners = asof::latest_per_key(&in_range)?;
    let rows: Vec<usize> = winners.values().iter().map(|&w| w as usize).collect();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for ((_, key), array) in request.join_keys.iter().zip(&history.keys) {
        fields.push(ArrowField::new(&key.name, array.data_type().clone(), true));
        columns.push(take(array.as_ref(), &winners, None)?);
    }
    let timestamp = DType::Timestamp.to_arrow();
    fields.push(ArrowField::new(&request.source.timestamp_field, timestamp.clone(), true));
    columns.push(micros_column(&rows.iter().map(|&r| history.ts[r]).collect::<Vec<_>>(), None));
    if let (Some(name), Some(created)) = (&request.source.created_timestamp_column, &history.created) {
        fields.push(ArrowField::new(name, timestamp.clone(), true));
        columns.push(micros_column(&rows.iter().map(|&r| created[r]).collect::<Vec<_>>(), None));
    }
    for field in &request.view.schema {
        let target = field.dtype.to_arrow();
        fields.push(ArrowField::new(&field.name, target.clone(), true));
        columns.push(conform(&take(history.features[schema_index(request, field)?].as_ref(), &winners, None)?, &field.dtype)?);
    }
    Ok((ViewRows::from_batch(request, RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)?, scanned))
}

/// The winning row per entity of `window_rows` output (same rule as the join).
fn latest_rows(request: &ViewRequest, windowed: &ViewRows) -> Result<ViewRows, OfflineError> {
    let micros_to_nanos = |column: &TimestampMicrosecondArray| -> Vec<i64> { column.iter().map(|t| t.map_or(i64::MIN, |t| t.saturating_mul(1_000))).collect() };
    let window_history = HistoryTable {
        keys: windowed.keys().to_vec(),
        ts: micros_to_nanos(windowed.event_time()),
        ts_valid: vec![true; windowed.num_rows()],
        created: windowed.created_time().map(micros_to_nanos),
        features: windowed.features().to_vec(),
    };
    let winners = asof::latest_per_key(&window_history.as_history())?;
    let batch = windowed.batch();
    let columns = batch.columns().iter().map(|c| take(c.as_ref(), &winners, None)).collect::<Result<Vec<_>, _>>()?;
    ViewRows::from_batch(request, RecordBatch::try_new(batch.schema(), columns)?)
}

/// Position of a requested feature in the view's schema. Requests are
/// built from the view by the facade; a feature that is not there is a bug
/// in the caller, reported as such rather than read from another column.
fn schema_index(request: &ViewRequest, field: &Field) -> Result<usize, OfflineError> {
    request.view.schema.iter().position(|f| f.name == field.name).ok_or_else(|| OfflineError::Internal(format!("feature `{}` is not in view `{}`'s schema", field.name, request.view.name)))
}

