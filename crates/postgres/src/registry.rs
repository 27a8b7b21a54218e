//! The team registry in PostgreSQL (DESIGN §12).
//!
//! Three tables, created on first use: `almanac_registry` holds each
//! project's current definitions (one row, its `version` the
//! compare-and-swap token), `almanac_registry_versions` every applied
//! version, and `almanac_watermarks` one row per materialized view.
//! Watermarks live apart from the definitions so that an apply and a
//! materialization never overwrite each other: an apply swaps the
//! definitions only if no other apply landed since it read them (otherwise
//! [`RegistryError::Conflict`], nothing written), and a watermark advance
//! is one `GREATEST` upsert that cannot move a mark back or be lost.

use std::collections::BTreeMap;
use std::sync::Mutex;

use almanac_registry::{Registry, RegistryError, RegistryState};
use chrono::{DateTime, Utc};
use postgres::{Client, GenericClient};

use crate::client::{connect, describe, outside_runtime, redact};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS almanac_registry (
    project TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    state JSONB NOT NULL,
    applied_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS almanac_registry_versions (
    project TEXT NOT NULL,
    version BIGINT NOT NULL,
    state JSONB NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (project, version)
);
CREATE TABLE IF NOT EXISTS almanac_watermarks (
    project TEXT NOT NULL,
    view TEXT NOT NULL,
    materialized_to TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project, view)
);";

/// A lock id of its own for creating the tables (concurrent `CREATE TABLE
/// IF NOT EXISTS` can still collide in the catalog).
const SCHEMA_LOCK: i64 = 0x616c_6d61_6e61_6301;

pub struct PostgresRegistry {
    url: String,
    client: Mutex<Option<Client>>,
}

impl PostgresRegistry {
    pub fn new(url: impl Into<String>) -> Self {
        PostgresRegistry { url: url.into(), client: Mutex::new(None) }
    }

    fn error(&self, error: &postgres::Error) -> RegistryError {
        RegistryError::Database { url: redact(&self.url), reason: describe(error) }
    }

    /// Run `work` on the session, connecting (and creating the tables) first.
    fn with_client<T: Send>(&self, work: impl FnOnce(&mut Client) -> Result<T, RegistryError> + Send) -> Result<T, RegistryError> {
        let mut slot = self.client.lock().map_err(|_| RegistryError::Database { url: redact(&self.url), reason: "the session lock is poisoned".into() })?;
        if slot.is_none() {
            let mut client = connect(&self.url).map_err(|e| RegistryError::Database { url: redact(&self.url), reason: e.to_string() })?;
            outside_runtime(|| {
                let mut transaction = client.transaction()?;
                transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
                transaction.batch_execute(SCHEMA)?;
                transaction.commit()
            })
            .map_err(|e| self.error(&e))?;
            *slot = Some(client);
        }
        let client = slot.as_mut().ok_or_else(|| RegistryError::Database { url: redact(&self.url), reason: "no session".into() })?;
        let result = outside_runtime(|| work(client));
        if matches!(result, Err(RegistryError::Database { .. })) {
            *slot = None;
        }
        result
    }

    fn parse(&self, text: &str) -> Result<RegistryState, RegistryError> {
        serde_json::from_str(text).map_err(|e| RegistryError::Database { url: redact(&self.url), reason: format!("a stored registry state is not readable: {e}") })
    }

    /// The definitions row (version 0 and empty when none) and the watermarks.
    fn read(&self, client: &mut impl GenericClient, project: &str, lock: bool) -> Result<RegistryState, RegistryError> {
        let sql = if lock { "SELECT state::text FROM almanac_registry WHERE project = $1 FOR UPDATE" } else { "SELECT state::text FROM almanac_registry WHERE project = $1" };
        let mut state = match client.query_opt(sql, &[&project]).map_err(|e| self.error(&e))? {
            Some(row) => self.parse(row.get::<_, &str>(0))?,
            None => RegistryState::empty(project),
        };
        if state.project != project {
            return Err(RegistryError::WrongProject { expected: project.to_string(), found: state.project });
        }
        state.watermarks = client
            .query("SELECT view, materialized_to FROM almanac_watermarks WHERE project = $1", &[&project])
            .map_err(|e| self.error(&e))?
            .iter()
            .map(|row| (row.get::<_, String>(0), DateTime::<Utc>::from(row.get::<_, std::time::SystemTime>(1))))
            .collect();
        Ok(state)
    }

