//! The online evaluator: an entity's stored events folded into each
//! aggregate at the request instant, with the same window rule and the same
//! order-independent states as the offline sweep, so both give the same bits.

use std::cmp::Ordering;

use almanac_core::{AggFunction, Aggregation, Value};

use crate::exact::{ExactSum, Hll, IntSum, Moments, TAG_BYTES, hash_bytes, hash_f64, hash_i64, hash_str, total_cmp_sql};
use crate::window::in_window;

/// An entity's events as an online record holds them: event times (µs) in
/// `(ts, source order)` order, and one value per event for each input column.
pub struct StoredEvents<'a> {
    pub ts: &'a [i64],
    /// `(column name, one value per event)`.
    pub columns: &'a [(&'a str, &'a [Value])],
}

impl StoredEvents<'_> {
    fn column(&self, name: &str) -> Option<&[Value]> {
        self.columns.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// The aggregate over the events in `[at − window, at)`.
pub fn fold(aggregation: &Aggregation, events: &StoredEvents, at_micros: i64) -> Value {
    let window = aggregation.window.micros();
    let inside: Vec<usize> = (0..events.ts.len()).filter(|&i| in_window(events.ts[i], at_micros, window)).collect();
    let values = aggregation.column.as_deref().and_then(|c| events.column(c));
    let present = |i: &&usize| values.is_some_and(|v| v.get(**i).is_some_and(|x| !x.is_null()));
    match aggregation.function {
        AggFunction::Count if aggregation.column.is_none() => Value::Int64(inside.len() as i64),
        AggFunction::Count => Value::Int64(inside.iter().filter(present).count() as i64),
        AggFunction::ApproxCountDistinct => {
            let mut sketch = Hll::new();
            for i in inside.iter().filter(present) {
                if let Some(hash) = values.and_then(|v| hash_of(&v[*i])) {
                    sketch.insert_hash(hash);
                }
            }
            Value::Int64(i64::try_from(sketch.estimate()).unwrap_or(i64::MAX))
        }
        AggFunction::Last => {
            let n = aggregation.n.unwrap_or(1);
            let newest: Vec<Value> = inside.iter().rev().filter(present).take(n).filter_map(|i| values.map(|v| v[*i].clone())).collect();
            Value::List(newest)
        }
        _ => {
            let picked: Vec<&Value> = inside.iter().filter(present).filter_map(|i| values.map(|v| &v[*i])).collect();
            numeric(aggregation, &picked)
        }
    }
}

/// Sum, mean, stddev, variance, min and max of the window's non-null values.
fn numeric(aggregation: &Aggregation, values: &[&Value]) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    let is_int = values.iter().all(|v| matches!(v, Value::Int32(_) | Value::Int64(_)));
    match aggregation.function {
        AggFunction::Sum if is_int => {
            let mut sum = IntSum::new();
            values.iter().filter_map(|v| as_i64(v)).for_each(|x| sum.add(x));
            sum.value().map_or(Value::Null, Value::Int64)
        }
        AggFunction::Sum => {
            let mut sum = ExactSum::new();
            values.iter().filter_map(|v| as_f64(v)).for_each(|x| sum.add(x));
            Value::Float64(sum.value())
        }
        AggFunction::Mean | AggFunction::Stddev | AggFunction::Variance => {
            let mut moments = Moments::new();
            values.iter().filter_map(|v| as_f64(v)).for_each(|x| moments.add(x));
            let result = match aggregation.function {
                AggFunction::Mean => moments.mean(),
                AggFunction::Variance => moments.variance(),
                _ => moments.stddev(),
            };
            result.map_or(Value::Null, Value::Float64)
        }
        AggFunction::Min => values.iter().copied().min_by(|a, b| sql_cmp(a, b)).cloned().unwrap_or(Value::Null),
        AggFunction::Max => values.iter().copied().max_by(|a, b| sql_cmp(a, b)).cloned().unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Int32(v) => Some(i64::from(*v)),
        Value::Int64(v) => Some(*v),
        _ => None,
    }
}

/// A number as the offline path casts it (Arrow's int/float → float64).
fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Int32(v) => Some(f64::from(*v)),
        Value::Int64(v) => Some(*v as f64),
        Value::Float32(v) => Some(f64::from(*v)),
        Value::Float64(v) => Some(*v),
        _ => None,
    }
}

/// The order min/max use on both paths: numbers by value (floats: `-0.0 <
/// 0.0`, NaN above everything), strings and bytes bytewise, `false < true`,
/// times by instant.
fn sql_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Float64(_) | Value::Float32(_), _) | (_, Value::Float64(_) | Value::Float32(_)) => match (as_f64(a), as_f64(b)) {
            (Some(x), Some(y)) => total_cmp_sql(x, y),
            _ => Ordering::Equal,
        },
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        _ => as_i64(a).cmp(&as_i64(b)),
    }
}

/// The fixed hash `approx_count_distinct` gives a value, equal to the
/// offline path's for the same value.
fn hash_of(value: &Value) -> Option<u64> {
    Some(match value {
        Value::Null | Value::List(_) | Value::Object(_) => return None,
        Value::String(s) => hash_str(s),
        Value::Float64(v) => hash_f64(*v),
        Value::Float32(v) => hash_f64(f64::from(*v)),
        Value::Bytes(b) => hash_bytes(TAG_BYTES, b),
        Value::Bool(b) => hash_i64(i64::from(*b)),
        Value::Int32(v) => hash_i64(i64::from(*v)),
        Value::Int64(v) | Value::Timestamp(v) => hash_i64(*v),
    })
}
