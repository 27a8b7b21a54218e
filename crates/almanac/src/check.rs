//! Apply-time checks of definitions against the sources' real files.
//!
//! Reads each source's schema from metadata only (never its rows), then checks
//! that timestamp columns, join keys and features exist with compatible types,
//! and resolves each entity's join-key dtypes from the files. Every problem is
//! reported at the place in the YAML that has to change.

use std::collections::HashMap;
use std::path::Path;

use almanac_core::defs::{AggFunction, Aggregation};
use almanac_core::{DType, Definitions, Diagnostic, Diagnostics, FeatureView, FileFormat, Location, ObjectKind, Source, suggest};
use almanac_offline::{SourceError, list_source_files, read_source_schema};
use almanac_registry::RepoDefinitions;
use almanac_registry::repo::attach_snippets;
use arrow::datatypes::{DataType, Schema, SchemaRef};

struct Checker<'a> {
    repo: &'a RepoDefinitions,
    out: Diagnostics,
}

impl Checker<'_> {
    fn at(&self, kind: ObjectKind, name: &str, field: &str) -> Location {
        self.repo.parsed.locations.field(kind, name, field).unwrap_or_else(|| Location::file("<unknown>"))
    }

    fn report(&mut self, location: Location, message: String, help: Option<String>) {
        self.out.push(Diagnostic::new(location, message).with_optional_help(help));
    }
}

/// Check `repo` against its sources' files; on success, the definitions
/// with every join key's dtype filled in, and every aggregation's input
/// dtype (and so its feature's dtype) resolved from the files.
///
/// `tables` is set when the offline store is a database (PostgreSQL): it
/// reads a `table:` or `query:` source's columns from the engine. Without
/// it, sources are files.
pub fn against_sources(root: &Path, repo: &RepoDefinitions, tables: Option<&TableSchemas>) -> Result<Definitions, Diagnostics> {
    let mut checker = Checker { repo, out: Diagnostics::default() };
    let defs = &repo.parsed.definitions;
    let mut schemas: HashMap<&str, (FileFormat, SchemaRef)> = HashMap::new();
    for source in &defs.sources {
        let found = match tables {
            Some(tables) => check_table_source(&mut checker, tables, source),
            None => check_source(&mut checker, root, source),
        };
        if let Some(found) = found {
            schemas.insert(&source.name, found);
        }
    }
    let mut resolved = defs.clone();
    let mut key_types: HashMap<(String, String), (DType, String)> = HashMap::new();
    for (index, view) in defs.feature_views.iter().enumerate() {
        let (Some(source), Some((format, schema))) = (defs.source(&view.source), schemas.get(view.source.as_str())) else { continue };
        check_view_keys(&mut checker, defs, view, source, schema, &mut key_types);
        if view.is_aggregation() {
            // `resolved` is a clone of `defs`: the same views in the same order.
            check_view_aggregations(&mut checker, &mut resolved.feature_views[index], source, schema);
        } else {
            check_view_features(&mut checker, view, source, *format, schema);
        }
    }
    for entity in &mut resolved.entities {
        for (index, key) in entity.join_keys.iter_mut().enumerate() {
            let Some((found, view)) = key_types.get(&(entity.name.clone(), key.name.clone())) else { continue };
            match &key.dtype {
                Some(declared) if declared != found => {
                    let location = checker.at(ObjectKind::Entity, &entity.name, &format!("join_keys[{index}]"));
                    checker.report(
                        location,
                        format!("join key `{}` of entity `{}` is declared {declared}, but feature view `{view}`'s source stores {found}", key.name, entity.name),
                        Some(format!("declare `dtype: {found}` or cast the column in the source files")),
                    );
                }
                _ => key.dtype = Some(found.clone()),
            }
        }
    }
    check_on_demand(&mut checker, &resolved);
    if checker.out.is_empty() {
        Ok(resolved)
    } else {
        attach_snippets(&mut checker.out, &repo.files);
        checker.out.sort();
        Err(checker.out)
    }
}

/// Every on-demand expression parsed, type-checked and compiled exactly as
/// serving and training will run it; each mistake is reported at its
/// `expr` (unknown or ambiguous names, aggregates, subqueries, volatile
/// functions, a type that does not fit the declared dtype).
fn check_on_demand(checker: &mut Checker, defs: &Definitions) {
    for view in &defs.on_demand_feature_views {
        let Err(errors) = almanac_transform::compile(view, defs) else { continue };
        for error in errors {
            let field = match &error.feature {
                Some(feature) => view.features.iter().position(|f| f.name == *feature).map_or_else(|| "features".to_string(), |i| format!("features[{i}].expr")),
                None => "sources".to_string(),
            };
            let location = checker.at(ObjectKind::OnDemandFeatureView, &view.name, &field);
            let subject = error.feature.as_ref().map_or_else(|| format!("on-demand view `{}`", view.name), |f| format!("on-demand feature `{}:{f}`", view.name));
            checker.report(location, format!("{subject}: {}", error.message), error.help.clone());
        }
    }
}

