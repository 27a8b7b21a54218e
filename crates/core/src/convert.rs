//! Value ↔ Arrow: the one place a [`Value`] becomes an Arrow array cell and
//! back, and where loosely typed input (JSON numbers and strings) is coerced
//! to a declared [`DType`].
//!
//! The facade speaks Arrow; the serving path and the wire formats deal in
//! single values. Every crossing between the two goes through this module,
//! so "what an int64 is" and "how a timestamp in nanoseconds reads" are
//! decided once. Reading matches on the array's *actual* type (every
//! timestamp unit and zone, every string and binary layout), never on the
//! type Almanac would have written, because user files are not ours.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, ListArray, MapArray, NullArray, RecordBatch,
    StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Field, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::error::ArrowError;

use crate::dtype::DType;
use crate::time;
use crate::value::Value;

/// A value that does not fit where it was put.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// One cell of a named column, with the reason and what was expected.
    #[error("column `{column}`, row {row}: {reason}")]
    Cell { column: String, row: usize, reason: String },
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The value at `row`, read by the array's actual type. Timestamps of any
/// unit and zone become UTC microseconds (nanoseconds round toward the
/// past, as everywhere in Almanac); dates become midnight UTC; narrower
/// integers widen; types with no [`Value`] render as text.
pub fn value_at(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => Value::Int32(i32::from(array.as_primitive::<Int8Type>().value(row))),
        DataType::Int16 => Value::Int32(i32::from(array.as_primitive::<Int16Type>().value(row))),
        DataType::Int32 => Value::Int32(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Value::Int64(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::Int32(i32::from(array.as_primitive::<UInt8Type>().value(row))),
        DataType::UInt16 => Value::Int32(i32::from(array.as_primitive::<UInt16Type>().value(row))),
        DataType::UInt32 => Value::Int64(i64::from(array.as_primitive::<UInt32Type>().value(row))),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(row);
            i64::try_from(v).map(Value::Int64).unwrap_or_else(|_| Value::String(v.to_string()))
        }
        DataType::Float32 => Value::Float32(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Value::Float64(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_string()),
        DataType::Binary => Value::Bytes(array.as_binary::<i32>().value(row).to_vec()),
        DataType::LargeBinary => Value::Bytes(array.as_binary::<i64>().value(row).to_vec()),
        DataType::BinaryView => Value::Bytes(array.as_binary_view().value(row).to_vec()),
        DataType::Timestamp(unit, _) => Value::Timestamp(timestamp_micros(array, *unit, row)),
        DataType::Date32 => Value::Timestamp(i64::from(array.as_primitive::<Date32Type>().value(row)) * MICROS_PER_DAY),
        DataType::Date64 => Value::Timestamp(array.as_primitive::<Date64Type>().value(row).saturating_mul(1_000)),
        DataType::List(_) => list_value(&array.as_list::<i32>().value(row)),
        DataType::LargeList(_) => list_value(&array.as_list::<i64>().value(row)),
        DataType::Struct(fields) => {
            let parts = array.as_struct();
            Value::Object(fields.iter().zip(parts.columns()).map(|(field, column)| (field.name().clone(), value_at(column.as_ref(), row))).collect())
        }
        DataType::Map(_, _) => {
            let entries = array.as_map().value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            Value::Object((0..entries.len()).map(|i| (text_of(value_at(keys.as_ref(), i)), value_at(values.as_ref(), i))).collect())
        }
        _ => Value::String(arrow::util::display::array_value_to_string(&make_ref(array), row).unwrap_or_default()),
    }
}

/// A map key as text (Almanac's maps have string keys; another key type in
/// a user's file is shown as its JSON).
fn text_of(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => serde_json::to_string(&other).unwrap_or_default(),
    }
}

fn make_ref(array: &dyn Array) -> ArrayRef {
    arrow::array::make_array(array.to_data())
}

fn list_value(items: &ArrayRef) -> Value {
    Value::List((0..items.len()).map(|i| value_at(items.as_ref(), i)).collect())
}

/// A timestamp cell of any unit as UTC microseconds (floor for nanoseconds).
fn timestamp_micros(array: &dyn Array, unit: TimeUnit, row: usize) -> i64 {
    match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row).saturating_mul(1_000_000),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row).saturating_mul(1_000),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row).div_euclid(1_000),
    }
}

