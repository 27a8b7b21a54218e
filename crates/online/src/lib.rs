//! # almanac-online
//!
//! Owns the *online store*: the latest value per entity per feature view,
//! one keyed record per (view, entity), read in microseconds. It defines the
//! [`OnlineStore`] trait (the pluggable boundary), the record encoding every
//! store shares ([`record`]: features, event and created time, schema
//! fingerprint), the entity-key encoding ([`key`]), the embedded default
//! ([`EmbeddedStore`], on LMDB), and a conformance kit ([`testkit`]) that
//! every implementation runs, so Redis and the embedded store are held to
//! the same behaviour.
//!
//! Stores deal in bytes: they know nothing of the registry, of TTLs or of
//! Arrow schemas beyond what [`record`] encodes. Keep-if-newer is their one
//! piece of logic, and it compares record headers only (see
//! [`record::replaces`]), so a store never needs to decode values.

pub mod embedded;
pub mod error;
pub mod key;
pub mod record;
pub mod testkit;

pub use embedded::EmbeddedStore;
pub use error::OnlineError;
pub use key::{KeyPart, decode_key, encode_key, encode_key_row};
pub use record::{Decoded, RecordCodec, RecordHeader, RowEncoder};

/// One record to read: a view and an encoded entity key.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    pub view: &'a str,
    pub key: &'a [u8],
}

/// One record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub record: Vec<u8>,
}

/// What a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Records stored (new entities, or newer than what was stored).
    pub written: u64,
    /// Records not stored because the store already held a newer version.
    pub kept_newer: u64,
}

impl std::ops::AddAssign for WriteStats {
    fn add_assign(&mut self, other: WriteStats) {
        self.written += other.written;
        self.kept_newer += other.kept_newer;
    }
}

/// Where materialized features live for serving.
///
/// Contract, for every implementation:
/// * [`read`](OnlineStore::read) returns one slot per lookup, in order:
///   the stored record bytes or `None`;
/// * [`write`](OnlineStore::write) is keep-if-newer per record: a record
///   replaces the stored one only if its `(event, created)` version is not
///   older ([`record::replaces`]); the comparison and the write are atomic
///   per record (no concurrent writer can slip in between), so writes never
///   move an entity back in time;
/// * a write that fails part-way leaves every record at some version that
///   was written whole (never a torn record), so re-running it converges;
/// * readers never wait for writers.
pub trait OnlineStore: Send + Sync {
    /// A short description for messages (`embedded at .almanac/online`,
    /// `redis://127.0.0.1:6379/0`).
    fn describe(&self) -> String;

    fn read(&self, lookups: &[Lookup<'_>]) -> Result<Vec<Option<Vec<u8>>>, OnlineError>;

    fn write(&self, view: &str, entries: &[Entry]) -> Result<WriteStats, OnlineError>;

    /// Remove every record of a view; returns how many were removed.
    fn delete_view(&self, view: &str) -> Result<u64, OnlineError>;

    /// Up to `limit` records of a view (all when `None`), in no set order.
    fn scan(&self, view: &str, limit: Option<usize>) -> Result<Vec<Entry>, OnlineError>;

    /// Cheap liveness check (the server's `/ready`).
    fn ping(&self) -> Result<(), OnlineError>;
}
