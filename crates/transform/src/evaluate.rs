//! The one evaluator: a compiled view's expressions over a batch of rows.

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use arrow::compute::{cast, concat};
use arrow::error::ArrowError;

use crate::compile::CompiledView;

/// The features computed for a batch.
#[derive(Debug)]
pub struct Evaluated {
    /// One array per requested feature, of its declared dtype.
    pub columns: Vec<ArrayRef>,
    /// Rows whose value became null because the expression failed on them
    /// (integer division by zero, integer overflow), over all features.
    pub failed_rows: usize,
}

impl CompiledView {
    /// The evaluation batch from one array per input (in
    /// [`CompiledView::inputs`] order), each cast to its input's type.
    pub fn input_batch(&self, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch, ArrowError> {
        if columns.len() != self.inputs.len() {
            return Err(ArrowError::InvalidArgumentError(format!("on-demand view `{}` reads {} inputs, {} were given", self.name, self.inputs.len(), columns.len())));
        }
        let columns = columns.iter().zip(self.schema.fields()).map(|(column, field)| if column.data_type() == field.data_type() { Ok(column.clone()) } else { cast(column, field.data_type()) }).collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &RecordBatchOptions::new().with_row_count(Some(rows)))
    }

    /// Evaluate the features at `wanted` (indices into the view's features)
    /// over `batch` (built by [`CompiledView::input_batch`]).
    pub fn evaluate(&self, batch: &RecordBatch, wanted: &[usize]) -> Result<Evaluated, ArrowError> {
        let mut columns = Vec::with_capacity(wanted.len());
        let mut failed_rows = 0;
        for &index in wanted {
            let feature = self.features.get(index).ok_or_else(|| ArrowError::InvalidArgumentError(format!("on-demand view `{}` has no feature {index}", self.name)))?;
            let target = feature.dtype.to_arrow();
            let column = match evaluate_one(&*feature.expr, batch) {
                Ok(array) => array,
                // Integer division by zero or overflow fails the whole batch in
                // Arrow's kernels: evaluate row by row, the failing rows null.
                Err(_) => {
                    let mut parts = Vec::with_capacity(batch.num_rows());
                    for row in 0..batch.num_rows() {
                        match evaluate_one(&*feature.expr, &batch.slice(row, 1)) {
                            Ok(array) => parts.push(cast(&array, &target)?),
                            Err(_) => {
                                failed_rows += 1;
                                parts.push(new_null_array(&target, 1));
                            }
                        }
                    }
                    if parts.is_empty() {
                        new_null_array(&target, 0)
                    } else {
                        concat(&parts.iter().map(|a| a.as_ref()).collect::<Vec<&dyn Array>>())?
                    }
                }
            };
            columns.push(if column.data_type() == &target { column } else { cast(&column, &target)? });
        }
        Ok(Evaluated { columns, failed_rows })
    }
}

