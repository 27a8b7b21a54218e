//! Parity reconciliation (DESIGN §3): does the online store hold, for each
//! entity, exactly what the point-in-time join says is true at the same
//! instant?
//!
//! Per online view, entities are sampled from both sides (the online
//! store's records and the offline source's entities), so an entity that
//! never made it online is caught as well as a wrong value. For each, the
//! online value is read through the serving path at instant `T`, and the
//! expected value is computed by the historical as-of join at `T` — a
//! different code path from materialization's "latest per entity", which
//! is the point: agreement between two implementations is evidence, one
//! implementation agreeing with itself is not. The offline winner's event
//! time (from the latest-per-entity scan) is used only to explain a
//! divergence.

use std::collections::HashMap;
use std::sync::Arc;

use almanac_core::{DType, OnDemandFeatureView, Value};
use almanac_offline::{HistoricalOptions, TimeRange};
use almanac_online::{KeyPart, decode_key};
use almanac_registry::RegistryState;
use almanac_core::convert::value_at;
use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use serde::Serialize;

use crate::error::Error;
use crate::online::FieldStatus;
use crate::resolve::FeatureSelection;
use crate::store::FeatureStore;

#[derive(Debug, Clone)]
pub struct ParityRequest {
    pub views: Option<Vec<String>>,
    /// Entities per view (half from each side when both have enough).
    pub sample: usize,
    pub seed: u64,
    /// Relative tolerance for floats; 0 = exact.
    pub tolerance: f64,
    /// The instant compared, µs since the epoch.
    pub at_micros: i64,
}

