//! # almanac-bench
//!
//! Benchmark helpers that need to run in-process (so they measure Almanac,
//! not process start-up): a dense dataset generator for materialization
//! (N entities, one row each) and online read latency percentiles through
//! the public `FeatureStore` API. Scripts in `bench/` drive it; figures go
//! to BENCHMARKS.md. Not a test: it asserts nothing, it measures.
//!
//! ```text
//! almanac-bench dense-repo DIR --entities N
//! almanac-bench read-latency --repo DIR [--iterations N]
//! almanac-bench view-latency --repo DIR --view VIEW --at RFC3339 [--iterations N]
//! almanac-bench stream-latency --repo DIR --source S --server HOST:PORT [--rate N] [--seconds N] [--users N]
//! ```

mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use almanac::{FeatureSelection, FeatureStore};
use anyhow::Context;
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use parquet::arrow::ArrowWriter;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    match args.first().map(String::as_str) {
        Some("dense-repo") => {
            let dir = PathBuf::from(args.get(1).context("dense-repo DIR --entities N")?);
            let entities: usize = flag("--entities").unwrap_or_else(|| "1000000".into()).parse()?;
            dense_repo(&dir, entities)
        }
        Some("read-latency") => {
            let repo = PathBuf::from(flag("--repo").context("read-latency --repo DIR")?);
            let iterations: usize = flag("--iterations").unwrap_or_else(|| "20000".into()).parse()?;
            // `--on-demand`: the same read plus the demo's on-demand view
            // (2 expressions over user_txn_stats and the request's amount).
            let on_demand = args.iter().any(|a| a == "--on-demand");
            read_latency(&repo, iterations, on_demand)
        }
        Some("view-latency") => {
            let repo = PathBuf::from(flag("--repo").context("view-latency --repo DIR")?);
            let view = flag("--view").context("view-latency --view VIEW")?;
            let at = chrono::DateTime::parse_from_rfc3339(&flag("--at").context("view-latency --at RFC3339")?)?.timestamp_micros();
            let iterations: usize = flag("--iterations").unwrap_or_else(|| "20000".into()).parse()?;
            view_latency(&repo, &view, at, iterations)
        }
        Some("stream-delete") => {
            // Remove a bench run's stream (NATS) or key (Redis) and its consumer.
            let repo = PathBuf::from(flag("--repo").context("stream-delete --repo DIR --source S")?);
            let name = flag("--source").context("stream-delete --source S")?;
            let source = FeatureStore::open(&repo)?.serving_state()?.definitions.source(&name).cloned().context("no such source")?;
            Ok(almanac_stream::broker::delete(&source)?)
        }
        Some("stream-latency") => {
            let number = |name: &str, default: u64| flag(name).map_or(Ok(default), |v| v.parse::<u64>());
            stream::run(&stream::Options {
                repo: PathBuf::from(flag("--repo").context("stream-latency --repo DIR")?),
                source: flag("--source").context("stream-latency --source S")?,
                server: flag("--server").context("stream-latency --server HOST:PORT")?,
                rate: number("--rate", 10_000)?,
                seconds: number("--seconds", 20)?,
                users: number("--users", 100_000)?,
            })
        }
        _ => anyhow::bail!("usage: almanac-bench dense-repo DIR --entities N | read-latency --repo DIR [--iterations N] | view-latency --repo DIR --view VIEW --at RFC3339 [--iterations N]"),
    }
}

