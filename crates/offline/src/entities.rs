//! Entity tables read batch by batch, as often as an engine needs.
//!
//! A training set's memory stays flat in its number of rows only if nothing
//! holds the whole entity table or the whole result: a pushdown engine
//! ships the table in batches, and later puts each batch's features beside
//! that batch, reading the table a second time in the same order. An
//! [`EntityTable`] is that re-readable table: a file reads itself again, a
//! table already in memory hands out zero-copy slices again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::{Schema, SchemaRef};

use crate::error::OfflineError;
use crate::io::{Batches, read_batches, table_schema};

/// Rows per batch a table in memory is handed out in.
const SLICE_ROWS: usize = 64 * 1024;

/// An entity table that can be read more than once, in the same order
/// and with the same schema every time.
pub trait EntityTable: Send + Sync {
    fn schema(&self) -> SchemaRef;

    /// The rows in batches, in the same order on every call; at least one
    /// batch (an empty table is one empty batch).
    fn batches(&self) -> Result<Batches, OfflineError>;

    /// The whole table as one batch, for engines that join in memory.
    fn whole(&self) -> Result<RecordBatch, OfflineError> {
        let batches = self.batches()?.collect::<Result<Vec<_>, _>>()?;
        match <[_; 1]>::try_from(batches) {
            Ok([batch]) => Ok(batch),
            Err(batches) => Ok(concat_batches(&self.schema(), &batches)?),
        }
    }
}

/// A table already in memory.
impl EntityTable for RecordBatch {
    fn schema(&self) -> SchemaRef {
        RecordBatch::schema(self)
    }

    fn batches(&self) -> Result<Batches, OfflineError> {
        let batch = self.clone();
        let rows = batch.num_rows();
        let starts = (0..rows.max(1)).step_by(SLICE_ROWS);
        Ok(Box::new(starts.map(move |start| Ok(batch.slice(start, SLICE_ROWS.min(rows - start))))))
    }

    fn whole(&self) -> Result<RecordBatch, OfflineError> {
        Ok(self.clone())
    }
}

/// A Parquet or CSV file, read again from disk on every pass.
pub struct EntityFile {
    path: PathBuf,
    schema: Arc<Schema>,
}

impl EntityFile {
    /// Check that the file is readable and fix its schema (a CSV's is
    /// inferred once, so both passes read the same types).
    pub fn open(path: &Path) -> Result<Self, OfflineError> {
        Ok(EntityFile { path: path.to_path_buf(), schema: table_schema(path)? })
    }
}

impl EntityTable for EntityFile {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn batches(&self) -> Result<Batches, OfflineError> {
        let mut batches = read_batches(&self.path, &self.schema)?.peekable();
        if batches.peek().is_none() {
            return Ok(Box::new(std::iter::once(Ok(RecordBatch::new_empty(self.schema.clone())))));
        }
        Ok(Box::new(batches))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field};

    use super::*;

    fn table(rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..rows))]).expect("batch")
    }

    fn ids(table: &dyn EntityTable) -> Vec<i64> {
        let mut out = Vec::new();
        for batch in table.batches().expect("batches") {
            let batch = batch.expect("batch");
            let column = batch.column(0).as_any().downcast_ref::<Int64Array>().expect("int64");
            out.extend(column.values().iter().copied());
        }
        out
    }

    #[test]
    fn a_table_in_memory_is_sliced_in_order_every_time_and_an_empty_one_still_yields_its_schema() {
        for rows in [0, 1, SLICE_ROWS as i64, SLICE_ROWS as i64 * 2 + 7] {
            let batch = table(rows);
            let expected: Vec<i64> = (0..rows).collect();
            assert_eq!(ids(&batch), expected);
            assert_eq!(ids(&batch), expected, "a second pass reads the same rows");
            assert!(batch.batches().expect("batches").count() >= 1, "an empty table is one empty batch");
        }
    }

    #[test]
    fn a_file_is_read_again_in_the_same_order_and_whole_concatenates_its_batches() {
        let dir = std::env::temp_dir().join(format!("almanac-entities-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let rows = SLICE_ROWS as i64 * 2 + 3;
        for name in ["labels.parquet", "labels.csv"] {
            let path = dir.join(name);
            let batch = table(rows);
            crate::io::write_table(&path, batch.schema(), &[batch.slice(0, 10), batch.slice(10, rows as usize - 10)]).expect("write");
            let file = EntityFile::open(&path).expect("open");
            let expected: Vec<i64> = (0..rows).collect();
            assert_eq!(ids(&file), expected, "{name}");
            assert_eq!(ids(&file), expected, "{name}: second pass");
            assert_eq!(file.whole().expect("whole").num_rows(), rows as usize, "{name}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
