//! Entity keys: the join-key values of one entity, as bytes.
//!
//! Each part is a type byte then its value: `i` + 8 bytes big-endian for an
//! int64, `s` + a 4-byte little-endian length + UTF-8 for a string. The
//! encoding is injective for a given key shape (no separator can be spoofed
//! by a string value), and it never starts with `}`, so a Redis Cluster hash
//! tag `{key}` is never empty: every view of one entity lands in one slot.
//! A global view (no entities) has the one key `g`.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type};

use crate::error::OnlineError;

/// One join-key value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPart {
    Int(i64),
    Str(String),
}

/// The key of a global view's single record.
pub const GLOBAL_KEY: &[u8] = b"g";

pub fn encode_key(parts: &[KeyPart], out: &mut Vec<u8>) {
    if parts.is_empty() {
        out.extend_from_slice(GLOBAL_KEY);
    }
    for part in parts {
        match part {
            KeyPart::Int(v) => {
                out.push(b'i');
                out.extend_from_slice(&v.to_be_bytes());
            }
            KeyPart::Str(s) => push_str(s, out),
        }
    }
}

fn push_str(s: &str, out: &mut Vec<u8>) {
    out.push(b's');
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The key of row `row` of key columns (int64 or utf8, as the offline engine
/// normalizes them); `None` when any part is null (such rows have no key).
pub fn encode_key_row(columns: &[ArrayRef], row: usize, out: &mut Vec<u8>) -> Result<bool, OnlineError> {
    if columns.is_empty() {
        out.extend_from_slice(GLOBAL_KEY);
        return Ok(true);
    }
    for column in columns {
        if column.is_null(row) {
            return Ok(false);
        }
        match column.data_type() {
            DataType::Int64 => {
                out.push(b'i');
                out.extend_from_slice(&column.as_primitive::<Int64Type>().value(row).to_be_bytes());
            }
            DataType::Utf8 => push_str(column.as_string::<i32>().value(row), out),
            other => return Err(OnlineError::Encode(format!("a join key column of type {other}; keys are int64 or string"))),
        }
    }
    Ok(true)
}

/// Decode a key back to its parts (for parity sampling and debugging).
pub fn decode_key(mut bytes: &[u8]) -> Result<Vec<KeyPart>, OnlineError> {
    let bad = || OnlineError::Corrupt("malformed entity key".into());
    if bytes == GLOBAL_KEY {
        return Ok(Vec::new());
    }
    let mut parts = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        match tag {
            b'i' => {
                let value: [u8; 8] = rest.get(..8).and_then(|s| s.try_into().ok()).ok_or_else(bad)?;
                parts.push(KeyPart::Int(i64::from_be_bytes(value)));
                bytes = &rest[8..];
            }
            b's' => {
                let len: [u8; 4] = rest.get(..4).and_then(|s| s.try_into().ok()).ok_or_else(bad)?;
                let len = u32::from_le_bytes(len) as usize;
                let text = rest.get(4..4 + len).ok_or_else(bad)?;
                parts.push(KeyPart::Str(std::str::from_utf8(text).map_err(|_| bad())?.to_string()));
                bytes = &rest[4 + len..];
            }
            _ => return Err(bad()),
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn keys_round_trip_and_rows_match_parts() {
        let parts = vec![KeyPart::Int(-7), KeyPart::Str("a}b{".into())];
        let mut bytes = Vec::new();
        encode_key(&parts, &mut bytes);
        assert_eq!(decode_key(&bytes).expect("decode"), parts);
        let columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![Some(-7), None])), Arc::new(StringArray::from(vec!["a}b{", "x"]))];
        let mut from_row = Vec::new();
        assert!(encode_key_row(&columns, 0, &mut from_row).expect("row"));
        assert_eq!(from_row, bytes);
        assert!(!encode_key_row(&columns, 1, &mut Vec::new()).expect("row"));
    }

    #[test]
    fn compound_string_keys_cannot_collide() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_key(&[KeyPart::Str("a|b".into()), KeyPart::Str("c".into())], &mut a);
        encode_key(&[KeyPart::Str("a".into()), KeyPart::Str("b|c".into())], &mut b);
        assert_ne!(a, b);
        assert!(decode_key(b"zz").is_err());
    }
}
