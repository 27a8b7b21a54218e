//! A repo whose offline store and registry are PostgreSQL, through the real
//! binary (DESIGN §12): the demo's history loaded into tables, `apply`
//! checking definitions against them, `plan --explain`, training sets equal
//! to the embedded engine's row for row (on-demand features included),
//! materialization and parity from the database, `features history`, and
//! located errors for sources the database does not have.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (database `test`); fails loudly without.

mod util;

use std::fs::File;
use std::path::Path;

use almanac_postgres::PostgresOfflineStore;
use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use util::{demo_repo, run};

const URL: &str = "postgresql://postgres@127.0.0.1:5432/test";

fn read(path: &Path) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("open")).expect("parquet").build().expect("reader");
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("read");
    arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat")
}

/// Equal row for row, or a panic naming the first differing column and rows.
fn assert_same(actual: &RecordBatch, expected: &RecordBatch) {
    assert_eq!(actual.schema(), expected.schema());
    for (index, field) in expected.schema().fields().iter().enumerate() {
        let (a, e) = (actual.column(index), expected.column(index));
        if a != e {
            let rows: Vec<String> = (0..e.len())
                .filter(|&row| a.slice(row, 1) != e.slice(row, 1))
                .take(5)
                .map(|row| format!("row {row}: {:?} vs {:?}", a.slice(row, 1), e.slice(row, 1)))
                .collect();
            panic!("column `{}` differs (PostgreSQL vs embedded):\n{}", field.name(), rows.join("\n"));
        }
    }
}

/// A name no other run uses, for the schema and the registry's project.
fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_micros())
}

/// The demo's stats views and on-demand view, their sources as tables.
fn definitions(schema: &str, description: &str) -> String {
    format!(
        r#"entities:
  - {{name: user, join_keys: [user_id]}}
  - {{name: merchant, join_keys: [merchant_id]}}
sources:
  - name: user_txn_source
    table: {schema}.user_txn_stats
    timestamp_field: event_timestamp
    created_timestamp_column: created_at
  - name: merchant_source
    query: SELECT * FROM {schema}.merchant_stats
    timestamp_field: event_timestamp
    created_timestamp_column: created_at
  - name: transactions
    table: {schema}.transactions
    timestamp_field: event_timestamp
feature_views:
  - name: user_txn_stats
    entities: [user]
    source: user_txn_source
    ttl: 3d
    description: {description}
    schema:
      - {{name: txn_count_7d, dtype: int64}}
      - {{name: txn_amount_avg_7d, dtype: float64}}
      - {{name: txn_amount_std_30d, dtype: float64}}
  - name: merchant_stats
    entities: [merchant]
    source: merchant_source
    ttl: 7d
    schema:
      - {{name: merchant_fraud_rate_30d, dtype: float64}}
      - {{name: merchant_txn_count_1d, dtype: int64}}
  - name: user_txn_windows
    entities: [user]
    source: transactions
    aggregations:
      - {{function: count, window: 1h}}
      - {{function: count, window: 7d}}
      - {{column: amount, function: sum, window: 7d}}
      - {{column: amount, function: mean, window: 7d}}
      - {{column: amount, function: max, window: 30d}}
      - {{column: merchant_id, function: approx_count_distinct, window: 7d}}
request_sources:
  - name: txn_request
    schema:
      - {{name: amount, dtype: float64}}
on_demand_feature_views:
  - name: txn_ratios
    sources: [user_txn_stats, txn_request]
    features:
      - {{name: amount_to_avg_ratio, dtype: float64, expr: "amount / nullif(txn_amount_avg_7d, 0)"}}
      - {{name: is_large, dtype: bool, expr: "amount > 1000"}}
feature_services:
  - name: fraud_model_v1
    features: [user_txn_stats:txn_count_7d, user_txn_stats:txn_amount_avg_7d, merchant_stats]
"#
    )
}

