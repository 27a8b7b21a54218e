//! # almanac-registry
//!
//! Owns the *definitions lifecycle*: finding a repo's definition files,
//! parsing them with a location for every value, validating them (collecting
//! every mistake with `file:line:col` and a fix), diffing them against the
//! registry (`plan`), and storing the applied state (`apply`) together with
//! object versions, lineage and materialization watermarks.
//!
//! It reads YAML and the registry file, never feature data: checks that need
//! a source's file schema are done by the facade, which has the offline
//! engine, and reported through the same [`almanac_core::Diagnostics`]. The
//! [`Registry`] trait is the pluggable boundary; [`FileRegistry`] is the
//! embedded default (one JSON file, atomic replace, exclusive writer lock).

pub mod catalog;
pub mod error;
pub mod parse;
pub mod plan;
pub mod repo;
pub mod state;
pub mod store;
mod validate;

pub use error::RegistryError;
pub use parse::{Locations, Parsed};
pub use plan::{Action, Change, Plan};
pub use repo::{RepoDefinitions, load_config, load_definitions};
pub use state::{RegistryState, lineage};
pub use store::{FileRegistry, Registry};
