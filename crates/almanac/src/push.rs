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

use almanac_core::{DType, FeatureView, Source, Value};
use almanac_offline::io::write_parquet_durably;
use almanac_offline::{list_source_files, read_source_schema};
use almanac_online::{Entry, KeyPart, OnlineStore, RecordCodec, WriteStats, encode_key};
use almanac_registry::RegistryState;
use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::{Field as ArrowField, Schema};

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

/// A mistake in a push request.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PushError(pub String);

fn bad(message: impl Into<String>) -> Error {
    Error::Push(PushError(message.into()))
}

pub(crate) struct Push<'a> {
    pub root: &'a std::path::Path,
    pub state: &'a RegistryState,
    pub online: &'a dyn OnlineStore,
}

/// The push's columns, checked and converted to their declared dtypes.
struct Rows {
    n: usize,
    columns: Vec<(String, DType, Vec<Value>)>,
}

impl Rows {
    fn column(&self, name: &str) -> Option<(&DType, &Vec<Value>)> {
        self.columns.iter().find(|(n, _, _)| n == name).map(|(_, dtype, values)| (dtype, values))
    }

    fn get(&self, name: &str) -> Option<&Vec<Value>> {
        self.column(name).map(|(_, values)| values)
    }
}

impl Push<'_> {
    pub fn run(&self, source_name: &str, columns: &[(String, Vec<Value>)], to: PushTo) -> Result<PushReport, Error> {
        let defs = &self.state.definitions;
        let source = defs.source(source_name).ok_or_else(|| {
            let names: Vec<&str> = defs.sources.iter().filter(|s| s.batch_source.is_some()).map(|s| s.name.as_str()).collect();
            let help = almanac_core::suggest::closest(source_name, names.iter().copied()).map(|b| format!("did you mean `{b}`?"));
            Error::Unknown { what: "push source", name: source_name.to_string(), help }
        })?;
        if source.batch_source.is_none() {
            return Err(bad(format!("`{source_name}` is a batch source, not a push source; declare one with `batch_source: {source_name}` and bind views to it")));
        }
        let views: Vec<&FeatureView> = defs.feature_views.iter().filter(|v| v.source == source.name).collect();
        if views.is_empty() {
            return Err(bad(format!("no feature view reads push source `{source_name}`; bind a view to it with `source: {source_name}`")));
        }
        let rows = self.check(source, &views, columns)?;
        let mut report = PushReport { push_source: source_name.to_string(), rows: rows.n, views: views.iter().map(|v| v.name.clone()).collect(), online_written: 0, online_kept_newer: 0, offline_file: None };
        if rows.n == 0 {
            return Ok(report);
        }
        if matches!(to, PushTo::Offline | PushTo::OnlineAndOffline) {
            report.offline_file = Some(self.append_offline(source, &rows)?);
        }
        if matches!(to, PushTo::Online | PushTo::OnlineAndOffline) {
            let stats = self.write_online(source, &views, &rows)?;
            report.online_written = stats.written;
            report.online_kept_newer = stats.kept_newer;
        }
        Ok(report)
    }

    /// Every column the views need, present, of equal length, of the right
    /// type; nothing unexpected.
    fn check(&self, source: &Source, views: &[&FeatureView], columns: &[(String, Vec<Value>)]) -> Result<Rows, Error> {
        let defs = &self.state.definitions;
        let mut expected: Vec<(String, DType, bool)> = Vec::new();
        let mut add = |name: &str, dtype: DType, required: bool| {
            if !expected.iter().any(|(n, _, _)| n == name) {
                expected.push((name.to_string(), dtype, required));
            }
        };
        for view in views {
            for key in defs.view_join_keys(view) {
                add(&key.name, key.dtype.clone().unwrap_or(DType::Int64), true);
            }
        }
        add(&source.timestamp_field, DType::Timestamp, true);
        if let Some(created) = &source.created_timestamp_column {
            add(created, DType::Timestamp, false);
        }
        for view in views {
            for field in &view.schema {
                add(&field.name, field.dtype.clone(), true);
            }
        }
        let given: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        if let Some((name, _)) = columns.iter().find(|(name, _)| !expected.iter().any(|(n, _, _)| n == name)) {
            let help = almanac_core::suggest::closest(name, expected.iter().map(|(n, _, _)| n.as_str())).map(|b| format!(" (did you mean `{b}`?)")).unwrap_or_default();
            return Err(bad(format!("column `{name}` is not part of push source `{}`{help}; expected columns: {}", source.name, expected.iter().map(|(n, _, _)| n.as_str()).collect::<Vec<_>>().join(", "))));
        }
        let n = columns.first().map(|(_, v)| v.len()).unwrap_or(0);
        let mut out = Vec::with_capacity(expected.len());
        for (name, dtype, required) in &expected {
            let values = match columns.iter().find(|(n, _)| n == name) {
                Some((_, values)) => values,
                None if *required => return Err(bad(format!("the push is missing column `{name}` ({dtype}); it has: {}", given.join(", ")))),
                None => {
                    out.push((name.clone(), dtype.clone(), vec![Value::Null; n]));
                    continue;
                }
            };
            if values.len() != n {
                return Err(bad(format!("columns have different lengths: `{}` has {n} rows, `{name}` has {}", columns[0].0, values.len())));
            }
            let converted = values
                .iter()
                .enumerate()
                .map(|(row, value)| coerce(value, dtype).map_err(|why| bad(format!("column `{name}`, row {row}: {why}"))))
                .collect::<Result<Vec<_>, _>>()?;
            if name == &source.timestamp_field
                && let Some(row) = converted.iter().position(Value::is_null) {
                    return Err(bad(format!("column `{name}`, row {row}: the event timestamp is required")));
                }
            out.push((name.clone(), dtype.clone(), converted));
        }
        Ok(Rows { n, columns: out })
    }

    fn write_online(&self, source: &Source, views: &[&FeatureView], rows: &Rows) -> Result<WriteStats, Error> {
        let defs = &self.state.definitions;
        let mut stats = WriteStats::default();
        let event = rows.get(&source.timestamp_field).cloned().unwrap_or_default();
        let created = source.created_timestamp_column.as_ref().and_then(|c| rows.get(c)).cloned();
        for view in views.iter().filter(|v| v.online) {
            let codec = RecordCodec::new(&view.schema);
            let keys: Vec<&Vec<Value>> = defs.view_join_keys(view).iter().filter_map(|k| rows.get(&k.name)).collect();
            let features: Vec<&Vec<Value>> = view.schema.iter().filter_map(|f| rows.get(&f.name)).collect();
            let mut entries = Vec::with_capacity(rows.n);
            'rows: for row in 0..rows.n {
                let mut parts = Vec::with_capacity(keys.len());
                for column in &keys {
                    match &column[row] {
                        Value::Int64(v) => parts.push(KeyPart::Int(*v)),
                        Value::String(s) => parts.push(KeyPart::Str(s.clone())),
                        // A row without its key cannot be stored online.
                        _ => continue 'rows,
                    }
                }
                let mut key = Vec::with_capacity(16);
                encode_key(&parts, &mut key);
                let Value::Timestamp(ts) = event[row] else { continue };
                let created_ts = created.as_ref().and_then(|c| if let Value::Timestamp(t) = c[row] { Some(t) } else { None });
                let values: Vec<Value> = features.iter().map(|column| column[row].clone()).collect();
                let mut record = Vec::with_capacity(64);
                codec.encode_values(&values, ts, created_ts, &mut record)?;
                entries.push(Entry { key, record });
            }
            stats += self.online.write(&view.name, &entries)?;
        }
        Ok(stats)
    }

    /// One new Parquet file in the batch source's folder, with the files'
    /// own column names and types, so scans read it like any other file.
    fn append_offline(&self, source: &Source, rows: &Rows) -> Result<PathBuf, Error> {
        let folder = self.root.join(&source.path);
        if !folder.is_dir() {
            return Err(bad(format!("push source `{}` cannot append offline: its batch source's path `{}` is not a folder; make it a folder of Parquet files", source.name, source.path)));
        }
        let files = list_source_files(self.root, source).map_err(|e| bad(e.to_string()))?;
        if files.format != almanac_core::FileFormat::Parquet {
            return Err(bad(format!("push source `{}` cannot append offline: its batch source holds {} files; offline pushes write Parquet", source.name, files.format)));
        }
        let file_schema = read_source_schema(&files).map_err(|e| bad(e.to_string()))?;
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for field in file_schema.fields() {
            let name = source.field_mapping.get(field.name()).cloned().unwrap_or_else(|| field.name().clone());
            let array = match rows.column(&name) {
                Some((dtype, values)) => {
                    let array = to_arrow(values, dtype)?;
                    arrow::compute::cast(&array, field.data_type()).map_err(|e| bad(format!("column `{name}` does not fit the files' type {}: {e}", field.data_type())))?
                }
                None => new_null_array(field.data_type(), rows.n),
            };
            fields.push(ArrowField::new(field.name(), field.data_type().clone(), true));
            arrays.push(array);
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| bad(e.to_string()))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let path = folder.join(format!("push-{stamp}-{}.parquet", std::process::id()));
        write_parquet_durably(&path, &batch)?;
        Ok(path)
    }
}

