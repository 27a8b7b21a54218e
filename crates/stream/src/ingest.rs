//! One stream source's ingestion (DESIGN §10): decode and check each
//! event, drop duplicates and set aside late and malformed ones, then
//! write the micro-batch to the offline history and the online store
//! through the facade's push (the one computation both stores share),
//! and only then let the caller acknowledge it to the broker.
//!
//! Crash safety. Batches are written one at a time, each one's Parquet
//! file atomically before anything goes online, so only the newest file
//! can lack its online writes. At start the online store is recomputed
//! from the history for that file's time range (idempotent, unlike merging
//! its events again; no marker file, so no extra fsync per batch). The ids
//! and the newest event time are rebuilt from the stream's files, so the
//! broker's replay of the unacknowledged batch is recognized as duplicates.
//! Whatever instant a process dies at, a restart loses nothing and counts
//! nothing twice.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use almanac::FeatureStore;
use almanac::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use almanac::arrow::datatypes::{Field as ArrowField, Schema, TimestampMicrosecondType};
use almanac::core::convert::{coerce_owned, to_array, value_at};
use almanac::core::time::rfc3339_micros;
use almanac::core::{DType, Source, Stream, Value};
use almanac::push::{ColumnRole, PushColumn};

use crate::broker::Delivery;
use crate::error::StreamError;
use crate::metrics::SourceMetrics;
use crate::seen::{Seen, id_hash};

/// What one micro-batch did.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct BatchCounts {
    pub received: u64,
    pub ingested: u64,
    pub duplicates: u64,
    pub late: u64,
    pub rejected: u64,
}

impl std::ops::AddAssign for BatchCounts {
    fn add_assign(&mut self, other: BatchCounts) {
        self.received += other.received;
        self.ingested += other.ingested;
        self.duplicates += other.duplicates;
        self.late += other.late;
        self.rejected += other.rejected;
    }
}

/// A decoded, checked event: one value per column, its id and event time.
pub struct Event {
    values: Vec<Value>,
    id: u128,
    at: i64,
}

/// How a source's events are decoded and checked: its columns (the batch
/// source's), which are the id and the event time, the plausible range.
pub struct Decoder {
    columns: Vec<PushColumn>,
    index: HashMap<String, usize>,
    id_column: usize,
    time_column: usize,
    event_id_field: String,
    batch_source: String,
    range: almanac::core::TimestampRange,
}

impl Decoder {
    /// The event's columns checked against the batch source's: a JSON
    /// object, no unknown fields, keys and event time present, each value
    /// of its column's dtype, times in the plausible range. The error is
    /// the reason written beside the event in `.almanac/rejected/`.
    pub fn decode(&self, payload: &[u8]) -> Result<Event, String> {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(payload).map_err(|e| format!("not a JSON object: {e}"))?;
        let mut values = vec![Value::Null; self.columns.len()];
        for (name, json) in object {
            let Some(&i) = self.index.get(&name) else {
                let help = almanac::core::suggest::closest(&name, self.columns.iter().map(|c| c.name.as_str())).map(|b| format!(" (did you mean `{b}`?)")).unwrap_or_default();
                return Err(format!("field `{name}` is not a column of batch source `{}`{help}", self.batch_source));
            };
            let column = &self.columns[i];
            values[i] = coerce_owned(Value::from_json_owned(json), &column.dtype).map_err(|why| format!("field `{name}` ({}): {why}", column.dtype))?;
        }
        for (column, value) in self.columns.iter().zip(&values) {
            let required = column.role == ColumnRole::Key || column.role == ColumnRole::EventTime || column.name == self.event_id_field;
            if value.is_null() && required {
                return Err(format!("field `{}` ({}) is required and missing or null", column.name, column.dtype));
            }
            if let Value::Timestamp(micros) = value
                && matches!(column.role, ColumnRole::EventTime | ColumnRole::CreatedTime)
                && let Some(why) = self.range.refusal(*micros)
            {
                return Err(format!("field `{}`: {why}", column.name));
            }
        }
        let Value::Timestamp(at) = values[self.time_column] else { return Err("the event time is not a timestamp".into()) };
        let id = id_hash(&values[self.id_column]);
        Ok(Event { values, id, at })
    }
}

/// A batch whose file is (or may be) written and whose online writes are
/// not known to be complete: its event-time range (µs).
#[derive(Debug, Clone, Copy)]
struct Unfinished {
    from_micros: i64,
    end_micros: i64,
}

