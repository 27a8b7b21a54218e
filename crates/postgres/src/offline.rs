//! The PostgreSQL offline store: sources are tables or queries, and every
//! question (training sets, materialization, exports) is answered by SQL
//! from the one planner, run inside the database.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use almanac_core::convert::conform;
use almanac_core::{DType, Source};
use almanac_offline::request::{PreparedRequest, assemble, distinct_join_keys, prepare};
use almanac_offline::{BatchSink, EntityTable, HistoricalOptions, OfflineError, OfflineStore, TimeRange, ViewRequest, ViewRows, report_stage};
use almanac_sql::{Dialect, PointInTime, Relation, ViewPlan};
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{Field as ArrowField, Int64Type, Schema, SchemaRef};
use postgres::{Client, GenericClient};
use postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutIter};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};

use crate::client::{connect, describe, outside_runtime};
use crate::types::{Cell, ColumnBuilder, arrow_type, micros_to_time, wire_type};

const ENGINE: &str = "PostgreSQL";

/// Memory a training-set query may sort and hash in before spilling to
/// temporary files (per sort or hash node, this transaction only): a
/// scale-1 view's instants (6M rows) then sort in memory. JIT is off for
/// the same transaction: compiling the plan costs more than it saves here.
const SESSION: &str = "SET LOCAL work_mem = '512MB'; SET LOCAL jit = off";

pub struct PostgresOfflineStore {
    url: String,
    /// One session, connected on first use and reused (a training set's
    /// temporary table lives in its transaction only).
    client: Mutex<Option<Client>>,
}

fn engine_error(error: &postgres::Error) -> OfflineError {
    OfflineError::Engine { engine: ENGINE, reason: describe(error) }
}

fn sql_error(error: almanac_sql::SqlError) -> OfflineError {
    OfflineError::Unsupported(error.to_string())
}

/// A source as the planner names it: its table or its query.
pub(crate) fn relation(source: &Source) -> Result<Relation, OfflineError> {
    match (&source.table, &source.query) {
        (Some(table), _) => Ok(Relation::Table(table.clone())),
        (None, Some(query)) => Ok(Relation::Query(query.clone())),
        (None, None) => Err(OfflineError::Unsupported(format!(
            "source `{}` is files (`path: {}`), but the offline store is PostgreSQL; give it `table:` or `query:`",
            source.name, source.path
        ))),
    }
}

fn view_plan(request: &ViewRequest) -> Result<ViewPlan, OfflineError> {
    let keys: Vec<_> = request.join_keys.iter().map(|(_, key)| key.clone()).collect();
    Ok(ViewPlan::new(&request.view, &request.source, relation(&request.source)?, &keys, &request.features))
}

