//! # almanac-datagen
//!
//! The deterministic generator of the reference fraud-detection dataset
//! (DESIGN §8): `user_txn_stats`, `merchant_stats` and the `labels` entity
//! table, with the adversarial details the point-in-time contract must
//! survive (duplicate event times broken by `created_at`, rows in random order,
//! users with no history, labels placed exactly on a feature row's event time
//! or on that time plus the view's TTL).
//!
//! The same `(scale, seed, end)` always produces the same rows, whatever the
//! number of threads: work is split into fixed chunks, each with its own seed.
//! The demo uses it with `end = now`; benchmarks and tests use the reference
//! dates. It writes Parquet and knows nothing about definitions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use almanac_core::fs::{Durability, write_atomically};
use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, TimeZone, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Poisson};

const MICROS_PER_SECOND: i64 = 1_000_000;
const HOUR: i64 = 3_600 * MICROS_PER_SECOND;
const DAY: i64 = 24 * HOUR;
/// The views' TTLs, which the boundary probes target.
pub const USER_TTL_DAYS: i64 = 3;
pub const MERCHANT_TTL_DAYS: i64 = 7;
const USERS_PER_CHUNK: usize = 2_048;
const BATCH_ROWS: usize = 262_144;

/// What to generate. The reference period is [2026-01-01, 2026-07-01) for
/// features and [2026-02-01, 2026-07-01) for labels; `end` shifts both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DatasetSpec {
    pub scale: f64,
    pub seed: u64,
    /// The end of the feature period (exclusive).
    pub end: DateTime<Utc>,
}

pub fn reference_end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).single().unwrap_or_default()
}

impl DatasetSpec {
    /// The benchmark dataset: reference dates, default seed.
    pub fn reference(scale: f64) -> Self {
        DatasetSpec { scale, seed: 42, end: reference_end() }
    }

    /// The same data, shifted so the period ends at `end` (the demo uses now).
    pub fn ending_at(scale: f64, end: DateTime<Utc>) -> Self {
        DatasetSpec { scale, seed: 42, end }
    }

    pub fn users(&self) -> i64 {
        ((100_000.0 * self.scale).round() as i64).max(1)
    }

    pub fn merchants(&self) -> i64 {
        ((10_000.0 * self.scale).round() as i64).max(1)
    }

    pub fn labels(&self) -> usize {
        ((1_000_000.0 * self.scale).round() as usize).max(1)
    }

    fn period(&self) -> (i64, i64, i64) {
        let end = self.end.timestamp_micros();
        (end - 181 * DAY, end - 150 * DAY, end)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DatagenError {
    #[error("scale must be a positive number, got {0}")]
    BadScale(f64),
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

/// The three tables, in memory.
pub struct Dataset {
    pub user_txn_stats: Vec<RecordBatch>,
    pub merchant_stats: Vec<RecordBatch>,
    pub labels: Vec<RecordBatch>,
}

/// Row counts and file paths of a written dataset.
#[derive(Debug, Clone)]
pub struct DatasetSummary {
    pub user_rows: usize,
    pub merchant_rows: usize,
    pub label_rows: usize,
    pub files: Vec<PathBuf>,
}

pub const USER_FILE: &str = "user_txn_stats.parquet";
pub const MERCHANT_FILE: &str = "merchant_stats.parquet";
pub const LABELS_FILE: &str = "labels.parquet";

/// Generate the dataset and write it as three Parquet files into `dir`.
pub fn write_dataset(spec: &DatasetSpec, dir: &Path) -> Result<DatasetSummary, DatagenError> {
    let dataset = generate(spec)?;
    std::fs::create_dir_all(dir).map_err(|source| DatagenError::Io { path: dir.to_path_buf(), source })?;
    let rows = |b: &[RecordBatch]| b.iter().map(RecordBatch::num_rows).sum();
    let summary = DatasetSummary {
        user_rows: rows(&dataset.user_txn_stats),
        merchant_rows: rows(&dataset.merchant_stats),
        label_rows: rows(&dataset.labels),
        files: vec![dir.join(USER_FILE), dir.join(MERCHANT_FILE), dir.join(LABELS_FILE)],
    };
    write_parquet(&summary.files[0], &dataset.user_txn_stats)?;
    write_parquet(&summary.files[1], &dataset.merchant_stats)?;
    write_parquet(&summary.files[2], &dataset.labels)?;
    Ok(summary)
}

/// Write batches to `path` atomically (`almanac_core::fs`), so a crash
/// never leaves a torn file where a reader would find it.
pub fn write_parquet(path: &Path, batches: &[RecordBatch]) -> Result<(), DatagenError> {
    let Some(first) = batches.first() else { return Ok(()) };
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).set_max_row_group_row_count(Some(1 << 20)).build();
    write_atomically(path, Durability::RenameOnly, |file| {
        let mut writer = ArrowWriter::try_new(file, first.schema(), Some(props)).map_err(std::io::Error::other)?;
        for batch in batches {
            writer.write(batch).map_err(std::io::Error::other)?;
        }
        writer.into_inner().map_err(std::io::Error::other)
    })
    .map_err(|source| DatagenError::Io { path: path.to_path_buf(), source })
}

/// Generate the dataset in memory.
pub fn generate(spec: &DatasetSpec) -> Result<Dataset, DatagenError> {
    if !(spec.scale.is_finite() && spec.scale > 0.0) {
        return Err(DatagenError::BadScale(spec.scale));
    }
    let users = entity_rows(spec, spec.users(), 50.0, 0.01, 0xA11CE, user_row);
    let merchants = entity_rows(spec, spec.merchants(), 100.0, 0.0, 0xB0B, merchant_row);
    let labels = label_rows(spec, &users, &merchants);
    Ok(Dataset {
        user_txn_stats: users.into_batches(user_schema(), spec.seed ^ 0x5EED)?,
        merchant_stats: merchants.into_batches(merchant_schema(), spec.seed ^ 0x5EED2)?,
        labels: labels.into_batches()?,
    })
}

fn timestamp_field(name: &str) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false)
}

