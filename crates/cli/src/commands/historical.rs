//! `almanac historical` and `almanac export`.

use std::path::Path;
use std::time::Instant;

use almanac::arrow::array::RecordBatch;
use almanac::offline::io::{write_table, write_table_streamed};
use almanac::offline::{EntityFile, EntityTable, HistoricalOptions, OfflineError, TimeRange, report_stage};
use almanac::{FeatureSelection, FeatureStore};

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
    let entities = EntityFile::open(&args.entities)?;
    let inputs = entities.schema().fields().len();
    let options = HistoricalOptions { timestamp_column: args.timestamp_column.clone(), full_feature_names: args.full_feature_names };
    let stage = Instant::now();
    // The training set is written as it arrives: with a pushdown engine
    // neither the entity table nor the result is ever held whole.
    let mut summary = Summary::default();
    let mut failed: Option<anyhow::Error> = None;
    write_table_streamed(&args.output, entities.schema(), |write| {
        let mut consume = |batch: RecordBatch| {
            summary.add(&batch, inputs);
            write(&batch).map_err(almanac::Error::from)
        };
        store.historical_streamed(&entities, &selection, &options, &mut consume).map_err(|error| {
            let message = error.to_string();
            failed = Some(error.into());
            OfflineError::Internal(message)
        })
    })
    .map_err(|error| failed.take().unwrap_or_else(|| error.into()))?;
    report_stage("point-in-time join and write (all views)", stage);
    let seconds = started.elapsed().as_secs_f64();
    if json {
        return render::json(&serde_json::json!({"output": args.output, "rows": summary.rows, "features": summary.features, "seconds": seconds}));
    }
    println!("Wrote {} rows × {} columns to {} in {seconds:.2} s", render::count(summary.rows), summary.columns, args.output.display());
    for (name, filled) in summary.features.iter().zip(&summary.filled) {
        let share = if summary.rows == 0 { 0.0 } else { 100.0 * *filled as f64 / summary.rows as f64 };
        println!("  {name:<32} {share:>5.1}% of rows have a value");
    }
    Ok(())
}

/// What `historical` reports, counted over the batches as they are written.
#[derive(Default)]
struct Summary {
    rows: usize,
    columns: usize,
    features: Vec<String>,
    /// Per feature, how many rows have a value.
    filled: Vec<usize>,
}

impl Summary {
    fn add(&mut self, batch: &RecordBatch, inputs: usize) {
        if self.features.is_empty() {
            self.columns = batch.num_columns();
            self.features = batch.schema().fields().iter().skip(inputs).map(|f| f.name().clone()).collect();
            self.filled = vec![0; self.features.len()];
        }
        self.rows += batch.num_rows();
        for (filled, column) in self.filled.iter_mut().zip(batch.columns().iter().skip(inputs)) {
            *filled += column.len() - column.null_count();
        }
    }
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