/// One divergent value.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub entity: Vec<String>,
    /// The request values sent with the entity (on-demand views only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request: Vec<(String, Value)>,
    pub online: Value,
    pub offline: Value,
    pub online_event_time: Option<String>,
    pub offline_event_time: Option<String>,
    pub cause: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FeatureParity {
    pub feature: String,
    pub checked: usize,
    pub equal: usize,
    pub different: usize,
    pub missing_online: usize,
    pub absent_offline: usize,
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ViewParity {
    pub view: String,
    pub sampled_from_online: usize,
    pub sampled_from_offline: usize,
    pub watermark: Option<String>,
    /// Set when the whole view could not be compared (e.g. its online
    /// records were written under another schema).
    pub error: Option<String>,
    pub features: Vec<FeatureParity>,
    /// Set when the view was not compared and that is not a divergence
    /// (an on-demand view whose inputs share no entity to sample).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl ViewParity {
    pub fn divergent(&self) -> usize {
        self.features.iter().map(|f| f.different + f.missing_online + f.absent_offline).sum::<usize>() + usize::from(self.error.is_some())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ParityReport {
    pub at: String,
    pub tolerance: f64,
    pub views: Vec<ViewParity>,
}

impl ParityReport {
    pub fn divergent(&self) -> usize {
        self.views.iter().map(ViewParity::divergent).sum()
    }
}

/// A small deterministic PRNG (splitmix64): reproducible samples from `--seed`.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Up to `n` items, chosen without replacement (partial Fisher–Yates).
fn sample<T: Clone>(items: &[T], n: usize, rng: &mut SplitMix) -> Vec<T> {
    let mut indices: Vec<usize> = (0..items.len()).collect();
    let n = n.min(items.len());
    for i in 0..n {
        let j = i + (rng.next() as usize) % (indices.len() - i);
        indices.swap(i, j);
    }
    indices[..n].iter().map(|&i| items[i].clone()).collect()
}

fn key_text(parts: &[KeyPart]) -> Vec<String> {
    parts.iter().map(|p| match p { KeyPart::Int(v) => v.to_string(), KeyPart::Str(s) => s.clone() }).collect()
}

fn micros_text(micros: Option<i64>) -> Option<String> {
    micros.map(almanac_core::time::rfc3339_micros)
}

impl FeatureStore {
    /// Compare online values with point-in-time values for sampled entities.
    pub fn parity(&self, request: &ParityRequest) -> Result<ParityReport, Error> {
        let state = self.fresh_applied_state()?;
        let defs = &state.definitions;
        let names: Vec<String> = match &request.views {
            Some(views) => views.clone(),
            // Every online view, then every on-demand view all of whose
            // input views are online (the others cannot be served).
            None => defs
                .feature_views
                .iter()
                .filter(|v| v.online)
                .map(|v| v.name.clone())
                .chain(defs.on_demand_feature_views.iter().filter(|o| o.sources.iter().all(|s| defs.feature_view(s).is_none_or(|v| v.online))).map(|o| o.name.clone()))
                .collect(),
        };
        let mut rng = SplitMix(request.seed);
        let mut views = Vec::with_capacity(names.len());
        for name in names {
            views.push(match defs.on_demand_feature_view(&name) {
                Some(odfv) => self.on_demand_parity(&state, odfv, request, &mut rng)?,
                None => self.view_parity(&state, &name, request, &mut rng)?,
            });
        }
        Ok(ParityReport { at: almanac_core::time::rfc3339_micros(request.at_micros), tolerance: request.tolerance, views })
    }

    fn view_parity(&self, state: &Arc<RegistryState>, name: &str, request: &ParityRequest, rng: &mut SplitMix) -> Result<ViewParity, Error> {
        let mut view_request = crate::resolve::view_request(&state.definitions, name)?;
        if !view_request.view.online {
            return Err(Error::NotOnline { view: name.to_string() });
        }
        view_request.features = view_request.view.schema.clone();
        let view = view_request.view.clone();
        let watermark = state.watermarks.get(name).map(|w| w.timestamp_micros());
        let Sampled { key_dtypes, from_online, from_offline, chosen, offline_ts } = self.sample_entities(&view_request, request, rng)?;
        let nkeys = key_dtypes.len();
        let mut report = ViewParity {
            view: name.to_string(),
            sampled_from_online: from_online.len(),
            sampled_from_offline: from_offline.len(),
            watermark: micros_text(watermark),
            error: None,
            features: view.schema.iter().map(|f| FeatureParity { feature: f.name.clone(), ..FeatureParity::default() }).collect(),
            skipped: None,
        };
        if chosen.is_empty() {
            return Ok(report);
        }

        // Online values through the serving path (the same entities, without
        // the as-of column the historical join needs).
        let table = entity_table(&key_dtypes, &chosen, request.at_micros)?;
        let entities = table.project(&(0..nkeys).collect::<Vec<_>>())?;
        let refs = FeatureSelection::Refs(view.schema.iter().map(|f| almanac_core::FeatureRef::new(&view.name, &f.name)).collect());
        let online = match self.get_online_features_at(&refs, &entities, true, request.at_micros) {
            Ok(online) => online,
            Err(Error::OnlineRecord { error, .. }) => {
                report.error = Some(format!("online records cannot be read with the view's current schema ({error}): the schema changed since materialization; re-materialize the view"));
                return Ok(report);
            }
            Err(other) => return Err(other),
        };

        // Point-in-time values through the historical join.
        let options = HistoricalOptions { full_feature_names: true, ..HistoricalOptions::default() };
        let expected = self.get_historical_features(&table, &refs, &options)?;

        for index in 0..view.schema.len() {
            let column = nkeys + index;
            let offline_column = expected.column(nkeys + 1 + index);
            let out = &mut report.features[index];
            for (row, entity) in chosen.iter().enumerate() {
                out.checked += 1;
                let got = online.value(column, row);
                let want = value_at(offline_column.as_ref(), row);
                if got.approx_eq(&want, request.tolerance) {
                    out.equal += 1;
                    continue;
                }
                let online_ts = online.event_timestamps[column][row];
                let offline_winner = offline_ts.get(entity).copied();
                let status = online.statuses[column][row];
                let cause = explain(status, online_ts, offline_winner, watermark, &want);
                match (status, want.is_null()) {
                    (FieldStatus::NotFound | FieldStatus::OutsideMaxAge, false) => out.missing_online += 1,
                    (_, true) => out.absent_offline += 1,
                    _ => out.different += 1,
                }
                if out.examples.len() < 5 {
                    out.examples.push(Example {
                        entity: key_text(entity),
                        request: Vec::new(),
                        online: got,
                        offline: want,
                        online_event_time: micros_text(online_ts),
                        offline_event_time: micros_text(offline_winner),
                        cause,
                    });
                }
            }
        }
        Ok(report)
    }
}

impl FeatureStore {
    /// Parity of an on-demand view (DESIGN §2.8): for entities sampled from
    /// its input views and generated request values (nulls, zeros, NaN and
    /// extremes among them), the serving path must give exactly what the
    /// training set gives at T, the same request values being columns of
    /// the entity table there.
    fn on_demand_parity(&self, state: &Arc<RegistryState>, odfv: &OnDemandFeatureView, request: &ParityRequest, rng: &mut SplitMix) -> Result<ViewParity, Error> {
        let defs = &state.definitions;
        let mut report = ViewParity {
            view: odfv.name.clone(),
            sampled_from_online: 0,
            sampled_from_offline: 0,
            watermark: None,
            error: None,
            features: odfv.features.iter().map(|f| FeatureParity { feature: f.name.clone(), ..FeatureParity::default() }).collect(),
            skipped: None,
        };
        let mut inputs = Vec::new();
        for source in odfv.sources.iter().filter(|s| defs.feature_view(s).is_some()) {
            let mut input = crate::resolve::view_request(defs, source)?;
            input.features = input.view.schema.clone();
            inputs.push(input);
        }
        // The entities come from the input view whose join keys cover all
        // the inputs' keys; inputs keyed by unrelated entities share none.
        let keys_of = |r: &almanac_offline::ViewRequest| -> Vec<String> { r.join_keys.iter().map(|(_, k)| k.name.clone()).collect() };
        let all_keys: Vec<String> = inputs.iter().flat_map(keys_of).collect();
        let Some(driver) = inputs.iter().max_by_key(|r| r.join_keys.len()).filter(|r| all_keys.iter().all(|k| keys_of(r).contains(k))) else {
            report.skipped = Some(if inputs.is_empty() {
                "reads no feature view, so there is no entity to sample".into()
            } else {
                format!("its input views are keyed by different entities ({}); no one view's entities can be sampled for all of them", all_keys.join(", "))
            });
            return Ok(report);
        };
        let Sampled { key_dtypes, from_online, from_offline, chosen, offline_ts: _ } = self.sample_entities(driver, request, rng)?;
        report.sampled_from_online = from_online.len();
        report.sampled_from_offline = from_offline.len();
        report.watermark = micros_text(state.watermarks.get(&driver.view.name).map(|w| w.timestamp_micros()));
        if chosen.is_empty() {
            return Ok(report);
        }

        let fields: Vec<(String, DType)> =
            odfv.sources.iter().filter_map(|s| defs.request_source(s)).flat_map(|r| r.schema.iter().map(|f| (f.name.clone(), f.dtype.clone()))).collect();
        let mut values: Vec<(String, Vec<Value>)> = Vec::with_capacity(fields.len());
        for (name, dtype) in &fields {
            values.push((name.clone(), (0..chosen.len()).map(|row| request_value(dtype, row, request.at_micros, rng)).collect()));
        }
        let keys_and_time = entity_table(&key_dtypes, &chosen, request.at_micros)?;
        let mut columns: Vec<(String, ArrayRef)> = keys_and_time.schema().fields().iter().map(|f| f.name().clone()).zip(keys_and_time.columns().iter().cloned()).collect();
        for ((name, dtype), (_, column)) in fields.iter().zip(&values) {
            columns.push((name.clone(), almanac_core::convert::to_array(name, column, dtype)?));
        }
        let table = RecordBatch::try_from_iter(columns)?;
        let nkeys = key_dtypes.len();
        let entity_columns: Vec<usize> = (0..nkeys).chain(nkeys + 1..table.num_columns()).collect();
        let entities = table.project(&entity_columns)?;
        let refs = FeatureSelection::Refs(odfv.features.iter().map(|f| almanac_core::FeatureRef::new(&odfv.name, &f.name)).collect());
        let online = match self.get_online_features_at(&refs, &entities, true, request.at_micros) {
            Ok(online) => online,
            Err(Error::OnlineRecord { view, error }) => {
                report.error = Some(format!("the online records of input view `{view}` cannot be read with its current schema ({error}); re-materialize it"));
                return Ok(report);
            }
            Err(other) => return Err(other),
        };
        let options = HistoricalOptions { full_feature_names: true, ..HistoricalOptions::default() };
        let expected = self.get_historical_features(&table, &refs, &options)?;
        for index in 0..odfv.features.len() {
            let online_column = entities.num_columns() + index;
            let offline_column = expected.column(table.num_columns() + index);
            let out = &mut report.features[index];
            for (row, entity) in chosen.iter().enumerate() {
                out.checked += 1;
                let got = online.value(online_column, row);
                let want = value_at(offline_column.as_ref(), row);
                if got.approx_eq(&want, request.tolerance) {
                    out.equal += 1;
                    continue;
                }
                match (got.is_null(), want.is_null()) {
                    (true, false) => out.missing_online += 1,
                    (false, true) => out.absent_offline += 1,
                    _ => out.different += 1,
                }
                if out.examples.len() < 5 {
                    out.examples.push(Example {
                        entity: key_text(entity),
                        request: values.iter().map(|(name, column)| (name.clone(), column[row].clone())).collect(),
                        online: got,
                        offline: want,
                        online_event_time: None,
                        offline_event_time: None,
                        cause: "the same request gave different values online and in the training set: the input views disagree for this entity (see their own parity), or online records were written by another path".into(),
                    });
                }
            }
        }
        Ok(report)
    }
}

/// A request value for parity: every fourth row an edge case (null, zero,
/// NaN, an extreme), otherwise an ordinary random value of the dtype.
fn request_value(dtype: &DType, row: usize, at_micros: i64, rng: &mut SplitMix) -> Value {
    let draw = rng.next();
    let edge = (row % 4 == 3).then_some((draw % 5) as usize);
    let unit = (draw >> 11) as f64 / (1u64 << 53) as f64;
    match dtype {
        DType::Float64 | DType::Float32 => {
            let v = match edge {
                Some(0) => return Value::Null,
                Some(1) => 0.0,
                Some(2) => f64::NAN,
                Some(3) => -0.0,
                Some(_) => 1e30,
                None => (unit * 6000.0 - 1000.0).round() / 4.0,
            };
            if *dtype == DType::Float32 { Value::Float32(v as f32) } else { Value::Float64(v) }
        }
        DType::Int64 | DType::Int32 => {
            let v: i64 = match edge {
                Some(0) => return Value::Null,
                Some(1) => 0,
                Some(2) => -1,
                Some(3) => i64::from(i32::MAX),
                Some(_) => i64::from(i32::MIN),
                None => (unit * 6000.0) as i64 - 1000,
            };
            if *dtype == DType::Int32 { Value::Int32(v as i32) } else { Value::Int64(v) }
        }
        DType::Bool => match edge {
            Some(0) => Value::Null,
            _ => Value::Bool(draw & 1 == 1),
        },
        DType::String => match edge {
            Some(0) => Value::Null,
            Some(1) => Value::String(String::new()),
            _ => Value::String(format!("r{}", draw % 1000)),
        },
        DType::Bytes => match edge {
            Some(0) => Value::Null,
            _ => Value::Bytes(draw.to_le_bytes()[..(draw % 8) as usize].to_vec()),
        },
        DType::Timestamp => match edge {
            Some(0) => Value::Null,
            Some(1) => Value::Timestamp(at_micros),
            _ => Value::Timestamp(at_micros - ((unit * 30.0 * 86_400e6) as i64)),
        },
        DType::List(_) => match edge {
            Some(0) => Value::Null,
            _ => Value::List(Vec::new()),
        },
        DType::Json => match edge {
            Some(0) => Value::Null,
            _ => Value::String(format!("{{\"r\": {}}}", draw % 1000)),
        },
        DType::Map(_) => match edge {
            Some(0) => Value::Null,
            _ => Value::Object(Vec::new()),
        },
        DType::Struct(fields) => match edge {
            Some(0) => Value::Null,
            _ => Value::Object(fields.iter().map(|(name, _)| (name.clone(), Value::Null)).collect()),
        },
    }
}

/// Entities of one view, sampled from both sides.
struct Sampled {
    key_dtypes: Vec<(String, DType)>,
    from_online: Vec<Vec<KeyPart>>,
    from_offline: Vec<Vec<KeyPart>>,
    /// `from_online` then `from_offline`.
    chosen: Vec<Vec<KeyPart>>,
    /// The offline winner's event time per entity (as of T).
    offline_ts: HashMap<Vec<KeyPart>, i64>,
}

impl FeatureStore {
    /// Half the sample from the online store's records of the view, half
    /// from the offline source's entities as of T; whatever one side
    /// lacks, the other makes up.
    fn sample_entities(&self, view_request: &almanac_offline::ViewRequest, request: &ParityRequest, rng: &mut SplitMix) -> Result<Sampled, Error> {
        let name = view_request.view.name.as_str();
        let key_dtypes: Vec<(String, DType)> = view_request.join_keys.iter().map(|(_, k)| (k.name.clone(), k.dtype.clone().unwrap_or(DType::Int64))).collect();

        // Offline side: the latest row per entity as of T (entities + their winners' times).
        let at_nanos = request.at_micros.saturating_mul(1_000);
        // An aggregation view's entities are those with events in the widest
        // window before T (its states; their "event time" is T itself).
        let (latest, _) = if view_request.view.is_aggregation() {
            self.offline()?.aggregation_states(view_request, TimeRange { start: None, end: Some(at_nanos) })?
        } else {
            self.offline()?.latest_per_entity(view_request, TimeRange { start: None, end: Some(at_nanos) })?
        };
        let mut offline_entities: Vec<Vec<KeyPart>> = Vec::with_capacity(latest.num_rows());
        let mut offline_ts: HashMap<Vec<KeyPart>, i64> = HashMap::with_capacity(latest.num_rows());
        let ts_column = latest.event_time();
        for row in 0..latest.num_rows() {
            let parts: Option<Vec<KeyPart>> = latest
                .keys()
                .iter()
                .map(|c| match value_at(c.as_ref(), row) {
                    Value::Int64(v) => Some(KeyPart::Int(v)),
                    Value::String(s) => Some(KeyPart::Str(s)),
                    _ => None,
                })
                .collect();
            if let Some(parts) = parts {
                offline_ts.insert(parts.clone(), ts_column.value(row));
                offline_entities.push(parts);
            }
        }
        // Online side: the store's records.
        let online_entries = self.online_store()?.scan(name, None)?;
        let online_entities: Vec<Vec<KeyPart>> = online_entries.iter().filter_map(|e| decode_key(&e.key).ok()).collect();

        // Half from each side; whatever one side lacks, the other makes up.
        let half = request.sample.div_ceil(2);
        let mut from_online = sample(&online_entities, half, rng);
        let taken: std::collections::HashSet<&Vec<KeyPart>> = from_online.iter().collect();
        let remaining: Vec<Vec<KeyPart>> = offline_entities.iter().filter(|k| !taken.contains(k)).cloned().collect();
        let from_offline = sample(&remaining, request.sample.saturating_sub(from_online.len()), rng);
        if from_online.len() + from_offline.len() < request.sample {
            let taken: std::collections::HashSet<&Vec<KeyPart>> = from_online.iter().chain(&from_offline).collect();
            let extra: Vec<Vec<KeyPart>> = online_entities.iter().filter(|k| !taken.contains(k)).cloned().collect();
            from_online.extend(sample(&extra, request.sample - from_online.len() - from_offline.len(), rng));
        }
        let chosen: Vec<Vec<KeyPart>> = from_online.iter().chain(&from_offline).cloned().collect();

        Ok(Sampled { key_dtypes, from_online, from_offline, chosen, offline_ts })
    }
}

/// The likely cause of one divergence, from the two sides' event times.
fn explain(status: FieldStatus, online_ts: Option<i64>, offline_ts: Option<i64>, watermark: Option<i64>, want: &Value) -> String {
    match (online_ts, offline_ts) {
        (_, Some(off)) if watermark.is_none_or(|w| off > w) => "materialization lag: the offline winner is newer than the view's watermark; run `almanac materialize-incremental`".into(),
        (None, Some(_)) => "missing online although materialized: the record was deleted or never written".into(),
        (Some(on), Some(off)) if on < off => "the online record is older than the offline winner although the watermark covers it: a write was lost or an older value was written directly".into(),
        (Some(on), Some(off)) if on == off => "same event time, different value: a second code path computes this feature (online writes not produced by materialization from this source)".into(),
        (Some(_), Some(_)) => "the online record is newer than anything in the offline source: pushed online only, or the source lost rows".into(),
        (Some(_), None) if status == FieldStatus::OutsideMaxAge => "online record older than the TTL".into(),
        (Some(_), None) => "present online but absent offline: pushed online only, or the source lost rows".into(),
        (None, None) if want.is_null() => "no data on either side".into(),
        (None, None) => "unexplained".into(),
    }
}

fn entity_table(keys: &[(String, DType)], chosen: &[Vec<KeyPart>], at: i64) -> Result<RecordBatch, Error> {
    let mut columns: Vec<(String, ArrayRef)> = Vec::with_capacity(keys.len() + 1);
    for (i, (name, dtype)) in keys.iter().enumerate() {
        let array: ArrayRef = match dtype {
            DType::String => Arc::new(StringArray::from(chosen.iter().map(|k| match &k[i] { KeyPart::Str(s) => Some(s.clone()), KeyPart::Int(_) => None }).collect::<Vec<_>>())),
            _ => Arc::new(Int64Array::from(chosen.iter().map(|k| match &k[i] { KeyPart::Int(v) => Some(*v), KeyPart::Str(_) => None }).collect::<Vec<_>>())),
        };
        columns.push((name.clone(), array));
    }
    columns.push(("event_timestamp".into(), Arc::new(TimestampMicrosecondArray::from(vec![at; chosen.len()]).with_timezone("UTC"))));
    Ok(RecordBatch::try_from_iter(columns)?)
}
