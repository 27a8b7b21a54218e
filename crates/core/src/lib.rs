//! # almanac-core
//!
//! The vocabulary every other Almanac crate speaks: the plain definition types
//! (entities, sources, request sources, feature views, on-demand feature
//! views, feature services, repo settings), feature references, feature value
//! types and their Arrow mapping, durations, and the diagnostics used to
//! report definition mistakes with a file, line and fix.
//!
//! It also holds the one home of Value ↔ Arrow conversion ([`convert`]) and of
//! the timestamp grammar ([`time`]), so the facade, the server and the SDK
//! convert and parse exactly one way.
//!
//! This crate owns *meaning*, not *I/O*: it opens no sockets and has no async,
//! and the only file it writes is through [`fs::write_atomically`], the one
//! atomic-write helper every writer shares. That keeps it cheap to depend on from the registry, the
//! engines and the bindings alike, and keeps the rules (what a valid duration or
//! dtype is, how a reference is spelled) in exactly one place.

pub mod config;
pub mod convert;
pub mod defs;
pub mod diagnostic;
pub mod dtype;
pub mod duration;
pub mod fs;
pub mod reference;
pub mod suggest;
pub mod time;
pub mod value;

pub use config::{OfflineConfig, OnlineConfig, ParitySchedule, RegistryConfig, RepoConfig, TimestampRange};
pub use defs::{
    AggFunction, Aggregation, Definitions, Entity, FeatureService, FeatureView, Field, FileFormat, JoinKey, Monitoring, ObjectKind,
    OnDemandFeature, OnDemandFeatureView, RequestSource, Source, Stream, Broker,
};
pub use diagnostic::{Diagnostic, Diagnostics, Location};
pub use dtype::DType;
pub use duration::Duration;
pub use reference::FeatureRef;
pub use value::Value;
