//! # almanac-offline
//!
//! Owns the *offline store*: the full timestamped history in a source's files.
//! It resolves a source's `path` (file, folder or glob) to its files and
//! format, reads their schema from metadata only (so `apply` can check
//! definitions without scanning data), scans them with DataFusion (projection
//! and event-time pruning), and answers point-in-time questions with
//! Almanac's own as-of join ([`asof`]), the one place the winner rule of
//! DESIGN §2 is implemented. [`OfflineStore`] is the pluggable boundary;
//! [`EmbeddedOfflineStore`] is the default engine.
//!
//! It knows nothing of the registry file or the online store; it is handed
//! plain [`almanac_core::Source`] definitions and returns Arrow.

pub mod asof;
pub mod entities;
pub mod error;
pub mod historical;
pub mod io;
pub mod partition;
pub mod request;
pub mod scan;
pub mod source;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod time;
pub mod window;

pub use entities::{EntityFile, EntityTable};
pub use error::OfflineError;

/// Where a streamed training set goes: called once per batch, in input
/// order, at least once (an empty table gives one empty batch).
pub type BatchSink<'a> = dyn FnMut(RecordBatch) -> Result<(), OfflineError> + Send + 'a;

use almanac_core::{FeatureView, Field, JoinKey, Source};
use arrow::array::{ArrayRef, AsArray, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::TimestampMicrosecondType;

/// One feature view's part of a request, fully resolved by the caller
/// (the facade resolves references through the registry).
#[derive(Debug, Clone)]
pub struct ViewRequest {
    pub view: FeatureView,
    pub source: Source,
    /// `(entity name, join key with its resolved dtype)`, in the view's order.
    pub join_keys: Vec<(String, JoinKey)>,
    /// The requested features, in request order.
    pub features: Vec<Field>,
}

#[derive(Debug, Clone)]
pub struct HistoricalOptions {
    /// The entity table's as-of column.
    pub timestamp_column: String,
    /// Name features `view__feature` instead of `feature`.
    pub full_feature_names: bool,
}

impl Default for HistoricalOptions {
    fn default() -> Self {
        HistoricalOptions { timestamp_column: "event_timestamp".into(), full_feature_names: false }
    }
}

/// An inclusive event-time window in nanoseconds; `None` = unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl TimeRange {
    /// The range in whole microseconds, still inclusive at both ends: a
    /// start inside a microsecond rounds up, an end rounds down (what a
    /// database's microsecond timestamps can be compared with).
    pub fn to_micros(self) -> (Option<i64>, Option<i64>) {
        (self.start.map(|s| s.div_euclid(1_000) + i64::from(s.rem_euclid(1_000) != 0)), self.end.map(|e| e.div_euclid(1_000)))
    }
}

/// The offline store: full history, point-in-time joins, exports.
/// Every method is synchronous; implementations own whatever runtime they need.
pub trait OfflineStore: Send + Sync {
    /// One output row per entity row, in input order, with the input columns
    /// unchanged followed by the requested features (DESIGN §2).
    fn get_historical_features(&self, entities: &RecordBatch, views: &[ViewRequest], options: &HistoricalOptions) -> Result<RecordBatch, OfflineError>;

    /// The same training set, handed to `sink` batch by batch in input
    /// order, for tables too large to hold with their result. Engines that
    /// join in memory read the table whole and hand over one batch (this
    /// default); a pushdown engine streams both ways, so its memory is flat
    /// in the number of entity rows.
    fn historical_streamed(&self, entities: &dyn EntityTable, views: &[ViewRequest], options: &HistoricalOptions, sink: &mut BatchSink<'_>) -> Result<(), OfflineError> {
        let whole = entities.whole()?;
        sink(self.get_historical_features(&whole, views, options)?)
    }

    /// The rows of one view with event time in `range`; with `latest`, only
    /// the winning row per entity (same winner rule as the join).
    fn export(&self, view: &ViewRequest, range: TimeRange, latest: bool) -> Result<ViewRows, OfflineError>;

    /// What materialization writes: the winning row per entity among rows
    /// with event time in `range` (a [`ViewRows`]), and how many source rows the window held.
    fn latest_per_entity(&self, view: &ViewRequest, range: TimeRange) -> Result<(ViewRows, usize), OfflineError>;

    /// What materialization writes for an aggregation view: per entity with
    /// an event in `range`, its events in `[end − widest window, end]` as
    /// lists (`almanac_aggregate::state_schema`), stamped `end`; and how many
    /// source rows were read. `range.end` is required.
    fn aggregation_states(&self, view: &ViewRequest, range: TimeRange) -> Result<(ViewRows, usize), OfflineError>;

    /// A database engine's view of a `table:` or `query:` source: its
    /// columns as Arrow types, no rows read (what `apply` checks against).
    /// `None` for engines whose sources are files.
    fn table_schema(&self, _source: &Source) -> Option<Result<arrow::datatypes::SchemaRef, OfflineError>> {
        None
    }

