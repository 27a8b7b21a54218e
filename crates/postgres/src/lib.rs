//! # almanac-postgres
//!
//! Everything that talks to PostgreSQL (DESIGN §12). [`PostgresOfflineStore`]
//! is the offline store whose sources are tables or queries of a database:
//! the point-in-time join runs inside PostgreSQL as the SQL `almanac-sql`
//! renders (the entity table shipped in with binary `COPY`, the result
//! streamed back with binary `COPY` into Arrow builders), and so do
//! materialization's latest-per-entity query and exports.
//! [`PostgresRegistry`] is the team registry: every applied version kept,
//! applies as compare-and-swap transactions, watermarks that only move
//! forward. Both speak through the synchronous `postgres` client (the
//! blocking face of tokio-postgres) and run it off any async runtime.

mod client;
mod offline;
mod registry;
mod types;

pub use client::PostgresError;
pub use offline::PostgresOfflineStore;
pub use registry::PostgresRegistry;
