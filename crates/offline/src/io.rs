//! Reading entity tables and writing results: Parquet or CSV by extension.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use almanac_core::fs::{Durability, write_atomically};
use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::OfflineError;

fn is(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// A table file's rows, batch by batch, in file order.
pub type Batches = Box<dyn Iterator<Item = Result<RecordBatch, OfflineError>> + Send>;

/// Rows per batch when reading a table file.
const READ_BATCH_ROWS: usize = 64 * 1024;

/// The schema a table file will be read with (Parquet: its metadata; CSV:
/// inferred from its first 10,000 rows), so a file read twice is read the
/// same way twice.
pub fn table_schema(path: &Path) -> Result<Arc<Schema>, OfflineError> {
    let unreadable = |reason: String| OfflineError::Unreadable { path: path.to_path_buf(), reason };
    let file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
    if is(path, "parquet") || is(path, "pq") {
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| unreadable(format!("not a valid Parquet file ({e})")))?;
        Ok(builder.schema().clone())
    } else if is(path, "csv") {
        let (schema, _) = csv_format().infer_schema(&file, Some(10_000)).map_err(|e| unreadable(format!("not a valid CSV file ({e})")))?;
        Ok(Arc::new(schema))
    } else {
        Err(OfflineError::UnsupportedFile { path: path.to_path_buf() })
    }
}

fn csv_format() -> arrow::csv::reader::Format {
    arrow::csv::reader::Format::default().with_header(true)
}

/// Read a table file batch by batch with `schema` (from [`table_schema`]).
pub fn read_batches(path: &Path, schema: &Arc<Schema>) -> Result<Batches, OfflineError> {
    let owned = path.to_path_buf();
    let unreadable = move |reason: String| OfflineError::Unreadable { path: owned.clone(), reason };
    let file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
    if is(path, "parquet") || is(path, "pq") {
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| unreadable(format!("not a valid Parquet file ({e})")))?;
        let reader = builder.with_batch_size(READ_BATCH_ROWS).build().map_err(|e| unreadable(e.to_string()))?;
        Ok(Box::new(reader.map(move |batch| batch.map_err(|e| unreadable(e.to_string())))))
    } else if is(path, "csv") {
        let reader = arrow::csv::ReaderBuilder::new(schema.clone()).with_format(csv_format()).with_batch_size(READ_BATCH_ROWS).build(file).map_err(|e| unreadable(e.to_string()))?;
        Ok(Box::new(reader.map(move |batch| batch.map_err(|e| unreadable(e.to_string())))))
    } else {
        Err(OfflineError::UnsupportedFile { path: path.to_path_buf() })
    }
}

