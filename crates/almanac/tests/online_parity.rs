//! Parity as a property (DESIGN §3): after materializing up to `now`, the
//! online value of every entity equals the point-in-time value at `now`,
//! on every store (embedded, a real Redis, a real 3-master Redis Cluster).
//!
//! The data is random but dense: few keys and few instants, so exact ties on
//! event time (broken by created time, or by values), null values, rows
//! exactly at `now - ttl`, rows after `now`, and keys with no history all
//! occur. Windows are materialized newest first, so keep-if-newer is
//! exercised on every case: the older window must change nothing it should
//! not.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use almanac::core::Value;
use almanac::materialize::{MaterializeRequest, Quiet};
use almanac::offline::HistoricalOptions;
use almanac::parity::ParityRequest;
use almanac::{FeatureSelection, FeatureStore, FieldStatus};
use almanac_online_redis::harness::{TestCluster, ensure_redis};
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;
use proptest::prelude::*;

const SECOND: i64 = 1_000_000;
/// "Now" for every case: 2026-06-01T00:00:00Z.
const NOW: i64 = 1_780_272_000 * SECOND;
const TTL_SECONDS: i64 = 6;

#[derive(Debug, Clone)]
struct Row {
    user: Option<i64>,
    region: String,
    /// Seconds before NOW (negative = after NOW).
    ago: i64,
    created: Option<i64>,
    count: Option<i64>,
    score: Option<f64>,
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    let row = (
        prop::option::weighted(0.97, 0i64..8),
        prop::sample::select(vec!["eu".to_string(), "us".into()]),
        -2i64..12,
        prop::option::weighted(0.7, 0i64..3),
        prop::option::weighted(0.8, -2i64..3),
        prop::option::weighted(0.8, prop::sample::select(vec![0.5f64, -1.25, 3.0])),
    )
        .prop_map(|(user, region, ago, created, count, score)| Row { user, region, ago, created, count, score });
    prop::collection::vec(row, 0..60)
}

