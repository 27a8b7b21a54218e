//! The point-in-time plan: what a training set asks of each view, in
//! engine-neutral terms. It is built from the registry's definitions and
//! rendered by [`crate::render`].

use almanac_core::{DType, FeatureView, Field, JoinKey, Source};

/// The relation a view's history is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// A table or view, possibly schema-qualified (`analytics.user_stats`).
    Table(String),
    /// A query whose result is the history (`query:` in a source).
    Query(String),
}

/// One join key: the entity table's column, the source's column and the
/// key's resolved dtype (int64 or string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub entity: String,
    pub source: String,
    pub dtype: DType,
}

/// A source column and the dtype it is delivered as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub column: String,
    pub dtype: DType,
}

/// One view's part of a training set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewPlan {
    pub name: String,
    pub relation: Relation,
    pub keys: Vec<KeyPair>,
    pub event_time: String,
    pub created_time: Option<String>,
    /// `None` (or zero): no lower bound on the event time.
    pub ttl_micros: Option<i64>,
    /// The requested features, in request order.
    pub outputs: Vec<Output>,
    /// Every feature of the view in schema order: the last-resort tie-break
    /// looks at all of them, whatever was requested, so the winner does not
    /// depend on the request.
    pub tie_break: Vec<Output>,
    /// Set for an aggregation view: what its windows read.
    pub aggregation: Option<AggregationInputs>,
}

/// What an aggregation view's windows read: the input columns (each once,
/// in the order the aggregations first name them, with the dtypes `apply`
/// resolved) and the widest window, which bounds how far back an entity
/// row at `T` can see (`[T − widest, T)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationInputs {
    pub columns: Vec<Output>,
    pub widest_micros: i64,
}

impl ViewPlan {
    /// The plan of `view` read from `relation`, for the `requested` features
    /// (`join_keys` in the view's order, dtypes resolved).
    pub fn new(view: &FeatureView, source: &Source, relation: Relation, join_keys: &[JoinKey], requested: &[Field]) -> Self {
        let output = |field: &Field| Output { column: source.file_column(&field.name).to_string(), dtype: field.dtype.clone() };
        ViewPlan {
            name: view.name.clone(),
            relation,
            keys: join_keys.iter().map(|key| KeyPair { entity: key.name.clone(), source: source.file_column(&key.name).to_string(), dtype: key.dtype.clone().unwrap_or(DType::Int64) }).collect(),
            event_time: source.file_column(&source.timestamp_field).to_string(),
            created_time: source.created_timestamp_column.as_ref().map(|c| source.file_column(c).to_string()),
            ttl_micros: view.ttl.as_ref().map(|ttl| ttl.micros()).filter(|micros| *micros > 0),
            outputs: requested.iter().map(output).collect(),
            tie_break: view.schema.iter().map(output).collect(),
            aggregation: view.is_aggregation().then(|| AggregationInputs {
                columns: view.aggregation_inputs().iter().map(output).collect(),
                widest_micros: view.aggregations.iter().map(|a| a.window.micros()).max().unwrap_or(0),
            }),
        }
    }
}

/// A whole training set: the shipped entity table and every view's part.
///
/// The engine is sent only what the join needs: a row number, the as-of
/// instant (UTC) and the join-key columns. It answers with the row number
/// and the features; the caller puts them beside the untouched input
/// columns, so labels of any type never travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointInTime {
    /// The entity table as the engine names it (a temporary table).
    pub entities: String,
    pub views: Vec<ViewPlan>,
}

/// The entity table's row-number column.
pub const ROW: &str = "__almanac_row";
/// The entity table's as-of column (UTC instant).
pub const AT: &str = "__almanac_at";

/// The name of a result column: feature `feature` of view number `view`.
/// Positional, so no user name needs escaping twice or can clash.
pub fn output_name(view: usize, feature: usize) -> String {
    format!("__almanac_v{view}_f{feature}")
}
