//! The plain definition types: what a feature repo declares.
//!
//! These are data, not behaviour: the registry parses them (with locations for
//! errors), stores them, and diffs them; the engines read them. Every object
//! carries the same governance trio (`description`, `owner`, `tags`), so
//! discovery can treat all kinds alike.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dtype::DType;
use crate::duration::Duration;
use crate::reference::FeatureRef;

/// The kinds of object a repo can define; also the top-level keys of a
/// definition file (see [`ObjectKind::section`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Entity,
    Source,
    RequestSource,
    FeatureView,
    OnDemandFeatureView,
    FeatureService,
}

impl ObjectKind {
    /// Every kind, in dependency order (what is read comes before what reads it).
    pub const ALL: [ObjectKind; 6] = [
        ObjectKind::Entity,
        ObjectKind::Source,
        ObjectKind::RequestSource,
        ObjectKind::FeatureView,
        ObjectKind::OnDemandFeatureView,
        ObjectKind::FeatureService,
    ];

    /// The top-level key under which objects of this kind are listed.
    pub fn section(self) -> &'static str {
        match self {
            ObjectKind::Entity => "entities",
            ObjectKind::Source => "sources",
            ObjectKind::RequestSource => "request_sources",
            ObjectKind::FeatureView => "feature_views",
            ObjectKind::OnDemandFeatureView => "on_demand_feature_views",
            ObjectKind::FeatureService => "feature_services",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Entity => "entity",
            ObjectKind::Source => "source",
            ObjectKind::RequestSource => "request_source",
            ObjectKind::FeatureView => "feature_view",
            ObjectKind::OnDemandFeatureView => "on_demand_feature_view",
            ObjectKind::FeatureService => "feature_service",
        }
    }

    /// The kind as written in prose: `feature view`, `on-demand feature view`.
    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::Entity => "entity",
            ObjectKind::Source => "source",
            ObjectKind::RequestSource => "request source",
            ObjectKind::FeatureView => "feature view",
            ObjectKind::OnDemandFeatureView => "on-demand feature view",
            ObjectKind::FeatureService => "feature service",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who owns an object and what it is for. Shared by every kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Governance {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A join key of an entity. The dtype is optional in definitions; the
/// registry fills it in from the sources at apply time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinKey {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<DType>,
}

/// A thing features describe (`user`), identified by one or more join keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    pub name: String,
    pub join_keys: Vec<JoinKey>,
    #[serde(flatten)]
    pub governance: Governance,
}

/// The file format of a batch source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    Parquet,
    Csv,
}

impl FileFormat {
    /// The format a file name's extension implies, if any.
    pub fn from_extension(path: &str) -> Option<FileFormat> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".parquet") || lower.ends_with(".pq") {
            Some(FileFormat::Parquet)
        } else if lower.ends_with(".csv") {
            Some(FileFormat::Csv)
        } else {
            None
        }
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Csv => "csv",
        })
    }
}

/// Where timestamped rows live: a Parquet or CSV file, a folder of them, or a glob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub name: String,
    /// As written by the user; relative paths are relative to the repo folder.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
    /// Event time: when the value became true. Point-in-time joins filter on it.
    pub timestamp_field: String,
    /// Ingestion time: used only to break ties between equal event times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp_column: Option<String>,
    /// Column name in the files → name used by the definitions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_mapping: BTreeMap<String, String>,
    /// Set for a *push* source: rows pushed to it (`POST /push`) go to the
    /// online store of the views bound to it and/or are appended to this
    /// batch source's folder. Its files, format and timestamp columns are
    /// the batch source's (copied in when definitions are loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_source: Option<String>,
    #[serde(flatten)]
    pub governance: Governance,
}

impl Source {
    /// The column name in the files for a name used by the definitions.
    pub fn file_column<'a>(&'a self, name: &'a str) -> &'a str {
        self.field_mapping
            .iter()
            .find(|(_, to)| to.as_str() == name)
            .map(|(from, _)| from.as_str())
            .unwrap_or(name)
    }
}

/// One feature of a view's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub dtype: DType,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Fields a request carries beside the join keys (the `amount` of the
/// transaction being scored), read by on-demand feature views. Offline they
/// are columns of the entity table; online they travel with the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSource {
    pub name: String,
    pub schema: Vec<Field>,
    #[serde(flatten)]
    pub governance: Governance,
}

impl RequestSource {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.schema.iter().find(|f| f.name == name)
    }
}

/// Alert thresholds for `almanac monitor` (defaults apply when absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Monitoring {
    /// Alert when the newest materialized value is older than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_staleness: Option<Duration>,
    /// Alert when a feature's null share in the current window is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_null_rate: Option<f64>,
    /// Alert when a feature's population stability index is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi_alert: Option<f64>,
}

impl Monitoring {
    pub fn is_empty(&self) -> bool {
        self == &Monitoring::default()
    }
}