/// A loosely typed value (from JSON) as `dtype`: ints widen to floats,
/// timestamps are RFC 3339 text or epoch seconds.
pub fn coerce(value: &Value, dtype: &DType) -> Result<Value, String> {
    let wrong = || format!("expected {dtype}, got {value:?}");
    Ok(match (dtype, value) {
        (_, Value::Null) => Value::Null,
        (DType::Bool, Value::Bool(b)) => Value::Bool(*b),
        (DType::Int64, Value::Int64(v)) => Value::Int64(*v),
        (DType::Int32, Value::Int64(v)) => Value::Int32(i32::try_from(*v).map_err(|_| format!("{v} does not fit int32"))?),
        (DType::Float64, Value::Float64(v)) => Value::Float64(*v),
        (DType::Float64, Value::Int64(v)) => Value::Float64(*v as f64),
        (DType::Float32, Value::Float64(v)) => Value::Float32(*v as f32),
        (DType::Float32, Value::Int64(v)) => Value::Float32(*v as f32),
        (DType::Float64 | DType::Float32, Value::String(s)) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") => {
            let f = match s.as_str() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                _ => f64::NEG_INFINITY,
            };
            if *dtype == DType::Float32 { Value::Float32(f as f32) } else { Value::Float64(f) }
        }
        (DType::String, Value::String(s)) => Value::String(s.clone()),
        (DType::Bytes, Value::String(s)) => Value::Bytes(s.as_bytes().to_vec()),
        (DType::Timestamp, Value::String(s)) => {
            let parsed = chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.to_utc())
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc()))
                .map_err(|_| format!("`{s}` is not a timestamp; use RFC 3339 such as `2026-06-10T14:00:00Z`"))?;
            Value::Timestamp(parsed.timestamp_micros())
        }
        (DType::Timestamp, Value::Int64(seconds)) => Value::Timestamp(seconds.saturating_mul(1_000_000)),
        (DType::Timestamp, Value::Float64(seconds)) if seconds.is_finite() => Value::Timestamp((seconds * 1e6).round() as i64),
        (DType::Timestamp, Value::Timestamp(t)) => Value::Timestamp(*t),
        (DType::List(inner), Value::List(items)) => Value::List(items.iter().map(|item| coerce(item, inner)).collect::<Result<_, _>>()?),
        _ => return Err(wrong()),
    })
}

