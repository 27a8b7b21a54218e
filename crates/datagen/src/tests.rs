use std::collections::{HashMap, HashSet};

use arrow::array::AsArray;
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};

use super::*;

fn column_i64(batches: &[RecordBatch], name: &str) -> Vec<i64> {
    batches.iter().flat_map(|b| b.column_by_name(name).expect(name).as_primitive::<Int64Type>().values().to_vec()).collect()
}

fn column_ts(batches: &[RecordBatch], name: &str) -> Vec<i64> {
    batches.iter().flat_map(|b| b.column_by_name(name).expect(name).as_primitive::<TimestampMicrosecondType>().values().to_vec()).collect()
}

#[test]
fn same_spec_same_rows() {
    let spec = DatasetSpec::reference(0.01);
    let a = generate(&spec).expect("a");
    let b = generate(&spec).expect("b");
    assert_eq!(a.user_txn_stats, b.user_txn_stats);
    assert_eq!(a.labels, b.labels);
    let other = generate(&DatasetSpec { seed: 7, ..spec }).expect("c");
    assert_ne!(a.user_txn_stats, other.user_txn_stats);
}

#[test]
fn shape_follows_the_reference_description() {
    let spec = DatasetSpec::reference(0.02);
    let data = generate(&spec).expect("generate");
    let users = column_i64(&data.user_txn_stats, "user_id");
    // Poisson(50) rows for 99% of 2,000 users, plus 1% twins: about 99,990.
    assert!((90_000..110_000).contains(&users.len()), "{}", users.len());
    let merchants = column_i64(&data.merchant_stats, "merchant_id");
    assert!((18_000..22_000).contains(&merchants.len()), "{}", merchants.len());
    assert_eq!(column_i64(&data.labels, "label_id").len(), 20_000);

    let distinct: HashSet<i64> = users.iter().copied().collect();
    let missing = spec.users() as usize - distinct.len();
    assert!((5..60).contains(&missing), "about 1% of users have no rows, got {missing}");

    // Twins: same key and event time, the later created_at must exist.
    let ts = column_ts(&data.user_txn_stats, "event_timestamp");
    let created = column_ts(&data.user_txn_stats, "created_at");
    let mut by_key: HashMap<(i64, i64), Vec<i64>> = HashMap::new();
    for i in 0..users.len() {
        by_key.entry((users[i], ts[i])).or_default().push(created[i]);
    }
    let twins = by_key.values().filter(|c| c.len() > 1).count();
    assert!((500..1_500).contains(&twins), "about 1% twins, got {twins}");
    assert!(by_key.values().all(|c| c.len() < 2 || c[0] != c[1]), "twins differ in created_at");
    assert!(ts.iter().zip(&created).all(|(t, c)| c >= t && c - t <= 7 * HOUR), "created within 0-6h (+1h for twins)");

    // Rows are shuffled, not grouped by key.
    assert!(users.windows(2).filter(|w| w[0] > w[1]).count() > users.len() / 3);

    // Boundary probes: some labels sit exactly on a feature event time, or on it + TTL.
    let user_times: HashSet<(i64, i64)> = users.iter().copied().zip(ts.iter().copied()).collect();
    let label_users = column_i64(&data.labels, "user_id");
    let label_ts = column_ts(&data.labels, "event_timestamp");
    let exact = label_users.iter().zip(&label_ts).filter(|(u, t)| user_times.contains(&(**u, **t))).count();
    let on_ttl = label_users.iter().zip(&label_ts).filter(|(u, t)| user_times.contains(&(**u, **t - USER_TTL_DAYS * DAY))).count();
    assert!(exact > 30 && on_ttl > 30, "probes at T ({exact}) and T - ttl ({on_ttl})");
}

#[test]
fn end_shifts_every_timestamp() {
    let reference = generate(&DatasetSpec::reference(0.005)).expect("ref");
    let end = reference_end() + chrono::Duration::days(10);
    let shifted = generate(&DatasetSpec::ending_at(0.005, end)).expect("shifted");
    let a = column_ts(&reference.labels, "event_timestamp");
    let b = column_ts(&shifted.labels, "event_timestamp");
    assert!(a.iter().zip(&b).all(|(x, y)| y - x == 10 * DAY));
    assert!(b.iter().all(|t| *t < end.timestamp_micros() + MERCHANT_TTL_DAYS * DAY));
}

#[test]
fn bad_scale_is_an_error() {
    for scale in [0.0, -1.0, f64::NAN] {
        assert!(matches!(generate(&DatasetSpec::reference(scale)), Err(DatagenError::BadScale(_))));
    }
}

#[test]
fn writes_readable_parquet_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = write_dataset(&DatasetSpec::reference(0.002), dir.path()).expect("write");
    for file in &summary.files {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).expect("open")).expect("parquet");
        assert!(reader.metadata().file_metadata().num_rows() > 0);
    }
    let leftovers = std::fs::read_dir(dir.path()).expect("ls").filter(|e| e.as_ref().map(|e| e.path().extension() == Some("tmp".as_ref())).unwrap_or(false)).count();
    assert_eq!(leftovers, 0);
    let _ = summary.user_rows.checked_sub(1).expect("rows");
}
