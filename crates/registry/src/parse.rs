//! Turning YAML text into definitions, with a location for every value.
//!
//! We walk marked YAML nodes by hand instead of using serde derive: serde stops
//! at the first error and forgets positions, while users need *every* mistake,
//! each with its `file:line:col`, an explanation and a fix. The walker records
//! where each object and field was written (for errors found later, at
//! validation and apply time) and keeps going after a mistake.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use almanac_core::defs::{AggFunction, Aggregation, Governance, window_name};
use almanac_core::{
    Definitions, Diagnostic, Diagnostics, DType, Duration, Entity, FeatureRef, FeatureService,
    FeatureView, Field, FileFormat, JoinKey, Location, Monitoring, ObjectKind, OfflineConfig, OnDemandFeature,
    OnDemandFeatureView, OnlineConfig, ParitySchedule, RegistryConfig, RepoConfig, RequestSource, Source, Stream, Broker,
    TimestampRange, suggest,
};
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoaderOptions, Node, Span};

/// Where each object, and each of its fields, was written.
///
/// Field paths are the YAML path inside the object: `source`, `entities[1]`,
/// `schema[0].dtype`, for an on-demand view's features
/// `features[0].expr` (likewise `.name`, `.dtype`), and for an aggregation
/// view's aggregations `aggregations[0].column` (likewise `.function`,
/// `.window`, `.n`, `.name`). An aggregation view's derived features are
/// also recorded as `schema[i]` (at the aggregation's `name`, or its first
/// key), so checks that point at a view's features work for both kinds.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    objects: HashMap<(ObjectKind, String), ObjectLocation>,
}

#[derive(Debug, Clone)]
pub struct ObjectLocation {
    pub object: Location,
    pub fields: HashMap<String, Location>,
}

impl Locations {
    /// Where `field` of an object was written, falling back to the object itself.
    pub fn field(&self, kind: ObjectKind, name: &str, field: &str) -> Option<Location> {
        let object = self.objects.get(&(kind, name.to_string()))?;
        Some(object.fields.get(field).cloned().unwrap_or_else(|| object.object.clone()))
    }

    pub fn object(&self, kind: ObjectKind, name: &str) -> Option<Location> {
        self.objects.get(&(kind, name.to_string())).map(|o| o.object.clone())
    }
}

/// The outcome of parsing every file of a repo: what could be understood,
/// where it was written, and every mistake found.
#[derive(Debug, Default)]
pub struct Parsed {
    pub definitions: Definitions,
    pub locations: Locations,
    /// Every name declared per kind, even by objects that failed to parse, so
    /// a broken object does not cause a cascade of "unknown X" errors.
    pub declared: HashMap<ObjectKind, Vec<String>>,
    pub diagnostics: Diagnostics,
}

const TOP_LEVEL_KEYS: [&str; 6] =
    ["entities", "sources", "request_sources", "feature_views", "on_demand_feature_views", "feature_services"];
const GOVERNANCE_KEYS: [&str; 3] = ["description", "owner", "tags"];

/// Parse one definition file's text into `parsed`, recording locations
/// relative to `display_path`.
pub fn parse_definitions(display_path: &Path, text: &str, parsed: &mut Parsed) {
    let mut walker = Walker::new(display_path, text, &mut parsed.diagnostics);
    let Some(root) = walker.load() else { return };
    let Some(root) = walker.mapping(&root, "a definition file") else { return };
    walker.check_keys(root, &TOP_LEVEL_KEYS, &[], "a definition file");
    for (key, value) in root.iter() {
        let section = key.as_str();
        let Some(kind) = ObjectKind::ALL.into_iter().find(|k| k.section() == section) else {
            continue;
        };
        let Some(items) = walker.sequence(value, section) else { continue };
        for item in items.iter() {
            let sinks = Sinks {
                definitions: &mut parsed.definitions,
                locations: &mut parsed.locations,
                declared: &mut parsed.declared,
            };
            walker.object(kind, item, sinks);
        }
    }
}

/// Where a parsed object goes; separate from the walker, which holds the diagnostics.
struct Sinks<'a> {
    definitions: &'a mut Definitions,
    locations: &'a mut Locations,
    declared: &'a mut HashMap<ObjectKind, Vec<String>>,
}

/// Parse `almanac.yaml`. Returns `None` (with diagnostics) when unusable.
pub fn parse_config(display_path: &Path, text: &str, diagnostics: &mut Diagnostics) -> Option<RepoConfig> {
    let mut walker = Walker::new(display_path, text, diagnostics);
    let root = walker.load()?;
    let root = walker.mapping(&root, "almanac.yaml")?;
    walker.check_keys(root, &["project", "registry", "offline", "online", "parity", "timestamp_range"], &["project"], "almanac.yaml");
    let project = walker.name_field(root, "project");
    let registry = match root.get_node("registry") {
        None => Some(RegistryConfig::default()),
        Some(node) => walker.registry_config(node),
    };
    let offline = match root.get_node("offline") {
        None => Some(OfflineConfig::default()),
        Some(node) => walker.offline_config(node),
    };
    let online = match root.get_node("online") {
        None => Some(OnlineConfig::default()),
        Some(node) => walker.online_config(node),
    };
    let parity = match root.get_node("parity") {
        None => Some(None),
        Some(node) => walker.parity_schedule(node).map(Some),
    };
    let timestamp_range = match root.get_node("timestamp_range") {
        None => Some(TimestampRange::default()),
        Some(node) => walker.timestamp_range(node),
    };
    Some(RepoConfig { project: project?, registry: registry?, offline: offline?, online: online?, parity: parity?, timestamp_range: timestamp_range? })
}

struct Walker<'a> {
    file: PathBuf,
    text: &'a str,
    diagnostics: &'a mut Diagnostics,
    /// Field locations of the object being parsed.
    fields: HashMap<String, Location>,
}

impl<'a> Walker<'a> {
    fn new(file: &Path, text: &'a str, diagnostics: &'a mut Diagnostics) -> Self {
        Walker { file: file.to_path_buf(), text, diagnostics, fields: HashMap::new() }
    }

    fn location(&self, span: &Span) -> Location {
        match span.start() {
            Some(mark) => Location::new(&self.file, mark.line(), mark.column()),
            None => Location::file(&self.file),
        }
    }

    fn error(&mut self, span: &Span, message: impl Into<String>, help: Option<String>) {
        let location = self.location(span);
        self.error_at(location, message, help);
    }

    fn error_at(&mut self, location: Location, message: impl Into<String>, help: Option<String>) {
        let mut diagnostic = Diagnostic::new(location, message).with_optional_help(help);
        diagnostic.snippet = snippet(self.text, diagnostic.location.line);
        self.diagnostics.push(diagnostic);
    }

    /// Parse the text, turning syntax errors into located diagnostics. An
    /// empty (or comment-only) file is an empty mapping, not an error.
    fn load(&mut self) -> Option<Node> {
        if self.text.lines().all(|line| line.trim().is_empty() || line.trim_start().starts_with('#')) {
            return Some(Node::from(marked_yaml::types::MarkedMappingNode::new_empty(Span::new_blank())));
        }
        let options = LoaderOptions::default().error_on_duplicate_keys(true);
        match marked_yaml::parse_yaml_with_options(0, self.text, options) {
            Ok(node) => Some(node),
            Err(error) => {
                self.load_error(error);
                None
            }
        }
    }