/// Read a whole table; returns its schema too (an empty file still has one).
pub fn read_table(path: &Path) -> Result<(Arc<Schema>, Vec<RecordBatch>), OfflineError> {
    let schema = table_schema(path)?;
    let batches = read_batches(path, &schema)?.collect::<Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

/// Write batches to `path` (Parquet or CSV by extension) atomically
/// ([`almanac_core::fs::write_atomically`]), so a failure never leaves a
/// half-written result behind. Not fsynced: a training set can be re-made.
pub fn write_table(path: &Path, schema: Arc<Schema>, batches: &[RecordBatch]) -> Result<(), OfflineError> {
    write_table_streamed(path, schema, |write| batches.iter().try_for_each(write))
}

/// [`write_table`] for a result that arrives batch by batch: `produce` is
/// handed the writer and calls it once per batch, so the file is written
/// while the rows come and no more than one batch is held. The schema is
/// the first batch's when there is one (`schema` otherwise). If `produce`
/// fails, its error is returned and nothing is left at `path`.
pub fn write_table_streamed(
    path: &Path,
    schema: Arc<Schema>,
    produce: impl FnOnce(&mut (dyn FnMut(&RecordBatch) -> Result<(), OfflineError> + Send)) -> Result<(), OfflineError>,
) -> Result<(), OfflineError> {
    let csv = is(path, "csv");
    if !csv && !is(path, "parquet") && !is(path, "pq") {
        return Err(OfflineError::UnsupportedFile { path: path.to_path_buf() });
    }
    let unwritable = |reason: String| OfflineError::Unwritable { path: path.to_path_buf(), reason };
    let mut failed: Option<OfflineError> = None;
    let written = write_atomically(path, Durability::RenameOnly, |file| {
        let mut writer = TableWriter::Pending { file, csv };
        let mut write = |batch: &RecordBatch| writer.write(batch).map_err(|e| unwritable(e.to_string()));
        if let Err(error) = produce(&mut write) {
            failed = Some(error);
            return Err(std::io::Error::other("the result could not be produced"));
        }
        writer.finish(schema)
    });
    match (failed, written) {
        (Some(error), _) => Err(error),
        (None, result) => result.map_err(|e| unwritable(e.to_string())),
    }
}

/// A Parquet or CSV writer opened on its first batch (a Parquet file's
/// schema is written first, and it is the result's, known once it arrives).
enum TableWriter {
    Pending { file: File, csv: bool },
    Csv(Box<arrow::csv::Writer<File>>),
    Parquet(Box<ArrowWriter<File>>),
    Taken,
}

impl TableWriter {
    fn open(file: File, csv: bool, schema: Arc<Schema>) -> std::io::Result<Self> {
        if csv {
            // Instants as RFC 3339 in UTC with a `Z` (a naive column is UTC
            // by the point-in-time contract; an aware one is shown in UTC).
            let utc = "%Y-%m-%dT%H:%M:%S%.fZ".to_string();
            Ok(TableWriter::Csv(Box::new(arrow::csv::WriterBuilder::new().with_header(true).with_timestamp_format(utc.clone()).with_timestamp_tz_format(utc).build(file))))
        } else {
            Ok(TableWriter::Parquet(Box::new(ArrowWriter::try_new(file, schema, None).map_err(std::io::Error::other)?)))
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> std::io::Result<()> {
        *self = match std::mem::replace(self, TableWriter::Taken) {
            TableWriter::Pending { file, csv } => TableWriter::open(file, csv, batch.schema())?,
            opened => opened,
        };
        match self {
            TableWriter::Csv(writer) => writer.write(&in_utc(batch).map_err(std::io::Error::other)?).map_err(std::io::Error::other),
            TableWriter::Parquet(writer) => writer.write(batch).map_err(std::io::Error::other),
            TableWriter::Pending { .. } | TableWriter::Taken => Err(std::io::Error::other("the table writer was already closed")),
        }
    }

    fn finish(self, schema: Arc<Schema>) -> std::io::Result<File> {
        match self {
            TableWriter::Pending { file, csv } => TableWriter::open(file, csv, schema)?.finish(Arc::new(Schema::empty())),
            TableWriter::Csv(writer) => Ok(writer.into_inner()),
            TableWriter::Parquet(writer) => writer.into_inner().map_err(std::io::Error::other),
            TableWriter::Taken => Err(std::io::Error::other("the table writer was already closed")),
        }
    }
}

/// The batch with every zoned timestamp column relabelled to UTC (the
/// stored instants are UTC already; only the display zone changes).
fn in_utc(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::datatypes::{DataType, Field};
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match field.data_type() {
            DataType::Timestamp(unit, Some(_)) => {
                let utc = DataType::Timestamp(*unit, Some("UTC".into()));
                columns.push(arrow::compute::cast(column, &utc)?);
                fields.push(Field::new(field.name(), utc, field.is_nullable()));
            }
            _ => {
                columns.push(column.clone());
                fields.push(field.as_ref().clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// Write one Parquet file durably and atomically, for files that appear in
/// a source folder while readers may be listing it: a crash leaves either
/// no file or the whole file, never a torn one (the temp file is hidden, and
/// source listings skip dot-files).
pub fn write_parquet_durably(path: &Path, batch: &RecordBatch) -> Result<(), OfflineError> {
    write_atomically(path, Durability::Fsync, |file| {
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).map_err(std::io::Error::other)?;
        writer.write(batch).map_err(std::io::Error::other)?;
        writer.into_inner().map_err(std::io::Error::other)
    })
    .map_err(|e| OfflineError::Unwritable { path: path.to_path_buf(), reason: e.to_string() })
}
