//! Reading entity tables and writing results: Parquet or CSV by extension.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

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

/// Write batches to `path` (Parquet or CSV by extension) through a temp file
/// and a rename, so a failure never leaves a half-written result behind.
pub fn write_table(path: &Path, schema: Arc<Schema>, batches: &[RecordBatch]) -> Result<(), OfflineError> {
    let unwritable = |reason: String| OfflineError::Unwritable { path: path.to_path_buf(), reason };
    let csv = is(path, "csv");
    if !csv && !is(path, "parquet") && !is(path, "pq") {
        return Err(OfflineError::UnsupportedFile { path: path.to_path_buf() });
    }
    let tmp = path.with_extension("almanac-tmp");
    let file = File::create(&tmp).map_err(|e| unwritable(e.to_string()))?;
    let result = if csv {
        let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(file);
        batches.iter().try_for_each(|b| writer.write(b)).map_err(|e| unwritable(e.to_string()))
    } else {
        (|| {
            let mut writer = ArrowWriter::try_new(file, schema, None)?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.close().map(|_| ())
        })()
        .map_err(|e| unwritable(e.to_string()))
    };
    match result {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| unwritable(e.to_string())),
        Err(error) => {
            let _ = std::fs::remove_file(&tmp);
            Err(error)
        }
    }
}

/// Write one Parquet file durably and atomically, for files that appear in
/// a source folder while readers may be listing it: the data goes to a
/// hidden temp file (source listings skip dot-files), is fsynced, renamed
/// into place, and the folder is fsynced, so a crash leaves either no file
/// or the whole file, never a torn one.
pub fn write_parquet_durably(path: &Path, batch: &RecordBatch) -> Result<(), OfflineError> {
    let unwritable = |reason: String| OfflineError::Unwritable { path: path.to_path_buf(), reason };
    let dir = path.parent().ok_or_else(|| unwritable("no parent folder".into()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> Result<(), String> {
        let file = File::create(&tmp).map_err(|e| e.to_string())?;
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| e.to_string())?;
        writer.write(batch).map_err(|e| e.to_string())?;
        let file = writer.into_inner().map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| e.to_string())?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| e.to_string())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(unwritable)
}