/// Every cell of a column as [`Value`]s.
pub fn values_of(array: &dyn Array) -> Vec<Value> {
    (0..array.len()).map(|row| value_at(array, row)).collect()
}

/// Values already of `dtype` (or null) as an Arrow array of its canonical
/// type ([`DType::to_arrow`]). A value of another type is an error naming
/// the row, never a silent null.
pub fn to_array(column: &str, values: &[Value], dtype: &DType) -> Result<ArrayRef, ConvertError> {
    let wrong = |row: usize, value: &Value| ConvertError::Cell { column: column.to_string(), row, reason: format!("expected {dtype}, got {}", describe(value)) };
    // One pass straight into the array's buffers (this runs for every
    // column of every online response): check first, then build.
    macro_rules! typed {
        ($array:ty, $variant:ident, $map:expr) => {{
            if let Some((row, other)) = values.iter().enumerate().find(|(_, v)| !matches!(v, Value::Null | Value::$variant(_))) {
                return Err(wrong(row, other));
            }
            Arc::new(values.iter().map(|value| match value {
                Value::$variant(v) => Some($map(v)),
                _ => None,
            }).collect::<$array>()) as ArrayRef
        }};
    }
    Ok(match dtype {
        DType::Bool => typed!(BooleanArray, Bool, |v: &bool| *v),
        DType::Int32 => typed!(Int32Array, Int32, |v: &i32| *v),
        DType::Int64 => typed!(Int64Array, Int64, |v: &i64| *v),
        DType::Float32 => typed!(Float32Array, Float32, |v: &f32| *v),
        DType::Float64 => typed!(Float64Array, Float64, |v: &f64| *v),
        DType::String => typed!(StringArray, String, |v: &String| v.clone()),
        DType::Bytes => {
            let mut out: Vec<Option<&[u8]>> = Vec::with_capacity(values.len());
            for (row, value) in values.iter().enumerate() {
                out.push(match value {
                    Value::Null => None,
                    Value::Bytes(v) => Some(v.as_slice()),
                    other => return Err(wrong(row, other)),
                });
            }
            Arc::new(BinaryArray::from(out))
        }
        DType::Timestamp => Arc::new(match typed!(TimestampMicrosecondArray, Timestamp, |v: &i64| *v).as_primitive_opt::<TimestampMicrosecondType>() {
            Some(array) => array.clone().with_timezone("UTC"),
            None => unreachable_array(),
        }),
        DType::List(inner) => {
            let mut items = Vec::new();
            let mut lengths = Vec::with_capacity(values.len());
            let mut valid = Vec::with_capacity(values.len());
            for (row, value) in values.iter().enumerate() {
                match value {
                    Value::Null => {
                        lengths.push(0);
                        valid.push(false);
                    }
                    Value::List(list) => {
                        lengths.push(list.len());
                        valid.push(true);
                        items.extend(list.iter().cloned());
                    }
                    other => return Err(wrong(row, other)),
                }
            }
            let child = to_array(column, &items, inner)?;
            let field = Arc::new(Field::new("item", inner.to_arrow(), true));
            Arc::new(ListArray::try_new(field, OffsetBuffer::from_lengths(lengths), child, Some(NullBuffer::from(valid)))?)
        }
        DType::Json => typed!(StringArray, String, |v: &String| v.clone()),
        DType::Struct(fields) => {
            let mut valid = Vec::with_capacity(values.len());
            let mut children: Vec<Vec<Value>> = vec![Vec::with_capacity(values.len()); fields.len()];
            for (row, value) in values.iter().enumerate() {
                match value {
                    Value::Null => valid.push(false),
                    Value::Object(given) => {
                        valid.push(true);
                        if let Some((name, _)) = given.iter().find(|(name, _)| !fields.iter().any(|(f, _)| f == name)) {
                            return Err(ConvertError::Cell { column: column.to_string(), row, reason: format!("`{name}` is not a field of {dtype}") });
                        }
                    }
                    other => return Err(wrong(row, other)),
                }
                for ((name, _), child) in fields.iter().zip(children.iter_mut()) {
                    let field_value = match value {
                        Value::Object(given) => given.iter().find(|(n, _)| n == name).map_or(Value::Null, |(_, v)| v.clone()),
                        _ => Value::Null,
                    };
                    child.push(field_value);
                }
            }
            let arrays = fields.iter().zip(&children).map(|((name, dtype), child)| to_array(&format!("{column}.{name}"), child, dtype)).collect::<Result<Vec<_>, _>>()?;
            let DataType::Struct(arrow_fields) = dtype.to_arrow() else { return Err(ConvertError::Arrow(ArrowError::CastError(format!("{dtype} is not an Arrow struct")))) };
            Arc::new(StructArray::try_new(arrow_fields, arrays, Some(NullBuffer::from(valid)))?)
        }
        DType::Map(inner) => {
            let (mut keys, mut items, mut lengths, mut valid) = (Vec::new(), Vec::new(), Vec::with_capacity(values.len()), Vec::with_capacity(values.len()));
            for (row, value) in values.iter().enumerate() {
                match value {
                    Value::Null => {
                        lengths.push(0);
                        valid.push(false);
                    }
                    Value::Object(entries) => {
                        lengths.push(entries.len());
                        valid.push(true);
                        for (key, item) in entries {
                            keys.push(key.as_str());
                            items.push(item.clone());
                        }
                    }
                    other => return Err(wrong(row, other)),
                }
            }
            let entries = map_entries(Arc::new(StringArray::from(keys)), to_array(column, &items, inner)?, inner)?;
            Arc::new(MapArray::try_new(DType::map_entries(inner.to_arrow()).into(), OffsetBuffer::from_lengths(lengths), entries, Some(NullBuffer::from(valid)), false)?)
        }
    })
}

