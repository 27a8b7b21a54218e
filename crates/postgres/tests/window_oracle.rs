//! Aggregation views through PostgreSQL (DESIGN §9, §12): the events of
//! `almanac_offline::testkit::window` loaded into a real table, the events
//! each training set's windows can see selected inside PostgreSQL, the
//! windows computed from them; the result must equal the brute-force
//! oracle and the embedded engine's, row for row, and materialization's
//! states must equal the embedded engine's byte for byte. Then a table of
//! more than one batch through the streamed path, plain and aggregation
//! views together.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (database `test`, or
//! `ALMANAC_TEST_POSTGRES_URL`); a missing server fails the test loudly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use almanac_offline::testkit::window::{self, Event, Probe, SECOND};
use almanac_offline::{EmbeddedOfflineStore, HistoricalOptions, OfflineStore, TimeRange, ViewRequest};
use almanac_postgres::PostgresOfflineStore;
use arrow::array::{ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray};
use postgres::{Client, NoTls};
use proptest::prelude::*;

fn url() -> String {
    std::env::var("ALMANAC_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_string())
}

fn client() -> Client {
    Client::connect(&url(), NoTls).unwrap_or_else(|e| panic!("PostgreSQL must be running at {} for these tests: {e}", url()))
}

/// A fresh schema per case, dropped afterwards, so cases never meet.
struct Scratch {
    name: String,
}

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("almanac_windows_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        client().batch_execute(&format!("CREATE SCHEMA {name}")).expect("create schema");
        Scratch { name }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        client().batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name)).expect("drop schema");
    }
}

/// The oracle's view reading table `schema.events` instead of files.
fn in_database(request: &ViewRequest, schema: &str) -> ViewRequest {
    let mut request = request.clone();
    request.source.table = Some(format!("{schema}.events"));
    request.source.path = String::new();
    request
}

fn check_case(events: &[Event], probes: &[Probe]) -> Result<(), TestCaseError> {
    let scratch = Scratch::new();
    let store = PostgresOfflineStore::new(url());
    let batch = window::events_batch(events);
    store.load_table(&format!("{}.events", scratch.name), batch.schema_ref(), std::slice::from_ref(&batch)).expect("load events");
    let files = window::view_request();
    let table = in_database(&files, &scratch.name);
    let entities = window::entities(probes);
    let postgres = store.get_historical_features(&entities, std::slice::from_ref(&table), &HistoricalOptions::default()).expect("training set through PostgreSQL");
    window::check(&postgres, events, probes)?;

    let dir = tempfile::tempdir().expect("tempdir");
    window::write_events(dir.path(), events, 1);
    let embedded = EmbeddedOfflineStore::new(dir.path()).expect("store");
    let expected = embedded.get_historical_features(&entities, std::slice::from_ref(&files), &HistoricalOptions::default()).expect("embedded training set");
    prop_assert_eq!(&postgres, &expected, "PostgreSQL and the embedded engine differ");

    // Materialization's states, full and incremental, as of several instants.
    for (start, end) in [(None, 12), (Some(4), 9), (Some(0), 3)] {
        let range = TimeRange { start: start.map(|s: i64| s * SECOND * 1_000), end: Some(end * SECOND * 1_000) };
        let (from_postgres, read) = store.aggregation_states(&table, range).expect("states from PostgreSQL");
        let (from_files, read_files) = embedded.aggregation_states(&files, range).expect("states from files");
        prop_assert_eq!(from_postgres.batch(), from_files.batch(), "states as of {:?} differ", range);
        prop_assert_eq!(read, read_files);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn postgres_windows_match_the_oracle_and_the_embedded_engine(
        events in prop::collection::vec(window::event_strategy(), 0..60),
        probes in prop::collection::vec(window::probe_strategy(), 0..30),
    ) {
        check_case(&events, &probes)?;
    }
}

#[test]
fn ties_at_one_instant_keep_the_tables_row_order_for_last() {
    // Three events at one instant: `last` (n = 2) must read the two loaded
    // last, newest first, as a file's later rows are newer.
    let event = |amount: f64| Event { key: Some(1), ts: Some(2 * SECOND), count: Some(1), amount: Some(amount), shop: None };
    let events = vec![event(1.0), event(2.0), event(3.0), Event { key: Some(1), ts: Some(SECOND), count: None, amount: Some(9.0), shop: None }];
    check_case(&events, &[Probe { key: Some(1), at: Some(3 * SECOND) }, Probe { key: Some(1), at: Some(2 * SECOND) }]).expect("oracle agrees");
}

/// A table of several batches (the streamed path ships and reads back 64k
/// rows at a time) with a plain view and an aggregation view: PostgreSQL's
/// rows, in input order, equal the embedded engine's.
#[test]
fn a_table_of_many_batches_streams_through_in_input_order() {
    let scratch = Scratch::new();
    let store = PostgresOfflineStore::new(url());
    let events: Vec<Event> = (0..3_000i64).map(|i| Event { key: Some(i % 97), ts: Some((i * 7 % 600) * SECOND), count: Some(i % 5), amount: Some((i % 13) as f64 * 0.25), shop: Some(format!("s{}", i % 11)) }).collect();
    let batch = window::events_batch(&events);
    store.load_table(&format!("{}.events", scratch.name), batch.schema_ref(), std::slice::from_ref(&batch)).expect("load events");
    let dir = tempfile::tempdir().expect("tempdir");
    window::write_events(dir.path(), &events, 1);

    // A plain view over the same table: the latest `count` and `amount` per user.
    let files = window::view_request();
    let mut plain = files.clone();
    plain.view.name = "latest".into();
    plain.view.aggregations.clear();
    plain.view.ttl = Some(almanac_core::Duration::from_seconds(120));
    plain.view.schema = ["count", "amount"].iter().map(|name| batch_field(name)).collect();
    plain.features = plain.view.schema.clone();
    let views = vec![plain, files];
    let rows = 150_000usize;
    let entities = RecordBatch::try_from_iter(vec![
        ("label_id", Arc::new(Int64Array::from_iter_values(0..rows as i64)) as ArrayRef),
        ("user_id", Arc::new(Int64Array::from_iter((0..rows as i64).map(|i| (i % 101 != 100).then_some(i * 31 % 103)))) as ArrayRef),
        ("event_timestamp", Arc::new(TimestampMicrosecondArray::from_iter((0..rows as i64).map(|i| (i % 997 != 0).then_some((i * 13 % 650) * SECOND))).with_timezone("UTC")) as ArrayRef),
    ])
    .expect("entities");
    let options = HistoricalOptions { full_feature_names: true, ..HistoricalOptions::default() };
    let in_db: Vec<ViewRequest> = views.iter().map(|v| in_database(v, &scratch.name)).collect();
    let mut batches = Vec::new();
    store
        .historical_streamed(&entities, &in_db, &options, &mut |batch| {
            batches.push(batch);
            Ok(())
        })
        .expect("streamed training set");
    assert!(batches.len() >= 3, "{} batches for {rows} rows", batches.len());
    let postgres = arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat");
    let embedded = EmbeddedOfflineStore::new(dir.path()).expect("store").get_historical_features(&entities, &views, &options).expect("embedded");
    assert_eq!(postgres, embedded);
}

fn batch_field(name: &str) -> almanac_core::Field {
    let dtype = if name == "count" { almanac_core::DType::Int64 } else { almanac_core::DType::Float64 };
    almanac_core::Field { name: name.into(), dtype, description: String::new(), tags: Default::default() }
}
