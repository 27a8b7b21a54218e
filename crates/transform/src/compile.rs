//! Planning and checking an on-demand view's expressions.

use std::collections::HashMap;
use std::sync::Arc;

use almanac_core::{DType, Definitions, OnDemandFeatureView, suggest};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, TableReference};
use datafusion::logical_expr::{Expr, Operator, Volatility};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Column, Literal};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::prelude::SessionContext;

/// One column an on-demand view reads: a feature of an input view or a
/// field of a request source.
#[derive(Debug, Clone, PartialEq)]
pub struct InputField {
    /// The feature view or request source it comes from.
    pub source: String,
    pub name: String,
    pub dtype: DType,
    /// True for a request source's field (data the caller sends).
    pub from_request: bool,
}

/// A mistake in one feature's expression, with a suggestion where one helps.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    /// The feature whose `expr` is wrong (`None`: the view itself).
    pub feature: Option<String>,
    pub message: String,
    pub help: Option<String>,
}

/// An on-demand view, ready to evaluate.
#[derive(Debug)]
pub struct CompiledView {
    pub name: String,
    /// The evaluation batch's columns, in order.
    pub inputs: Vec<InputField>,
    pub(crate) schema: SchemaRef,
    pub(crate) features: Vec<CompiledFeature>,
}

#[derive(Debug)]
pub(crate) struct CompiledFeature {
    pub(crate) name: String,
    pub(crate) dtype: DType,
    pub(crate) expr: Arc<dyn PhysicalExpr>,
}

impl CompiledView {
    /// The evaluation batch's schema (each input's canonical Arrow type).
    pub fn input_schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The view's features, with their declared dtypes, in order.
    pub fn features(&self) -> impl Iterator<Item = (&str, &DType)> {
        self.features.iter().map(|f| (f.name.as_str(), &f.dtype))
    }
}

