//! The facade's error: one enum over the crates' errors, so callers can
//! match on "the user's definitions are wrong" vs "the machine failed".

use std::path::PathBuf;

use almanac_core::Diagnostics;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Mistakes in the definitions (including disagreements with the data
    /// files found at apply time), each with file, line and fix.
    #[error("{0}")]
    Definitions(Diagnostics),

    #[error(transparent)]
    Registry(almanac_registry::RegistryError),

    #[error(transparent)]
    Datagen(#[from] almanac_datagen::DatagenError),

    #[error("{} already holds an Almanac repo (almanac.yaml exists); choose another folder", path.display())]
    AlreadyARepo { path: PathBuf },

    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error(transparent)]
    Offline(#[from] almanac_offline::OfflineError),

    /// A reference to something the registry does not have.
    #[error("unknown {what} `{name}`{}", help.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    Unknown { what: &'static str, name: String, help: Option<String> },

    #[error("feature view `{view}` is not materialized online (`online: false`)")]
    NotOnline { view: String },

    #[error("nothing is applied yet; run `almanac apply` first")]
    NotApplied,

    #[error("bad request: {0}")]
    BadRequest(String),

    #[error(transparent)]
    Online(#[from] almanac_online::OnlineError),

    /// A stored online record of `view` could not be read as the view's
    /// current schema (or is damaged).
    #[error("online record of view `{view}`: {error}")]
    OnlineRecord { view: String, error: almanac_online::OnlineError },

    /// A push whose rows do not fit its source's views (the caller's fault).
    #[error("bad push: {0}")]
    Push(String),

    /// An Arrow kernel failed on data Almanac built itself (an internal
    /// failure, not the caller's input).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// Someone else holds a lock this operation needs.
    #[error("{what}")]
    Busy { what: String },

    /// Values that do not fit their columns (the caller's fault).
    #[error(transparent)]
    Convert(#[from] almanac_core::convert::ConvertError),

    /// Data Almanac keeps could not be read or written (a damaged file in a
    /// source folder, a full disk): the server's problem, never the caller's.
    #[error("storage: {0}")]
    Storage(String),

    /// A broken invariant or a failed internal step (a poisoned lock, a
    /// thread that died): Almanac's fault, never answered as a 4xx.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether a store is down (the server answers 503 and retries later).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Online(e) if e.is_unavailable())
    }
}

impl From<almanac_registry::RegistryError> for Error {
    fn from(error: almanac_registry::RegistryError) -> Self {
        match error {
            almanac_registry::RegistryError::Invalid(diagnostics) => Error::Definitions(diagnostics),
            other => Error::Registry(other),
        }
    }
}
