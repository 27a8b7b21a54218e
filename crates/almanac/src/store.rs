//! [`FeatureStore`]: an opened repo and the operations on it.

use std::path::{Path, PathBuf};

use std::sync::OnceLock;

use almanac_core::{Definitions, RegistryConfig, RepoConfig};
use almanac_offline::{EmbeddedOfflineStore, HistoricalOptions, OfflineStore, TimeRange};
use almanac_registry::{FileRegistry, Plan, Registry, RegistryState};
use arrow::array::RecordBatch;
use chrono::Utc;

use crate::check;
use crate::error::Error;
use crate::resolve::{self, FeatureSelection};

/// An opened feature repo: its settings and its registry.
pub struct FeatureStore {
    root: PathBuf,
    config: RepoConfig,
    registry: Box<dyn Registry>,
    /// Created on first use: starting its runtime is wasted work for
    /// commands that never read history (plan, apply, discovery).
    offline: OnceLock<EmbeddedOfflineStore>,
}

/// What `apply` did.
#[derive(Debug, Clone)]
pub struct ApplyOutcome {
    pub plan: Plan,
    /// The registry version after applying (unchanged for an empty plan).
    pub version: u64,
}

impl FeatureStore {
    /// Open the repo at `root` (reads `almanac.yaml` only).
    pub fn open(root: impl AsRef<Path>) -> Result<Self, Error> {
        let root = root.as_ref().to_path_buf();
        let config = almanac_registry::load_config(&root)?;
        let registry: Box<dyn Registry> = match &config.registry {
            RegistryConfig::File { path } => Box::new(FileRegistry::new(root.join(path))),
        };
        Ok(FeatureStore { root, config, registry, offline: OnceLock::new() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The applied state (empty if nothing was applied yet).
    pub fn registry_state(&self) -> Result<RegistryState, Error> {
        Ok(self.registry.load(&self.config.project)?)
    }

    /// Read and check the definition files (syntax, references, and the
    /// sources' files), returning definitions with join-key types resolved.
    pub fn load_definitions(&self) -> Result<Definitions, Error> {
        let repo = almanac_registry::load_definitions(&self.root)?;
        if !repo.parsed.diagnostics.is_empty() {
            return Err(Error::Definitions(repo.parsed.diagnostics));
        }
        check::against_sources(&self.root, &repo).map_err(Error::Definitions)
    }

    /// What `apply` would change; writes nothing.
    pub fn plan(&self) -> Result<Plan, Error> {
        let desired = self.load_definitions()?;
        Ok(Plan::compute(&self.registry_state()?, &desired))
    }

    /// Apply the definition files to the registry. An empty plan writes nothing.
    pub fn apply(&self) -> Result<ApplyOutcome, Error> {
        let desired = self.load_definitions()?;
        let current = self.registry_state()?;
        let plan = Plan::compute(&current, &desired);
        if plan.is_empty() {
            return Ok(ApplyOutcome { version: current.version, plan });
        }
        let next = plan.apply_to(&current, &desired, Utc::now());
        self.registry.commit(current.version, &next)?;
        Ok(ApplyOutcome { version: next.version, plan })
    }

    fn offline(&self) -> Result<&EmbeddedOfflineStore, Error> {
        if let Some(store) = self.offline.get() {
            return Ok(store);
        }
        let store = EmbeddedOfflineStore::new(&self.root)?;
        Ok(self.offline.get_or_init(|| store))
    }

    /// A point-in-time-correct training set (DESIGN §2): one row per entity
    /// row, in input order, input columns unchanged, then the requested
    /// features in request order.
    pub fn get_historical_features(&self, entities: &RecordBatch, selection: &FeatureSelection, options: &HistoricalOptions) -> Result<RecordBatch, Error> {
        let state = self.registry_state()?;
        let resolved = resolve::resolve(&state, selection)?;
        let joined = self.offline()?.get_historical_features(entities, &resolved.views, options)?;
        Ok(reorder_features(&joined, entities.num_columns(), &resolved))
    }

    /// The rows of one view in a time range, or the latest row per entity.
    pub fn export(&self, view: &str, range: TimeRange, latest: bool) -> Result<RecordBatch, Error> {
        let state = self.registry_state()?;
        if state.version == 0 {
            return Err(Error::NotApplied);
        }
        let mut request = resolve::view_request(&state.definitions, view)?;
        request.features = request.view.schema.clone();
        Ok(self.offline()?.export(&request, range, latest)?)
    }
}

/// The offline engine returns features grouped by view; put them back in the
/// order they were requested.
fn reorder_features(joined: &RecordBatch, inputs: usize, resolved: &resolve::Resolved) -> RecordBatch {
    let mut grouped = Vec::new();
    for request in &resolved.views {
        for field in &request.features {
            grouped.push((request.view.name.as_str(), field.name.as_str()));
        }
    }
    let mut indices: Vec<usize> = (0..inputs).collect();
    for (view, feature) in &resolved.order {
        if let Some(position) = grouped.iter().position(|(v, f)| v == view && f == feature) {
            indices.push(inputs + position);
        }
    }
    joined.project(&indices).unwrap_or_else(|_| joined.clone())
}