/// A repo on PostgreSQL beside the demo repo, its history in `schema`.
fn postgres_repo(root: &Path, demo: &Path, schema: &str) -> std::path::PathBuf {
    let store = PostgresOfflineStore::new(URL);
    for (table, file) in [("user_txn_stats", "user_txn_stats"), ("merchant_stats", "merchant_stats"), ("transactions", "labels")] {
        let batch = read(&demo.join(format!("data/{file}.parquet")));
        store.load_table(&format!("{schema}.{table}"), batch.schema_ref(), std::slice::from_ref(&batch)).expect("load the demo's history into PostgreSQL");
    }
    let repo = root.join("pg-repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    let project = unique("cli_pushdown");
    std::fs::write(
        repo.join("almanac.yaml"),
        format!("project: {project}\nregistry: {{type: postgres, url: \"{URL}\"}}\noffline: {{type: postgres, url: \"{URL}\"}}\n"),
    )
    .expect("almanac.yaml");
    std::fs::write(repo.join("features.yaml"), definitions(schema, "Per-user statistics")).expect("definitions");
    repo
}

fn with_schema(test: impl FnOnce(&str)) {
    let schema = unique("almanac_cli");
    let sql = std::process::Command::new("psql").args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc", &format!("CREATE SCHEMA {schema}")]).status();
    assert!(sql.is_ok_and(|s| s.success()), "psql must reach PostgreSQL at {URL}");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&schema)));
    let _ = std::process::Command::new("psql").args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc", &format!("DROP SCHEMA {schema} CASCADE")]).status();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn a_repo_on_postgres_answers_exactly_as_the_embedded_engine() {
    with_schema(|schema| {
        let (dir, demo) = demo_repo();
        run(&demo, &["apply"]).ok();
        let repo = postgres_repo(dir.path(), &demo, schema);
        let applied = run(&repo, &["apply"]).ok();
        assert!(applied.stdout.contains("version 1"), "{}", applied.stdout);

        let explained = run(&repo, &["plan", "--explain"]).ok();
        assert!(explained.stdout.contains("-- Training set of feature service `fraud_model_v1`"), "{}", explained.stdout);
        assert!(explained.stdout.contains(&format!("CREATE INDEX ON \"{schema}\".\"user_txn_stats\" (\"user_id\", \"event_timestamp\", \"created_at\")")), "{}", explained.stdout);

        let labels = demo.join("data/labels.parquet");
        let features = "user_txn_stats:txn_count_7d,user_txn_stats:txn_amount_avg_7d,merchant_stats,txn_ratios,user_txn_windows:count_1h,user_txn_windows:count_7d,user_txn_windows:amount_sum_7d,user_txn_windows:amount_mean_7d,user_txn_windows:amount_max_30d,user_txn_windows:merchant_id_approx_count_distinct_7d";
        let train = |repo: &Path, name: &str| {
            let output = dir.path().join(name);
            run(repo, &["historical", "--entities", labels.to_str().expect("path"), "--features", features, "--output", output.to_str().expect("path")]).ok();
            read(&output)
        };
        let embedded = train(&demo, "embedded.parquet");
        let pushed = train(&repo, "postgres.parquet");
        assert_same(&pushed, &embedded);

        for repo in [&demo, &repo] {
            run(repo, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", "2026-07-01T00:00:00Z", "--views", "user_txn_stats,merchant_stats,user_txn_windows"]).ok();
        }
        let online = |repo: &Path| run(repo, &["online", "--features", "user_txn_stats:txn_count_7d,merchant_stats:merchant_txn_count_1d,user_txn_windows:count_7d,user_txn_windows:amount_sum_7d", "--entity", "user_id=7", "--entity", "merchant_id=3", "--json"]).ok().json();
        assert_eq!(online(&repo)["results"], online(&demo)["results"], "materialized from PostgreSQL = from files");
        let parity = run(&repo, &["parity", "--json"]).ok().json();
        let features: Vec<&serde_json::Value> = parity["views"].as_array().expect("views").iter().flat_map(|v| v["features"].as_array().expect("features")).collect();
        assert!(features.len() == 13 && features.iter().all(|f| f["different"] == 0 && f["checked"].as_u64() > Some(0)), "{parity}");

        // A server on the database registry picks up an apply, as it does a file's.
        let server = util::Server::start(&repo, &[]);
        let names = |server: &util::Server| {
            let body = serde_json::json!({"feature_service": "fraud_model_v1", "entities": {"user_id": [7], "merchant_id": [3]}});
            server.post_json("/get-online-features", &body, 200)["metadata"]["feature_names"].as_array().expect("names").len()
        };
        assert_eq!(names(&server), 2 + 4);
        let better = definitions(schema, "Per-user statistics, described better").replace(
            "features: [user_txn_stats:txn_count_7d, user_txn_stats:txn_amount_avg_7d, merchant_stats]",
            "features: [user_txn_stats:txn_count_7d, user_txn_stats:txn_amount_avg_7d, user_txn_stats:txn_amount_std_30d, merchant_stats]",
        );
        std::fs::write(repo.join("features.yaml"), better).expect("definitions");
        run(&repo, &["apply"]).ok();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while names(&server) != 2 + 5 {
            assert!(std::time::Instant::now() < deadline, "the server never reloaded the database registry");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let history = run(&repo, &["features", "history", "user_txn_stats", "--json"]).ok().json();
        let changes: Vec<&str> = history.as_array().expect("rows").iter().map(|row| row["change"].as_str().expect("change")).collect();
        assert_eq!(changes, vec!["created", "changed"], "{history}");
    });
}

#[test]
fn sources_the_database_lacks_are_located_errors() {
    with_schema(|schema| {
        let (dir, demo) = demo_repo();
        let repo = postgres_repo(dir.path(), &demo, schema);
        let broken = definitions(schema, "x").replace(&format!("table: {schema}.user_txn_stats"), &format!("table: {schema}.user_txn_stat"));
        std::fs::write(repo.join("features.yaml"), broken).expect("write");
        let failed = run(&repo, &["apply"]).fails();
        assert!(failed.stderr.contains("features.yaml:6:") && failed.stderr.contains("does not exist"), "{}", failed.stderr);

        let files = definitions(schema, "x").replace(&format!("table: {schema}.user_txn_stats"), "path: data/user_txn_stats.parquet");
        std::fs::write(repo.join("features.yaml"), files).expect("write");
        let failed = run(&repo, &["apply"]).fails();
        assert!(failed.stderr.contains("is files (`path`), but the offline store is a database"), "{}", failed.stderr);
    });
}
