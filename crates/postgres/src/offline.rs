//! The PostgreSQL offline store: sources are tables or queries, and every
//! question (training sets, materialization, exports) is answered by SQL
//! from the one planner, run inside the database.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use almanac_core::convert::conform;
use almanac_core::{DType, Source};
use almanac_offline::request::{PreparedRequest, assemble, in_input_order, prepare};
use almanac_offline::{HistoricalOptions, OfflineError, OfflineStore, TimeRange, ViewRequest, ViewRows, report_stage};
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

/// The shipped entity table: row number, as-of instant (µs, UTC) and the
/// join-key columns every view needs (each once, by name).
struct Shipment {
    at_micros: Vec<Option<i64>>,
    /// `(column, dtype, values)`; values are int64 or string arrays.
    keys: Vec<(String, DType, ArrayRef)>,
}

impl Shipment {
    fn new(views: &[ViewRequest], prepared: &PreparedRequest) -> Self {
        let at_micros = prepared.at_micros();
        let keys = prepared.distinct_keys(views).into_iter().map(|(key, column)| (key.name.clone(), key.dtype.clone().unwrap_or(DType::Int64), column.clone())).collect();
        Shipment { at_micros, keys }
    }

    fn create_table(&self, name: &str) -> String {
        let q = |n: &str| Dialect::Postgres.quote(n);
        let mut columns = vec![format!("{} BIGINT NOT NULL", q(almanac_sql::plan::ROW)), format!("{} TIMESTAMPTZ", q(almanac_sql::plan::AT))];
        columns.extend(self.keys.iter().map(|(key, dtype, _)| format!("{} {}", q(key), if *dtype == DType::String { "TEXT" } else { "BIGINT" })));
        format!("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP", q(name), columns.join(", "))
    }

    fn types(&self) -> Vec<Type> {
        let mut types = vec![Type::INT8, Type::TIMESTAMPTZ];
        types.extend(self.keys.iter().map(|(_, dtype, _)| if *dtype == DType::String { Type::TEXT } else { Type::INT8 }));
        types
    }

    /// Stream every row into `COPY ... FROM STDIN (FORMAT binary)`.
    fn copy_in(&self, client: &mut impl GenericClient, table: &str) -> Result<(), postgres::Error> {
        let sink = client.copy_in(&format!("COPY {} FROM STDIN (FORMAT binary)", Dialect::Postgres.quote(table)))?;
        let mut writer = BinaryCopyInWriter::new(sink, &self.types());
        let strings: Vec<Option<&arrow::array::StringArray>> = self.keys.iter().map(|(_, _, array)| array.as_string_opt::<i32>()).collect();
        let ints: Vec<Option<&Int64Array>> = self.keys.iter().map(|(_, _, array)| array.as_primitive_opt::<Int64Type>()).collect();
        let mut cells: Vec<Cell> = Vec::with_capacity(self.keys.len());
        for (row, at) in self.at_micros.iter().enumerate() {
            cells.clear();
            for (strings, ints) in strings.iter().zip(&ints) {
                cells.push(match (strings, ints) {
                    (Some(s), _) if s.is_valid(row) => Cell::Text(s.value(row)),
                    (None, Some(i)) if i.is_valid(row) => Cell::Int64(i.value(row)),
                    _ => Cell::Null,
                });
            }
            let row_number = row as i64;
            let at = at.map(micros_to_time);
            let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(2 + cells.len());
            values.push(&row_number);
            values.push(&at);
            values.extend(cells.iter().map(|c| c as &(dyn ToSql + Sync)));
            writer.write(&values)?;
        }
        writer.finish()?;
        Ok(())
    }
}

/// Run `sql` under `COPY (...) TO STDOUT (FORMAT binary)` and decode its
/// columns (of `dtypes`) into Arrow arrays as the rows stream in.
fn copy_out(client: &mut impl GenericClient, sql: &str, dtypes: &[DType]) -> Result<Vec<ArrayRef>, OfflineError> {
    let types = dtypes.iter().map(|d| wire_type(d).ok_or_else(|| OfflineError::Unsupported(format!("{d} values cannot be read from PostgreSQL")))).collect::<Result<Vec<_>, _>>()?;
    let mut builders = dtypes.iter().map(|d| ColumnBuilder::new(d).ok_or_else(|| OfflineError::Unsupported(format!("{d} values cannot be read from PostgreSQL")))).collect::<Result<Vec<_>, _>>()?;
    let reader = client.copy_out(&format!("COPY (\n{sql}\n) TO STDOUT (FORMAT binary)")).map_err(|e| engine_error(&e))?;
    let mut rows = BinaryCopyOutIter::new(reader, &types);
    while let Some(row) = rows.next().map_err(|e| engine_error(&e))? {
        for (index, builder) in builders.iter_mut().enumerate() {
            builder.push(&row, index).map_err(|e| engine_error(&e))?;
        }
    }
    Ok(builders.into_iter().map(ColumnBuilder::finish).collect())
}