    fn load_error(&mut self, error: marked_yaml::LoadError) {
        use marked_yaml::LoadError as E;
        let at = |m: &marked_yaml::Marker| Location::new(&self.file, m.line(), m.column());
        let (location, message, help): (Location, String, Option<String>) = match &error {
            E::TopLevelMustBeMapping(m) => (
                at(m),
                "the top level of a definition file must be a mapping".into(),
                Some("start with `entities:`, `sources:`, `feature_views:` or `feature_services:`".into()),
            ),
            E::DuplicateKey(inner) => {
                let first = self.location(inner.prev_key.span());
                let second = self.location(inner.key.span());
                let mut diagnostic = Diagnostic::new(second, format!("key `{}` is written twice in one mapping", inner.key.as_str()))
                    .with_related(first, "first written")
                    .with_help("keep one of them");
                diagnostic.snippet = snippet(self.text, diagnostic.location.line);
                self.diagnostics.push(diagnostic);
                return;
            }
            E::ScanError(m, scan) => (
                at(m),
                format!("YAML syntax error: {}", scan.info()),
                Some("check the indentation and that every `key: value` has a space after the colon".into()),
            ),
            E::UnexpectedAnchor(m) => (at(m), "YAML anchors are not supported in definitions".into(), Some("write the value out".into())),
            E::UnexpectedTag(m) => (at(m), "YAML tags (`!tag`) are not supported in definitions".into(), Some("remove the tag".into())),
            E::MappingKeyMustBeScalar(m) => (at(m), "mapping keys must be plain names".into(), None),
            E::TopLevelMustBeSequence(m) => (at(m), "unexpected top-level sequence".into(), None),
        };
        self.error_at(location, message, help);
    }

    fn mapping<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n MarkedMappingNode> {
        let mapping = node.as_mapping();
        if mapping.is_none() {
            self.error(node.span(), format!("expected a mapping (`key: value` lines) for {what}"), None);
        }
        mapping
    }

