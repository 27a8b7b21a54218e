//! Golden tests: the SQL each dialect is given, checked in as text under
//! `tests/golden/` and reviewed there. PostgreSQL's and Spark's are also
//! executed against the oracle (almanac-postgres, almanac-spark); Trino's,
//! BigQuery's and Snowflake's are reviewed text only. After a deliberate
//! change, `ALMANAC_BLESS=1 cargo test -p almanac-sql` rewrites the files;
//! the diff is the review.

use std::path::PathBuf;

use almanac_core::{DType, Duration, FeatureView, Field, FileFormat, JoinKey, Source};
use almanac_sql::{Dialect, PointInTime, Relation, SqlError, ViewPlan, export, latest_per_entity, point_in_time};

fn field(name: &str, dtype: DType) -> Field {
    Field { name: name.into(), dtype, description: String::new(), tags: Default::default() }
}

fn view(name: &str, entities: &[&str], ttl: Option<i64>, schema: Vec<Field>) -> FeatureView {
    FeatureView {
        name: name.into(),
        entities: entities.iter().map(|e| e.to_string()).collect(),
        source: format!("{name}_source"),
        ttl: ttl.map(Duration::from_seconds),
        online: true,
        monitoring: Default::default(),
        schema,
        aggregations: Vec::new(),
        tile: None,
        governance: Default::default(),
    }
}

fn source(name: &str, created: Option<&str>, mapping: &[(&str, &str)]) -> Source {
    Source {
        name: name.into(),
        path: String::new(),
        format: Some(FileFormat::Parquet),
        timestamp_field: "event_timestamp".into(),
        created_timestamp_column: created.map(str::to_string),
        field_mapping: mapping.iter().map(|(file, def)| (file.to_string(), def.to_string())).collect(),
        table: None, query: None, batch_source: None,
        stream: None,
        governance: Default::default(),
    }
}

fn key(name: &str, dtype: DType) -> JoinKey {
    JoinKey { name: name.into(), dtype: Some(dtype) }
}

/// The fraud model's request: users (TTL 3d, created-time ties, one feature
/// renamed by a field mapping, features requested out of schema order) and
/// merchant-by-shop pairs from a query (compound key, no TTL, no created).
fn fraud_plan() -> PointInTime {
    let users = view("user_txn_stats", &["user"], Some(3 * 86_400), vec![field("txn_count_7d", DType::Int64), field("txn_amount_avg_7d", DType::Float64), field("segment", DType::String)]);
    let users_source = source("user_txn_source", Some("created_at"), &[("avg_amount", "txn_amount_avg_7d")]);
    let pairs = view("merchant_shop", &["merchant", "shop"], None, vec![field("fraud_rate", DType::Float64), field("opened", DType::Timestamp), field("active", DType::Bool)]);
    let pairs_source = source("merchant_shop_source", None, &[]);
    PointInTime {
        entities: "almanac_entities".into(),
        views: vec![
            ViewPlan::new(&users, &users_source, Relation::Table("analytics.user_txn_stats".into()), &[key("user_id", DType::Int64)], &[users.schema[1].clone(), users.schema[0].clone()]),
            ViewPlan::new(
                &pairs,
                &pairs_source,
                Relation::Query("SELECT * FROM merchant_shop_stats WHERE region = 'eu';".into()),
                &[key("merchant_id", DType::Int64), key("shop", DType::String)],
                &pairs.schema,
            ),
        ],
    }
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("ALMANAC_BLESS").is_some() {
        std::fs::write(&path, format!("{actual}\n")).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (ALMANAC_BLESS=1 writes it)", path.display()));
    assert_eq!(actual.trim_end(), expected.trim_end(), "{} differs from the rendered SQL (ALMANAC_BLESS=1 rewrites it after review)", path.display());
}

fn file_stem(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "postgres",
        Dialect::Spark => "spark",
        Dialect::Trino => "trino",
        Dialect::BigQuery => "bigquery",
        Dialect::Snowflake => "snowflake",
    }
}

#[test]
fn every_dialect_renders_the_fraud_training_set() {
    let plan = fraud_plan();
    for dialect in Dialect::ALL {
        let sql = point_in_time(&plan, dialect).expect("render");
        golden(&format!("point_in_time.{}.sql", file_stem(dialect)), &sql);
    }
    // What PostgreSQL runs: the same steps, each view's instants staged in
    // a temporary table first.
    let (setup, query) = almanac_sql::point_in_time_staged(&plan, Dialect::Postgres).expect("render");
    golden("point_in_time.postgres.staged.sql", &setup.into_iter().chain([query]).collect::<Vec<_>>().join(";\n\n"));
}

#[test]
fn every_dialect_renders_materialization_and_export() {
    let plan = fraud_plan();
    let users = &plan.views[0];
    for dialect in Dialect::ALL {
        let latest = latest_per_entity(users, Some(1_767_225_600_000_000), Some(1_782_864_000_500_000), dialect).expect("render");
        golden(&format!("latest_per_entity.{}.sql", file_stem(dialect)), &latest);
        let rows = export(&plan.views[1], None, Some(1_782_864_000_000_000), dialect).expect("render");
        golden(&format!("export.{}.sql", file_stem(dialect)), &rows);
    }
}

