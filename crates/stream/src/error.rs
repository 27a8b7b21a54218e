//! What can go wrong while ingesting a stream.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("stream source `{source_name}`: cannot reach {broker}: {reason}")]
    Unreachable { source_name: String, broker: String, reason: String },
    #[error("stream source `{source_name}`: {reason}")]
    Broker { source_name: String, reason: String },
    #[error("`{0}` is not a stream source; declare `stream: {{type: nats|redis, ...}}`, `batch_source` and `event_id_field` on it")]
    NotAStream(String),
    #[error("stream source `{source_name}`: {reason}")]
    Definition { source_name: String, reason: String },
    #[error(transparent)]
    Store(#[from] almanac::Error),
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("reading {}: {reason}", path.display())]
    History { path: PathBuf, reason: String },
}

impl StreamError {
    /// Whether waiting and retrying may help (a broker or store that went
    /// away), as opposed to a mistake that retrying repeats.
    pub fn is_transient(&self) -> bool {
        match self {
            StreamError::Unreachable { .. } | StreamError::Broker { .. } | StreamError::Io { .. } => true,
            StreamError::Store(error) => matches!(error, almanac::Error::Online(e) if e.is_unavailable()) || matches!(error, almanac::Error::Storage(_)),
            _ => false,
        }
    }
}
