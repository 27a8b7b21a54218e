//! Materialization (DESIGN §3): offline winners → online records.
//!
//! For each online view, the offline engine picks the winning row per
//! entity among rows with event time in the window (the same winner rule
//! and the same code as training sets), each winner is encoded as one
//! record, and records are written keep-if-newer in chunks. Each chunk is
//! atomic on the embedded store and per key on Redis, so a process killed
//! at any moment leaves every record at a version that was written whole,
//! and since writes never move an entity back in time, re-running the job
//! converges to the same store as an uninterrupted run. The view's
//! watermark moves only after all its chunks are written.
//!
//! Two materializations of one view cannot interleave: each takes an
//! exclusive lock file for the view (`.almanac/locks/`) and the second
//! fails at once with a clear error.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

use almanac_offline::{OfflineStore, TimeRange, ViewRows};
use almanac_online::{Entry, OnlineStore, RecordCodec, WriteStats, encode_key_row};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::resolve;

/// Records per write call: a unit of atomicity and of progress.
fn chunk_size() -> usize {
    std::env::var("ALMANAC_MATERIALIZE_CHUNK").ok().and_then(|v| v.parse().ok()).filter(|&n: &usize| n > 0).unwrap_or(50_000)
}

/// Fault-injection knob for the crash tests: sleep this long after each
/// chunk so a test can kill the process mid-job. Zero unless set.
fn throttle() -> std::time::Duration {
    std::time::Duration::from_millis(std::env::var("ALMANAC_MATERIALIZE_THROTTLE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// What to materialize.
#[derive(Debug, Clone)]
pub struct MaterializeRequest {
    /// Inclusive start; `None` with `incremental` = each view's watermark.
    pub start: Option<DateTime<Utc>>,
    pub end: DateTime<Utc>,
    /// Only these views (all online views when `None`).
    pub views: Option<Vec<String>>,
    /// Start each view after its watermark (or at `end - ttl` the first time).
    pub incremental: bool,
    /// Allow an `end` later than now (a watermark in the future makes every
    /// later incremental run skip the data in between, so it must be meant).
    pub allow_future_end: bool,
}

/// How far past the local clock an `end` may be without `allow_future_end`:
/// clocks of the machines that write data and run jobs drift a little.
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// What happened to one view.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewReport {
    pub view: String,
    /// The event-time window materialized (`None` start = from the beginning).
    pub start: Option<DateTime<Utc>>,
    pub end: DateTime<Utc>,
    /// Source rows with event time in the window.
    pub source_rows: usize,
    /// Entities with a winner in the window (records offered to the store).
    pub entities: usize,
    pub written: u64,
    /// Records the store kept because it already held a newer version.
    pub kept_newer: u64,
    pub seconds: f64,
    /// True when the watermark was already at or past `end`.
    pub up_to_date: bool,
    /// The view's watermark before this run (`None`: never materialized).
    pub watermark_before: Option<DateTime<Utc>>,
    /// Aggregation views: the bytes of the states written (divide by
    /// `entities` for the state size per entity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_bytes: Option<u64>,
}

/// Progress callbacks (the CLI draws a bar from them). All default to no-ops.
pub trait Progress: Sync {
    fn scanning(&self, _view: &str) {}
    fn writing(&self, _view: &str, _records: u64) {}
    fn wrote(&self, _records: u64) {}
    fn finished(&self, _report: &ViewReport) {}
}

/// No progress output.
pub struct Quiet;
impl Progress for Quiet {}

/// An exclusive per-view lock, released on drop (and by the OS if the
/// process dies, so a killed job never leaves a stale lock behind).
struct ViewLock {
    _file: File,
}

fn lock_view(root: &Path, view: &str) -> Result<ViewLock, Error> {
    let dir = root.join(".almanac/locks");
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
    let path: PathBuf = dir.join(format!("materialize-{view}.lock"));
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(ViewLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy { what: format!("another materialization of view `{view}` is running (lock {}); wait for it to finish, then re-run", path.display()) }),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::Io { path, source }),
    }
}

pub(crate) struct Job<'a> {
    pub root: &'a Path,
    pub state: &'a almanac_registry::RegistryState,
    pub offline: &'a dyn OfflineStore,
    pub online: &'a dyn OnlineStore,
    pub registry: &'a dyn almanac_registry::Registry,
    pub project: &'a str,
}

/// The views a request names (each must exist and be online), or every
/// online view.
pub(crate) fn selected_views(state: &almanac_registry::RegistryState, names: Option<&[String]>) -> Result<Vec<String>, Error> {
    let defs = &state.definitions;
    match names {
        None => Ok(defs.feature_views.iter().filter(|v| v.online).map(|v| v.name.clone()).collect()),
        Some(names) => names
            .iter()
            .map(|name| {
                let request = resolve::view_request(defs, name)?;
                if !request.view.online {
                    return Err(Error::NotOnline { view: name.clone() });
                }
                Ok(name.clone())
            })
            .collect(),
    }
}

