//! The point-in-time conformance kit: random and adversarial cases, an
//! independent brute-force oracle, and the check that an engine's training
//! set equals it (DESIGN §2). The embedded engine's tests run it, and so do
//! the pushdown engines' (`almanac-postgres`, `almanac-spark`), so no
//! engine is held to a weaker contract. Compiled with the `testkit` feature.
//!
//! The oracle is a literal O(n·m) reading of the contract, written without
//! looking at the engine: for each entity row and view, scan every history
//! row, keep the candidates, pick the winner by (ts, created, values). Data
//! is random but deliberately dense (few keys, few instants) so exact ties,
//! instants at `T` and `T - ttl`, duplicate entity rows, null keys and values,
//! and keys without history all occur in nearly every case. Failures are
//! test failures (this is test code).

#![allow(clippy::unwrap_used)]

use std::cmp::Ordering;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use almanac_core::{DType, Duration, FeatureView, Field, FileFormat, JoinKey, Source};
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

pub mod window;

use crate::{HistoricalOptions, ViewRequest};

pub const SECOND: i64 = 1_000_000;

/// One history row of the test views: key parts, event/created time (µs), two features.
#[derive(Debug, Clone)]
pub struct Row {
    pub key_int: Option<i64>,
    pub key_str: Option<String>,
    pub ts: i64,
    pub created: Option<i64>,
    pub count: Option<i64>,
    pub amount: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub key_int: Option<i64>,
    pub key_str: Option<String>,
    pub at: Option<i64>,
}

pub fn row_strategy(compound: bool) -> impl Strategy<Value = Row> {
    (
        prop::option::weighted(0.95, 0i64..6),
        prop::option::weighted(0.95, prop::sample::select(vec!["a".to_string(), "b".into(), "é".into()])),
        0i64..12,
        prop::option::weighted(0.8, 0i64..4),
        prop::option::weighted(0.8, -3i64..3),
        prop::option::weighted(0.8, prop::sample::select(vec![0.5f64, 1.5, -2.0, 0.0])),
    )
        .prop_map(move |(key_int, key_str, ts, created, count, amount)| Row {
            key_int,
            key_str: if compound { key_str } else { None },
            ts: ts * SECOND,
            created: created.map(|c| c * SECOND),
            count,
            amount,
        })
}

pub fn probe_strategy() -> impl Strategy<Value = Probe> {
    (
        prop::option::weighted(0.9, 0i64..8),
        prop::option::weighted(0.9, prop::sample::select(vec!["a".to_string(), "b".into(), "é".into(), "z".into()])),
        prop::option::weighted(0.95, 0i64..16),
    )
        .prop_map(|(key_int, key_str, at)| Probe { key_int, key_str, at: at.map(|a| a * SECOND) })
}

#[derive(Debug, Clone)]
pub struct Case {
    pub users: Vec<Row>,
    pub pairs: Vec<Row>,
    pub probes: Vec<Probe>,
    pub user_ttl: Option<i64>,
    pub pair_ttl: Option<i64>,
    pub user_has_created: bool,
    pub files: usize,
    pub aware_entities: bool,
}

pub fn case_strategy() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(row_strategy(false), 0..40),
        prop::collection::vec(row_strategy(true), 0..30),
        prop::collection::vec(probe_strategy(), 0..30),
        prop::sample::select(vec![None, Some(0), Some(3), Some(5)]),
        prop::sample::select(vec![None, Some(2), Some(4)]),
        any::<bool>(),
        1usize..4,
        any::<bool>(),
    )
        .prop_map(|(users, pairs, probes, user_ttl, pair_ttl, user_has_created, files, aware_entities)| Case {
            users,
            pairs,
            probes,
            user_ttl,
            pair_ttl,
            user_has_created,
            files,
            aware_entities,
        })
}

// ---------------------------------------------------------------- oracle

pub fn compare_values(a: &Row, b: &Row) -> Ordering {
    // Nulls first, then by value, feature by feature in schema order.
    let count = a.count.cmp(&b.count);
    let amount = match (a.amount, b.amount) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x.total_cmp(&y),
    };
    count.then(amount)
}

/// The literal contract: candidates with equal non-null keys, `T - ttl <= ts <= T`;
/// winner by greatest ts, then created (absent = smallest), then values.
pub fn oracle<'a>(history: &'a [Row], probe: &Probe, compound: bool, ttl_seconds: Option<i64>, use_created: bool) -> Option<&'a Row> {
    let at = probe.at?;
    let key_matches = |row: &Row| {
        let ints = matches!((row.key_int, probe.key_int), (Some(a), Some(b)) if a == b);
        let strs = !compound || matches!((&row.key_str, &probe.key_str), (Some(a), Some(b)) if a == b);
        ints && strs
    };
    let ttl = ttl_seconds.filter(|t| *t > 0).map(|t| t * SECOND);
    history
        .iter()
        .filter(|row| key_matches(row) && row.ts <= at && ttl.is_none_or(|ttl| row.ts >= at - ttl))
        .max_by(|a, b| {
            let created = if use_created { a.created.cmp(&b.created) } else { Ordering::Equal };
            a.ts.cmp(&b.ts).then(created).then_with(|| compare_values(a, b))
        })
}

