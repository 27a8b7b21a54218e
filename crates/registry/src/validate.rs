//! Cross-object checks: references between objects and names that collide.
//!
//! Runs after parsing, on whatever parsed cleanly, and checks references
//! against every *declared* name (so an object with its own error does not
//! also produce "unknown X" errors everywhere it is used).

use almanac_core::{Diagnostic, Diagnostics, Location, ObjectKind, suggest};

use crate::parse::Parsed;

pub fn validate(parsed: &Parsed) -> Diagnostics {
    let mut out = Diagnostics::default();
    check_push_sources(parsed, &mut out);
    check_views(parsed, &mut out);
    check_shared_names(parsed, &mut out);
    check_on_demand_views(parsed, &mut out);
    check_request_fields(parsed, &mut out);
    check_services(parsed, &mut out);
    out
}

fn declared(parsed: &Parsed, kind: ObjectKind) -> Vec<&str> {
    parsed.declared.get(&kind).map(|v| v.iter().map(String::as_str).collect()).unwrap_or_default()
}

fn at(parsed: &Parsed, kind: ObjectKind, name: &str, field: &str) -> Location {
    parsed.locations.field(kind, name, field).unwrap_or_else(|| Location::file("<unknown>"))
}

fn unknown(parsed: &Parsed, kind: ObjectKind, wanted: &str, location: Location, used_by: &str) -> Diagnostic {
    unknown_of(parsed, &[kind], kind.noun(), wanted, location, used_by)
}

/// A reference that may name an object of any of `kinds` (written `what`):
/// the suggestion is drawn from all of them.
fn unknown_of(parsed: &Parsed, kinds: &[ObjectKind], what: &str, wanted: &str, location: Location, used_by: &str) -> Diagnostic {
    let names: Vec<&str> = kinds.iter().flat_map(|kind| declared(parsed, *kind)).collect();
    let help = suggest::help(wanted, names.iter().copied()).unwrap_or_else(|| format!("define a {what} named `{wanted}` or fix the name"));
    Diagnostic::new(location, format!("{used_by} refers to unknown {what} `{wanted}`")).with_help(help)
}

fn check_views(parsed: &Parsed, out: &mut Diagnostics) {
    let defs = &parsed.definitions;
    for view in &defs.feature_views {
        let used_by = format!("feature view `{}`", view.name);
        let entities = declared(parsed, ObjectKind::Entity);
        let mut key_owner: Vec<(String, String)> = Vec::new();
        for (index, entity_name) in view.entities.iter().enumerate() {
            let location = at(parsed, ObjectKind::FeatureView, &view.name, &format!("entities[{index}]"));
            if !entities.contains(&entity_name.as_str()) {
                out.push(unknown(parsed, ObjectKind::Entity, entity_name, location, &used_by));
                continue;
            }
            if view.entities[..index].contains(entity_name) {
                out.push(Diagnostic::new(location, format!("entity `{entity_name}` is listed twice in {used_by}")).with_help("remove the repeat"));
                continue;
            }
            let Some(entity) = defs.entity(entity_name) else { continue };
            for key in &entity.join_keys {
                if let Some((_, other)) = key_owner.iter().find(|(k, _)| *k == key.name) {
                    out.push(
                        Diagnostic::new(location.clone(), format!("entities `{other}` and `{entity_name}` of {used_by} share the join key `{}`", key.name))
                            .with_help("give each entity of a view distinct join keys"),
                    );
                }
                key_owner.push((key.name.clone(), entity_name.clone()));
            }
        }
        // An empty source was already reported as a missing key.
        if !view.source.is_empty() && !declared(parsed, ObjectKind::Source).contains(&view.source.as_str()) {
            let location = at(parsed, ObjectKind::FeatureView, &view.name, "source");
            out.push(unknown(parsed, ObjectKind::Source, &view.source, location, &used_by));
        }
        let source = defs.source(&view.source);
        for (index, field) in view.schema.iter().enumerate() {
            let location = at(parsed, ObjectKind::FeatureView, &view.name, &format!("schema[{index}]"));
            if let Some((_, entity)) = key_owner.iter().find(|(k, _)| *k == field.name) {
                out.push(
                    Diagnostic::new(location, format!("feature `{}` of {used_by} has the name of a join key of entity `{entity}`", field.name))
                        .with_help("join keys are added to every result automatically; remove the feature or rename it"),
                );
                continue;
            }
            let Some(source) = source else { continue };
            let timestamps = [Some(&source.timestamp_field), source.created_timestamp_column.as_ref()];
            if timestamps.iter().flatten().any(|t| **t == field.name) {
                out.push(
                    Diagnostic::new(location, format!("feature `{}` of {used_by} has the name of a timestamp column of source `{}`", field.name, source.name))
                        .with_help("timestamps are not features; remove it, or map the column to another name with `field_mapping`"),
                );
            }
        }
    }
}

