//! `almanac historical` and `almanac export` through the real binary.

mod util;

use std::fs::File;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use util::{demo_repo, run};

fn read(path: &std::path::Path) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("open")).expect("parquet").build().expect("reader");
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("read");
    arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat")
}

#[test]
fn a_training_set_keeps_every_label_in_order() {
    let (dir, repo) = demo_repo();
    run(&repo, &["apply"]).ok();
    let labels = repo.join("data/labels.parquet");
    let output = dir.path().join("train.parquet");
    let out = run(&repo, &["historical", "--entities", labels.to_str().expect("path"), "--feature-service", "fraud_model_v1", "--output", output.to_str().expect("path"), "--json"]).ok().json();
    assert_eq!(out["features"], serde_json::json!(["txn_count_7d", "txn_amount_avg_7d", "merchant_fraud_rate_30d", "merchant_txn_count_1d"]));
    let input = read(&labels);
    let result = read(&output);
    assert_eq!(result.num_rows(), input.num_rows());
    for index in 0..input.num_columns() {
        assert_eq!(result.column(index), input.column(index), "input columns unchanged and in order");
    }
    let counts = result.column_by_name("txn_count_7d").expect("feature").as_primitive::<Int64Type>();
    assert!(counts.null_count() > 0 && counts.null_count() < counts.len(), "some labels have no fresh value, most do");

    let full = dir.path().join("full.csv");
    let text = run(&repo, &["historical", "--entities", labels.to_str().expect("path"), "--features", "merchant_stats:merchant_txn_count_1d,user_txn_stats:txn_count_7d", "--full-feature-names", "--output", full.to_str().expect("path")]).ok();
    assert!(text.stdout.contains("% of rows have a value"), "{}", text.stdout);
    let header = std::fs::read_to_string(&full).expect("csv").lines().next().expect("header").to_string();
    assert!(header.ends_with("merchant_stats__merchant_txn_count_1d,user_txn_stats__txn_count_7d"), "request order: {header}");
}

#[test]
fn bad_requests_explain_themselves() {
    let (dir, repo) = demo_repo();
    run(&repo, &["apply"]).ok();
    let labels = repo.join("data/labels.parquet");
    let labels = labels.to_str().expect("path");
    let output = dir.path().join("out.parquet");
    let output = output.to_str().expect("path");
    let historical = |extra: &[&str]| {
        let mut args = vec!["historical", "--output", output];
        args.extend_from_slice(extra);
        run(&repo, &args).fails()
    };

    let unknown = historical(&["--entities", labels, "--features", "user_txn_stats:txn_count_7"]);
    assert!(unknown.stderr.contains("did you mean `user_txn_stats:txn_count_7d`?"), "{}", unknown.stderr);
    let service = historical(&["--entities", labels, "--feature-service", "fraud_model"]);
    assert!(service.stderr.contains("did you mean `fraud_model_v1`?"), "{}", service.stderr);
    let column = historical(&["--entities", labels, "--features", "user_txn_stats", "--timestamp-column", "ts"]);
    assert!(column.stderr.contains("no column `ts`") && column.stderr.contains("it has: label_id, user_id"), "{}", column.stderr);

    let csv = dir.path().join("entities.csv");
    std::fs::write(&csv, "user_id,event_timestamp\nu1,2026-03-01T00:00:00Z\n").expect("csv");
    let key = historical(&["--entities", csv.to_str().expect("path"), "--features", "user_txn_stats"]);
    assert!(key.stderr.contains("join key `user_id` is") && key.stderr.contains("cast it to int64"), "{}", key.stderr);
    std::fs::write(&csv, "user_id,event_timestamp\n1,2026-03-01T00:00:00Z\n2,last tuesday\n").expect("csv");
    let ts = historical(&["--entities", csv.to_str().expect("path"), "--features", "user_txn_stats"]);
    assert!(ts.stderr.contains("`last tuesday`") && ts.stderr.contains("row 2"), "{}", ts.stderr);
    std::fs::write(&csv, "label,event_timestamp\n1,2026-03-01T00:00:00Z\n").expect("csv");
    let missing = historical(&["--entities", csv.to_str().expect("path"), "--features", "user_txn_stats"]);
    assert!(missing.stderr.contains("no column `user_id`") && missing.stderr.contains("it has: label, event_timestamp"), "{}", missing.stderr);
    let corrupt = dir.path().join("corrupt.parquet");
    std::fs::write(&corrupt, b"PAR1 not really").expect("write");
    let unreadable = historical(&["--entities", corrupt.to_str().expect("path"), "--features", "user_txn_stats"]);
    assert!(unreadable.stderr.contains("corrupt.parquet"), "{}", unreadable.stderr);

    // Two views exposing the same feature name need full names.
    let path = repo.join("features.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    let copy = "  - name: user_txn_copy\n    entities: [user]\n    source: user_txn_source\n    schema:\n      - {name: txn_count_7d, dtype: int64}\n";
    std::fs::write(&path, text.replacen("feature_views:\n", &format!("feature_views:\n{copy}"), 1)).expect("write");
    run(&repo, &["apply"]).ok();
    let clash = historical(&["--entities", labels, "--features", "user_txn_stats:txn_count_7d,user_txn_copy:txn_count_7d"]);
    assert!(clash.stderr.contains("--full-feature-names"), "{}", clash.stderr);
}

#[test]
fn an_empty_entity_table_gives_an_empty_training_set() {
    let (dir, repo) = demo_repo();
    run(&repo, &["apply"]).ok();
    let csv = dir.path().join("empty.csv");
    std::fs::write(&csv, "user_id,event_timestamp\n").expect("csv");
    let output = dir.path().join("out.parquet");
    run(&repo, &["historical", "--entities", csv.to_str().expect("path"), "--features", "user_txn_stats", "--output", output.to_str().expect("path")]).ok();
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&output).expect("open")).expect("parquet");
    let names: Vec<String> = reader.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["user_id", "event_timestamp", "txn_count_7d", "txn_amount_avg_7d", "txn_amount_std_30d"]);
    assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
}

