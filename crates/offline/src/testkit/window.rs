//! The windowed-aggregation conformance kit (DESIGN §2.9, §9): random
//! events and entity rows, an aggregation view with every function, and a
//! brute-force oracle that reads the contract literally, per entity row:
//! filter the key's events to `T − w <= ts < T`, then compute each function
//! directly. Sums are exact in integers (every test value is a multiple of
//! 1/4, so 4·x is an integer) and rounded once, which is what "exact" means
//! for the engine's floats; the variance is `(n·Σx² − (Σx)²) / (n·(n − 1))`
//! from the exact integers, rounded once before the division. Data is
//! dense (few keys, few instants) so ties at `T` and at `T − w`, many
//! events at one instant, nulls, empty windows, NaN, `-0.0`, cancellation
//! (`1e16 + 0.5 − 1e16`) and labels before the first event occur in nearly
//! every case. The embedded engine's tests and PostgreSQL's run it.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use almanac_core::{AggFunction, Aggregation, DType, Duration, FeatureView, Field, FileFormat, JoinKey, Source};
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::ViewRequest;

pub const SECOND: i64 = 1_000_000;

#[derive(Debug, Clone)]
pub struct Event {
    pub key: Option<i64>,
    pub ts: Option<i64>,
    pub count: Option<i64>,
    pub amount: Option<f64>,
    pub shop: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub key: Option<i64>,
    pub at: Option<i64>,
}

pub fn event_strategy() -> impl Strategy<Value = Event> {
    (
        prop::option::weighted(0.95, 0i64..4),
        prop::option::weighted(0.97, 0i64..10),
        prop::option::weighted(0.8, prop::sample::select(vec![-3i64, 0, 2, 5, i64::MAX / 2])),
        prop::option::weighted(0.8, prop::sample::select(vec![0.5f64, 1.5, -2.0, 0.0, -0.0, 1e16, -1e16, 3.25, f64::NAN])),
        prop::option::weighted(0.8, prop::sample::select(vec!["a".to_string(), "b".into(), "é".into()])),
    )
        .prop_map(|(key, ts, count, amount, shop)| Event { key, ts: ts.map(|t| t * SECOND), count, amount, shop })
}

pub fn probe_strategy() -> impl Strategy<Value = Probe> {
    (prop::option::weighted(0.9, 0i64..6), prop::option::weighted(0.95, 0i64..13)).prop_map(|(key, at)| Probe { key, at: at.map(|a| a * SECOND) })
}

pub fn aggregation(name: &str, column: Option<&str>, function: AggFunction, window_seconds: i64, n: Option<usize>, input: Option<DType>) -> Aggregation {
    Aggregation {
        name: name.into(),
        column: column.map(Into::into),
        function,
        window: Duration::from_seconds(window_seconds),
        n,
        input_dtype: input,
        description: String::new(),
        tags: Default::default(),
    }
}

/// The view under test: every function, two windows (3 s and 5 s).
fn aggregations() -> Vec<Aggregation> {
    let f = Some(DType::Float64);
    let i = Some(DType::Int64);
    vec![
        aggregation("count_3s", None, AggFunction::Count, 3, None, None),
        aggregation("amount_count_5s", Some("amount"), AggFunction::Count, 5, None, f.clone()),
        aggregation("count_sum_5s", Some("count"), AggFunction::Sum, 5, None, i.clone()),
        aggregation("amount_sum_3s", Some("amount"), AggFunction::Sum, 3, None, f.clone()),
        aggregation("amount_mean_5s", Some("amount"), AggFunction::Mean, 5, None, f.clone()),
        // Sum and mean of one column over one window share a pass; stddev
        // over the same window must not join it.
        aggregation("amount_sum_5s", Some("amount"), AggFunction::Sum, 5, None, f.clone()),
        aggregation("amount_mean_3s", Some("amount"), AggFunction::Mean, 3, None, f.clone()),
        aggregation("amount_variance_5s", Some("amount"), AggFunction::Variance, 5, None, f.clone()),
        aggregation("amount_stddev_3s", Some("amount"), AggFunction::Stddev, 3, None, f.clone()),
        aggregation("amount_min_5s", Some("amount"), AggFunction::Min, 5, None, f.clone()),
        aggregation("amount_max_3s", Some("amount"), AggFunction::Max, 3, None, f.clone()),
        aggregation("count_max_5s", Some("count"), AggFunction::Max, 5, None, i.clone()),
        aggregation("shop_approx_count_distinct_5s", Some("shop"), AggFunction::ApproxCountDistinct, 5, None, Some(DType::String)),
        aggregation("amount_last_5s", Some("amount"), AggFunction::Last, 5, Some(2), f),
        aggregation("shop_min_3s", Some("shop"), AggFunction::Min, 3, None, Some(DType::String)),
    ]
}

