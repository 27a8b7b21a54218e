//! The online record: one (view, entity) → all of the view's features, their
//! event time and created time, in a compact self-checking encoding.
//!
//! Layout (all stores use the same bytes):
//!
//! ```text
//! offset  size  field
//! 0       1     format version (RECORD_FORMAT)
//! 1       4     schema fingerprint, u32 little-endian (see schema_fingerprint)
//! 5       8     event time, µs since the epoch, "ordered" big-endian
//! 13      8     created time, µs, "ordered" big-endian (i64::MIN = none)
//! 21      ⌈n/8⌉ null bitmap over the n features, bit i set = feature i is null
//! ...           the non-null values in schema order, no type tags:
//!               bool 1 byte; int32/float32 4 bytes LE; int64/float64/timestamp
//!               8 bytes LE; string/bytes: LEB128 length + bytes;
//!               list<T>: LEB128 count, item null bitmap, items as above;
//!               json: as string (its text); struct<...>: field null bitmap,
//!               fields in declared order; map<T>: LEB128 count, the keys as
//!               strings, value null bitmap, values
//! ```
//!
//! "Ordered" means the sign bit flipped, big-endian: comparing bytes 5..21 of
//! two records as byte strings orders them by `(event time, created time)`,
//! exactly the winner rule of DESIGN §2. That lets every store implement
//! keep-if-newer without decoding (LMDB compares slices; Redis compares the
//! same 16 bytes in a Lua script).
//!
//! The fingerprint is a hash of the view's feature names and dtypes: a record
//! written under another schema is detected and refused, never misread.

use std::sync::Arc;

use almanac_core::{DType, Field, Value};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};

use crate::error::OnlineError;

pub const RECORD_FORMAT: u8 = 1;
pub const HEADER_LEN: usize = 21;
/// The byte range that orders records by `(event time, created time)`.
pub const VERSION_RANGE: std::ops::Range<usize> = 5..21;