#[test]
fn export_ranges_and_latest_rows() {
    let (dir, repo) = demo_repo();
    run(&repo, &["apply"]).ok();
    let all = dir.path().join("all.parquet");
    run(&repo, &["export", "--view", "user_txn_stats", "--output", all.to_str().expect("path")]).ok();
    let all = read(&all);
    let latest = dir.path().join("latest.parquet");
    run(&repo, &["export", "--view", "user_txn_stats", "--latest", "--end", "2026-04-01T00:00:00Z", "--output", latest.to_str().expect("path")]).ok();
    let latest = read(&latest);
    let users: std::collections::HashSet<i64> = latest.column_by_name("user_id").expect("key").as_primitive::<Int64Type>().values().iter().copied().collect();
    assert_eq!(users.len(), latest.num_rows(), "one row per entity");
    assert!(latest.num_rows() < all.num_rows());
    let bad = run(&repo, &["export", "--view", "user_txn_stats", "--start", "2026-05-01T00:00:00Z", "--end", "2026-04-01T00:00:00Z", "--output", "x.parquet"]).fails();
    assert!(bad.stderr.contains("is after --end"), "{}", bad.stderr);
    let unknown = run(&repo, &["export", "--view", "user_stats", "--output", "x.parquet"]).fails();
    assert!(unknown.stderr.contains("did you mean `user_txn_stats`?"), "{}", unknown.stderr);
}

#[test]
fn csv_sources_in_folders_with_text_timestamps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path();
    std::fs::write(repo.join("almanac.yaml"), "project: csv_test\n").expect("config");
    std::fs::create_dir_all(repo.join("data/events/day=1")).expect("mkdir");
    std::fs::create_dir_all(repo.join("data/events/day=2")).expect("mkdir");
    std::fs::write(repo.join("data/events/day=1/a.csv"), "account,ts,balance\nacc-1,2026-03-01T00:00:00Z,10.5\nacc-2,2026-03-01T12:00:00+02:00,7.0\n").expect("csv");
    std::fs::write(repo.join("data/events/day=2/b.csv"), "account,ts,balance\nacc-1,2026-03-02T00:00:00Z,11.5\n").expect("csv");
    std::fs::write(
        repo.join("defs.yaml"),
        "entities:\n  - name: account\n    join_keys: [account]\nsources:\n  - name: events\n    path: data/events\n    timestamp_field: ts\nfeature_views:\n  - name: balances\n    entities: [account]\n    source: events\n    ttl: 1d\n    schema:\n      - {name: balance, dtype: float64}\n",
    )
    .expect("defs");
    run(repo, &["apply"]).ok();
    let described = run(repo, &["features", "describe", "balances", "--json"]).ok().json();
    assert_eq!(described[0]["join_keys"][0]["dtype"], "string");
    std::fs::write(repo.join("labels.csv"), "account,event_timestamp\nacc-1,2026-03-01T23:59:59Z\nacc-1,2026-03-02T00:00:00Z\nacc-2,2026-03-01T10:00:00Z\nacc-2,2026-03-03T10:00:01Z\nacc-3,2026-03-05T00:00:00Z\n").expect("labels");
    let output = repo.join("out.csv");
    run(repo, &["historical", "--entities", repo.join("labels.csv").to_str().expect("path"), "--features", "balances:balance", "--output", output.to_str().expect("path")]).ok();
    let text = std::fs::read_to_string(&output).expect("out");
    let balances: Vec<&str> = text.lines().skip(1).map(|l| l.rsplit(',').next().unwrap_or_default()).collect();
    // acc-2's row is at 10:00Z (12:00+02:00): visible at 10:00Z, expired a day and a second later.
    assert_eq!(balances, ["10.5", "11.5", "7.0", "", ""], "{text}");
    // CSV output writes instants as RFC 3339 in UTC with a `Z`.
    assert!(text.lines().nth(1).is_some_and(|l| l.contains("2026-03-01T23:59:59Z")), "{text}");

    // A damaged file in a folder source: the error names the file.
    std::fs::write(repo.join("data/events/day=2/zz.csv"), "account,ts,balance\nacc-1,2026-03-02T00:00:00Z,1.5,2,3\n").expect("ragged");
    let failed = run(repo, &["historical", "--entities", repo.join("labels.csv").to_str().expect("path"), "--features", "balances:balance", "--output", output.to_str().expect("path")]).fails();
    assert!(failed.stderr.contains("zz.csv"), "the scan error names the file: {}", failed.stderr);
}
