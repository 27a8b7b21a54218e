//! [`FeatureStore`]: an opened repo and the operations on it.

use std::path::{Path, PathBuf};

use std::sync::{Arc, OnceLock, RwLock};

use almanac_core::{Definitions, OfflineConfig, OnlineConfig, RegistryConfig, RepoConfig};
use almanac_online::{OnlineStore, RecordCodec, WriteStats};
use almanac_online_lmdb::EmbeddedStore;
use almanac_online_redis::{RedisClusterStore, RedisStore, Timeouts};
use almanac_offline::{EmbeddedOfflineStore, EntityTable, HistoricalOptions, OfflineStore, TimeRange};
use almanac_registry::{FileRegistry, Plan, Registry, RegistryState};
use arrow::array::{ArrayRef, RecordBatch};
use chrono::Utc;

use crate::check;
use crate::error::Error;
use crate::materialize::{self, MaterializeRequest, Progress, ViewReport};
use crate::online::{OnlineResponse, PlanCache};
use crate::resolve::{self, FeatureSelection};

/// An opened feature repo: its settings and its registry.
pub struct FeatureStore {
    root: PathBuf,
    config: RepoConfig,
    registry: Box<dyn Registry>,
    /// Created on first use: starting its runtime (or connecting to a
    /// pushdown engine, or starting Spark) is wasted work for commands that
    /// never read history (plan, apply, discovery).
    offline: OnceLock<Box<dyn OfflineStore>>,
    /// Connected on first use, for the same reason.
    online: OnceLock<Arc<dyn OnlineStore>>,
    /// The registry state serving reads from, until [`FeatureStore::refresh`].
    serving_state: RwLock<Option<Arc<RegistryState>>>,
    plans: PlanCache,
    push_schemas: crate::push::SchemaCache,
}