/// FNV-1a over `name:dtype;` for every feature, in schema order.
pub fn schema_fingerprint(schema: &[Field]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for field in schema {
        for byte in field.name.bytes().chain([b':']).chain(field.dtype.to_string().bytes()).chain([b';']) {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    hash
}

fn ordered(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

fn unordered(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// Whether `new` should replace `old`: its `(event, created)` is not older.
/// Equal versions overwrite (a re-run writes the same winner again).
pub fn replaces(new: &[u8], old: &[u8]) -> bool {
    match (new.get(VERSION_RANGE), old.get(VERSION_RANGE)) {
        (Some(n), Some(o)) => n >= o,
        // An unreadable old record is replaced rather than kept forever.
        (Some(_), None) => true,
        _ => false,
    }
}

/// The header fields of a record, without decoding its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub format: u8,
    pub fingerprint: u32,
    pub event_ts: i64,
    pub created_ts: Option<i64>,
}

impl RecordHeader {
    pub fn parse(record: &[u8]) -> Option<RecordHeader> {
        let header = record.get(..HEADER_LEN)?;
        let created = unordered(header[13..21].try_into().ok()?);
        Some(RecordHeader {
            format: header[0],
            fingerprint: u32::from_le_bytes(header[1..5].try_into().ok()?),
            event_ts: unordered(header[5..13].try_into().ok()?),
            created_ts: (created != i64::MIN).then_some(created),
        })
    }
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub event_ts: i64,
    pub created_ts: Option<i64>,
    /// One value per feature of the view, in schema order.
    pub values: Vec<Value>,
}

/// Encodes records of one view. Built once per view per job.
#[derive(Debug, Clone)]
pub struct RecordCodec {
    dtypes: Arc<[DType]>,
    fingerprint: u32,
}

impl RecordCodec {
    pub fn new(schema: &[Field]) -> Self {
        RecordCodec { dtypes: schema.iter().map(|f| f.dtype.clone()).collect(), fingerprint: schema_fingerprint(schema) }
    }

    pub fn fingerprint(&self) -> u32 {
        self.fingerprint
    }

    fn header(&self, event_ts: i64, created_ts: Option<i64>, out: &mut Vec<u8>) {
        out.push(RECORD_FORMAT);
        out.extend_from_slice(&self.fingerprint.to_le_bytes());
        out.extend_from_slice(&ordered(event_ts));
        out.extend_from_slice(&ordered(created_ts.unwrap_or(i64::MIN)));
    }

    /// Encode row `row` of `features` (one array per schema field, already
    /// cast to the fields' canonical Arrow types).
    pub fn encode_row(&self, features: &[ArrayRef], row: usize, event_ts: i64, created_ts: Option<i64>, out: &mut Vec<u8>) -> Result<(), OnlineError> {
        self.row_encoder(features)?.encode(row, event_ts, created_ts, out);
        Ok(())
    }

    /// An encoder over `features` with every column's concrete type resolved
    /// once, so encoding a row is a branch per value, not a downcast (the
    /// materialization hot path).
    pub fn row_encoder<'a>(&'a self, features: &'a [ArrayRef]) -> Result<RowEncoder<'a>, OnlineError> {
        if features.len() != self.dtypes.len() {
            return Err(OnlineError::Encode(format!("{} columns for {} features", features.len(), self.dtypes.len())));
        }
        let columns = features.iter().zip(self.dtypes.iter()).map(|(array, dtype)| TypedColumn::of(array.as_ref(), dtype)).collect::<Result<_, _>>()?;
        Ok(RowEncoder { codec: self, columns })
    }
    /// Encode one row given as values (the push path). Each value must match
    /// its field's dtype (integers and floats widen losslessly).
    pub fn encode_values(&self, values: &[Value], event_ts: i64, created_ts: Option<i64>, out: &mut Vec<u8>) -> Result<(), OnlineError> {
        if values.len() != self.dtypes.len() {
            return Err(OnlineError::Encode(format!("{} values for {} features", values.len(), self.dtypes.len())));
        }
        self.header(event_ts, created_ts, out);
        let bitmap_at = out.len();
        out.resize(bitmap_at + self.dtypes.len().div_ceil(8), 0);
        for (i, (value, dtype)) in values.iter().zip(self.dtypes.iter()).enumerate() {
            if value.is_null() {
                out[bitmap_at + i / 8] |= 1 << (i % 8);
            } else {
                write_value(value, dtype, out)?;
            }
        }
        Ok(())
    }

    /// The header of a record of this view, refusing one written under
    /// another schema or format.
    fn checked_header(&self, record: &[u8]) -> Result<RecordHeader, OnlineError> {
        let header = RecordHeader::parse(record).ok_or_else(|| OnlineError::Corrupt("record shorter than its header".into()))?;
        if header.format != RECORD_FORMAT {
            return Err(OnlineError::Corrupt(format!("record format {} (this build reads {RECORD_FORMAT})", header.format)));
        }
        if header.fingerprint != self.fingerprint {
            return Err(OnlineError::SchemaMismatch { found: header.fingerprint, expected: self.fingerprint });
        }
        Ok(header)
    }

    /// Whether every field is a list of scalars: a record
    /// [`RecordCodec::list_items`] can read and
    /// [`RecordCodec::encode_list_items`] can write.
    pub fn is_scalar_lists(&self) -> bool {
        self.dtypes.iter().all(|d| matches!(d, DType::List(inner) if item_width(inner).is_some()))
    }

    /// A record whose fields are all lists of scalars (an aggregation
    /// state), read as each list's items: the bytes of each item as the
    /// encoding writes it, `None` for a null. Nothing is decoded or
    /// allocated per value, so merging events into a stored state copies
    /// bytes. Errors as [`RecordCodec::decode`]; a field that is not such a
    /// list is refused (check [`RecordCodec::is_scalar_lists`] first).
    pub fn list_items<'a>(&self, record: &'a [u8]) -> Result<(RecordHeader, ListItems<'a>), OnlineError> {
        let header = self.checked_header(record)?;
        let mut reader = Reader { bytes: record, at: HEADER_LEN };
        let bitmap = reader.take(self.dtypes.len().div_ceil(8))?;
        let mut lists = Vec::with_capacity(self.dtypes.len());
        for (i, dtype) in self.dtypes.iter().enumerate() {
            let width = match dtype {
                DType::List(inner) => item_width(inner),
                _ => None,
            };
            let Some(width) = width else {
                return Err(OnlineError::Encode(format!("field {i} is {dtype}, not a list of scalars")));
            };
            if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                lists.push(Vec::new());
                continue;
            }
            let count = reader.len()?;
            let items_bitmap = reader.take(count.div_ceil(8))?;
            let mut items = Vec::with_capacity(count.min(record.len()));
            for item in 0..count {
                if items_bitmap[item / 8] & (1 << (item % 8)) != 0 {
                    items.push(None);
                    continue;
                }
                let start = reader.at;
                match width {
                    ItemWidth::Fixed(n) => {
                        reader.take(n)?;
                    }
                    ItemWidth::Prefixed => {
                        let n = reader.len()?;
                        reader.take(n)?;
                    }
                }
                items.push(Some(&record[start..reader.at]));
            }
            lists.push(items);
        }
        if reader.at != record.len() {
            return Err(OnlineError::Corrupt(format!("{} trailing bytes", record.len() - reader.at)));
        }
        Ok((header, lists))
    }

    /// Encode a record of list fields from their items' bytes (as
    /// [`RecordCodec::list_items`] reads them and [`encode_item`] writes
    /// them): byte for byte what [`RecordCodec::encode_values`] writes for
    /// the same lists of values.
    pub fn encode_list_items<'i>(&self, lists: &[impl AsRef<[Option<&'i [u8]>]>], event_ts: i64, out: &mut Vec<u8>) -> Result<(), OnlineError> {
        if lists.len() != self.dtypes.len() || !self.is_scalar_lists() {
            return Err(OnlineError::Encode(format!("{} lists for {} fields (every field a list of scalars)", lists.len(), self.dtypes.len())));
        }
        self.header(event_ts, None, out);
        out.resize(out.len() + self.dtypes.len().div_ceil(8), 0);
        for items in lists {
            let items = items.as_ref();
            write_len(items.len(), out);
            let bitmap_at = out.len();
            out.resize(bitmap_at + items.len().div_ceil(8), 0);
            for (index, item) in items.iter().enumerate() {
                match item {
                    Some(bytes) => out.extend_from_slice(bytes),
                    None => out[bitmap_at + index / 8] |= 1 << (index % 8),
                }
            }
        }
        Ok(())
    }

    /// Decode a record of this view, refusing one written under another
    /// schema or format.
    pub fn decode(&self, record: &[u8]) -> Result<Decoded, OnlineError> {
        let header = self.checked_header(record)?;
        let mut reader = Reader { bytes: record, at: HEADER_LEN };
        let bitmap = reader.take(self.dtypes.len().div_ceil(8))?;
        let bitmap = bitmap.to_vec();
        let mut values = Vec::with_capacity(self.dtypes.len());
        for (i, dtype) in self.dtypes.iter().enumerate() {
            if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                values.push(Value::Null);
            } else {
                values.push(reader.value(dtype)?);
            }
        }
        if reader.at != record.len() {
            return Err(OnlineError::Corrupt(format!("{} trailing bytes", record.len() - reader.at)));
        }
        Ok(Decoded { event_ts: header.event_ts, created_ts: header.created_ts, values })
    }
}

