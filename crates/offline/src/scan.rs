//! Scanning a source's files with DataFusion: only the needed columns, and
//! only the rows (and Parquet row groups, by their statistics) inside the
//! event-time range the request can see.

use std::collections::HashSet;

use almanac_core::{FileFormat, Source};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::common::{Column, ScalarValue};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, lit};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};

use crate::error::OfflineError;
use crate::source::SourceFiles;

/// What to read from one source.
pub struct ScanRequest<'a> {
    pub source: &'a Source,
    pub files: &'a SourceFiles,
    /// The files' schema (read beforehand from metadata).
    pub schema: SchemaRef,
    /// Column names as they are in the files (after `field_mapping`).
    pub columns: Vec<String>,
    /// Inclusive event-time bounds in nanoseconds, for pruning. Rows outside
    /// may still be returned (pruning is an optimization, not a filter the
    /// join relies on).
    pub range: (Option<i64>, Option<i64>),
}

pub fn session() -> SessionContext {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    SessionContext::new_with_config(config().with_target_partitions(threads))
}

/// Without file-level statistics: DataFusion 55 replaces a column whose
/// Parquet min equals its max by that constant, but Parquet statistics
/// leave NaN out, so a float column holding NaN and one other value was
/// read as that value everywhere (the NaNs silently lost). Row groups are
/// still pruned by the time filter from the files' own metadata.
fn config() -> SessionConfig {
    SessionConfig::new().with_batch_size(64 * 1024).with_collect_statistics(false)
}

/// A session that scans with one partition: files in path order, rows in
/// file order (source order is part of an aggregation's semantics).
pub fn ordered_session() -> SessionContext {
    SessionContext::new_with_config(config().with_target_partitions(1))
}

fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// A literal of the column's own timestamp type, so the comparison needs no
/// cast and Parquet statistics can prune row groups. `round_up` picks the
/// conversion that keeps the bound inclusive when the unit is coarser.
fn timestamp_literal(data_type: &DataType, nanos: i64, round_up: bool) -> Option<Expr> {
    let DataType::Timestamp(unit, tz) = data_type else { return None };
    let divisor = match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    let value = if round_up { nanos.div_euclid(divisor) + i64::from(nanos.rem_euclid(divisor) != 0) } else { nanos.div_euclid(divisor) };
    let tz = tz.clone();
    Some(lit(match unit {
        TimeUnit::Second => ScalarValue::TimestampSecond(Some(value), tz),
        TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(Some(value), tz),
        TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(Some(value), tz),
        TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(Some(value), tz),
    }))
}

fn nullable_schema(schema: &datafusion::arrow::datatypes::Schema) -> datafusion::arrow::datatypes::Schema {
    let fields: Vec<datafusion::arrow::datatypes::Field> = schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    datafusion::arrow::datatypes::Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// The scan as a stream of batches, so a large history never has to be in
/// memory at once.
pub async fn scan(ctx: &SessionContext, request: &ScanRequest<'_>) -> Result<SendableRecordBatchStream, OfflineError> {
    let fail = |e: datafusion::error::DataFusionError| OfflineError::Scan { source_name: request.source.name.clone(), reason: e.to_string() };
    let paths: Vec<String> = request.files.files.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    // Every column is read as nullable: files of one source written by
    // different tools disagree on nullability (a file without nulls often
    // says "not null"), and the first file's word must not fail the scan
    // of a later file that has nulls.
    let nullable = nullable_schema(&request.schema);
    let frame = match request.files.format {
        FileFormat::Parquet => ctx.read_parquet(paths, ParquetReadOptions::default().parquet_pruning(true).schema(&nullable)).await,
        FileFormat::Csv => {
            let options = CsvReadOptions::new().has_header(true).schema(&nullable).file_extension("");
            ctx.read_csv(paths, options).await
        }
    }
    .map_err(fail)?;
    let mut seen = HashSet::new();
    let columns: Vec<Expr> = request.columns.iter().filter(|c| seen.insert(c.as_str())).map(|c| column(c)).collect();
    let mut frame = frame.select(columns).map_err(fail)?;
    let ts_name = request.source.file_column(&request.source.timestamp_field);
    if let Ok(field) = request.schema.field_with_name(ts_name) {
        let (low, high) = request.range;
        if let Some(bound) = low.and_then(|n| timestamp_literal(field.data_type(), n, true)) {
            frame = frame.filter(column(ts_name).gt_eq(bound)).map_err(fail)?;
        }
        if let Some(bound) = high.and_then(|n| timestamp_literal(field.data_type(), n, false)) {
            frame = frame.filter(column(ts_name).lt_eq(bound)).map_err(fail)?;
        }
    }
    frame.execute_stream().await.map_err(fail)
}

/// Add the failing file to a scan error: each file is read on its own
/// (only on this error path) and the first that cannot be read is named.
pub fn name_the_file(error: OfflineError, files: &SourceFiles) -> OfflineError {
    let OfflineError::Scan { source_name, reason } = error else { return error };
    let culprit = files.files.iter().find_map(|path| unreadable(path, files.format).map(|why| (path.clone(), why)));
    match culprit {
        Some((path, why)) => OfflineError::Scan { source_name, reason: format!("file {}: {why}", path.display()) },
        None => OfflineError::Scan { source_name, reason },
    }
}

/// Why one file cannot be read whole, or `None` when it can.
fn unreadable(path: &std::path::Path, format: FileFormat) -> Option<String> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) => return Some(error.to_string()),
    };
    match format {
        FileFormat::Parquet => {
            let reader = match parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build()) {
                Ok(reader) => reader,
                Err(error) => return Some(format!("not a valid Parquet file ({error})")),
            };
            reader.into_iter().find_map(|batch| batch.err().map(|e| e.to_string()))
        }
        FileFormat::Csv => {
            let format = arrow::csv::reader::Format::default().with_header(true);
            let schema = match format.infer_schema(file, None) {
                Ok((schema, _)) => std::sync::Arc::new(schema),
                Err(error) => return Some(format!("not a valid CSV file ({error})")),
            };
            let reader = std::fs::File::open(path).map_err(|e| e.to_string()).and_then(|file| arrow::csv::ReaderBuilder::new(schema).with_format(format).build(file).map_err(|e| e.to_string()));
            match reader {
                Ok(reader) => reader.into_iter().find_map(|batch| batch.err().map(|e| format!("not a valid CSV file ({e})"))),
                Err(error) => Some(error),
            }
        }
    }
}
