//! `almanac historical` and `almanac export`.

use std::path::Path;
use std::time::Instant;

use almanac::offline::io::{read_table, write_table};
use almanac::offline::{HistoricalOptions, TimeRange, report_stage};
use almanac::{FeatureSelection, FeatureStore};
use arrow::compute::concat_batches;

use crate::args::{ExportArgs, HistoricalArgs};
use crate::render;
use crate::time::parse_instant_nanos;

pub fn historical(repo: &Path, args: &HistoricalArgs, json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = FeatureStore::open(repo)?;
    let selection = match (&args.features, &args.feature_service) {
        (Some(features), _) => FeatureSelection::parse_refs(features)?,
        (None, Some(service)) => FeatureSelection::Service(service.clone()),
        (None, None) => anyhow::bail!("pass --features or --feature-service"),
    };
    let stage = Instant::now();
    let (schema, batches) = read_table(&args.entities)?;
    // One batch for the join; the file's batches are dropped at once, so
    // the entity table is held once, not twice, while the join runs.
    let entities = match <[_; 1]>::try_from(batches) {
        Ok([batch]) => batch,
        Err(batches) => concat_batches(&schema, &batches)?,
    };
    report_stage("read entity table", stage);
    let options = HistoricalOptions { timestamp_column: args.timestamp_column.clone(), full_feature_names: args.full_feature_names };
    let stage = Instant::now();
    let result = store.get_historical_features(&entities, &selection, &options)?;
    report_stage("point-in-time join (all views)", stage);
    let stage = Instant::now();
    write_table(&args.output, result.schema(), std::slice::from_ref(&result))?;
    report_stage("write output", stage);
    let seconds = started.elapsed().as_secs_f64();
    let features: Vec<String> = result.schema().fields().iter().skip(entities.num_columns()).map(|f| f.name().clone()).collect();
    if json {
        return render::json(&serde_json::json!({"output": args.output, "rows": result.num_rows(), "features": features, "seconds": seconds}));
    }
    println!("Wrote {} rows × {} columns to {} in {seconds:.2} s", render::count(result.num_rows()), result.num_columns(), args.output.display());
    for (index, name) in features.iter().enumerate() {
        let column = result.column(entities.num_columns() + index);
        let filled = column.len() - column.null_count();
        let share = if column.is_empty() { 0.0 } else { 100.0 * filled as f64 / column.len() as f64 };
        println!("  {name:<32} {share:>5.1}% of rows have a value");
    }
    Ok(())
}

pub fn export(repo: &Path, args: &ExportArgs, json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = FeatureStore::open(repo)?;
    let range = TimeRange { start: args.start.as_deref().map(parse_instant_nanos).transpose()?, end: args.end.as_deref().map(parse_instant_nanos).transpose()? };
    if let (Some(start), Some(end)) = (range.start, range.end) {
        anyhow::ensure!(start <= end, "--start ({}) is after --end ({})", args.start.as_deref().unwrap_or_default(), args.end.as_deref().unwrap_or_default());
    }
    let rows = store.export(&args.view, range, args.latest)?;
    write_table(&args.output, rows.schema(), std::slice::from_ref(&rows))?;
    let seconds = started.elapsed().as_secs_f64();
    if json {
        return render::json(&serde_json::json!({"output": args.output, "rows": rows.num_rows(), "seconds": seconds}));
    }
    println!("Wrote {} rows of `{}` to {} in {seconds:.2} s", render::count(rows.num_rows()), args.view, args.output.display());
    Ok(())
}