/// One feature column with its concrete Arrow type resolved.
enum TypedColumn<'a> {
    Bool(&'a arrow::array::BooleanArray),
    Int32(&'a arrow::array::Int32Array),
    Int64(&'a arrow::array::Int64Array),
    Float32(&'a arrow::array::Float32Array),
    Float64(&'a arrow::array::Float64Array),
    Timestamp(&'a arrow::array::TimestampMicrosecondArray),
    String(&'a arrow::array::StringArray),
    Bytes(&'a arrow::array::BinaryArray),
    List(&'a dyn Array, &'a DType),
    /// Structs and maps: read cell by cell as values (rare, and nested).
    Nested(&'a dyn Array, &'a DType),
}

impl<'a> TypedColumn<'a> {
    fn of(array: &'a dyn Array, dtype: &'a DType) -> Result<Self, OnlineError> {
        let bad = || mismatch(dtype, &array.data_type().to_string());
        Ok(match dtype {
            DType::Bool => TypedColumn::Bool(array.as_boolean_opt().ok_or_else(bad)?),
            DType::Int32 => TypedColumn::Int32(array.as_primitive_opt::<Int32Type>().ok_or_else(bad)?),
            DType::Int64 => TypedColumn::Int64(array.as_primitive_opt::<Int64Type>().ok_or_else(bad)?),
            DType::Float32 => TypedColumn::Float32(array.as_primitive_opt::<Float32Type>().ok_or_else(bad)?),
            DType::Float64 => TypedColumn::Float64(array.as_primitive_opt::<Float64Type>().ok_or_else(bad)?),
            DType::Timestamp => TypedColumn::Timestamp(array.as_primitive_opt::<TimestampMicrosecondType>().ok_or_else(bad)?),
            DType::String | DType::Json => TypedColumn::String(array.as_string_opt::<i32>().ok_or_else(bad)?),
            DType::Bytes => TypedColumn::Bytes(array.as_binary_opt::<i32>().ok_or_else(bad)?),
            DType::Struct(_) | DType::Map(_) => {
                if array.data_type() != &dtype.to_arrow() {
                    return Err(bad());
                }
                TypedColumn::Nested(array, dtype)
            }
            DType::List(_) => {
                array.as_list_opt::<i32>().ok_or_else(bad)?;
                TypedColumn::List(array, dtype)
            }
        })
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            TypedColumn::Bool(a) => a.is_null(row),
            TypedColumn::Int32(a) => a.is_null(row),
            TypedColumn::Int64(a) => a.is_null(row),
            TypedColumn::Float32(a) => a.is_null(row),
            TypedColumn::Float64(a) => a.is_null(row),
            TypedColumn::Timestamp(a) => a.is_null(row),
            TypedColumn::String(a) => a.is_null(row),
            TypedColumn::Bytes(a) => a.is_null(row),
            TypedColumn::List(a, _) | TypedColumn::Nested(a, _) => a.is_null(row),
        }
    }

    /// Append the (non-null) value at `row`. Types were checked in `of`.
    fn write(&self, row: usize, out: &mut Vec<u8>) {
        match self {
            TypedColumn::Bool(a) => out.push(u8::from(a.value(row))),
            TypedColumn::Int32(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            TypedColumn::Int64(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            TypedColumn::Float32(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            TypedColumn::Float64(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            TypedColumn::Timestamp(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            TypedColumn::String(a) => {
                let value = a.value(row);
                write_len(value.len(), out);
                out.extend_from_slice(value.as_bytes());
            }
            TypedColumn::Bytes(a) => {
                let value = a.value(row);
                write_len(value.len(), out);
                out.extend_from_slice(value);
            }
            // Checked to be a list array in `of`, so this cannot fail.
            TypedColumn::List(a, dtype) => {
                let _ = write_array_value(*a, dtype, row, out);
            }
            // Checked to be the dtype's Arrow type in `of`, so the value fits.
            TypedColumn::Nested(a, dtype) => {
                let _ = write_value(&almanac_core::convert::value_at(*a, row), dtype, out);
            }
        }
    }
}

/// Encodes rows of one batch (see [`RecordCodec::row_encoder`]).
pub struct RowEncoder<'a> {
    codec: &'a RecordCodec,
    columns: Vec<TypedColumn<'a>>,
}

impl RowEncoder<'_> {
    pub fn encode(&self, row: usize, event_ts: i64, created_ts: Option<i64>, out: &mut Vec<u8>) {
        self.codec.header(event_ts, created_ts, out);
        let bitmap_at = out.len();
        out.resize(bitmap_at + self.columns.len().div_ceil(8), 0);
        for (i, column) in self.columns.iter().enumerate() {
            if column.is_null(row) {
                out[bitmap_at + i / 8] |= 1 << (i % 8);
            } else {
                column.write(row, out);
            }
        }
    }
}

/// Each list field's items as their encoded bytes, `None` for a null
/// (what [`RecordCodec::list_items`] reads).
pub type ListItems<'a> = Vec<Vec<Option<&'a [u8]>>>;

/// How a scalar list item is laid out: fixed width, or a length prefix and
/// that many bytes. `None` for a nested type.
#[derive(Clone, Copy)]
enum ItemWidth {
    Fixed(usize),
    Prefixed,
}

fn item_width(dtype: &DType) -> Option<ItemWidth> {
    match dtype {
        DType::Bool => Some(ItemWidth::Fixed(1)),
        DType::Int32 | DType::Float32 => Some(ItemWidth::Fixed(4)),
        DType::Int64 | DType::Float64 | DType::Timestamp => Some(ItemWidth::Fixed(8)),
        DType::String | DType::Json | DType::Bytes => Some(ItemWidth::Prefixed),
        DType::List(_) | DType::Struct(_) | DType::Map(_) => None,
    }
}

/// The bytes of the value at `row` of `array` (of `dtype`'s canonical Arrow
/// type, valid at `row`) as the encoding writes it, e.g. as a list item.
pub fn encode_item(array: &dyn Array, dtype: &DType, row: usize, out: &mut Vec<u8>) -> Result<(), OnlineError> {
    write_array_value(array, dtype, row, out)
}

fn write_len(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn mismatch(dtype: &DType, found: &str) -> OnlineError {
    OnlineError::Encode(format!("a {found} value where the schema says {dtype}"))
}

fn write_array_value(array: &dyn Array, dtype: &DType, row: usize, out: &mut Vec<u8>) -> Result<(), OnlineError> {
    let bad = || mismatch(dtype, &array.data_type().to_string());
    match dtype {
        DType::Bool => out.push(u8::from(array.as_boolean_opt().ok_or_else(bad)?.value(row))),
        DType::Int32 => out.extend_from_slice(&array.as_primitive_opt::<Int32Type>().ok_or_else(bad)?.value(row).to_le_bytes()),
        DType::Int64 => out.extend_from_slice(&array.as_primitive_opt::<Int64Type>().ok_or_else(bad)?.value(row).to_le_bytes()),
        DType::Float32 => out.extend_from_slice(&array.as_primitive_opt::<Float32Type>().ok_or_else(bad)?.value(row).to_le_bytes()),
        DType::Float64 => out.extend_from_slice(&array.as_primitive_opt::<Float64Type>().ok_or_else(bad)?.value(row).to_le_bytes()),
        DType::Timestamp => out.extend_from_slice(&array.as_primitive_opt::<TimestampMicrosecondType>().ok_or_else(bad)?.value(row).to_le_bytes()),
        DType::String | DType::Json => {
            let value = array.as_string_opt::<i32>().ok_or_else(bad)?.value(row);
            write_len(value.len(), out);
            out.extend_from_slice(value.as_bytes());
        }
        DType::Struct(_) | DType::Map(_) => {
            if array.data_type() != &dtype.to_arrow() {
                return Err(bad());
            }
            write_value(&almanac_core::convert::value_at(array, row), dtype, out)?;
        }
        DType::Bytes => {
            let value = array.as_binary_opt::<i32>().ok_or_else(bad)?.value(row);
            write_len(value.len(), out);
            out.extend_from_slice(value);
        }
        DType::List(inner) => {
            let items = array.as_list_opt::<i32>().ok_or_else(bad)?.value(row);
            write_len(items.len(), out);
            let bitmap_at = out.len();
            out.resize(bitmap_at + items.len().div_ceil(8), 0);
            for item in 0..items.len() {
                if items.is_null(item) {
                    out[bitmap_at + item / 8] |= 1 << (item % 8);
                } else {
                    write_array_value(items.as_ref(), inner, item, out)?;
                }
            }
        }
    }
    Ok(())
}

fn write_value(value: &Value, dtype: &DType, out: &mut Vec<u8>) -> Result<(), OnlineError> {
    match (dtype, value) {
        (DType::Bool, Value::Bool(v)) => out.push(u8::from(*v)),
        (DType::Int32, Value::Int32(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (DType::Int64, Value::Int64(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (DType::Int64, Value::Int32(v)) => out.extend_from_slice(&i64::from(*v).to_le_bytes()),
        (DType::Float32, Value::Float32(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (DType::Float64, Value::Float64(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (DType::Float64, Value::Float32(v)) => out.extend_from_slice(&f64::from(*v).to_le_bytes()),
        (DType::Timestamp, Value::Timestamp(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (DType::String | DType::Json, Value::String(v)) => {
            write_len(v.len(), out);
            out.extend_from_slice(v.as_bytes());
        }
        (DType::Struct(fields), Value::Object(given)) => {
            let field_value = |name: &str| given.iter().find(|(n, _)| n == name).map(|(_, v)| v);
            let bitmap_at = out.len();
            out.resize(bitmap_at + fields.len().div_ceil(8), 0);
            for (i, (name, field_dtype)) in fields.iter().enumerate() {
                match field_value(name).filter(|v| !v.is_null()) {
                    Some(v) => write_value(v, field_dtype, out)?,
                    None => out[bitmap_at + i / 8] |= 1 << (i % 8),
                }
            }
        }
        (DType::Map(inner), Value::Object(entries)) => {
            write_len(entries.len(), out);
            for (key, _) in entries {
                write_len(key.len(), out);
                out.extend_from_slice(key.as_bytes());
            }
            let bitmap_at = out.len();
            out.resize(bitmap_at + entries.len().div_ceil(8), 0);
            for (i, (_, item)) in entries.iter().enumerate() {
                if item.is_null() {
                    out[bitmap_at + i / 8] |= 1 << (i % 8);
                } else {
                    write_value(item, inner, out)?;
                }
            }
        }
        (DType::Bytes, Value::Bytes(v)) => {
            write_len(v.len(), out);
            out.extend_from_slice(v);
        }
        (DType::List(inner), Value::List(items)) => {
            write_len(items.len(), out);
            let bitmap_at = out.len();
            out.resize(bitmap_at + items.len().div_ceil(8), 0);
            for (i, item) in items.iter().enumerate() {
                if item.is_null() {
                    out[bitmap_at + i / 8] |= 1 << (i % 8);
                } else {
                    write_value(item, inner, out)?;
                }
            }
        }
        (dtype, value) => return Err(mismatch(dtype, &value.dtype().map(|d| d.to_string()).unwrap_or_else(|| "null".into()))),
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], OnlineError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or_else(|| OnlineError::Corrupt("record ends early".into()))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], OnlineError> {
        let slice = self.take(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(slice);
        Ok(array)
    }

    fn len(&mut self) -> Result<usize, OnlineError> {
        let mut n: usize = 0;
        for shift in (0..64).step_by(7) {
            let [byte] = self.fixed::<1>()?;
            n |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(OnlineError::Corrupt("length prefix too long".into()))
    }

    fn text(&mut self) -> Result<String, OnlineError> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        Ok(std::str::from_utf8(bytes).map_err(|_| OnlineError::Corrupt("string value is not UTF-8".into()))?.to_string())
    }

    fn value(&mut self, dtype: &DType) -> Result<Value, OnlineError> {
        Ok(match dtype {
            DType::Bool => Value::Bool(self.fixed::<1>()?[0] != 0),
            DType::Int32 => Value::Int32(i32::from_le_bytes(self.fixed()?)),
            DType::Int64 => Value::Int64(i64::from_le_bytes(self.fixed()?)),
            DType::Float32 => Value::Float32(f32::from_le_bytes(self.fixed()?)),
            DType::Float64 => Value::Float64(f64::from_le_bytes(self.fixed()?)),
            DType::Timestamp => Value::Timestamp(i64::from_le_bytes(self.fixed()?)),
            DType::String | DType::Json => Value::String(self.text()?),
            DType::Struct(fields) => {
                let bitmap = self.take(fields.len().div_ceil(8))?.to_vec();
                let mut values = Vec::with_capacity(fields.len());
                for (i, (name, field_dtype)) in fields.iter().enumerate() {
                    let value = if bitmap[i / 8] & (1 << (i % 8)) != 0 { Value::Null } else { self.value(field_dtype)? };
                    values.push((name.clone(), value));
                }
                Value::Object(values)
            }
            DType::Map(inner) => {
                let n = self.len()?;
                let mut keys = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    keys.push(self.text()?);
                }
                let bitmap = self.take(n.div_ceil(8))?.to_vec();
                let mut entries = Vec::with_capacity(keys.len());
                for (i, key) in keys.into_iter().enumerate() {
                    let value = if bitmap[i / 8] & (1 << (i % 8)) != 0 { Value::Null } else { self.value(inner)? };
                    entries.push((key, value));
                }
                Value::Object(entries)
            }
            DType::Bytes => {
                let n = self.len()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            DType::List(inner) => {
                let n = self.len()?;
                let bitmap = self.take(n.div_ceil(8))?.to_vec();
                let mut items = Vec::with_capacity(n.min(4096));
                for i in 0..n {
                    if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                        items.push(Value::Null);
                    } else {
                        items.push(self.value(inner)?);
                    }
                }
                Value::List(items)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Float64Array, Int32Array, Int64Array, ListArray, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::Int64Type;
    use proptest::prelude::*;

    fn field(name: &str, dtype: &str) -> Field {
        Field { name: name.into(), dtype: dtype.parse().expect("dtype"), description: String::new(), tags: Default::default() }
    }

    fn schema() -> Vec<Field> {
        vec![field("a", "int64"), field("b", "float64"), field("c", "string"), field("d", "bool"), field("e", "list<int64>"), field("f", "timestamp"), field("g", "int32")]
    }

    #[test]
    fn arrow_rows_round_trip_with_nulls() {
        let schema = schema();
        let codec = RecordCodec::new(&schema);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![Some(1), None])),
            Arc::new(Float64Array::from(vec![Some(2.5), Some(f64::NAN)])),
            Arc::new(StringArray::from(vec![Some("héllo"), None])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false)])),
            Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1), None, Some(3)]), None])),
            Arc::new(TimestampMicrosecondArray::from(vec![Some(-5), Some(7)]).with_timezone("UTC")),
            Arc::new(Int32Array::from(vec![Some(-9), None])),
        ];
        let mut out = Vec::new();
        codec.encode_row(&columns, 0, 100, Some(200), &mut out).expect("encode");
        let decoded = codec.decode(&out).expect("decode");
        assert_eq!(decoded.event_ts, 100);
        assert_eq!(decoded.created_ts, Some(200));
        assert_eq!(
            decoded.values,
            vec![
                Value::Int64(1),
                Value::Float64(2.5),
                Value::String("héllo".into()),
                Value::Bool(true),
                Value::List(vec![Value::Int64(1), Value::Null, Value::Int64(3)]),
                Value::Timestamp(-5),
                Value::Int32(-9)
            ]
        );
        out.clear();
        codec.encode_row(&columns, 1, -100, None, &mut out).expect("encode");
        let decoded = codec.decode(&out).expect("decode");
        assert_eq!(decoded.created_ts, None);
        assert!(matches!(decoded.values[1], Value::Float64(v) if v.is_nan()));
        assert!(decoded.values[0].is_null() && decoded.values[2].is_null() && decoded.values[4].is_null());
    }

    #[test]
    fn json_structs_maps_and_lists_of_structs_round_trip_from_arrays_and_values() {
        let schema = vec![
            field("config", "json"),
            field("profile", "struct<name: string, age: int64>"),
            field("tags", "map<float64>"),
            field("stops", "list<struct<x: float64, meta: map<string>>>"),
        ];
        let codec = RecordCodec::new(&schema);
        let object = |pairs: Vec<(&str, Value)>| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let rows = [
            vec![
                Value::String(r#"{"a": [1, 2], "b": null}"#.into()),
                object(vec![("name", Value::String("ann".into())), ("age", Value::Null)]),
                object(vec![("k2", Value::Float64(2.5)), ("k1", Value::Null)]),
                Value::List(vec![object(vec![("x", Value::Float64(1.0)), ("meta", object(vec![("z", Value::String("q".into()))]))]), Value::Null, object(vec![("x", Value::Null), ("meta", Value::Null)])]),
            ],
            vec![Value::Null, Value::Null, object(vec![]), Value::List(vec![])],
        ];
        let columns: Vec<ArrayRef> = schema
            .iter()
            .enumerate()
            .map(|(i, f)| almanac_core::convert::to_array(&f.name, &rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>(), &f.dtype).expect("array"))
            .collect();
        for (row, expected) in rows.iter().enumerate() {
            let mut from_array = Vec::new();
            codec.encode_row(&columns, row, 1, None, &mut from_array).expect("encode row");
            let mut from_values = Vec::new();
            codec.encode_values(expected, 1, None, &mut from_values).expect("encode values");
            assert_eq!(from_array, from_values, "row {row}: one encoding from both paths");
            assert_eq!(&codec.decode(&from_array).expect("decode").values, expected, "row {row}");
        }
        // A value of another shape is refused, never misencoded.
        let mut out = Vec::new();
        let wrong = vec![Value::Null, Value::String("x".into()), Value::Null, Value::Null];
        assert!(codec.encode_values(&wrong, 1, None, &mut out).is_err());
    }

    #[test]
    fn another_schema_is_detected_not_misread() {
        let old = RecordCodec::new(&[field("a", "int64")]);
        let new = RecordCodec::new(&[field("a", "float64")]);
        let mut out = Vec::new();
        old.encode_values(&[Value::Int64(3)], 1, None, &mut out).expect("encode");
        assert!(matches!(new.decode(&out), Err(OnlineError::SchemaMismatch { .. })));
        assert!(matches!(old.decode(&out[..10]), Err(OnlineError::Corrupt(_))));
        let mut trailing = out.clone();
        trailing.push(0);
        assert!(matches!(old.decode(&trailing), Err(OnlineError::Corrupt(_))));
    }

    #[test]
    fn wrong_value_type_is_an_error() {
        let codec = RecordCodec::new(&[field("a", "int64")]);
        assert!(codec.encode_values(&[Value::String("x".into())], 1, None, &mut Vec::new()).is_err());
        assert!(codec.encode_values(&[Value::Int32(1)], 1, None, &mut Vec::new()).is_ok());
    }

    proptest! {
        /// Byte order of the version range is exactly (event, created) order.
        #[test]
        fn version_bytes_order_like_the_winner_rule(a in any::<i64>(), b in any::<i64>(), ca in proptest::option::of(any::<i64>()), cb in proptest::option::of(any::<i64>())) {
            let codec = RecordCodec::new(&[]);
            let (mut x, mut y) = (Vec::new(), Vec::new());
            codec.encode_values(&[], a, ca, &mut x).expect("encode");
            codec.encode_values(&[], b, cb, &mut y).expect("encode");
            let key = |t: i64, c: Option<i64>| (t, c.unwrap_or(i64::MIN));
            prop_assert_eq!(replaces(&x, &y), key(a, ca) >= key(b, cb));
            prop_assert_eq!(RecordHeader::parse(&x).map(|h| (h.event_ts, h.created_ts.unwrap_or(i64::MIN))), Some(key(a, ca)));
        }

        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = RecordCodec::new(&schema()).decode(&bytes);
        }

        /// A damaged aggregation state is an error when read as list items,
        /// never a panic, even behind a valid header; a whole one round-trips
        /// byte for byte through `list_items` and `encode_list_items`.
        #[test]
        fn list_items_refuse_garbage_and_round_trip(tail in proptest::collection::vec(any::<u8>(), 0..60), times in proptest::collection::vec(proptest::option::of(any::<i64>()), 0..6), names in proptest::collection::vec(proptest::option::of("[a-z]{0,5}"), 0..6)) {
            let codec = RecordCodec::new(&[field("__event_times", "list<timestamp>"), field("shop", "list<string>")]);
            prop_assert!(codec.is_scalar_lists());
            let values = [Value::List(times.iter().map(|t| t.map_or(Value::Null, Value::Timestamp)).collect()), Value::List(names.iter().map(|n| n.clone().map_or(Value::Null, Value::String)).collect())];
            let mut record = Vec::new();
            codec.encode_values(&values, 7, None, &mut record).expect("encode");
            let (header, lists) = codec.list_items(&record).expect("list items");
            prop_assert_eq!(header.event_ts, 7);
            let mut again = Vec::new();
            codec.encode_list_items(&lists, 7, &mut again).expect("encode items");
            prop_assert_eq!(&again, &record);
            let mut damaged = record[..HEADER_LEN].to_vec();
            damaged.extend_from_slice(&tail);
            let _ = codec.list_items(&damaged);
            let _ = codec.list_items(&tail);
        }
    }
}
