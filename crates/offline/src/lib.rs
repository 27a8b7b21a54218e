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
pub mod error;
pub mod historical;
pub mod io;
pub mod partition;
pub mod scan;
pub mod source;
pub mod time;

pub use error::OfflineError;
pub use historical::{EmbeddedOfflineStore, HistoricalOptions, OfflineStore, TimeRange, ViewRequest};
pub use source::{SourceError, SourceFiles, list_source_files, read_source_schema};
