//! Monitoring: staleness, null spikes and drift, per view and feature,
//! before the model notices.
//!
//! * **Staleness**: now minus the view's watermark, and now minus the newest
//!   event time held online (read from record headers, no decoding), against
//!   `max_staleness` (default: the view's TTL, past which every value would
//!   be served as `OUTSIDE_MAX_AGE`).
//! * **Null rate** of each feature in the current window against a reference,
//!   alerting above `max_null_rate`, or by default on a spike (at least 10
//!   points higher and at least twice the reference's rate).
//! * **Drift**: the population stability index, over the reference's decile
//!   bins for numbers and its top values plus "other" for categories, and the
//!   two-sample Kolmogorov–Smirnov statistic for numbers; PSI above
//!   `psi_alert` (default 0.2) alerts.
//!
//! The current sample is `(at - window, at]` of the offline history, or
//! (`Current::Online`) the values the online store serves, materialized or
//! pushed online only; the reference is the `reference_window` before it,
//! or a training-set file. An aggregation view's rows are its features at
//! each event of those windows (a training set over the events themselves:
//! what a model scoring every event saw), sampled evenly beyond 200,000.
//!
//! This module owns the request and report types and the orchestration
//! (what to read, which thresholds apply); the statistics are pure functions
//! in `drift.rs`, and rendering the report (HTML, tables) is the CLI's job.

mod drift;

use std::path::PathBuf;

use almanac_core::{DType, FeatureView};
use almanac_offline::TimeRange;
use almanac_online::RecordHeader;
use arrow::array::{Array, ArrayRef, RecordBatch};
use serde::Serialize;

pub use drift::{Histogram, ks_statistic};
use drift::{Sample, categorical_histogram, column_sample, numeric_histogram, psi, rate};

use crate::error::Error;
use crate::store::FeatureStore;

const DEFAULT_PSI_ALERT: f64 = 0.2;
/// Fewer rows than this on either side: drift is not judged (too noisy).
const MIN_ROWS: usize = 50;

#[derive(Debug, Clone)]
pub enum Reference {
    /// The offline history in the window of this length before the current one.
    Window { micros: i64 },
    /// A training set (Parquet or CSV) with the features as columns.
    File(PathBuf),
}

/// What the current window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Current {
    /// Offline history in `(at - window, at]` (includes offline pushes).
    Offline,
    /// The values the online store serves now: every record of the view,
    /// whether materialized or pushed online only.
    Online,
}