/// A push source must name a batch (file) source: that is where its rows
/// are appended and what training sets read.
fn check_push_sources(parsed: &Parsed, out: &mut Diagnostics) {
    let defs = &parsed.definitions;
    for source in &defs.sources {
        let Some(batch) = &source.batch_source else { continue };
        let location = at(parsed, ObjectKind::Source, &source.name, "batch_source");
        let used_by = format!("push source `{}`", source.name);
        match defs.source(batch) {
            None if !declared(parsed, ObjectKind::Source).contains(&batch.as_str()) => out.push(unknown(parsed, ObjectKind::Source, batch, location, &used_by)),
            Some(target) if target.batch_source.is_some() => out.push(Diagnostic::new(location, format!("{used_by} wraps `{batch}`, which is itself a push source")).with_help("name a batch source (one with `path` and `timestamp_field`)")),
            _ => {}
        }
    }
}

/// Give each push source its batch source's files and timestamp columns,
/// so everything downstream reads it like any batch source.
pub fn resolve_push_sources(parsed: &mut Parsed) {
    let batches: Vec<(String, almanac_core::Source)> = parsed.definitions.sources.iter().filter(|s| s.batch_source.is_none()).map(|s| (s.name.clone(), s.clone())).collect();
    for source in parsed.definitions.sources.iter_mut() {
        let Some(batch) = &source.batch_source else { continue };
        if let Some((_, target)) = batches.iter().find(|(name, _)| name == batch) {
            source.path = target.path.clone();
            source.table = target.table.clone();
            source.query = target.query.clone();
            source.format = target.format;
            source.timestamp_field = target.timestamp_field.clone();
            source.created_timestamp_column = target.created_timestamp_column.clone();
            source.field_mapping = target.field_mapping.clone();
        }
    }
}

/// Feature views, on-demand views and request sources share one namespace:
/// `x:feature` must name exactly one view, and an on-demand view's `sources`
/// mix views and request sources. (Repeats within one kind are reported by
/// the parser as "defined twice".)
fn check_shared_names(parsed: &Parsed, out: &mut Diagnostics) {
    let kinds = [ObjectKind::FeatureView, ObjectKind::OnDemandFeatureView, ObjectKind::RequestSource];
    for (index, &first) in kinds.iter().enumerate() {
        let taken = declared(parsed, first);
        for &second in &kinds[index + 1..] {
            for name in declared(parsed, second).into_iter().filter(|n| taken.contains(n)) {
                let (Some(here), Some(there)) = (parsed.locations.object(second, name), parsed.locations.object(first, name)) else { continue };
                out.push(
                    Diagnostic::new(here, format!("{} `{name}` has the name of {} `{name}`", second.noun(), first.noun()))
                        .with_related(there, format!("the {} is defined", first.noun()))
                        .with_help("feature views, on-demand feature views and request sources share one namespace (`name:feature` must name one of them); rename one"),
                );
            }
        }
    }
}

