//! Aggregation views offline against the brute-force oracle of
//! `almanac_offline::testkit::window` (DESIGN §2.9, §9), on Parquet files
//! split in several ways and through the spilled path.

use std::sync::Arc;

use almanac_offline::testkit::window::{self, Event, Probe, SECOND, view_request, write_events};
use almanac_offline::{EmbeddedOfflineStore, HistoricalOptions, OfflineStore};
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{Float64Type, Int64Type};
use proptest::prelude::*;

fn check(events: &[Event], probes: &[Probe], files: usize, spill: bool) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    write_events(dir.path(), events, files);
    let mut store = EmbeddedOfflineStore::new(dir.path()).expect("store");
    if spill {
        store = store.with_memory_budget(1);
    }
    let out = store.get_historical_features(&window::entities(probes), &[view_request()], &HistoricalOptions::default()).expect("training set");
    window::check(&out, events, probes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_function_matches_the_brute_force_oracle(
        events in prop::collection::vec(window::event_strategy(), 0..60),
        probes in prop::collection::vec(window::probe_strategy(), 0..30),
        files in 1usize..4,
    ) {
        check(&events, &probes, files, false)?;
    }

    #[test]
    fn the_spilled_path_matches_the_oracle_too(
        events in prop::collection::vec(window::event_strategy(), 0..60),
        probes in prop::collection::vec(window::probe_strategy(), 0..30),
    ) {
        check(&events, &probes, 2, true)?;
    }
}

fn event(key: i64, seconds: i64, amount: f64) -> Event {
    Event { key: Some(key), ts: Some(seconds * SECOND), count: Some(1), amount: Some(amount), shop: Some("a".into()) }
}

#[test]
fn the_event_at_t_is_outside_its_own_window_and_the_one_at_t_minus_w_inside() {
    // Window 3 s at T = 5 s: [2 s, 5 s). Events at 2 s and 4 s count; 5 s does not.
    let events = vec![event(1, 1, 1.0), event(1, 2, 2.0), event(1, 4, 4.0), event(1, 5, 8.0)];
    let probes = vec![Probe { key: Some(1), at: Some(5 * SECOND) }, Probe { key: Some(1), at: Some(0) }, Probe { key: Some(9), at: Some(5 * SECOND) }, Probe { key: None, at: Some(5 * SECOND) }];
    check(&events, &probes, 1, false).expect("oracle agrees");
    // And the figures themselves, for the README's worked example.
    let dir = tempfile::tempdir().expect("tempdir");
    write_events(dir.path(), &events, 1);
    let store = EmbeddedOfflineStore::new(dir.path()).expect("store");
    let entities = RecordBatch::try_from_iter(vec![
        ("user_id", Arc::new(Int64Array::from(probes.iter().map(|p| p.key).collect::<Vec<_>>())) as ArrayRef),
        ("event_timestamp", Arc::new(TimestampMicrosecondArray::from(probes.iter().map(|p| p.at).collect::<Vec<_>>())) as ArrayRef),
    ])
    .expect("entities");
    let out = store.get_historical_features(&entities, &[view_request()], &HistoricalOptions::default()).expect("training set");
    let count = out.column_by_name("count_3s").expect("count").as_primitive::<Int64Type>();
    assert_eq!((count.value(0), count.value(1), count.value(2), count.is_null(3)), (2, 0, 0, true), "[2s, 5s) holds 2 events; before the first event and for an unknown key the window is empty; a null key is null");
    let sum = out.column_by_name("amount_sum_3s").expect("sum").as_primitive::<Float64Type>();
    assert_eq!((sum.value(0), sum.is_null(1)), (6.0, true), "2 + 4; an empty window's sum is null");
}

/// DataFusion 55 read a float column holding NaN and one other value as that
/// value everywhere (Parquet statistics leave NaN out, and a column whose
/// min equals its max was replaced by the constant); scans now skip file
/// statistics.
#[test]
fn a_nan_beside_one_other_value_is_read_as_written() {
    let events = vec![
        Event { key: Some(1), ts: Some(0), count: None, amount: Some(f64::NAN), shop: None },
        Event { key: None, ts: None, count: None, amount: Some(0.5), shop: None },
    ];
    check(&events, &[Probe { key: Some(1), at: Some(SECOND) }], 1, false).expect("oracle agrees");
}
