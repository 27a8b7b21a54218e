//! PostgreSQL values ↔ Arrow: result columns decoded from binary `COPY`
//! straight into Arrow builders, entity-table cells encoded for it, and
//! table column types read as Arrow types for `apply`'s checks.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use almanac_core::DType;
use arrow::array::{ArrayRef, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, TimeUnit};
use postgres::binary_copy::BinaryCopyOutRow;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// The PostgreSQL type a value of `dtype` arrives as: the rendered SQL
/// casts every delivered column to it (`almanac_sql::Dialect::type_name`).
pub(crate) fn wire_type(dtype: &DType) -> Option<Type> {
    Some(match dtype {
        DType::Bool => Type::BOOL,
        DType::Int32 => Type::INT4,
        DType::Int64 => Type::INT8,
        DType::Float32 => Type::FLOAT4,
        DType::Float64 => Type::FLOAT8,
        DType::String | DType::Json => Type::TEXT,
        DType::Bytes => Type::BYTEA,
        DType::Timestamp => Type::TIMESTAMPTZ,
        DType::List(_) | DType::Struct(_) | DType::Map(_) => return None,
    })
}

pub(crate) fn micros_to_time(micros: i64) -> SystemTime {
    if micros >= 0 { UNIX_EPOCH + Duration::from_micros(micros as u64) } else { UNIX_EPOCH - Duration::from_micros(micros.unsigned_abs()) }
}

fn time_to_micros(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_micros() as i64,
        Err(before) => -(before.duration().as_micros() as i64),
    }
}

/// One result column being decoded.
pub(crate) enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Text(StringBuilder),
    Bytes(BinaryBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl ColumnBuilder {
    pub(crate) fn new(dtype: &DType) -> Option<Self> {
        Some(match wire_type(dtype)? {
            Type::BOOL => ColumnBuilder::Bool(BooleanBuilder::new()),
            Type::INT4 => ColumnBuilder::Int32(Int32Builder::new()),
            Type::INT8 => ColumnBuilder::Int64(Int64Builder::new()),
            Type::FLOAT4 => ColumnBuilder::Float32(Float32Builder::new()),
            Type::FLOAT8 => ColumnBuilder::Float64(Float64Builder::new()),
            Type::BYTEA => ColumnBuilder::Bytes(BinaryBuilder::new()),
            Type::TIMESTAMPTZ => ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
            _ => ColumnBuilder::Text(StringBuilder::new()),
        })
    }

    pub(crate) fn push(&mut self, row: &BinaryCopyOutRow, index: usize) -> Result<(), postgres::Error> {
        match self {
            ColumnBuilder::Bool(b) => b.append_option(row.try_get::<Option<bool>>(index)?),
            ColumnBuilder::Int32(b) => b.append_option(row.try_get::<Option<i32>>(index)?),
            ColumnBuilder::Int64(b) => b.append_option(row.try_get::<Option<i64>>(index)?),
            ColumnBuilder::Float32(b) => b.append_option(row.try_get::<Option<f32>>(index)?),
            ColumnBuilder::Float64(b) => b.append_option(row.try_get::<Option<f64>>(index)?),
            ColumnBuilder::Text(b) => b.append_option(row.try_get::<Option<&str>>(index)?),
            ColumnBuilder::Bytes(b) => b.append_option(row.try_get::<Option<&[u8]>>(index)?),
            ColumnBuilder::Timestamp(b) => b.append_option(row.try_get::<Option<SystemTime>>(index)?.map(time_to_micros)),
        }
        Ok(())
    }

    /// The values pushed since the last call, as an array; the builder is
    /// left empty for the next batch.
    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float32(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Bytes(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
        }
    }
}

/// How a table's column type reads as Arrow, for `apply`'s checks of
/// timestamps, join keys and dtypes (`None`: a type Almanac cannot read).
pub(crate) fn arrow_type(ty: &Type) -> Option<DataType> {
    Some(match *ty {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 | Type::NUMERIC => DataType::Float64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::JSONB => DataType::Utf8,
        Type::BYTEA => DataType::Binary,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::DATE => DataType::Date32,
        _ => return None,
    })
}

/// One cell of an Arrow column, as `COPY` writes it.
#[derive(Debug)]
pub(crate) enum Cell<'a> {
    Null,
    Bool(bool),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    Text(&'a str),
    Bytes(&'a [u8]),
    Time(SystemTime),
}

impl ToSql for Cell<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Bool(v) => v.to_sql(ty, out),
            Cell::Int16(v) => v.to_sql(ty, out),
            Cell::Int32(v) => v.to_sql(ty, out),
            Cell::Int64(v) => v.to_sql(ty, out),
            Cell::Float32(v) => v.to_sql(ty, out),
            Cell::Float64(v) => v.to_sql(ty, out),
            Cell::Text(v) => v.to_sql(ty, out),
            Cell::Bytes(v) => v.to_sql(ty, out),
            Cell::Time(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// An Arrow column normalized for writing cells: integers widened to the
/// column's PostgreSQL width, timestamps to microseconds.
pub(crate) struct Cells {
    array: ArrayRef,
}

impl Cells {
    pub(crate) fn new(array: &ArrayRef) -> Result<Self, arrow::error::ArrowError> {
        use arrow::datatypes::DataType as D;
        let target = match array.data_type() {
            D::Int8 => Some(D::Int16),
            D::UInt8 | D::UInt16 => Some(D::Int32),
            D::UInt32 => Some(D::Int64),
            D::LargeUtf8 | D::Utf8View => Some(D::Utf8),
            D::LargeBinary => Some(D::Binary),
            D::Timestamp(unit, zone) if *unit != TimeUnit::Microsecond => Some(D::Timestamp(TimeUnit::Microsecond, zone.clone())),
            _ => None,
        };
        Ok(Cells { array: match target { Some(t) => arrow::compute::cast(array, &t)?, None => array.clone() } })
    }

    pub(crate) fn get(&self, row: usize) -> Cell<'_> {
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::{DataType as D, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType};
        let a = &self.array;
        if a.is_null(row) {
            return Cell::Null;
        }
        match a.data_type() {
            D::Boolean => Cell::Bool(a.as_boolean().value(row)),
            D::Int16 => Cell::Int16(a.as_primitive::<Int16Type>().value(row)),
            D::Int32 => Cell::Int32(a.as_primitive::<Int32Type>().value(row)),
            D::Int64 => Cell::Int64(a.as_primitive::<Int64Type>().value(row)),
            D::Float32 => Cell::Float32(a.as_primitive::<Float32Type>().value(row)),
            D::Float64 => Cell::Float64(a.as_primitive::<Float64Type>().value(row)),
            D::Utf8 => Cell::Text(a.as_string::<i32>().value(row)),
            D::Binary => Cell::Bytes(a.as_binary::<i32>().value(row)),
            D::Timestamp(_, _) => Cell::Time(micros_to_time(a.as_primitive::<TimestampMicrosecondType>().value(row))),
            _ => Cell::Null,
        }
    }
}
