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

use almanac_core::{DType, Value};
use almanac_online::{Decoded, KeyPart, Lookup, OnlineStore, RecordCodec, encode_key};
use almanac_registry::RegistryState;
use chrono::SecondsFormat;
use serde_json::json;

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

/// One column of the response: a join key (echoed) or a feature.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineColumn {
    pub values: Vec<Value>,
    pub statuses: Vec<FieldStatus>,
    /// Microseconds since the epoch; `None` where nothing was found (and for
    /// join keys), rendered as `1970-01-01T00:00:00Z` as Feast does.
    pub event_timestamps: Vec<Option<i64>>,
}

/// The answer to an online request, column-major like Feast's.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineResponse {
    /// Join keys in request order, then features in the order requested.
    pub feature_names: Vec<String>,
    pub columns: Vec<OnlineColumn>,
}

/// Entity columns of a request: join-key name → one value per entity row.
pub type EntityColumns = Vec<(String, Vec<Value>)>;

/// A request planned against one registry version.
#[derive(Debug)]
pub struct OnlinePlan {
    pub registry_version: u64,
    views: Vec<PlannedView>,
    /// `(view index, schema index, output name)` in request order.
    outputs: Vec<(usize, usize, String)>,
}

#[derive(Debug)]
struct PlannedView {
    name: String,
    codec: RecordCodec,
    ttl_micros: Option<i64>,
    join_keys: Vec<(String, DType)>,
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
                codec: RecordCodec::new(&request.view.schema),
                ttl_micros: request.view.ttl.filter(|t| !t.is_zero()).map(|t| t.micros()),
                join_keys,
            });
        }
        let mut outputs = Vec::with_capacity(resolved.order.len());
        for (view_name, feature) in &resolved.order {
            let view_index = resolved.views.iter().position(|v| v.view.name == *view_name).unwrap_or(0);
            let schema_index = resolved.views[view_index].view.schema.iter().position(|f| f.name == *feature).unwrap_or(0);
            let name = if full_feature_names { format!("{view_name}__{feature}") } else { feature.clone() };
            outputs.push((view_index, schema_index, name));
        }
        if !full_feature_names {
            check_clashes(&outputs, &resolved.order)?;
        }
        Ok(OnlinePlan { registry_version: state.version, views, outputs })
    }

    /// Read the planned features for `entities` at instant `now_micros`.
    pub fn execute(&self, store: &dyn OnlineStore, entities: &EntityColumns, now_micros: i64) -> Result<OnlineResponse, Error> {
        let rows = entity_rows(entities)?;
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

        let mut names: Vec<String> = entities.iter().map(|(name, _)| name.clone()).collect();
        let mut columns: Vec<OnlineColumn> = entities
            .iter()
            .map(|(_, values)| OnlineColumn { values: values.clone(), statuses: vec![FieldStatus::Present; rows], event_timestamps: vec![None; rows] })
            .collect();
        for (view_index, schema_index, name) in &self.outputs {
            let view = &self.views[*view_index];
            let oldest = view.ttl_micros.map(|ttl| now_micros.saturating_sub(ttl));
            let mut column = OnlineColumn { values: Vec::with_capacity(rows), statuses: Vec::with_capacity(rows), event_timestamps: Vec::with_capacity(rows) };
            for record in &decoded[*view_index] {
                let (value, status, ts) = match record {
                    None => (Value::Null, FieldStatus::NotFound, None),
                    Some(record) if oldest.is_some_and(|oldest| record.event_ts < oldest) => (Value::Null, FieldStatus::OutsideMaxAge, Some(record.event_ts)),
                    Some(record) => {
                        let value = record.values.get(*schema_index).cloned().unwrap_or(Value::Null);
                        let status = if value.is_null() { FieldStatus::NullValue } else { FieldStatus::Present };
                        (value, status, Some(record.event_ts))
                    }
                };
                column.values.push(value);
                column.statuses.push(status);
                column.event_timestamps.push(ts);
            }
            names.push(name.clone());
            columns.push(column);
        }
        Ok(OnlineResponse { feature_names: names, columns })
    }
}

fn check_clashes(outputs: &[(usize, usize, String)], order: &[(String, String)]) -> Result<(), Error> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for ((_, _, name), (view, _)) in outputs.iter().zip(order) {
        if let Some(other) = seen.insert(name.as_str(), view.as_str())
            && other != view {
                return Err(Error::BadRequest(format!("feature `{name}` is requested from both `{other}` and `{view}`; set full_feature_names (CLI: --full-feature-names) to name them `view__feature`")));
            }
    }
    Ok(())
}