/// A unique temporary table name per training set in this process.
fn entity_table_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("almanac_entities_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

impl PostgresOfflineStore {
    /// A store for the database at `url`; nothing is connected until used.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresOfflineStore { url: url.into(), client: Mutex::new(None) }
    }

    /// Run `work` on the session (connecting first if needed). A session
    /// that failed mid-way is dropped, so the next call starts clean.
    fn with_client<T: Send>(&self, work: impl FnOnce(&mut Client) -> Result<T, OfflineError> + Send) -> Result<T, OfflineError> {
        let mut slot = self.client.lock().map_err(|_| OfflineError::Internal("the PostgreSQL session lock is poisoned".into()))?;
        if slot.is_none() {
            *slot = Some(connect(&self.url).map_err(|e| OfflineError::Engine { engine: ENGINE, reason: e.to_string() })?);
        }
        let client = slot.as_mut().ok_or_else(|| OfflineError::Internal("no PostgreSQL session".into()))?;
        let result = outside_runtime(|| work(client));
        if result.is_err() {
            *slot = None;
        }
        result
    }

    /// The columns of a source's table or query, as Arrow types (no rows read).
    pub fn source_schema(&self, source: &Source) -> Result<SchemaRef, OfflineError> {
        let sql = match relation(source)? {
            Relation::Table(name) => format!("SELECT * FROM {}", Dialect::Postgres.table(&name)),
            Relation::Query(query) => format!("SELECT * FROM ({}) AS s", query.trim().trim_end_matches(';')),
        };
        self.with_client(|client| {
            let statement = client.prepare(&sql).map_err(|e| OfflineError::Engine { engine: ENGINE, reason: format!("source `{}`: {}", source.name, describe(&e)) })?;
            let fields = statement
                .columns()
                .iter()
                .map(|column| match arrow_type(column.type_()) {
                    Some(data_type) => Ok(ArrowField::new(column.name(), data_type, true)),
                    None => Err(OfflineError::Unsupported(format!(
                        "column `{}` of source `{}` is PostgreSQL `{}`, which Almanac cannot read; cast it in a `query:` (e.g. to bigint, double precision, text or timestamptz)",
                        column.name(),
                        source.name,
                        column.type_().name()
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(std::sync::Arc::new(Schema::new(fields)))
        })
    }
}

/// The join-key columns every view needs, each once by name (views of one
/// entity share its column): what is shipped beside the row number and the
/// as-of instant, in the order [`PreparedRequest::distinct_keys`] gives them.
fn shipped_keys(views: &[ViewRequest]) -> Vec<(String, DType)> {
    distinct_join_keys(views).into_iter().map(|key| (key.name.clone(), key.dtype.clone().unwrap_or(DType::Int64))).collect()
}

/// The shipped entity table: row number, as-of instant (µs, UTC) and the
/// join-key columns; label columns of any type stay here and are put back
/// beside the features.
struct Shipment {
    table: String,
    keys: Vec<(String, DType)>,
}

impl Shipment {
    fn create_table(&self) -> String {
        let q = |n: &str| Dialect::Postgres.quote(n);
        let mut columns = vec![format!("{} BIGINT NOT NULL", q(almanac_sql::plan::ROW)), format!("{} TIMESTAMPTZ", q(almanac_sql::plan::AT))];
        columns.extend(self.keys.iter().map(|(key, dtype)| format!("{} {}", q(key), if *dtype == DType::String { "TEXT" } else { "BIGINT" })));
        format!("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP", q(&self.table), columns.join(", "))
    }

    fn types(&self) -> Vec<Type> {
        let mut types = vec![Type::INT8, Type::TIMESTAMPTZ];
        types.extend(self.keys.iter().map(|(_, dtype)| if *dtype == DType::String { Type::TEXT } else { Type::INT8 }));
        types
    }

    /// Stream every entity row, batch by batch, into `COPY ... FROM STDIN
    /// (FORMAT binary)`, each batch checked as the embedded engine checks a
    /// table. Returns the output names and the number of rows shipped.
    fn copy_in(
        &self,
        client: &mut impl GenericClient,
        entities: &dyn EntityTable,
        views: &[ViewRequest],
        options: &HistoricalOptions,
        on_batch: &mut dyn FnMut(&PreparedRequest) -> Result<(), OfflineError>,
    ) -> Result<(Vec<String>, usize), OfflineError> {
        let sink = client.copy_in(&format!("COPY {} FROM STDIN (FORMAT binary)", Dialect::Postgres.quote(&self.table))).map_err(|e| engine_error(&e))?;
        let mut writer = BinaryCopyInWriter::new(sink, &self.types());
        let mut names = Vec::new();
        let mut shipped = 0usize;
        for batch in entities.batches()? {
            let prepared = prepare(&batch?, views, options)?;
            let keys: Vec<&ArrayRef> = prepared.distinct_keys(views).into_iter().map(|(_, column)| column).collect();
            let strings: Vec<Option<&arrow::array::StringArray>> = keys.iter().map(|array| array.as_string_opt::<i32>()).collect();
            let ints: Vec<Option<&Int64Array>> = keys.iter().map(|array| array.as_primitive_opt::<Int64Type>()).collect();
            let mut cells: Vec<Cell> = Vec::with_capacity(keys.len());
            for (row, at) in prepared.at_micros().into_iter().enumerate() {
                cells.clear();
                for (strings, ints) in strings.iter().zip(&ints) {
                    cells.push(match (strings, ints) {
                        (Some(s), _) if s.is_valid(row) => Cell::Text(s.value(row)),
                        (None, Some(i)) if i.is_valid(row) => Cell::Int64(i.value(row)),
                        _ => Cell::Null,
                    });
                }
                let row_number = (shipped + row) as i64;
                let at = at.map(micros_to_time);
                let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(2 + cells.len());
                values.push(&row_number);
                values.push(&at);
                values.extend(cells.iter().map(|c| c as &(dyn ToSql + Sync)));
                writer.write(&values).map_err(|e| engine_error(&e))?;
            }
            shipped += prepared.at_nanos.len();
            on_batch(&prepared)?;
            names = prepared.names;
        }
        writer.finish().map_err(|e| engine_error(&e))?;
        Ok((names, shipped))
    }
}

/// A query's rows arriving under `COPY (...) TO STDOUT (FORMAT binary)`,
/// decoded into Arrow arrays `n` rows at a time.
struct RowStream<'a> {
    rows: BinaryCopyOutIter<'a>,
    builders: Vec<ColumnBuilder>,
}

impl<'a> RowStream<'a> {
    fn open(client: &'a mut impl GenericClient, sql: &str, dtypes: &[DType]) -> Result<Self, OfflineError> {
        let unsupported = |d: &DType| OfflineError::Unsupported(format!("{d} values cannot be read from PostgreSQL"));
        let types = dtypes.iter().map(|d| wire_type(d).ok_or_else(|| unsupported(d))).collect::<Result<Vec<_>, _>>()?;
        let builders = dtypes.iter().map(|d| ColumnBuilder::new(d).ok_or_else(|| unsupported(d))).collect::<Result<Vec<_>, _>>()?;
        let reader = client.copy_out(&format!("COPY (\n{sql}\n) TO STDOUT (FORMAT binary)")).map_err(|e| engine_error(&e))?;
        Ok(RowStream { rows: BinaryCopyOutIter::new(reader, &types), builders })
    }

    /// The next `n` rows (fewer only at the end), one array per column.
    fn next_rows(&mut self, n: usize) -> Result<Vec<ArrayRef>, OfflineError> {
        for _ in 0..n {
            let Some(row) = self.rows.next().map_err(|e| engine_error(&e))? else { break };
            for (index, builder) in self.builders.iter_mut().enumerate() {
                builder.push(&row, index).map_err(|e| engine_error(&e))?;
            }
        }
        Ok(self.builders.iter_mut().map(ColumnBuilder::finish).collect())
    }

    fn all_rows(mut self) -> Result<Vec<ArrayRef>, OfflineError> {
        self.next_rows(usize::MAX)
    }
}

/// Run `sql` under `COPY (...) TO STDOUT (FORMAT binary)` and decode its
/// columns (of `dtypes`) into Arrow arrays as the rows stream in.
fn copy_out(client: &mut impl GenericClient, sql: &str, dtypes: &[DType]) -> Result<Vec<ArrayRef>, OfflineError> {
    RowStream::open(client, sql, dtypes)?.all_rows()
}

/// One entity batch's features of the joined views from the result
/// stream: exactly its rows, checked to be rows `first..first + n` (the
/// query orders by row number), each view's columns cast to their dtypes.
fn features_of_batch(stream: &mut RowStream, first: usize, n: usize, joined: &[&ViewRequest]) -> Result<Vec<Vec<ArrayRef>>, OfflineError> {
    let mut columns = stream.next_rows(n)?.into_iter();
    let rows = columns.next().ok_or_else(|| OfflineError::Internal("the result has no row-number column".into()))?;
    let rows = rows.as_primitive::<Int64Type>();
    if rows.len() != n || rows.null_count() > 0 || rows.values().iter().enumerate().any(|(i, row)| *row != (first + i) as i64) {
        return Err(OfflineError::Internal(format!("PostgreSQL returned the rows after row {first} out of order or incomplete ({} of {n})", rows.len())));
    }
    let mut per_view = Vec::with_capacity(joined.len());
    for request in joined {
        let arrays = columns.by_ref().take(request.features.len()).zip(&request.features).map(|(array, field)| Ok(conform(&array, &field.dtype)?)).collect::<Result<Vec<_>, OfflineError>>()?;
        per_view.push(arrays);
    }
    Ok(per_view)
}

/// An aggregation view's probes, gathered while the entity table is
/// shipped: every row's join keys and as-of instant (ns). The view's events
/// come back whole from [`almanac_sql::window_events`], so its windows are
/// computed once for all rows, then handed out batch by batch: unlike a
/// joined view's features, these are held for the whole table (8 bytes per
/// row and feature, plus the keys).
struct AggregationProbes {
    /// The view's position in the request.
    view: usize,
    keys: Vec<Vec<ArrayRef>>,
    at: Vec<Option<i64>>,
}

impl AggregationProbes {
    fn add(&mut self, prepared: &PreparedRequest) -> Result<(), OfflineError> {
        let keys = prepared.keys.get(self.view).ok_or_else(|| OfflineError::Internal(format!("no join keys were prepared for view {}", self.view)))?;
        self.keys.push(keys.clone());
        self.at.extend_from_slice(&prepared.at_nanos);
        Ok(())
    }

    /// Every row's aggregates, from the view's events selected in the
    /// database (laid out as `event_columns`, in scan order).
    fn aggregates(self, client: &mut impl GenericClient, request: &ViewRequest, entities: &str) -> Result<Vec<ArrayRef>, OfflineError> {
        let sql = almanac_sql::window_events(&view_plan(request)?, entities, Dialect::Postgres).map_err(sql_error)?;
        let events = events_batch(client, &sql, request)?;
        let keys = (0..request.join_keys.len())
            .map(|k| {
                let parts = self.keys.iter().map(|batch| batch.get(k).map(|c| c.as_ref())).collect::<Option<Vec<&dyn Array>>>();
                let parts = parts.ok_or_else(|| OfflineError::Internal(format!("join key {k} of `{}` is missing from a batch", request.view.name)))?;
                Ok(arrow::compute::concat(&parts)?)
            })
            .collect::<Result<Vec<_>, OfflineError>>()?;
        almanac_offline::historical::aggregates_from_events(request, vec![events], &keys, &self.at)
    }
}

/// Run an events query (`window_events`, `events_in_range`) and name its
/// columns as the source does, for the offline crate's history.
///
/// Scan order is what tells apart events with one event time (for `last`),
/// so the query runs with no parallel workers (a `Gather` interleaves their
/// rows) and no synchronized scans (which start mid-table): a table is then
/// read from its first page on, in the order its rows were loaded. Must run
/// inside a transaction (the settings are `SET LOCAL`, undone after).
fn events_batch(client: &mut impl GenericClient, sql: &str, request: &ViewRequest) -> Result<RecordBatch, OfflineError> {
    let layout = almanac_offline::historical::event_columns(request);
    let dtypes: Vec<DType> = layout.iter().map(|(_, dtype)| dtype.clone()).collect();
    client.batch_execute("SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL synchronize_seqscans = off").map_err(|e| engine_error(&e))?;
    let columns = copy_out(client, sql, &dtypes)?;
    client.batch_execute("SET LOCAL max_parallel_workers_per_gather TO DEFAULT; SET LOCAL synchronize_seqscans TO DEFAULT").map_err(|e| engine_error(&e))?;
    almanac_offline::historical::event_batch(request, columns)
}

impl OfflineStore for PostgresOfflineStore {
    fn get_historical_features(&self, entities: &RecordBatch, views: &[ViewRequest], options: &HistoricalOptions) -> Result<RecordBatch, OfflineError> {
        let mut batches = Vec::new();
        self.historical_streamed(entities, views, options, &mut |batch| {
            batches.push(batch);
            Ok(())
        })?;
        let schema = batches.first().map(|b| b.schema()).ok_or_else(|| OfflineError::Internal("the training set had no batch".into()))?;
        Ok(arrow::compute::concat_batches(&schema, &batches)?)
    }

    /// Ship the entity table in batches, run the staged statements, then
    /// read the result (ordered by row number) batch by batch, reading the
    /// entity table a second time to put each batch's input columns back:
    /// neither the table nor the result is ever held whole.
    fn historical_streamed(&self, entities: &dyn EntityTable, views: &[ViewRequest], options: &HistoricalOptions, sink: &mut BatchSink<'_>) -> Result<(), OfflineError> {
        let shipment = Shipment { table: entity_table_name(), keys: shipped_keys(views) };
        // Views with a schema are joined by the staged point-in-time SQL;
        // aggregation views are windowed over their selected events.
        let joined: Vec<&ViewRequest> = views.iter().filter(|v| !v.view.is_aggregation()).collect();
        let plan = PointInTime { entities: shipment.table.clone(), views: joined.iter().map(|v| view_plan(v)).collect::<Result<_, _>>()? };
        let (setup, sql) = almanac_sql::point_in_time_staged(&plan, Dialect::Postgres).map_err(sql_error)?;
        let mut dtypes = vec![DType::Int64];
        dtypes.extend(joined.iter().flat_map(|v| v.features.iter().map(|f| f.dtype.clone())));
        let mut probes: Vec<AggregationProbes> = views.iter().enumerate().filter(|(_, v)| v.view.is_aggregation()).map(|(view, _)| AggregationProbes { view, keys: Vec::new(), at: Vec::new() }).collect();
        self.with_client(|client| {
            let mut transaction = client.transaction().map_err(|e| engine_error(&e))?;
            transaction.batch_execute(&format!("{}; {SESSION}", shipment.create_table())).map_err(|e| engine_error(&e))?;
            let started = std::time::Instant::now();
            let (names, shipped) = shipment.copy_in(&mut transaction, entities, views, options, &mut |prepared| {
                probes.iter_mut().try_for_each(|p| p.add(prepared))
            })?;
            // The planner needs the shipped table's size and key spread.
            transaction.batch_execute(&format!("ANALYZE {}", Dialect::Postgres.quote(&shipment.table))).map_err(|e| engine_error(&e))?;
            report_stage("postgres: ship entity table (COPY)", started);
            let started = std::time::Instant::now();
            let mut windowed: Vec<(usize, Vec<ArrayRef>)> = Vec::with_capacity(probes.len());
            for probe in probes {
                let view = probe.view;
                windowed.push((view, probe.aggregates(&mut transaction, &views[view], &shipment.table)?));
            }
            report_stage("postgres: aggregation views (events selected, windows computed here)", started);
            let started = std::time::Instant::now();
            for statement in &setup {
                transaction.batch_execute(statement).map_err(|e| engine_error(&e))?;
            }
            report_stage("postgres: winning instants (window sweep)", started);
            let started = std::time::Instant::now();
            let mut stream = RowStream::open(&mut transaction, &sql, &dtypes)?;
            let mut first = 0usize;
            for batch in entities.batches()? {
                let batch = batch?;
                let n = batch.num_rows();
                let mut from_join = features_of_batch(&mut stream, first, n, &joined)?.into_iter();
                let per_view = (0..views.len())
                    .map(|index| match windowed.iter().find(|(view, _)| *view == index) {
                        Some((_, columns)) => Ok(columns.iter().map(|c| c.slice(first, n)).collect()),
                        None => from_join.next().ok_or_else(|| OfflineError::Internal("a joined view's features are missing".into())),
                    })
                    .collect::<Result<Vec<_>, OfflineError>>()?;
                first += n;
                sink(assemble(&batch, views, names.clone(), per_view)?)?;
            }
            if first != shipped || !stream.next_rows(1)?[0].is_empty() {
                return Err(OfflineError::Internal(format!("the entity table changed while the training set ran ({shipped} rows shipped, {first} read back)")));
            }
            drop(stream);
            report_stage("postgres: winning rows + COPY out", started);
            transaction.commit().map_err(|e| engine_error(&e))?;
            Ok(())
        })
    }

    fn export(&self, request: &ViewRequest, range: TimeRange, latest: bool) -> Result<ViewRows, OfflineError> {
        if latest {
            return Ok(self.latest_per_entity(request, range)?.0);
        }
        let plan = view_plan(request)?;
        let (start, end) = range.to_micros();
        let sql = almanac_sql::export(&plan, start, end, Dialect::Postgres).map_err(sql_error)?;
        let columns = self.with_client(|client| copy_out(client, &sql, &ViewRows::layout_dtypes(request)))?;
        ViewRows::from_columns(request, columns)
    }

    fn latest_per_entity(&self, request: &ViewRequest, range: TimeRange) -> Result<(ViewRows, usize), OfflineError> {
        let plan = view_plan(request)?;
        let (start, end) = range.to_micros();
        let sql = almanac_sql::latest_per_entity(&plan, start, end, Dialect::Postgres).map_err(sql_error)?;
        let mut dtypes = ViewRows::layout_dtypes(request);
        dtypes.push(DType::Int64);
        let mut columns = self.with_client(|client| copy_out(client, &sql, &dtypes))?;
        let held = columns.pop().and_then(|counts| counts.as_primitive_opt::<Int64Type>().and_then(|c| c.iter().flatten().next())).unwrap_or(0);
        Ok((ViewRows::from_columns(request, columns)?, held as usize))
    }

    /// The events of the states' held range, selected in the database; the
    /// states are built from them as from files.
    fn aggregation_states(&self, request: &ViewRequest, range: TimeRange) -> Result<(ViewRows, usize), OfflineError> {
        let (start, end) = almanac_offline::historical::held_range(request, range)?.to_micros();
        let sql = almanac_sql::events_in_range(&view_plan(request)?, start, end, Dialect::Postgres).map_err(sql_error)?;
        let events = self.with_client(|client| {
            let mut transaction = client.transaction().map_err(|e| engine_error(&e))?;
            let events = events_batch(&mut transaction, &sql, request)?;
            transaction.commit().map_err(|e| engine_error(&e))?;
            Ok(events)
        })?;
        almanac_offline::historical::states_from_events(request, vec![events], range)
    }

    fn table_schema(&self, source: &Source) -> Option<Result<SchemaRef, OfflineError>> {
        Some(self.source_schema(source))
    }

    fn explain(&self, views: &[ViewRequest]) -> Option<Result<String, OfflineError>> {
        Some(explain(views))
    }
}

/// The training-set SQL for `views` against the shipped entity table, and
/// the indexes that let PostgreSQL answer it without sorting whole tables.
fn explain(views: &[ViewRequest]) -> Result<String, OfflineError> {
    let entities = "almanac_entities";
    let (aggregations, joined): (Vec<&ViewRequest>, Vec<&ViewRequest>) = views.iter().partition(|v| v.view.is_aggregation());
    let plan = PointInTime { entities: entities.to_string(), views: joined.iter().map(|v| view_plan(v)).collect::<Result<_, _>>()? };
    let (setup, query) = almanac_sql::point_in_time_staged(&plan, Dialect::Postgres).map_err(sql_error)?;
    let mut statements = Vec::new();
    for request in &aggregations {
        let events = almanac_sql::window_events(&view_plan(request)?, entities, Dialect::Postgres).map_err(sql_error)?;
        statements.push(format!("-- aggregation view `{}`: the events its windows can see (Almanac's evaluator computes the windows from them)\n{events}", request.view.name));
    }
    statements.extend(setup);
    statements.push(query);
    let sql = statements.join(";\n\n");
    let q = |name: &str| Dialect::Postgres.quote(name);
    let mut advice = vec![format!("-- Almanac ships the entity table as a temporary table `almanac_entities` (binary COPY) and, in one transaction ({SESSION}), runs these statements, streaming the last one's result back.")];
    // An aggregation view's events are read in scan order (a whole scan):
    // no index serves it, so none is advised.
    for view in &plan.views {
        if let Relation::Table(table) = &view.relation {
            let mut columns: Vec<String> = view.keys.iter().map(|k| q(&k.source)).collect();
            columns.push(q(&view.event_time));
            columns.extend(view.created_time.iter().map(|c| q(c)));
            advice.push(format!("-- index advice for `{}`: CREATE INDEX ON {} ({});", view.name, Dialect::Postgres.table(table), columns.join(", ")));
        }
    }
    Ok(format!("{}
{sql};", advice.join("
")))
}

impl PostgresOfflineStore {
    /// Create table `table` (dropping one of that name) with the columns of
    /// `batches` and copy their rows in with binary `COPY`: how tests,
    /// benchmarks and the demo put a Parquet history into PostgreSQL.
    /// Integers, floats, booleans, text, bytes and timestamps (any unit;
    /// zone-less stays zone-less) are supported.
    pub fn load_table(&self, table: &str, schema: &Schema, batches: &[RecordBatch]) -> Result<u64, OfflineError> {
        let columns = schema.fields().iter().map(|f| Ok((f.name().clone(), load_type(f.data_type()).ok_or_else(|| OfflineError::Unsupported(format!("column `{}` is {}, which load_table does not write", f.name(), f.data_type())))?))).collect::<Result<Vec<_>, OfflineError>>()?;
        let q = |n: &str| Dialect::Postgres.quote(n);
        let name = Dialect::Postgres.table(table);
        let definition = columns.iter().map(|(n, (_, sql))| format!("{} {sql}", q(n))).collect::<Vec<_>>().join(", ");
        let types: Vec<Type> = columns.iter().map(|(_, (ty, _))| ty.clone()).collect();
        self.with_client(|client| {
            let mut transaction = client.transaction().map_err(|e| engine_error(&e))?;
            transaction.batch_execute(&format!("DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ({definition})")).map_err(|e| engine_error(&e))?;
            let sink = transaction.copy_in(&format!("COPY {name} FROM STDIN (FORMAT binary)")).map_err(|e| engine_error(&e))?;
            let mut writer = BinaryCopyInWriter::new(sink, &types);
            let mut rows = 0u64;
            for batch in batches {
                let cells = batch.columns().iter().map(crate::types::Cells::new).collect::<Result<Vec<_>, _>>()?;
                for row in 0..batch.num_rows() {
                    let values: Vec<crate::types::Cell> = cells.iter().map(|c| c.get(row)).collect();
                    let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                    writer.write(&refs).map_err(|e| engine_error(&e))?;
                    rows += 1;
                }
            }
            writer.finish().map_err(|e| engine_error(&e))?;
            transaction.batch_execute(&format!("ANALYZE {name}")).map_err(|e| engine_error(&e))?;
            transaction.commit().map_err(|e| engine_error(&e))?;
            Ok(rows)
        })
    }
}

fn load_type(data_type: &arrow::datatypes::DataType) -> Option<(Type, &'static str)> {
    use arrow::datatypes::DataType as D;
    Some(match data_type {
        D::Boolean => (Type::BOOL, "BOOLEAN"),
        D::Int8 | D::Int16 => (Type::INT2, "SMALLINT"),
        D::Int32 | D::UInt8 | D::UInt16 => (Type::INT4, "INTEGER"),
        D::Int64 | D::UInt32 => (Type::INT8, "BIGINT"),
        D::Float32 => (Type::FLOAT4, "REAL"),
        D::Float64 => (Type::FLOAT8, "DOUBLE PRECISION"),
        D::Utf8 | D::LargeUtf8 | D::Utf8View => (Type::TEXT, "TEXT"),
        D::Binary | D::LargeBinary => (Type::BYTEA, "BYTEA"),
        D::Timestamp(_, None) => (Type::TIMESTAMP, "TIMESTAMP"),
        D::Timestamp(_, Some(_)) => (Type::TIMESTAMPTZ, "TIMESTAMPTZ"),
        _ => return None,
    })
}