    fn sequence<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match node {
            Node::Sequence(items) => Some(items.as_slice()),
            Node::Scalar(s) if s.as_str().is_empty() => Some(&[]),
            _ => {
                self.error(node.span(), format!("expected a list for `{what}`"), Some(format!("write each item on its own line starting with `- ` under `{what}:`")));
                None
            }
        }
    }

    fn scalar<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n MarkedScalarNode> {
        let scalar = node.as_scalar();
        if scalar.is_none() {
            self.error(node.span(), format!("expected a single value for `{what}`, not a list or mapping"), None);
        }
        scalar
    }

    /// Report unknown keys (with a suggestion) and missing required ones. A
    /// misspelled required key is one mistake, reported once (as unknown,
    /// with the suggestion), not twice.
    fn check_keys(&mut self, map: &MarkedMappingNode, allowed: &[&str], required: &[&str], what: &str) {
        let mut suggested = Vec::new();
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                let help = suggest::help(key.as_str(), allowed.iter().copied());
                suggested.extend(suggest::closest(key.as_str(), allowed.iter().copied()));
                self.error(key.span(), format!("unknown key `{}` in {what}", key.as_str()), help);
            }
        }
        for &key in required {
            if map.get_node(key).is_none() && !suggested.contains(&key) {
                // The mapping's own span starts at its first colon; its first key reads better.
                let span = map.keys().next().map(|k| *k.span()).unwrap_or_else(|| *map.span());
                self.error(&span, format!("{what} is missing the required key `{key}`"), Some(format!("add `{key}: ...`")));
            }
        }
    }

    fn record(&mut self, path: &str, span: &Span) {
        let location = self.location(span);
        self.fields.insert(path.to_string(), location);
    }

    /// Run `parse` on a mapping nested in the object (an entry of an on-demand
    /// view's `features`), recording its fields under `prefix`
    /// (`features[0].expr`) instead of over the object's own (`name`, `tags`).
    fn nested<T>(&mut self, prefix: &str, parse: impl FnOnce(&mut Self) -> T) -> T {
        let outer = std::mem::take(&mut self.fields);
        let value = parse(self);
        let inner = std::mem::replace(&mut self.fields, outer);
        for (path, location) in inner {
            self.fields.insert(format!("{prefix}.{path}"), location);
        }
        value
    }

    fn optional_string(&mut self, map: &MarkedMappingNode, key: &str) -> Option<String> {
        let node = map.get_node(key)?;
        self.record(key, node.span());
        let value = self.scalar(node, key)?.as_str().to_string();
        (!value.is_empty()).then_some(value)
    }

    fn required_string(&mut self, map: &MarkedMappingNode, key: &str) -> Option<String> {
        let node = map.get_node(key)?;
        let value = self.optional_string(map, key);
        if value.is_none() && node.as_scalar().is_some() {
            self.error(node.span(), format!("`{key}` must not be empty"), None);
        }
        value
    }

    /// A required name that must be usable as an identifier (it becomes a
    /// column name and part of `view:feature` references).
    fn name_field(&mut self, map: &MarkedMappingNode, key: &str) -> Option<String> {
        let value = self.required_string(map, key)?;
        let span = map.get_node(key).map(|n| *n.span()).unwrap_or_else(Span::new_blank);
        self.check_name(&value, &span, key)
    }

    fn check_name(&mut self, value: &str, span: &Span, what: &str) -> Option<String> {
        if is_identifier(value) {
            Some(value.to_string())
        } else {
            self.error(span, format!("`{value}` is not a valid {what}"), Some("use letters, digits and `_`, not starting with a digit".into()));
            None
        }
    }

    fn optional_bool(&mut self, map: &MarkedMappingNode, key: &str) -> Option<Option<bool>> {
        let Some(node) = map.get_node(key) else { return Some(None) };
        self.record(key, node.span());
        let scalar = self.scalar(node, key)?;
        match scalar.as_bool() {
            Some(value) => Some(Some(value)),
            None => {
                self.error(node.span(), format!("`{key}` must be true or false, not `{}`", scalar.as_str()), None);
                None
            }
        }
    }

    fn string_list(&mut self, map: &MarkedMappingNode, key: &str) -> Option<Vec<(String, Span)>> {
        let Some(node) = map.get_node(key) else { return Some(Vec::new()) };
        self.record(key, node.span());
        let items = self.sequence(node, key)?;
        let mut values = Vec::new();
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            self.record(&format!("{key}[{index}]"), item.span());
            match self.scalar(item, key) {
                Some(s) if !s.as_str().is_empty() => values.push((s.as_str().to_string(), *item.span())),
                Some(_) => {
                    self.error(item.span(), format!("empty item in `{key}`"), None);
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(values)
    }

    fn string_map(&mut self, map: &MarkedMappingNode, key: &str) -> Option<BTreeMap<String, String>> {
        let Some(node) = map.get_node(key) else { return Some(BTreeMap::new()) };
        self.record(key, node.span());
        if matches!(node, Node::Scalar(s) if s.as_str().is_empty()) {
            return Some(BTreeMap::new());
        }
        let mapping = self.mapping(node, &format!("`{key}`"))?;
        let mut values = BTreeMap::new();
        let mut ok = true;
        for (k, v) in mapping.iter() {
            match v.as_scalar() {
                Some(s) => {
                    values.insert(k.as_str().to_string(), s.as_str().to_string());
                }
                None => {
                    self.error(v.span(), format!("the value of `{key}.{}` must be a single value", k.as_str()), None);
                    ok = false;
                }
            }
        }
        ok.then_some(values)
    }

    fn governance(&mut self, map: &MarkedMappingNode) -> Option<Governance> {
        let description = self.optional_string(map, "description").unwrap_or_default();
        let owner = self.optional_string(map, "owner").unwrap_or_default();
        let tags = self.string_map(map, "tags")?;
        Some(Governance { description, owner, tags })
    }

    fn duration(&mut self, map: &MarkedMappingNode, key: &str) -> Option<Option<Duration>> {
        let Some(text) = self.optional_string(map, key) else { return Some(None) };
        match text.parse::<Duration>() {
            Ok(duration) => Some(Some(duration)),
            Err(error) => {
                let span = map.get_node(key).map(|n| *n.span()).unwrap_or_else(Span::new_blank);
                let message = format!("`{}` is not a valid `{key}`: {}", error.input, error.reason);
                self.error(&span, message, Some(almanac_core::duration::HINT.to_string()));
                None
            }
        }
    }

    fn dtype(&mut self, node: &Node, path: &str) -> Option<DType> {
        self.record(path, node.span());
        let text = self.scalar(node, "dtype")?.as_str().to_string();
        match text.parse::<DType>() {
            Ok(dtype) => Some(dtype),
            Err(error) => {
                let base = text.trim_start_matches("list<").trim_end_matches('>');
                let help = suggest::closest(base, almanac_core::dtype::SCALAR_NAMES)
                    .map(|best| format!("did you mean `{}`?", text.replacen(base, best, 1)))
                    .unwrap_or_else(|| "use one of bool, int32, int64, float32, float64, string, bytes, timestamp, or list<T>".into());
                self.error(node.span(), if error.input.is_empty() { "`dtype` must not be empty".to_string() } else { format!("unknown dtype `{text}`") }, Some(help));
                None
            }
        }
    }

    /// Parse one object of `kind` and hand it to the sinks.
    fn object(&mut self, kind: ObjectKind, node: &Node, sinks: Sinks<'_>) {
        self.fields.clear();
        let noun = kind.noun();
        let what = format!("{} {noun}", if noun.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" });
        let Some(map) = self.mapping(node, &what) else { return };
        let name_node = map.get_node("name");
        let declared_name = name_node.and_then(Node::as_scalar).map(|s| s.as_str().to_string());
        let described = match &declared_name {
            Some(name) => format!("{} `{name}`", kind.name()),
            None => what.clone(),
        };
        let object = match kind {
            ObjectKind::Entity => self.entity(map, &described).map(ParsedObject::Entity),
            ObjectKind::Source => self.source(map, &described).map(ParsedObject::Source),
            ObjectKind::RequestSource => self.request_source(map, &described).map(ParsedObject::RequestSource),
            ObjectKind::FeatureView => self.feature_view(map, &described).map(ParsedObject::FeatureView),
            ObjectKind::OnDemandFeatureView => {
                self.on_demand_feature_view(map, &described).map(ParsedObject::OnDemandFeatureView)
            }
            ObjectKind::FeatureService => self.feature_service(map, &described).map(ParsedObject::FeatureService),
        };
        let Some(name) = declared_name.filter(|n| !n.is_empty()) else { return };
        let object_location = self.location(name_node.map(|n| n.span()).unwrap_or(map.span()));
        if let Some(previous) = sinks.locations.object(kind, &name) {
            let mut diagnostic = Diagnostic::new(object_location, format!("{} `{name}` is defined twice", kind.name()))
                .with_related(previous, "first defined")
                .with_help("rename one of them or delete the duplicate");
            diagnostic.snippet = snippet(self.text, diagnostic.location.line);
            self.diagnostics.push(diagnostic);
            return;
        }
        sinks.declared.entry(kind).or_default().push(name.clone());
        sinks.locations.objects.insert(
            (kind, name),
            ObjectLocation { object: object_location, fields: std::mem::take(&mut self.fields) },
        );
        match object {
            Some(ParsedObject::Entity(o)) => sinks.definitions.entities.push(o),
            Some(ParsedObject::Source(o)) => sinks.definitions.sources.push(o),
            Some(ParsedObject::RequestSource(o)) => sinks.definitions.request_sources.push(o),
            Some(ParsedObject::FeatureView(o)) => sinks.definitions.feature_views.push(o),
            Some(ParsedObject::OnDemandFeatureView(o)) => sinks.definitions.on_demand_feature_views.push(o),
            Some(ParsedObject::FeatureService(o)) => sinks.definitions.feature_services.push(o),
            None => {}
        }
    }

    fn entity(&mut self, map: &MarkedMappingNode, what: &str) -> Option<Entity> {
        self.check_keys(map, &with_governance(&["name", "join_keys"]), &["name", "join_keys"], what);
        let name = self.name_field(map, "name");
        let governance = self.governance(map);
        let join_keys = self.join_keys(map);
        // Partial objects (bad fields defaulted) still take part in reference
        // checks; any diagnostic blocks apply, so defaults are never stored.
        Some(Entity { name: name?, join_keys: join_keys.unwrap_or_default(), governance: governance.unwrap_or_default() })
    }

    /// `join_keys: [user_id]` or `join_keys: [{name: user_id, dtype: int64}]`.
    fn join_keys(&mut self, map: &MarkedMappingNode) -> Option<Vec<JoinKey>> {
        let node = map.get_node("join_keys")?;
        self.record("join_keys", node.span());
        let items = self.sequence(node, "join_keys")?;
        if items.is_empty() {
            self.error(node.span(), "an entity needs at least one join key", Some("write `join_keys: [user_id]`".into()));
            return None;
        }
        let mut keys = Vec::new();
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            let path = format!("join_keys[{index}]");
            self.record(&path, item.span());
            let key = match item {
                Node::Scalar(s) => self.check_name(s.as_str(), item.span(), "join key").map(|name| JoinKey { name, dtype: None }),
                Node::Mapping(m) => {
                    self.check_keys(m, &["name", "dtype"], &["name"], "a join key");
                    let name = self.name_field(m, "name");
                    let dtype = match m.get_node("dtype") {
                        Some(node) => self.dtype(node, &format!("{path}.dtype")).map(Some),
                        None => Some(None),
                    };
                    name.zip(dtype).map(|(name, dtype)| JoinKey { name, dtype })
                }
                Node::Sequence(_) => {
                    self.error(item.span(), "a join key is a name or `{name: ..., dtype: ...}`", None);
                    None
                }
            };
            match key {
                Some(key) if keys.iter().any(|k: &JoinKey| k.name == key.name) => {
                    self.error(item.span(), format!("join key `{}` is listed twice", key.name), None);
                    ok = false;
                }
                Some(key) => keys.push(key),
                None => ok = false,
            }
        }
        ok.then_some(keys)
    }

    fn source(&mut self, map: &MarkedMappingNode, what: &str) -> Option<Source> {
        if map.get_node("batch_source").is_some() || map.get_node("stream").is_some() {
            return self.push_source(map, what);
        }
        let keys = with_governance(&["name", "path", "table", "query", "format", "timestamp_field", "created_timestamp_column", "field_mapping", "batch_source"]);
        self.check_keys(map, &keys, &["name", "timestamp_field"], what);
        let name = self.name_field(map, "name");
        let (path, table, query) = self.source_location(map, what)?;
        let format = match self.optional_string(map, "format") {
            None => Some(None),
            Some(text) => match text.as_str() {
                "parquet" => Some(Some(FileFormat::Parquet)),
                "csv" => Some(Some(FileFormat::Csv)),
                other => {
                    let span = map.get_node("format").map(|n| *n.span()).unwrap_or_else(Span::new_blank);
                    let help = suggest::help(other, ["parquet", "csv"]);
                    self.error(&span, format!("unknown format `{other}`"), help);
                    None
                }
            },
        };
        let timestamp_field = self.required_string(map, "timestamp_field");
        let created = self.optional_string(map, "created_timestamp_column");
        let field_mapping = self.string_map(map, "field_mapping");
        let governance = self.governance(map);
        Some(Source {
            name: name?,
            path,
            table,
            query,
            format: format.flatten(),
            timestamp_field: timestamp_field.unwrap_or_default(),
            created_timestamp_column: created,
            field_mapping: field_mapping.unwrap_or_default(),
            batch_source: None, stream: None,
            governance: governance.unwrap_or_default(),
        })
    }

    /// Where a batch source's history is: exactly one of `path` (files,
    /// the embedded and Spark engines), `table` or `query` (PostgreSQL).
    fn source_location(&mut self, map: &MarkedMappingNode, what: &str) -> Option<(String, Option<String>, Option<String>)> {
        let path = map.get_node("path").and_then(|_| self.required_string(map, "path"));
        let table = map.get_node("table").and_then(|_| self.required_string(map, "table"));
        let query = map.get_node("query").and_then(|_| self.required_string(map, "query"));
        let given: Vec<&str> = [("path", path.is_some()), ("table", table.is_some()), ("query", query.is_some())].iter().filter(|(_, set)| *set).map(|(k, _)| *k).collect();
        match given.len() {
            1 => Some((path.unwrap_or_default(), table, query)),
            0 => {
                if ["path", "table", "query"].iter().all(|k| map.get_node(k).is_none()) {
                    let span = map.keys().next().map(|k| *k.span()).unwrap_or_else(|| *map.span());
                    self.error(&span, format!("{what} is missing the required key `path`"), Some("add `path: data/file.parquet` (files), or `table: schema.table` / `query: SELECT ...` with `offline: {type: postgres}`".into()));
                }
                None
            }
            _ => {
                let span = map.get_node(given[1]).map(|n| *n.span()).unwrap_or_else(Span::new_blank);
                self.error(&span, format!("{what} has both `{}` and `{}`", given[0], given[1]), Some("give exactly one of `path`, `table` or `query`".into()));
                None
            }
        }
    }

    /// A push source: a name and the batch source whose files and
    /// timestamps it shares (filled in by `resolve_push_sources`).
    /// A stream source is a push source with a `stream:` broker, an
    /// `event_id_field` and an `allowed_lateness` (DESIGN §10).
    fn push_source(&mut self, map: &MarkedMappingNode, what: &str) -> Option<Source> {
        let is_stream = ["stream", "event_id_field", "allowed_lateness"].iter().any(|k| map.get_node(k).is_some());
        let keys = with_governance(&["name", "batch_source", "stream", "event_id_field", "allowed_lateness"]);
        let required: &[&str] = if is_stream { &["name", "batch_source", "stream", "event_id_field"] } else { &["name", "batch_source"] };
        self.check_keys(map, &keys, required, what);
        let name = self.name_field(map, "name");
        let batch = self.required_string(map, "batch_source");
        let stream = if is_stream { Some(self.stream(map)) } else { None };
        let governance = self.governance(map);
        Some(Source {
            name: name?,
            path: String::new(),
            format: None,
            timestamp_field: String::new(),
            created_timestamp_column: None,
            field_mapping: Default::default(),
            table: None,
            query: None,
            batch_source: Some(batch?),
            stream: match stream {
                Some(stream) => Some(stream?),
                None => None,
            },
            governance: governance.unwrap_or_default(),
        })
    }

    /// `stream: {type: nats, url, stream, subject}` or `{type: redis, url,
    /// key}`, with the source's `event_id_field` and `allowed_lateness`
    /// (default 0s: only events in stream order after the newest are taken).
    fn stream(&mut self, map: &MarkedMappingNode) -> Option<Stream> {
        let event_id_field = self.required_string(map, "event_id_field");
        let lateness = self.duration(map, "allowed_lateness");
        let node = map.get_node("stream")?;
        self.record("stream", node.span());
        let spec = self.mapping(node, "`stream`")?;
        let kind = self.nested("stream", |p| p.optional_string(spec, "type"));
        let broker = match kind.as_deref() {
            Some("nats") => {
                self.check_keys(spec, &["type", "url", "stream", "subject"], &["url", "stream", "subject"], "`stream` (type nats)");
                let url = self.nested("stream", |p| p.required_string(spec, "url"));
                let stream = self.nested("stream", |p| p.required_string(spec, "stream"));
                let subject = self.nested("stream", |p| p.required_string(spec, "subject"));
                self.broker_url(spec, url.as_deref(), "nats://");
                Some(Broker::Nats { url: url?, stream: stream?, subject: subject? })
            }
            Some("redis") => {
                self.check_keys(spec, &["type", "url", "key"], &["url", "key"], "`stream` (type redis)");
                let url = self.nested("stream", |p| p.required_string(spec, "url"));
                let key = self.nested("stream", |p| p.required_string(spec, "key"));
                self.broker_url(spec, url.as_deref(), "redis://");
                Some(Broker::Redis { url: url?, key: key? })
            }
            Some(other) => {
                let span = spec.get_node("type").map(|n| *n.span()).unwrap_or_else(Span::new_blank);
                let help = suggest::help(other, ["nats", "redis"]).or_else(|| Some("use `type: nats` (JetStream) or `type: redis` (Redis Streams)".into()));
                self.error(&span, format!("unknown stream type `{other}`"), help);
                None
            }
            None => {
                self.error(node.span(), "`stream` needs a `type`".to_string(), Some("add `type: nats` (with url, stream, subject) or `type: redis` (with url, key)".into()));
                None
            }
        };
        let allowed_lateness = lateness?.unwrap_or_else(|| Duration::from_seconds(0));
        if allowed_lateness.seconds() < 0 {
            let span = map.get_node("allowed_lateness").map(|n| *n.span()).unwrap_or_else(Span::new_blank);
            self.error(&span, "`allowed_lateness` must not be negative".to_string(), None);
            return None;
        }
        Some(Stream { broker: broker?, event_id_field: event_id_field?, allowed_lateness })
    }

    /// A broker URL must name its scheme (a bare host is a common slip).
    fn broker_url(&mut self, spec: &MarkedMappingNode, url: Option<&str>, scheme: &str) {
        let secure = if scheme == "redis://" { "rediss://" } else { "tls://" };
        if let Some(url) = url.filter(|u| !(u.starts_with(scheme) || u.starts_with(secure))) {
            let span = spec.get_node("url").map(|n| *n.span()).unwrap_or_else(Span::new_blank);
            self.error(&span, format!("`{url}` is not a {scheme} URL"), Some(format!("write `{scheme}{}`", url.split("://").last().unwrap_or(url))));
        }
    }

    /// A feature view: precomputed features (`schema`) or windowed
    /// aggregates over an event source (`aggregations`), exactly one of the
    /// two. An aggregation view's `schema` is derived from its aggregations.
    fn feature_view(&mut self, map: &MarkedMappingNode, what: &str) -> Option<FeatureView> {
        let keys = with_governance(&["name", "entities", "source", "ttl", "online", "schema", "aggregations", "tile", "monitoring"]);
        self.check_keys(map, &keys, &["name", "source"], what);
        let monitoring = match map.get_node("monitoring") {
            None => Some(Monitoring::default()),
            Some(node) => self.monitoring(node),
        };
        let name = self.name_field(map, "name");
        let entities = self.string_list(map, "entities").map(|v| v.into_iter().map(|(s, _)| s).collect());
        let source = self.required_string(map, "source");
        let ttl = self.duration(map, "ttl");
        let tile = self.duration(map, "tile");
        let online = self.optional_bool(map, "online");
        let has_schema = map.get_node("schema").is_some();
        let has_aggregations = map.get_node("aggregations").is_some();
        let schema = self.schema(map, ObjectKind::FeatureView);
        let aggregations = self.aggregations(map, !has_schema).unwrap_or_default();
        let governance = self.governance(map);
        match (has_schema, has_aggregations) {
            // A misspelled `schema:` or `aggregations:` was reported as an unknown key.
            (false, false) if !misspelled(map, &keys, &["schema", "aggregations"]) => self.error(
                &first_key_span(map),
                "a feature view needs `schema` (precomputed features) or `aggregations` (windowed aggregates over an event source)",
                Some("add `schema: [{name: my_feature, dtype: float64}]`, or `aggregations: [{column: amount, function: sum, window: 7d}]`".into()),
            ),
            (true, true) => self.error(
                &key_span(map, "aggregations").unwrap_or_else(|| first_key_span(map)),
                "`schema` and `aggregations` cannot be combined",
                Some("split them into two feature views over the same source: one with `schema` (precomputed features), one with `aggregations`".into()),
            ),
            _ => {}
        }
        if has_aggregations && !has_schema && let Some(node) = map.get_node("ttl") {
            self.error(
                node.span(),
                "`ttl` does not apply to aggregation views (the window bounds them)",
                Some("remove `ttl`: an aggregate covers the events in `[T − window, T)`, and an entity with no events there reads as the empty window".into()),
            );
        }
        let aggregation_view = has_aggregations || misspelled(map, &keys, &["aggregations"]);
        let tile = self.tile(map, tile.flatten(), aggregation_view, &aggregations);
        // With both `schema` and `aggregations` (an error, reported) the
        // aggregations' features are kept too, so references to them do not
        // add a cascade of "unknown feature" errors.
        let mut schema = schema.unwrap_or_default();
        for aggregation in &aggregations {
            if !schema.iter().any(|f| f.name == aggregation.name) {
                schema.push(aggregation.feature());
            }
        }
        Some(FeatureView {
            name: name?,
            entities: entities.unwrap_or_default(),
            source: source.unwrap_or_default(),
            ttl: ttl.flatten(),
            online: online.flatten().unwrap_or(true),
            schema,
            aggregations,
            tile,
            monitoring: monitoring.unwrap_or_default(),
            governance: governance.unwrap_or_default(),
        })
    }

    /// `aggregations: [{column: amount, function: sum, window: 7d}]`; each
    /// entry's fields are recorded as `aggregations[i].function` (likewise
    /// `.column`, `.window`, `.n`, `.name`). With `alias_schema` (the view
    /// has no `schema` of its own) each derived feature is also recorded as
    /// `schema[i]`.
    fn aggregations(&mut self, map: &MarkedMappingNode, alias_schema: bool) -> Option<Vec<Aggregation>> {
        let node = map.get_node("aggregations")?;
        self.record("aggregations", node.span());
        let items = self.sequence(node, "aggregations")?;
        if items.is_empty() {
            let help = "add `- {column: amount, function: sum, window: 7d}` (or `- {function: count, window: 1h}` to count events)";
            self.error(node.span(), "an aggregation view needs at least one aggregation in `aggregations`", Some(help.into()));
            return None;
        }
        let mut aggregations: Vec<Aggregation> = Vec::new();
        // Where each kept aggregation's feature was written: its `name`, or its first key.
        let mut written: Vec<Span> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("aggregations[{index}]");
            self.record(&path, item.span());
            let Some(entry) = self.mapping(item, "an aggregation (`{column: ..., function: ..., window: ...}`)") else {
                continue;
            };
            let Some((aggregation, named)) = self.nested(&path, |walker| walker.aggregation(entry)) else { continue };
            let here = match entry.get_node("name") {
                Some(name) if named => *name.span(),
                _ => first_key_span(entry),
            };
            if let Some(first) = aggregations.iter().position(|a| a.name == aggregation.name) {
                let how = if named { "" } else { " (its default name)" };
                let mut diagnostic = Diagnostic::new(self.location(&here), format!("feature `{}`{how} is listed twice in this aggregation view", aggregation.name))
                    .with_related(self.location(&written[first]), "first listed")
                    .with_help("give one of them a `name:` of its own, or remove the repeat");
                diagnostic.snippet = snippet(self.text, diagnostic.location.line);
                self.diagnostics.push(diagnostic);
                continue;
            }
            if alias_schema {
                self.record(&format!("schema[{}]", aggregations.len()), &here);
            }
            aggregations.push(aggregation);
            written.push(here);
        }
        Some(aggregations)
    }

    /// One aggregation, and whether its name was written (`name:`) rather
    /// than derived. `None` when its name cannot be known (the reason was
    /// reported). Its other mistakes are reported and replaced by
    /// placeholders, so the feature stays known to reference checks; any
    /// diagnostic blocks apply, so a placeholder is never stored.
    fn aggregation(&mut self, map: &MarkedMappingNode) -> Option<(Aggregation, bool)> {
        self.check_keys(map, &["column", "function", "window", "n", "name", "description", "tags"], &["function", "window"], "an aggregation");
        let function = self.agg_function(map);
        let column = self.required_string(map, "column");
        let window = self.window(map);
        let n = self.last_n(map);
        let named = map.get_node("name").is_some();
        let name = if named { self.name_field(map, "name") } else { None };
        let description = self.optional_string(map, "description").unwrap_or_default();
        let tags = self.string_map(map, "tags").unwrap_or_default();
        let span_of = |key: &str| map.get_node(key).map(|node| *node.span()).unwrap_or_else(|| first_key_span(map));
        if let Some(function) = function {
            if function.needs_column() && map.get_node("column").is_none() {
                self.error(
                    &span_of("function"),
                    format!("`{function}` needs a `column`"),
                    Some(format!("add the source column to aggregate, e.g. `{{column: amount, function: {function}, window: 7d}}`; only `count` goes without one (it counts events)")),
                );
            }
            match (function, n) {
                (AggFunction::Last, Some(None)) => self.error(
                    &span_of("function"),
                    "`last` needs `n`, e.g. `n: 3`",
                    Some("add `n:`, how many of the newest values to keep: `{column: amount, function: last, n: 3, window: 1d}`".into()),
                ),
                (other, Some(Some(_))) if other != AggFunction::Last => self.error(
                    &span_of("n"),
                    "`n` only applies to `last`",
                    Some(format!("remove `n` from this `{other}` aggregation, or use `function: last` to keep the n newest values")),
                ),
                _ => {}
            }
        }
        let name = if named {
            name?
        } else {
            let (function, window) = (function?, window?);
            if function.needs_column() && column.is_none() {
                return None;
            }
            let default = Aggregation::default_name(column.as_deref(), function, &window);
            if !is_identifier(&default) {
                self.error(
                    &span_of("column"),
                    format!("the default name `{default}` of this aggregation is not a valid feature name"),
                    Some("give the aggregation a `name:` of letters, digits and `_`, not starting with a digit".into()),
                );
                return None;
            }
            default
        };
        let aggregation = Aggregation {
            name,
            column,
            function: function.unwrap_or(AggFunction::Count),
            window: window.unwrap_or(Duration::ZERO),
            n: n.flatten(),
            input_dtype: None,
            description,
            tags,
        };
        Some((aggregation, named))
    }

    /// An aggregation's `function`, with a "did you mean" for a typo.
    fn agg_function(&mut self, map: &MarkedMappingNode) -> Option<AggFunction> {
        let text = self.required_string(map, "function")?;
        if let Some(function) = AggFunction::from_name(&text) {
            return Some(function);
        }
        let span = map.get_node("function").map(|n| *n.span()).unwrap_or_else(Span::new_blank);
        let names: Vec<&str> = AggFunction::ALL.iter().map(|f| f.as_str()).collect();
        let list = names.join(", ");
        let help = match suggest::closest(&text, names.iter().copied()) {
            Some(best) => format!("did you mean `{best}`? (the functions are {list})"),
            None => format!("use one of {list}"),
        };
        self.error(&span, format!("unknown aggregation function `{text}`"), Some(help));
        None
    }

    /// An aggregation's `window`: a duration longer than zero. (A negative
    /// one is not a duration at all: the grammar has no sign.)
    fn window(&mut self, map: &MarkedMappingNode) -> Option<Duration> {
        let window = self.duration(map, "window")??;
        if window.is_zero() {
            let span = map.get_node("window").map(|n| *n.span()).unwrap_or_else(Span::new_blank);
            let help = "write e.g. `window: 7d`; the aggregate covers the events in `[T − window, T)`";
            self.error(&span, "a window must be longer than zero", Some(help.into()));
            return None;
        }
        Some(window)
    }

    /// `n` of `last`: `Some(None)` when absent, `None` when not a whole
    /// number of at least 1 (reported).
    fn last_n(&mut self, map: &MarkedMappingNode) -> Option<Option<usize>> {
        let Some(node) = map.get_node("n") else { return Some(None) };
        self.record("n", node.span());
        let text = self.scalar(node, "n")?.as_str().trim().to_string();
        match text.parse::<usize>() {
            Ok(n) if n > 0 => Some(Some(n)),
            _ => {
                self.error(node.span(), format!("`n` must be a whole number of at least 1, not `{text}`"), Some("write how many of the newest values `last` keeps, e.g. `n: 3`".into()));
                None
            }
        }
    }

    /// An aggregation view's `tile`: longer than zero and no longer than the
    /// smallest window (so every window spans at least one tile).
    fn tile(&mut self, map: &MarkedMappingNode, tile: Option<Duration>, has_aggregations: bool, aggregations: &[Aggregation]) -> Option<Duration> {
        let tile = tile?;
        let span = map.get_node("tile").map(|n| *n.span()).unwrap_or_else(Span::new_blank);
        let default = "leave `tile` out for the default (about a sixtieth of the smallest window)";
        if !has_aggregations {
            self.error(&span, "`tile` only applies to aggregation views", Some("remove `tile`: it sets the granularity of an aggregation view's online state".into()));
            return None;
        }
        if tile.is_zero() {
            self.error(&span, "`tile` must be longer than zero", Some(format!("write e.g. `tile: 5m`, or {default}")));
            return None;
        }
        // A zero window is a placeholder for one that was reported.
        let smallest = aggregations.iter().map(|a| a.window).filter(|w| !w.is_zero()).min();
        if let Some(smallest) = smallest
            && tile > smallest
        {
            let (tile, smallest) = (window_name(&tile), window_name(&smallest));
            self.error(&span, format!("`tile` ({tile}) is longer than the smallest window ({smallest})"), Some(format!("use a tile of at most `{smallest}`, or {default}")));
            return None;
        }
        Some(tile)
    }

    /// `monitoring: {max_staleness: 1h, max_null_rate: 0.1, psi_alert: 0.2}`.
    fn monitoring(&mut self, node: &Node) -> Option<Monitoring> {
        let map = self.mapping(node, "`monitoring`")?;
        self.check_keys(map, &["max_staleness", "max_null_rate", "psi_alert"], &[], "`monitoring`");
        let max_staleness = self.duration(map, "max_staleness");
        let max_null_rate = self.number(map, "max_null_rate", 0.0, 1.0, "a share between 0 and 1, e.g. `0.1`");
        let psi_alert = self.number(map, "psi_alert", 0.0, f64::MAX, "a positive number; 0.1 is a small shift, 0.2 a significant one");
        Some(Monitoring { max_staleness: max_staleness?, max_null_rate: max_null_rate?, psi_alert: psi_alert? })
    }

    fn number(&mut self, map: &MarkedMappingNode, key: &str, min: f64, max: f64, hint: &str) -> Option<Option<f64>> {
        let Some(text) = self.optional_string(map, key) else { return Some(None) };
        match text.trim().parse::<f64>() {
            Ok(value) if value.is_finite() && value >= min && value <= max => Some(Some(value)),
            _ => {
                let span = map.get_node(key).map(|n| *n.span()).unwrap_or_else(Span::new_blank);
                self.error(&span, format!("`{text}` is not a valid `{key}`"), Some(format!("write {hint}")));
                None
            }
        }
    }

    /// The `schema` of a feature view (its features) or of a request source
    /// (the fields a request carries).
    fn schema(&mut self, map: &MarkedMappingNode, owner: ObjectKind) -> Option<Vec<Field>> {
        let node = map.get_node("schema")?;
        self.record("schema", node.span());
        let items = self.sequence(node, "schema")?;
        if items.is_empty() {
            let (message, help) = match owner {
                ObjectKind::RequestSource => ("a request source needs at least one field in `schema`", "add `- {name: amount, dtype: float64}`"),
                _ => ("a feature view needs at least one feature in `schema`", "add `- {name: my_feature, dtype: float64}`"),
            };
            self.error(node.span(), message, Some(help.into()));
            return None;
        }
        let noun = if owner == ObjectKind::RequestSource { "field" } else { "feature" };
        let mut fields: Vec<Field> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("schema[{index}]");
            self.record(&path, item.span());
            let Some(field_map) = self.mapping(item, "a schema entry (`{name: ..., dtype: ...}`)") else {
                continue;
            };
            self.check_keys(field_map, &["name", "dtype", "description", "tags"], &["name", "dtype"], "a schema entry");
            let name = self.name_field(field_map, "name");
            let dtype = field_map.get_node("dtype").and_then(|n| self.dtype(n, &format!("{path}.dtype")));
            let description = self.optional_string(field_map, "description").unwrap_or_default();
            let tags = self.string_map(field_map, "tags");
            let Some(name) = name else { continue };
            if fields.iter().any(|f| f.name == name) {
                self.error(item.span(), format!("{noun} `{name}` is listed twice in this schema"), Some("remove one of them".into()));
                continue;
            }
            // A bad dtype was reported; the placeholder keeps the feature
            // known to reference checks and is never applied.
            fields.push(Field { name, dtype: dtype.unwrap_or(DType::String), description, tags: tags.unwrap_or_default() });
        }
        Some(fields)
    }

    /// A request source: `{name: txn_request, schema: [{name: amount, dtype: float64}]}`.
    fn request_source(&mut self, map: &MarkedMappingNode, what: &str) -> Option<RequestSource> {
        self.check_keys(map, &with_governance(&["name", "schema"]), &["name", "schema"], what);
        let name = self.name_field(map, "name");
        let schema = self.schema(map, ObjectKind::RequestSource);
        let governance = self.governance(map);
        Some(RequestSource { name: name?, schema: schema.unwrap_or_default(), governance: governance.unwrap_or_default() })
    }

    /// An on-demand view: the views and request sources it reads, and its
    /// features, each an expression. The expressions are stored as written;
    /// they are compiled and type-checked at apply, where the sources' types
    /// are known.
    fn on_demand_feature_view(&mut self, map: &MarkedMappingNode, what: &str) -> Option<OnDemandFeatureView> {
        self.check_keys(map, &with_governance(&["name", "sources", "features"]), &["name", "sources", "features"], what);
        let name = self.name_field(map, "name");
        let sources = self.string_list(map, "sources").map(|v| v.into_iter().map(|(s, _)| s).collect::<Vec<_>>());
        if let Some(node) = map.get_node("sources")
            && sources.as_ref().is_some_and(|s| s.is_empty())
        {
            self.error(node.span(), "an on-demand feature view needs at least one source", Some("list the feature views and request sources its expressions read: `sources: [user_stats, txn_request]`".into()));
        }
        let features = self.on_demand_features(map);
        let governance = self.governance(map);
        Some(OnDemandFeatureView {
            name: name?,
            sources: sources.unwrap_or_default(),
            features: features.unwrap_or_default(),
            governance: governance.unwrap_or_default(),
        })
    }

    /// `features: [{name: ratio, dtype: float64, expr: "amount / avg"}]`;
    /// each entry's fields are recorded as `features[i].name`, `.dtype`, `.expr`.
    fn on_demand_features(&mut self, map: &MarkedMappingNode) -> Option<Vec<OnDemandFeature>> {
        let node = map.get_node("features")?;
        self.record("features", node.span());
        let items = self.sequence(node, "features")?;
        if items.is_empty() {
            let help = "add `- {name: my_feature, dtype: float64, expr: \"amount * 2\"}`";
            self.error(node.span(), "an on-demand feature view needs at least one feature in `features`", Some(help.into()));
            return None;
        }
        let mut features: Vec<OnDemandFeature> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("features[{index}]");
            self.record(&path, item.span());
            let Some(feature_map) = self.mapping(item, "an on-demand feature (`{name: ..., dtype: ..., expr: ...}`)") else {
                continue;
            };
            let Some(feature) = self.nested(&path, |walker| walker.on_demand_feature(feature_map)) else { continue };
            if features.iter().any(|f| f.name == feature.name) {
                self.error(item.span(), format!("feature `{}` is listed twice in this on-demand feature view", feature.name), Some("remove one of them or rename it".into()));
                continue;
            }
            features.push(feature);
        }
        Some(features)
    }

    fn on_demand_feature(&mut self, map: &MarkedMappingNode) -> Option<OnDemandFeature> {
        self.check_keys(map, &["name", "dtype", "expr", "description", "tags"], &["name", "dtype", "expr"], "an on-demand feature");
        let name = self.name_field(map, "name");
        let dtype = map.get_node("dtype").and_then(|n| self.dtype(n, "dtype"));
        let expr = self.expr(map);
        let description = self.optional_string(map, "description").unwrap_or_default();
        let tags = self.string_map(map, "tags");
        // A bad dtype or expr was reported; the placeholders keep the feature
        // known to reference checks and are never applied.
        Some(OnDemandFeature {
            name: name?,
            dtype: dtype.unwrap_or(DType::String),
            expr: expr.unwrap_or_default(),
            description,
            tags: tags.unwrap_or_default(),
        })
    }

    /// An on-demand feature's SQL expression, trimmed; blank is an error.
    fn expr(&mut self, map: &MarkedMappingNode) -> Option<String> {
        let node = map.get_node("expr")?;
        self.record("expr", node.span());
        let text = self.scalar(node, "expr")?.as_str().trim().to_string();
        if text.is_empty() {
            let help = "write a SQL expression over the fields of the view's sources, e.g. `expr: \"amount / nullif(txn_amount_avg_7d, 0)\"`";
            self.error(node.span(), "`expr` must not be empty", Some(help.into()));
            return None;
        }
        Some(text)
    }

    fn feature_service(&mut self, map: &MarkedMappingNode, what: &str) -> Option<FeatureService> {
        self.check_keys(map, &with_governance(&["name", "features"]), &["name", "features"], what);
        let name = self.name_field(map, "name");
        let governance = self.governance(map);
        let items = self.string_list(map, "features");
        let mut features = Vec::new();
        for (text, span) in items.clone().unwrap_or_default() {
            match text.parse::<FeatureRef>() {
                Ok(reference) => features.push(reference),
                Err(error) => self.error(&span, error.to_string(), None),
            }
        }
        if items.as_ref().is_some_and(|i| i.is_empty()) {
            let span = map.get_node("features").map(|n| *n.span()).unwrap_or_else(Span::new_blank);
            self.error(&span, "a feature service needs at least one feature", Some("list `view:feature` references or bare view names".into()));
        }
        Some(FeatureService { name: name?, features, governance: governance.unwrap_or_default() })
    }

    fn store_type<'n>(&mut self, node: &'n Node, what: &str, types: &[&str]) -> Option<(&'n MarkedMappingNode, String)> {
        let map = self.mapping(node, &format!("`{what}`"))?;
        let kind = match map.get_node("type") {
            None => types[0].to_string(),
            Some(type_node) => {
                let kind = self.scalar(type_node, "type")?.as_str().to_string();
                if !types.contains(&kind.as_str()) {
                    let help = format!(
                        "supported {what} types: {}{}",
                        types.join(", "),
                        suggest::closest(&kind, types.iter().copied()).map(|b| format!(" (did you mean `{b}`?)")).unwrap_or_default()
                    );
                    self.error(type_node.span(), format!("{what} type `{kind}` is not supported"), Some(help));
                    return None;
                }
                kind
            }
        };
        Some((map, kind))
    }

    fn registry_config(&mut self, node: &Node) -> Option<RegistryConfig> {
        let (map, kind) = self.store_type(node, "registry", &["file", "postgres"])?;
        if kind == "postgres" {
            self.check_keys(map, &["type", "url"], &["url"], "`registry`");
            let url = self.required_string(map, "url")?;
            self.check_postgres_url(map, "url", &url)?;
            return Some(RegistryConfig::Postgres { url });
        }
        self.check_keys(map, &["type", "path"], &[], "`registry`");
        let path = self.optional_string(map, "path");
        Some(match path {
            Some(path) => RegistryConfig::File { path },
            None => RegistryConfig::default(),
        })
    }

    fn offline_config(&mut self, node: &Node) -> Option<OfflineConfig> {
        let (map, kind) = self.store_type(node, "offline", &["embedded", "postgres", "spark"])?;
        match kind.as_str() {
            "postgres" => {
                self.check_keys(map, &["type", "url"], &["url"], "`offline`");
                let url = self.required_string(map, "url")?;
                self.check_postgres_url(map, "url", &url)?;
                Some(OfflineConfig::Postgres { url })
            }
            "spark" => {
                self.check_keys(map, &["type", "master", "python"], &[], "`offline`");
                let master = self.optional_string(map, "master").unwrap_or_else(|| "local[2]".to_string());
                let python = self.optional_string(map, "python");
                Some(OfflineConfig::Spark { master, python })
            }
            _ => {
                self.check_keys(map, &["type"], &[], "`offline`");
                Some(OfflineConfig::Embedded)
            }
        }
    }

    fn check_postgres_url(&mut self, map: &MarkedMappingNode, key: &str, url: &str) -> Option<()> {
        if url.starts_with("postgresql://") || url.starts_with("postgres://") {
            return Some(());
        }
        let span = map.get_node(key).map(|n| *n.span()).unwrap_or_else(Span::new_blank);
        self.error(&span, format!("`{url}` is not a PostgreSQL URL"), Some("write `postgresql://USER@HOST:PORT/DATABASE`".into()));
        None
    }

    fn online_config(&mut self, node: &Node) -> Option<OnlineConfig> {
        let (map, kind) = self.store_type(node, "online", &["embedded", "redis", "redis-cluster"])?;
        match kind.as_str() {
            "redis" => {
                self.check_keys(map, &["type", "url"], &["url"], "`online`");
                let url = self.required_string(map, "url")?;
                self.check_redis_url(map, "url", &url)?;
                Some(OnlineConfig::Redis { url })
            }
            "redis-cluster" => {
                self.check_keys(map, &["type", "nodes"], &["nodes"], "`online`");
                let nodes = self.string_list(map, "nodes")?;
                if nodes.is_empty() {
                    let span = map.get_node("nodes").map(|n| *n.span()).unwrap_or_else(Span::new_blank);
                    self.error(&span, "a Redis Cluster needs at least one node", Some("list seed nodes: `nodes: [redis://10.0.0.1:7000, ...]`".into()));
                    return None;
                }
                let mut ok = true;
                for (url, span) in &nodes {
                    if !url.starts_with("redis://") && !url.starts_with("rediss://") {
                        self.error(span, format!("`{url}` is not a Redis URL"), Some("write nodes as `redis://HOST:PORT`".into()));
                        ok = false;
                    }
                }
                ok.then(|| OnlineConfig::RedisCluster { nodes: nodes.into_iter().map(|(url, _)| url).collect() })
            }
            _ => {
                self.check_keys(map, &["type", "path"], &[], "`online`");
                Some(match self.optional_string(map, "path") {
                    Some(path) => OnlineConfig::Embedded { path },
                    None => OnlineConfig::default(),
                })
            }
        }
    }

    fn parity_schedule(&mut self, node: &Node) -> Option<ParitySchedule> {
        let map = self.mapping(node, "`parity`")?;
        self.check_keys(map, &["every", "sample"], &["every"], "`parity`");
        let every = self.duration(map, "every")?;
        let sample = self.number(map, "sample", 1.0, 1e7, "a number of entities per view, e.g. `1000`")?;
        let every = every?;
        if every.is_zero() {
            let span = map.get_node("every").map(|n| *n.span()).unwrap_or_else(Span::new_blank);
            self.error(&span, "`every` must be longer than zero", Some("write e.g. `every: 10m`".into()));
            return None;
        }
        Some(ParitySchedule { every, sample: sample.map(|s| s as usize).unwrap_or(1000) })
    }

    fn timestamp_range(&mut self, node: &Node) -> Option<TimestampRange> {
        let map = self.mapping(node, "`timestamp_range`")?;
        self.check_keys(map, &["earliest", "latest"], &[], "`timestamp_range`");
        let defaults = TimestampRange::default();
        let earliest = self.instant(map, "earliest", defaults.earliest_micros);
        let latest = self.instant(map, "latest", defaults.latest_micros);
        let (earliest, latest) = (earliest?, latest?);
        if earliest >= latest {
            let span = map.get_node("latest").map(|n| *n.span()).unwrap_or_else(Span::new_blank);
            self.error(&span, "`latest` must be after `earliest`", Some("write e.g. `timestamp_range: {earliest: 1970-01-01, latest: 2200-01-01}`".into()));
            return None;
        }
        Some(TimestampRange { earliest_micros: earliest, latest_micros: latest })
    }

    /// An instant in the one timestamp grammar, or `default` when absent.
    fn instant(&mut self, map: &MarkedMappingNode, key: &str, default: i64) -> Option<i64> {
        let Some(text) = self.optional_string(map, key) else { return Some(default) };
        match almanac_core::time::parse_timestamp_micros(&text) {
            Some(micros) => Some(micros),
            None => {
                let span = map.get_node(key).map(|n| *n.span()).unwrap_or_else(Span::new_blank);
                self.error(&span, format!("`{text}` is not a timestamp"), Some(almanac_core::time::TIMESTAMP_HELP.to_string()));
                None
            }
        }
    }

    fn check_redis_url(&mut self, map: &MarkedMappingNode, key: &str, url: &str) -> Option<()> {
        if url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix://") {
            return Some(());
        }
        let span = map.get_node(key).map(|n| *n.span()).unwrap_or_else(Span::new_blank);
        self.error(&span, format!("`{url}` is not a Redis URL"), Some("write `redis://HOST:PORT/DB`, e.g. `redis://127.0.0.1:6379/0`".into()));
        None
    }
}

