//! Discovery: list, describe and search what the registry holds.
//!
//! Individual features are first-class catalog entries (`view:feature`), since
//! "is there already a feature for X?" is the question people actually ask.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use almanac_core::defs::Governance;
use almanac_core::{Definitions, ObjectKind, suggest};
use serde::Serialize;
use serde_json::{Value, json};

use crate::state::RegistryState;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogEntry {
    /// `entity`, `source`, `request_source`, `feature_view`,
    /// `on_demand_feature_view`, `feature_service` or `feature` (a feature of
    /// either kind of view, named `view:feature`).
    pub kind: String,
    pub name: String,
    pub owner: String,
    pub description: String,
    pub tags: BTreeMap<String, String>,
}

/// Filters for `features list`; every given filter must match.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub owner: Option<String>,
    pub tags: Vec<(String, String)>,
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    pub score: u32,
    #[serde(flatten)]
    pub entry: CatalogEntry,
}

#[derive(Debug, thiserror::Error)]
#[error("nothing named `{name}` in the registry{}", help.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
pub struct NotFound {
    pub name: String,
    pub help: Option<String>,
}

/// Every object and feature, in kind then name order.
pub fn entries(state: &RegistryState) -> Vec<CatalogEntry> {
    let defs = &state.definitions;
    let entry = |kind: &str, name: &str, g: &Governance| CatalogEntry {
        kind: kind.into(),
        name: name.into(),
        owner: g.owner.clone(),
        description: g.description.clone(),
        tags: g.tags.clone(),
    };
    // A feature is owned by its view and carries the view's tags under its own.
    let feature = |view: &str, g: &Governance, name: &str, description: &str, own_tags: &BTreeMap<String, String>| {
        let mut tags = g.tags.clone();
        tags.extend(own_tags.clone());
        CatalogEntry { kind: "feature".into(), name: format!("{view}:{name}"), owner: g.owner.clone(), description: description.into(), tags }
    };
    let mut out = Vec::new();
    out.extend(defs.entities.iter().map(|o| entry("entity", &o.name, &o.governance)));
    out.extend(defs.sources.iter().map(|o| entry("source", &o.name, &o.governance)));
    out.extend(defs.request_sources.iter().map(|o| entry("request_source", &o.name, &o.governance)));
    for view in &defs.feature_views {
        out.push(entry("feature_view", &view.name, &view.governance));
        for field in &view.schema {
            out.push(feature(&view.name, &view.governance, &field.name, &field.description, &field.tags));
        }
    }
    for view in &defs.on_demand_feature_views {
        out.push(entry("on_demand_feature_view", &view.name, &view.governance));
        for field in &view.features {
            out.push(feature(&view.name, &view.governance, &field.name, &field.description, &field.tags));
        }
    }
    out.extend(defs.feature_services.iter().map(|o| entry("feature_service", &o.name, &o.governance)));
    out
}

pub fn list(state: &RegistryState, filter: &ListFilter) -> Vec<CatalogEntry> {
    entries(state)
        .into_iter()
        .filter(|e| filter.owner.as_ref().is_none_or(|o| e.owner == *o))
        .filter(|e| filter.kind.as_ref().is_none_or(|k| e.kind == *k))
        .filter(|e| filter.tags.iter().all(|(k, v)| e.tags.get(k) == Some(v)))
        .collect()
}

/// Rank entries against every word of `text` (all words must match somewhere):
/// exact name beats name prefix beats name substring beats tags beats
/// description beats owner.
pub fn search(state: &RegistryState, text: &str) -> Vec<SearchHit> {
    let terms: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    if terms.is_empty() {
        return Vec::new();
    }
    let mut hits: Vec<SearchHit> = entries(state)
        .into_iter()
        .filter_map(|entry| {
            let scores: Vec<u32> = terms.iter().map(|term| score(&entry, term)).collect();
            scores.iter().all(|s| *s > 0).then(|| SearchHit { score: scores.iter().sum(), entry })
        })
        .collect();
    hits.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.entry.name.cmp(&b.entry.name)));
    hits
}

fn score(entry: &CatalogEntry, term: &str) -> u32 {
    let name = entry.name.to_lowercase();
    let short = name.rsplit(':').next().unwrap_or(&name);
    let mut best = if name == term || short == term {
        100
    } else if name.starts_with(term) || short.starts_with(term) {
        60
    } else if name.contains(term) {
        40
    } else {
        0
    };
    let in_tags = entry.tags.iter().any(|(k, v)| k.to_lowercase().contains(term) || v.to_lowercase().contains(term));
    if in_tags {
        best = best.max(20);
    }
    if entry.description.to_lowercase().contains(term) {
        best = best.max(10);
    }
    if entry.owner.to_lowercase().contains(term) {
        best = best.max(5);
    }
    best
}

