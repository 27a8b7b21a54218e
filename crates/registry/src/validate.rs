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
    let names = declared(parsed, kind);
    let help = suggest::help(wanted, names.iter().copied())
        .unwrap_or_else(|| format!("define a {} named `{wanted}` or fix the name", kind.name().replace('_', " ")));
    Diagnostic::new(location, format!("{used_by} refers to unknown {} `{wanted}`", kind.name().replace('_', " "))).with_help(help)
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
            source.format = target.format;
            source.timestamp_field = target.timestamp_field.clone();
            source.created_timestamp_column = target.created_timestamp_column.clone();
            source.field_mapping = target.field_mapping.clone();
        }
    }
}

fn check_services(parsed: &Parsed, out: &mut Diagnostics) {
    let defs = &parsed.definitions;
    let views = declared(parsed, ObjectKind::FeatureView);
    for service in &defs.feature_services {
        let used_by = format!("feature service `{}`", service.name);
        for (index, reference) in service.features.iter().enumerate() {
            let location = at(parsed, ObjectKind::FeatureService, &service.name, &format!("features[{index}]"));
            if service.features[..index].contains(reference) {
                out.push(Diagnostic::new(location, format!("`{reference}` is listed twice in {used_by}")).with_help("remove the repeat"));
                continue;
            }
            if !views.contains(&reference.view.as_str()) {
                out.push(unknown(parsed, ObjectKind::FeatureView, &reference.view, location, &used_by));
                continue;
            }
            let (Some(feature), Some(view)) = (&reference.feature, defs.feature_view(&reference.view)) else { continue };
            if view.feature(feature).is_none() {
                let help = suggest::help(feature, view.schema.iter().map(|f| f.name.as_str()))
                    .map(|h| h.replace("did you mean `", &format!("did you mean `{}:", view.name)))
                    .unwrap_or_else(|| format!("feature view `{}` has no such feature", view.name));
                out.push(Diagnostic::new(location, format!("{used_by} refers to unknown feature `{reference}`")).with_help(help));
            }
        }
    }
}