/// Compile every feature of `view` against the definitions it reads.
/// All mistakes are returned together.
pub fn compile(view: &OnDemandFeatureView, defs: &Definitions) -> Result<CompiledView, Vec<CompileError>> {
    let inputs = inputs_of(view, defs).map_err(|e| vec![e])?;
    let qualified: Vec<(Option<TableReference>, Arc<Field>)> = inputs.iter().map(|i| (Some(TableReference::bare(i.source.as_str())), Arc::new(Field::new(&i.name, i.dtype.to_arrow(), true)))).collect();
    let df_schema = DFSchema::new_with_metadata(qualified, HashMap::new()).map_err(|e| vec![view_error(format!("cannot build the input schema: {e}"))])?;
    let schema: SchemaRef = Arc::new(Schema::new(inputs.iter().map(|i| Field::new(&i.name, i.dtype.to_arrow(), true)).collect::<Vec<_>>()));
    let ctx = SessionContext::new();
    let mut features = Vec::with_capacity(view.features.len());
    let mut errors = Vec::new();
    for feature in &view.features {
        match compile_one(&ctx, &df_schema, &schema, &inputs, &feature.expr, &feature.dtype) {
            Ok(expr) => features.push(CompiledFeature { name: feature.name.clone(), dtype: feature.dtype.clone(), expr }),
            Err((message, help)) => errors.push(CompileError { feature: Some(feature.name.clone()), message, help }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (inputs, schema, features) = keep_referenced_inputs(inputs, features).map_err(|e| vec![view_error(format!("cannot narrow the inputs: {e}"))])?;
    Ok(CompiledView { name: view.name.clone(), inputs, schema, features })
}

/// Only the inputs some expression reads, with every column reference
/// renumbered: an online read then builds (and a training set keeps) no
/// column nobody reads. An input view has every one of its features as a
/// possible input, typically far more than an expression names.
fn keep_referenced_inputs(inputs: Vec<InputField>, features: Vec<CompiledFeature>) -> datafusion::error::Result<(Vec<InputField>, SchemaRef, Vec<CompiledFeature>)> {
    let mut used: Vec<usize> = features.iter().flat_map(|f| collect_columns(&f.expr)).map(|c| c.index()).collect();
    used.sort_unstable();
    used.dedup();
    let renumbered: HashMap<usize, usize> = used.iter().enumerate().map(|(new, &old)| (old, new)).collect();
    let features = features
        .into_iter()
        .map(|feature| {
            let expr = feature
                .expr
                .transform_up(|node| match node.downcast_ref::<Column>() {
                    Some(column) => {
                        let index = renumbered.get(&column.index()).copied().unwrap_or(column.index());
                        Ok(Transformed::yes(Arc::new(Column::new(column.name(), index)) as Arc<dyn PhysicalExpr>))
                    }
                    None => Ok(Transformed::no(node)),
                })?
                .data;
            Ok(CompiledFeature { expr, ..feature })
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let inputs: Vec<InputField> = used.iter().map(|&i| inputs[i].clone()).collect();
    let schema: SchemaRef = Arc::new(Schema::new(inputs.iter().map(|i| Field::new(&i.name, i.dtype.to_arrow(), true)).collect::<Vec<_>>()));
    Ok((inputs, schema, features))
}

/// Casts of literals folded into literals: type coercion turns `avg > 0`
/// into `avg > CAST(0 AS DOUBLE)`, which would otherwise be cast again on
/// every evaluation (a measurable share of a one-row online read). Only
/// casts are folded: general constant folding would run integer arithmetic
/// with wrapping kernels. A cast that fails is left to fail per row.
fn fold_literal_casts(expr: Arc<dyn PhysicalExpr>, schema: &SchemaRef) -> datafusion::error::Result<Arc<dyn PhysicalExpr>> {
    let empty = arrow::array::RecordBatch::new_empty(schema.clone());
    Ok(expr
        .transform_up(|node| {
            let is_literal_cast = node.downcast_ref::<CastExpr>().is_some_and(|cast| cast.expr().is::<Literal>());
            if !is_literal_cast {
                return Ok(Transformed::no(node));
            }
            match node.evaluate(&empty) {
                Ok(datafusion::logical_expr::ColumnarValue::Scalar(value)) => Ok(Transformed::yes(Arc::new(Literal::new(value)) as Arc<dyn PhysicalExpr>)),
                _ => Ok(Transformed::no(node)),
            }
        })?
        .data)
}

/// Integer `+`, `-` and `*` checked for overflow (DataFusion's kernels wrap
/// by default): an overflowing row then fails, and the evaluator makes it
/// null and counts it, as it does an integer division by zero. A wrapped
/// value would be a silently wrong feature.
fn checked_arithmetic(expr: Arc<dyn PhysicalExpr>) -> datafusion::error::Result<Arc<dyn PhysicalExpr>> {
    Ok(expr
        .transform_up(|node| match node.downcast_ref::<BinaryExpr>() {
            Some(binary) if matches!(binary.op(), Operator::Plus | Operator::Minus | Operator::Multiply) => {
                let checked = BinaryExpr::new(binary.left().clone(), *binary.op(), binary.right().clone()).with_fail_on_overflow(true);
                Ok(Transformed::yes(Arc::new(checked) as Arc<dyn PhysicalExpr>))
            }
            _ => Ok(Transformed::no(node)),
        })?
        .data)
}

fn view_error(message: String) -> CompileError {
    CompileError { feature: None, message, help: None }
}

/// Every feature of each input view and every field of each request
/// source, in the order `sources` lists them.
fn inputs_of(view: &OnDemandFeatureView, defs: &Definitions) -> Result<Vec<InputField>, CompileError> {
    let mut inputs = Vec::new();
    for source in &view.sources {
        if let Some(input) = defs.feature_view(source) {
            inputs.extend(input.schema.iter().map(|f| InputField { source: source.clone(), name: f.name.clone(), dtype: f.dtype.clone(), from_request: false }));
        } else if let Some(request) = defs.request_source(source) {
            inputs.extend(request.schema.iter().map(|f| InputField { source: source.clone(), name: f.name.clone(), dtype: f.dtype.clone(), from_request: true }));
        } else {
            return Err(view_error(format!("`{source}` is neither a feature view nor a request source")));
        }
    }
    Ok(inputs)
}

type Problem = (String, Option<String>);

fn compile_one(ctx: &SessionContext, df_schema: &DFSchema, schema: &SchemaRef, inputs: &[InputField], text: &str, dtype: &DType) -> Result<Arc<dyn PhysicalExpr>, Problem> {
    let expr = ctx.parse_sql_expr(text, df_schema).map_err(|e| explain_planning_error(&e.to_string(), inputs))?;
    reject_non_scalar(&expr)?;
    let physical = ctx.create_physical_expr(expr, df_schema).map_err(|e| explain_planning_error(&e.to_string(), inputs))?;
    let physical = checked_arithmetic(physical).and_then(|p| fold_literal_casts(p, schema)).map_err(|e| (format!("cannot plan the expression: {}", first_line(&e.to_string())), None))?;
    let found = physical.data_type(schema).map_err(|e| (format!("cannot type the expression: {}", first_line(&e.to_string())), None))?;
    if !fits(&found, dtype) {
        let found_name = DType::from_arrow(&found).map_or_else(|| found.to_string(), |d| d.to_string());
        return Err((format!("the expression's type is {found_name}, which does not fit the declared dtype {dtype}"), Some(format!("declare `dtype: {found_name}`, or cast in the expression: `CAST(... AS {})`", sql_type(dtype)))));
    }
    Ok(physical)
}

/// Whether an expression of Arrow type `found` can be stored as `declared`
/// without losing information: the same type, a null literal, integers into
/// floats, a narrower integer or float into a wider one.
pub(crate) fn fits(found: &DataType, declared: &DType) -> bool {
    if matches!(found, DataType::Null) {
        return true;
    }
    let Some(found) = DType::from_arrow(found) else { return false };
    match (declared, &found) {
        (DType::Float64, DType::Int32 | DType::Int64 | DType::Float32) => true,
        (DType::Float32, DType::Int32) => true,
        (DType::Int64, DType::Int32) => true,
        _ => declared.accepts(&found.to_arrow()),
    }
}

fn sql_type(dtype: &DType) -> &'static str {
    match dtype {
        DType::Bool => "BOOLEAN",
        DType::Int32 => "INT",
        DType::Int64 => "BIGINT",
        DType::Float32 => "REAL",
        DType::Float64 => "DOUBLE",
        DType::String => "VARCHAR",
        DType::Bytes => "BYTEA",
        DType::Timestamp => "TIMESTAMP",
        DType::Json => "VARCHAR",
        DType::List(_) | DType::Struct(_) | DType::Map(_) => "...",
    }
}

/// Aggregates, window functions, subqueries, placeholders and volatile
/// functions have no meaning for one row at a time (or would differ
/// between training and serving): refused at apply.
fn reject_non_scalar(expr: &Expr) -> Result<(), Problem> {
    let mut problem: Option<Problem> = None;
    let _ = expr.apply(|node| {
        let found: Option<Problem> = match node {
            Expr::AggregateFunction(f) => Some((format!("`{}` is an aggregate; on-demand features are computed row by row", f.func.name()), Some("use an aggregation view (`aggregations:`) for windowed aggregates".into()))),
            Expr::WindowFunction(_) => Some(("window functions are not allowed in an on-demand feature".into(), Some("use an aggregation view (`aggregations:`)".into()))),
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => Some(("subqueries are not allowed in an on-demand feature".into(), Some("read other views by listing them in `sources`".into()))),
            Expr::Placeholder(_) => Some(("placeholders (`$1`) are not allowed".into(), None)),
            Expr::ScalarFunction(f) if f.func.signature().volatility != Volatility::Immutable => Some((
                format!("`{}()` is not deterministic: training and serving would compute different values", f.func.name()),
                Some("pass the value as a request field instead (e.g. the request time)".into()),
            )),
            _ => None,
        };
        match found {
            Some(found) => {
                problem = Some(found);
                Ok(TreeNodeRecursion::Stop)
            }
            None => Ok(TreeNodeRecursion::Continue),
        }
    });
    match problem {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// DataFusion's planning errors, turned into Almanac's words with a
/// suggestion: the closest input name for an unknown one, `view.field` for
/// an ambiguous one.
fn explain_planning_error(error: &str, inputs: &[InputField]) -> Problem {
    let text = first_line(error);
    if let Some(name) = unknown_name(text) {
        let candidates: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
        let help = suggest::closest(&name, candidates.iter().map(String::as_str)).map(|c| format!("did you mean `{c}`?")).or_else(|| {
            let all: Vec<String> = inputs.iter().map(|i| format!("{}.{}", i.source, i.name)).collect();
            Some(format!("the expression can read: {}", all.join(", ")))
        });
        return (format!("unknown name `{name}` in the expression"), help);
    }
    if text.contains("mbiguous reference") {
        let name = text.split("unqualified field").nth(1).unwrap_or("").trim().trim_matches(['"', '`', '\'', '.']).rsplit('.').next().unwrap_or("").to_string();
        let sources: Vec<String> = inputs.iter().filter(|i| i.name == name).map(|i| format!("`{}.{}`", i.source, i.name)).collect();
        return (format!("`{name}` is ambiguous: more than one source has it"), Some(format!("qualify it: {}", sources.join(" or "))));
    }
    let cleaned = text.trim_start_matches("Error during planning: ").trim_start_matches("SQL error: ").trim_start_matches("Schema error: ");
    (format!("cannot read the expression: {cleaned}"), Some("write a SQL scalar expression, e.g. `amount / nullif(txn_amount_avg_7d, 0)`".into()))
}

/// The name in DataFusion's "No field named x" message, if that is the error.
fn unknown_name(text: &str) -> Option<String> {
    let rest = text.split("No field named ").nth(1)?;
    let name: String = rest.trim_start_matches(['"', '`', '\'']).chars().take_while(|c| !matches!(c, '"' | '`' | '\'' | '.' | ' ' | ',')).collect();
    // A qualified unknown name (`view."field"`) puts the field after the dot.
    let name = if rest.contains('.') && name.is_empty() { rest.rsplit('.').next().unwrap_or("").trim_matches(['"', '`', '\'', '.', ' ']).to_string() } else { name };
    (!name.is_empty()).then_some(name)
}