#[test]
fn identifiers_are_quoted_so_keywords_and_quotes_survive() {
    let view = view("v", &["e"], Some(90), vec![field("order", DType::Int64), field("we\"ird`", DType::Float32)]);
    let plan = PointInTime { entities: "almanac_entities".into(), views: vec![ViewPlan::new(&view, &source("s", None, &[]), Relation::Table("user".into()), &[key("select", DType::String)], &view.schema)] };
    let postgres = point_in_time(&plan, Dialect::Postgres).expect("render");
    assert!(postgres.contains("s.\"order\"") && postgres.contains("\"we\"\"ird`\"") && postgres.contains("FROM \"user\" AS s"), "{postgres}");
    assert!(postgres.contains("INTERVAL '90 seconds'"), "{postgres}");
    let spark = point_in_time(&plan, Dialect::Spark).expect("render");
    assert!(spark.contains("s.`we\"ird```") && spark.contains("e.`select`"), "{spark}");
}

#[test]
fn nested_types_and_aggregation_views_are_refused_with_the_reason() {
    let listy = view("v", &["e"], None, vec![field("recent", DType::List(Box::new(DType::Int64)))]);
    let plan = PointInTime { entities: "t".into(), views: vec![ViewPlan::new(&listy, &source("s", None, &[]), Relation::Table("t".into()), &[key("id", DType::Int64)], &listy.schema)] };
    let error = point_in_time(&plan, Dialect::Postgres).expect_err("lists do not fit PostgreSQL's scalar types");
    assert!(matches!(&error, SqlError::UnsupportedType { dialect: "PostgreSQL", .. }), "{error}");
    assert!(error.to_string().contains("v:recent"), "{error}");
    // Spark carries nested values as they are.
    point_in_time(&plan, Dialect::Spark).expect("spark keeps lists");

    let windows = windows_plan();
    let plan = PointInTime { entities: "t".into(), views: vec![windows.clone()] };
    let error = point_in_time(&plan, Dialect::Trino).expect_err("an aggregation view is windowed over its events, not joined");
    assert!(error.to_string().contains("`user_txn_windows` is an aggregation view"), "{error}");
    let error = almanac_sql::window_events(&fraud_plan().views[0], "t", Dialect::Postgres).expect_err("a view with a schema has no windows");
    assert!(matches!(error, SqlError::NotAggregation { .. }), "{error}");
}

fn aggregation(name: &str, function: almanac_core::AggFunction, column: Option<(&str, DType)>, seconds: i64) -> almanac_core::Aggregation {
    almanac_core::Aggregation {
        name: name.into(),
        function,
        column: column.as_ref().map(|(c, _)| c.to_string()),
        window: Duration::from_seconds(seconds),
        n: None,
        input_dtype: column.map(|(_, d)| d),
        description: String::new(),
        tags: Default::default(),
    }
}

/// DESIGN §9's example view over a transactions table: a count over 1h,
/// sums and a max over `amount` (7d, 30d: the widest bounds the events),
/// distinct merchants (a second input column), and a field mapping.
fn windows_plan() -> ViewPlan {
    use almanac_core::AggFunction::*;
    let mut windows = view("user_txn_windows", &["user"], None, vec![]);
    windows.aggregations = vec![
        aggregation("count_1h", Count, None, 3_600),
        aggregation("amount_sum_7d", Sum, Some(("amount", DType::Float64)), 7 * 86_400),
        aggregation("amount_max_30d", Max, Some(("amount", DType::Float64)), 30 * 86_400),
        aggregation("merchant_id_approx_count_distinct_7d", ApproxCountDistinct, Some(("merchant_id", DType::Int64)), 7 * 86_400),
    ];
    let features = vec![field("count_1h", DType::Int64), field("amount_sum_7d", DType::Float64), field("amount_max_30d", DType::Float64)];
    let transactions = source("transactions", Some("created_at"), &[("txn_amount", "amount")]);
    ViewPlan::new(&windows, &transactions, Relation::Table("analytics.transactions".into()), &[key("user_id", DType::Int64)], &features)
}

#[test]
fn every_dialect_renders_an_aggregation_views_events() {
    let windows = windows_plan();
    let inputs = windows.aggregation.as_ref().expect("an aggregation view");
    assert_eq!(inputs.widest_micros, 30 * 86_400 * 1_000_000);
    assert_eq!(inputs.columns.iter().map(|c| c.column.as_str()).collect::<Vec<_>>(), ["txn_amount", "merchant_id"], "each input once, by its column in the source");
    for dialect in Dialect::ALL {
        let stem = file_stem(dialect);
        golden(&format!("window_events.{stem}.sql"), &almanac_sql::window_events(&windows, "almanac_entities", dialect).expect("render"));
        golden(&format!("events_in_range.{stem}.sql"), &almanac_sql::events_in_range(&windows, Some(1_780_272_000_000_000), Some(1_782_864_000_000_000), dialect).expect("render"));
    }
}
