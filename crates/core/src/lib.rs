//! # almanac-core
//!
//! The vocabulary every other Almanac crate speaks: the plain definition types
//! (entities, sources, feature views, feature services, repo settings), feature
//! references, feature value types and their Arrow mapping, durations, and the
//! diagnostics used to report definition mistakes with a file, line and fix.
//!
//! This crate owns *meaning*, never *I/O*: it reads no files, opens no sockets
//! and has no async. That keeps it cheap to depend on from the registry, the
//! engines and the bindings alike, and keeps the rules (what a valid duration or
//! dtype is, how a reference is spelled) in exactly one place.

pub mod config;
pub mod defs;
pub mod diagnostic;
pub mod dtype;
pub mod duration;
pub mod reference;
pub mod suggest;
pub mod value;

pub use config::{OfflineConfig, OnlineConfig, ParitySchedule, RegistryConfig, RepoConfig};
pub use defs::{
    Definitions, Entity, FeatureService, FeatureView, Field, FileFormat, JoinKey, Monitoring, ObjectKind,
    Source,
};
pub use diagnostic::{Diagnostic, Diagnostics, Location};
pub use dtype::DType;
pub use duration::Duration;
pub use reference::FeatureRef;
pub use value::Value;
