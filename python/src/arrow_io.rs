//! Arrow across the boundary, both ways through the Arrow C stream
//! interface (the PyCapsule protocol `__arrow_c_stream__`): buffers are
//! handed over, never copied. Inputs come from any producer (pyarrow,
//! polars, pandas through pyarrow, DuckDB); outputs are a [`Table`] any
//! consumer reads (`pyarrow.table(t)`, `polars.from_arrow`).
//!
//! Inputs are normalised to the types the facade reads, once, here: the
//! encodings dataframe libraries choose for the same values (pandas
//! categoricals as dictionaries, polars' and pandas 3's large or view
//! strings) become plain `Utf8`/`Binary` columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ffi_stream::FFI_ArrowArrayStream;
use arrow_pyarrow::FromPyArrow;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::errors::{AlmanacError, InvalidInputError};

/// Read a whole Arrow stream from a Python object with `__arrow_c_stream__`:
/// the batch as given, and the same batch with normalised columns (what
/// the facade reads).
pub fn read_entities(object: &Bound<'_, PyAny>) -> PyResult<(RecordBatch, RecordBatch)> {
    let given = read_stream(object)?;
    let plain = normalise(given.clone())?;
    Ok((given, plain))
}

/// `joined` (the normalised input columns, then features) with the input
/// columns replaced by the ones given: a training set returns its input
/// columns unchanged, encodings included (DESIGN §2.4).
pub fn with_input_columns(given: &RecordBatch, joined: &RecordBatch) -> PyResult<RecordBatch> {
    let inputs = given.num_columns();
    if joined.num_columns() < inputs || joined.num_rows() != given.num_rows() {
        return Err(AlmanacError::new_err("internal error: the training set does not start with the entity table's columns"));
    }
    let schema = joined.schema();
    let mut fields: Vec<Arc<Field>> = given.schema().fields().iter().cloned().collect();
    fields.extend(schema.fields().iter().skip(inputs).cloned());
    let mut columns: Vec<ArrayRef> = given.columns().to_vec();
    columns.extend(joined.columns().iter().skip(inputs).cloned());
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(joined.num_rows()));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options).map_err(|e| AlmanacError::new_err(format!("internal error: {e}")))
}

/// The whole stream as one batch, columns as given.
fn read_stream(object: &Bound<'_, PyAny>) -> PyResult<RecordBatch> {
    if !object.hasattr("__arrow_c_stream__")? {
        return Err(InvalidInputError::new_err(format!(
            "expected a table (pandas or polars DataFrame, pyarrow Table, or any object with __arrow_c_stream__), got {}",
            object.get_type().name()?
        )));
    }
    let reader = arrow::ffi_stream::ArrowArrayStreamReader::from_pyarrow_bound(object)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| InvalidInputError::new_err(format!("reading the table failed: {e}")))?;
    concat_batches(&schema, &batches).map_err(|e| InvalidInputError::new_err(format!("reading the table failed: {e}")))
}

/// The column types a dataframe library chose, as the facade reads them.
fn normalise(batch: RecordBatch) -> PyResult<RecordBatch> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let plain = plain_type(field.data_type());
        let column = if plain == *field.data_type() {
            column.clone()
        } else {
            cast(column, &plain).map_err(|e| InvalidInputError::new_err(format!("column `{}`: cannot read {} as {plain}: {e}", field.name(), field.data_type())))?
        };
        fields.push(Field::new(field.name(), plain, true));
        columns.push(column);
    }
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options).map_err(|e| AlmanacError::new_err(format!("internal error: {e}")))
}

fn plain_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Dictionary(_, values) => plain_type(values),
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        other => other.clone(),
    }
}

/// A result table. Python reads it through `__arrow_c_stream__` (what
/// `pyarrow.table(t)` calls): the buffers move to the consumer, no copy.
/// It can be read any number of times.
#[pyclass(frozen, module = "almanac._almanac")]
pub struct Table {
    batch: RecordBatch,
}

impl Table {
    pub fn new(batch: RecordBatch) -> Self {
        Table { batch }
    }
}

#[pymethods]
impl Table {
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(&self, py: Python<'py>, requested_schema: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyCapsule>> {
        // The schema is ours to choose (the protocol makes the request a
        // hint); consumers cast if they need to.
        let _ = requested_schema;
        let batches = vec![Ok(self.batch.clone())];
        let reader: Box<dyn RecordBatchReader + Send> = Box::new(RecordBatchIterator::new(batches, self.batch.schema()));
        let stream = FFI_ArrowArrayStream::new(reader);
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }

    #[getter]
    fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.batch.schema().fields().iter().map(|f| f.name().clone()).collect()
    }

    fn __len__(&self) -> usize {
        self.batch.num_rows()
    }
}
