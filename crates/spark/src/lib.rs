//! # almanac-spark
//!
//! The Spark offline store (DESIGN §12): sources are Parquet/CSV paths that
//! a real Spark reads, and the point-in-time join runs inside Spark as the
//! Spark SQL `almanac-sql` renders. Spark is driven through a small managed
//! driver process (`driver/almanac_spark_driver.py`, embedded in the
//! binary): a PySpark session started once per store on first use and
//! spoken to in JSON lines over pipes. The entity table is shipped as a
//! Parquet file (row number, as-of instant, join keys), the result is
//! written by Spark as Parquet and read back as Arrow. Aggregation views:
//! Spark selects the events each key's windows can see, in file, split and
//! row order, and the one evaluator windows them. Starting Spark (a JVM) is
//! reported apart from query time.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use almanac_core::convert::conform;
use almanac_core::{DType, FileFormat, Source};
use almanac_offline::request::{PreparedRequest, assemble, in_input_order, prepare};
use almanac_offline::{HistoricalOptions, OfflineError, OfflineStore, TimeRange, ViewRequest, ViewRows, list_source_files, report_stage};
use almanac_sql::{Dialect, PointInTime, Relation, ViewPlan};
use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field as ArrowField, Int64Type, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

const ENGINE: &str = "Spark";
const DRIVER: &str = include_str!("../driver/almanac_spark_driver.py");

fn engine_error(reason: impl Into<String>) -> OfflineError {
    OfflineError::Engine { engine: ENGINE, reason: reason.into() }
}

/// The running driver process and what it has registered.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Temporary views by name, with the path each was registered from.
    views: HashMap<String, String>,
    /// Holds the driver script and every shipped or returned file.
    scratch: tempfile::TempDir,
}

impl Driver {
    fn start(root: &Path, master: &str, python: &str) -> Result<Driver, OfflineError> {
        let started = Instant::now();
        let scratch = tempfile::Builder::new().prefix("almanac-spark-").tempdir().map_err(|e| engine_error(format!("cannot make a scratch folder: {e}")))?;
        let script = scratch.path().join("almanac_spark_driver.py");
        std::fs::write(&script, DRIVER).map_err(|e| engine_error(format!("cannot write the driver script: {e}")))?;
        // Spark's own logging goes to a file in the repo, not the terminal.
        let log_dir = root.join(".almanac");
        let _ = std::fs::create_dir_all(&log_dir);
        let log_path = log_dir.join("spark-driver.log");
        let log = File::create(&log_path).map_err(|e| engine_error(format!("cannot write {}: {e}", log_path.display())))?;
        let mut child = Command::new(python)
            .arg(&script)
            .args(["--master", master])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| engine_error(format!("cannot start `{python}` for the Spark driver: {e}; set `python:` under `offline` in almanac.yaml (or ALMANAC_SPARK_PYTHON) to a Python with pyspark installed")))?;
        let stdin = child.stdin.take().ok_or_else(|| engine_error("the driver has no stdin"))?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| engine_error("the driver has no stdout"))?);
        let mut driver = Driver { child, stdin, stdout, views: HashMap::new(), scratch };
        let ready = driver.read_reply().map_err(|e| engine_error(format!("{e}; see {}", log_path.display())))?;
        if ready.get("ready") != Some(&Value::Bool(true)) {
            return Err(engine_error(format!("the driver did not start: {ready}; see {}", log_path.display())));
        }
        report_stage("spark: start driver and session", started);
        Ok(driver)
    }

    fn read_reply(&mut self) -> Result<Value, OfflineError> {
        let mut line = String::new();
        let read = self.stdout.read_line(&mut line).map_err(|e| engine_error(format!("cannot read from the driver: {e}")))?;
        if read == 0 {
            let status = self.child.try_wait().ok().flatten().map_or_else(|| "still running".to_string(), |s| s.to_string());
            return Err(engine_error(format!("the Spark driver stopped ({status}); is pyspark installed for that Python, and Java 17 on the PATH?")));
        }
        serde_json::from_str(&line).map_err(|e| engine_error(format!("the driver answered `{}`: {e}", line.trim())))
    }

    /// One request, one reply; `{"ok": false}` becomes the engine's error.
    fn request(&mut self, request: Value) -> Result<Value, OfflineError> {
        writeln!(self.stdin, "{request}").and_then(|()| self.stdin.flush()).map_err(|e| engine_error(format!("cannot write to the driver: {e}")))?;
        let reply = self.read_reply()?;
        if reply.get("ok") == Some(&Value::Bool(true)) {
            return Ok(reply);
        }
        Err(engine_error(reply.get("error").and_then(Value::as_str).unwrap_or("the driver failed without a message").to_string()))
    }

    /// Register `path` as temporary view `name` unless it already is.
    fn register(&mut self, name: &str, path: &str, format: FileFormat) -> Result<(), OfflineError> {
        if self.views.get(name).is_some_and(|p| p == path) {
            return Ok(());
        }
        let format = if format == FileFormat::Csv { "csv" } else { "parquet" };
        self.request(json!({"op": "register", "name": name, "path": path, "format": format}))?;
        self.views.insert(name.to_string(), path.to_string());
        Ok(())
    }

    /// Run `sql`, have Spark write the result as Parquet, read it back.
    fn query(&mut self, sql: &str) -> Result<Vec<RecordBatch>, OfflineError> {
        let output = self.scratch.path().join(format!("result-{}", next_id()));
        let started = Instant::now();
        self.request(json!({"op": "query", "sql": sql, "output": output.to_string_lossy()}))?;
        report_stage("spark: query + write result", started);
        let started = Instant::now();
        let batches = read_parquet_folder(&output)?;
        let _ = std::fs::remove_dir_all(&output);
        report_stage("spark: read result", started);
        Ok(batches)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "shutdown"}));
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn read_parquet_folder(folder: &Path) -> Result<Vec<RecordBatch>, OfflineError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| OfflineError::Unreadable { path: folder.to_path_buf(), reason: e.to_string() })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    let mut batches = Vec::new();
    for path in files {
        let file = File::open(&path).map_err(|e| OfflineError::Unreadable { path: path.clone(), reason: e.to_string() })?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build()).map_err(|e| OfflineError::Unreadable { path: path.clone(), reason: e.to_string() })?;
        for batch in reader {
            batches.push(batch?);
        }
    }
    Ok(batches)
}