fn map_entries(keys: ArrayRef, values: ArrayRef, value_dtype: &DType) -> Result<StructArray, ArrowError> {
    let fields = vec![Field::new("key", DataType::Utf8, false), Field::new("value", value_dtype.to_arrow(), true)];
    StructArray::try_new(fields.into(), vec![keys, values], None)
}

/// `array` as `dtype`'s canonical Arrow type ([`DType::to_arrow`]); see
/// [`conform_to`].
pub fn conform(array: &ArrayRef, dtype: &DType) -> Result<ArrayRef, ArrowError> {
    conform_to(array, &dtype.to_arrow())
}

/// `array` as the Arrow type `target`: Arrow's cast, except that struct
/// fields are matched **by name** (a file or a push may hold them in
/// another order, or hold more of them; a missing one is null), and that
/// lists and maps of structs are conformed item by item. What a source file
/// holds is read through this before it joins Almanac's columns, and what a
/// push writes before it joins the files.
pub fn conform_to(array: &ArrayRef, target: &DataType) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == target {
        return Ok(array.clone());
    }
    match (target, array.data_type()) {
        (DataType::Struct(fields), DataType::Struct(_)) => {
            let parts = array.as_struct();
            let children = fields
                .iter()
                .map(|field| match parts.column_by_name(field.name()) {
                    Some(child) => conform_to(child, field.data_type()),
                    None => Ok(arrow::array::new_null_array(field.data_type(), parts.len())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(fields.clone(), children, parts.nulls().cloned())?))
        }
        (DataType::List(item), DataType::List(_)) => {
            let list = array.as_list::<i32>();
            let items = conform_to(list.values(), item.data_type())?;
            Ok(Arc::new(ListArray::try_new(item.clone(), list.offsets().clone(), items, list.nulls().cloned())?))
        }
        (DataType::List(_), DataType::LargeList(item)) => {
            let narrowed = arrow::compute::cast(array, &DataType::List(item.clone()))?;
            conform_to(&narrowed, target)
        }
        (DataType::Map(entries, sorted), DataType::Map(_, _)) => {
            let DataType::Struct(parts) = entries.data_type() else { return arrow::compute::cast(array, target) };
            let map = array.as_map();
            let keys = conform_to(map.keys(), parts[0].data_type())?;
            let values = conform_to(map.values(), parts[1].data_type())?;
            let entries_array = StructArray::try_new(parts.clone(), vec![keys, values], None)?;
            Ok(Arc::new(MapArray::try_new(entries.clone(), map.offsets().clone(), entries_array, map.nulls().cloned(), *sorted)?))
        }
        _ => arrow::compute::cast(array, target),
    }
}

/// `typed!` for timestamps builds a `TimestampMicrosecondArray`, so the
/// downcast above cannot fail; this keeps the function total without a
/// panic path.
fn unreachable_array() -> TimestampMicrosecondArray {
    TimestampMicrosecondArray::from(Vec::<i64>::new()).with_timezone("UTC")
}

