//! What the registry stores: the applied definitions plus what Almanac
//! learned and decided about them (resolved key types, object versions,
//! lineage, materialization watermarks).

use std::collections::BTreeMap;

use almanac_core::{Definitions, ObjectKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The layout version of the registry file; bumped on incompatible change.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryState {
    pub format_version: u32,
    pub project: String,
    /// Increments with every apply that changes something; 0 = never applied.
    pub version: u64,
    pub applied_at: Option<DateTime<Utc>>,
    /// Definitions as applied, join-key dtypes resolved from the sources.
    pub definitions: Definitions,
    /// Per object (`kind/name`): its own version and times.
    pub objects: BTreeMap<String, ObjectMeta>,
    pub lineage: Vec<LineageEdge>,
    /// Per feature view: materialized up to this instant (inclusive).
    pub watermarks: BTreeMap<String, DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One edge of the lineage graph: data flows `from` → `to`.
/// Nodes are written `kind:name`, plus `path:<source path>` for files.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LineageEdge {
    pub from: String,
    pub to: String,
}

pub fn object_key(kind: ObjectKind, name: &str) -> String {
    format!("{}/{name}", kind.name())
}

impl RegistryState {
    pub fn empty(project: &str) -> Self {
        RegistryState {
            format_version: FORMAT_VERSION,
            project: project.to_string(),
            version: 0,
            applied_at: None,
            definitions: Definitions::default(),
            objects: BTreeMap::new(),
            lineage: Vec::new(),
            watermarks: BTreeMap::new(),
        }
    }

    pub fn meta(&self, kind: ObjectKind, name: &str) -> Option<&ObjectMeta> {
        self.objects.get(&object_key(kind, name))
    }
}

/// The lineage graph of a set of definitions:
/// source path → source → feature view → (on-demand feature view →) feature
/// service, entity → view, and request source → on-demand feature view.
pub fn lineage(definitions: &Definitions) -> Vec<LineageEdge> {
    let node = |kind: ObjectKind, name: &str| format!("{}:{name}", kind.name());
    // A reference names a feature view or an on-demand one; an unknown name
    // (only in definitions that failed validation) is drawn as a feature view.
    let view_node = |name: &str| node(definitions.view_kind(name).unwrap_or(ObjectKind::FeatureView), name);
    let mut edges = Vec::new();
    for source in &definitions.sources {
        edges.push(LineageEdge { from: format!("path:{}", source.path), to: node(ObjectKind::Source, &source.name) });
    }
    for view in &definitions.feature_views {
        let to = node(ObjectKind::FeatureView, &view.name);
        edges.push(LineageEdge { from: node(ObjectKind::Source, &view.source), to: to.clone() });
        for entity in &view.entities {
            edges.push(LineageEdge { from: node(ObjectKind::Entity, entity), to: to.clone() });
        }
    }
    for view in &definitions.on_demand_feature_views {
        let to = node(ObjectKind::OnDemandFeatureView, &view.name);
        for source in &view.sources {
            let from = match definitions.request_source(source) {
                Some(_) => node(ObjectKind::RequestSource, source),
                None => view_node(source),
            };
            let edge = LineageEdge { from, to: to.clone() };
            if !edges.contains(&edge) {
                edges.push(edge);
            }
        }
    }
    for service in &definitions.feature_services {
        let to = node(ObjectKind::FeatureService, &service.name);
        for reference in &service.features {
            let edge = LineageEdge { from: view_node(&reference.view), to: to.clone() };
            if !edges.contains(&edge) {
                edges.push(edge);
            }
        }
    }
    edges.sort();
    edges
}