/// The Spark offline store; see the crate docs.
pub struct SparkOfflineStore {
    root: PathBuf,
    master: String,
    python: String,
    driver: Mutex<Option<Driver>>,
}

impl SparkOfflineStore {
    /// A store reading sources under `root` with Spark at `master`, its
    /// driver run by `python` (else `ALMANAC_SPARK_PYTHON`, else `python3`).
    /// Nothing starts until the first question.
    pub fn new(root: &Path, master: &str, python: Option<&str>) -> Self {
        let python = python.map(str::to_string).or_else(|| std::env::var("ALMANAC_SPARK_PYTHON").ok()).unwrap_or_else(|| "python3".to_string());
        let python = if python.contains('/') && Path::new(&python).is_relative() { root.join(&python).to_string_lossy().into_owned() } else { python };
        SparkOfflineStore { root: root.to_path_buf(), master: master.to_string(), python, driver: Mutex::new(None) }
    }

    /// Run `work` on the driver, starting it first if needed. A driver that
    /// failed at the process level is dropped, so the next call restarts it.
    fn with_driver<T>(&self, work: impl FnOnce(&mut Driver) -> Result<T, OfflineError>) -> Result<T, OfflineError> {
        let mut slot = self.driver.lock().map_err(|_| OfflineError::Internal("the Spark driver lock is poisoned".into()))?;
        if slot.is_none() {
            *slot = Some(Driver::start(&self.root, &self.master, &self.python)?);
        }
        let driver = slot.as_mut().ok_or_else(|| OfflineError::Internal("no Spark driver".into()))?;
        let result = work(driver);
        if driver.child.try_wait().ok().flatten().is_some() {
            *slot = None;
        }
        result
    }

    /// Start Spark now and report how long it took (the benchmark separates
    /// startup from query time).
    pub fn start(&self) -> Result<std::time::Duration, OfflineError> {
        let started = Instant::now();
        self.with_driver(|_| Ok(()))?;
        Ok(started.elapsed())
    }

    /// The view a source is registered as, registering it first.
    fn source_view(&self, driver: &mut Driver, source: &Source) -> Result<String, OfflineError> {
        let files = list_source_files(&self.root, source).map_err(|error| OfflineError::Source { source_name: source.name.clone(), error: Box::new(error) })?;
        let path = self.root.join(&source.path);
        let name = view_name(source);
        driver.register(&name, &path.to_string_lossy(), files.format)?;
        Ok(name)
    }

    fn view_plan(&self, driver: &mut Driver, request: &ViewRequest) -> Result<ViewPlan, OfflineError> {
        if request.source.table.is_some() || request.source.query.is_some() {
            return Err(OfflineError::Unsupported(format!("source `{}` is a database table or query; the Spark offline store reads files (`path:`)", request.source.name)));
        }
        let view = self.source_view(driver, &request.source)?;
        let keys: Vec<_> = request.join_keys.iter().map(|(_, key)| key.clone()).collect();
        Ok(ViewPlan::new(&request.view, &request.source, Relation::Table(view), &keys, &request.features))
    }
}