/// How a value is named in messages.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::String(s) => format!("the string {s:?}"),
        Value::Float64(f) => format!("the float {f}"),
        Value::Float32(f) => format!("the float {f}"),
        Value::Int64(i) => format!("the integer {i}"),
        Value::Int32(i) => format!("the integer {i}"),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Bytes(b) => format!("{} bytes", b.len()),
        Value::Timestamp(t) => format!("the timestamp {}", time::rfc3339_micros(*t)),
        Value::List(items) => format!("a list of {} items", items.len()),
        Value::Object(fields) => format!("an object with {} fields", fields.len()),
    }
}

/// A value as JSON text (what a `json` feature stores when it is given a
/// JSON value rather than its text).
fn json_text(value: &Value) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| format!("cannot write JSON: {e}"))
}

/// A loosely typed value (from JSON: integers, floats, strings, booleans,
/// lists) as `dtype`: integers widen to floats, timestamps are text in
/// [`time`]'s grammar or epoch seconds, `"NaN"`/`"Infinity"`/`"-Infinity"`
/// are floats (as Feast writes them).
/// [`coerce`] taking the value by value: one that already has the dtype's
/// variant is returned as it is, with no copy.
pub fn coerce_owned(value: Value, dtype: &DType) -> Result<Value, String> {
    match (dtype, value) {
        (_, Value::Null) => Ok(Value::Null),
        (DType::String, Value::String(s)) => Ok(Value::String(s)),
        (DType::Int64, Value::Int64(v)) => Ok(Value::Int64(v)),
        (DType::Float64, Value::Float64(v)) => Ok(Value::Float64(v)),
        (DType::Bool, Value::Bool(v)) => Ok(Value::Bool(v)),
        (_, other) => coerce(&other, dtype),
    }
}