/// A view and the watermark it had before a reset (`None`: never materialized).
pub type WatermarkReset = (String, Option<chrono::DateTime<Utc>>);

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
            RegistryConfig::Postgres { url } => Box::new(almanac_postgres::PostgresRegistry::new(url)),
        };
        Ok(FeatureStore { root, config, registry, offline: OnceLock::new(), online: OnceLock::new(), serving_state: RwLock::new(None), plans: PlanCache::default(), push_schemas: crate::push::SchemaCache::default() })
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
        if self.config.offline.reads_files() {
            return check::against_sources(&self.root, &repo, None).map_err(Error::Definitions);
        }
        let offline = self.offline()?;
        let tables = |source: &almanac_core::Source| match offline.table_schema(source) {
            Some(Ok(schema)) => Ok(schema),
            Some(Err(error)) => Err(error.to_string()),
            None => Err("the offline store reads files, not tables".to_string()),
        };
        check::against_sources(&self.root, &repo, Some(&tables)).map_err(Error::Definitions)
    }

    /// What `apply` would change; writes nothing.
    pub fn plan(&self) -> Result<Plan, Error> {
        let desired = self.load_definitions()?;
        Ok(Plan::compute(&self.registry_state()?, &desired))
    }

    /// The SQL a pushdown engine would run for a training set of each
    /// feature service in the definition files (or of every view's
    /// features, when there is no service): `almanac plan --explain`.
    /// Empty for the embedded engine, which runs no SQL.
    pub fn explain(&self) -> Result<Vec<(String, String)>, Error> {
        if matches!(self.config.offline, OfflineConfig::Embedded) {
            return Ok(Vec::new());
        }
        let desired = self.load_definitions()?;
        let mut state = RegistryState::empty(&self.config.project);
        state.version = 1;
        let mut selections: Vec<(String, FeatureSelection)> = desired.feature_services.iter().map(|s| (format!("feature service `{}`", s.name), FeatureSelection::Service(s.name.clone()))).collect();
        if selections.is_empty() {
            let refs = desired.feature_views.iter().filter(|v| !v.is_aggregation()).map(|v| v.name.clone()).collect::<Vec<_>>().join(",");
            if !refs.is_empty() {
                selections.push(("every feature view".to_string(), FeatureSelection::parse_refs(&refs)?));
            }
        }
        state.definitions = desired;
        let offline = self.offline()?;
        let mut out = Vec::new();
        for (title, selection) in selections {
            let resolved = resolve::resolve(&state, &selection)?;
            let views: Vec<_> = resolved.views.into_iter().filter(|v| !v.view.is_aggregation()).collect();
            if let Some(sql) = offline.explain(&views) {
                out.push((title, sql?));
            }
        }
        Ok(out)
    }

    /// Every applied version of the definitions, oldest first.
    pub fn registry_history(&self) -> Result<Vec<RegistryState>, Error> {
        Ok(self.registry.history(&self.config.project)?)
    }

    /// Apply the definition files to the registry. An empty plan writes
    /// nothing. The plan is computed against the registry as it is under
    /// the writer lock, so a watermark a materialization advanced meanwhile
    /// is kept, never rolled back.
    pub fn apply(&self) -> Result<ApplyOutcome, Error> {
        let desired = self.load_definitions()?;
        let mut applied: Option<Plan> = None;
        let stored = self.registry.update(&self.config.project, &mut |current| {
            let plan = Plan::compute(current, &desired);
            let next = (!plan.is_empty()).then(|| plan.apply_to(current, &desired, Utc::now()));
            applied = Some(plan);
            next
        })?;
        let plan = applied.ok_or_else(|| Error::Internal("the registry update did not run".into()))?;
        Ok(ApplyOutcome { version: stored.version, plan })
    }

    /// The online store named in `almanac.yaml`, connected on first use.
    pub fn online_store(&self) -> Result<&Arc<dyn OnlineStore>, Error> {
        if let Some(store) = self.online.get() {
            return Ok(store);
        }
        let store: Arc<dyn OnlineStore> = match &self.config.online {
            OnlineConfig::Embedded { path } => Arc::new(EmbeddedStore::open(self.root.join(path))?),
            OnlineConfig::Redis { url } => Arc::new(RedisStore::connect(url, &self.config.project, Timeouts::default())?),
            OnlineConfig::RedisCluster { nodes } => Arc::new(RedisClusterStore::connect(nodes, &self.config.project, Timeouts::default())?),
        };
        Ok(self.online.get_or_init(|| store))
    }

    /// The registry state serving uses: loaded once, replaced by [`FeatureStore::refresh`].
    pub fn serving_state(&self) -> Result<Arc<RegistryState>, Error> {
        if let Some(state) = self.serving_state.read().ok().and_then(|s| s.clone()) {
            return Ok(state);
        }
        self.refresh()?;
        self.serving_state.read().ok().and_then(|s| s.clone()).ok_or(Error::NotApplied)
    }

    /// Re-read the registry; returns whether the definitions changed. Cached
    /// serving plans of an older registry version are dropped lazily.
    ///
    /// A registry that has gone missing (or reads as empty) after one was
    /// served is refused like a corrupt one: the last good state keeps
    /// serving, and the error says so (the server logs it at WARN). An
    /// empty registry is only accepted before anything was applied.
    pub fn refresh(&self) -> Result<bool, Error> {
        let fresh = Arc::new(self.registry_state()?);
        let mut slot = self.serving_state.write().map_err(|_| Error::Internal("the serving registry cache is poisoned (a thread panicked while replacing it)".into()))?;
        if fresh.version == 0
            && let Some(old) = slot.as_ref().filter(|old| old.version > 0)
        {
            return Err(Error::Storage(format!("the registry is missing or empty; still serving the last good state (version {}); run `almanac apply` to write it again", old.version)));
        }
        let changed = slot.as_ref().is_none_or(|old| old.version != fresh.version || old.watermarks != fresh.watermarks);
        *slot = Some(fresh);
        Ok(changed)
    }

    /// The registry as it is on disk now (reloaded for serving too), or
    /// [`Error::NotApplied`]: what checks such as parity and monitoring
    /// start from, since they must see the latest watermarks.
    pub(crate) fn fresh_applied_state(&self) -> Result<Arc<RegistryState>, Error> {
        self.refresh()?;
        let state = self.serving_state()?;
        if state.version == 0 {
            return Err(Error::NotApplied);
        }
        Ok(state)
    }

    /// Latest feature values for entities (DESIGN §3), with a status and
    /// event time per value; TTLs are enforced against `now`. `entities`
    /// holds one column per join key (see [`crate::online::entity_batch`]
    /// to build it from plain values).
    pub fn get_online_features(&self, selection: &FeatureSelection, entities: &RecordBatch, full_feature_names: bool) -> Result<OnlineResponse, Error> {
        let now = Utc::now().timestamp_micros();
        self.get_online_features_at(selection, entities, full_feature_names, now)
    }

    /// [`FeatureStore::get_online_features`] as of an explicit instant (µs).
    pub fn get_online_features_at(&self, selection: &FeatureSelection, entities: &RecordBatch, full_feature_names: bool, now_micros: i64) -> Result<OnlineResponse, Error> {
        let state = self.serving_state()?;
        let plan = self.plans.get_or_plan(&state, selection, full_feature_names)?;
        plan.execute(self.online_store()?.as_ref(), entities, now_micros)
    }

    /// The registered dtype of a join key (for parsing CLI values).
    pub fn join_key_dtype(&self, key: &str) -> Result<almanac_core::DType, Error> {
        let state = self.serving_state()?;
        let found = state.definitions.entities.iter().flat_map(|e| &e.join_keys).find(|k| k.name == key);
        match found {
            Some(k) => Ok(k.dtype.clone().unwrap_or(almanac_core::DType::Int64)),
            None => {
                let names: Vec<&str> = state.definitions.entities.iter().flat_map(|e| e.join_keys.iter().map(|k| k.name.as_str())).collect();
                let help = almanac_core::suggest::closest(key, names.iter().copied()).map(|b| format!("did you mean `{b}`?"));
                Err(Error::Unknown { what: "join key", name: key.to_string(), help })
            }
        }
    }

    /// Materialize online views (DESIGN §3): the winner per entity in the
    /// window, written keep-if-newer; watermarks advance after success.
    pub fn materialize(&self, request: &MaterializeRequest, progress: &dyn Progress) -> Result<Vec<ViewReport>, Error> {
        let state = self.registry_state()?;
        let job = materialize::Job {
            root: &self.root,
            state: &state,
            offline: self.offline()?,
            online: self.online_store()?.as_ref(),
            registry: self.registry.as_ref(),
            project: &self.config.project,
        };
        let reports = job.run(request, progress);
        // Watermarks moved: later reads see the new registry state.
        let _ = self.refresh();
        reports
    }

    /// Forget the watermarks of `views` (every online view when `None`), so
    /// the next `materialize-incremental` starts again from `end - ttl` (or
    /// the beginning): the way out of a watermark set too far ahead. Online
    /// records are kept (keep-if-newer still protects them). Returns each
    /// view with the watermark it had.
    pub fn reset_watermarks(&self, views: Option<&[String]>) -> Result<Vec<WatermarkReset>, Error> {
        let state = self.registry_state()?;
        if state.version == 0 {
            return Err(Error::NotApplied);
        }
        let names = materialize::selected_views(&state, views)?;
        let mut before = Vec::new();
        self.registry.update(&self.config.project, &mut |current| {
            before = names.iter().map(|name| (name.clone(), current.watermarks.get(name).copied())).collect();
            let mut next = current.clone();
            for name in &names {
                next.watermarks.remove(name);
            }
            Some(next)
        })?;
        let _ = self.refresh();
        Ok(before)
    }

    /// Write pushed rows to the online store, the offline history, or both
    /// (see [`crate::push`]). Columns are cast to the declared dtypes.
    pub fn push(&self, push_source: &str, rows: &RecordBatch, to: crate::push::PushTo) -> Result<crate::push::PushReport, Error> {
        let state = self.serving_state()?;
        let push = crate::push::Push { root: &self.root, state: &state, online: self.online_store()?.as_ref(), range: self.config.timestamp_range, schemas: &self.push_schemas };
        push.run(push_source, rows, to)
    }

    /// [`FeatureStore::push`] with a named offline file, to the online
    /// store and the offline history (a stream's micro-batch, DESIGN §10).
    pub fn push_named(&self, push_source: &str, rows: &RecordBatch, file_name: &str) -> Result<crate::push::PushReport, Error> {
        let state = self.serving_state()?;
        let push = crate::push::Push { root: &self.root, state: &state, online: self.online_store()?.as_ref(), range: self.config.timestamp_range, schemas: &self.push_schemas };
        push.run_named(push_source, rows, crate::push::PushTo::OnlineAndOffline, Some(file_name))
    }

    /// Every column a push source's rows may carry: [`FeatureStore::push_columns`]
    /// plus the batch source files' other columns (optional), which a
    /// stream's events may carry and the offline history keeps.
    pub fn push_columns_with_extras(&self, push_source: &str) -> Result<Vec<crate::push::PushColumn>, Error> {
        let state = self.serving_state()?;
        let push = crate::push::Push { root: &self.root, state: &state, online: self.online_store()?.as_ref(), range: self.config.timestamp_range, schemas: &self.push_schemas };
        push.columns(push_source)
    }

    /// Bring the online store back in line with the offline history for
    /// the events of `push_source` with event time in `[from, end]` (µs):
    /// each online view bound to it gets its entities' latest values and
    /// aggregation states recomputed from the history, written keep-if-newer.
    /// A stream calls this after a crash between writing a micro-batch's
    /// file and finishing its online writes: recomputing is idempotent where
    /// re-merging the events would count them twice.
    pub fn restore_online(&self, push_source: &str, from_micros: i64, end_micros: i64) -> Result<WriteStats, Error> {
        let state = self.serving_state()?;
        let online = self.online_store()?.as_ref();
        let offline = self.offline()?;
        let range = TimeRange { start: Some(from_micros.saturating_mul(1_000)), end: Some(end_micros.saturating_mul(1_000)) };
        let mut stats = WriteStats::default();
        for view in state.definitions.feature_views.iter().filter(|v| v.source == push_source && v.online) {
            let mut request = resolve::view_request(&state.definitions, &view.name)?;
            request.features = request.view.schema.clone();
            if view.is_aggregation() {
                let (states, _) = offline.aggregation_states(&request, range)?;
                stats += crate::materialize::write_rows(online, &view.name, &RecordCodec::new(&almanac_aggregate::state_schema(view)), &states)?;
            } else {
                let (winners, _) = offline.latest_per_entity(&request, range)?;
                stats += crate::materialize::write_rows(online, &view.name, &RecordCodec::new(&view.schema), &winners)?;
            }
        }
        Ok(stats)
    }

    /// The columns a push source takes, with their dtypes and whether each
    /// is required: what an edge (the server's JSON, the SDK) converts
    /// loosely typed input to before calling [`FeatureStore::push`].
    pub fn push_columns(&self, push_source: &str) -> Result<Vec<crate::push::PushColumn>, Error> {
        let state = self.serving_state()?;
        crate::push::columns_of(&state, push_source)
    }

    /// What the connected online store can do, or `None` before it is
    /// connected (asking must never block a caller on a connection attempt,
    /// so the server treats "not connected yet" as "may block").
    pub fn online_capabilities(&self) -> Option<almanac_online::Capabilities> {
        self.online.get().map(|store| store.capabilities())
    }

    /// The registry's file, for watching it (the embedded registry).
    pub fn registry_file(&self) -> Option<PathBuf> {
        match &self.config.registry {
            RegistryConfig::File { path } => Some(self.root.join(path)),
            RegistryConfig::Postgres { .. } => None,
        }
    }

    pub(crate) fn offline(&self) -> Result<&dyn OfflineStore, Error> {
        if let Some(store) = self.offline.get() {
            return Ok(store.as_ref());
        }
        let store: Box<dyn OfflineStore> = match &self.config.offline {
            OfflineConfig::Embedded => Box::new(EmbeddedOfflineStore::new(&self.root)?),
            OfflineConfig::Postgres { url } => Box::new(almanac_postgres::PostgresOfflineStore::new(url)),
            OfflineConfig::Spark { master, python } => Box::new(almanac_spark::SparkOfflineStore::new(&self.root, master, python.as_deref())),
        };
        Ok(self.offline.get_or_init(|| store).as_ref())
    }

    /// A point-in-time-correct training set (DESIGN §2): one row per entity
    /// row, in input order, input columns unchanged, then the requested
    /// features in request order.
    pub fn get_historical_features(&self, entities: &RecordBatch, selection: &FeatureSelection, options: &HistoricalOptions) -> Result<RecordBatch, Error> {
        let mut batches = Vec::new();
        self.historical_streamed(entities, selection, options, &mut |batch| {
            batches.push(batch);
            Ok(())
        })?;
        match <[_; 1]>::try_from(batches) {
            Ok([batch]) => Ok(batch),
            Err(batches) => {
                let schema = batches.first().map(|b| b.schema()).ok_or_else(|| Error::Internal("the training set had no batch".into()))?;
                Ok(arrow::compute::concat_batches(&schema, &batches)?)
            }
        }
    }

    /// The same training set handed to `sink` batch by batch, in input
    /// order, at least once. With a pushdown engine neither the entity
    /// table nor the result is held whole (the CLI writes each batch as it
    /// comes); the embedded engine joins in memory and hands over one batch.
    pub fn historical_streamed(
        &self,
        entities: &dyn EntityTable,
        selection: &FeatureSelection,
        options: &HistoricalOptions,
        sink: &mut (dyn FnMut(RecordBatch) -> Result<(), Error> + Send),
    ) -> Result<(), Error> {
        let state = self.registry_state()?;
        let resolved = resolve::resolve(&state, selection)?;
        let inputs = entities.schema().fields().len();
        // The engine's sink speaks OfflineError; an error of ours (or the
        // caller's) is kept here and returned as it was.
        let mut failed: Option<Error> = None;
        let mut forward = |result: Result<(), Error>| {
            result.map_err(|error| {
                failed = Some(error);
                almanac_offline::OfflineError::Internal("stopped by the training set's consumer".into())
            })
        };
        let joined = if resolved.on_demand.is_empty() {
            self.offline()?.historical_streamed(entities, &resolved.views, options, &mut |joined| forward(reorder_features(&joined, inputs, &resolved).and_then(&mut *sink)))
        } else {
            // Join with full names: inputs that were not requested must not
            // clash with the entity table or with each other.
            let internal = HistoricalOptions { full_feature_names: true, ..options.clone() };
            let compiled = resolved.on_demand.iter().map(|odfv| compile_on_demand(odfv, &state)).collect::<Result<Vec<_>, _>>()?;
            let views = join_only_what_is_read(&resolved, &compiled);
            self.offline()?.historical_streamed(entities, &views, &internal, &mut |joined| forward(with_on_demand(&joined, inputs, &resolved, &compiled, options).and_then(&mut *sink)))
        };
        match failed {
            Some(error) => Err(error),
            None => Ok(joined?),
        }
    }

    /// The request fields the selection's on-demand views need, with their
    /// dtypes (a CLI parses `--request` values with them).
    pub fn request_fields(&self, selection: &FeatureSelection) -> Result<Vec<(String, almanac_core::DType)>, Error> {
        let state = self.serving_state()?;
        let plan = self.plans.get_or_plan(&state, selection, false)?;
        Ok(plan.request_fields().into_iter().map(|(name, dtype)| (name.to_string(), dtype.clone())).collect())
    }

    /// The rows of one view in a time range, or the latest row per entity.
    pub fn export(&self, view: &str, range: TimeRange, latest: bool) -> Result<RecordBatch, Error> {
        let state = self.registry_state()?;
        if state.version == 0 {
            return Err(Error::NotApplied);
        }
        let mut request = resolve::view_request(&state.definitions, view)?;
        if request.view.is_aggregation() {
            return Err(Error::BadRequest(format!("`{view}` is an aggregation view: its features exist at an instant, not as rows; build a training set (`almanac historical`) at the instants you need")));
        }
        request.features = request.view.schema.clone();
        Ok(self.offline()?.export(&request, range, latest)?.into_batch())
    }
}