fn micros_column(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

fn write_sources(repo: &Path, rows: &[Row]) {
    std::fs::create_dir_all(repo.join("data")).expect("data dir");
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("region", DataType::Utf8, true),
        Field::new("event_timestamp", ts.clone(), true),
        Field::new("created_at", ts, true),
        Field::new("count", DataType::Int64, true),
        Field::new("score", DataType::Float64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(rows.iter().map(|r| r.user).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|r| Some(r.region.clone())).collect::<Vec<_>>())),
        micros_column(rows.iter().map(|r| Some(NOW - r.ago * SECOND)).collect()),
        micros_column(rows.iter().map(|r| r.created.map(|c| NOW + c * SECOND)).collect()),
        Arc::new(Int64Array::from(rows.iter().map(|r| r.count).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(rows.iter().map(|r| r.score).collect::<Vec<_>>())),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).expect("batch");
    let mut writer = ArrowWriter::try_new(File::create(repo.join("data/events.parquet")).expect("create"), schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

fn write_repo(repo: &Path, project: &str, online: &str) {
    std::fs::write(repo.join("almanac.yaml"), format!("project: {project}\n{online}\n")).expect("config");
    std::fs::write(
        repo.join("features.yaml"),
        format!(
            r#"
entities:
  - name: user
    join_keys: [user_id]
  - name: region
    join_keys: [region]
sources:
  - name: events
    path: data/events.parquet
    timestamp_field: event_timestamp
    created_timestamp_column: created_at
feature_views:
  - name: user_stats
    entities: [user]
    source: events
    ttl: {TTL_SECONDS}s
    schema:
      - {{name: count, dtype: int64}}
      - {{name: score, dtype: float64}}
  - name: user_region_stats
    entities: [user, region]
    source: events
    schema:
      - {{name: count, dtype: int64}}
      - {{name: score, dtype: float64}}
request_sources:
  - name: req
    schema:
      - {{name: amount, dtype: float64}}
      - {{name: n, dtype: int64}}
on_demand_feature_views:
  - name: ratios
    sources: [user_stats, user_region_stats, req]
    features:
      - {{name: ratio, dtype: float64, expr: "amount / nullif(user_stats.score, 0)"}}
      - {{name: big, dtype: bool, expr: "amount > user_stats.count"}}
      - {{name: per, dtype: int64, expr: "n / user_stats.count"}}
      - {{name: diff, dtype: float64, expr: "user_stats.score - user_region_stats.score"}}
      - {{name: tripled, dtype: int64, expr: "n * 3"}}
"#
        ),
    )
    .expect("definitions");
}

fn instant(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).expect("instant")
}

fn value_at(column: &ArrayRef, row: usize) -> Value {
    almanac::core::convert::value_at(column.as_ref(), row)
}

/// Materialize newest window first, then read every entity online and
/// offline at NOW and compare.
fn check_parity(online: &str, rows: &[Row], split: i64) -> Result<(), TestCaseError> {
    static CASE: AtomicUsize = AtomicUsize::new(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path();
    let project = format!("parity_{}_{}", std::process::id(), CASE.fetch_add(1, Ordering::Relaxed));
    write_repo(repo, &project, online);
    write_sources(repo, rows);
    let store = FeatureStore::open(repo).expect("open");
    store.apply().expect("apply");
    let begin = NOW - 20 * SECOND;
    let cut = NOW - split * SECOND;
    let newer = MaterializeRequest { start: Some(instant(cut + 1)), end: instant(NOW), views: None, incremental: false, allow_future_end: false };
    let older = MaterializeRequest { start: Some(instant(begin)), end: instant(cut), views: None, incremental: false, allow_future_end: false };
    store.materialize(&newer, &Quiet).expect("materialize newer window");
    store.materialize(&older, &Quiet).expect("materialize older window");

    let users: Vec<Value> = (0..9).flat_map(|u| [Value::Int64(u), Value::Int64(u)]).chain([Value::Null]).collect();
    let regions: Vec<Value> = (0..9).flat_map(|_| [Value::String("eu".into()), Value::String("us".into())]).chain([Value::String("eu".into())]).collect();
    let entities = almanac::entity_batch(&[("user_id".to_string(), users.clone()), ("region".to_string(), regions.clone())]).expect("entities");
    let selection = FeatureSelection::parse_refs("user_stats:count,user_stats:score,user_region_stats:count,user_region_stats:score").expect("refs");
    let online = store.get_online_features_at(&selection, &entities, true, NOW).expect("online read");

    let table = RecordBatch::try_from_iter(vec![
        ("user_id", Arc::new(Int64Array::from(users.iter().map(|v| if let Value::Int64(u) = v { Some(*u) } else { None }).collect::<Vec<_>>())) as ArrayRef),
        ("region", Arc::new(StringArray::from(regions.iter().map(|v| if let Value::String(s) = v { Some(s.clone()) } else { None }).collect::<Vec<_>>())) as ArrayRef),
        ("event_timestamp", micros_column(vec![Some(NOW); users.len()])),
    ])
    .expect("entities");
    let options = HistoricalOptions { full_feature_names: true, ..HistoricalOptions::default() };
    let offline = store.get_historical_features(&table, &selection, &options).expect("historical");

    check_on_demand(&store, &users, &regions)?;
    check_parity_command(&store)?;
    for (index, name) in ["user_stats__count", "user_stats__score", "user_region_stats__count", "user_region_stats__score"].iter().enumerate() {
        let column = 2 + index;
        prop_assert_eq!(online.feature_names()[column], *name);
        let expected = offline.column_by_name(name).expect("offline feature");
        for row in 0..users.len() {
            let want = value_at(expected, row);
            let got = online.value(column, row);
            let status = online.statuses[column][row];
            prop_assert!(got.approx_eq(&want, 0.0), "{}: entity row {} online {:?} ({:?}) != point-in-time {:?}", name, row, got, status, want);
            prop_assert_eq!(status == FieldStatus::Present, !want.is_null(), "{}: row {} status {:?}", name, row, status);
        }
    }
    Ok(())
}

/// On-demand features (DESIGN §9): for the same request values, the online
/// answer at NOW equals the training set's at T = NOW, and both equal an
/// independent reading of the expressions over the point-in-time inputs.
/// Request values include nulls, zeros, NaN, huge values and integer
/// division by zero; inputs include NOT_FOUND and OUTSIDE_MAX_AGE rows.
fn check_on_demand(store: &FeatureStore, users: &[Value], regions: &[Value]) -> Result<(), TestCaseError> {
    let amounts: Vec<Option<f64>> = (0..users.len()).map(|i| [Some(1.5), Some(0.0), None, Some(f64::NAN), Some(-2.5), Some(1e308), Some(7.0)][i % 7]).collect();
    let ns: Vec<Option<i64>> = (0..users.len()).map(|i| [Some(3), Some(0), None, Some(i64::MAX), Some(-4)][i % 5]).collect();
    let amount_values: Vec<Value> = amounts.iter().map(|a| a.map_or(Value::Null, Value::Float64)).collect();
    let n_values: Vec<Value> = ns.iter().map(|n| n.map_or(Value::Null, Value::Int64)).collect();
    let selection = FeatureSelection::parse_refs("ratios,user_stats:score,user_stats:count").expect("refs");
    let entities = almanac::entity_batch(&[("user_id".into(), users.to_vec()), ("region".into(), regions.to_vec()), ("amount".into(), amount_values), ("n".into(), n_values)]).expect("entities");
    let online = store.get_online_features_at(&selection, &entities, false, NOW).expect("online read with request data");
    let table = RecordBatch::try_from_iter(vec![
        ("user_id", Arc::new(Int64Array::from(users.iter().map(|v| if let Value::Int64(u) = v { Some(*u) } else { None }).collect::<Vec<_>>())) as ArrayRef),
        ("region", Arc::new(StringArray::from(regions.iter().map(|v| if let Value::String(s) = v { Some(s.clone()) } else { None }).collect::<Vec<_>>())) as ArrayRef),
        ("event_timestamp", micros_column(vec![Some(NOW); users.len()])),
        ("amount", Arc::new(Float64Array::from(amounts.clone())) as ArrayRef),
        ("n", Arc::new(Int64Array::from(ns.clone())) as ArrayRef),
    ])
    .expect("entities");
    let offline = store.get_historical_features(&table, &selection, &HistoricalOptions::default()).expect("historical with on-demand features");
    let names = ["ratio", "big", "per", "diff", "tripled", "score", "count"];
    prop_assert_eq!(online.feature_names()[4..].to_vec(), names.to_vec());
    for (index, name) in names.iter().enumerate() {
        let expected = offline.column_by_name(name).expect("offline feature");
        for row in 0..users.len() {
            let (got, want) = (online.value(4 + index, row), value_at(expected, row));
            prop_assert!(got.approx_eq(&want, 0.0), "{}: row {} online {:?} != offline {:?}", name, row, got, want);
        }
    }
    // An independent reading of the expressions over the point-in-time inputs.
    let (score, count) = (offline.column_by_name("score").expect("score"), offline.column_by_name("count").expect("count"));
    for row in 0..users.len() {
        let score = match value_at(score, row) { Value::Float64(f) => Some(f), _ => None };
        let count = match value_at(count, row) { Value::Int64(c) => Some(c), _ => None };
        let ratio = match (amounts[row], score) {
            (Some(a), Some(s)) if s != 0.0 => Value::Float64(a / s),
            _ => Value::Null,
        };
        let big = match (amounts[row], count) {
            // NaN sorts above every number (PostgreSQL's and Arrow's order).
            (Some(a), Some(c)) => Value::Bool(a.is_nan() || a > c as f64),
            _ => Value::Null,
        };
        let per = match (ns[row], count) {
            (Some(n), Some(c)) if c != 0 && !(n == i64::MIN && c == -1) => Value::Int64(n / c),
            _ => Value::Null,
        };
        prop_assert!(online.value(4, row).approx_eq(&ratio, 0.0), "ratio row {}: {:?} vs {:?}", row, online.value(4, row), ratio);
        prop_assert_eq!(online.value(5, row), big, "big row {}", row);
        prop_assert_eq!(online.value(6, row), per, "per row {}", row);
        // Integer overflow is null (and counted), never a wrapped number.
        let tripled = ns[row].and_then(|n| n.checked_mul(3)).map_or(Value::Null, Value::Int64);
        prop_assert_eq!(online.value(8, row), tripled, "tripled row {}", row);
        let status = online.statuses[4][row];
        prop_assert_eq!(status == FieldStatus::Present, !ratio.is_null(), "ratio row {} status {:?}", row, status);
    }
    Ok(())
}

/// `almanac parity` (and the scheduled check) cover on-demand views: the
/// entities are sampled from the input view keyed by both entities, the
/// request values are generated with nulls, zeros, NaN and extremes.
fn check_parity_command(store: &FeatureStore) -> Result<(), TestCaseError> {
    let report = store.parity(&ParityRequest { views: None, sample: 40, seed: 7, tolerance: 0.0, at_micros: NOW }).expect("parity");
    let ratios = report.views.iter().find(|v| v.view == "ratios").expect("the on-demand view is checked by default");
    prop_assert!(ratios.skipped.is_none() && ratios.error.is_none(), "{:?}", ratios);
    let checked: usize = ratios.features.iter().map(|f| f.checked).sum();
    let divergent = ratios.divergent();
    prop_assert_eq!(checked, ratios.features.len() * (ratios.sampled_from_online + ratios.sampled_from_offline));
    prop_assert_eq!(divergent, 0, "{:#?}", ratios);
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn embedded_store_matches_the_point_in_time_join(rows in rows(), split in 1i64..10) {
        check_parity("", &rows, split)?;
    }

    #[test]
    fn redis_matches_the_point_in_time_join(rows in rows(), split in 1i64..10) {
        let url = ensure_redis(6379, 0).expect("a Redis server is required");
        check_parity(&format!("online: {{type: redis, url: \"{url}\"}}"), &rows, split)?;
    }
}

#[test]
fn redis_cluster_matches_the_point_in_time_join() {
    let cluster = TestCluster::start(3).expect("a Redis Cluster is required");
    let online = format!("online: {{type: redis-cluster, nodes: [{}]}}", cluster.nodes.join(", "));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() });
    runner.run(&(rows(), 1i64..10), |(rows, split)| check_parity(&online, &rows, split)).expect("parity on the cluster");
}