/// A stream source being ingested.
pub struct SourceIngest {
    store: Arc<FeatureStore>,
    source: Source,
    stream: Stream,
    decoder: Arc<Decoder>,
    seen: Seen,
    /// The newest event time ingested (µs), over all keys, in stream order.
    newest: Option<i64>,
    /// How far back ids are remembered: lateness plus the widest window.
    horizon: i64,
    folder: PathBuf,
    /// The last batch file's stamp, so names sort in ingestion order even
    /// if the clock steps back.
    last_stamp: i64,
    /// Events ingested by this process (for the status file).
    ingested: u64,
    /// The batch whose online writes must be (re)done before the next.
    unfinished: Option<Unfinished>,
    metrics: Arc<SourceMetrics>,
}

impl SourceIngest {
    /// Open stream source `name`: check its definition against the batch
    /// source's columns, finish a batch a crash interrupted, and rebuild
    /// the ids and the newest event time from the stream's files.
    pub fn open(store: Arc<FeatureStore>, name: &str, metrics: Arc<SourceMetrics>) -> Result<SourceIngest, StreamError> {
        let state = store.serving_state()?;
        let source = state.definitions.source(name).cloned().ok_or_else(|| StreamError::NotAStream(name.to_string()))?;
        let stream = source.stream.clone().ok_or_else(|| StreamError::NotAStream(name.to_string()))?;
        let columns = store.push_columns_with_extras(name)?;
        let index: HashMap<String, usize> = columns.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        let definition = |reason: String| StreamError::Definition { source_name: name.to_string(), reason };
        let id_column = *index.get(&stream.event_id_field).ok_or_else(|| {
            definition(format!(
                "`event_id_field: {}` is not a column of batch source `{}` (columns: {}); the id must be stored with each event so duplicates are known after a restart",
                stream.event_id_field,
                source.batch_source.as_deref().unwrap_or_default(),
                columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let time_column = columns.iter().position(|c| c.role == ColumnRole::EventTime).ok_or_else(|| definition("no event-time column".into()))?;
        let widest = state.definitions.feature_views.iter().filter(|v| v.source == name).filter_map(|v| v.largest_window()).max().map_or(0, |w| w.micros());
        let horizon = stream.allowed_lateness.micros().saturating_add(widest);
        let folder = store.root().join(&source.path);
        if !folder.is_dir() {
            return Err(definition(format!("its batch source's path `{}` is not a folder; ingested events are appended to it as Parquet files", source.path)));
        }
        let state_dir = almanac::stream_status::state_dir(store.root(), name);
        std::fs::create_dir_all(&state_dir).map_err(|error| StreamError::Io { path: state_dir.clone(), error })?;
        let decoder = Arc::new(Decoder {
            columns,
            index,
            id_column,
            time_column,
            event_id_field: stream.event_id_field.clone(),
            batch_source: source.batch_source.clone().unwrap_or_default(),
            range: store.config().timestamp_range,
        });
        let mut ingest = SourceIngest { store, source, stream, decoder, seen: Seen::default(), newest: None, horizon, folder, last_stamp: 0, ingested: 0, unfinished: None, metrics };
        ingest.load_history()?;
        ingest.finish_unfinished_batch()?;
        Ok(ingest)
    }

    /// What decodes this source's events; it may run on another thread
    /// (the ingest loop decodes the next batch while this one is written).
    pub fn decoder(&self) -> Arc<Decoder> {
        self.decoder.clone()
    }

    /// The newest event time ingested (µs).
    pub fn newest(&self) -> Option<i64> {
        self.newest
    }

    fn file_prefix(&self) -> String {
        format!("stream-{}-", self.source.name)
    }

    /// The stream's own files in the batch source's folder, oldest first.
    fn stream_files(&self) -> Result<Vec<PathBuf>, StreamError> {
        let prefix = self.file_prefix();
        let entries = std::fs::read_dir(&self.folder).map_err(|error| StreamError::Io { path: self.folder.clone(), error })?;
        let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".parquet"))).collect();
        files.sort();
        Ok(files)
    }

    /// Ids and the newest event time from the stream's files, newest file
    /// first, reading back only as far as the horizon needs: every event of
    /// file `k` was not late, so everything in the files before it is at
    /// most `min time of k + lateness`; once that falls below `newest −
    /// horizon`, the older files hold nothing dedupe still needs (a stream
    /// months old restarts by reading its last few files, not all).
    fn load_history(&mut self) -> Result<(), StreamError> {
        let id_name = self.source.file_column(&self.stream.event_id_field).to_string();
        let time_name = self.source.file_column(&self.source.timestamp_field).to_string();
        let lateness = self.stream.allowed_lateness.micros();
        let mut events: Vec<(u128, i64)> = Vec::new();
        let mut newest: Option<i64> = None;
        let files = self.stream_files()?;
        if let Some(stamp) = files.last().and_then(|f| f.file_name()).and_then(|n| n.to_str()).and_then(|n| n.strip_prefix(&self.file_prefix())).and_then(|rest| rest.split(['-', '.']).next()).and_then(|s| s.parse::<i64>().ok()) {
            self.last_stamp = stamp;
        }
        for (index, file) in files.iter().rev().enumerate() {
            let mut oldest_in_file: Option<i64> = None;
            for batch in read_columns(file, &[&id_name, &time_name])? {
                let times = almanac::core::convert::conform(batch.column(1), &DType::Timestamp).map_err(|e| StreamError::History { path: file.clone(), reason: e.to_string() })?;
                let times = times.as_primitive::<TimestampMicrosecondType>();
                for row in 0..batch.num_rows() {
                    if times.is_null(row) {
                        continue;
                    }
                    let at = times.value(row);
                    oldest_in_file = Some(oldest_in_file.map_or(at, |o| o.min(at)));
                    newest = Some(newest.map_or(at, |n| n.max(at)));
                    events.push((id_hash(&value_at(batch.column(0).as_ref(), row)), at));
                }
            }
            if index == 0
                && let (Some(from), Some(end)) = (oldest_in_file, newest)
            {
                // Only the newest batch can lack its online writes.
                self.unfinished = Some(Unfinished { from_micros: from, end_micros: end });
            }
            if let (Some(oldest), Some(newest)) = (oldest_in_file, newest)
                && oldest.saturating_add(lateness) < newest.saturating_sub(self.horizon)
            {
                break;
            }
        }
        self.newest = newest;
        let from = newest.map_or(i64::MIN, |n| n.saturating_sub(self.horizon));
        for (id, at) in events.into_iter().filter(|(_, at)| *at >= from) {
            self.seen.insert(id, at);
        }
        if let Some(newest) = newest {
            self.metrics.newest_event.set(newest as f64 / 1e6);
        }
        Ok(())
    }

    /// Recompute the online store for the unfinished batch's range from
    /// the history: after a restart (the newest file's range), or after a
    /// commit of this process failed part-way (a store went away).
    fn finish_unfinished_batch(&mut self) -> Result<(), StreamError> {
        let Some(batch) = self.unfinished else { return Ok(()) };
        let stats = self.store.restore_online(&self.source.name, batch.from_micros, batch.end_micros)?;
        tracing::debug!(source = %self.source.name, written = stats.written, "online store recomputed for the newest batch");
        self.unfinished = None;
        Ok(())
    }

    /// Decode, filter and write one micro-batch (deliveries in stream
    /// order). When this returns `Ok`, every delivery is in both stores,
    /// or set aside as late or rejected, or a duplicate: the caller may ack.
    pub fn process(&mut self, deliveries: &[Delivery], decoded: Vec<Result<Event, String>>) -> Result<BatchCounts, StreamError> {
        if self.unfinished.is_some() {
            // A commit of this process failed part-way (a store went away):
            // take the history as it is now (the file may or may not have
            // been written), then finish the batch.
            self.seen = Seen::default();
            self.load_history()?;
            self.finish_unfinished_batch()?;
        }
        let stage = std::time::Instant::now();
        let mut counts = BatchCounts { received: deliveries.len() as u64, ..Default::default() };
        let mut accepted: Vec<Event> = Vec::new();
        let mut in_batch: std::collections::HashSet<u128> = std::collections::HashSet::new();
        let mut late: Vec<String> = Vec::new();
        let mut rejected: Vec<String> = Vec::new();
        let lateness = self.stream.allowed_lateness.micros();
        let mut newest = self.newest;
        for (delivery, event) in deliveries.iter().zip(decoded) {
            let event = match event {
                Ok(event) => event,
                Err(reason) => {
                    rejected.push(side_line(&reason, &delivery.payload));
                    continue;
                }
            };
            if self.seen.contains(event.id) || !in_batch.insert(event.id) {
                counts.duplicates += 1;
                continue;
            }
            if let Some(newest) = newest
                && event.at < newest.saturating_sub(lateness)
            {
                let reason = format!("late: event time {} is more than {} before the newest event time seen, {}", rfc3339_micros(event.at), self.stream.allowed_lateness, rfc3339_micros(newest));
                late.push(side_line(&reason, &delivery.payload));
                in_batch.remove(&event.id);
                continue;
            }
            newest = Some(newest.map_or(event.at, |n| n.max(event.at)));
            accepted.push(event);
        }
        counts.late = late.len() as u64;
        counts.rejected = rejected.len() as u64;
        counts.ingested = accepted.len() as u64;
        almanac::offline::report_stage("stream: decode and filter", stage);
        if !accepted.is_empty() {
            let ids: Vec<(u128, i64)> = accepted.iter().map(|e| (e.id, e.at)).collect();
            self.commit(accepted, newest.unwrap_or(i64::MIN))?;
            for (id, at) in ids {
                self.seen.insert(id, at);
            }
            self.newest = newest;
            if let Some(newest) = newest {
                self.seen.prune(newest.saturating_sub(self.horizon));
                self.metrics.newest_event.set(newest as f64 / 1e6);
            }
            self.ingested += counts.ingested;
            let status = almanac::stream_status::StreamStatus { newest_event_micros: self.newest, last_batch_micros: chrono::Utc::now().timestamp_micros(), ingested: self.ingested };
            status.write(self.store.root(), &self.source.name);
        }
        self.set_aside("late", &late)?;
        self.set_aside("rejected", &rejected)?;
        self.metrics.count(&counts);
        let now = chrono::Utc::now().timestamp_micros();
        for delivery in deliveries {
            if let Some(published) = delivery.published_micros {
                self.metrics.servable_latency.observe((now - published).max(0) as f64 / 1e6);
            }
        }
        Ok(counts)
    }

    /// Write the accepted events to both stores: the file, then the online
    /// writes (the facade's push does both, in that order).
    fn commit(&mut self, events: Vec<Event>, newest: i64) -> Result<(), StreamError> {
        let from = events.iter().map(|e| e.at).min().unwrap_or(newest);
        let stage = std::time::Instant::now();
        let batch = self.batch_of(events)?;
        almanac::offline::report_stage("stream: to Arrow", stage);
        let stamp = chrono::Utc::now().timestamp_micros().max(self.last_stamp + 1);
        self.last_stamp = stamp;
        let file = format!("{}{stamp:020}.parquet", self.file_prefix());
        self.unfinished = Some(Unfinished { from_micros: from, end_micros: newest });
        self.store.push_named(&self.source.name, &batch, &file)?;
        self.unfinished = None;
        Ok(())
    }

    /// The events as one batch of the source's columns (values moved, not copied).
    fn batch_of(&self, events: Vec<Event>) -> Result<RecordBatch, StreamError> {
        let mut fields = Vec::with_capacity(self.decoder.columns.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.decoder.columns.len());
        let mut columns: Vec<Vec<Value>> = (0..self.decoder.columns.len()).map(|_| Vec::with_capacity(events.len())).collect();
        for event in events {
            for (column, value) in columns.iter_mut().zip(event.values) {
                column.push(value);
            }
        }
        for (column, values) in self.decoder.columns.iter().zip(columns) {
            let array = to_array(&column.name, &values, &column.dtype).map_err(|e| StreamError::Definition { source_name: self.source.name.clone(), reason: e.to_string() })?;
            fields.push(ArrowField::new(&column.name, array.data_type().clone(), true));
            arrays.push(array);
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| StreamError::Definition { source_name: self.source.name.clone(), reason: e.to_string() })
    }

    /// Append lines to `.almanac/<kind>/<source>.jsonl`, synced before the
    /// batch is acknowledged.
    fn set_aside(&self, kind: &str, lines: &[String]) -> Result<(), StreamError> {
        if lines.is_empty() {
            return Ok(());
        }
        let dir = self.store.root().join(".almanac").join(kind);
        let path = dir.join(format!("{}.jsonl", self.source.name));
        let io = |error| StreamError::Io { path: path.clone(), error };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(io)?;
        let mut text = lines.join("\n");
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)
    }
}

