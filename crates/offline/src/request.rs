//! What every offline engine does the same way around its join: check the
//! entity table against the request (as-of column, join keys and their
//! types, output names) before any work, and put the features beside the
//! untouched input columns afterwards. The embedded engine and the pushdown
//! engines call these, so an entity table is accepted or refused with the
//! same words whichever engine runs the join.

use std::sync::Arc;

use almanac_core::JoinKey;
use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};

use crate::error::OfflineError;
use crate::historical::key_type;
use crate::time::to_nanos;
use crate::{HistoricalOptions, ViewRequest};

/// A checked request: output names, as-of instants and each view's key columns.
pub struct PreparedRequest {
    /// One per requested feature, views in order, features in request order.
    pub names: Vec<String>,
    /// The as-of instant of every entity row, UTC nanoseconds.
    pub at_nanos: Vec<Option<i64>>,
    /// Per view, its join-key columns cast to the keys' types.
    pub keys: Vec<Vec<ArrayRef>>,
}

impl PreparedRequest {
    /// The as-of instants in whole microseconds (floored): what an engine
    /// with microsecond timestamps is sent.
    pub fn at_micros(&self) -> Vec<Option<i64>> {
        self.at_nanos.iter().map(|t| t.map(|n| n.div_euclid(1_000))).collect()
    }

    /// Every join-key column `views` need, each once by name (views of one
    /// entity share its column), with its key: what an engine is shipped,
    /// in the order of [`distinct_join_keys`].
    pub fn distinct_keys<'a>(&'a self, views: &'a [ViewRequest]) -> Vec<(&'a JoinKey, &'a ArrayRef)> {
        first_uses(views).into_iter().filter_map(|(view, index, key)| Some((key, self.keys.get(view)?.get(index)?))).collect()
    }
}

/// Every join key `views` need, each once by name, in the order they are
/// first used: the key columns an engine's shipped entity table has.
pub fn distinct_join_keys(views: &[ViewRequest]) -> Vec<&JoinKey> {
    first_uses(views).into_iter().map(|(_, _, key)| key).collect()
}

/// `(view, position in the view's keys, key)` of each key name's first use.
fn first_uses(views: &[ViewRequest]) -> Vec<(usize, usize, &JoinKey)> {
    let mut out: Vec<(usize, usize, &JoinKey)> = Vec::new();
    for (view, request) in views.iter().enumerate() {
        for (index, (_, key)) in request.join_keys.iter().enumerate() {
            if !out.iter().any(|(_, _, seen)| seen.name == key.name) {
                out.push((view, index, key));
            }
        }
    }
    out
}

pub fn prepare(entities: &RecordBatch, views: &[ViewRequest], options: &HistoricalOptions) -> Result<PreparedRequest, OfflineError> {
    let names = output_names(entities.schema_ref(), views, options.full_feature_names)?;
    let ts_name = &options.timestamp_column;
    let ts_column = entities.column_by_name(ts_name).ok_or_else(|| OfflineError::MissingColumn {
        column: ts_name.clone(),
        needed_by: "the as-of timestamp; pass --timestamp-column if it has another name".into(),
        available: column_list(entities.schema_ref()),
    })?;
    let at_nanos = to_nanos(ts_column, ts_name)?;
    let keys = views
        .iter()
        .map(|request| request.join_keys.iter().map(|(entity, key)| entity_key(entities, entity, key, &request.view.name)).collect::<Result<Vec<_>, _>>())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PreparedRequest { names, at_nanos, keys })
}

/// An engine's result columns (`columns`, one value per entity row, tagged
/// by the row number `rows`) put back into input order. Engines that sort
/// by row number already are; ones that write unordered files (Spark) are
/// permuted here.
pub fn in_input_order(rows: &Int64Array, expected: usize, columns: &[ArrayRef]) -> Result<Vec<ArrayRef>, OfflineError> {
    if rows.len() != expected || rows.null_count() > 0 {
        return Err(OfflineError::Internal(format!("the engine returned {} rows for {expected} entity rows", rows.len())));
    }
    if rows.values().iter().enumerate().all(|(i, row)| *row == i as i64) {
        return Ok(columns.to_vec());
    }
    let mut position = vec![u32::MAX; expected];
    for (at, row) in rows.values().iter().enumerate() {
        match usize::try_from(*row).ok().and_then(|r| position.get_mut(r)) {
            Some(slot) if *slot == u32::MAX => *slot = at as u32,
            _ => return Err(OfflineError::Internal(format!("the engine returned row number {row} twice or out of range"))),
        }
    }
    let indices = UInt32Array::from(position);
    columns.iter().map(|column| Ok(take(column.as_ref(), &indices, None)?)).collect()
}

/// The training set: the entity table's columns unchanged, then every
/// view's features (`per_view`, in request order) under `names`.
pub fn assemble(entities: &RecordBatch, views: &[ViewRequest], names: Vec<String>, per_view: Vec<Vec<ArrayRef>>) -> Result<RecordBatch, OfflineError> {
    let mut fields: Vec<ArrowField> = entities.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = entities.columns().to_vec();
    let mut names = names.into_iter();
    for (request, features) in views.iter().zip(per_view) {
        for ((field, column), name) in request.features.iter().zip(features).zip(names.by_ref()) {
            fields.push(ArrowField::new(name, field.dtype.to_arrow(), true));
            columns.push(column);
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

fn entity_key(entities: &RecordBatch, entity: &str, key: &JoinKey, view: &str) -> Result<ArrayRef, OfflineError> {
    let column = entities.column_by_name(&key.name).ok_or_else(|| OfflineError::MissingColumn {
        column: key.name.clone(),
        needed_by: format!("join key of entity `{entity}`, needed by feature view `{view}`"),
        available: column_list(entities.schema_ref()),
    })?;
    let expected = key_type(key);
    let compatible = match expected {
        DataType::Int64 => column.data_type().is_integer(),
        _ => matches!(column.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _)),
    };
    if !compatible && column.data_type() != &DataType::Null {
        let (expected_name, pandas) = if expected == DataType::Int64 { ("int64", "int64") } else { ("string", "str") };
        return Err(OfflineError::KeyType { column: key.name.clone(), entity: entity.to_string(), found: column.data_type().to_string(), expected: expected_name.into(), pandas: pandas.into() });
    }
    Ok(cast(column, &expected)?)
}

fn column_list(schema: &SchemaRef) -> String {
    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

/// Output names for every requested feature, checked for clashes up front.
fn output_names(entities: &Schema, views: &[ViewRequest], full: bool) -> Result<Vec<String>, OfflineError> {
    let mut names: Vec<(String, String)> = Vec::new();
    for request in views {
        for field in &request.features {
            let name = if full { format!("{}__{}", request.view.name, field.name) } else { field.name.clone() };
            if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
                return Err(OfflineError::NameClash { name, first: first.clone(), second: request.view.name.clone() });
            }
            if entities.field_with_name(&name).is_ok() {
                return Err(OfflineError::ClashWithInput { name });
            }
            names.push((name, request.view.name.clone()));
        }
    }
    Ok(names.into_iter().map(|(n, _)| n).collect())
}

