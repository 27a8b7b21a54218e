//! Bounded memory for histories larger than RAM: hash partitioning by key
//! and spilling partitions to Arrow IPC files.
//!
//! A point-in-time join only ever compares rows with equal keys, so both
//! sides can be split by a hash of the key and joined partition by partition.
//! The history streams from the scan straight into one spill file per
//! partition; only one partition's history is in memory at a time, next to
//! the entity table and the output columns. The partition of a row depends
//! only on its normalized key values, identically on both sides.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use arrow::error::ArrowError;
use arrow_ipc::reader::FileReader;
use arrow_ipc::writer::FileWriter;
use arrow::row::{RowConverter, SortField};

use crate::error::OfflineError;

/// A fixed hasher so partitioning is the same in every process and run.
#[derive(Clone, Copy, Default)]
struct Fixed;

impl BuildHasher for Fixed {
    type Hasher = std::hash::DefaultHasher;
    fn build_hasher(&self) -> Self::Hasher {
        std::hash::DefaultHasher::new()
    }
}

/// The partition of each row (`None` for a null key, which never matches).
pub fn partition_of(keys: &[ArrayRef], partitions: usize) -> Result<Vec<Option<u32>>, ArrowError> {
    let rows = keys.first().map(|k| k.len()).unwrap_or(0);
    let parts = partitions.max(1) as u64;
    if keys.is_empty() {
        return Ok(vec![Some(0); rows]);
    }
    if keys.len() == 1 && keys[0].data_type() == &DataType::Int64 {
        let values = keys[0].as_primitive::<Int64Type>();
        return Ok((0..rows)
            .map(|r| (!values.is_null(r)).then(|| ((values.value(r) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17) % parts).map(|p| p as u32))
            .collect());
    }
    let converter = RowConverter::new(keys.iter().map(|k| SortField::new(k.data_type().clone())).collect())?;
    let encoded = converter.convert_columns(keys)?;
    Ok((0..rows)
        .map(|r| {
            if keys.iter().any(|k| k.is_null(r)) {
                return None;
            }
            let mut hasher = Fixed.build_hasher();
            hasher.write(encoded.row(r).as_ref());
            Some((hasher.finish() % parts) as u32)
        })
        .collect())
}

/// Rows of each partition, as `take` indices.
pub fn rows_by_partition(partition: &[Option<u32>], partitions: usize) -> Vec<Vec<u32>> {
    let mut rows = vec![Vec::new(); partitions];
    for (row, p) in partition.iter().enumerate() {
        if let Some(p) = p {
            rows[*p as usize].push(row as u32);
        }
    }
    rows
}

/// One spill file per partition, in a temp folder removed on drop (also on
/// error or panic), so an interrupted join leaves nothing behind.
pub struct Spill {
    dir: tempfile::TempDir,
    schema: SchemaRef,
    writers: Vec<Option<FileWriter<File>>>,
    pub rows: usize,
}

impl Spill {
    pub fn new(schema: SchemaRef, partitions: usize) -> Result<Self, OfflineError> {
        let dir = tempfile::Builder::new().prefix("almanac-spill-").tempdir().map_err(|e| OfflineError::Unwritable { path: std::env::temp_dir(), reason: e.to_string() })?;
        Ok(Spill { dir, schema, writers: (0..partitions).map(|_| None).collect(), rows: 0 })
    }

    pub fn partitions(&self) -> usize {
        self.writers.len()
    }

    fn path(&self, partition: usize) -> PathBuf {
        self.dir.path().join(format!("part-{partition}.arrow"))
    }

    /// Append a batch, split by `partition` (one entry per row).
    pub fn write(&mut self, batch: &RecordBatch, partition: &[Option<u32>]) -> Result<(), OfflineError> {
        for (p, rows) in rows_by_partition(partition, self.writers.len()).into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let indices = UInt32Array::from(rows);
            let columns = batch.columns().iter().map(|c| take(c.as_ref(), &indices, None)).collect::<Result<Vec<_>, _>>()?;
            let part = RecordBatch::try_new(self.schema.clone(), columns)?;
            if self.writers[p].is_none() {
                let path = self.path(p);
                let file = File::create(&path).map_err(|e| OfflineError::Unwritable { path: path.clone(), reason: e.to_string() })?;
                self.writers[p] = Some(FileWriter::try_new(file, &self.schema)?);
            }
            if let Some(writer) = self.writers[p].as_mut() {
                writer.write(&part)?;
            }
            self.rows += part.num_rows();
        }
        Ok(())
    }

    /// Close every file; afterwards [`Spill::read`] can load partitions.
    pub fn finish(&mut self) -> Result<(), OfflineError> {
        for writer in self.writers.iter_mut().flatten() {
            writer.finish()?;
        }
        Ok(())
    }

    /// One partition's rows (`None` if it received none).
    pub fn read(&self, partition: usize) -> Result<Option<RecordBatch>, OfflineError> {
        if self.writers[partition].is_none() {
            return Ok(None);
        }
        let path = self.path(partition);
        let file = File::open(&path).map_err(|e| OfflineError::Unreadable { path: path.clone(), reason: e.to_string() })?;
        let batches = FileReader::try_new(file, None)?.collect::<Result<Vec<_>, _>>()?;
        Ok(Some(concat_batches(&self.schema, &batches)?))
    }
}