/// A schema of features bound to one source and zero or more entities; the
/// unit of materialization and of online storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureView {
    pub name: String,
    /// Empty for a global view (one record, no keys).
    pub entities: Vec<String>,
    pub source: String,
    /// `None` or zero: values never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    pub online: bool,
    pub schema: Vec<Field>,
    #[serde(default, skip_serializing_if = "Monitoring::is_empty")]
    pub monitoring: Monitoring,
    #[serde(flatten)]
    pub governance: Governance,
}

impl FeatureView {
    pub fn feature(&self, name: &str) -> Option<&Field> {
        self.schema.iter().find(|f| f.name == name)
    }
}

/// One feature of an on-demand view: a SQL scalar expression over the
/// fields of the view's sources, and the type it must produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnDemandFeature {
    pub name: String,
    pub dtype: DType,
    /// As written (trimmed); compiled and type-checked at apply, not here.
    pub expr: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Features computed at request time from other views' features and request
/// data, by expressions that run the same way offline and online. Nothing is
/// materialized or stored for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnDemandFeatureView {
    pub name: String,
    /// The feature views and request sources the expressions read, in the
    /// written order.
    pub sources: Vec<String>,
    pub features: Vec<OnDemandFeature>,
    #[serde(flatten)]
    pub governance: Governance,
}

impl OnDemandFeatureView {
    pub fn feature(&self, name: &str) -> Option<&OnDemandFeature> {
        self.features.iter().find(|f| f.name == name)
    }
}

/// A named list of feature references that one model consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureService {
    pub name: String,
    pub features: Vec<FeatureRef>,
    #[serde(flatten)]
    pub governance: Governance,
}

/// Everything a repo defines, each list sorted by name so that two applies of
/// the same files produce byte-identical registries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Definitions {
    pub entities: Vec<Entity>,
    pub sources: Vec<Source>,
    /// Absent from registries written before on-demand views existed.
    #[serde(default)]
    pub request_sources: Vec<RequestSource>,
    pub feature_views: Vec<FeatureView>,
    #[serde(default)]
    pub on_demand_feature_views: Vec<OnDemandFeatureView>,
    pub feature_services: Vec<FeatureService>,
}

