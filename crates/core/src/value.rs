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
}

impl Value {
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
            (a, b) => a == b,
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
}
