//! # almanac-online
//!
//! Owns the *online store* boundary: the latest value per entity per feature
//! view, one keyed record per (view, entity), read in microseconds. This
//! crate holds no storage engine; it defines what every engine shares:
//!
//! * the [`OnlineStore`] trait (the pluggable boundary) and what a store
//!   can promise beyond it ([`Capabilities`]);
//! * the record encoding ([`record`]: features, event and created time,
//!   schema fingerprint);
//! * the entity-key encoding ([`key`]);
//! * the error every store returns ([`OnlineError`]);
//! * the conformance kit ([`testkit`]) that every implementation runs, so
//!   the embedded store (`almanac-online-lmdb`) and Redis
//!   (`almanac-online-redis`) are held to the same behaviour.
//!
//! Stores deal in bytes: they know nothing of the registry, of TTLs or of
//! Arrow schemas beyond what [`record`] encodes. Keep-if-newer is their one
//! piece of logic, and it compares record headers only (see
//! [`record::replaces`]), so a store never needs to decode values.

pub mod error;
pub mod key;
pub mod record;
pub mod testkit;

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

/// What a store can promise beyond the [`OnlineStore`] contract. Each
/// field defaults to the safe answer (`false`): a store that says nothing
/// is treated as one that may block on the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Whether reads never block on the network (or anything else slow), so
    /// they may run on the async request workers rather than on a blocking
    /// thread. The embedded store says `true`; Redis says `false`.
    pub inline_reads: bool,
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

    /// What this store can promise beyond the contract above. The default
    /// promises nothing ([`Capabilities::default`]), the safe answer.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    fn read(&self, lookups: &[Lookup<'_>]) -> Result<Vec<Option<Vec<u8>>>, OnlineError>;

    fn write(&self, view: &str, entries: &[Entry]) -> Result<WriteStats, OnlineError>;

    /// Remove every record of a view; returns how many were removed.
    fn delete_view(&self, view: &str) -> Result<u64, OnlineError>;

    /// Up to `limit` records of a view (all when `None`), in no set order.
    fn scan(&self, view: &str, limit: Option<usize>) -> Result<Vec<Entry>, OnlineError>;

    /// Cheap liveness check (the server's `/ready`).
    fn ping(&self) -> Result<(), OnlineError>;
}
