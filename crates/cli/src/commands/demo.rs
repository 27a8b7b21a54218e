//! `almanac demo`: the main job on embedded defaults, step by step with timings.

use std::path::PathBuf;
use std::time::Instant;

use almanac::offline::io::{read_table, write_table};
use almanac::offline::{HistoricalOptions, TimeRange};
use almanac::registry::Action;
use almanac::scaffold::{self, InitKind};
use almanac::materialize::{self, MaterializeRequest};
use almanac::monitor::{MonitorRequest, Reference};
use almanac::parity::ParityRequest;
use almanac::{FeatureSelection, FeatureStore, OnlineResponse};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use arrow::util::display::array_value_to_string;

use super::init::dataset_spec;
use crate::args::DemoArgs;
use crate::render;

fn step(number: usize, total: usize, title: &str, started: Instant) {
    println!("[{number}/{total}] {title:<58} {:>8.2} s", started.elapsed().as_secs_f64());
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let total_start = Instant::now();
    let dir: PathBuf = match &args.dir {
        Some(dir) => dir.clone(),
        None => tempfile::Builder::new().prefix("almanac-demo-").tempdir()?.keep(),
    };
    println!("Almanac demo: a fraud-detection feature repo on generated data");
    println!("Repo: {}\n", dir.display());
    const STEPS: usize = 7;

    let started = Instant::now();
    let spec = dataset_spec(&args.data);
    let outcome = scaffold::init(&dir, InitKind::Demo(spec))?;
    step(1, STEPS, &format!("init: generated the reference dataset (scale {})", args.data.scale), started);
    if let Some(dataset) = &outcome.dataset {
        for (file, rows) in dataset.files.iter().zip([dataset.user_rows, dataset.merchant_rows, dataset.label_rows]) {
            let name = file.strip_prefix(&dir).unwrap_or(file).display().to_string();
            println!("        {name:<32} {:>12} rows", render::count(rows));
        }
    }

    let started = Instant::now();
    let store = FeatureStore::open(&dir)?;
    let applied = store.apply()?;
    let added = applied.plan.changes.iter().filter(|c| c.action == Action::Add).count();
    step(2, STEPS, &format!("apply: checked definitions against the data, registered {added} objects"), started);
    for line in applied.plan.to_string().lines().skip(1) {
        println!("        {line}");
    }

    let started = Instant::now();
    let (schema, batches) = read_table(&dir.join("data/labels.parquet"))?;
    let labels = concat_batches(&schema, &batches)?;
    let selection = FeatureSelection::Service("fraud_model_v1".into());
    let training = store.get_historical_features(&labels, &selection, &HistoricalOptions::default())?;
    let output = dir.join("training_set.parquet");
    write_table(&output, training.schema(), std::slice::from_ref(&training))?;
    step(3, STEPS, &format!("historical: point-in-time training set for {} labels", render::count(labels.num_rows())), started);
    println!("        wrote training_set.parquet: {} rows × {} columns (fraud_model_v1)", render::count(training.num_rows()), training.num_columns());
    print_rows(&training, 3);
    explain_leak(&store, &training)?;
    explain_window(&store, &labels)?;

    let started = Instant::now();
    let request = MaterializeRequest { start: None, end: crate::time::parse_datetime("now")?, views: None, incremental: false, allow_future_end: false };
    let reports = store.materialize(&request, &materialize::Quiet)?;
    let source_rows: usize = reports.iter().map(|r| r.source_rows).sum();
    let entities: usize = reports.iter().map(|r| r.entities).sum();
    step(4, STEPS, &format!("materialize: {} source rows → {} online records", render::count(source_rows), render::count(entities)), started);
    let target = store.online_store()?.describe();
    for report in &reports {
        println!("        {}", super::online::summary(report, &target));
    }

    let started = Instant::now();
    let entities = demo_entities(&labels, 3)?;
    let response = store.get_online_features(&selection, &entities, false)?;
    let lookup_time = started.elapsed();
    step(5, STEPS, &format!("online: fraud_model_v1 for {} entities in {:.0} µs", entities.num_rows(), lookup_time.as_secs_f64() * 1e6), started);
    print_online(&response);

    let started = Instant::now();
    let now = chrono::Utc::now().timestamp_micros();
    let parity = store.parity(&ParityRequest { views: None, sample: 1000, seed: 0, tolerance: 0.0, at_micros: now })?;
    let checked: usize = parity.views.iter().flat_map(|v| &v.features).map(|f| f.checked).sum();
    step(6, STEPS, &format!("parity: {} online values checked against the point-in-time join, {} differ", render::count(checked), parity.divergent()), started);
    for view in &parity.views {
        let equal: usize = view.features.iter().map(|f| f.equal).sum();
        let total: usize = view.features.iter().map(|f| f.checked).sum();
        println!("        {}: {} of {} values equal ({} entities sampled)", view.view, render::count(equal), render::count(total), view.sampled_from_online + view.sampled_from_offline);
    }

    let started = Instant::now();
    let day = 86_400_000_000i64;
    let report = store.monitor(&MonitorRequest { views: None, at_micros: now, window_micros: 7 * day, reference: Reference::Window { micros: 28 * day }, current: almanac::monitor::Current::Offline })?;
    let page = dir.join("monitor.html");
    std::fs::write(&page, render::monitor_html::html(&report))?;
    step(7, STEPS, &format!("monitor: staleness, null rates and drift; {} alerts", report.alerts()), started);
    for view in &report.views {
        let worst = view.features.iter().filter_map(|f| f.psi.map(|p| (p, f.feature.as_str()))).fold(None, |best: Option<(f64, &str)>, x| if best.is_none_or(|b| x.0 > b.0) { Some(x) } else { best });
        println!(
            "        {}: newest online value {:.0} min old; highest PSI {}",
            view.view,
            view.staleness_online_seconds.unwrap_or(0.0) / 60.0,
            worst.map(|(p, f)| format!("{p:.3} ({f})")).unwrap_or_else(|| "-".into())
        );
    }
    println!("        report: {}", page.display());

    println!("\nDone in {:.2} s. Explore the repo:", total_start.elapsed().as_secs_f64());
    let repo = dir.display();
    println!("  almanac --repo {repo} features list");
    println!("  almanac --repo {repo} features describe fraud_model_v1");
    println!("  almanac --repo {repo} features search fraud");
    println!("  almanac --repo {repo} historical --entities {repo}/data/labels.parquet --feature-service fraud_model_v1 --output train.parquet");
    if let Some(almanac::core::Value::Int64(user)) = entities.column_by_name("user_id").map(|users| almanac::core::convert::value_at(users.as_ref(), 0)) {
        println!("  almanac --repo {repo} online --feature-service fraud_model_v1 --entity user_id={user},merchant_id=1");
    }
    println!("  almanac --repo {repo} serve");
    println!("  almanac --repo {repo} parity");
    println!("  almanac --repo {repo} monitor --html monitor.html");
    Ok(())
}