// ---------------------------------------------------------------- engine setup

/// The history of one test view as Arrow: `user_id` (and `shop` for the
/// compound view), `ts` in milliseconds without a zone (to exercise unit
/// and zone normalization), `created` in µs UTC when the view has it, then
/// `count` and `amount`.
pub fn history_batch(rows: &[Row], compound: bool, with_created: bool) -> RecordBatch {
    let mut fields = vec![arrow::datatypes::Field::new("user_id", DataType::Int64, true)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(rows.iter().map(|r| r.key_int).collect::<Vec<_>>()))];
    if compound {
        fields.push(arrow::datatypes::Field::new("shop", DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(rows.iter().map(|r| r.key_str.clone()).collect::<Vec<_>>())));
    }
    fields.push(arrow::datatypes::Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true));
    columns.push(Arc::new(TimestampMillisecondArray::from(rows.iter().map(|r| r.ts / 1_000).collect::<Vec<_>>())));
    if with_created {
        fields.push(arrow::datatypes::Field::new("created", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true));
        columns.push(Arc::new(TimestampMicrosecondArray::from(rows.iter().map(|r| r.created).collect::<Vec<_>>()).with_timezone("UTC")));
    }
    fields.push(arrow::datatypes::Field::new("count", DataType::Int64, true));
    columns.push(Arc::new(Int64Array::from(rows.iter().map(|r| r.count).collect::<Vec<_>>())));
    fields.push(arrow::datatypes::Field::new("amount", DataType::Float64, true));
    columns.push(Arc::new(Float64Array::from(rows.iter().map(|r| r.amount).collect::<Vec<_>>())));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("history batch")
}

/// Write a test view's history as `files` Parquet files in folder `dir/name`.
pub fn write_rows(dir: &Path, name: &str, rows: &[Row], compound: bool, with_created: bool, files: usize) {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).expect("mkdir");
    let chunk = rows.len().div_ceil(files).max(1);
    for (index, part) in rows.chunks(chunk).enumerate().chain(if rows.is_empty() { Some((0, rows)) } else { None }) {
        let batch = history_batch(part, compound, with_created);
        let file = File::create(folder.join(format!("part-{index}.parquet"))).expect("create");
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
    }
}

pub fn view_request(name: &str, compound: bool, with_created: bool, ttl: Option<i64>) -> ViewRequest {
    let schema = vec![
        Field { name: "count".into(), dtype: DType::Int64, description: String::new(), tags: Default::default() },
        Field { name: "amount".into(), dtype: DType::Float64, description: String::new(), tags: Default::default() },
    ];
    let mut join_keys = vec![("user".to_string(), JoinKey { name: "user_id".into(), dtype: Some(DType::Int64) })];
    if compound {
        join_keys.push(("shop".to_string(), JoinKey { name: "shop".into(), dtype: Some(DType::String) }));
    }
    ViewRequest {
        view: FeatureView {
            name: name.into(),
            entities: join_keys.iter().map(|(e, _)| e.clone()).collect(),
            source: name.into(),
            ttl: ttl.map(Duration::from_seconds),
            online: true,
            monitoring: Default::default(),
            schema: schema.clone(),
            aggregations: Vec::new(),
            tile: None,
            governance: Default::default(),
        },
        source: Source {
            name: name.into(),
            path: name.into(),
            format: Some(FileFormat::Parquet),
            timestamp_field: "ts".into(),
            created_timestamp_column: with_created.then(|| "created".into()),
            field_mapping: Default::default(),
            table: None, query: None, batch_source: None, stream: None,
            governance: Default::default(),
        },
        join_keys,
        features: schema,
    }
}

pub fn entity_table(probes: &[Probe], aware: bool) -> RecordBatch {
    let at: ArrayRef = if aware {
        Arc::new(TimestampMicrosecondArray::from(probes.iter().map(|p| p.at).collect::<Vec<_>>()).with_timezone("+05:30"))
    } else {
        Arc::new(TimestampMicrosecondArray::from(probes.iter().map(|p| p.at).collect::<Vec<_>>()))
    };
    let ids: ArrayRef = Arc::new(Int64Array::from((0..probes.len() as i64).collect::<Vec<_>>()));
    RecordBatch::try_from_iter(vec![
        ("label_id", ids),
        ("user_id", Arc::new(Int64Array::from(probes.iter().map(|p| p.key_int).collect::<Vec<_>>())) as ArrayRef),
        ("shop", Arc::new(StringArray::from(probes.iter().map(|p| p.key_str.clone()).collect::<Vec<_>>())) as ArrayRef),
        ("event_timestamp", at),
    ])
    .expect("entities")
}