/// An on-demand view compiled from the applied definitions (which compiled
/// at apply, so a failure here is a bug, not the user's mistake).
pub(crate) fn compile_on_demand(odfv: &almanac_core::OnDemandFeatureView, state: &RegistryState) -> Result<almanac_transform::CompiledView, Error> {
    almanac_transform::compile(odfv, &state.definitions).map_err(|errors| Error::Internal(format!("on-demand view `{}` no longer compiles: {}", odfv.name, errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))))
}

/// The views to join for a training set with on-demand features: each
/// with its requested features plus those an expression reads (not the
/// whole input view: a column nobody reads costs the join time and memory).
fn join_only_what_is_read(resolved: &resolve::Resolved, compiled: &[almanac_transform::CompiledView]) -> Vec<almanac_offline::ViewRequest> {
    resolved
        .views
        .iter()
        .map(|request| {
            let name = &request.view.name;
            let read = |feature: &str| {
                resolved.order.iter().any(|(v, f)| v == name && f == feature) || compiled.iter().any(|c| c.inputs.iter().any(|i| !i.from_request && i.source == *name && i.name == feature))
            };
            let features: Vec<almanac_core::Field> = request.features.iter().filter(|f| read(&f.name)).cloned().collect();
            // An input view none of whose features is read still bounds
            // nothing; keep it whole rather than join an empty view.
            if features.is_empty() { request.clone() } else { almanac_offline::ViewRequest { features, ..request.clone() } }
        })
        .collect()
}