#[derive(Debug, Clone)]
pub struct MonitorRequest {
    pub views: Option<Vec<String>>,
    pub at_micros: i64,
    pub window_micros: i64,
    pub reference: Reference,
    pub current: Current,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureMonitor {
    pub feature: String,
    pub dtype: String,
    pub null_rate_reference: Option<f64>,
    pub null_rate_current: Option<f64>,
    pub psi: Option<f64>,
    pub ks: Option<f64>,
    pub histogram: Option<Histogram>,
    pub alerts: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ViewMonitor {
    pub view: String,
    pub watermark: Option<String>,
    pub staleness_watermark_seconds: Option<f64>,
    pub newest_online: Option<String>,
    pub staleness_online_seconds: Option<f64>,
    pub max_staleness_seconds: Option<f64>,
    /// For a view fed by a stream source: how fresh its ingestion is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamFreshness>,
    pub reference_rows: usize,
    pub current_rows: usize,
    pub alerts: Vec<String>,
    pub features: Vec<FeatureMonitor>,
}

/// A stream source's freshness: the newest event ingested and the last
/// micro-batch written (`None`: never ingested in this repo).
#[derive(Debug, Clone, Serialize)]
pub struct StreamFreshness {
    pub source: String,
    pub newest_event: Option<String>,
    pub newest_event_age_seconds: Option<f64>,
    pub last_batch: Option<String>,
    pub last_batch_age_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonitorReport {
    pub at: String,
    pub current_window: String,
    pub reference: String,
    pub views: Vec<ViewMonitor>,
}

impl MonitorReport {
    pub fn alerts(&self) -> usize {
        self.views.iter().map(|v| v.alerts.len() + v.features.iter().map(|f| f.alerts.len()).sum::<usize>()).sum()
    }
}

/// One feature's null rates, histogram, PSI and KS against the reference,
/// with the alerts the view's monitoring settings raise.
fn compare(view: &FeatureView, name: &str, dtype: &DType, reference: Option<&ArrayRef>, current: Option<&ArrayRef>) -> FeatureMonitor {
    let mut out = FeatureMonitor { feature: name.to_string(), dtype: dtype.to_string(), null_rate_reference: None, null_rate_current: None, psi: None, ks: None, histogram: None, alerts: Vec::new() };
    let (Some(reference), Some(current)) = (reference, current) else { return out };
    let (ref_sample, ref_nulls) = column_sample(reference);
    let (cur_sample, cur_nulls) = column_sample(current);
    out.null_rate_reference = rate(ref_nulls, reference.len());
    out.null_rate_current = rate(cur_nulls, current.len());
    if let (Some(now), Some(before)) = (out.null_rate_current, out.null_rate_reference) {
        match view.monitoring.max_null_rate {
            Some(limit) if now > limit => out.alerts.push(format!("null rate {:.1}% is above max_null_rate {:.1}%", now * 100.0, limit * 100.0)),
            None if now >= before + 0.10 && now >= 2.0 * before => out.alerts.push(format!("null spike: {:.1}% of values are null, against {:.1}% in the reference", now * 100.0, before * 100.0)),
            _ => {}
        }
    }
    let histogram = match (&ref_sample, &cur_sample) {
        (Sample::Numbers(r), Sample::Numbers(c)) if !r.is_empty() && !c.is_empty() => {
            if r.len() >= MIN_ROWS && c.len() >= MIN_ROWS {
                out.ks = Some(ks_statistic(r, c));
            }
            Some(numeric_histogram(r, c))
        }
        (Sample::Categories(r), Sample::Categories(c)) if !r.is_empty() && !c.is_empty() => Some(categorical_histogram(r, c)),
        _ => None,
    };
    let enough = |s: &Sample| s.len() >= MIN_ROWS;
    if let Some(histogram) = &histogram
        && enough(&ref_sample) && enough(&cur_sample) {
            let value = psi(&histogram.reference, &histogram.current);
            out.psi = Some(value);
            let limit = view.monitoring.psi_alert.unwrap_or(DEFAULT_PSI_ALERT);
            if value > limit {
                out.alerts.push(format!("drift: PSI {value:.3} is above {limit}"));
            }
        }
    out.histogram = histogram;
    out
}

impl FeatureStore {
    pub fn monitor(&self, request: &MonitorRequest) -> Result<MonitorReport, Error> {
        let state = self.fresh_applied_state()?;
        let is_aggregation = |name: &str| state.definitions.feature_view(name).is_some_and(FeatureView::is_aggregation);
        let names: Vec<String> = match &request.views {
            Some(v) => v.clone(),
            // What an aggregation view serves exists at the request instant
            // only: the online sample leaves them out (the offline one
            // computes them at each event).
            None => state.definitions.feature_views.iter().filter(|v| request.current == Current::Offline || !v.is_aggregation()).map(|v| v.name.clone()).collect(),
        };
        if request.current == Current::Online
            && let Some(view) = names.iter().find(|n| is_aggregation(n))
        {
            return Err(Error::BadRequest(format!("`{view}` is an aggregation view: what it serves exists only at the request instant, so `--current online` cannot sample it; monitor it with the offline sample (its features at each event)")));
        }
        let at = request.at_micros;
        let cut = at - request.window_micros;
        let training = match &request.reference {
            Reference::File(path) => {
                let (schema, batches) = almanac_offline::io::read_table(path)?;
                Some(arrow::compute::concat_batches(&schema, &batches).map_err(|e| Error::BadRequest(format!("{}: {e}", path.display())))?)
            }
            Reference::Window { .. } => None,
        };
        let mut views = Vec::with_capacity(names.len());
        for name in &names {
            let mut view_request = crate::resolve::view_request(&state.definitions, name)?;
            view_request.features = view_request.view.schema.clone();
            let view = view_request.view.clone();
            // With online values as the current sample, the reference window
            // ends at `at` (there is no offline "current" part to cut off).
            let cut = if request.current == Current::Online { at } else { cut };
            let start = match request.reference {
                Reference::Window { micros } => cut - micros,
                Reference::File(_) => cut,
            };
            let range = TimeRange { start: Some(start.saturating_mul(1_000)), end: Some(at.saturating_mul(1_000)) };
            let (rows, event_times) = if view.is_aggregation() {
                self.aggregation_sample(&view_request, range)?
            } else {
                let exported = self.offline()?.export(&view_request, range, false)?;
                let times: Vec<Option<i64>> = exported.event_time().iter().collect();
                (exported.into_batch(), times)
            };
            let current_mask: arrow::array::BooleanArray = event_times.iter().map(|t| Some(t.is_some_and(|t| t > cut))).collect();
            // The view's online records, read once: for staleness, and as the
            // current sample when monitoring what is served.
            let records = if view.online { self.online_store()?.scan(&view.name, None)? } else { Vec::new() };
            let current = match request.current {
                Current::Offline => arrow::compute::filter_record_batch(&rows, &current_mask)?,
                Current::Online => served_values(&view, &records)?,
            };
            let reference: RecordBatch = match &training {
                Some(batch) => batch.clone(),
                None => arrow::compute::filter_record_batch(&rows, &arrow::compute::not(&current_mask)?)?,
            };
            let mut monitor = staleness(&state, &view, &records, at);
            monitor.stream = state.definitions.source(&view.source).filter(|s| s.stream.is_some()).map(|source| {
                let status = crate::stream_status::StreamStatus::read(self.root(), &source.name);
                let newest = status.as_ref().and_then(|s| s.newest_event_micros);
                let batch = status.as_ref().map(|s| s.last_batch_micros);
                StreamFreshness {
                    source: source.name.clone(),
                    newest_event: newest.map(almanac_core::time::rfc3339_micros),
                    newest_event_age_seconds: newest.map(|n| (at - n) as f64 / 1e6),
                    last_batch: batch.map(almanac_core::time::rfc3339_micros),
                    last_batch_age_seconds: batch.map(|b| (at - b) as f64 / 1e6),
                }
            });
            monitor.reference_rows = reference.num_rows();
            monitor.current_rows = current.num_rows();
            if monitor.reference_rows == 0 && monitor.current_rows == 0 {
                // Silence here would read as "all is well" on an empty source.
                monitor.alerts.push("no rows in the reference or the current window: nothing could be compared (is the source empty, or are the windows outside its data?)".into());
            }
            for field in &view.schema {
                let full = format!("{}__{}", view.name, field.name);
                let ref_column = reference.column_by_name(&field.name).or_else(|| reference.column_by_name(&full));
                monitor.features.push(compare(&view, &field.name, &field.dtype, ref_column, current.column_by_name(&field.name)));
            }
            views.push(monitor);
        }
        let days = |micros: i64| almanac_core::Duration::from_seconds((micros) / 1_000_000).to_string();
        Ok(MonitorReport {
            at: almanac_core::time::rfc3339_micros(at),
            current_window: match request.current {
                Current::Offline => format!("the {} before {}", days(request.window_micros), almanac_core::time::rfc3339_micros(at)),
                Current::Online => "the values the online store serves".to_string(),
            },
            reference: match &request.reference {
                Reference::Window { micros } if request.current == Current::Online => format!("the offline history of the {} before {}", days(*micros), almanac_core::time::rfc3339_micros(at)),
                Reference::Window { micros } => format!("the {} before that", days(*micros)),
                Reference::File(path) => format!("training set {}", path.display()),
            },
            views,
        })
    }

}

/// At most this many events of an aggregation view are sampled per run
/// (every k-th event in time order beyond it): each costs a training-set row.
const MAX_AGGREGATION_SAMPLE: usize = 200_000;

impl FeatureStore {
    /// An aggregation view's features as a model scoring every event in
    /// `range` saw them: a training set whose entity rows are the events
    /// themselves (keys, event time), so each gets its aggregates over
    /// `[T − w, T)`, its own event excluded. Returns the rows and each
    /// row's event time (µs). Events near the start of the source's history
    /// see partial windows, as they did when they happened.
    fn aggregation_sample(&self, view_request: &almanac_offline::ViewRequest, range: TimeRange) -> Result<(RecordBatch, Vec<Option<i64>>), Error> {
        let view = &view_request.view;
        let mut events_request = view_request.clone();
        events_request.view.aggregations.clear();
        events_request.view.schema.clear();
        events_request.features.clear();
        let events = self.offline()?.export(&events_request, range, false)?;
        let stride = events.num_rows().div_ceil(MAX_AGGREGATION_SAMPLE).max(1);
        let picked = arrow::array::UInt32Array::from_iter_values((0..events.num_rows()).step_by(stride).filter_map(|i| u32::try_from(i).ok()));
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for ((_, key), column) in view_request.join_keys.iter().zip(events.keys()) {
            fields.push(arrow::datatypes::Field::new(&key.name, column.data_type().clone(), true));
            columns.push(arrow::compute::take(column.as_ref(), &picked, None)?);
        }
        let times = arrow::compute::take(events.event_time(), &picked, None)?;
        let event_times: Vec<Option<i64>> = times.as_any().downcast_ref::<arrow::array::TimestampMicrosecondArray>().map(|t| t.iter().collect()).unwrap_or_default();
        const AT_COLUMN: &str = "__monitored_at";
        fields.push(arrow::datatypes::Field::new(AT_COLUMN, times.data_type().clone(), true));
        columns.push(times);
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(picked.len()));
        let entities = RecordBatch::try_new_with_options(std::sync::Arc::new(arrow::datatypes::Schema::new(fields)), columns, &options)?;
        let selection = crate::resolve::FeatureSelection::Refs(view.schema.iter().map(|f| almanac_core::FeatureRef::new(&view.name, &f.name)).collect());
        let options = almanac_offline::HistoricalOptions { timestamp_column: AT_COLUMN.to_string(), full_feature_names: false };
        Ok((self.get_historical_features(&entities, &selection, &options)?, event_times))
    }
}

/// A view's online records, decoded, as one column per feature.
fn served_values(view: &FeatureView, records: &[almanac_online::Entry]) -> Result<RecordBatch, Error> {
    let codec = almanac_online::RecordCodec::new(&view.schema);
    let mut columns: Vec<Vec<almanac_core::Value>> = vec![Vec::with_capacity(records.len()); view.schema.len()];
    for entry in records {
        let decoded = codec.decode(&entry.record).map_err(|error| Error::OnlineRecord { view: view.name.clone(), error })?;
        for (column, value) in columns.iter_mut().zip(decoded.values) {
            column.push(value);
        }
    }
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for (field, values) in view.schema.iter().zip(columns) {
        // List, struct, map and JSON features have no histogram; they are
        // left out of the sample.
        if matches!(field.dtype, DType::List(_) | DType::Struct(_) | DType::Map(_) | DType::Json) {
            continue;
        }
        let array = almanac_core::convert::to_array(&field.name, &values, &field.dtype).map_err(|e| Error::Internal(format!("decoded values of `{}` do not fit their dtype: {e}", view.name)))?;
        fields.push(arrow::datatypes::Field::new(&field.name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
    if arrays.is_empty() {
        return Ok(RecordBatch::new_empty(schema));
    }
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// Staleness of a view from its watermark and its online records' headers.
fn staleness(state: &almanac_registry::RegistryState, view: &FeatureView, records: &[almanac_online::Entry], at: i64) -> ViewMonitor {
    let watermark = state.watermarks.get(&view.name).map(|w| w.timestamp_micros());
    let newest = records.iter().filter_map(|e| RecordHeader::parse(&e.record)).map(|h| h.event_ts).max();
    let limit = view.monitoring.max_staleness.or(view.ttl).filter(|d| !d.is_zero()).map(|d| d.micros());
    let seconds = |micros: i64| micros as f64 / 1e6;
    let mut alerts = Vec::new();
    if view.online {
        match (newest, limit) {
            (None, _) => alerts.push("nothing is materialized online for this view".to_string()),
            (Some(newest), Some(limit)) if at - newest > limit => {
                alerts.push(format!("stale: the newest online value is {} old, over the limit of {}", almanac_core::Duration::from_seconds((at - newest) / 1_000_000), almanac_core::Duration::from_seconds((limit) / 1_000_000)));
            }
            _ => {}
        }
    }
    ViewMonitor {
        view: view.name.clone(),
        watermark: watermark.map(almanac_core::time::rfc3339_micros),
        staleness_watermark_seconds: watermark.map(|w| seconds(at - w)),
        newest_online: newest.map(almanac_core::time::rfc3339_micros),
        staleness_online_seconds: newest.map(|n| seconds(at - n)),
        max_staleness_seconds: limit.map(seconds),
        stream: None,
        reference_rows: 0,
        current_rows: 0,
        alerts,
        features: Vec::new(),
    }
}