/// One line of `.almanac/late/` or `.almanac/rejected/`: when, why, and the
/// event as received (text when it is UTF-8).
fn side_line(reason: &str, payload: &[u8]) -> String {
    let event = match std::str::from_utf8(payload) {
        Ok(text) => serde_json::Value::String(text.to_string()),
        Err(_) => serde_json::Value::String(format!("<{} bytes, not UTF-8>", payload.len())),
    };
    serde_json::json!({"at": rfc3339_micros(chrono::Utc::now().timestamp_micros()), "reason": reason, "event": event}).to_string()
}

/// The named columns of a Parquet file, in the order asked.
fn read_columns(path: &Path, names: &[&str]) -> Result<Vec<RecordBatch>, StreamError> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let history = |reason: String| StreamError::History { path: path.to_path_buf(), reason };
    let file = std::fs::File::open(path).map_err(|error| StreamError::Io { path: path.to_path_buf(), error })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| history(e.to_string()))?;
    let schema = builder.schema().clone();
    let mut indices = Vec::new();
    for name in names {
        indices.push(schema.index_of(name).map_err(|_| history(format!("no column `{name}`")))?);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices.clone());
    let reader = builder.with_projection(mask).build().map_err(|e| history(e.to_string()))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| history(e.to_string()))?;
        // The projection keeps file order; put the columns in the order asked.
        let mut sorted: Vec<usize> = indices.clone();
        sorted.sort_unstable();
        let order: Vec<usize> = indices.iter().filter_map(|i| sorted.iter().position(|s| s == i)).collect();
        out.push(batch.project(&order).map_err(|e| history(e.to_string()))?);
    }
    Ok(out)
}
