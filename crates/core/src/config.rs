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
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig::File { path: ".almanac/registry.json".into() }
    }
}

/// The offline engine. Only the embedded engine (DataFusion + Almanac's own
/// as-of join over the sources' files) exists so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OfflineConfig {
    #[default]
    Embedded,
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