pub fn coerce(value: &Value, dtype: &DType) -> Result<Value, String> {
    let wrong = || format!("expected {dtype}, got {}", describe(value));
    Ok(match (dtype, value) {
        (_, Value::Null) => Value::Null,
        (DType::Bool, Value::Bool(b)) => Value::Bool(*b),
        (DType::Int64, Value::Int64(v)) => Value::Int64(*v),
        (DType::Int64, Value::Int32(v)) => Value::Int64(i64::from(*v)),
        (DType::Int32, Value::Int32(v)) => Value::Int32(*v),
        (DType::Int32, Value::Int64(v)) => Value::Int32(i32::try_from(*v).map_err(|_| format!("{v} does not fit int32"))?),
        (DType::Float64, Value::Float64(v)) => Value::Float64(*v),
        (DType::Float64, Value::Float32(v)) => Value::Float64(f64::from(*v)),
        (DType::Float64, Value::Int64(v)) => Value::Float64(*v as f64),
        (DType::Float64, Value::Int32(v)) => Value::Float64(f64::from(*v)),
        (DType::Float32, Value::Float32(v)) => Value::Float32(*v),
        (DType::Float32, Value::Float64(v)) => Value::Float32(*v as f32),
        (DType::Float32, Value::Int64(v)) => Value::Float32(*v as f32),
        (DType::Float32, Value::Int32(v)) => Value::Float32(*v as f32),
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
        (DType::Bytes, Value::Bytes(b)) => Value::Bytes(b.clone()),
        (DType::Timestamp, Value::String(s)) => Value::Timestamp(time::parse_timestamp_micros(s).ok_or_else(|| format!("`{s}` is not a timestamp; {}", time::TIMESTAMP_HELP))?),
        (DType::Timestamp, Value::Int64(seconds)) => Value::Timestamp(epoch_seconds(*seconds as f64).map(|_| seconds * 1_000_000)?),
        (DType::Timestamp, Value::Float64(seconds)) => Value::Timestamp(epoch_seconds(*seconds)?),
        (DType::Timestamp, Value::Timestamp(t)) => Value::Timestamp(*t),
        (DType::List(inner), Value::List(items)) => Value::List(items.iter().map(|item| coerce(item, inner)).collect::<Result<_, _>>()?),
        // JSON text is kept as sent (it must parse); a JSON value becomes its text.
        (DType::Json, Value::String(text)) => {
            serde_json::from_str::<serde_json::Value>(text).map_err(|e| format!("expected JSON text, got {} ({e})", describe(value)))?;
            Value::String(text.clone())
        }
        (DType::Json, other) => Value::String(json_text(other)?),
        (DType::Struct(fields), Value::Object(given)) => {
            if let Some((name, _)) = given.iter().find(|(name, _)| !fields.iter().any(|(f, _)| f == name)) {
                return Err(format!("`{name}` is not a field of {dtype}"));
            }
            Value::Object(
                fields
                    .iter()
                    .map(|(name, field_dtype)| {
                        let given = given.iter().find(|(n, _)| n == name).map_or(Value::Null, |(_, v)| v.clone());
                        coerce(&given, field_dtype).map(|v| (name.clone(), v)).map_err(|e| format!("field `{name}`: {e}"))
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        (DType::Map(inner), Value::Object(entries)) => Value::Object(
            entries.iter().map(|(key, item)| coerce(item, inner).map(|v| (key.clone(), v)).map_err(|e| format!("key `{key}`: {e}"))).collect::<Result<_, _>>()?,
        ),
        _ => return Err(wrong()),
    })
}

/// Epoch numbers are **seconds** (as Feast's push takes them). A magnitude
/// of 10^11 or more (after year 5138) is not a plausible instant in
/// seconds; it is almost always milliseconds, microseconds or nanoseconds
/// sent by mistake, so it is refused with a hint rather than guessed at:
/// read as seconds it would land tens of thousands of years out and win
/// keep-if-newer for ever.
fn epoch_seconds(seconds: f64) -> Result<i64, String> {
    if !seconds.is_finite() {
        return Err(format!("{seconds} is not an instant"));
    }
    if seconds.abs() >= 1e11 {
        let unit = match seconds.abs() {
            a if a >= 1e17 => "nanoseconds",
            a if a >= 1e14 => "microseconds",
            _ => "milliseconds",
        };
        return Err(format!("{seconds} looks like epoch {unit}; epoch numbers are seconds (e.g. 1764669600.123), or send RFC 3339 text such as `2026-06-10T14:00:00Z`"));
    }
    Ok((seconds * 1e6).round() as i64)
}

/// Loosely typed columns as one batch: each column is coerced to the dtype
/// `dtype_of` gives it; a column it does not know keeps the type its values
/// show (so the caller can still name it in an "unexpected column" error).
/// Every column must have the same length.
pub fn columns_to_batch(columns: &[(String, Vec<Value>)], dtype_of: impl Fn(&str) -> Option<DType>) -> Result<RecordBatch, ConvertError> {
    let rows = columns.first().map_or(0, |(_, values)| values.len());
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays = Vec::with_capacity(columns.len());
    for (name, values) in columns {
        if values.len() != rows {
            let first = columns.first().map_or("", |(n, _)| n.as_str());
            return Err(ConvertError::Cell { column: name.clone(), row: values.len(), reason: format!("columns have different lengths: `{first}` has {rows} rows, `{name}` has {}", values.len()) });
        }
        let dtype = dtype_of(name).or_else(|| values.iter().find_map(Value::dtype));
        let array: ArrayRef = match dtype {
            Some(dtype) => {
                let coerced = values
                    .iter()
                    .enumerate()
                    .map(|(row, value)| coerce(value, &dtype).map_err(|reason| ConvertError::Cell { column: name.clone(), row, reason }))
                    .collect::<Result<Vec<_>, _>>()?;
                to_array(name, &coerced, &dtype)?
            }
            None => Arc::new(NullArray::new(rows)),
        };
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)?)
}

#[cfg(test)]
mod tests {
    use arrow::array::{LargeStringArray, TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray};

    use super::*;

    #[test]
    fn timestamps_of_every_unit_and_zone_read_as_utc_micros() {
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(TimestampSecondArray::from(vec![1]).with_timezone("+02:00")),
            Arc::new(TimestampMillisecondArray::from(vec![1_000])),
            Arc::new(TimestampMicrosecondArray::from(vec![1_000_000]).with_timezone("UTC")),
            Arc::new(TimestampNanosecondArray::from(vec![1_000_000_999])),
        ];
        for array in arrays {
            assert_eq!(value_at(array.as_ref(), 0), Value::Timestamp(1_000_000), "{:?}", array.data_type());
        }
        let before_epoch: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![-1]));
        assert_eq!(value_at(before_epoch.as_ref(), 0), Value::Timestamp(-1), "nanoseconds floor toward the past");
    }

    #[test]
    fn every_dtype_round_trips_through_an_array() {
        let cases: Vec<(DType, Vec<Value>)> = vec![
            (DType::Bool, vec![Value::Bool(true), Value::Null]),
            (DType::Int32, vec![Value::Int32(-3), Value::Null]),
            (DType::Int64, vec![Value::Int64(i64::MAX), Value::Null]),
            (DType::Float32, vec![Value::Float32(0.5), Value::Null]),
            (DType::Float64, vec![Value::Float64(f64::NAN), Value::Null]),
            (DType::String, vec![Value::String("é".into()), Value::Null]),
            (DType::Bytes, vec![Value::Bytes(vec![0, 255]), Value::Null]),
            (DType::Timestamp, vec![Value::Timestamp(-5), Value::Null]),
            (DType::List(Box::new(DType::Int64)), vec![Value::List(vec![Value::Int64(1), Value::Null]), Value::Null, Value::List(vec![])]),
            (DType::Json, vec![Value::String(r#"{"a": [1, 2]}"#.into()), Value::Null]),
            (
                "struct<name: string, age: int64>".parse().expect("dtype"),
                vec![Value::Object(vec![("name".into(), Value::String("x".into())), ("age".into(), Value::Null)]), Value::Null],
            ),
            (
                "map<float64>".parse().expect("dtype"),
                vec![Value::Object(vec![("k1".into(), Value::Float64(1.5)), ("k2".into(), Value::Null)]), Value::Object(vec![]), Value::Null],
            ),
            (
                "list<struct<x: float64>>".parse().expect("dtype"),
                vec![Value::List(vec![Value::Object(vec![("x".into(), Value::Float64(1.0))]), Value::Object(vec![("x".into(), Value::Null)])]), Value::List(vec![])],
            ),
        ];
        for (dtype, values) in cases {
            let array = to_array("c", &values, &dtype).expect("to_array");
            assert_eq!(array.data_type(), &dtype.to_arrow());
            let back = values_of(array.as_ref());
            assert!(back.iter().zip(&values).all(|(a, b)| a.approx_eq(b, 0.0)), "{dtype}: {back:?} vs {values:?}");
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_names_column_and_row() {
        let error = to_array("amount", &[Value::Int64(1), Value::String("x".into())], &DType::Int64).expect_err("wrong type");
        assert_eq!(error.to_string(), "column `amount`, row 1: expected int64, got the string \"x\"");
    }

    #[test]
    fn loose_json_values_coerce_to_declared_types() {
        assert_eq!(coerce(&Value::Int64(2), &DType::Float64), Ok(Value::Float64(2.0)));
        assert_eq!(coerce(&Value::String("1970-01-01T00:00:01Z".into()), &DType::Timestamp), Ok(Value::Timestamp(1_000_000)));
        assert_eq!(coerce(&Value::Int64(1), &DType::Timestamp), Ok(Value::Timestamp(1_000_000)));
        assert!(coerce(&Value::Int64(i64::MAX), &DType::Timestamp).is_err(), "overflow is an error, not a saturated instant");
        let millis = coerce(&Value::Int64(1_764_669_600_123), &DType::Timestamp).expect_err("epoch milliseconds");
        assert!(millis.contains("looks like epoch milliseconds"), "{millis}");
        assert_eq!(coerce(&Value::Float64(1_764_669_600.5), &DType::Timestamp), Ok(Value::Timestamp(1_764_669_600_500_000)));
        assert!(coerce(&Value::String("x".into()), &DType::Int64).is_err());
        let strings: ArrayRef = Arc::new(LargeStringArray::from(vec!["a"]));
        assert_eq!(value_at(strings.as_ref(), 0), Value::String("a".into()));
    }

    #[test]
    fn columns_become_a_batch_of_declared_types() {
        let columns = vec![("user_id".to_string(), vec![Value::Int64(1), Value::Int64(2)]), ("extra".to_string(), vec![Value::String("a".into()), Value::Null])];
        let batch = columns_to_batch(&columns, |name| (name == "user_id").then_some(DType::Float64)).expect("batch");
        assert_eq!(batch.schema().field(0).data_type(), &DataType::Float64);
        assert_eq!(batch.schema().field(1).data_type(), &DataType::Utf8);
        let uneven = vec![("a".to_string(), vec![Value::Int64(1)]), ("b".to_string(), vec![])];
        assert!(columns_to_batch(&uneven, |_| None).is_err());
    }
}