/// How a database engine reads a source's columns (no rows).
pub type TableSchemas<'a> = dyn Fn(&Source) -> Result<SchemaRef, String> + 'a;

/// A source of a database engine: a `table:` or `query:` whose columns the
/// engine reports; timestamps and keys are then checked as for files.
fn check_table_source(checker: &mut Checker, tables: &TableSchemas, source: &Source) -> Option<(FileFormat, SchemaRef)> {
    let field = if source.query.is_some() { "query" } else if source.table.is_some() { "table" } else { "path" };
    let location = checker.at(ObjectKind::Source, &source.name, field);
    if source.table.is_none() && source.query.is_none() {
        checker.report(
            location,
            format!("source `{}` is files (`path`), but the offline store is a database that cannot read them", source.name),
            Some("load the files into a table and write `table: SCHEMA.TABLE` (or `query: SELECT ...`), or use `offline: {type: embedded}` / `{type: spark}`".into()),
        );
        return None;
    }
    let schema = match tables(source) {
        Ok(schema) => schema,
        Err(error) => {
            checker.report(location, format!("source `{}`: {error}", source.name), Some(format!("check the {field} in the database the offline store names in almanac.yaml")));
            return None;
        }
    };
    check_timestamp_columns(checker, source, &schema, FileFormat::Parquet);
    Some((FileFormat::Parquet, schema))
}

fn check_source(checker: &mut Checker, root: &Path, source: &Source) -> Option<(FileFormat, SchemaRef)> {
    if source.table.is_some() || source.query.is_some() {
        let field = if source.query.is_some() { "query" } else { "table" };
        let location = checker.at(ObjectKind::Source, &source.name, field);
        checker.report(
            location,
            format!("source `{}` is a database {field}, but the offline store reads files", source.name),
            Some("set `offline: {type: postgres, url: \"postgresql://HOST:5432/DB\"}` in almanac.yaml, or give the source a `path`".into()),
        );
        return None;
    }
    let location = checker.at(ObjectKind::Source, &source.name, "path");
    let files = match list_source_files(root, source).and_then(|files| Ok((files.format, read_source_schema(&files)?))) {
        Ok(found) => found,
        Err(error) => {
            let help = match &error {
                SourceError::NotFound { .. } | SourceError::NoFiles { .. } => {
                    Some("check the path; relative paths are relative to the repo folder".to_string())
                }
                _ => None,
            };
            checker.report(location, format!("source `{}`: {error}", source.name), help);
            return None;
        }
    };
    check_timestamp_columns(checker, source, &files.1, files.0);
    Some(files)
}

fn check_timestamp_columns(checker: &mut Checker, source: &Source, schema: &Schema, format: FileFormat) {
    let mut timestamps = vec![("timestamp_field", &source.timestamp_field)];
    timestamps.extend(source.created_timestamp_column.as_ref().map(|c| ("created_timestamp_column", c)));
    for (field, name) in timestamps {
        let column = source.file_column(name);
        let location = checker.at(ObjectKind::Source, &source.name, field);
        match schema.field_with_name(column) {
            Err(_) => checker.report(
                location,
                format!("source `{}` has no column `{column}` for its `{field}`", source.name),
                Some(column_help(column, schema)),
            ),
            Ok(found) if !is_timestamp_like(found.data_type(), format) => checker.report(
                location,
                format!("column `{column}` of source `{}` is {}, not a timestamp", source.name, found.data_type()),
                Some("store event times as a timestamp column (CSV: RFC 3339 text)".into()),
            ),
            Ok(_) => {}
        }
    }
}

/// CSV has no timestamp type of its own: text columns are parsed as RFC 3339
/// when read, so a string column is acceptable there.
fn is_timestamp_like(data_type: &DataType, format: FileFormat) -> bool {
    matches!(data_type, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64)
        || (format == FileFormat::Csv && matches!(data_type, DataType::Utf8 | DataType::LargeUtf8))
}

fn column_help(column: &str, schema: &Schema) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    match suggest::closest(column, names.iter().copied()) {
        Some(best) => format!("did you mean `{best}`? (or map it with `field_mapping: {{{best}: {column}}}`)"),
        None => format!("the files have: {}", names.join(", ")),
    }
}