/// The number of entity rows; every column must have it.
fn entity_rows(entities: &EntityColumns) -> Result<usize, Error> {
    let Some((first_name, first)) = entities.first() else {
        return Err(Error::BadRequest("no entities given; pass join-key columns such as {\"user_id\": [1, 2]}".into()));
    };
    for (name, values) in entities {
        if values.len() != first.len() {
            return Err(Error::BadRequest(format!("entity columns have different lengths: `{first_name}` has {}, `{name}` has {}", first.len(), values.len())));
        }
    }
    Ok(first.len())
}

/// A view's encoded key for every entity row (`None` where a key is null).
fn view_keys(view: &PlannedView, entities: &EntityColumns, rows: usize) -> Result<Vec<Option<Vec<u8>>>, Error> {
    let mut columns = Vec::with_capacity(view.join_keys.len());
    for (key, dtype) in &view.join_keys {
        let column = entities.iter().find(|(name, _)| name == key).map(|(_, values)| values).ok_or_else(|| {
            let given: Vec<&str> = entities.iter().map(|(name, _)| name.as_str()).collect();
            Error::BadRequest(format!("feature view `{}` needs join key `{key}`, but the request's entities are: {}", view.name, given.join(", ")))
        })?;
        columns.push((key, dtype, column));
    }
    let mut out = Vec::with_capacity(rows);
    let mut parts = Vec::with_capacity(columns.len());
    for row in 0..rows {
        parts.clear();
        for (key, dtype, column) in &columns {
            match key_part(key, dtype, &column[row])? {
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

fn key_part(key: &str, dtype: &DType, value: &Value) -> Result<Option<KeyPart>, Error> {
    Ok(Some(match (dtype, value) {
        (_, Value::Null) => return Ok(None),
        (DType::String, Value::String(s)) => KeyPart::Str(s.clone()),
        (DType::String, _) => return Err(Error::BadRequest(format!("join key `{key}` is a string; got {}", describe(value)))),
        (_, Value::Int64(v)) => KeyPart::Int(*v),
        (_, Value::Int32(v)) => KeyPart::Int(i64::from(*v)),
        _ => return Err(Error::BadRequest(format!("join key `{key}` is an int64; got {}", describe(value)))),
    }))
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("the string {s:?}"),
        Value::Float64(f) => format!("the float {f}"),
        Value::Bool(b) => format!("the boolean {b}"),
        other => format!("{other:?}"),
    }
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
#[derive(Default)]
pub struct PlanCache {
    plans: std::sync::RwLock<HashMap<(String, bool), Arc<OnlinePlan>>>,
}

impl PlanCache {
    pub fn get_or_plan(&self, state: &RegistryState, selection: &FeatureSelection, full_feature_names: bool) -> Result<Arc<OnlinePlan>, Error> {
        let shape = (selection_key(selection), full_feature_names);
        if let Ok(plans) = self.plans.read()
            && let Some(plan) = plans.get(&shape).filter(|p| p.registry_version == state.version) {
                return Ok(plan.clone());
            }
        let plan = Arc::new(OnlinePlan::new(state, selection, full_feature_names)?);
        if let Ok(mut plans) = self.plans.write() {
            plans.retain(|_, p| p.registry_version == state.version);
            // Bounded: a client sending ever-new shapes cannot grow it forever.
            if plans.len() >= 10_000 {
                plans.clear();
            }
            plans.insert(shape, plan.clone());
        }
        Ok(plan)
    }
}

fn selection_key(selection: &FeatureSelection) -> String {
    match selection {
        FeatureSelection::Service(name) => format!("service:{name}"),
        FeatureSelection::Refs(refs) => refs.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(","),
    }
}

/// An instant as Feast writes it: RFC 3339, UTC, `Z`, fractional seconds
/// only when non-zero.
pub fn rfc3339_micros(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true)).unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// A value as Feast's JSON: ints as numbers, floats always with a decimal
/// point or exponent, non-finite floats as strings, missing as null.
pub fn value_json(value: &Value) -> serde_json::Value {
    fn float(f: f64) -> serde_json::Value {
        if f.is_nan() {
            json!("NaN")
        } else if f.is_infinite() {
            json!(if f > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            // serde_json writes finite floats with `.0` or an exponent.
            json!(f)
        }
    }
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => json!(b),
        Value::Int32(i) => json!(i),
        Value::Int64(i) => json!(i),
        // Through its shortest decimal text, so 0.1f32 is 0.1, not 0.100000001.
        Value::Float32(f) => float(f.to_string().parse::<f64>().unwrap_or(f64::from(*f))),
        Value::Float64(f) => float(*f),
        Value::String(s) => json!(s),
        Value::Bytes(b) => json!(b),
        Value::Timestamp(t) => json!(rfc3339_micros(*t)),
        Value::List(items) => serde_json::Value::Array(items.iter().map(value_json).collect()),
    }
}

/// Serializes a response as Feast's body straight into the output buffer
/// (no intermediate JSON tree: this is the serving hot path).
pub struct FeastBody<'a>(pub &'a OnlineResponse);

struct JsonValue<'a>(&'a Value);

impl serde::Serialize for JsonValue<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        match self.0 {
            Value::Null => serializer.serialize_none(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int32(i) => serializer.serialize_i32(*i),
            Value::Int64(i) => serializer.serialize_i64(*i),
            Value::Float64(f) if f.is_finite() => serializer.serialize_f64(*f),
            Value::String(s) => serializer.serialize_str(s),
            Value::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&JsonValue(item))?;
                }
                seq.end()
            }
            other => value_json(other).serialize(serializer),
        }
    }
}