/// One parsed object of any kind, on its way to its list in the definitions.
enum ParsedObject {
    Entity(Entity),
    Source(Source),
    RequestSource(RequestSource),
    FeatureView(FeatureView),
    OnDemandFeatureView(OnDemandFeatureView),
    FeatureService(FeatureService),
}

/// Where a mapping starts for a reader: its first key (the mapping's own
/// span starts at its first colon).
fn first_key_span(map: &MarkedMappingNode) -> Span {
    map.keys().next().map(|k| *k.span()).unwrap_or_else(|| *map.span())
}

/// Where `key` itself (not its value) is written in a mapping.
fn key_span(map: &MarkedMappingNode, key: &str) -> Option<Span> {
    map.keys().find(|k| k.as_str() == key).map(|k| *k.span())
}

/// Whether an unknown key of `map` was reported as a likely typo of one of
/// `targets` (see `check_keys`), so a "missing" error would repeat it.
fn misspelled(map: &MarkedMappingNode, allowed: &[&str], targets: &[&str]) -> bool {
    map.keys().any(|key| {
        !allowed.contains(&key.as_str())
            && suggest::closest(key.as_str(), allowed.iter().copied()).is_some_and(|best| targets.contains(&best))
    })
}

fn with_governance(keys: &[&'static str]) -> Vec<&'static str> {
    keys.iter().chain(GOVERNANCE_KEYS.iter()).copied().collect()
}

/// Letters, digits and `_`, not starting with a digit: safe as a column name
/// and inside `view:feature` / `view__feature`.
pub fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The text of a 1-based line, for rendering under a diagnostic.
pub fn snippet(text: &str, line: usize) -> Option<String> {
    text.lines().nth(line.checked_sub(1)?).map(|l| l.trim_end().to_string())
}
