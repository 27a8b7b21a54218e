//! # almanac-sql
//!
//! The one point-in-time planner for pushdown engines (DESIGN §7, §12). A
//! training-set request is described once, as a [`PointInTime`] plan: each
//! view's relation, join keys, event and created times, TTL, requested
//! features and tie-break columns. [`render::point_in_time`] turns that plan
//! into the SQL of a [`Dialect`]; `almanac-postgres` and `almanac-spark`
//! execute what it renders, and Trino, BigQuery and Snowflake are rendered
//! and golden-tested as text. Materialization's latest-per-entity query and
//! exports are rendered here too, so the winner rule (greatest event time,
//! then greatest created time, then greatest feature values in schema order,
//! nulls smallest) is written once for every engine, as the embedded as-of
//! join writes it once for the embedded engine. For aggregation views it
//! renders only which events each key's windows can see
//! ([`window_events`], [`events_in_range`]); the windows themselves are
//! computed by the one evaluator (`almanac-aggregate`) on every engine.
//!
//! It does no I/O and knows no engine's client: it is handed definitions
//! and returns text.

pub mod dialect;
pub mod plan;
pub mod render;

pub use dialect::Dialect;
pub use plan::{AggregationInputs, KeyPair, Output, PointInTime, Relation, ViewPlan};
pub use render::{events_in_range, export, latest_per_entity, point_in_time, point_in_time_staged, window_events};

/// Why a plan cannot be rendered for a dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("feature `{view}:{feature}` is {dtype}, which Almanac cannot carry through {dialect}")]
    UnsupportedType { view: String, feature: String, dtype: String, dialect: &'static str },
    #[error("feature view `{view}` is an aggregation view: its features come from its events (`window_events`), not from the {dialect} point-in-time join")]
    Aggregation { view: String, dialect: &'static str },
    #[error("feature view `{view}` has no aggregations, so it has no events to window in {dialect}")]
    NotAggregation { view: String, dialect: &'static str },
}
