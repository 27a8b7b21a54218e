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

/// With `ALMANAC_TIMINGS=1`, print how long a stage took to stderr (the
/// benchmark uses it to report where the time goes). Costs nothing otherwise.
pub fn report_stage(stage: &str, started: std::time::Instant) {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ENABLED.get_or_init(|| std::env::var_os("ALMANAC_TIMINGS").is_some_and(|v| v == "1")) {
        eprintln!("{stage:<40} {:>8.3} s", started.elapsed().as_secs_f64());
    }
}
pub use historical::{EmbeddedOfflineStore, HistoricalOptions, OfflineStore, TimeRange, ViewRequest};
pub use source::{SourceError, SourceFiles, list_source_files, read_source_schema};
