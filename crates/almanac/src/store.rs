//! [`FeatureStore`]: an opened repo and the operations on it.

use std::path::{Path, PathBuf};

use almanac_core::{Definitions, RegistryConfig, RepoConfig};
use almanac_registry::{FileRegistry, Plan, Registry, RegistryState};
use chrono::Utc;

use crate::check;
use crate::error::Error;

/// An opened feature repo: its settings and its registry.
pub struct FeatureStore {
    root: PathBuf,
    config: RepoConfig,
    registry: Box<dyn Registry>,
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
        Ok(FeatureStore { root, config, registry })
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
}