fn print_rows(batch: &RecordBatch, rows: usize) {
    let header: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
    let body = (0..rows.min(batch.num_rows()))
        .map(|row| batch.columns().iter().map(|c| array_value_to_string(c, row).unwrap_or_default()).collect())
        .collect();
    for line in render::table(&header, body).to_string().lines() {
        println!("        {line}");
    }
}

/// Find a label where joining on "the latest value" (what a naive join does)
/// would have used a value from after the label's own time, and show both.
fn explain_leak(store: &FeatureStore, training: &RecordBatch) -> anyhow::Result<()> {
    let latest = store.export("user_txn_stats", TimeRange::default(), true)?;
    let (Some(latest_users), Some(latest_ts), Some(latest_count)) = (latest.column_by_name("user_id"), latest.column_by_name("event_timestamp"), latest.column_by_name("txn_count_7d")) else {
        return Ok(());
    };
    // The demo's own generated data (int64 keys, µs timestamps); anything
    // else means the files were edited, and the example is skipped.
    let (Some(latest_users), Some(latest_ts), Some(latest_count)) = (latest_users.as_primitive_opt::<Int64Type>(), latest_ts.as_primitive_opt::<TimestampMicrosecondType>(), latest_count.as_primitive_opt::<Int64Type>()) else {
        return Ok(());
    };
    let by_user: std::collections::HashMap<i64, usize> = (0..latest_users.len()).map(|i| (latest_users.value(i), i)).collect();
    let (Some(users), Some(times), Some(counts), Some(ids)) = (training.column_by_name("user_id"), training.column_by_name("event_timestamp"), training.column_by_name("txn_count_7d"), training.column_by_name("label_id")) else {
        return Ok(());
    };
    let (Some(users), Some(times), Some(counts), Some(ids)) = (users.as_primitive_opt::<Int64Type>(), times.as_primitive_opt::<TimestampMicrosecondType>(), counts.as_primitive_opt::<Int64Type>(), ids.as_primitive_opt::<Int64Type>()) else {
        return Ok(());
    };
    for row in 0..training.num_rows() {
        let Some(&naive) = by_user.get(&users.value(row)) else { continue };
        if counts.is_null(row) || latest_ts.value(naive) <= times.value(row) || latest_count.value(naive) == counts.value(row) {
            continue;
        }
        let when = |micros: i64| chrono::DateTime::from_timestamp_micros(micros).map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
        println!("        Leakage avoided, e.g. label {} (user {}, labelled {}):", ids.value(row), users.value(row), when(times.value(row)));
        println!("          point-in-time txn_count_7d = {}  (the latest value known at that moment)", counts.value(row));
        println!("          a naive latest-value join  = {}  (recorded {}, after the label: a leak)", latest_count.value(naive), when(latest_ts.value(naive)));
        return Ok(());
    }
    Ok(())
}