    /// The SQL a pushdown engine runs for a training set of `views`
    /// (`almanac plan --explain`), with advice (e.g. indexes) as SQL
    /// comments. `None` for the embedded engine, which runs no SQL.
    fn explain(&self, _views: &[ViewRequest]) -> Option<Result<String, OfflineError>> {
        None
    }
}

/// A view's rows as exports and materialization lay them out: the join keys
/// (in the view's order), the event time, the created time when the source
/// has one (both UTC microseconds), then every feature of the view cast to its
/// declared dtype. The batch is what a user's export file holds; the typed
/// accessors are how code reads it, so no caller counts column positions.
#[derive(Debug, Clone)]
pub struct ViewRows {
    batch: RecordBatch,
    keys: usize,
    event_time: TimestampMicrosecondArray,
    created_time: Option<TimestampMicrosecondArray>,
}

impl ViewRows {
    /// Check and wrap a batch in the layout above (the engine builds it).
    pub fn from_batch(request: &ViewRequest, batch: RecordBatch) -> Result<Self, OfflineError> {
        let keys = request.join_keys.len();
        let has_created = request.source.created_timestamp_column.is_some();
        let expected = keys + 1 + usize::from(has_created) + request.view.schema.len();
        if batch.num_columns() != expected {
            return Err(OfflineError::Internal(format!("view `{}` rows have {} columns, the export layout needs {expected}", request.view.name, batch.num_columns())));
        }
        let micros = |index: usize| -> Result<TimestampMicrosecondArray, OfflineError> {
            batch.column(index).as_primitive_opt::<TimestampMicrosecondType>().cloned().ok_or_else(|| OfflineError::Internal(format!("view `{}` column {index} is {}, not a µs timestamp", request.view.name, batch.column(index).data_type())))
        };
        let event_time = micros(keys)?;
        let created_time = if has_created { Some(micros(keys + 1)?) } else { None };
        Ok(ViewRows { keys, event_time, created_time, batch })
    }

    /// The dtypes of the layout's columns, in order: join keys, event
    /// time, created time (when the source has one), every feature.
    pub fn layout_dtypes(request: &ViewRequest) -> Vec<almanac_core::DType> {
        use almanac_core::DType;
        let mut dtypes: Vec<DType> = request.join_keys.iter().map(|(_, key)| key.dtype.clone().unwrap_or(DType::Int64)).collect();
        dtypes.push(DType::Timestamp);
        if request.source.created_timestamp_column.is_some() {
            dtypes.push(DType::Timestamp);
        }
        dtypes.extend(request.view.schema.iter().map(|f| f.dtype.clone()));
        dtypes
    }

    /// Wrap `columns` given in the layout's order (an engine's result),
    /// named as exports name them: keys, the source's time columns, features.
    pub fn from_columns(request: &ViewRequest, columns: Vec<ArrayRef>) -> Result<Self, OfflineError> {
        let mut names: Vec<&str> = request.join_keys.iter().map(|(_, key)| key.name.as_str()).collect();
        names.push(&request.source.timestamp_field);
        names.extend(request.source.created_timestamp_column.as_deref());
        names.extend(request.view.schema.iter().map(|f| f.name.as_str()));
        let fields: Vec<arrow::datatypes::Field> = names.iter().zip(&columns).map(|(name, column)| arrow::datatypes::Field::new(*name, column.data_type().clone(), true)).collect();
        let batch = RecordBatch::try_new(std::sync::Arc::new(arrow::datatypes::Schema::new(fields)), columns)?;
        Self::from_batch(request, batch)
    }

    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The join-key columns, in the view's order.
    pub fn keys(&self) -> &[ArrayRef] {
        &self.batch.columns()[..self.keys]
    }

    pub fn event_time(&self) -> &TimestampMicrosecondArray {
        &self.event_time
    }

    pub fn created_time(&self) -> Option<&TimestampMicrosecondArray> {
        self.created_time.as_ref()
    }

    /// Every feature of the view, in schema order.
    pub fn features(&self) -> &[ArrayRef] {
        &self.batch.columns()[self.keys + 1 + usize::from(self.created_time.is_some())..]
    }

    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    pub fn into_batch(self) -> RecordBatch {
        self.batch
    }
}

/// With `ALMANAC_TIMINGS=1`, print how long a stage took to stderr (the
/// benchmark uses it to report where the time goes). Costs nothing otherwise.
pub fn report_stage(stage: &str, started: std::time::Instant) {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ENABLED.get_or_init(|| std::env::var_os("ALMANAC_TIMINGS").is_some_and(|v| v == "1")) {
        eprintln!("{stage:<40} {:>8.3} s", started.elapsed().as_secs_f64());
    }
}
pub use historical::EmbeddedOfflineStore;
pub use source::{SourceError, SourceFiles, list_source_files, read_source_schema};