fn evaluate_one(expr: &dyn datafusion::physical_expr::PhysicalExpr, batch: &RecordBatch) -> Result<ArrayRef, ArrowError> {
    let value = expr.evaluate(batch).map_err(|e| ArrowError::ComputeError(e.to_string()))?;
    value.into_array(batch.num_rows()).map_err(|e| ArrowError::ComputeError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use almanac_core::defs::Governance;
    use almanac_core::{DType, Definitions, Entity, FeatureView, Field, JoinKey, OnDemandFeature, OnDemandFeatureView, RequestSource, Source};
    use arrow::array::{Array, AsArray, BooleanArray, Float64Array, Int64Array};
    use arrow::datatypes::{Float64Type, Int64Type};

    use crate::compile;

    fn field(name: &str, dtype: DType) -> Field {
        Field { name: name.into(), dtype, description: String::new(), tags: Default::default() }
    }

    fn definitions(features: Vec<(&str, DType, &str)>) -> (Definitions, OnDemandFeatureView) {
        let view = |name: &str, schema: Vec<Field>| FeatureView { name: name.into(), entities: vec!["user".into()], source: "s".into(), ttl: None, online: true, schema, aggregations: Vec::new(), tile: None, monitoring: Default::default(), governance: Governance::default() };
        let odfv = OnDemandFeatureView {
            name: "ratios".into(),
            sources: vec!["stats".into(), "request".into()],
            features: features.into_iter().map(|(name, dtype, expr)| OnDemandFeature { name: name.into(), dtype, expr: expr.into(), description: String::new(), tags: Default::default() }).collect(),
            governance: Governance::default(),
        };
        let defs = Definitions {
            entities: vec![Entity { name: "user".into(), join_keys: vec![JoinKey { name: "user_id".into(), dtype: Some(DType::Int64) }], governance: Governance::default() }],
            sources: vec![Source { name: "s".into(), path: "s.parquet".into(), format: None, timestamp_field: "ts".into(), created_timestamp_column: None, field_mapping: Default::default(), table: None, query: None, batch_source: None, stream: None, governance: Governance::default() }],
            feature_views: vec![view("stats", vec![field("avg", DType::Float64), field("count", DType::Int64)]), view("other", vec![field("avg", DType::Float64)])],
            request_sources: vec![RequestSource { name: "request".into(), schema: vec![field("amount", DType::Float64), field("n", DType::Int64)], governance: Governance::default() }],
            on_demand_feature_views: vec![odfv.clone()],
            ..Default::default()
        };
        (defs, odfv)
    }

    fn errors(expr: &str, dtype: DType) -> Vec<super::super::CompileError> {
        let (defs, view) = definitions(vec![("f", dtype, expr)]);
        compile(&view, &defs).expect_err("should not compile")
    }

    #[test]
    fn one_expression_over_a_batch_with_nulls_zeros_and_integer_division_by_zero() {
        let (defs, view) = definitions(vec![("ratio", DType::Float64, "amount / nullif(avg, 0)"), ("large", DType::Bool, "amount > 1000"), ("per", DType::Int64, "n / count")]);
        let compiled = compile(&view, &defs).expect("compiles");
        let inputs: Vec<Arc<dyn Array>> = vec![
            Arc::new(Float64Array::from(vec![Some(2.0), Some(0.0), None, Some(4.0)])),
            Arc::new(Int64Array::from(vec![Some(2), Some(0), Some(1), None])),
            Arc::new(Float64Array::from(vec![Some(10.0), Some(5.0), Some(1500.0), Some(f64::NAN)])),
            Arc::new(Int64Array::from(vec![Some(10), Some(5), Some(3), Some(1)])),
        ];
        let batch = compiled.input_batch(inputs, 4).expect("batch");
        let out = compiled.evaluate(&batch, &[0, 1, 2]).expect("evaluate");
        let ratio = out.columns[0].as_primitive::<Float64Type>();
        assert_eq!((ratio.value(0), ratio.is_null(1), ratio.is_null(2)), (5.0, true, true));
        assert!(ratio.value(3).is_nan());
        // NaN sorts above every number (as in PostgreSQL and Arrow's kernels).
        assert_eq!(out.columns[1].as_boolean(), &BooleanArray::from(vec![Some(false), Some(false), Some(true), Some(true)]));
        let per = out.columns[2].as_primitive::<Int64Type>();
        assert_eq!((per.value(0), per.is_null(1), per.value(2), per.is_null(3)), (5, true, 3, true));
        assert_eq!(out.failed_rows, 1, "only the integer division by zero failed");
    }

    #[test]
    fn integer_overflow_is_null_and_counted_never_wrapped() {
        let (defs, view) = definitions(vec![("big", DType::Int64, "n * 4611686018427387904 + count"), ("diff", DType::Int64, "count - n")]);
        let compiled = compile(&view, &defs).expect("compiles");
        let names: Vec<&str> = compiled.inputs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["count", "n"], "only the inputs an expression reads, in source order");
        let inputs: Vec<Arc<dyn Array>> = vec![Arc::new(Int64Array::from(vec![Some(1), Some(1), Some(i64::MIN)])), Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(1)]))];
        let batch = compiled.input_batch(inputs, 3).expect("batch");
        let out = compiled.evaluate(&batch, &[0, 1]).expect("evaluate");
        let big = out.columns[0].as_primitive::<Int64Type>();
        assert_eq!((big.value(0), big.is_null(1), big.value(2)), (4611686018427387905, true, -4611686018427387904), "2 * 2^62 overflows; 2^62 + i64::MIN does not");
        let diff = out.columns[1].as_primitive::<Int64Type>();
        assert_eq!((diff.value(0), diff.value(1), diff.is_null(2)), (0, -1, true));
        assert_eq!(out.failed_rows, 2, "row 1 of `big` and row 2 of `diff`");
    }

    #[test]
    fn mistakes_are_explained_with_a_suggestion() {
        let unknown = errors("amout / avg", DType::Float64);
        assert!(unknown[0].message.contains("unknown name `amout`"), "{unknown:?}");
        assert_eq!(unknown[0].help.as_deref(), Some("did you mean `amount`?"));
        let aggregate = errors("sum(amount)", DType::Float64);
        assert!(aggregate[0].message.contains("aggregate"), "{aggregate:?}");
        let volatile = errors("amount * random()", DType::Float64);
        assert!(volatile[0].message.contains("not deterministic"), "{volatile:?}");
        let now = errors("now()", DType::Timestamp);
        assert!(now[0].message.contains("not deterministic"), "{now:?}");
        let subquery = errors("(select 1)", DType::Int64);
        assert!(subquery[0].message.contains("subquer"), "{subquery:?}");
        let wrong_type = errors("amount > 1", DType::Float64);
        assert!(wrong_type[0].message.contains("type is bool") && wrong_type[0].help.as_deref().is_some_and(|h| h.contains("dtype: bool")), "{wrong_type:?}");
        let narrowing = errors("amount", DType::Int64);
        assert!(narrowing[0].message.contains("does not fit"), "{narrowing:?}");
        let garbage = errors("amount +* ", DType::Float64);
        assert!(garbage[0].message.starts_with("cannot read the expression"), "{garbage:?}");
    }

    #[test]
    fn a_name_two_sources_share_must_be_qualified() {
        let (mut defs, mut view) = definitions(vec![("f", DType::Float64, "avg * 2")]);
        view.sources = vec!["stats".into(), "other".into()];
        defs.on_demand_feature_views = vec![view.clone()];
        let ambiguous = compile(&view, &defs).expect_err("ambiguous");
        assert!(ambiguous[0].message.contains("ambiguous"), "{ambiguous:?}");
        assert!(ambiguous[0].help.as_deref().is_some_and(|h| h.contains("`stats.avg`")), "{ambiguous:?}");
        view.features[0].expr = "stats.avg - other.avg".into();
        assert!(compile(&view, &defs).is_ok());
    }

    proptest::proptest! {
        /// The compiler never panics on arbitrary text.
        #[test]
        fn random_text_never_panics(text in "[ -~]{0,40}") {
            let (defs, view) = definitions(vec![("f", DType::Float64, &text)]);
            let _ = compile(&view, &defs);
        }
    }
}