/// A request field's column of the entity table, as its declared dtype.
fn request_column(entities: &RecordBatch, name: &str, dtype: &almanac_core::DType, view: &str) -> Result<ArrayRef, Error> {
    let column = entities.column_by_name(name).ok_or_else(|| {
        let available: Vec<&str> = entities.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
        Error::BadRequest(format!("the entity table has no column `{name}` ({dtype}), a request field of on-demand view `{view}`; offline, request fields are columns of the entity table (it has: {})", available.join(", ")))
    })?;
    crate::online::request_values(column, name, dtype)
}

/// A batch of the training set with on-demand features (DESIGN §2.8):
/// `joined` holds the entity batch's `inputs` columns, then the stored
/// features under full names (requested ones and the on-demand views'
/// inputs); the same compiled expressions the online path runs are
/// evaluated over its rows, request fields being columns of the entity
/// table.
fn with_on_demand(joined: &RecordBatch, inputs: usize, resolved: &resolve::Resolved, compiled_views: &[almanac_transform::CompiledView], options: &HistoricalOptions) -> Result<RecordBatch, Error> {
    let entities = joined.project(&(0..inputs).collect::<Vec<_>>())?;
    let rows = joined.num_rows();
    let stored = |view: &str, feature: &str| -> Result<ArrayRef, Error> {
        let name = format!("{view}__{feature}");
        joined.column_by_name(&name).cloned().ok_or_else(|| Error::Internal(format!("the join did not return `{name}`")))
    };
    let mut computed: Vec<((String, String), ArrayRef)> = Vec::new();
    for (odfv, compiled) in resolved.on_demand.iter().zip(compiled_views) {
        let mut columns = Vec::with_capacity(compiled.inputs.len());
        for input in &compiled.inputs {
            columns.push(if input.from_request {
                request_column(&entities, &input.name, &input.dtype, &odfv.name)?
            } else {
                stored(&input.source, &input.name)?
            });
        }
        let wanted: Vec<(usize, &str)> = resolved.order.iter().filter(|(view, _)| *view == odfv.name).filter_map(|(_, feature)| compiled.features().position(|(name, _)| name == feature).map(|i| (i, feature.as_str()))).collect();
        let batch = compiled.input_batch(columns, rows)?;
        let evaluated = compiled.evaluate(&batch, &wanted.iter().map(|(i, _)| *i).collect::<Vec<_>>())?;
        if evaluated.failed_rows > 0 {
            crate::online::ON_DEMAND_FAILED_ROWS.fetch_add(evaluated.failed_rows as u64, std::sync::atomic::Ordering::Relaxed);
        }
        for ((_, feature), array) in wanted.iter().zip(evaluated.columns) {
            computed.push(((odfv.name.clone(), feature.to_string()), array));
        }
    }
    let mut fields: Vec<arrow::datatypes::Field> = entities.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = entities.columns().to_vec();
    let mut named: Vec<(String, String)> = Vec::new();
    for (view, feature) in &resolved.order {
        let name = if options.full_feature_names { format!("{view}__{feature}") } else { feature.clone() };
        if let Some((_, first)) = named.iter().find(|(n, _)| *n == name) {
            return Err(Error::Offline(almanac_offline::OfflineError::NameClash { name, first: first.clone(), second: view.clone() }));
        }
        if entities.schema().field_with_name(&name).is_ok() {
            return Err(Error::Offline(almanac_offline::OfflineError::ClashWithInput { name }));
        }
        let array = match computed.iter().find(|((v, f), _)| v == view && f == feature) {
            Some((_, array)) => array.clone(),
            None => stored(view, feature)?,
        };
        fields.push(arrow::datatypes::Field::new(&name, array.data_type().clone(), true));
        columns.push(array);
        named.push((name, view.clone()));
    }
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(Arc::new(arrow::datatypes::Schema::new(fields)), columns, &options)?)
}

/// The offline engine returns features grouped by view; put them back in the
/// order they were requested.
fn reorder_features(joined: &RecordBatch, inputs: usize, resolved: &resolve::Resolved) -> Result<RecordBatch, Error> {
    let mut grouped = Vec::new();
    for request in &resolved.views {
        for field in &request.features {
            grouped.push((request.view.name.as_str(), field.name.as_str()));
        }
    }
    let mut indices: Vec<usize> = (0..inputs).collect();
    for (view, feature) in &resolved.order {
        // `resolved.views` was built from `resolved.order`: every pair is there.
        let position = grouped.iter().position(|(v, f)| v == view && f == feature).ok_or_else(|| Error::Internal(format!("feature `{view}:{feature}` is missing from the joined result")))?;
        indices.push(inputs + position);
    }
    Ok(joined.project(&indices)?)
}