/// The temporary view a source's files are registered as.
fn view_name(source: &Source) -> String {
    format!("almanac_source_{}", source.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect::<String>())
}

/// The entity table Spark is sent: row number, as-of instant, join keys.
fn shipment(views: &[ViewRequest], prepared: &PreparedRequest) -> Result<RecordBatch, OfflineError> {
    let rows = prepared.at_nanos.len();
    let mut fields = vec![ArrowField::new(almanac_sql::plan::ROW, DataType::Int64, false), ArrowField::new(almanac_sql::plan::AT, DType::Timestamp.to_arrow(), true)];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..rows as i64)),
        Arc::new(TimestampMicrosecondArray::from(prepared.at_micros()).with_timezone("UTC")),
    ];
    for (key, column) in prepared.distinct_keys(views) {
        fields.push(ArrowField::new(&key.name, column.data_type().clone(), true));
        columns.push(column.clone());
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), OfflineError> {
    let unwritable = |reason: String| OfflineError::Unwritable { path: path.to_path_buf(), reason };
    let file = File::create(path).map_err(|e| unwritable(e.to_string()))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| unwritable(e.to_string()))?;
    writer.write(batch).map_err(|e| unwritable(e.to_string()))?;
    writer.close().map_err(|e| unwritable(e.to_string()))?;
    Ok(())
}

fn sql_error(error: almanac_sql::SqlError) -> OfflineError {
    OfflineError::Unsupported(error.to_string())
}

/// Column `index` of every batch, concatenated (an empty array of `dtype`
/// when Spark wrote no rows).
fn column(batches: &[RecordBatch], index: usize, dtype: &DType) -> Result<ArrayRef, OfflineError> {
    let parts: Vec<&dyn arrow::array::Array> = batches.iter().map(|b| b.column(index).as_ref()).collect();
    if parts.is_empty() {
        return Ok(arrow::array::new_empty_array(&dtype.to_arrow()));
    }
    let joined = arrow::compute::concat(&parts)?;
    Ok(conform(&joined, dtype)?)
}

fn export_rows(request: &ViewRequest, batches: &[RecordBatch]) -> Result<ViewRows, OfflineError> {
    let columns = ViewRows::layout_dtypes(request).iter().enumerate().map(|(i, d)| column(batches, i, d)).collect::<Result<Vec<_>, _>>()?;
    ViewRows::from_columns(request, columns)
}

/// An aggregation view's events as Spark wrote them (in order, across
/// part files read in name order), named as the source names them.
fn event_rows(request: &ViewRequest, batches: &[RecordBatch]) -> Result<RecordBatch, OfflineError> {
    let layout = almanac_offline::historical::event_columns(request);
    let columns = layout.iter().enumerate().map(|(i, (_, dtype))| column(batches, i, dtype)).collect::<Result<Vec<_>, _>>()?;
    almanac_offline::historical::event_batch(request, columns)
}

impl OfflineStore for SparkOfflineStore {
    /// Views with a schema are joined by one Spark SQL statement; each
    /// aggregation view's events are selected by Spark (`window_events`,
    /// against the same shipped table) and windowed by the one evaluator.
    fn get_historical_features(&self, entities: &RecordBatch, views: &[ViewRequest], options: &HistoricalOptions) -> Result<RecordBatch, OfflineError> {
        let prepared = prepare(entities, views, options)?;
        let shipped = shipment(views, &prepared)?;
        let joined: Vec<&ViewRequest> = views.iter().filter(|v| !v.view.is_aggregation()).collect();
        let (batches, events) = self.with_driver(|driver| {
            let id = next_id();
            let path = driver.scratch.path().join(format!("entities-{id}.parquet"));
            let started = Instant::now();
            write_parquet(&path, &shipped)?;
            let name = format!("almanac_entities_{id}");
            driver.register(&name, &path.to_string_lossy(), FileFormat::Parquet)?;
            report_stage("spark: ship entity table", started);
            let result = (|| {
                let mut events = Vec::new();
                for (index, request) in views.iter().enumerate().filter(|(_, v)| v.view.is_aggregation()) {
                    let plan = self.view_plan(driver, request)?;
                    events.push((index, driver.query(&almanac_sql::window_events(&plan, &name, Dialect::Spark).map_err(sql_error)?)?));
                }
                let plan_views = joined.iter().map(|v| self.view_plan(driver, v)).collect::<Result<Vec<_>, _>>()?;
                let sql = almanac_sql::point_in_time(&PointInTime { entities: name.clone(), views: plan_views }, Dialect::Spark).map_err(sql_error)?;
                Ok((driver.query(&sql)?, events))
            })();
            let _ = std::fs::remove_file(&path);
            result
        })?;
        let mut dtypes = vec![DType::Int64];
        dtypes.extend(joined.iter().flat_map(|v| v.features.iter().map(|f| f.dtype.clone())));
        let columns = dtypes.iter().enumerate().map(|(i, d)| column(&batches, i, d)).collect::<Result<Vec<_>, _>>()?;
        let rows = columns[0].as_primitive::<Int64Type>().clone();
        let mut features = in_input_order(&rows, entities.num_rows(), &columns[1..])?.into_iter();
        let mut events = events.into_iter();
        let mut per_view = Vec::with_capacity(views.len());
        for (index, request) in views.iter().enumerate() {
            if !request.view.is_aggregation() {
                per_view.push(features.by_ref().take(request.features.len()).collect());
                continue;
            }
            let (_, batches) = events.next().filter(|(i, _)| *i == index).ok_or_else(|| OfflineError::Internal(format!("no events for aggregation view `{}`", request.view.name)))?;
            let batch = event_rows(request, &batches)?;
            let keys = prepared.keys.get(index).ok_or_else(|| OfflineError::Internal(format!("no join keys were prepared for `{}`", request.view.name)))?;
            per_view.push(almanac_offline::historical::aggregates_from_events(request, vec![batch], keys, &prepared.at_nanos)?);
        }
        assemble(entities, views, prepared.names, per_view)
    }

