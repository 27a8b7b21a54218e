//! # almanac
//!
//! The facade: one [`FeatureStore`] that opens a feature repo and offers what
//! the CLI, the server and the Python SDK need (plan, apply, discovery, and,
//! historical retrieval, materialization and online reads).
//!
//! It wires the crates together and owns the checks that need more than one
//! of them (definitions against the sources' real file schemas, which needs
//! both the registry's locations and the offline engine's schema reader). It
//! calls the stores directly: there is no provider layer in between.

mod check;
pub mod error;
pub mod materialize;
pub mod monitor;
pub mod online;
pub mod parity;
pub mod push;
pub mod resolve;
pub mod scaffold;
mod store;
pub mod stream_status;

pub use almanac_core as core;
pub use almanac_registry as registry;
pub use error::Error;
pub use almanac_offline as offline;
pub use almanac_online as online_store;
pub use arrow;
pub use materialize::{MaterializeRequest, ViewReport};
pub use online::{FieldStatus, OnlineResponse, entity_batch};
pub use resolve::FeatureSelection;
pub use store::{ApplyOutcome, FeatureStore};
