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

/// Read a whole table; returns its schema too (an empty file still has one).
pub fn read_table(path: &Path) -> Result<(Arc<Schema>, Vec<RecordBatch>), OfflineError> {
    let unreadable = |reason: String| OfflineError::Unreadable { path: path.to_path_buf(), reason };
    let file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
    if is(path, "parquet") || is(path, "pq") {
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| unreadable(format!("not a valid Parquet file ({e})")))?;
        let schema = builder.schema().clone();
        let reader = builder.with_batch_size(64 * 1024).build().map_err(|e| unreadable(e.to_string()))?;
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| unreadable(e.to_string()))?;
        Ok((schema, batches))
    } else if is(path, "csv") {
        let format = arrow::csv::reader::Format::default().with_header(true);
        let (schema, _) = format.infer_schema(&file, Some(10_000)).map_err(|e| unreadable(format!("not a valid CSV file ({e})")))?;
        let schema = Arc::new(schema);
        let file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
        let reader = arrow::csv::ReaderBuilder::new(schema.clone()).with_format(format).with_batch_size(64 * 1024).build(file).map_err(|e| unreadable(e.to_string()))?;
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| unreadable(e.to_string()))?;
        Ok((schema, batches))
    } else {
        Err(OfflineError::UnsupportedFile { path: path.to_path_buf() })
    }
}

/// Write batches to `path` (Parquet or CSV by extension) atomically
/// ([`almanac_core::fs::write_atomically`]), so a failure never leaves a
/// half-written result behind. Not fsynced: a training set can be re-made.
pub fn write_table(path: &Path, schema: Arc<Schema>, batches: &[RecordBatch]) -> Result<(), OfflineError> {
    let csv = is(path, "csv");
    if !csv && !is(path, "parquet") && !is(path, "pq") {
        return Err(OfflineError::UnsupportedFile { path: path.to_path_buf() });
    }
    write_atomically(path, Durability::RenameOnly, |file| {
        if csv {
            // Instants as RFC 3339 in UTC with a `Z` (a naive column is UTC
            // by the point-in-time contract; an aware one is shown in UTC).
            let utc = "%Y-%m-%dT%H:%M:%S%.fZ".to_string();
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).with_timestamp_format(utc.clone()).with_timestamp_tz_format(utc).build(file);
            for batch in batches {
                writer.write(&in_utc(batch).map_err(std::io::Error::other)?).map_err(std::io::Error::other)?;
            }
            Ok(writer.into_inner())
        } else {
            let mut writer = ArrowWriter::try_new(file, schema, None).map_err(std::io::Error::other)?;
            for batch in batches {
                writer.write(batch).map_err(std::io::Error::other)?;
            }
            writer.into_inner().map_err(std::io::Error::other)
        }
    })
    .map_err(|e| OfflineError::Unwritable { path: path.to_path_buf(), reason: e.to_string() })
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