impl Definitions {
    pub fn sort(&mut self) {
        self.entities.sort_by(|a, b| a.name.cmp(&b.name));
        self.sources.sort_by(|a, b| a.name.cmp(&b.name));
        self.request_sources.sort_by(|a, b| a.name.cmp(&b.name));
        self.feature_views.sort_by(|a, b| a.name.cmp(&b.name));
        self.on_demand_feature_views.sort_by(|a, b| a.name.cmp(&b.name));
        self.feature_services.sort_by(|a, b| a.name.cmp(&b.name));
    }

    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }

    pub fn request_source(&self, name: &str) -> Option<&RequestSource> {
        self.request_sources.iter().find(|s| s.name == name)
    }

    pub fn feature_view(&self, name: &str) -> Option<&FeatureView> {
        self.feature_views.iter().find(|v| v.name == name)
    }

    pub fn on_demand_feature_view(&self, name: &str) -> Option<&OnDemandFeatureView> {
        self.on_demand_feature_views.iter().find(|v| v.name == name)
    }

    pub fn feature_service(&self, name: &str) -> Option<&FeatureService> {
        self.feature_services.iter().find(|s| s.name == name)
    }

    /// Names of every object of one kind, in order.
    pub fn names(&self, kind: ObjectKind) -> Vec<&str> {
        match kind {
            ObjectKind::Entity => self.entities.iter().map(|o| o.name.as_str()).collect(),
            ObjectKind::Source => self.sources.iter().map(|o| o.name.as_str()).collect(),
            ObjectKind::RequestSource => self.request_sources.iter().map(|o| o.name.as_str()).collect(),
            ObjectKind::FeatureView => self.feature_views.iter().map(|o| o.name.as_str()).collect(),
            ObjectKind::OnDemandFeatureView => {
                self.on_demand_feature_views.iter().map(|o| o.name.as_str()).collect()
            }
            ObjectKind::FeatureService => {
                self.feature_services.iter().map(|o| o.name.as_str()).collect()
            }
        }
    }

    /// One object as JSON, for diffs and `describe --json`.
    pub fn object_json(&self, kind: ObjectKind, name: &str) -> Option<serde_json::Value> {
        let value = match kind {
            ObjectKind::Entity => serde_json::to_value(self.entity(name)?),
            ObjectKind::Source => serde_json::to_value(self.source(name)?),
            ObjectKind::RequestSource => serde_json::to_value(self.request_source(name)?),
            ObjectKind::FeatureView => serde_json::to_value(self.feature_view(name)?),
            ObjectKind::OnDemandFeatureView => serde_json::to_value(self.on_demand_feature_view(name)?),
            ObjectKind::FeatureService => serde_json::to_value(self.feature_service(name)?),
        };
        value.ok()
    }

    /// The join keys of a view, in entity order then key order.
    pub fn view_join_keys(&self, view: &FeatureView) -> Vec<&JoinKey> {
        view.entities
            .iter()
            .filter_map(|name| self.entity(name))
            .flat_map(|entity| entity.join_keys.iter())
            .collect()
    }

    /// Which kind of view a reference's `view` names: a feature view or an
    /// on-demand feature view (the two share one namespace, so `x:feature`
    /// names one of them). `None` for an unknown name.
    pub fn view_kind(&self, name: &str) -> Option<ObjectKind> {
        if self.feature_view(name).is_some() {
            Some(ObjectKind::FeatureView)
        } else if self.on_demand_feature_view(name).is_some() {
            Some(ObjectKind::OnDemandFeatureView)
        } else {
            None
        }
    }

    /// The features of a feature view or an on-demand feature view, with
    /// their types, in the written order; `None` when no view of either kind
    /// has that name.
    pub fn features_of(&self, view: &str) -> Option<Vec<(&str, &DType)>> {
        if let Some(view) = self.feature_view(view) {
            return Some(view.schema.iter().map(|f| (f.name.as_str(), &f.dtype)).collect());
        }
        let view = self.on_demand_feature_view(view)?;
        Some(view.features.iter().map(|f| (f.name.as_str(), &f.dtype)).collect())
    }

    /// The feature references a service resolves to, expanding bare view names
    /// (of feature views and on-demand views alike) to every feature of the
    /// view. Unknown views are skipped (validation reports them before this is
    /// called on user input).
    pub fn resolve_service(&self, service: &FeatureService) -> Vec<FeatureRef> {
        service
            .features
            .iter()
            .flat_map(|reference| match &reference.feature {
                Some(_) => vec![reference.clone()],
                None => self
                    .features_of(&reference.view)
                    .map(|features| {
                        features.into_iter().map(|(name, _)| FeatureRef::new(&reference.view, name)).collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, dtype: DType) -> Field {
        Field { name: name.into(), dtype, description: String::new(), tags: BTreeMap::new() }
    }

    fn defs() -> Definitions {
        let view = FeatureView {
            name: "stats".into(),
            entities: vec![],
            source: "src".into(),
            ttl: None,
            online: true,
            schema: vec![field("avg", DType::Float64)],
            monitoring: Monitoring::default(),
            governance: Governance::default(),
        };
        let ratio = |name: &str, dtype: DType, expr: &str| OnDemandFeature {
            name: name.into(),
            dtype,
            expr: expr.into(),
            description: String::new(),
            tags: BTreeMap::new(),
        };
        Definitions {
            request_sources: vec![RequestSource {
                name: "req".into(),
                schema: vec![field("amount", DType::Float64)],
                governance: Governance::default(),
            }],
            feature_views: vec![view],
            on_demand_feature_views: vec![OnDemandFeatureView {
                name: "ratios".into(),
                sources: vec!["stats".into(), "req".into()],
                features: vec![ratio("ratio", DType::Float64, "amount / avg"), ratio("large", DType::Bool, "amount > 1000")],
                governance: Governance::default(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn on_demand_views_resolve_like_feature_views() {
        let defs = defs();
        assert_eq!(defs.view_kind("stats"), Some(ObjectKind::FeatureView));
        assert_eq!(defs.view_kind("ratios"), Some(ObjectKind::OnDemandFeatureView));
        assert_eq!(defs.view_kind("req"), None, "a request source is not a view");
        assert_eq!(defs.features_of("ratios"), Some(vec![("ratio", &DType::Float64), ("large", &DType::Bool)]));
        let service = FeatureService {
            name: "model".into(),
            features: vec![FeatureRef::whole_view("ratios"), FeatureRef::new("stats", "avg")],
            governance: Governance::default(),
        };
        let resolved: Vec<String> = defs.resolve_service(&service).iter().map(|r| r.to_string()).collect();
        assert_eq!(resolved, ["ratios:ratio", "ratios:large", "stats:avg"]);
        assert_eq!(defs.names(ObjectKind::RequestSource), ["req"]);
        let json = defs.object_json(ObjectKind::OnDemandFeatureView, "ratios").expect("json");
        assert_eq!(json["features"][1]["expr"], "amount > 1000");
    }

    /// Registries written before on-demand views have neither list.
    #[test]
    fn definitions_without_the_new_lists_still_load() {
        let old = r#"{"entities": [], "sources": [], "feature_views": [], "feature_services": []}"#;
        let defs: Definitions = serde_json::from_str(old).expect("old registry definitions");
        assert!(defs.request_sources.is_empty() && defs.on_demand_feature_views.is_empty());
        let round_trip: Definitions = serde_json::from_value(serde_json::to_value(self::defs()).expect("to json")).expect("from json");
        assert_eq!(round_trip, self::defs());
    }
}
