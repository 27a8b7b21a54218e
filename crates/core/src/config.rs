//! `almanac.yaml`: the repo's project name and store settings.
//!
//! Every store has an embedded default, so a repo with only `project: x`
//! works with nothing installed. Store kinds are a serde-tagged enum (not
//! class paths resolved from strings), so an unknown kind is a parse error.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    pub project: String,
    #[serde(default)]
    pub registry: RegistryConfig,
    #[serde(default)]
    pub offline: OfflineConfig,
    #[serde(default)]
    pub online: OnlineConfig,
    /// Run parity and monitoring inside `almanac serve` on a schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parity: Option<ParitySchedule>,
    /// The instants a write (a push) may carry.
    #[serde(default)]
    pub timestamp_range: TimestampRange,
}

/// `timestamp_range: {earliest: 1970-01-01, latest: 2200-01-01}` in
/// `almanac.yaml`: the plausible event and created times of a write. A
/// value outside it is refused (a 400 naming the field and the value): an
/// epoch in milliseconds read as seconds lands in year 57,000 and would win
/// keep-if-newer for ever, freezing the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimestampRange {
    /// Inclusive, µs since the epoch.
    pub earliest_micros: i64,
    /// Exclusive, µs since the epoch.
    pub latest_micros: i64,
}

impl Default for TimestampRange {
    fn default() -> Self {
        // 1970-01-01T00:00:00Z .. 2200-01-01T00:00:00Z
        TimestampRange { earliest_micros: 0, latest_micros: 7_258_118_400_000_000 }
    }
}

impl TimestampRange {
    pub fn contains(&self, micros: i64) -> bool {
        (self.earliest_micros..self.latest_micros).contains(&micros)
    }

    /// Why `micros` is refused, or `None` when it is inside the range: the
    /// one wording every edge (a push column, a stream event) reports.
    pub fn refusal(&self, micros: i64) -> Option<String> {
        use crate::time::rfc3339_micros;
        (!self.contains(micros)).then(|| format!("{} is outside the plausible range {} .. {} (`timestamp_range` in almanac.yaml)", rfc3339_micros(micros), rfc3339_micros(self.earliest_micros), rfc3339_micros(self.latest_micros)))
    }
}

/// `parity: {every: 10m, sample: 1000}` in `almanac.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParitySchedule {
    pub every: crate::duration::Duration,
    pub sample: usize,
}

/// Where the registry lives. The embedded default is one JSON file in the repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RegistryConfig {
    File { path: String },
    /// A team registry in PostgreSQL (`postgresql://host:port/db`): every
    /// applied version kept, applies in a transaction with optimistic
    /// concurrency.
    Postgres { url: String },
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig::File { path: ".almanac/registry.json".into() }
    }
}

/// The offline engine: the embedded one (DataFusion + Almanac's own as-of
/// join over the sources' files), or a pushdown engine that runs the
/// point-in-time join as SQL where the data lives (DESIGN §12).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OfflineConfig {
    #[default]
    Embedded,
    /// Sources are tables or queries of this database.
    Postgres { url: String },
    /// Sources are Parquet/CSV paths read by a local Spark (`master`, e.g.
    /// `local[2]`), driven through a managed PySpark driver process started
    /// with `python` (default: `python3`, which must import `pyspark`).
    Spark {
        master: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        python: Option<String>,
    },
}

impl OfflineConfig {
    /// Whether sources are files (embedded, Spark) rather than tables.
    pub fn reads_files(&self) -> bool {
        !matches!(self, OfflineConfig::Postgres { .. })
    }
}

/// The online store. The embedded default is an LMDB folder under `.almanac/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OnlineConfig {
    Embedded { path: String },
    /// One Redis server: `redis://host:port/db`.
    Redis { url: String },
    /// A Redis Cluster, reached through any of its seed nodes.
    #[serde(rename = "redis-cluster")]
    RedisCluster { nodes: Vec<String> },
}

impl Default for OnlineConfig {
    fn default() -> Self {
        OnlineConfig::Embedded { path: ".almanac/online".into() }
    }
}
