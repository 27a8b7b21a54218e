//! Feature value types and how they map to Arrow.
//!
//! The set is deliberately small (what feature stores actually serve) and every
//! type has exactly one canonical Arrow type, so the offline engine, the online
//! encoding and the Python SDK all agree on what "int64" means.

use std::fmt;
use std::str::FromStr;

use arrow_schema::{DataType, Field as ArrowField, TimeUnit};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A feature's declared value type, written in definitions as `int64`,
/// `float32`, `string`, `timestamp`, `list<int64>`, ...
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DType {
    Bool,
    Int32,
    Int64,
    Float32,
    Float64,
    String,
    Bytes,
    /// A UTC instant with microsecond precision.
    Timestamp,
    List(Box<DType>),
}

/// The scalar type names, in the order a "did you mean" list shows them.
pub const SCALAR_NAMES: [&str; 8] =
    ["bool", "int32", "int64", "float32", "float64", "string", "bytes", "timestamp"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a dtype; use one of bool, int32, int64, float32, float64, string, bytes, timestamp, or list<T> of one of these")]
pub struct DTypeError {
    pub input: String,
}

impl DType {
    /// The canonical Arrow type Almanac produces for this dtype.
    pub fn to_arrow(&self) -> DataType {
        match self {
            DType::Bool => DataType::Boolean,
            DType::Int32 => DataType::Int32,
            DType::Int64 => DataType::Int64,
            DType::Float32 => DataType::Float32,
            DType::Float64 => DataType::Float64,
            DType::String => DataType::Utf8,
            DType::Bytes => DataType::Binary,
            DType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DType::List(inner) => {
                DataType::List(ArrowField::new("item", inner.to_arrow(), true).into())
            }
        }
    }

    /// The dtype a stored Arrow column represents, if it is one Almanac can serve.
    ///
    /// Several physical Arrow types collapse to one dtype (`Utf8`, `LargeUtf8` and
    /// `Utf8View` are all `string`; any timestamp unit or zone is `timestamp`)
    /// because files written by different tools spell the same logical column
    /// differently, and rejecting those would only make users re-write data.
    pub fn from_arrow(data_type: &DataType) -> Option<DType> {
        Some(match data_type {
            DataType::Boolean => DType::Bool,
            DataType::Int32 => DType::Int32,
            DataType::Int64 => DType::Int64,
            DataType::Float32 => DType::Float32,
            DataType::Float64 => DType::Float64,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DType::String,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => DType::Bytes,
            DataType::Timestamp(_, _) => DType::Timestamp,
            DataType::List(field) | DataType::LargeList(field) | DataType::ListView(field) => {
                DType::List(Box::new(DType::from_arrow(field.data_type())?))
            }
            _ => return None,
        })
    }

    /// Whether a column stored as `data_type` can be read as this dtype without
    /// losing information: the same logical type, or a lossless widening
    /// (int32 data for an int64 feature, float32 data for a float64 feature).
    pub fn accepts(&self, data_type: &DataType) -> bool {
        let Some(stored) = DType::from_arrow(data_type) else {
            return false;
        };
        self.accepts_dtype(&stored)
    }

    fn accepts_dtype(&self, stored: &DType) -> bool {
        match (self, stored) {
            (DType::Int64, DType::Int32) | (DType::Float64, DType::Float32) => true,
            (DType::List(want), DType::List(have)) => want.accepts_dtype(have),
            (want, have) => want == have,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            DType::Bool => "bool",
            DType::Int32 => "int32",
            DType::Int64 => "int64",
            DType::Float32 => "float32",
            DType::Float64 => "float64",
            DType::String => "string",
            DType::Bytes => "bytes",
            DType::Timestamp => "timestamp",
            DType::List(inner) => return write!(f, "list<{inner}>"),
        };
        f.write_str(name)
    }
}

impl FromStr for DType {
    type Err = DTypeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let text = input.trim();
        let err = || DTypeError { input: input.to_string() };
        if let Some(inner) = text.strip_prefix("list<").and_then(|rest| rest.strip_suffix('>')) {
            let inner: DType = inner.parse().map_err(|_| err())?;
            if matches!(inner, DType::List(_)) {
                return Err(err());
            }
            return Ok(DType::List(Box::new(inner)));
        }
        Ok(match text {
            "bool" => DType::Bool,
            "int32" => DType::Int32,
            "int64" => DType::Int64,
            "float32" => DType::Float32,
            "float64" => DType::Float64,
            "string" => DType::String,
            "bytes" => DType::Bytes,
            "timestamp" => DType::Timestamp,
            _ => return Err(err()),
        })
    }
}

impl Serialize for DType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips_through_text_and_arrow() {
        let mut names: Vec<String> = SCALAR_NAMES.iter().map(|s| s.to_string()).collect();
        names.extend(SCALAR_NAMES.iter().map(|s| format!("list<{s}>")));
        for name in names {
            let dtype: DType = name.parse().expect(&name);
            assert_eq!(dtype.to_string(), name);
            assert_eq!(DType::from_arrow(&dtype.to_arrow()), Some(dtype));
        }
    }

    #[test]
    fn rejects_unknown_and_nested_lists() {
        for bad in ["int", "float", "list<list<int64>>", "list<>", "List<int64>", ""] {
            assert!(bad.parse::<DType>().is_err(), "{bad}");
        }
    }

    #[test]
    fn accepts_lossless_widening_only() {
        assert!(DType::Int64.accepts(&DataType::Int32));
        assert!(!DType::Int32.accepts(&DataType::Int64));
        assert!(DType::Float64.accepts(&DataType::Float32));
        assert!(!DType::Int64.accepts(&DataType::Float64));
        assert!(DType::String.accepts(&DataType::LargeUtf8));
        assert!(DType::Timestamp.accepts(&DataType::Timestamp(TimeUnit::Nanosecond, None)));
        assert!(!DType::Timestamp.accepts(&DataType::Utf8));
    }
}
