//! The point-in-time oracle suite through a real local Spark (DESIGN §2,
//! §12): random and adversarial cases of `almanac_offline::testkit`, their
//! history written as Parquet files that Spark reads, the join run inside
//! Spark as the planner's SQL; the result must equal the brute-force oracle
//! and the embedded engine's, row for row.
//!
//! Then the windowed-aggregation kit (`testkit::window`): events in one to
//! three Parquet files, each training set's events selected by Spark and
//! windowed by the one evaluator, equal to the oracle and the embedded
//! engine; materialization's states equal the embedded engine's.
//!
//! One test function, so one Spark session serves every case (nextest runs
//! each test in a process of its own, and a session costs seconds). Spark
//! comes from the venv `scripts/spark-venv.sh` makes (or the Python named by
//! `ALMANAC_SPARK_PYTHON`); without it the test fails loudly.

use std::path::{Path, PathBuf};

use almanac_offline::testkit::{self, Case};
use almanac_offline::testkit::window::{self, Event, Probe, SECOND};
use almanac_offline::{EmbeddedOfflineStore, HistoricalOptions, OfflineStore, TimeRange, ViewRequest};
use almanac_spark::SparkOfflineStore;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn python() -> String {
    if let Ok(python) = std::env::var("ALMANAC_SPARK_PYTHON") {
        return python;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/py-venv-spark/bin/python");
    assert!(venv.exists(), "no Spark venv at {}: run `bash scripts/spark-venv.sh` (scripts/test.sh does) or set ALMANAC_SPARK_PYTHON", venv.display());
    venv.to_string_lossy().into_owned()
}

/// Run `case` (its files under `root/case-N`) on Spark and on the embedded
/// engine; both must equal the oracle and each other.
fn check_case(spark: &SparkOfflineStore, root: &Path, index: usize, case: &Case) -> Result<(), TestCaseError> {
    let folder: PathBuf = root.join(format!("case-{index}"));
    testkit::write_rows(&folder, "users", &case.users, false, case.user_has_created, case.files);
    testkit::write_rows(&folder, "pairs", &case.pairs, true, false, case.files);
    let (views, entities, options) = testkit::requests(case);
    let in_root: Vec<ViewRequest> = views
        .iter()
        .cloned()
        .map(|mut view| {
            view.source.path = format!("case-{index}/{}", view.source.name);
            view
        })
        .collect();
    let out = spark.get_historical_features(&entities, &in_root, &options).map_err(|e| TestCaseError::fail(format!("Spark join: {e}")))?;
    testkit::check(case, &entities, &out)?;
    let embedded = EmbeddedOfflineStore::new(&folder).expect("store").get_historical_features(&entities, &views, &options).expect("embedded join");
    prop_assert_eq!(&out, &embedded, "Spark and the embedded engine differ");
    Ok(())
}

/// Aggregation views: `events` in `files` files under `root/windows-N`.
fn check_windows(spark: &SparkOfflineStore, root: &Path, index: usize, events: &[Event], probes: &[Probe], files: usize) -> Result<(), TestCaseError> {
    let folder: PathBuf = root.join(format!("windows-{index}"));
    window::write_events(&folder, events, files);
    let request = window::view_request();
    let mut in_root = request.clone();
    in_root.source.path = format!("windows-{index}/events");
    let entities = window::entities(probes);
    let out = spark.get_historical_features(&entities, std::slice::from_ref(&in_root), &HistoricalOptions::default()).map_err(|e| TestCaseError::fail(format!("Spark windows: {e}")))?;
    window::check(&out, events, probes)?;
    let embedded = EmbeddedOfflineStore::new(&folder).expect("store");
    let expected = embedded.get_historical_features(&entities, std::slice::from_ref(&request), &HistoricalOptions::default()).expect("embedded windows");
    prop_assert_eq!(&out, &expected, "Spark and the embedded engine differ");
    let range = TimeRange { start: Some(2 * SECOND * 1_000), end: Some(9 * SECOND * 1_000) };
    let (from_spark, read) = spark.aggregation_states(&in_root, range).map_err(|e| TestCaseError::fail(format!("Spark states: {e}")))?;
    let (from_files, read_files) = embedded.aggregation_states(&request, range).expect("embedded states");
    prop_assert_eq!(from_spark.batch(), from_files.batch(), "states differ");
    prop_assert_eq!(read, read_files);
    Ok(())
}

#[test]
fn spark_matches_the_oracle_and_the_embedded_engine() {
    let root = tempfile::tempdir().expect("tempdir");
    let spark = SparkOfflineStore::new(root.path(), "local[2]", Some(&python()));
    let startup = spark.start().expect("start Spark");
    eprintln!("Spark started in {:.1} s", startup.as_secs_f64());
    let index = std::cell::Cell::new(0);
    for (name, case) in testkit::adversarial() {
        index.set(index.get() + 1);
        check_case(&spark, root.path(), index.get(), &case).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let mut runner = TestRunner::new(Config { cases: 24, failure_persistence: None, ..Config::default() });
    runner
        .run(&testkit::case_strategy(), |case| {
            index.set(index.get() + 1);
            check_case(&spark, root.path(), index.get(), &case)
        })
        .unwrap_or_else(|e| panic!("{e}"));

    // Three events at one instant across two files: `last` reads the later
    // file's, then the later row's, as newer.
    let event = |amount: f64| Event { key: Some(1), ts: Some(2 * SECOND), count: Some(1), amount: Some(amount), shop: None };
    let ties = vec![event(1.0), event(2.0), event(3.0), event(4.0)];
    check_windows(&spark, root.path(), 0, &ties, &[Probe { key: Some(1), at: Some(3 * SECOND) }], 2).unwrap_or_else(|e| panic!("ties: {e}"));
    let mut runner = TestRunner::new(Config { cases: 12, failure_persistence: None, ..Config::default() });
    runner
        .run(&(prop::collection::vec(window::event_strategy(), 0..60), prop::collection::vec(window::probe_strategy(), 0..30), 1usize..4), |(events, probes, files)| {
            index.set(index.get() + 1);
            check_windows(&spark, root.path(), index.get(), &events, &probes, files)
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
