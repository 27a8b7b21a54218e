//! A single feature value as the serving path carries it.
//!
//! The offline engine works on Arrow columns; serving answers one entity at a
//! time, where a small enum is cheaper than a one-row Arrow array and maps
//! directly onto JSON. Every variant corresponds to exactly one [`DType`]
//! (see [`Value::dtype`]), so a value can always be checked against a schema.
//!
//! [`DType`]: crate::DType

use crate::dtype::DType;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Bytes(Vec<u8>),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    List(Vec<Value>),
    /// A struct's fields or a map's entries, in order (a JSON object).
    Object(Vec<(String, Value)>),
}

impl Value {
    /// A JSON value, loosely typed (integers as int64, other numbers as
    /// float64, objects as [`Value::Object`]): what an edge (a pushed JSON
    /// column, a stream event) hands to [`crate::convert::coerce`], which
    /// applies the declared dtype.
    pub fn from_json(value: &serde_json::Value) -> Value {
        match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int64(i),
                None => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(items) => Value::List(items.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect()),
        }
    }

    /// [`Value::from_json`], taking the JSON by value so strings move
    /// instead of being copied (a stream decodes every event this way).
    pub fn from_json_owned(value: serde_json::Value) -> Value {
        match value {
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => Value::List(items.into_iter().map(Value::from_json_owned).collect()),
            serde_json::Value::Object(fields) => Value::Object(fields.into_iter().map(|(k, v)| (k, Value::from_json_owned(v))).collect()),
            other => Value::from_json(&other),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The dtype of a non-null scalar (lists report `list<T>` of their first
    /// non-null item, `None` when that cannot be told).
    pub fn dtype(&self) -> Option<DType> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => DType::Bool,
            Value::Int32(_) => DType::Int32,
            Value::Int64(_) => DType::Int64,
            Value::Float32(_) => DType::Float32,
            Value::Float64(_) => DType::Float64,
            Value::String(_) => DType::String,
            Value::Bytes(_) => DType::Bytes,
            Value::Timestamp(_) => DType::Timestamp,
            Value::List(items) => DType::List(Box::new(items.iter().find_map(Value::dtype)?)),
            Value::Object(fields) => DType::Struct(fields.iter().map(|(name, value)| Some((name.clone(), value.dtype()?))).collect::<Option<Vec<_>>>()?),
        })
    }

    /// Equality for parity checks: floats within a relative tolerance
    /// (`0.0` = exact, NaN equal to NaN), everything else exact.
    pub fn approx_eq(&self, other: &Value, tolerance: f64) -> bool {
        let close = |a: f64, b: f64| {
            if a.is_nan() || b.is_nan() {
                return a.is_nan() && b.is_nan();
            }
            if a == b {
                return true;
            }
            tolerance > 0.0 && (a - b).abs() <= tolerance * a.abs().max(b.abs())
        };
        match (self, other) {
            (Value::Float64(a), Value::Float64(b)) => close(*a, *b),
            (Value::Float32(a), Value::Float32(b)) => close(f64::from(*a), f64::from(*b)),
            (Value::List(a), Value::List(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.approx_eq(y, tolerance)),
            (Value::Object(a), Value::Object(b)) => a.len() == b.len() && a.iter().zip(b).all(|((m, x), (n, y))| m == n && x.approx_eq(y, tolerance)),
            (a, b) => a == b,
        }
    }
}

/// A value as JSON, the way Feast's server writes one (so every JSON Almanac
/// writes agrees): integers as numbers, floats always with a decimal point or
/// an exponent (`3.0`), NaN and infinities as the strings `"NaN"`,
/// `"Infinity"`, `"-Infinity"`, timestamps as RFC 3339 in UTC, bytes as an
/// array of numbers, null as `null`.
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn float<S: serde::Serializer>(f: f64, serializer: S) -> Result<S::Ok, S::Error> {
            if f.is_nan() {
                serializer.serialize_str("NaN")
            } else if f.is_infinite() {
                serializer.serialize_str(if f > 0.0 { "Infinity" } else { "-Infinity" })
            } else {
                // serde_json writes finite floats with `.0` or an exponent.
                serializer.serialize_f64(f)
            }
        }
        match self {
            Value::Null => serializer.serialize_none(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int32(i) => serializer.serialize_i32(*i),
            Value::Int64(i) => serializer.serialize_i64(*i),
            // Through its shortest decimal text, so 0.1f32 is 0.1, not 0.100000001.
            Value::Float32(f) => float(f.to_string().parse::<f64>().unwrap_or(f64::from(*f)), serializer),
            Value::Float64(f) => float(*f, serializer),
            Value::String(s) => serializer.serialize_str(s),
            Value::Bytes(b) => serializer.collect_seq(b),
            Value::Timestamp(t) => serializer.serialize_str(&crate::time::rfc3339_micros(*t)),
            Value::List(items) => serializer.collect_seq(items),
            Value::Object(fields) => serializer.collect_map(fields.iter().map(|(k, v)| (k, v))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approx_eq_handles_nan_and_tolerance() {
        assert!(Value::Float64(f64::NAN).approx_eq(&Value::Float64(f64::NAN), 0.0));
        assert!(!Value::Float64(1.0).approx_eq(&Value::Float64(1.0 + 1e-9), 0.0));
        assert!(Value::Float64(1.0).approx_eq(&Value::Float64(1.0 + 1e-9), 1e-6));
        assert!(!Value::Int64(1).approx_eq(&Value::Float64(1.0), 1.0));
        assert_eq!(Value::List(vec![Value::Null, Value::Int32(1)]).dtype(), Some(DType::List(Box::new(DType::Int32))));
    }

    #[test]
    fn json_keeps_floats_floats_as_feast_does() {
        let json = |v: Value| serde_json::to_string(&v).expect("json");
        assert_eq!(json(Value::Float64(3.0)), "3.0");
        assert_eq!(json(Value::Float64(1e300)), "1e+300");
        assert_eq!(json(Value::Float32(0.1)), "0.1");
        assert_eq!(json(Value::Float64(f64::NAN)), "\"NaN\"");
        assert_eq!(json(Value::Float64(f64::NEG_INFINITY)), "\"-Infinity\"");
        assert_eq!(json(Value::Int64(3)), "3");
        assert_eq!(json(Value::Timestamp(1_500_000)), "\"1970-01-01T00:00:01.500Z\"");
        assert_eq!(json(Value::List(vec![Value::Int64(1), Value::Null])), "[1,null]");
        assert_eq!(json(Value::Object(vec![("b".into(), Value::String("x".into())), ("a".into(), Value::Null)])), r#"{"b":"x","a":null}"#);
    }
}