pub fn view_request() -> ViewRequest {
    let aggregations = aggregations();
    let schema: Vec<Field> = aggregations.iter().map(|a| Field { name: a.name.clone(), dtype: a.output_dtype(a.input_dtype.as_ref()).expect("output dtype"), description: String::new(), tags: Default::default() }).collect();
    let join_keys = vec![("user".to_string(), JoinKey { name: "user_id".into(), dtype: Some(DType::Int64) })];
    ViewRequest {
        view: FeatureView {
            name: "windows".into(),
            entities: vec!["user".into()],
            source: "events".into(),
            ttl: None,
            online: true,
            schema: schema.clone(),
            monitoring: Default::default(),
            governance: Default::default(),
            aggregations,
            tile: None,
        },
        source: Source {
            name: "events".into(),
            path: "events".into(),
            format: Some(FileFormat::Parquet),
            timestamp_field: "ts".into(),
            created_timestamp_column: None,
            field_mapping: Default::default(),
            table: None, query: None, batch_source: None, stream: None,
            governance: Default::default(),
        },
        join_keys,
        features: schema,
    }
}

/// Events as one batch, in source order: the events' table.
pub fn events_batch(events: &[Event]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        arrow::datatypes::Field::new("user_id", DataType::Int64, true),
        arrow::datatypes::Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        arrow::datatypes::Field::new("count", DataType::Int64, true),
        arrow::datatypes::Field::new("amount", DataType::Float64, true),
        arrow::datatypes::Field::new("shop", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(events.iter().map(|e| e.key).collect::<Vec<_>>())),
        Arc::new(TimestampMicrosecondArray::from(events.iter().map(|e| e.ts).collect::<Vec<_>>()).with_timezone("UTC")),
        Arc::new(Int64Array::from(events.iter().map(|e| e.count).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(events.iter().map(|e| e.amount).collect::<Vec<_>>())),
        Arc::new(StringArray::from(events.iter().map(|e| e.shop.clone()).collect::<Vec<_>>())),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// Events in source order across `files` Parquet files in `dir/events`
/// (named so that path order is the written order).
pub fn write_events(dir: &Path, events: &[Event], files: usize) {
    let folder = dir.join("events");
    std::fs::create_dir_all(&folder).unwrap();
    let chunk = events.len().div_ceil(files).max(1);
    let parts: Vec<&[Event]> = if events.is_empty() { vec![events] } else { events.chunks(chunk).collect() };
    for (index, part) in parts.into_iter().enumerate() {
        let batch = events_batch(part);
        let mut writer = ArrowWriter::try_new(File::create(folder.join(format!("part-{index:03}.parquet"))).unwrap(), batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
}

/// The entity table of `probes`: `user_id`, `event_timestamp`.
pub fn entities(probes: &[Probe]) -> RecordBatch {
    RecordBatch::try_from_iter(vec![
        ("user_id", Arc::new(Int64Array::from(probes.iter().map(|p| p.key).collect::<Vec<_>>())) as ArrayRef),
        ("event_timestamp", Arc::new(TimestampMicrosecondArray::from(probes.iter().map(|p| p.at).collect::<Vec<_>>()).with_timezone("UTC")) as ArrayRef),
    ])
    .unwrap()
}

// ---------------------------------------------------------------- oracle

/// A cell of the expected output.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Floats(Vec<f64>),
}

/// The window's events, in source order (the rule written out literally).
fn window(events: &[Event], key: i64, at: i64, seconds: i64) -> Vec<&Event> {
    events.iter().filter(|e| e.key == Some(key) && e.ts.is_some_and(|ts| ts >= at - seconds * SECOND && ts < at)).collect()
}

/// Σ of values that are multiples of 1/4, exactly (as 4·x in i128), or
/// `None` when a NaN is among them (the sum is NaN then).
fn quarters(values: &[f64]) -> Option<(i128, i128)> {
    if values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let scaled: Vec<i128> = values.iter().map(|v| (v * 4.0) as i128).collect();
    Some((scaled.iter().sum(), scaled.iter().map(|v| v * v).sum()))
}

fn sql_cmp(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.total_cmp(&b),
    }
}

fn expected(aggregation: &Aggregation, events: &[Event], probe: &Probe) -> Cell {
    let (Some(key), Some(at)) = (probe.key, probe.at) else { return Cell::Null };
    let in_window = window(events, key, at, aggregation.window.micros() / SECOND);
    let amounts: Vec<f64> = in_window.iter().filter_map(|e| e.amount).collect();
    let counts: Vec<i64> = in_window.iter().filter_map(|e| e.count).collect();
    let n = amounts.len() as i128;
    let float = |value: Option<f64>| value.map_or(Cell::Null, Cell::Float);
    match (aggregation.function, aggregation.column.as_deref()) {
        (AggFunction::Count, None) => Cell::Int(in_window.len() as i64),
        (AggFunction::Count, Some(_)) => Cell::Int(amounts.len() as i64),
        (AggFunction::Sum, Some("count")) if counts.is_empty() => Cell::Null,
        // The exact total, null when it does not fit int64 (whatever the order of additions).
        (AggFunction::Sum, Some("count")) => i64::try_from(counts.iter().map(|c| i128::from(*c)).sum::<i128>()).map_or(Cell::Null, Cell::Int),
        (AggFunction::Sum | AggFunction::Mean, _) if amounts.is_empty() => Cell::Null,
        (AggFunction::Sum, _) => float(Some(quarters(&amounts).map_or(f64::NAN, |(s, _)| s as f64 / 4.0))),
        (AggFunction::Mean, _) => float(Some(quarters(&amounts).map_or(f64::NAN, |(s, _)| s as f64 / 4.0) / n as f64)),
        (AggFunction::Variance | AggFunction::Stddev, _) if n < 2 => Cell::Null,
        (AggFunction::Variance | AggFunction::Stddev, _) => {
            let variance = quarters(&amounts).map_or(f64::NAN, |(s1, s2)| {
                // D = n·Σx² − (Σx)², with x = v/4: D = (n·Σv² − (Σv)²) / 16.
                let d = ((n * s2 - s1 * s1) as f64 / 16.0).max(0.0);
                d / (n as f64 * (n - 1) as f64)
            });
            float(Some(if aggregation.function == AggFunction::Stddev { variance.sqrt() } else { variance }))
        }
        (AggFunction::Min, Some("amount")) => float(amounts.iter().copied().min_by(|a, b| sql_cmp(*a, *b))),
        (AggFunction::Max, Some("amount")) => float(amounts.iter().copied().max_by(|a, b| sql_cmp(*a, *b))),
        (AggFunction::Max, Some("count")) => counts.iter().max().map_or(Cell::Null, |v| Cell::Int(*v)),
        (AggFunction::Min, Some("shop")) => in_window.iter().filter_map(|e| e.shop.clone()).min().map_or(Cell::Null, Cell::Text),
        (AggFunction::ApproxCountDistinct, _) => {
            let mut shops: Vec<&String> = in_window.iter().filter_map(|e| e.shop.as_ref()).collect();
            shops.sort();
            shops.dedup();
            Cell::Int(shops.len() as i64)
        }
        (AggFunction::Last, _) => {
            // Newest first: by event time, and for equal times the row later in the source.
            let mut ordered: Vec<(usize, &Event)> = in_window.iter().copied().enumerate().collect();
            ordered.sort_by_key(|(position, e)| (e.ts, *position));
            Cell::Floats(ordered.iter().rev().filter_map(|(_, e)| e.amount).take(aggregation.n.unwrap_or(1)).collect())
        }
        _ => Cell::Null,
    }
}

fn actual(column: &ArrayRef, row: usize) -> Cell {
    if column.is_null(row) {
        return Cell::Null;
    }
    match column.data_type() {
        DataType::Int64 => Cell::Int(column.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Cell::Float(column.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Cell::Text(column.as_string::<i32>().value(row).to_string()),
        DataType::List(_) => {
            let list = column.as_list::<i32>().value(row);
            Cell::Floats(list.as_primitive::<Float64Type>().values().to_vec())
        }
        other => panic!("unexpected output type {other}"),
    }
}

/// Floats compare by bits (so `-0.0 != 0.0`), any NaN equal to any NaN.
fn same(a: &Cell, b: &Cell) -> bool {
    let bits = |x: f64| if x.is_nan() { u64::MAX } else { x.to_bits() };
    match (a, b) {
        (Cell::Float(x), Cell::Float(y)) => bits(*x) == bits(*y),
        (Cell::Floats(x), Cell::Floats(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| bits(*x) == bits(*y)),
        _ => a == b,
    }
}

/// An engine's training set `out` for `probes` (the entity table of
/// [`entities`], then [`view_request`]'s aggregations) against the oracle.
pub fn check(out: &RecordBatch, events: &[Event], probes: &[Probe]) -> Result<(), TestCaseError> {
    let request = view_request();
    prop_assert_eq!(out.num_rows(), probes.len());
    for (index, aggregation) in request.view.aggregations.iter().enumerate() {
        let column = out.column(2 + index);
        prop_assert_eq!(out.schema_ref().field(2 + index).name(), &aggregation.name);
        for (row, probe) in probes.iter().enumerate() {
            let (got, want) = (actual(column, row), expected(aggregation, events, probe));
            prop_assert!(same(&got, &want), "{} row {} {:?}: engine {:?}, oracle {:?}", aggregation.name, row, probe, got, want);
        }
    }
    Ok(())
}