impl Job<'_> {
    pub fn run(&self, request: &MaterializeRequest, progress: &dyn Progress) -> Result<Vec<ViewReport>, Error> {
        if self.state.version == 0 {
            return Err(Error::NotApplied);
        }
        let latest_allowed = Utc::now() + CLOCK_SKEW;
        if request.end > latest_allowed && !request.allow_future_end {
            return Err(Error::BadRequest(format!(
                "--end {} is in the future (now is {}); a watermark past now makes every later `materialize-incremental` skip the data in between. Use `--end now`, or pass --allow-future-end if you really mean it",
                request.end.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        if let Some(start) = request.start
            && start > request.end {
                return Err(Error::BadRequest(format!("--start ({}) is after --end ({}); the window would be empty", start.to_rfc3339(), request.end.to_rfc3339())));
            }
        let views = selected_views(self.state, request.views.as_deref())?;
        let mut reports = Vec::with_capacity(views.len());
        for view in views {
            let report = self.view(&view, request, progress)?;
            progress.finished(&report);
            reports.push(report);
        }
        Ok(reports)
    }

    fn window(&self, view: &almanac_core::FeatureView, request: &MaterializeRequest) -> (Option<DateTime<Utc>>, bool) {
        if !request.incremental {
            return (request.start, false);
        }
        match self.state.watermarks.get(&view.name) {
            // The watermark is inclusive: start just after it.
            Some(mark) => (Some(*mark + chrono::Duration::nanoseconds(1)), *mark >= request.end),
            None => (view.ttl.filter(|t| !t.is_zero()).map(|ttl| request.end - chrono::Duration::microseconds(ttl.micros())), false),
        }
    }

    fn view(&self, name: &str, request: &MaterializeRequest, progress: &dyn Progress) -> Result<ViewReport, Error> {
        let started = Instant::now();
        let _lock = lock_view(self.root, name)?;
        let mut view_request = resolve::view_request(&self.state.definitions, name)?;
        view_request.features = view_request.view.schema.clone();
        let (start, up_to_date) = self.window(&view_request.view, request);
        let watermark_before = self.state.watermarks.get(name).copied();
        let mut report = ViewReport { view: name.to_string(), start, end: request.end, source_rows: 0, entities: 0, written: 0, kept_newer: 0, seconds: 0.0, up_to_date, watermark_before, state_bytes: None };
        if up_to_date {
            return Ok(report);
        }
        progress.scanning(name);
        let range = TimeRange { start: start.and_then(|s| s.timestamp_nanos_opt()), end: request.end.timestamp_nanos_opt() };
        let stage = Instant::now();
        // An aggregation view's record is its state (the entity's events in
        // the widest window), recomputed whole from the offline history for
        // every entity with an event in the window: re-running never counts
        // an event twice, and a record stamped later is never replaced by
        // an earlier state (keep-if-newer on the state's instant).
        let (winners, scanned, codec) = if view_request.view.is_aggregation() {
            let (states, scanned) = self.offline.aggregation_states(&view_request, range)?;
            (states, scanned, RecordCodec::new(&almanac_aggregate::state_schema(&view_request.view)))
        } else {
            let (winners, scanned) = self.offline.latest_per_entity(&view_request, range)?;
            (winners, scanned, RecordCodec::new(&view_request.view.schema))
        };
        almanac_offline::report_stage(&format!("{name}: scan + latest per entity"), stage);
        report.source_rows = scanned;
        report.entities = winners.num_rows();
        progress.writing(name, winners.num_rows() as u64);
        let stage = Instant::now();
        let (stats, bytes) = self.encode_and_write(name, &codec, &winners, progress)?;
        report.state_bytes = view_request.view.is_aggregation().then_some(bytes);
        drop(winners);
        almanac_offline::report_stage(&format!("{name}: encode + write to the online store"), stage);
        report.written = stats.written;
        report.kept_newer = stats.kept_newer;
        self.registry.advance_watermark(self.project, name, request.end)?;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Encode the winners and write them in key order, chunk by chunk: each
    /// chunk covers one contiguous key range, so an ordered store (LMDB's
    /// B-tree) touches each page about once instead of once per chunk. The
    /// next chunk is encoded (on every core) while the current one is being
    /// written, so the store's writer and the encoders overlap.
    fn encode_and_write(&self, name: &str, codec: &RecordCodec, winners: &ViewRows, progress: &dyn Progress) -> Result<(WriteStats, u64), Error> {
        let encoder = RowsEncoder::new(codec, winners)?;
        let keyed = keyed_rows(winners.keys(), winners.num_rows())?;
        let (pause, chunk) = (throttle(), chunk_size());
        std::thread::scope(|scope| {
            // One chunk in flight and one being encoded: memory stays at two chunks.
            let (send, receive) = std::sync::mpsc::sync_channel::<Vec<Entry>>(1);
            let writer = scope.spawn(move || -> Result<(WriteStats, u64), Error> {
                let (mut stats, mut bytes) = (WriteStats::default(), 0u64);
                for chunk in receive {
                    bytes += chunk.iter().map(|e| e.record.len() as u64).sum::<u64>();
                    stats += self.online.write(name, &chunk)?;
                    progress.wrote(chunk.len() as u64);
                    if !pause.is_zero() {
                        std::thread::sleep(pause);
                    }
                }
                Ok((stats, bytes))
            });
            let mut keyed = keyed.into_iter();
            loop {
                let part: Vec<(u32, Vec<u8>)> = keyed.by_ref().take(chunk).collect();
                // A send fails only when the writer stopped on an error, which join reports.
                if part.is_empty() || send.send(encoder.encode(part)).is_err() {
                    break;
                }
            }
            drop(send);
            writer.join().map_err(|_| Error::Internal(format!("the online-store writer thread of `{name}` panicked")))?
        })
    }
}

/// Encode `rows` (a view's winners or aggregation states) and write them
/// keep-if-newer in one call: for small, bounded row sets (a stream's
/// recovery), where [`Job`]'s chunked pipeline buys nothing.
pub(crate) fn write_rows(online: &dyn almanac_online::OnlineStore, name: &str, codec: &RecordCodec, rows: &ViewRows) -> Result<WriteStats, Error> {
    let encoder = RowsEncoder::new(codec, rows)?;
    let keyed = keyed_rows(rows.keys(), rows.num_rows())?;
    Ok(online.write(name, &encoder.encode(keyed))?)
}

/// The winners' rows with their encoded store keys, in key order (rows with
/// a null key have no key and are left out). A single int64 key encodes as
/// `i` + big-endian two's complement, whose byte order is the order of the
/// value reinterpreted as `u64`: sorted as contiguous integer pairs, no bytes
/// compared. Other keys are sorted by their encoded bytes.
fn keyed_rows(keys: &[ArrayRef], rows: usize) -> Result<Vec<(u32, Vec<u8>)>, Error> {
    if let [key] = keys
        && let Some(ints) = key.as_primitive_opt::<arrow::datatypes::Int64Type>()
    {
        let mut pairs: Vec<(u64, u32)> = ints.iter().enumerate().filter_map(|(row, v)| v.map(|v| (v as u64, row as u32))).collect();
        pairs.sort_unstable();
        return Ok(pairs
            .into_iter()
            .map(|(value, row)| {
                let mut key = Vec::with_capacity(9);
                almanac_online::encode_key(&[almanac_online::KeyPart::Int(value as i64)], &mut key);
                (row, key)
            })
            .collect());
    }
    let mut keyed = Vec::with_capacity(rows);
    for row in 0..rows {
        let mut key = Vec::with_capacity(16);
        if encode_key_row(keys, row, &mut key)? {
            keyed.push((row as u32, key));
        }
    }
    keyed.sort_unstable_by(|a, b| a.1.cmp(&b.1));
    Ok(keyed)
}

/// Encodes winners' rows as store entries.
struct RowsEncoder<'a> {
    event: &'a arrow::array::PrimitiveArray<TimestampMicrosecondType>,
    created: Option<&'a arrow::array::PrimitiveArray<TimestampMicrosecondType>>,
    rows: almanac_online::RowEncoder<'a>,
}

impl<'a> RowsEncoder<'a> {
    fn new(codec: &'a RecordCodec, winners: &'a ViewRows) -> Result<Self, Error> {
        Ok(RowsEncoder { event: winners.event_time(), created: winners.created_time(), rows: codec.row_encoder(winners.features())? })
    }

    /// These keyed rows as entries, in the same order, encoded in parallel
    /// (rayon's collect keeps the input order). Rows without an event time
    /// are left out.
    fn encode(&self, keyed: Vec<(u32, Vec<u8>)>) -> Vec<Entry> {
        use rayon::prelude::*;
        keyed
            .into_par_iter()
            .with_min_len(8_192)
            .filter_map(|(row, key)| {
                let row = row as usize;
                if self.event.is_null(row) {
                    return None;
                }
                let created = self.created.and_then(|c| (!c.is_null(row)).then(|| c.value(row))).filter(|&c| c != i64::MIN);
                let mut record = Vec::with_capacity(64);
                self.rows.encode(row, self.event.value(row), created, &mut record);
                Some(Entry { key, record })
            })
            .collect()
    }
}