    /// Swap the definitions from `expected` to `next` (compare-and-swap on
    /// the version), record the version, and write the watermarks `next`
    /// changed relative to `current`; all in the caller's transaction.
    fn write(&self, client: &mut impl GenericClient, expected: u64, current: &BTreeMap<String, DateTime<Utc>>, next: &RegistryState) -> Result<(), RegistryError> {
        let project = next.project.as_str();
        if next.version != expected {
            let definitions = serde_json::to_string(&RegistryState { watermarks: BTreeMap::new(), ..next.clone() }).map_err(|e| RegistryError::Database { url: redact(&self.url), reason: e.to_string() })?;
            let (expected, version) = (expected as i64, next.version as i64);
            let applied_at = next.applied_at.map(std::time::SystemTime::from);
            let swapped = if expected == 0 {
                client.execute("INSERT INTO almanac_registry (project, version, state, applied_at) VALUES ($1, $2, $3::text::jsonb, $4) ON CONFLICT (project) DO NOTHING", &[&project, &version, &definitions, &applied_at])
            } else {
                client.execute("UPDATE almanac_registry SET version = $2, state = $3::text::jsonb, applied_at = $4 WHERE project = $1 AND version = $5", &[&project, &version, &definitions, &applied_at, &expected])
            }
            .map_err(|e| self.error(&e))?;
            if swapped == 0 {
                let found = client.query_opt("SELECT version FROM almanac_registry WHERE project = $1", &[&project]).map_err(|e| self.error(&e))?.map_or(0, |row| row.get::<_, i64>(0));
                return Err(RegistryError::Conflict { planned: expected as u64, found: found as u64 });
            }
            client
                .execute("INSERT INTO almanac_registry_versions (project, version, state, applied_at) VALUES ($1, $2, $3::text::jsonb, COALESCE($4, now()))", &[&project, &version, &definitions, &applied_at])
                .map_err(|e| self.error(&e))?;
        }
        for view in current.keys().filter(|view| !next.watermarks.contains_key(*view)) {
            client.execute("DELETE FROM almanac_watermarks WHERE project = $1 AND view = $2", &[&project, view]).map_err(|e| self.error(&e))?;
        }
        for (view, mark) in next.watermarks.iter().filter(|(view, mark)| current.get(*view) != Some(*mark)) {
            let mark = std::time::SystemTime::from(*mark);
            client
                .execute("INSERT INTO almanac_watermarks (project, view, materialized_to) VALUES ($1, $2, $3) ON CONFLICT (project, view) DO UPDATE SET materialized_to = EXCLUDED.materialized_to", &[&project, view, &mark])
                .map_err(|e| self.error(&e))?;
        }
        Ok(())
    }
}

impl Registry for PostgresRegistry {
    fn load(&self, project: &str) -> Result<RegistryState, RegistryError> {
        self.with_client(|client| {
            // One snapshot for the definitions and the watermarks.
            let mut transaction = client.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).read_only(true).start().map_err(|e| self.error(&e))?;
            let state = self.read(&mut transaction, project, false)?;
            transaction.commit().map_err(|e| self.error(&e))?;
            Ok(state)
        })
    }

    fn commit(&self, expected_version: u64, state: &RegistryState) -> Result<(), RegistryError> {
        self.with_client(|client| {
            let mut transaction = client.transaction().map_err(|e| self.error(&e))?;
            let current = self.read(&mut transaction, &state.project, false)?;
            if current.version != expected_version {
                return Err(RegistryError::Conflict { planned: expected_version, found: current.version });
            }
            self.write(&mut transaction, expected_version, &current.watermarks, state)?;
            transaction.commit().map_err(|e| self.error(&e))
        })
    }

    /// Optimistic: `change` sees the state as read, without holding any
    /// lock, and its result is written only if no other writer changed the
    /// definitions meanwhile; otherwise nothing is written and the caller
    /// gets [`RegistryError::Conflict`] (two concurrent applies: one wins,
    /// the other is told to plan again). Watermark-only changes (a reset)
    /// write just the marks they change.
    fn update(&self, project: &str, change: &mut dyn FnMut(&RegistryState) -> Option<RegistryState>) -> Result<RegistryState, RegistryError> {
        let current = self.load(project)?;
        let Some(next) = change(&current) else { return Ok(current) };
        self.with_client(|client| {
            let mut transaction = client.transaction().map_err(|e| self.error(&e))?;
            self.write(&mut transaction, current.version, &current.watermarks, &next)?;
            transaction.commit().map_err(|e| self.error(&e))
        })?;
        Ok(next)
    }

    fn history(&self, project: &str) -> Result<Vec<RegistryState>, RegistryError> {
        self.with_client(|client| {
            let rows = client.query("SELECT state::text FROM almanac_registry_versions WHERE project = $1 ORDER BY version", &[&project]).map_err(|e| self.error(&e))?;
            rows.iter().map(|row| self.parse(row.get::<_, &str>(0))).collect()
        })
    }

    /// One upsert that keeps the later mark: concurrent materializations
    /// of different views (or the same one) never lose an advance.
    fn advance_watermark(&self, project: &str, view: &str, to: DateTime<Utc>) -> Result<(), RegistryError> {
        let to = std::time::SystemTime::from(to);
        self.with_client(|client| {
            client
                .execute(
                    "INSERT INTO almanac_watermarks (project, view, materialized_to) VALUES ($1, $2, $3)
                     ON CONFLICT (project, view) DO UPDATE SET materialized_to = GREATEST(almanac_watermarks.materialized_to, EXCLUDED.materialized_to)",
                    &[&project, &view, &to],
                )
                .map(|_| ())
                .map_err(|e| self.error(&e))
        })
    }
}
