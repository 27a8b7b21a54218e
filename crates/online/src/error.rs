//! The online stores' error, grouped by who can fix it: the operator (a
//! store that is down or misconfigured), the data (a record from another
//! schema), or the caller (a value of the wrong type).

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnlineError {
    /// The store cannot be reached or answered with an error; it may be down.
    #[error("online store {store} is unavailable: {reason}{}", help.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Unavailable { store: String, reason: String, help: Option<String> },

    /// A record was written under another schema of its view.
    #[error("a stored record was written for another schema of this view (fingerprint {found:08x}, expected {expected:08x}); re-materialize the view")]
    SchemaMismatch { found: u32, expected: u32 },

    #[error("corrupt online record: {0}")]
    Corrupt(String),

    /// A value that does not fit the view's schema.
    #[error("cannot encode: {0}")]
    Encode(String),

    /// The store's own storage (an embedded engine's files, its locks)
    /// could not be opened, read or written. `store` is the store's
    /// [`describe`](crate::OnlineStore::describe); engine errors (LMDB's, in
    /// `almanac-online-lmdb`) arrive as their message, so this crate depends
    /// on no engine.
    #[error("online store {store}: {reason}")]
    Storage { store: String, reason: String },
}

impl OnlineError {
    /// Whether the store itself is down (the server answers 503 for these).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, OnlineError::Unavailable { .. })
    }
}