fn key_dtype(data_type: &DataType) -> Option<DType> {
    match data_type {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => Some(DType::Int64),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(DType::String),
        _ => None,
    }
}

fn check_view_keys(
    checker: &mut Checker,
    defs: &Definitions,
    view: &almanac_core::FeatureView,
    source: &Source,
    schema: &Schema,
    key_types: &mut HashMap<(String, String), (DType, String)>,
) {
    for (index, entity_name) in view.entities.iter().enumerate() {
        let Some(entity) = defs.entity(entity_name) else { continue };
        let location = checker.at(ObjectKind::FeatureView, &view.name, &format!("entities[{index}]"));
        for key in &entity.join_keys {
            let column = source.file_column(&key.name);
            let Ok(field) = schema.field_with_name(column) else {
                checker.report(
                    location.clone(),
                    format!("join key `{}` of entity `{entity_name}` is not a column of source `{}`", key.name, source.name),
                    Some(column_help(column, schema)),
                );
                continue;
            };
            let Some(found) = key_dtype(field.data_type()) else {
                checker.report(
                    location.clone(),
                    format!("join key `{}` is stored as {} in source `{}`; join keys must be integers or strings", key.name, field.data_type(), source.name),
                    Some("cast the column to int64 or string in the source files".into()),
                );
                continue;
            };
            let slot = (entity_name.clone(), key.name.clone());
            match key_types.get(&slot) {
                Some((earlier, other_view)) if *earlier != found => checker.report(
                    location.clone(),
                    format!("join key `{}` of entity `{entity_name}` is {found} in source `{}` but {earlier} in the source of feature view `{other_view}`", key.name, source.name),
                    Some("store the key with one type in every source".into()),
                ),
                Some(_) => {}
                None => {
                    key_types.insert(slot, (found, view.name.clone()));
                }
            }
        }
    }
}

fn check_view_features(checker: &mut Checker, view: &almanac_core::FeatureView, source: &Source, format: FileFormat, schema: &Schema) {
    for (index, feature) in view.schema.iter().enumerate() {
        let column = source.file_column(&feature.name);
        let Ok(field) = schema.field_with_name(column) else {
            let location = checker.at(ObjectKind::FeatureView, &view.name, &format!("schema[{index}]"));
            checker.report(
                location,
                format!("feature `{}` of feature view `{}` is not a column of source `{}`", feature.name, view.name, source.name),
                Some(column_help(column, schema)),
            );
            continue;
        };
        let compatible = feature.dtype.accepts(field.data_type())
            // CSV inference cannot tell int32 from int64, or see timestamps in text.
            || (format == FileFormat::Csv && csv_compatible(&feature.dtype, field.data_type()));
        if !compatible {
            let location = checker.at(ObjectKind::FeatureView, &view.name, &format!("schema[{index}].dtype"));
            let stored = DType::from_arrow(field.data_type()).map(|d| d.to_string()).unwrap_or_else(|| field.data_type().to_string());
            checker.report(
                location,
                format!("feature `{}` is declared {} but source `{}` stores it as {stored}", feature.name, feature.dtype, source.name),
                Some(format!("declare `dtype: {}`, or cast the column in the source files", yaml_scalar(&stored))),
            );
        }
    }
}

/// An aggregation view declares no features of its own: each aggregation's
/// `column` must be a column of the source, and its stored type decides
/// whether the function applies (`mean` of a string does not) and the
/// feature's dtype. Fills in each `input_dtype` and the derived schema.
fn check_view_aggregations(checker: &mut Checker, view: &mut FeatureView, source: &Source, schema: &Schema) {
    let view_name = view.name.clone();
    for (index, aggregation) in view.aggregations.iter_mut().enumerate() {
        // `count` without a column counts events: nothing to read.
        let Some(name) = aggregation.column.clone() else { continue };
        let column = source.file_column(&name);
        let at = |field: &str| format!("aggregations[{index}].{field}");
        let Ok(field) = schema.field_with_name(column) else {
            let location = checker.at(ObjectKind::FeatureView, &view_name, &at("column"));
            checker.report(
                location,
                format!("aggregation `{}` of feature view `{view_name}` reads column `{name}`, which is not a column of source `{}`", aggregation.name, source.name),
                Some(column_help(column, schema)),
            );
            continue;
        };
        let Some(input) = DType::from_arrow(field.data_type()) else {
            let location = checker.at(ObjectKind::FeatureView, &view_name, &at("column"));
            checker.report(
                location,
                format!("column `{column}` of source `{}` is stored as {}, which aggregations cannot read", source.name, field.data_type()),
                Some("cast the column to bool, int32, int64, float32, float64, string, bytes, timestamp or a list of one of these in the source files".into()),
            );
            continue;
        };
        if aggregation.output_dtype(Some(&input)).is_none() {
            let location = checker.at(ObjectKind::FeatureView, &view_name, &at("function"));
            checker.report(
                location,
                format!("`{}` of column `{name}` ({input}) is not defined", aggregation.function),
                Some(applicable_functions(&input)),
            );
            continue;
        }
        aggregation.input_dtype = Some(input);
    }
    view.schema = view.aggregations.iter().map(Aggregation::feature).collect();
}

