//! `plan` and `apply`: the difference between the registry and the files, and
//! the new registry state that applying it produces.

use std::fmt;

use almanac_core::{Definitions, ObjectKind};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::state::{self, ObjectMeta, RegistryState, object_key};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub project: String,
    /// The registry version the plan was computed against.
    pub from_version: u64,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub kind: ObjectKind,
    pub name: String,
    #[serde(flatten)]
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Add,
    Change { fields: Vec<FieldChange> },
    Remove,
}

/// One changed field; `old`/`new` are JSON (`null` when absent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub old: Value,
    pub new: Value,
}

impl Plan {
    /// The changes that turn `current` into `desired`, kind by kind in
    /// dependency order ([`ObjectKind::ALL`]: entities, sources, request
    /// sources, views, on-demand views, services), names sorted.
    pub fn compute(current: &RegistryState, desired: &Definitions) -> Plan {
        let mut changes = Vec::new();
        for kind in ObjectKind::ALL {
            let old_names = current.definitions.names(kind);
            let new_names = desired.names(kind);
            let mut names: Vec<&str> = old_names.iter().chain(new_names.iter()).copied().collect();
            names.sort_unstable();
            names.dedup();
            for name in names {
                let old = current.definitions.object_json(kind, name);
                let new = desired.object_json(kind, name);
                let action = match (old, new) {
                    (None, Some(_)) => Action::Add,
                    (Some(_), None) => Action::Remove,
                    (Some(old), Some(new)) if old != new => Action::Change { fields: field_changes(&old, &new) },
                    _ => continue,
                };
                changes.push(Change { kind, name: name.to_string(), action });
            }
        }
        Plan { project: current.project.clone(), from_version: current.version, changes }
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The state after applying: new definitions, bumped versions, fresh
    /// lineage. A view whose source, entities or schema changed loses its
    /// watermark, because what was materialized no longer matches it.
    /// On-demand views are never materialized, so they have none.
    pub fn apply_to(&self, current: &RegistryState, desired: &Definitions, now: DateTime<Utc>) -> RegistryState {
        let mut next = current.clone();
        next.format_version = state::FORMAT_VERSION;
        next.version = current.version + 1;
        next.applied_at = Some(now);
        next.definitions = desired.clone();
        next.lineage = state::lineage(desired);
        for change in &self.changes {
            let key = object_key(change.kind, &change.name);
            match &change.action {
                Action::Add => {
                    next.objects.insert(key, ObjectMeta { version: 1, created_at: now, updated_at: now });
                }
                Action::Change { fields } => {
                    let meta = next.objects.entry(key).or_insert(ObjectMeta { version: 0, created_at: now, updated_at: now });
                    meta.version += 1;
                    meta.updated_at = now;
                    let invalidates = fields.iter().any(|f| matches!(f.field.as_str(), "source" | "entities" | "schema" | "aggregations" | "tile"));
                    if change.kind == ObjectKind::FeatureView && invalidates {
                        next.watermarks.remove(&change.name);
                    }
                }
                Action::Remove => {
                    next.objects.remove(&key);
                    if change.kind == ObjectKind::FeatureView {
                        next.watermarks.remove(&change.name);
                    }
                }
            }
        }
        next
    }
}

fn field_changes(old: &Value, new: &Value) -> Vec<FieldChange> {
    let empty = serde_json::Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut fields: Vec<&String> = old.keys().chain(new.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter_map(|field| {
            let (a, b) = (old.get(field).cloned().unwrap_or(Value::Null), new.get(field).cloned().unwrap_or(Value::Null));
            (a != b).then(|| FieldChange { field: field.clone(), old: a, new: b })
        })
        .collect()
}

fn compact(value: &Value) -> String {
    let text = match value {
        Value::Null => "(none)".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 70 { format!("{}…", text.chars().take(69).collect::<String>()) } else { text }
}

/// Whether a changed field is a list of features (or request fields) that
/// reads best entry by entry. A service's `features` is a list of references
/// and reads fine as one line.
fn is_feature_list(kind: ObjectKind, field: &str) -> bool {
    field == "schema" || (kind == ObjectKind::OnDemandFeatureView && field == "features")
}

/// Schema changes read best feature by feature, not as two JSON arrays.
/// `noun` is what an entry is called: `feature`, or `field` for a request source.
fn describe_schema_change(old: &Value, new: &Value, noun: &str) -> Vec<String> {
    let features = |v: &Value| -> Vec<(String, Value)> {
        v.as_array()
            .map(|items| items.iter().map(|f| (f["name"].as_str().unwrap_or("?").to_string(), f.clone())).collect())
            .unwrap_or_default()
    };
    let (old, new) = (features(old), features(new));
    let mut lines = Vec::new();
    for (name, field) in &new {
        match old.iter().find(|(n, _)| n == name) {
            None => lines.push(format!("+ {noun} {name} ({})", compact(&field["dtype"]))),
            Some((_, before)) if before != field => {
                for change in field_changes(before, field) {
                    lines.push(format!("~ {noun} {name}.{}: {} → {}", change.field, compact(&change.old), compact(&change.new)));
                }
            }
            Some(_) => {}
        }
    }
    for (name, _) in old.iter().filter(|(n, _)| !new.iter().any(|(m, _)| m == n)) {
        lines.push(format!("- {noun} {name}"));
    }
    lines
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return write!(f, "No changes: the registry of `{}` is up to date (version {}).", self.project, self.from_version);
        }
        let count = |pred: fn(&Action) -> bool| self.changes.iter().filter(|c| pred(&c.action)).count();
        writeln!(f, "Plan for `{}` (registry version {} → {}):", self.project, self.from_version, self.from_version + 1)?;
        for change in &self.changes {
            let (sign, what) = match &change.action {
                Action::Add => ('+', "add"),
                Action::Change { .. } => ('~', "change"),
                Action::Remove => ('-', "remove"),
            };
            writeln!(f, "  {sign} {} {} ({what})", change.kind, change.name)?;
            if let Action::Change { fields } = &change.action {
                for field in fields {
                    if is_feature_list(change.kind, &field.field) {
                        let noun = if change.kind == ObjectKind::RequestSource { "field" } else { "feature" };
                        for line in describe_schema_change(&field.old, &field.new, noun) {
                            writeln!(f, "      {line}")?;
                        }
                    } else {
                        writeln!(f, "      {}: {} → {}", field.field, compact(&field.old), compact(&field.new))?;
                    }
                }
            }
        }
        write!(
            f,
            "{} to add, {} to change, {} to remove.",
            count(|a| matches!(a, Action::Add)),
            count(|a| matches!(a, Action::Change { .. })),
            count(|a| matches!(a, Action::Remove))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use almanac_core::{DType, Entity, FeatureView, Field, JoinKey, OnDemandFeature, OnDemandFeatureView};

    fn view(name: &str, features: &[(&str, DType)]) -> FeatureView {
        FeatureView {
            name: name.into(),
            entities: vec!["user".into()],
            source: "src".into(),
            ttl: None,
            online: true,
            monitoring: Default::default(),
            aggregations: Vec::new(),
            tile: None,
            schema: features.iter().map(|(n, d)| Field { name: (*n).into(), dtype: d.clone(), description: String::new(), tags: Default::default() }).collect(),
            governance: Default::default(),
        }
    }

    fn defs(views: Vec<FeatureView>) -> Definitions {
        Definitions {
            entities: vec![Entity { name: "user".into(), join_keys: vec![JoinKey { name: "user_id".into(), dtype: Some(DType::Int64) }], governance: Default::default() }],
            feature_views: views,
            ..Default::default()
        }
    }

    #[test]
    fn add_change_remove_and_noop() {
        let now = Utc::now();
        let empty = RegistryState::empty("p");
        let first = defs(vec![view("a", &[("x", DType::Int64)]), view("b", &[("y", DType::Float64)])]);
        let plan = Plan::compute(&empty, &first);
        assert_eq!(plan.changes.len(), 3);
        assert!(plan.changes.iter().all(|c| c.action == Action::Add));
        let mut applied = plan.apply_to(&empty, &first, now);
        applied.watermarks.insert("a".into(), now);
        assert_eq!(applied.version, 1);
        assert!(Plan::compute(&applied, &first).is_empty(), "applying twice is a no-op");

        let second = defs(vec![view("a", &[("x", DType::Int32), ("z", DType::String)])]);
        let plan = Plan::compute(&applied, &second);
        let text = plan.to_string();
        assert!(text.contains("~ feature_view a (change)"), "{text}");
        assert!(text.contains("~ feature x.dtype: int64 → int32"), "{text}");
        assert!(text.contains("+ feature z (string)"), "{text}");
        assert!(text.contains("- feature_view b (remove)"), "{text}");
        let next = plan.apply_to(&applied, &second, now);
        assert_eq!(next.meta(ObjectKind::FeatureView, "a").map(|m| m.version), Some(2));
        assert!(next.meta(ObjectKind::FeatureView, "b").is_none());
        assert!(next.watermarks.is_empty(), "a changed schema resets the watermark");
    }

    fn on_demand(expr: &str) -> OnDemandFeatureView {
        OnDemandFeatureView {
            name: "ratios".into(),
            sources: vec!["a".into()],
            features: vec![OnDemandFeature { name: "large".into(), dtype: DType::Bool, expr: expr.into(), description: String::new(), tags: Default::default() }],
            governance: Default::default(),
        }
    }

    #[test]
    fn on_demand_views_are_planned_feature_by_feature() {
        let now = Utc::now();
        let empty = RegistryState::empty("p");
        let mut first = defs(vec![view("a", &[("x", DType::Int64)])]);
        first.on_demand_feature_views = vec![on_demand("x > 10")];
        let plan = Plan::compute(&empty, &first);
        assert!(plan.to_string().contains("+ on_demand_feature_view ratios (add)"), "{plan}");
        let applied = plan.apply_to(&empty, &first, now);
        assert_eq!(applied.meta(ObjectKind::OnDemandFeatureView, "ratios").map(|m| m.version), Some(1));

        let mut second = first.clone();
        second.on_demand_feature_views = vec![on_demand("x > 100")];
        let text = Plan::compute(&applied, &second).to_string();
        assert!(text.contains("~ on_demand_feature_view ratios (change)"), "{text}");
        assert!(text.contains("~ feature large.expr: x > 10 → x > 100"), "{text}");
        assert!(text.contains("0 to add, 1 to change, 0 to remove."), "{text}");

        let third = defs(vec![view("a", &[("x", DType::Int64)])]);
        let text = Plan::compute(&applied, &third).to_string();
        assert!(text.contains("- on_demand_feature_view ratios (remove)"), "{text}");
    }
}
