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
    /// JSON text (Feast's `Json`): stored and served as the text, as Feast's
    /// server serves it.
    Json,
    /// Named fields (Feast's `Struct`; also what Feast's `Map` is in its
    /// Parquet files): served as a JSON object.
    Struct(Vec<(String, DType)>),
    /// String keys to values of one dtype (an Arrow map): served as a JSON
    /// object.
    Map(Box<DType>),
}

/// The scalar type names, in the order a "did you mean" list shows them.
pub const SCALAR_NAMES: [&str; 8] =
    ["bool", "int32", "int64", "float32", "float64", "string", "bytes", "timestamp"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a dtype; use one of bool, int32, int64, float32, float64, string, bytes, timestamp, json, struct<name: T, ...>, map<T>, or list<T> of one of these (e.g. `struct<vehicle_type: string, rating: float64>`, `map<string>`, `list<int64>`)")]
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
            DType::Json => DataType::Utf8,
            DType::Struct(fields) => DataType::Struct(
                fields.iter().map(|(name, dtype)| ArrowField::new(name, dtype.to_arrow(), true)).collect(),
            ),
            DType::Map(value) => DataType::Map(DType::map_entries(value.to_arrow()).into(), false),
        }
    }

    /// Whether values of this dtype have parts (struct fields, map entries),
    /// which Arrow's cast does not match by name.
    pub fn is_nested(&self) -> bool {
        match self {
            DType::Struct(_) | DType::Map(_) => true,
            DType::List(inner) => inner.is_nested(),
            _ => false,
        }
    }

    /// The entries field of an Arrow map with string keys.
    pub fn map_entries(value: DataType) -> ArrowField {
        let entries = DataType::Struct(
            vec![ArrowField::new("key", DataType::Utf8, false), ArrowField::new("value", value, true)].into(),
        );
        ArrowField::new("entries", entries, false)
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
            DataType::Struct(fields) => DType::Struct(
                fields
                    .iter()
                    .map(|f| Some((f.name().clone(), DType::from_arrow(f.data_type())?)))
                    .collect::<Option<Vec<_>>>()?,
            ),
            DataType::Map(entries, _) => {
                let DataType::Struct(parts) = entries.data_type() else { return None };
                let [key, value] = parts.iter().collect::<Vec<_>>()[..] else { return None };
                if DType::from_arrow(key.data_type()) != Some(DType::String) {
                    return None;
                }
                DType::Map(Box::new(DType::from_arrow(value.data_type())?))
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
            // JSON is kept as its text.
            (DType::Json, DType::String) => true,
            (DType::Map(want), DType::Map(have)) => want.accepts_dtype(have),
            // Fields are read by name, in the declared order (a file may
            // hold them in another order, or more of them).
            (DType::Struct(want), DType::Struct(have)) => want
                .iter()
                .all(|(name, dtype)| have.iter().any(|(n, d)| n == name && dtype.accepts_dtype(d))),
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
            DType::Json => "json",
            DType::Map(value) => return write!(f, "map<{value}>"),
            DType::Struct(fields) => {
                f.write_str("struct<")?;
                for (index, (name, dtype)) in fields.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name}: {dtype}")?;
                }
                return f.write_str(">");
            }
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
        if let Some(inner) = text.strip_prefix("map<").and_then(|rest| rest.strip_suffix('>')) {
            return Ok(DType::Map(Box::new(inner.parse().map_err(|_| err())?)));
        }
        if let Some(inner) = text.strip_prefix("struct<").and_then(|rest| rest.strip_suffix('>')) {
            let mut fields: Vec<(String, DType)> = Vec::new();
            for part in split_top_level(inner) {
                let (name, dtype) = part.split_once(':').ok_or_else(err)?;
                let name = name.trim();
                let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !plain || fields.iter().any(|(n, _)| n == name) {
                    return Err(err());
                }
                fields.push((name.to_string(), dtype.parse().map_err(|_| err())?));
            }
            if fields.is_empty() {
                return Err(err());
            }
            return Ok(DType::Struct(fields));
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
            "json" => DType::Json,
            _ => return Err(err()),
        })
    }
}

/// `a: int64, b: map<string>` split at the commas outside any `<...>`.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (index, c) in text.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
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
    fn nested_types_round_trip_through_text_and_arrow() {
        for name in ["json", "list<json>", "map<string>", "map<float64>", "struct<name: string, age: int64>", "list<struct<x: float64>>", "struct<meta: map<string>, tags: list<string>>", "map<struct<a: bool>>"] {
            let dtype: DType = name.parse().expect(name);
            assert_eq!(dtype.to_string(), name);
            if dtype != DType::Json && dtype != DType::List(Box::new(DType::Json)) {
                assert_eq!(DType::from_arrow(&dtype.to_arrow()), Some(dtype), "{name}");
            }
        }
        for bad in ["struct<>", "struct<a int64>", "struct<a: int64, a: string>", "struct<a-b: int64>", "map<>", "struct<a: list<list<int64>>>"] {
            assert!(bad.parse::<DType>().is_err(), "{bad}");
        }
        assert!(DType::Json.accepts(&DataType::LargeUtf8));
        let declared: DType = "struct<rating: float64, kind: string>".parse().expect("struct");
        let stored: DType = "struct<kind: string, rating: float32, extra: int64>".parse().expect("struct");
        assert!(declared.accepts(&stored.to_arrow()), "by name, widening, extra fields ignored");
        assert!(!stored.accepts(&declared.to_arrow()));
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
