//! Aggregation views online == offline, bit for bit (DESIGN §9, issue 14).
//!
//! Random event streams are materialized in chunks applied in a random
//! order (older after newer included); then, for every entity and several
//! read instants `t`, the online read at `t` must equal the training set at
//! `T = t` exactly (floats by bits), on the embedded store, Redis and a
//! Redis Cluster. `almanac parity` must agree too.

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

#[derive(Debug, Clone)]
struct Event {
    user: Option<i64>,
    /// Seconds before NOW.
    ago: i64,
    amount: Option<f64>,
    quantity: Option<i64>,
    merchant: Option<String>,
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    let event = (
        prop::option::weighted(0.97, 0i64..6),
        0i64..20,
        prop::option::weighted(0.85, prop::sample::select(vec![0.1f64, 2.5, -3.75, 0.0, -0.0, 1e15, 0.3, 7.0])),
        prop::option::weighted(0.85, -5i64..50),
        prop::option::weighted(0.85, prop::sample::select(vec!["m1".to_string(), "m2".into(), "m3".into()])),
    )
        .prop_map(|(user, ago, amount, quantity, merchant)| Event { user, ago, amount, quantity, merchant });
    prop::collection::vec(event, 0..80)
}

fn write_repo(repo: &Path, project: &str, online: &str, events: &[Event]) {
    std::fs::write(repo.join("almanac.yaml"), format!("project: {project}\n{online}\n")).expect("config");
    std::fs::write(
        repo.join("features.yaml"),
        r#"
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: transactions
    path: data/transactions.parquet
    timestamp_field: event_timestamp
feature_views:
  - name: windows
    entities: [user]
    source: transactions
    aggregations:
      - {function: count, window: 3s}
      - {column: amount, function: count, window: 8s}
      - {column: amount, function: sum, window: 5s}
      - {column: quantity, function: sum, window: 12s}
      - {column: amount, function: mean, window: 8s}
      - {column: amount, function: stddev, window: 12s}
      - {column: amount, function: variance, window: 5s}
      - {column: amount, function: min, window: 8s}
      - {column: quantity, function: max, window: 3s}
      - {column: merchant, function: approx_count_distinct, window: 12s}
      - {column: amount, function: last, n: 2, window: 8s}
"#,
    )
    .expect("definitions");
    std::fs::create_dir_all(repo.join("data")).expect("data dir");
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("event_timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("amount", DataType::Float64, true),
        Field::new("quantity", DataType::Int64, true),
        Field::new("merchant", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(events.iter().map(|e| e.user).collect::<Vec<_>>())),
        Arc::new(TimestampMicrosecondArray::from(events.iter().map(|e| Some(NOW - e.ago * SECOND)).collect::<Vec<_>>()).with_timezone("UTC")),
        Arc::new(Float64Array::from(events.iter().map(|e| e.amount).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(events.iter().map(|e| e.quantity).collect::<Vec<_>>())),
        Arc::new(StringArray::from(events.iter().map(|e| e.merchant.clone()).collect::<Vec<_>>())),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).expect("batch");
    let mut writer = ArrowWriter::try_new(File::create(repo.join("data/transactions.parquet")).expect("create"), schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

fn instant(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).expect("instant")
}

/// Bits for floats (so `-0.0 != 0.0`), any NaN equal.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float64(x), Value::Float64(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        (Value::List(x), Value::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        _ => a == b,
    }
}