/// The request every case makes: `users` (features requested in reverse
/// schema order) and `pairs`, with full feature names.
pub fn requests(case: &Case) -> (Vec<ViewRequest>, RecordBatch, HistoricalOptions) {
    let mut users = view_request("users", false, case.user_has_created, case.user_ttl);
    users.features.reverse(); // request order differs from schema order
    let pairs = view_request("pairs", true, false, case.pair_ttl);
    let entities = entity_table(&case.probes, case.aware_entities);
    (vec![users, pairs], entities, HistoricalOptions { full_feature_names: true, ..Default::default() })
}

/// An engine's training set for [`requests`] against the oracle: one row
/// per entity row, input columns unchanged, names and dtypes, every value.
pub fn check(case: &Case, entities: &RecordBatch, out: &RecordBatch) -> Result<(), TestCaseError> {
    prop_assert_eq!(out.num_rows(), case.probes.len());
    for (index, column) in entities.columns().iter().enumerate() {
        prop_assert_eq!(out.column(index), column, "input columns unchanged");
    }
    let names: Vec<&str> = out.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
    prop_assert_eq!(names, vec!["label_id", "user_id", "shop", "event_timestamp", "users__amount", "users__count", "pairs__count", "pairs__amount"]);
    prop_assert_eq!(out.column(5).data_type(), &DataType::Int64, "declared dtype kept even with nulls");

    let user_amount = out.column(4).as_primitive::<Float64Type>();
    let user_count = out.column(5).as_primitive::<Int64Type>();
    let pair_count = out.column(6).as_primitive::<Int64Type>();
    let pair_amount = out.column(7).as_primitive::<Float64Type>();
    let value = |a: &dyn Array, i: usize| if a.is_null(i) { None } else { Some(i) };
    for (i, probe) in case.probes.iter().enumerate() {
        let expected = oracle(&case.users, probe, false, case.user_ttl, case.user_has_created);
        prop_assert_eq!(value(user_count, i).map(|i| user_count.value(i)), expected.and_then(|r| r.count), "users count row {} {:?}", i, probe);
        prop_assert_eq!(value(user_amount, i).map(|i| user_amount.value(i)), expected.and_then(|r| r.amount), "users amount row {}", i);
        let expected = oracle(&case.pairs, probe, true, case.pair_ttl, false);
        prop_assert_eq!(value(pair_count, i).map(|i| pair_count.value(i)), expected.and_then(|r| r.count), "pairs count row {} {:?}", i, probe);
        prop_assert_eq!(value(pair_amount, i).map(|i| pair_amount.value(i)), expected.and_then(|r| r.amount), "pairs amount row {}", i);
    }
    Ok(())
}


/// Fixed adversarial cases, named for what they pin down.
pub fn adversarial() -> Vec<(&'static str, Case)> {
    vec![
        ("a value stamped exactly at T is visible and one after is not", fixed(vec![row(1, 10, None, Some(1)), row(1, 11, None, Some(2))], vec![probe(Some(1), 10)], None)),
        ("the TTL lower bound is inclusive", fixed(vec![row(1, 10, None, Some(1))], vec![probe(Some(1), 15), probe(Some(1), 16)], Some(5))),
        // Created long after T: still visible, because filtering is on event time only.
        ("a late-ingested row counts at its event time", fixed(vec![row(1, 5, Some(1_000), Some(9))], vec![probe(Some(1), 6)], None)),
        ("a null winner does not fall back to an older row", fixed(vec![row(1, 1, None, Some(5)), row(1, 2, None, None)], vec![probe(Some(1), 3)], None)),
        ("duplicate entity rows and null keys are kept in order", fixed(vec![row(1, 1, None, Some(5))], vec![probe(Some(1), 3), probe(None, 3), probe(Some(1), 3), probe(Some(7), 3)], None)),
        ("created time, then values, break ties", fixed(vec![row(1, 4, Some(2), Some(1)), row(1, 4, Some(3), Some(0)), row(1, 4, Some(3), Some(-1)), row(1, 4, None, Some(7))], vec![probe(Some(1), 4), probe(Some(1), 9)], None)),
        ("an empty entity table gives an empty result with the right schema", fixed(vec![row(1, 1, None, Some(5))], vec![], None)),
    ]
}

fn fixed(users: Vec<Row>, probes: Vec<Probe>, ttl: Option<i64>) -> Case {
    Case { users, pairs: vec![], probes, user_ttl: ttl, pair_ttl: None, user_has_created: true, files: 1, aware_entities: false }
}

fn row(key: i64, ts: i64, created: Option<i64>, count: Option<i64>) -> Row {
    Row { key_int: Some(key), key_str: None, ts: ts * SECOND, created: created.map(|c| c * SECOND), count, amount: None }
}

fn probe(key: Option<i64>, at: i64) -> Probe {
    Probe { key_int: key, key_str: None, at: Some(at * SECOND) }
}