/// Everything about the objects named `name` (an entity, source, request
/// source, view, on-demand view, service, or `view:feature` of either kind of
/// view): definition, version, lineage both ways.
pub fn describe(state: &RegistryState, name: &str) -> Result<Vec<Value>, NotFound> {
    let defs = &state.definitions;
    let mut found = Vec::new();
    for kind in ObjectKind::ALL {
        let Some(definition) = defs.object_json(kind, name) else { continue };
        let node = format!("{}:{name}", kind.name());
        let mut described = json!({
            "kind": kind.name(),
            "name": name,
            "definition": definition,
            "meta": state.meta(kind, name),
            "upstream": walk(state, &node, Direction::Up),
            "downstream": walk(state, &node, Direction::Down),
        });
        if kind == ObjectKind::FeatureView
            && let Some(view) = defs.feature_view(name)
        {
            described["join_keys"] = json!(defs.view_join_keys(view));
            described["watermark"] = json!(state.watermarks.get(name));
        }
        if kind == ObjectKind::FeatureService
            && let Some(service) = defs.feature_service(name)
        {
            described["resolved_features"] = json!(defs.resolve_service(service).iter().map(|r| r.to_string()).collect::<Vec<_>>());
        }
        found.push(described);
    }
    if let Some((view_name, feature_name)) = name.split_once(':')
        && let Some((kind, definition, owner)) = feature_definition(defs, view_name, feature_name)
    {
        let services: Vec<&str> = defs
            .feature_services
            .iter()
            .filter(|s| defs.resolve_service(s).iter().any(|r| r.view == view_name && r.feature.as_deref() == Some(feature_name)))
            .map(|s| s.name.as_str())
            .collect();
        let view_node = format!("{}:{view_name}", kind.name());
        let mut described = json!({
            "kind": "feature",
            "name": name,
            "definition": definition,
            "owner": owner,
            "upstream": walk(state, &view_node, Direction::Up).into_iter().chain([view_node.clone()]).collect::<Vec<_>>(),
            "downstream": services.iter().map(|s| format!("feature_service:{s}")).collect::<Vec<_>>(),
        });
        // `feature_view: NAME` or `on_demand_feature_view: NAME`.
        described[kind.name()] = json!(view_name);
        found.push(described);
    }
    if found.is_empty() {
        let names: Vec<String> = entries(state).into_iter().map(|e| e.name).collect();
        let help = suggest::closest(name, names.iter().map(String::as_str))
            .map(|b| format!("did you mean `{b}`?"))
            .or_else(|| Some("`almanac features list` shows what exists".into()));
        return Err(NotFound { name: name.into(), help });
    }
    Ok(found)
}

/// The whole catalog as one JSON document (the server's `GET /features`):
/// every feature view with its join keys, TTL, schema, governance and
/// watermark; every on-demand view with its sources and its features'
/// dtypes and expressions; every request source with its fields; and every
/// service with its resolved features.
pub fn summary(state: &RegistryState) -> Value {
    let defs = &state.definitions;
    let views: Vec<Value> = defs
        .feature_views
        .iter()
        .map(|view| {
            json!({
                "name": view.name,
                "entities": view.entities,
                "join_keys": defs.view_join_keys(view).iter().map(|k| json!({"name": k.name, "dtype": k.dtype.as_ref().map(|d| d.to_string())})).collect::<Vec<_>>(),
                "ttl": view.ttl.map(|t| t.to_string()),
                "online": view.online,
                "owner": view.governance.owner,
                "description": view.governance.description,
                "tags": view.governance.tags,
                "features": view.schema.iter().map(|f| json!({"name": f.name, "dtype": f.dtype.to_string(), "description": f.description})).collect::<Vec<_>>(),
                "watermark": state.watermarks.get(&view.name),
            })
        })
        .collect();
    let on_demand_views: Vec<Value> = defs
        .on_demand_feature_views
        .iter()
        .map(|view| {
            json!({
                "name": view.name,
                "sources": view.sources,
                "owner": view.governance.owner,
                "description": view.governance.description,
                "tags": view.governance.tags,
                "features": view.features.iter().map(|f| json!({"name": f.name, "dtype": f.dtype.to_string(), "expr": f.expr, "description": f.description})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let request_sources: Vec<Value> = defs
        .request_sources
        .iter()
        .map(|source| {
            json!({
                "name": source.name,
                "owner": source.governance.owner,
                "description": source.governance.description,
                "tags": source.governance.tags,
                "schema": source.schema.iter().map(|f| json!({"name": f.name, "dtype": f.dtype.to_string(), "description": f.description})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let services: Vec<Value> = defs
        .feature_services
        .iter()
        .map(|s| json!({"name": s.name, "features": defs.resolve_service(s).iter().map(|r| r.to_string()).collect::<Vec<_>>(), "owner": s.governance.owner, "description": s.governance.description}))
        .collect();
    json!({
        "project": state.project,
        "registry_version": state.version,
        "feature_views": views,
        "on_demand_feature_views": on_demand_views,
        "request_sources": request_sources,
        "feature_services": services,
    })
}

/// A feature of a feature view or of an on-demand view (whose definition
/// carries its `expr`): the view's kind, the feature's definition as JSON,
/// and the view's owner.
fn feature_definition(defs: &Definitions, view: &str, feature: &str) -> Option<(ObjectKind, Value, String)> {
    if let Some(view) = defs.feature_view(view) {
        return Some((ObjectKind::FeatureView, json!(view.feature(feature)?), view.governance.owner.clone()));
    }
    let view = defs.on_demand_feature_view(view)?;
    Some((ObjectKind::OnDemandFeatureView, json!(view.feature(feature)?), view.governance.owner.clone()))
}

#[derive(Clone, Copy)]
enum Direction {
    Up,
    Down,
}

/// Every node reachable from `start` along lineage edges (transitively), sorted.
fn walk(state: &RegistryState, start: &str, direction: Direction) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([start.to_string()]);
    while let Some(node) = queue.pop_front() {
        for edge in &state.lineage {
            let (here, next) = match direction {
                Direction::Up => (&edge.to, &edge.from),
                Direction::Down => (&edge.from, &edge.to),
            };
            if *here == node && seen.insert(next.clone()) {
                queue.push_back(next.clone());
            }
        }
    }
    seen.into_iter().collect()
}
