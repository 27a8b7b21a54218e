//! Offline errors, grouped by who can fix them: the caller's input, the
//! source data, or the engine.

use std::path::PathBuf;

use crate::source::SourceError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    #[error("the entity table has no column `{column}` ({needed_by}); it has: {available}")]
    MissingColumn { column: String, needed_by: String, available: String },

    #[error("join key `{column}` is {found} in the entity table but {expected} in entity `{entity}`; cast it to {expected} (pandas: df[\"{column}\"].astype(\"{pandas}\"))")]
    KeyType { column: String, entity: String, found: String, expected: String, pandas: String },

    #[error("column `{column}` is {found}, not a timestamp; pass a timestamp column (or RFC 3339 text)")]
    NotATimestamp { column: String, found: String },

    #[error("cannot read `{value}` in column `{column}`, row {row}, as a timestamp; write RFC 3339 such as `2026-06-10T14:00:00Z`")]
    BadTimestamp { column: String, row: usize, value: String },

    #[error("feature name `{name}` is requested from both `{first}` and `{second}`; pass --full-feature-names (full_feature_names=True) to name them view__feature")]
    NameClash { name: String, first: String, second: String },

    #[error("feature name `{name}` clashes with a column of the entity table; pass --full-feature-names or rename the column")]
    ClashWithInput { name: String },

    #[error("source `{source_name}`: {error}")]
    Source { source_name: String, error: Box<SourceError> },

    #[error("cannot read {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },

    #[error("cannot write {}: {reason}", path.display())]
    Unwritable { path: PathBuf, reason: String },

    #[error("unsupported file type for {}; use .parquet or .csv", path.display())]
    UnsupportedFile { path: PathBuf },

    #[error("scanning source `{source_name}` failed: {reason}")]
    Scan { source_name: String, reason: String },

    #[error("cannot start the offline engine's runtime: {0}")]
    Runtime(String),

    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// A pushdown engine (PostgreSQL, Spark) refused or failed a query; the
    /// reason is the engine's own message.
    #[error("{engine}: {reason}")]
    Engine { engine: &'static str, reason: String },

    /// The engine cannot answer this request; the message says what to do.
    #[error("{0}")]
    Unsupported(String),

    /// A broken invariant inside Almanac (a bug), never the caller's fault.
    #[error("internal error in the offline engine: {0}")]
    Internal(String),
}