fn check(online: &str, events: &[Event], cuts: &[i64], order: &[usize]) -> Result<(), TestCaseError> {
    static CASE: AtomicUsize = AtomicUsize::new(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path();
    write_repo(repo, &format!("aggparity_{}_{}", std::process::id(), CASE.fetch_add(1, Ordering::Relaxed)), online, events);
    let store = FeatureStore::open(repo).expect("open");
    store.apply().expect("apply");

    // Chunks [begin, c1], (c1, c2], ..., (ck, NOW], materialized in `order`.
    let mut bounds: Vec<i64> = cuts.iter().map(|c| NOW - c * SECOND).filter(|b| *b < NOW).collect();
    bounds.sort_unstable();
    bounds.dedup();
    bounds.push(NOW);
    let mut windows: Vec<(i64, i64)> = Vec::new();
    let mut start = NOW - 40 * SECOND;
    for end in bounds {
        windows.push((start, end));
        start = end + 1;
    }
    for &index in order {
        if let Some(&(start, end)) = windows.get(index % windows.len()) {
            let request = MaterializeRequest { start: Some(instant(start)), end: instant(end), views: None, incremental: false, allow_future_end: false };
            store.materialize(&request, &Quiet).expect("materialize a chunk");
        }
    }
    for &(start, end) in &windows {
        let request = MaterializeRequest { start: Some(instant(start)), end: instant(end), views: None, incremental: false, allow_future_end: false };
        store.materialize(&request, &Quiet).expect("materialize every chunk once");
    }

    let users: Vec<Value> = (0..7).map(Value::Int64).chain([Value::Null]).collect();
    let selection = FeatureSelection::parse_refs("windows").expect("refs");
    let entities = almanac::entity_batch(&[("user_id".into(), users.clone())]).expect("entities");
    for t in [NOW, NOW + 1, NOW + SECOND, NOW + 4 * SECOND] {
        let online = store.get_online_features_at(&selection, &entities, false, t).expect("online read");
        let table = RecordBatch::try_from_iter(vec![
            ("user_id", Arc::new(Int64Array::from(users.iter().map(|v| if let Value::Int64(u) = v { Some(*u) } else { None }).collect::<Vec<_>>())) as ArrayRef),
            ("event_timestamp", Arc::new(TimestampMicrosecondArray::from(vec![Some(t); users.len()]).with_timezone("UTC")) as ArrayRef),
        ])
        .expect("entities");
        let offline = store.get_historical_features(&table, &selection, &HistoricalOptions::default()).expect("training set");
        let names = online.feature_names()[1..].iter().map(|s| s.to_string()).collect::<Vec<_>>();
        prop_assert_eq!(names.len(), 11);
        for (index, name) in names.iter().enumerate() {
            let expected = offline.column_by_name(name).expect("offline feature");
            for (row, user) in users.iter().enumerate() {
                let (got, want) = (online.value(1 + index, row), almanac::core::convert::value_at(expected.as_ref(), row));
                prop_assert!(same(&got, &want), "{} user {:?} at NOW+{}µs: online {:?} ({:?}) != offline {:?}", name, user, t - NOW, got, online.statuses[1 + index][row], want);
                let status = online.statuses[1 + index][row];
                prop_assert_eq!(status == FieldStatus::Present, !want.is_null(), "{} row {} status {:?}", name, row, status);
            }
        }
    }
    // Not vacuous: a user with an event in [NOW − 3s, NOW) counts it online.
    if let Some(user) = events.iter().find(|e| (1..=3).contains(&e.ago)).and_then(|e| e.user) {
        let online = store.get_online_features_at(&FeatureSelection::parse_refs("windows:count_3s").expect("ref"), &almanac::entity_batch(&[("user_id".into(), vec![Value::Int64(user)])]).expect("entity"), false, NOW).expect("read");
        prop_assert!(matches!(online.value(1, 0), Value::Int64(n) if n > 0), "{:?}", online.value(1, 0));
    }
    let report = store.parity(&ParityRequest { views: None, sample: 20, seed: 3, tolerance: 0.0, at_micros: NOW }).expect("parity");
    prop_assert_eq!(report.divergent(), 0, "{:#?}", report);
    Ok(())
}

fn plan() -> impl Strategy<Value = (Vec<Event>, Vec<i64>, Vec<usize>)> {
    (events(), prop::collection::vec(0i64..20, 0..4), prop::collection::vec(0usize..5, 0..6))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn embedded_online_equals_offline_bit_for_bit((events, cuts, order) in plan()) {
        check("", &events, &cuts, &order)?;
    }

    #[test]
    fn redis_online_equals_offline_bit_for_bit((events, cuts, order) in plan()) {
        let url = ensure_redis(6379, 0).expect("a Redis server is required");
        check(&format!("online: {{type: redis, url: \"{url}\"}}"), &events, &cuts, &order)?;
    }
}

#[test]
fn redis_cluster_online_equals_offline_bit_for_bit() {
    let cluster = TestCluster::start(3).expect("a Redis Cluster is required");
    let online = format!("online: {{type: redis-cluster, nodes: [{}]}}", cluster.nodes.join(", "));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() });
    runner.run(&plan(), |(events, cuts, order)| check(&online, &events, &cuts, &order)).expect("parity on the cluster");
}