/// Values already coerced to `dtype`, as an Arrow array of its canonical type.
pub(crate) fn to_arrow(values: &[Value], dtype: &DType) -> Result<ArrayRef, Error> {
    use arrow::array::*;
    let array: ArrayRef = match dtype {
        DType::Bool => Arc::new(values.iter().map(|v| if let Value::Bool(b) = v { Some(*b) } else { None }).collect::<BooleanArray>()),
        DType::Int32 => Arc::new(values.iter().map(|v| if let Value::Int32(x) = v { Some(*x) } else { None }).collect::<Int32Array>()),
        DType::Int64 => Arc::new(values.iter().map(|v| if let Value::Int64(x) = v { Some(*x) } else { None }).collect::<Int64Array>()),
        DType::Float32 => Arc::new(values.iter().map(|v| if let Value::Float32(x) = v { Some(*x) } else { None }).collect::<Float32Array>()),
        DType::Float64 => Arc::new(values.iter().map(|v| if let Value::Float64(x) = v { Some(*x) } else { None }).collect::<Float64Array>()),
        DType::String => Arc::new(values.iter().map(|v| if let Value::String(x) = v { Some(x.as_str()) } else { None }).collect::<StringArray>()),
        DType::Bytes => Arc::new(values.iter().map(|v| if let Value::Bytes(x) = v { Some(x.as_slice()) } else { None }).collect::<BinaryArray>()),
        DType::Timestamp => Arc::new(values.iter().map(|v| if let Value::Timestamp(x) = v { Some(*x) } else { None }).collect::<TimestampMicrosecondArray>().with_timezone("UTC")),
        DType::List(_) => return Err(bad("offline pushes of list features are not supported yet; push them online only")),
    };
    Ok(array)
}