pub fn user_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        timestamp_field("event_timestamp"),
        timestamp_field("created_at"),
        Field::new("txn_count_7d", DataType::Int64, true),
        Field::new("txn_amount_avg_7d", DataType::Float64, true),
        Field::new("txn_amount_std_30d", DataType::Float64, true),
    ]))
}

pub fn merchant_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("merchant_id", DataType::Int64, false),
        timestamp_field("event_timestamp"),
        timestamp_field("created_at"),
        Field::new("merchant_fraud_rate_30d", DataType::Float64, true),
        Field::new("merchant_txn_count_1d", DataType::Int64, true),
    ]))
}

pub fn labels_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("label_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("merchant_id", DataType::Int64, false),
        timestamp_field("event_timestamp"),
        Field::new("amount", DataType::Float64, false),
        Field::new("is_fraud", DataType::Boolean, false),
    ]))
}

/// Feature rows of one view, column by column: key, event time, created time,
/// one int feature and up to two float features.
#[derive(Default)]
struct Rows {
    key: Vec<i64>,
    ts: Vec<i64>,
    created: Vec<i64>,
    int: Vec<Option<i64>>,
    float_a: Vec<Option<f64>>,
    float_b: Vec<Option<f64>>,
}

impl Rows {
    fn push(&mut self, key: i64, ts: i64, created: i64, values: (Option<i64>, Option<f64>, Option<f64>)) {
        self.key.push(key);
        self.ts.push(ts);
        self.created.push(created);
        self.int.push(values.0);
        self.float_a.push(values.1);
        self.float_b.push(values.2);
    }

    fn append(&mut self, other: Rows) {
        self.key.extend(other.key);
        self.ts.extend(other.ts);
        self.created.extend(other.created);
        self.int.extend(other.int);
        self.float_a.extend(other.float_a);
        self.float_b.extend(other.float_b);
    }

    fn len(&self) -> usize {
        self.key.len()
    }

    /// Shuffle (rows are written in random order) and cut into batches whose
    /// columns follow `schema`: key, ts, created, then the features in the
    /// schema's order (int first for users, float first for merchants).
    fn into_batches(self, schema: SchemaRef, seed: u64) -> Result<Vec<RecordBatch>, DatagenError> {
        let mut order: Vec<u32> = (0..self.len() as u32).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let utc = |v: Vec<i64>| Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC")) as ArrayRef;
        let mut batches = Vec::new();
        for chunk in order.chunks(BATCH_ROWS) {
            let pick = |col: &Vec<i64>| chunk.iter().map(|&i| col[i as usize]).collect::<Vec<i64>>();
            let int: ArrayRef = Arc::new(chunk.iter().map(|&i| self.int[i as usize]).collect::<Int64Array>());
            let float_a: ArrayRef = Arc::new(chunk.iter().map(|&i| self.float_a[i as usize]).collect::<Float64Array>());
            let float_b: ArrayRef = Arc::new(chunk.iter().map(|&i| self.float_b[i as usize]).collect::<Float64Array>());
            let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(pick(&self.key))), utc(pick(&self.ts)), utc(pick(&self.created))];
            if schema.fields().len() == 6 {
                columns.extend([int, float_a, float_b]);
            } else {
                columns.extend([float_a, int]);
            }
            batches.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
        Ok(batches)
    }
}

type RowFn = fn(&mut ChaCha8Rng) -> (Option<i64>, Option<f64>, Option<f64>);

fn user_row(rng: &mut ChaCha8Rng) -> (Option<i64>, Option<f64>, Option<f64>) {
    let avg = LogNormal::new(3.5, 0.8).map(|d| d.sample(rng)).unwrap_or(30.0);
    let count = rng.random_range(0..120);
    let avg = (rng.random::<f64>() >= 0.05).then_some(avg);
    let std = avg.unwrap_or(30.0) * rng.random_range(0.1..1.5);
    (Some(count), avg, Some(std))
}

fn merchant_row(rng: &mut ChaCha8Rng) -> (Option<i64>, Option<f64>, Option<f64>) {
    let rate = rng.random::<f64>().powi(3) * 0.2;
    (Some(rng.random_range(0..5_000)), Some(rate), None)
}