impl OfflineStore for PostgresOfflineStore {
    fn get_historical_features(&self, entities: &RecordBatch, views: &[ViewRequest], options: &HistoricalOptions) -> Result<RecordBatch, OfflineError> {
        let prepared = prepare(entities, views, options)?;
        let table = entity_table_name();
        let plan = PointInTime { entities: table.clone(), views: views.iter().map(view_plan).collect::<Result<_, _>>()? };
        let (setup, sql) = almanac_sql::point_in_time_staged(&plan, Dialect::Postgres).map_err(sql_error)?;
        let mut dtypes = vec![DType::Int64];
        dtypes.extend(views.iter().flat_map(|v| v.features.iter().map(|f| f.dtype.clone())));
        let shipment = Shipment::new(views, &prepared);
        // Only the output names are needed past this point: the instants and
        // key columns (hundreds of MB at scale 10) go as soon as they are
        // shipped, before the result arrives.
        let PreparedRequest { names, .. } = prepared;
        let columns = self.with_client(|client| {
            let shipment = shipment;
            let mut transaction = client.transaction().map_err(|e| engine_error(&e))?;
            transaction.batch_execute(&format!("{}; {SESSION}", shipment.create_table(&table))).map_err(|e| engine_error(&e))?;
            let started = std::time::Instant::now();
            shipment.copy_in(&mut transaction, &table).map_err(|e| engine_error(&e))?;
            drop(shipment);
            // The planner needs the shipped table's size and key spread.
            transaction.batch_execute(&format!("ANALYZE {}", Dialect::Postgres.quote(&table))).map_err(|e| engine_error(&e))?;
            report_stage("postgres: ship entity table (COPY)", started);
            let started = std::time::Instant::now();
            for statement in &setup {
                transaction.batch_execute(statement).map_err(|e| engine_error(&e))?;
            }
            report_stage("postgres: winning instants (window sweep)", started);
            let started = std::time::Instant::now();
            let columns = copy_out(&mut transaction, &sql, &dtypes)?;
            report_stage("postgres: winning rows + COPY out", started);
            transaction.commit().map_err(|e| engine_error(&e))?;
            Ok(columns)
        })?;
        let rows = columns[0].as_primitive::<Int64Type>().clone();
        let features = in_input_order(&rows, entities.num_rows(), &columns[1..])?;
        let mut per_view = Vec::with_capacity(views.len());
        let mut features = features.into_iter();
        for request in views {
            let arrays = features.by_ref().take(request.features.len()).zip(&request.features).map(|(array, field)| Ok(conform(&array, &field.dtype)?)).collect::<Result<Vec<_>, OfflineError>>()?;
            per_view.push(arrays);
        }
        assemble(entities, views, names, per_view)
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

    fn aggregation_states(&self, request: &ViewRequest, _range: TimeRange) -> Result<(ViewRows, usize), OfflineError> {
        Err(OfflineError::Unsupported(format!(
            "aggregation view `{}` cannot be materialized from PostgreSQL yet; aggregation views need the embedded offline store",
            request.view.name
        )))
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
    let plan = PointInTime { entities: "almanac_entities".to_string(), views: views.iter().map(view_plan).collect::<Result<_, _>>()? };
    let (setup, query) = almanac_sql::point_in_time_staged(&plan, Dialect::Postgres).map_err(sql_error)?;
    let sql = setup.into_iter().chain([query]).collect::<Vec<_>>().join(";\n\n");
    let q = |name: &str| Dialect::Postgres.quote(name);
    let mut advice = vec![format!("-- Almanac ships the entity table as a temporary table `almanac_entities` (binary COPY) and, in one transaction ({SESSION}), runs these statements, streaming the last one's result back.")];
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
