//! Request bodies, parsed exactly as Feast's clients send them.
//!
//! Unknown top-level fields are ignored (Feast's client always sends
//! `include_feature_view_version_metadata`); the `entities` object keeps
//! the order it was written in, because the response echoes join keys in
//! that order.

use std::fmt;

use almanac::core::Value;
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use crate::error::ApiError;

#[derive(Debug, Deserialize)]
pub struct OnlineBody {
    #[serde(default)]
    pub features: Option<Vec<String>>,
    #[serde(default)]
    pub feature_service: Option<String>,
    pub entities: OrderedColumns,
    /// Request fields of on-demand views, as Feast's Go server takes them
    /// (Feast's Python server takes them beside the join keys in `entities`).
    #[serde(default)]
    pub request_context: Option<OrderedColumns>,
    #[serde(default)]
    pub full_feature_names: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct PushBody {
    pub push_source_name: String,
    pub df: OrderedColumns,
    #[serde(default)]
    pub to: Option<String>,
}

/// A JSON object of columns (`{"user_id": [1, 2]}`) in written order.
#[derive(Debug, Default)]
pub struct OrderedColumns(pub Vec<(String, Vec<serde_json::Value>)>);

impl<'de> Deserialize<'de> for OrderedColumns {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Columns;
        impl<'de> Visitor<'de> for Columns {
            type Value = OrderedColumns;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of columns, e.g. {\"user_id\": [1, 2]}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedColumns, A::Error> {
                let mut out: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let values: serde_json::Value = map.next_value()?;
                    // A column is a list, as Feast's request model requires: a
                    // bare scalar is a client bug, not a one-row column.
                    let values = match values {
                        serde_json::Value::Array(items) => items,
                        scalar => return Err(de::Error::custom(format!("column `{name}` must be a list of values (e.g. \"{name}\": [{scalar}]), not a single value"))),
                    };
                    if out.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format!("column `{name}` is given twice")));
                    }
                    out.push((name, values));
                }
                Ok(OrderedColumns(out))
            }
        }
        deserializer.deserialize_map(Columns)
    }
}

/// A JSON entity value: a join key (integer or string) or a request field
/// (any scalar). The facade checks each against what it is used for.
pub fn entity_value(column: &str, value: &serde_json::Value) -> Result<Value, ApiError> {
    match value {
        serde_json::Value::Null => Ok(Value::Null),
        serde_json::Value::Bool(b) => Ok(Value::Bool(*b)),
        serde_json::Value::String(s) => Ok(Value::String(s.clone())),
        serde_json::Value::Number(n) => Ok(match n.as_i64() {
            Some(i) => Value::Int64(i),
            None => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
        }),
        other => Err(ApiError::bad_request(format!("entity `{column}` has the value {other}; join keys are integers (int64) or strings, request fields are scalars"))),
    }
}

/// Turn a parse failure into a message that says where and what.
pub fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        let kind = if error.is_syntax() || error.is_eof() { "malformed JSON" } else { "invalid request" };
        ApiError::bad_request(format!("{kind}: {error}"))
    })
}