/// A repo with one view over N entities, one row each (the dense
/// materialization case: every source row becomes a record).
fn dense_repo(dir: &Path, entities: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::write(dir.join("almanac.yaml"), "project: dense\n")?;
    std::fs::write(
        dir.join("features.yaml"),
        "entities:\n  - name: user\n    join_keys: [user_id]\nsources:\n  - name: dense\n    path: data/dense.parquet\n    timestamp_field: event_timestamp\nfeature_views:\n  - name: dense\n    entities: [user]\n    source: dense\n    schema:\n      - {name: a, dtype: int64}\n      - {name: b, dtype: float64}\n      - {name: c, dtype: float64}\n",
    )?;
    let base = 1_780_000_000_000_000i64;
    let ids: Vec<i64> = (0..entities as i64).map(|i| (i * 7_919) % entities as i64).collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("user_id", Arc::new(Int64Array::from(ids.clone()))),
        ("event_timestamp", Arc::new(TimestampMicrosecondArray::from_iter_values(ids.iter().map(|i| base + i * 1_000)).with_timezone("UTC"))),
        ("a", Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i % 1000)))),
        ("b", Arc::new(Float64Array::from_iter_values(ids.iter().map(|i| *i as f64 * 0.5)))),
        ("c", Arc::new(Float64Array::from_iter_values(ids.iter().map(|i| (*i as f64).sqrt())))),
    ];
    let batch = RecordBatch::try_from_iter(columns)?;
    let mut writer = ArrowWriter::try_new(std::fs::File::create(dir.join("data/dense.parquet"))?, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    println!("wrote {entities} entities to {}", dir.display());
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// In-process `get_online_features` latency for the demo's feature service
/// (2 views, 4 features): 1 entity and 100 entities per call.
fn read_latency(repo: &Path, iterations: usize, on_demand: bool) -> anyhow::Result<()> {
    let store = FeatureStore::open(repo)?;
    let state = store.registry_state()?;
    let plain = "user_txn_stats:txn_count_7d,user_txn_stats:txn_amount_avg_7d,merchant_stats";
    let selection = if on_demand { FeatureSelection::parse_refs(&format!("{plain},txn_ratios"))? } else { FeatureSelection::parse_refs(plain)? };
    let users = store.online_store()?.scan("user_txn_stats", Some(100_000))?;
    let merchants = store.online_store()?.scan("merchant_stats", Some(100_000))?;
    anyhow::ensure!(!users.is_empty() && !merchants.is_empty() && state.version > 0, "materialize the repo first");
    let ids = |entries: &[almanac::online_store::Entry]| -> Vec<i64> {
        entries.iter().filter_map(|e| match almanac::online_store::decode_key(&e.key).ok()?.first() {
            Some(almanac::online_store::KeyPart::Int(v)) => Some(*v),
            _ => None,
        }).collect()
    };
    let (user_ids, merchant_ids) = (ids(&users), ids(&merchants));
    // Read at the instant the data ends, so values are PRESENT (not withheld by TTL).
    let now = state.watermarks.values().max().map(|t| t.timestamp_micros()).unwrap_or(0);
    let mut report = serde_json::Map::new();
    report.insert("store".into(), serde_json::json!(store.online_store()?.describe()));
    report.insert("on_demand".into(), serde_json::json!(on_demand));
    for batch in [1usize, 100] {
        let mut samples = Vec::with_capacity(iterations);
        let mut present = 0usize;
        for i in 0..iterations + iterations / 10 {
            let users: ArrayRef = Arc::new(Int64Array::from_iter_values((0..batch).map(|j| user_ids[(i * 131 + j * 7) % user_ids.len()])));
            let merchants: ArrayRef = Arc::new(Int64Array::from_iter_values((0..batch).map(|j| merchant_ids[(i * 17 + j * 3) % merchant_ids.len()])));
            let amounts: ArrayRef = Arc::new(Float64Array::from_iter_values((0..batch).map(|j| ((i * 7 + j * 13) % 2000) as f64)));
            let entities = if on_demand { RecordBatch::try_from_iter([("user_id", users), ("merchant_id", merchants), ("amount", amounts)])? } else { RecordBatch::try_from_iter([("user_id", users), ("merchant_id", merchants)])? };
            let started = Instant::now();
            let response = store.get_online_features_at(&selection, &entities, false, now)?;
            let elapsed = started.elapsed().as_secs_f64() * 1e6;
            // The first 10% warm caches and are not counted.
            if i >= iterations / 10 {
                samples.push(elapsed);
                present += response.statuses[entities.num_columns()].iter().filter(|s| **s == almanac::FieldStatus::Present).count();
            }
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        let figures = serde_json::json!({
            "calls": samples.len(),
            "p50_us": percentile(&samples, 50.0),
            "p99_us": percentile(&samples, 99.0),
            "p999_us": percentile(&samples, 99.9),
            "present_share": present as f64 / (samples.len() * batch) as f64,
        });
        report.insert(format!("entities_{batch}_x_2_views"), figures);
    }
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}

/// In-process read latency of every feature of one view (single int64 key)
/// for 1 entity at instant `at`, over the entities the online store holds:
/// for an aggregation view, every aggregate folded from the entity's state.
fn view_latency(repo: &Path, view: &str, at: i64, iterations: usize) -> anyhow::Result<()> {
    let store = FeatureStore::open(repo)?;
    let entries = store.online_store()?.scan(view, Some(100_000))?;
    let ids: Vec<i64> = entries
        .iter()
        .filter_map(|e| match almanac::online_store::decode_key(&e.key).ok()?.first() {
            Some(almanac::online_store::KeyPart::Int(v)) => Some(*v),
            _ => None,
        })
        .collect();
    anyhow::ensure!(!ids.is_empty(), "materialize view `{view}` first");
    let state_bytes = entries.iter().map(|e| e.record.len()).sum::<usize>() as f64 / entries.len() as f64;
    let state = store.registry_state()?;
    let key = state.definitions.feature_view(view).and_then(|v| v.entities.first()).and_then(|e| state.definitions.entities.iter().find(|x| x.name == *e)).and_then(|e| e.join_keys.first()).map(|k| k.name.clone()).context("a view with one join key")?;
    let selection = FeatureSelection::parse_refs(view)?;
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations + iterations / 10 {
        let entities = RecordBatch::try_from_iter([(key.as_str(), Arc::new(Int64Array::from(vec![ids[(i * 131) % ids.len()]])) as ArrayRef)])?;
        let started = Instant::now();
        let response = store.get_online_features_at(&selection, &entities, false, at)?;
        let elapsed = started.elapsed().as_secs_f64() * 1e6;
        if i >= iterations / 10 {
            samples.push(elapsed);
        }
        std::hint::black_box(response);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{}",
        serde_json::json!({"view": view, "entities_online": ids.len(), "state_bytes_per_entity": state_bytes, "calls": samples.len(), "p50_us": percentile(&samples, 50.0), "p99_us": percentile(&samples, 99.0), "p999_us": percentile(&samples, 99.9)})
    );
    Ok(())
}