/// A windowed count from raw events, next to the naive count that includes
/// the labelled transaction itself (`ts <= T`): the leak the half-open
/// window `[T − 1h, T)` avoids.
fn explain_window(store: &FeatureStore, labels: &RecordBatch) -> anyhow::Result<()> {
    let sample = labels.slice(0, labels.num_rows().min(20_000));
    let windows = store.get_historical_features(&sample, &FeatureSelection::parse_refs("user_txn_windows:count_1h")?, &HistoricalOptions::default())?;
    let (Some(users), Some(times), Some(counts)) = (windows.column_by_name("user_id"), windows.column_by_name("event_timestamp"), windows.column_by_name("count_1h")) else {
        return Ok(());
    };
    let (Some(users), Some(times), Some(counts)) = (users.as_primitive_opt::<Int64Type>(), times.as_primitive_opt::<TimestampMicrosecondType>(), counts.as_primitive_opt::<Int64Type>()) else {
        return Ok(());
    };
    let hour = 3_600_000_000i64;
    let Some(row) = (0..windows.num_rows()).find(|&r| !counts.is_null(r) && counts.value(r) > 0) else { return Ok(()) };
    let (user, at) = (users.value(row), times.value(row));
    let (Some(all_users), Some(all_times)) = (labels.column_by_name("user_id").and_then(|c| c.as_primitive_opt::<Int64Type>()), labels.column_by_name("event_timestamp").and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())) else {
        return Ok(());
    };
    let naive = (0..labels.num_rows()).filter(|&r| all_users.value(r) == user && all_times.value(r) >= at - hour && all_times.value(r) <= at).count();
    let when = chrono::DateTime::from_timestamp_micros(at).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default();
    println!("        Windows from raw events, e.g. user {user}'s transaction at {when}:");
    println!("          count_1h over [T − 1h, T)       = {}  (the transactions before it)", counts.value(row));
    println!("          a naive count with ts <= T      = {naive}  (includes the labelled transaction itself: a leak)");
    Ok(())
}

/// The first `n` labels' users and merchants, as an online request.
fn demo_entities(labels: &RecordBatch, n: usize) -> anyhow::Result<RecordBatch> {
    let index = |name: &str| labels.schema_ref().index_of(name);
    let keys = labels.project(&[index("user_id")?, index("merchant_id")?])?;
    Ok(keys.slice(0, n.min(keys.num_rows())))
}

fn print_online(response: &OnlineResponse) {
    let header = response.feature_names();
    let body = (0..response.num_rows())
        .map(|row| {
            (0..header.len())
                .map(|column| match response.value(column, row) {
                    almanac::core::Value::Null => response.statuses[column][row].as_str().to_string(),
                    value => render::value(&value),
                })
                .collect()
        })
        .collect();
    for line in render::table(&header, body).to_string().lines() {
        println!("        {line}");
    }
}
