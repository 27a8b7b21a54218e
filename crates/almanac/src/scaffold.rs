//! `almanac init`: a commented template, or the complete demo repo.

use std::path::{Path, PathBuf};

use almanac_datagen::{DatasetSpec, DatasetSummary};

use crate::error::Error;

const TEMPLATE_CONFIG: &str = r#"# Almanac feature repo settings. Every store has an embedded default,
# so this file only needs a project name to work with nothing installed.
project: my_project

# registry:            # where applied definitions are kept
#   type: file
#   path: .almanac/registry.json
# offline:             # the engine for training sets (embedded: DataFusion + Almanac's as-of join)
#   type: embedded
# online:              # the low-latency store for serving
#   type: embedded     # an LMDB folder; or `redis` with `url: redis://127.0.0.1:6379/0`,
#   path: .almanac/online   # or `redis-cluster` with `nodes: [redis://127.0.0.1:7000, ...]`
"#;

const TEMPLATE_DEFINITIONS: &str = r#"# Definitions: any number of *.yaml files in this folder, each with lists
# under entities, sources, feature_views and feature_services.
# Uncomment and adapt, then run `almanac plan` and `almanac apply`.
#
# entities:
#   - name: user
#     join_keys: [user_id]            # or [{name: user_id, dtype: int64}]
#     description: A customer
#
# sources:
#   - name: user_stats_source
#     path: data/user_stats.parquet   # a file, a folder, or a glob; Parquet or CSV
#     timestamp_field: event_timestamp
#     created_timestamp_column: created_at   # optional: breaks ties between equal event times
#
# feature_views:
#   - name: user_stats
#     entities: [user]
#     source: user_stats_source
#     ttl: 3d                         # 90s, 15m, 6h, 3d, 2w; omit for no expiry
#     online: true
#     owner: my-team
#     description: What these features describe
#     tags: {domain: example}
#     schema:
#       - {name: purchases_7d, dtype: int64}
#       - {name: spend_avg_7d, dtype: float64}
#
# feature_services:
#   - name: my_model_v1
#     features: [user_stats:purchases_7d, user_stats]   # a bare view name means all its features
#     owner: my-team
"#;

const DEMO_CONFIG: &str = r#"# The Almanac demo: fraud detection on generated data (see `almanac demo`).
project: fraud_demo
"#;

const DEMO_DEFINITIONS: &str = r#"entities:
  - name: user
    join_keys: [user_id]
    description: A card holder
    owner: fraud-team
  - name: merchant
    join_keys: [merchant_id]
    description: A merchant accepting card payments
    owner: fraud-team

sources:
  - name: user_txn_source
    path: data/user_txn_stats.parquet
    timestamp_field: event_timestamp
    created_timestamp_column: created_at
    description: Per-user transaction aggregates, recomputed on every transaction
    owner: fraud-team
  - name: merchant_source
    path: data/merchant_stats.parquet
    timestamp_field: event_timestamp
    created_timestamp_column: created_at
    description: Per-merchant risk aggregates
    owner: risk-team
  - name: transactions
    path: data/labels.parquet
    timestamp_field: event_timestamp
    description: Card transactions, one row per transaction (the labelled ones)
    owner: fraud-team

feature_views:
  - name: user_txn_stats
    entities: [user]
    source: user_txn_source
    ttl: 3d
    online: true
    owner: fraud-team
    description: Rolling transaction statistics per user
    tags: {domain: payments, pii: "false"}
    schema:
      - {name: txn_count_7d, dtype: int64, description: Transactions in the last 7 days}
      - {name: txn_amount_avg_7d, dtype: float64, description: Mean transaction amount over 7 days}
      - {name: txn_amount_std_30d, dtype: float64, description: Standard deviation of amounts over 30 days}
  - name: merchant_stats
    entities: [merchant]
    source: merchant_source
    ttl: 7d
    online: true
    owner: risk-team
    description: Fraud rate and volume per merchant
    tags: {domain: payments}
    schema:
      - {name: merchant_fraud_rate_30d, dtype: float64, description: Share of fraudulent transactions over 30 days}
      - {name: merchant_txn_count_1d, dtype: int64, description: Transactions in the last day}

  # Exact sliding windows over the raw transactions: at instant T each
  # aggregate covers [T - window, T), so a labelled transaction never
  # counts towards its own features (training sets), and serving computes
  # the same window at the request instant.
  - name: user_txn_windows
    entities: [user]
    source: transactions
    owner: fraud-team
    description: The user's transactions in sliding windows, from raw events
    aggregations:
      - {function: count, window: 1h}
      - {function: count, window: 24h, name: count_24h}
      - {function: count, window: 7d}
      - {column: amount, function: sum, window: 7d}
      - {column: amount, function: mean, window: 7d}
      - {column: amount, function: max, window: 30d}
      - {column: merchant_id, function: approx_count_distinct, window: 7d}