/// Rows for `entities` keys (1..=n), Poisson(`mean`) rows each, generated in
/// fixed chunks in parallel. A fraction `no_history` of keys get no rows, and
/// (for users) 1% of rows get a same-time twin created 1–60 minutes later.
fn entity_rows(spec: &DatasetSpec, entities: i64, mean: f64, no_history: f64, salt: u64, row: RowFn) -> Rows {
    let (start, _, end) = spec.period();
    let chunks = (entities as usize).div_ceil(USERS_PER_CHUNK);
    let twins = no_history > 0.0;
    let generate_chunk = |chunk: usize| {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ salt ^ (chunk as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let poisson = Poisson::new(mean).ok();
        let mut rows = Rows::default();
        let first = (chunk * USERS_PER_CHUNK) as i64 + 1;
        let last = (first + USERS_PER_CHUNK as i64 - 1).min(entities);
        for key in first..=last {
            if rng.random::<f64>() < no_history {
                continue;
            }
            let count = poisson.as_ref().map(|p| p.sample(&mut rng) as usize).unwrap_or(mean as usize);
            for _ in 0..count {
                let ts = rng.random_range(start..end);
                let created = ts + rng.random_range(0..=6 * HOUR);
                rows.push(key, ts, created, row(&mut rng));
                if twins && rng.random::<f64>() < 0.01 {
                    let later = created + rng.random_range(60 * MICROS_PER_SECOND..=3_600 * MICROS_PER_SECOND);
                    rows.push(key, ts, later, row(&mut rng));
                }
            }
        }
        rows
    };
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(chunks.max(1));
    let mut parts: Vec<(usize, Rows)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || (t..chunks).step_by(threads).map(|c| (c, generate_chunk(c))).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    parts.sort_by_key(|(chunk, _)| *chunk);
    let mut all = Rows::default();
    for (_, part) in parts {
        all.append(part);
    }
    all
}

struct Labels {
    user: Vec<i64>,
    merchant: Vec<i64>,
    ts: Vec<i64>,
    amount: Vec<f64>,
    fraud: Vec<bool>,
}

/// The entity table. 2% of rows are boundary probes: placed exactly on a
/// feature row's event time, or on that time plus the view's TTL.
fn label_rows(spec: &DatasetSpec, users: &Rows, merchants: &Rows) -> Labels {
    let (_, label_start, end) = spec.period();
    let n = spec.labels();
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x1AB31);
    let amount_dist = LogNormal::new(3.8, 1.1).ok();
    let mut labels = Labels { user: Vec::with_capacity(n), merchant: Vec::with_capacity(n), ts: Vec::with_capacity(n), amount: Vec::with_capacity(n), fraud: Vec::with_capacity(n) };
    for _ in 0..n {
        let mut user = rng.random_range(1..=spec.users());
        let mut merchant = rng.random_range(1..=spec.merchants());
        let mut ts = rng.random_range(label_start..end);
        if rng.random::<f64>() < 0.02 {
            let on_ttl = rng.random::<bool>();
            if rng.random::<bool>() && users.len() > 0 {
                let i = rng.random_range(0..users.len());
                user = users.key[i];
                ts = users.ts[i] + if on_ttl { USER_TTL_DAYS * DAY } else { 0 };
            } else if merchants.len() > 0 {
                let i = rng.random_range(0..merchants.len());
                merchant = merchants.key[i];
                ts = merchants.ts[i] + if on_ttl { MERCHANT_TTL_DAYS * DAY } else { 0 };
            }
        }
        let amount: f64 = amount_dist.as_ref().map(|d| d.sample(&mut rng)).unwrap_or(40.0);
        let p_fraud = 0.01 + if amount > 500.0 { 0.05 } else { 0.0 };
        labels.user.push(user);
        labels.merchant.push(merchant);
        labels.ts.push(ts);
        labels.amount.push((amount * 100.0).round() / 100.0);
        labels.fraud.push(rng.random::<f64>() < p_fraud);
    }
    labels
}

impl Labels {
    fn into_batches(self) -> Result<Vec<RecordBatch>, DatagenError> {
        let schema = labels_schema();
        let mut batches = Vec::new();
        let n = self.user.len();
        for start in (0..n).step_by(BATCH_ROWS) {
            let range = start..(start + BATCH_ROWS).min(n);
            let ids: Int64Array = range.clone().map(|i| i as i64 + 1).collect::<Vec<_>>().into();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(ids),
                Arc::new(Int64Array::from(self.user[range.clone()].to_vec())),
                Arc::new(Int64Array::from(self.merchant[range.clone()].to_vec())),
                Arc::new(TimestampMicrosecondArray::from(self.ts[range.clone()].to_vec()).with_timezone("UTC")),
                Arc::new(Float64Array::from(self.amount[range.clone()].to_vec())),
                Arc::new(BooleanArray::from(self.fraud[range].to_vec())),
            ];
            batches.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
        Ok(batches)
    }
}

#[cfg(test)]
mod tests;
