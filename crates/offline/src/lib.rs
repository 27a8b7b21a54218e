//! # almanac-offline
//!
//! Owns the *offline store*: the full timestamped history in a source's files.
//! Today that means resolving a source's `path` (file, folder or glob) to its
//! files and format, and reading their schema from metadata only (Parquet
//! footers, CSV headers plus a bounded sample) so `apply` can check definitions
//! against real data without scanning it. The point-in-time engine (DataFusion
//! scans and Almanac's own as-of join) lives here too as it arrives.
//!
//! It knows nothing of the registry file or the online store; it is handed
//! plain [`almanac_core::Source`] definitions and returns Arrow.

pub mod source;

pub use source::{SourceError, SourceFiles, list_source_files, read_source_schema};
