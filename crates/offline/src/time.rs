//! Normalizing timestamp columns to UTC nanoseconds.
//!
//! Every unit (s, ms, us, ns) is accepted; a timezone-naive column is read as
//! UTC (its raw value already is the UTC instant), an aware one is an instant
//! whatever its zone, and text (CSV) is parsed by the one timestamp grammar
//! of `almanac_core::time` (RFC 3339; naive text as UTC; a date as midnight).
//! Comparisons happen in nanoseconds so no unit loses precision.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Date32Type, Date64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType};

use crate::error::OfflineError;

const NANOS_PER_DAY: i64 = 86_400_000_000_000;

/// Nanoseconds since the epoch for each row (`None` for nulls).
pub fn to_nanos(column: &ArrayRef, name: &str) -> Result<Vec<Option<i64>>, OfflineError> {
    let scale = |values: &dyn Fn(usize) -> i64, factor: i64| -> Vec<Option<i64>> {
        (0..column.len()).map(|i| if column.is_null(i) { None } else { Some(values(i).saturating_mul(factor)) }).collect()
    };
    Ok(match column.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => scale(&|i| column.as_primitive::<TimestampSecondType>().value(i), 1_000_000_000),
        DataType::Timestamp(TimeUnit::Millisecond, _) => scale(&|i| column.as_primitive::<TimestampMillisecondType>().value(i), 1_000_000),
        DataType::Timestamp(TimeUnit::Microsecond, _) => scale(&|i| column.as_primitive::<TimestampMicrosecondType>().value(i), 1_000),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => scale(&|i| column.as_primitive::<TimestampNanosecondType>().value(i), 1),
        DataType::Date32 => scale(&|i| column.as_primitive::<Date32Type>().value(i) as i64, NANOS_PER_DAY),
        DataType::Date64 => scale(&|i| column.as_primitive::<Date64Type>().value(i), 1_000_000),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = arrow::compute::cast(column, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            let mut out = Vec::with_capacity(text.len());
            for row in 0..text.len() {
                if text.is_null(row) {
                    out.push(None);
                    continue;
                }
                let value = text.value(row);
                let parsed = parse_text(value).ok_or_else(|| OfflineError::BadTimestamp { column: name.to_string(), row: row + 1, value: value.to_string() })?;
                out.push(Some(parsed));
            }
            out
        }
        // A column with no values at all (a header-only CSV) has no type.
        DataType::Null => vec![None; column.len()],
        other => return Err(OfflineError::NotATimestamp { column: name.to_string(), found: other.to_string() }),
    })
}

/// Text in the one timestamp grammar ([`almanac_core::time`]) as nanoseconds.
pub fn parse_text(value: &str) -> Option<i64> {
    almanac_core::time::parse_timestamp_nanos(value)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{StringArray, TimestampMillisecondArray, TimestampSecondArray};

    use super::*;

    #[test]
    fn every_unit_and_zone_is_the_same_instant() {
        let seconds: ArrayRef = Arc::new(TimestampSecondArray::from(vec![Some(1), None]));
        let millis: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![1_000]).with_timezone("+02:00"));
        let text: ArrayRef = Arc::new(StringArray::from(vec!["1970-01-01T02:00:01+02:00", "1970-01-01 00:00:01", "1970-01-01T00:00:01.000000Z"]));
        assert_eq!(to_nanos(&seconds, "t").expect("s"), vec![Some(1_000_000_000), None]);
        assert_eq!(to_nanos(&millis, "t").expect("ms"), vec![Some(1_000_000_000)]);
        assert_eq!(to_nanos(&text, "t").expect("text"), vec![Some(1_000_000_000); 3]);
    }

    #[test]
    fn unparseable_text_names_row_and_value() {
        let text: ArrayRef = Arc::new(StringArray::from(vec!["2026-01-01T00:00:00Z", "yesterday"]));
        let error = to_nanos(&text, "event_timestamp").expect_err("bad");
        assert_eq!(error.to_string(), "cannot read `yesterday` in column `event_timestamp`, row 2, as a timestamp; write RFC 3339 such as `2026-06-10T14:00:00Z`");
    }
}