/// An on-demand view reads feature views and request sources, each listed once.
fn check_on_demand_views(parsed: &Parsed, out: &mut Diagnostics) {
    let readable = [ObjectKind::FeatureView, ObjectKind::RequestSource];
    for view in &parsed.definitions.on_demand_feature_views {
        let used_by = format!("on-demand feature view `{}`", view.name);
        for (index, source) in view.sources.iter().enumerate() {
            let location = at(parsed, ObjectKind::OnDemandFeatureView, &view.name, &format!("sources[{index}]"));
            if view.sources[..index].contains(source) {
                out.push(Diagnostic::new(location, format!("`{source}` is listed twice in the sources of {used_by}")).with_help("remove the repeat"));
                continue;
            }
            if readable.iter().any(|kind| declared(parsed, *kind).contains(&source.as_str())) {
                continue;
            }
            // Names of the wrong kind get their own explanation rather than a
            // "did you mean" pointing elsewhere.
            let diagnostic = if declared(parsed, ObjectKind::OnDemandFeatureView).contains(&source.as_str()) {
                Diagnostic::new(location, format!("{used_by} reads on-demand feature view `{source}`"))
                    .with_help("an on-demand view reads feature views and request sources only; list the views that one reads instead")
            } else if declared(parsed, ObjectKind::Source).contains(&source.as_str()) {
                Diagnostic::new(location, format!("{used_by} reads source `{source}` directly"))
                    .with_help("an on-demand view reads feature views (which read sources) and request sources; list a feature view of that source")
            } else {
                unknown_of(parsed, &readable, "feature view or request source", source, location, &used_by)
            };
            out.push(diagnostic);
        }
    }
}

/// A request field named like a join key would be ambiguous wherever
/// request data sits beside the keys (the entity table's columns, the
/// HTTP `entities` object): is `user_id` the entity or the request value?
fn check_request_fields(parsed: &Parsed, out: &mut Diagnostics) {
    let defs = &parsed.definitions;
    for request in &defs.request_sources {
        for (index, field) in request.schema.iter().enumerate() {
            let Some(entity) = defs.entities.iter().find(|e| e.join_keys.iter().any(|k| k.name == field.name)) else { continue };
            let location = at(parsed, ObjectKind::RequestSource, &request.name, &format!("schema[{index}]"));
            out.push(
                Diagnostic::new(location, format!("request field `{}` of request source `{}` has the name of a join key of entity `{}`", field.name, request.name, entity.name))
                    .with_help(format!("request data sits beside the join keys (entity table columns, HTTP `entities`), so the names must differ; rename the field, e.g. `request_{}`", field.name)),
            );
        }
    }
}

/// Every service reference names a feature view or an on-demand view and,
/// when it names a feature, one that view has.
fn check_services(parsed: &Parsed, out: &mut Diagnostics) {
    let defs = &parsed.definitions;
    let views = [ObjectKind::FeatureView, ObjectKind::OnDemandFeatureView];
    for service in &defs.feature_services {
        let used_by = format!("feature service `{}`", service.name);
        for (index, reference) in service.features.iter().enumerate() {
            let location = at(parsed, ObjectKind::FeatureService, &service.name, &format!("features[{index}]"));
            if service.features[..index].contains(reference) {
                out.push(Diagnostic::new(location, format!("`{reference}` is listed twice in {used_by}")).with_help("remove the repeat"));
                continue;
            }
            if !views.iter().any(|kind| declared(parsed, *kind).contains(&reference.view.as_str())) {
                out.push(unknown_of(parsed, &views, ObjectKind::FeatureView.noun(), &reference.view, location, &used_by));
                continue;
            }
            // A view that failed to parse has no features to check against.
            let (Some(feature), Some(features), Some(kind)) =
                (&reference.feature, defs.features_of(&reference.view), defs.view_kind(&reference.view))
            else {
                continue;
            };
            if !features.iter().any(|(name, _)| *name == feature.as_str()) {
                let help = suggest::help(feature, features.iter().map(|(name, _)| *name))
                    .map(|h| h.replace("did you mean `", &format!("did you mean `{}:", reference.view)))
                    .unwrap_or_else(|| format!("{} `{}` has no such feature", kind.noun(), reference.view));
                out.push(Diagnostic::new(location, format!("{used_by} refers to unknown feature `{reference}`")).with_help(help));
            }
        }
    }
}
