//! Feast's wire format for online responses: the one encoder, used by the
//! server's `/get-online-features` and by `almanac online --json`, so the two
//! can never drift apart.
//!
//! The body is column-major: `{"metadata": {"feature_names": [...]},
//! "results": [{"values", "statuses", "event_timestamps"}, ...]}`, one result
//! per name, join keys first. Values follow `almanac_core::Value`'s JSON
//! rules (ints as numbers, floats always with a decimal point, NaN and
//! infinities as strings); event timestamps are RFC 3339 in UTC with a `Z`,
//! and `1970-01-01T00:00:00Z` where there is none (join keys, not found), as
//! Feast writes them. It is serialized straight into the output buffer with
//! no intermediate JSON tree: this is the serving hot path.

use almanac::core::Value;
use almanac::core::convert::value_at;
use almanac::online::OnlineResponse;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

/// Exactly the body Feast's feature server answers, as bytes.
pub fn response_bytes(response: &OnlineResponse) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + 96 * response.values.num_columns() * response.num_rows().max(1));
    // Serializing plain data into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &Body(response));
    out
}

struct Body<'a>(&'a OnlineResponse);

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Metadata<'a>(Vec<&'a str>);
        impl Serialize for Metadata<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("feature_names", &self.0)?;
                map.end()
            }
        }
        let response = self.0;
        let results: Vec<Column<'_>> = (0..response.values.num_columns()).map(|index| Column { response, index }).collect();
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("metadata", &Metadata(response.feature_names()))?;
        map.serialize_entry("results", &results)?;
        map.end()
    }
}

struct Column<'a> {
    response: &'a OnlineResponse,
    index: usize,
}

impl Serialize for Column<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (response, index) = (self.response, self.index);
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("event_timestamps", &Times(&response.event_timestamps[index]))?;
        map.serialize_entry("statuses", &Statuses(&response.statuses[index]))?;
        map.serialize_entry("values", &Values(response.values.column(index).as_ref()))?;
        map.end()
    }
}

struct Times<'a>(&'a [Option<i64>]);

impl Serialize for Times<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|t| match t {
            None => std::borrow::Cow::Borrowed("1970-01-01T00:00:00Z"),
            Some(t) => std::borrow::Cow::Owned(almanac::core::time::rfc3339_micros(*t)),
        }))
    }
}

struct Statuses<'a>(&'a [almanac::FieldStatus]);

impl Serialize for Statuses<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|s| s.as_str()))
    }
}

/// One Arrow column as JSON values. The common types are written straight
/// from the array; everything else goes through `Value`'s JSON rule.
struct Values<'a>(&'a dyn Array);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let array = self.0;
        let mut seq = serializer.serialize_seq(Some(array.len()))?;
        match array.data_type() {
            DataType::Int64 => {
                let ints = array.as_primitive::<Int64Type>();
                for row in 0..array.len() {
                    if array.is_null(row) { seq.serialize_element(&())?; } else { seq.serialize_element(&ints.value(row))?; }
                }
            }
            DataType::Float64 => {
                for row in 0..array.len() {
                    let value = if array.is_null(row) { Value::Null } else { Value::Float64(array.as_primitive::<Float64Type>().value(row)) };
                    seq.serialize_element(&value)?;
                }
            }
            _ => {
                for row in 0..array.len() {
                    seq.serialize_element(&value_at(array, row))?;
                }
            }
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use almanac::FieldStatus;
    use arrow::array::{ArrayRef, Float32Array, Float64Array, Int64Array, ListArray, RecordBatch, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::Int64Type;

    use super::*;

    #[test]
    fn the_body_is_feasts_shape_with_floats_kept_floats() {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("k", Arc::new(Int64Array::from(vec![Some(1), None, Some(3)]))),
            ("s", Arc::new(StringArray::from(vec![Some("x\"y"), None, Some("z")]))),
            ("f", Arc::new(Float64Array::from(vec![Some(3.0), Some(f64::NAN), None]))),
            ("g", Arc::new(Float32Array::from(vec![Some(0.1), None, Some(f32::NEG_INFINITY)]))),
            ("l", Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1), None]), None, Some(vec![])]))),
            ("t", Arc::new(TimestampMicrosecondArray::from(vec![Some(5), None, Some(1_500_000)]).with_timezone("UTC"))),
        ];
        let values = RecordBatch::try_from_iter(columns).expect("batch");
        let n = values.num_columns();
        let response = OnlineResponse { values, statuses: vec![vec![FieldStatus::Present, FieldStatus::NullValue, FieldStatus::NotFound]; n], event_timestamps: vec![vec![None, Some(1_500_000), Some(0)]; n] };
        let body: serde_json::Value = serde_json::from_slice(&response_bytes(&response)).expect("json");
        assert_eq!(body["metadata"]["feature_names"], serde_json::json!(["k", "s", "f", "g", "l", "t"]));
        let results = body["results"].as_array().expect("results");
        assert_eq!(results[0]["values"], serde_json::json!([1, null, 3]));
        assert_eq!(results[1]["values"], serde_json::json!(["x\"y", null, "z"]));
        assert_eq!(results[2]["values"], serde_json::json!([3.0, "NaN", null]));
        assert_eq!(results[3]["values"], serde_json::json!([0.1, null, "-Infinity"]));
        assert_eq!(results[4]["values"], serde_json::json!([[1, null], null, []]));
        assert_eq!(results[5]["values"], serde_json::json!(["1970-01-01T00:00:00.000005Z", null, "1970-01-01T00:00:01.500Z"]));
        assert_eq!(results[0]["statuses"], serde_json::json!(["PRESENT", "NULL_VALUE", "NOT_FOUND"]));
        assert_eq!(results[0]["event_timestamps"], serde_json::json!(["1970-01-01T00:00:00Z", "1970-01-01T00:00:01.500Z", "1970-01-01T00:00:00Z"]));
        let text = String::from_utf8(response_bytes(&response)).expect("utf8");
        assert!(text.contains("[3.0,\"NaN\",null]"), "{text}");
    }
}