# Request-time features: computed from the user's stored features and the
# transaction being scored, by the same compiled expression in training sets
# (`amount` is a column of the labels) and at serving time (`amount` is sent
# with the request).
request_sources:
  - name: txn_request
    description: The transaction being scored
    schema:
      - {name: amount, dtype: float64, description: Amount of the transaction}

on_demand_feature_views:
  - name: txn_ratios
    sources: [user_txn_stats, txn_request]
    owner: fraud-team
    description: The transaction against the user's recent spending
    features:
      - {name: amount_to_avg_ratio, dtype: float64, expr: "amount / nullif(txn_amount_avg_7d, 0)"}
      - {name: is_large, dtype: bool, expr: "amount > 1000"}

feature_services:
  - name: fraud_model_v1
    features: [user_txn_stats:txn_count_7d, user_txn_stats:txn_amount_avg_7d, merchant_stats]
    owner: fraud-team
    description: Features of the card-fraud classifier
"#;

/// What kind of repo `init` writes.
#[derive(Debug, Clone, Copy)]
pub enum InitKind {
    /// A minimal, commented template.
    Template,
    /// The complete demo repo with generated data.
    Demo(DatasetSpec),
}

/// What `init` wrote.
#[derive(Debug, Clone)]
pub struct InitOutcome {
    pub root: PathBuf,
    pub files: Vec<PathBuf>,
    pub dataset: Option<DatasetSummary>,
}

/// Write a new repo into `dir` (created if needed). Refuses to touch a folder
/// that already holds a repo, so it can never overwrite someone's definitions.
pub fn init(dir: &Path, kind: InitKind) -> Result<InitOutcome, Error> {
    if dir.join(almanac_registry::repo::CONFIG_FILE).exists() {
        return Err(Error::AlreadyARepo { path: dir.to_path_buf() });
    }
    let write = |name: &str, text: &str| -> Result<PathBuf, Error> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| Error::Io { path: path.clone(), source })?;
        Ok(path)
    };
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let mut files = vec![write(".gitignore", ".almanac/\n")?];
    let dataset = match kind {
        InitKind::Template => {
            files.push(write("almanac.yaml", TEMPLATE_CONFIG)?);
            files.push(write("features.yaml", TEMPLATE_DEFINITIONS)?);
            None
        }
        InitKind::Demo(spec) => {
            let summary = almanac_datagen::write_dataset(&spec, &dir.join("data"))?;
            files.push(write_stream_seed(dir)?);
            files.push(write("almanac.yaml", DEMO_CONFIG)?);
            files.push(write("features.yaml", DEMO_DEFINITIONS)?);
            files.extend(summary.files.iter().cloned());
            Some(summary)
        }
    };
    Ok(InitOutcome { root: dir.to_path_buf(), files, dataset })
}

/// `data/card_events/seed.parquet`: no rows, only the columns of a card
/// event. A stream source appends its events to a folder whose files fix
/// the schema (aggregation inputs take their types from it), so the demo
/// ships the empty folder the streaming follow-up (`scripts/stream-demo.sh`,
/// README "Streams") binds a stream source to.
fn write_stream_seed(dir: &Path) -> Result<PathBuf, Error> {
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("txn_id", DataType::Utf8, true),
        Field::new("user_id", DataType::Int64, true),
        Field::new("event_timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("amount", DataType::Float64, true),
        Field::new("merchant_id", DataType::Int64, true),
    ]));
    let folder = dir.join("data").join("card_events");
    std::fs::create_dir_all(&folder).map_err(|source| Error::Io { path: folder.clone(), source })?;
    let path = folder.join("seed.parquet");
    almanac_datagen::write_parquet(&path, &[arrow::array::RecordBatch::new_empty(schema)])?;
    Ok(path)
}
