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
//! or a training-set file.

use std::collections::HashMap;
use std::path::PathBuf;

use almanac_core::{DType, FeatureView};
use almanac_offline::{OfflineStore, TimeRange};
use almanac_online::RecordHeader;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use serde::Serialize;

use crate::error::Error;
use crate::store::FeatureStore;

const DEFAULT_PSI_ALERT: f64 = 0.2;
/// Fewer rows than this on either side: drift is not judged (too noisy).
const MIN_ROWS: usize = 50;
const BINS: usize = 10;

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
pub struct Histogram {
    pub labels: Vec<String>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
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
    pub reference_rows: usize,
    pub current_rows: usize,
    pub alerts: Vec<String>,
    pub features: Vec<FeatureMonitor>,
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

/// One feature's values as numbers or as category labels.
enum Sample {
    Numbers(Vec<f64>),
    Categories(Vec<String>),
}

fn column_sample(column: &ArrayRef) -> (Sample, usize) {
    let nulls = column.null_count();
    let numbers = |values: Vec<f64>| (Sample::Numbers(values), nulls);
    match column.data_type() {
        DataType::Int64 => numbers(column.as_primitive::<Int64Type>().iter().flatten().map(|v| v as f64).collect()),
        DataType::Int32 => numbers(column.as_primitive::<Int32Type>().iter().flatten().map(f64::from).collect()),
        DataType::Float64 => numbers(column.as_primitive::<Float64Type>().iter().flatten().filter(|v| v.is_finite()).collect()),
        DataType::Float32 => numbers(column.as_primitive::<Float32Type>().iter().flatten().filter(|v| v.is_finite()).map(f64::from).collect()),
        DataType::Timestamp(_, _) => numbers(column.as_primitive::<TimestampMicrosecondType>().iter().flatten().map(|v| v as f64).collect()),
        _ => {
            let labels = (0..column.len()).filter(|&i| column.is_valid(i)).map(|i| arrow::util::display::array_value_to_string(column, i).unwrap_or_default()).collect();
            (Sample::Categories(labels), nulls)
        }
    }
}

/// PSI with a small floor on shares, so an empty bin does not make it infinite.
fn psi(reference: &[f64], current: &[f64]) -> f64 {
    reference
        .iter()
        .zip(current)
        .map(|(r, c)| {
            let (r, c) = (r.max(1e-4), c.max(1e-4));
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// The two-sample Kolmogorov–Smirnov statistic: the largest gap between the
/// two empirical distribution functions.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut gap) = (0usize, 0usize, 0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        gap = gap.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    gap
}

/// Decile edges of the reference (deduplicated) and both sides' bin shares.
fn numeric_histogram(reference: &[f64], current: &[f64]) -> Histogram {
    let mut sorted = reference.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..BINS).map(|q| sorted[(q * (sorted.len() - 1)) / BINS]).collect();
    edges.dedup();
    let bin = |v: f64| edges.partition_point(|e| *e < v);
    let shares = |values: &[f64]| {
        let mut counts = vec![0usize; edges.len() + 1];
        for v in values {
            counts[bin(*v)] += 1;
        }
        counts.iter().map(|c| *c as f64 / values.len().max(1) as f64).collect::<Vec<f64>>()
    };
    let mut labels = Vec::with_capacity(edges.len() + 1);
    for i in 0..=edges.len() {
        labels.push(match i {
            0 => format!("≤ {}", short(edges.first().copied().unwrap_or(0.0))),
            i if i == edges.len() => format!("> {}", short(edges[i - 1])),
            i => format!("{}–{}", short(edges[i - 1]), short(edges[i])),
        });
    }
    Histogram { labels, reference: shares(reference), current: shares(current) }
}

fn short(v: f64) -> String {
    if v.abs() >= 1e5 || (v != 0.0 && v.abs() < 1e-3) { format!("{v:.2e}") } else { format!("{:.3}", v).trim_end_matches('0').trim_end_matches('.').to_string() }
}

fn categorical_histogram(reference: &[String], current: &[String]) -> Histogram {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for v in reference {
        *counts.entry(v).or_default() += 1;
    }
    let mut top: Vec<(&str, usize)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    top.truncate(BINS);
    let labels: Vec<String> = top.iter().map(|(v, _)| v.to_string()).chain(["other".to_string()]).collect();
    let shares = |values: &[String]| {
        let mut counts = vec![0usize; labels.len()];
        for v in values {
            let i = labels[..labels.len() - 1].iter().position(|l| l == v).unwrap_or(labels.len() - 1);
            counts[i] += 1;
        }
        counts.iter().map(|c| *c as f64 / values.len().max(1) as f64).collect::<Vec<f64>>()
    };
    Histogram { reference: shares(reference), current: shares(current), labels }
}

fn rate(nulls: usize, total: usize) -> Option<f64> {
    (total > 0).then(|| nulls as f64 / total as f64)
}

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
    let enough = |s: &Sample| match s {
        Sample::Numbers(v) => v.len() >= MIN_ROWS,
        Sample::Categories(v) => v.len() >= MIN_ROWS,
    };
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
        let names: Vec<String> = match &request.views {
            Some(v) => v.clone(),
            None => state.definitions.feature_views.iter().map(|v| v.name.clone()).collect(),
        };
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
            let rows = self.offline()?.export(&view_request, TimeRange { start: Some(start.saturating_mul(1_000)), end: Some(at.saturating_mul(1_000)) }, false)?;
            let ts = rows.column(view_request.join_keys.len()).as_primitive::<TimestampMicrosecondType>();
            let current_mask: arrow::array::BooleanArray = ts.iter().map(|t| Some(t.is_some_and(|t| t > cut))).collect();
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
            monitor.reference_rows = reference.num_rows();
            monitor.current_rows = current.num_rows();
            for field in &view.schema {
                let full = format!("{}__{}", view.name, field.name);
                let ref_column = reference.column_by_name(&field.name).or_else(|| reference.column_by_name(&full));
                monitor.features.push(compare(&view, &field.name, &field.dtype, ref_column, current.column_by_name(&field.name)));
            }
            views.push(monitor);
        }
        let days = |micros: i64| almanac_core::Duration::from_seconds((micros) / 1_000_000).to_string();
        Ok(MonitorReport {
            at: crate::online::rfc3339_micros(at),
            current_window: match request.current {
                Current::Offline => format!("the {} before {}", days(request.window_micros), crate::online::rfc3339_micros(at)),
                Current::Online => "the values the online store serves".to_string(),
            },
            reference: match &request.reference {
                Reference::Window { micros } if request.current == Current::Online => format!("the offline history of the {} before {}", days(*micros), crate::online::rfc3339_micros(at)),
                Reference::Window { micros } => format!("the {} before that", days(*micros)),
                Reference::File(path) => format!("training set {}", path.display()),
            },
            views,
        })
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
        // List features have no histogram; they are left out of the sample.
        if let Ok(array) = crate::push::to_arrow(&values, &field.dtype) {
            fields.push(arrow::datatypes::Field::new(&field.name, array.data_type().clone(), true));
            arrays.push(array);
        }
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
        watermark: watermark.map(crate::online::rfc3339_micros),
        staleness_watermark_seconds: watermark.map(|w| seconds(at - w)),
        newest_online: newest.map(crate::online::rfc3339_micros),
        staleness_online_seconds: newest.map(|n| seconds(at - n)),
        max_staleness_seconds: limit.map(seconds),
        reference_rows: 0,
        current_rows: 0,
        alerts,
        features: Vec::new(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An SVG bar chart of the two distributions overlaid.
fn svg(histogram: &Histogram) -> String {
    let (width, height, pad) = (560.0, 180.0, 24.0);
    let n = histogram.labels.len().max(1) as f64;
    let top = histogram.reference.iter().chain(&histogram.current).cloned().fold(0.0, f64::max).max(1e-9);
    let slot = (width - 2.0 * pad) / n;
    let mut out = format!(r#"<svg class="hist" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" role="img">"#, height + 40.0);
    for (i, label) in histogram.labels.iter().enumerate() {
        let x = pad + i as f64 * slot;
        for (series, (value, class)) in [(histogram.reference[i], "ref"), (histogram.current[i], "cur")].iter().enumerate() {
            let h = value / top * (height - pad);
            let bar_x = x + slot * 0.1 + series as f64 * slot * 0.4;
            out.push_str(&format!(r#"<rect class="{class}" x="{bar_x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}"><title>{} {}: {:.1}%</title></rect>"#, height - h, slot * 0.4, if *class == "ref" { "reference" } else { "current" }, escape(label), value * 100.0));
        }
        out.push_str(&format!(r#"<text x="{:.1}" y="{}" font-size="9" text-anchor="middle">{}</text>"#, x + slot / 2.0, height + 14.0, escape(label)));
    }
    out.push_str("</svg>");
    out
}

/// One self-contained page (inline CSS and SVG, no scripts, no network).
pub fn html(report: &MonitorReport) -> String {
    let mut body = String::new();
    for view in &report.views {
        body.push_str(&format!("<section><h2>{}</h2><p>watermark {} · newest online value {} · staleness {} (limit {}) · rows: reference {}, current {}</p>",
            escape(&view.view),
            view.watermark.as_deref().unwrap_or("none"),
            view.newest_online.as_deref().unwrap_or("none"),
            view.staleness_online_seconds.map(|s| format!("{:.0} s", s)).unwrap_or_else(|| "-".into()),
            view.max_staleness_seconds.map(|s| format!("{:.0} s", s)).unwrap_or_else(|| "none".into()),
            view.reference_rows, view.current_rows));
        for alert in &view.alerts {
            body.push_str(&format!(r#"<p class="alert">⚠ {}</p>"#, escape(alert)));
        }
        for feature in &view.features {
            let pct = |v: Option<f64>| v.map(|v| format!("{:.1}%", v * 100.0)).unwrap_or_else(|| "-".into());
            body.push_str(&format!(r#"<div class="feature"><h3>{} <small>{}</small></h3><p>null rate: reference {}, current {} · PSI {} · KS {}</p>"#,
                escape(&feature.feature), escape(&feature.dtype), pct(feature.null_rate_reference), pct(feature.null_rate_current),
                feature.psi.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into()), feature.ks.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into())));
            for alert in &feature.alerts {
                body.push_str(&format!(r#"<p class="alert">⚠ {}</p>"#, escape(alert)));
            }
            if let Some(histogram) = &feature.histogram {
                body.push_str(&svg(histogram));
            }
            body.push_str("</div>");
        }
        body.push_str("</section>");
    }
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Almanac monitor {at}</title><style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} section{{border-top:2px solid #ccc;margin-top:1.5em}}
.feature{{display:inline-block;vertical-align:top;margin:0 1.5em 1.5em 0}} .alert{{color:#b00020;font-weight:600}}
rect.ref{{fill:#4e79a7;opacity:.75}} rect.cur{{fill:#f28e2b;opacity:.75}} .legend span{{padding:0 .6em;color:#fff}}
</style></head><body><h1>Almanac monitor</h1><p>at {at}; current window: {cur}; reference: {reference}; {alerts} alerts</p>
<p class="legend"><span style="background:#4e79a7">reference</span> <span style="background:#f28e2b">current</span></p>{body}</body></html>"#,
        at = escape(&report.at), cur = escape(&report.current_window), reference = escape(&report.reference), alerts = report.alerts()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_samples_do_not_drift_and_shifted_ones_do() {
        let a: Vec<f64> = (0..1000).map(|i| (i % 100) as f64).collect();
        let same = numeric_histogram(&a, &a);
        assert!(psi(&same.reference, &same.current) < 1e-9);
        assert_eq!(ks_statistic(&a, &a), 0.0);
        let shifted: Vec<f64> = a.iter().map(|v| v + 50.0).collect();
        let moved = numeric_histogram(&a, &shifted);
        assert!(psi(&moved.reference, &moved.current) > 1.0);
        assert!((ks_statistic(&a, &shifted) - 0.5).abs() < 0.02);
    }

    #[test]
    fn categories_keep_top_values_and_other() {
        let r: Vec<String> = (0..100).map(|i| format!("v{}", i % 12)).collect();
        let h = categorical_histogram(&r, &r);
        assert_eq!(h.labels.len(), BINS + 1);
        assert!((h.reference.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(psi(&h.reference, &h.current) < 1e-9);
    }
}