/// Help for a function that does not fit a column's type: the ones that do.
fn applicable_functions(input: &DType) -> String {
    let fitting: Vec<String> = AggFunction::ALL.iter().filter(|f| f.applies_to(input)).map(|f| format!("`{f}`")).collect();
    format!("over a {input} column use one of {}, or aggregate another column", fitting.join(", "))
}

fn csv_compatible(dtype: &DType, data_type: &DataType) -> bool {
    matches!(
        (dtype, data_type),
        (DType::Int32, DataType::Int64)
            | (DType::Float32 | DType::Float64, DataType::Int64)
            | (DType::Float32, DataType::Float64)
            | (DType::Timestamp, DataType::Utf8)
            | (_, DataType::Null)
    )
}

/// A dtype as YAML text: quoted when it holds `:` or `,` (a struct), which
/// YAML would otherwise read as a mapping.
fn yaml_scalar(dtype: &str) -> String {
    if dtype.contains([':', ',']) { format!("\"{dtype}\"") } else { dtype.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An aggregation view over a CSV source whose `amt` column is mapped to `amount`.
    const REPO: &str = "entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: transactions
    path: data/txn.csv
    timestamp_field: event_timestamp
    field_mapping: {amt: amount}
feature_views:
  - name: windows
    entities: [user]
    source: transactions
    aggregations:
      - {function: count, window: 1h}
      - {column: amount, function: sum, window: 7d}
      - {column: merchant, function: max, window: 7d}
      - {column: amount, function: last, n: 2, window: 1d}
";

    fn check(yaml: &str) -> Result<Definitions, Diagnostics> {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("almanac.yaml"), "project: test\n").expect("config");
        std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
        let csv = "user_id,event_timestamp,amt,merchant\n1,2026-01-01T00:00:00Z,1.5,shop\n2,2026-01-02T00:00:00Z,2.5,cafe\n";
        std::fs::write(dir.path().join("data/txn.csv"), csv).expect("csv");
        std::fs::write(dir.path().join("features.yaml"), yaml).expect("yaml");
        let repo = almanac_registry::load_definitions(dir.path()).expect("load");
        assert!(repo.parsed.diagnostics.is_empty(), "{}", repo.parsed.diagnostics);
        against_sources(dir.path(), &repo, None)
    }

    #[test]
    fn aggregation_inputs_and_feature_types_are_resolved_from_the_files() {
        let defs = check(REPO).expect("valid");
        let view = defs.feature_view("windows").expect("view");
        let features: Vec<(&str, String)> = view.schema.iter().map(|f| (f.name.as_str(), f.dtype.to_string())).collect();
        let expected = [("count_1h", "int64"), ("amount_sum_7d", "float64"), ("merchant_max_7d", "string"), ("amount_last_1d", "list<float64>")];
        assert_eq!(features, expected.map(|(name, dtype)| (name, dtype.to_string())));
        assert_eq!(view.aggregations[0].input_dtype, None, "a count of events reads no column");
        assert_eq!(view.aggregations[1].input_dtype, Some(DType::Float64), "read through the field mapping");
        assert_eq!(view.aggregations[2].input_dtype, Some(DType::String));
    }

    #[test]
    fn unknown_columns_and_unfit_functions_are_located() {
        let broken = REPO
            .replace("{column: amount, function: sum", "{column: amont, function: sum")
            .replace("{column: merchant, function: max", "{column: merchant, function: mean");
        let all = check(&broken).expect_err("two mistakes").0;
        assert_eq!(all.len(), 2, "{all:#?}");
        let unknown = all.iter().find(|d| d.message.contains("reads column `amont`")).expect("unknown column");
        assert_eq!(unknown.location.to_string(), "features.yaml:15:18");
        assert!(unknown.help.as_deref().is_some_and(|h| h.contains("amt")), "{unknown:?}");
        let unfit = all.iter().find(|d| d.message == "`mean` of column `merchant` (string) is not defined").expect("unfit function");
        assert_eq!(unfit.location.to_string(), "features.yaml:16:38");
        assert!(unfit.help.as_deref().is_some_and(|h| h.contains("`min`, `max`")), "{unfit:?}");
    }
}