struct Column<'a>(&'a OnlineColumn);

impl serde::Serialize for Column<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Values<'a>(&'a [Value]);
        impl serde::Serialize for Values<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().map(JsonValue))
            }
        }
        struct Times<'a>(&'a [Option<i64>]);
        impl serde::Serialize for Times<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().map(|t| match t {
                    None => std::borrow::Cow::Borrowed("1970-01-01T00:00:00Z"),
                    Some(t) => std::borrow::Cow::Owned(rfc3339_micros(*t)),
                }))
            }
        }
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("event_timestamps", &Times(&self.0.event_timestamps))?;
        map.serialize_entry("statuses", &self.0.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>())?;
        map.serialize_entry("values", &Values(&self.0.values))?;
        map.end()
    }
}

impl serde::Serialize for FeastBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Metadata<'a>(&'a [String]);
        impl serde::Serialize for Metadata<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("feature_names", self.0)?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("metadata", &Metadata(&self.0.feature_names))?;
        map.serialize_entry("results", &self.0.columns.iter().map(Column).collect::<Vec<_>>())?;
        map.end()
    }
}

impl OnlineResponse {
    /// Exactly the body Feast's feature server answers, as bytes.
    pub fn to_feast_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + 96 * self.columns.len() * self.columns.first().map_or(1, |c| c.values.len()));
        // Serializing plain data into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &FeastBody(self));
        out
    }

    /// Exactly the body Feast's feature server answers.
    pub fn to_feast_json(&self) -> serde_json::Value {
        let results: Vec<serde_json::Value> = self
            .columns
            .iter()
            .map(|column| {
                json!({
                    "values": column.values.iter().map(value_json).collect::<Vec<_>>(),
                    "statuses": column.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                    "event_timestamps": column.event_timestamps.iter().map(|t| rfc3339_micros(t.unwrap_or(0))).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({"metadata": {"feature_names": self.feature_names}, "results": results})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streamed_body_equals_the_json_tree() {
        let column = |values: Vec<Value>| OnlineColumn { statuses: vec![FieldStatus::Present; values.len()], event_timestamps: (0..values.len() as i64).map(|i| (i > 0).then_some(i * 1_500_000)).collect(), values };
        let response = OnlineResponse {
            feature_names: vec!["k".into(), "f".into(), "g".into()],
            columns: vec![
                column(vec![Value::Int64(1), Value::String("x\"y".into()), Value::Null]),
                column(vec![Value::Float64(3.0), Value::Float64(f64::NAN), Value::Float32(0.1)]),
                column(vec![Value::List(vec![Value::Int64(1), Value::Null]), Value::Timestamp(5), Value::Bool(true)]),
            ],
        };
        let streamed: serde_json::Value = serde_json::from_slice(&response.to_feast_bytes()).expect("json");
        assert_eq!(streamed, response.to_feast_json());
        assert!(String::from_utf8(response.to_feast_bytes()).expect("utf8").contains("[3.0,\"NaN\",0.1]"));
    }

    #[test]
    fn feast_json_keeps_floats_floats() {
        assert_eq!(value_json(&Value::Float64(3.0)).to_string(), "3.0");
        assert_eq!(value_json(&Value::Float64(1e300)).to_string(), "1e+300");
        assert_eq!(value_json(&Value::Float32(0.1)).to_string(), "0.1");
        assert_eq!(value_json(&Value::Float64(f64::NAN)), json!("NaN"));
        assert_eq!(value_json(&Value::Float64(f64::NEG_INFINITY)), json!("-Infinity"));
        assert_eq!(value_json(&Value::Int64(3)).to_string(), "3");
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_micros(1_500_000), "1970-01-01T00:00:01.500Z");
        assert_eq!(rfc3339_micros(1_000_001), "1970-01-01T00:00:01.000001Z");
    }
}
