//! What a stream source's ingestion last did, as a small file beside its
//! recovery marker (`.almanac/stream/<source>/status.json`): written by the
//! ingest loop after each micro-batch, read by `almanac monitor` to report
//! stream freshness beside materialization staleness (the ingest process
//! and the monitor are different processes).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStatus {
    /// Event time of the newest event ingested (µs).
    pub newest_event_micros: Option<i64>,
    /// When the last micro-batch was written to both stores (µs, wall clock).
    pub last_batch_micros: i64,
    /// Events ingested since the ingest process started.
    pub ingested: u64,
}

/// The folder of a stream source's ingestion state.
pub fn state_dir(root: &Path, source: &str) -> PathBuf {
    root.join(".almanac").join("stream").join(source)
}

impl StreamStatus {
    /// Best effort: freshness reporting must never stop ingestion.
    pub fn write(&self, root: &Path, source: &str) {
        let path = state_dir(root, source).join("status.json");
        if let Ok(text) = serde_json::to_vec(self) {
            let _ = almanac_core::fs::write_atomically(&path, almanac_core::fs::Durability::RenameOnly, |mut file| {
                std::io::Write::write_all(&mut file, &text)?;
                Ok(file)
            });
        }
    }

    /// `None` when the source was never ingested here.
    pub fn read(root: &Path, source: &str) -> Option<StreamStatus> {
        let text = std::fs::read_to_string(state_dir(root, source).join("status.json")).ok()?;
        serde_json::from_str(&text).ok()
    }
}