    fn export(&self, request: &ViewRequest, range: TimeRange, latest: bool) -> Result<ViewRows, OfflineError> {
        if latest {
            return Ok(self.latest_per_entity(request, range)?.0);
        }
        let (start, end) = range.to_micros();
        let batches = self.with_driver(|driver| {
            let plan = self.view_plan(driver, request)?;
            driver.query(&almanac_sql::export(&plan, start, end, Dialect::Spark).map_err(sql_error)?)
        })?;
        export_rows(request, &batches)
    }

    fn latest_per_entity(&self, request: &ViewRequest, range: TimeRange) -> Result<(ViewRows, usize), OfflineError> {
        let (start, end) = range.to_micros();
        let batches = self.with_driver(|driver| {
            let plan = self.view_plan(driver, request)?;
            driver.query(&almanac_sql::latest_per_entity(&plan, start, end, Dialect::Spark).map_err(sql_error)?)
        })?;
        let held = ViewRows::layout_dtypes(request).len();
        let count = batches.iter().find(|b| b.num_rows() > 0).and_then(|b| b.column(held).as_primitive_opt::<Int64Type>().map(|c| c.value(0))).unwrap_or(0);
        Ok((export_rows(request, &batches)?, count as usize))
    }

    /// The events of the states' held range, selected by Spark; the states
    /// are built from them as from files.
    fn aggregation_states(&self, request: &ViewRequest, range: TimeRange) -> Result<(ViewRows, usize), OfflineError> {
        let (start, end) = almanac_offline::historical::held_range(request, range)?.to_micros();
        let batches = self.with_driver(|driver| {
            let plan = self.view_plan(driver, request)?;
            driver.query(&almanac_sql::events_in_range(&plan, start, end, Dialect::Spark).map_err(sql_error)?)
        })?;
        almanac_offline::historical::states_from_events(request, vec![event_rows(request, &batches)?], range)
    }

    fn explain(&self, views: &[ViewRequest]) -> Option<Result<String, OfflineError>> {
        let plan_of = |request: &ViewRequest| {
            let keys: Vec<_> = request.join_keys.iter().map(|(_, key)| key.clone()).collect();
            ViewPlan::new(&request.view, &request.source, Relation::Table(view_name(&request.source)), &keys, &request.features)
        };
        let entities = "almanac_entities";
        let explained = (|| {
            let mut statements = Vec::new();
            for request in views.iter().filter(|v| v.view.is_aggregation()) {
                let events = almanac_sql::window_events(&plan_of(request), entities, Dialect::Spark).map_err(sql_error)?;
                statements.push(format!("-- aggregation view `{}`: the events its windows can see (Almanac's evaluator computes the windows from them)\n{events}", request.view.name));
            }
            let joined = views.iter().filter(|v| !v.view.is_aggregation()).map(plan_of).collect();
            statements.push(almanac_sql::point_in_time(&PointInTime { entities: entities.into(), views: joined }, Dialect::Spark).map_err(sql_error)?);
            Ok(format!("-- Almanac registers each source's files as a temporary view `almanac_source_<name>` and ships the entity table as Parquet (`{entities}`).\n{};", statements.join(";\n\n")))
        })();
        Some(explained)
    }
}
