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
    /// Empty for a source that is a table or a query of a pushdown engine.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// A table of the pushdown engine (`offline: {type: postgres}`), possibly
    /// schema-qualified, instead of files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// A query of the pushdown engine whose result is the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
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
    /// Set for a *stream* source (a push source fed by a broker, DESIGN
    /// §10): where its events come from and how they are deduplicated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<Stream>,
    #[serde(flatten)]
    pub governance: Governance,
}

/// A stream source's broker and its exactly-once rules (DESIGN §10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    pub broker: Broker,
    /// The event field that identifies an event: a second event with an id
    /// already ingested is a duplicate (a broker redelivery, a producer
    /// retry) and is dropped.
    pub event_id_field: String,
    /// How far behind the newest event time seen on the stream an event may
    /// be and still be ingested; older ones are set aside as late.
    pub allowed_lateness: Duration,
}

/// Where a stream source's events are read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Broker {
    /// A NATS JetStream stream, read by a durable pull consumer.
    Nats { url: String, stream: String, subject: String },
    /// A Redis stream, read by a consumer group (`XREADGROUP`/`XACK`).
    Redis { url: String, key: String },
}

impl Broker {
    /// `nats://…/STREAM (subject s)` or `redis://…/0 key k`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Broker::Nats { url, stream, subject } => format!("NATS stream `{stream}` (subject `{subject}`) at {url}"),
            Broker::Redis { url, key } => format!("Redis stream `{key}` at {url}"),
        }
    }
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

/// The function of one aggregation of an aggregation view (DESIGN §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggFunction {
    /// Rows in the window; non-null values of `column` when one is given.
    Count,
    Sum,
    Mean,
    Min,
    Max,
    /// Sample standard deviation (n − 1); null with fewer than 2 values.
    Stddev,
    /// Sample variance (n − 1); null with fewer than 2 values.
    Variance,
    /// Distinct non-null values, estimated by a deterministic HyperLogLog.
    ApproxCountDistinct,
    /// The `n` newest non-null values, newest first.
    Last,
}

impl AggFunction {
    /// Every function, in the order help texts list them.
    pub const ALL: [AggFunction; 9] = [
        AggFunction::Count,
        AggFunction::Sum,
        AggFunction::Mean,
        AggFunction::Min,
        AggFunction::Max,
        AggFunction::Stddev,
        AggFunction::Variance,
        AggFunction::ApproxCountDistinct,
        AggFunction::Last,
    ];

    /// The name as written in definitions (`approx_count_distinct`).
    pub fn as_str(self) -> &'static str {
        match self {
            AggFunction::Count => "count",
            AggFunction::Sum => "sum",
            AggFunction::Mean => "mean",
            AggFunction::Min => "min",
            AggFunction::Max => "max",
            AggFunction::Stddev => "stddev",
            AggFunction::Variance => "variance",
            AggFunction::ApproxCountDistinct => "approx_count_distinct",
            AggFunction::Last => "last",
        }
    }

    /// The function written `name`, if there is one.
    pub fn from_name(name: &str) -> Option<AggFunction> {
        AggFunction::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Whether the function reads a column: all but `count`, which counts
    /// rows when it has none.
    pub fn needs_column(self) -> bool {
        self != AggFunction::Count
    }

    /// The dtype of the aggregate over a column of dtype `input` (`None`:
    /// no column, or its type is not known yet); `None` when the function
    /// is not defined for that type (`mean` of a string) or needs the type
    /// to say.
    ///
    /// Counts are int64 (`approx_count_distinct` not over a list column);
    /// `sum` is int64 over integers and float64 over
    /// floats; `mean`, `stddev` and `variance` are float64 over numbers;
    /// `min`/`max` keep the column's type for numbers, strings, timestamps
    /// and bools; `last` is a list of the column's type (lists of lists do
    /// not exist, so not over a list column).
    pub fn output_dtype(self, input: Option<&DType>) -> Option<DType> {
        let numeric = |d: &DType| matches!(d, DType::Int32 | DType::Int64 | DType::Float32 | DType::Float64);
        match self {
            AggFunction::Count => Some(DType::Int64),
            // Values are hashed one by one; a list has no single value to hash.
            AggFunction::ApproxCountDistinct => match input {
                Some(DType::List(_)) => None,
                _ => Some(DType::Int64),
            },
            AggFunction::Sum => match input? {
                DType::Int32 | DType::Int64 => Some(DType::Int64),
                DType::Float32 | DType::Float64 => Some(DType::Float64),
                _ => None,
            },
            AggFunction::Mean | AggFunction::Stddev | AggFunction::Variance => {
                input.filter(|&d| numeric(d)).map(|_| DType::Float64)
            }
            AggFunction::Min | AggFunction::Max => match input? {
                d @ (DType::Int32
                | DType::Int64
                | DType::Float32
                | DType::Float64
                | DType::String
                | DType::Timestamp
                | DType::Bool) => Some(d.clone()),
                _ => None,
            },
            AggFunction::Last => match input? {
                DType::List(_) => None,
                d => Some(DType::List(Box::new(d.clone()))),
            },
        }
    }

    /// Whether the function is defined over a column of dtype `input`.
    pub fn applies_to(self, input: &DType) -> bool {
        self.output_dtype(Some(input)).is_some()
    }
}

impl fmt::Display for AggFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One windowed aggregate of an aggregation view: `function` over `column`
/// for the events in `[T − window, T)`. It is one feature of the view,
/// named `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregation {
    /// As written, or [`Aggregation::default_name`].
    pub name: String,
    /// The source column (a definition-level name, mapped through the
    /// source's `field_mapping`); `None` only for `count` (rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub function: AggFunction,
    /// Longer than zero.
    pub window: Duration,
    /// How many values `last` keeps; set for `last` only, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// The input column's dtype, resolved from the source files at apply
    /// (`None` before, and for a `count` without a column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_dtype: Option<DType>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl Aggregation {
    /// The name of an aggregation written without `name:`:
    /// `{column}_{function}_{window}` (`amount_sum_7d`), or
    /// `{function}_{window}` without a column (`count_1h`).
    ///
    /// The window is written in the largest of days, hours, minutes and
    /// seconds that divides it exactly, so one window has one name however
    /// it was spelled (`24h` and `1d` both read `1d`, and two aggregations
    /// that differ only in the spelling clash). Unlike `Duration`'s own
    /// text, weeks are written in days: `7d` (the window everyone writes)
    /// stays `7d`, not `1w`.
    pub fn default_name(column: Option<&str>, function: AggFunction, window: &Duration) -> String {
        let window = window_name(window);
        match column {
            Some(column) => format!("{column}_{function}_{window}"),
            None => format!("{function}_{window}"),
        }
    }

    /// The dtype of this aggregate over a column of dtype `input`; see
    /// [`AggFunction::output_dtype`].
    pub fn output_dtype(&self, input: Option<&DType>) -> Option<DType> {
        self.function.output_dtype(input)
    }

    /// The feature this aggregation produces: its name, and its dtype over
    /// the resolved [`Aggregation::input_dtype`]. Before the input type is
    /// known (at parse time) a column-dependent dtype is a placeholder
    /// (`float64`, `list<float64>` for `last`) that the apply-time check
    /// replaces; it is never stored.
    pub fn feature(&self) -> Field {
        let dtype = self.output_dtype(self.input_dtype.as_ref()).unwrap_or_else(|| match self.function {
            AggFunction::Last => DType::List(Box::new(DType::Float64)),
            _ => DType::Float64,
        });
        Field { name: self.name.clone(), dtype, description: self.description.clone(), tags: self.tags.clone() }
    }
}

/// The input columns of `aggregations`, each once, in the order they are
/// first named, with the dtypes `apply` resolved (see
/// [`FeatureView::aggregation_inputs`]).
pub fn aggregation_inputs(aggregations: &[Aggregation]) -> Vec<Field> {
    let mut fields: Vec<Field> = Vec::new();
    for aggregation in aggregations {
        if let (Some(column), Some(dtype)) = (&aggregation.column, &aggregation.input_dtype)
            && !fields.iter().any(|f| f.name == *column)
        {
            fields.push(Field { name: column.clone(), dtype: dtype.clone(), description: String::new(), tags: Default::default() });
        }
    }
    fields
}

/// A schema of features bound to one source and zero or more entities; the
/// unit of materialization and of online storage.
///
/// A view either declares precomputed features (`schema`) or computes
/// windowed aggregates over an event source (`aggregations`); for the latter
/// `schema` holds the derived features (one per aggregation, named and typed
/// by it), so references, services, the catalog and serving plans see an
/// aggregation view's features like any other view's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureView {
    pub name: String,
    /// Empty for a global view (one record, no keys).
    pub entities: Vec<String>,
    pub source: String,
    /// `None` or zero: values never expire. Never set on an aggregation
    /// view (its windows bound it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    pub online: bool,
    pub schema: Vec<Field>,
    /// Empty for a view of precomputed features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregations: Vec<Aggregation>,
    /// The online state's tile size for an aggregation view, as declared;
    /// see [`FeatureView::default_tile`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile: Option<Duration>,
    #[serde(default, skip_serializing_if = "Monitoring::is_empty")]
    pub monitoring: Monitoring,
    #[serde(flatten)]
    pub governance: Governance,
}

impl FeatureView {
    pub fn feature(&self, name: &str) -> Option<&Field> {
        self.schema.iter().find(|f| f.name == name)
    }

    /// Whether the view computes windowed aggregates (DESIGN §9) rather
    /// than reading precomputed features.
    pub fn is_aggregation(&self) -> bool {
        !self.aggregations.is_empty()
    }

    /// An aggregation view's input columns, each once, in the order its
    /// aggregations first name them, with the dtypes `apply` resolved: what
    /// its history holds beside keys and times, the layout every engine
    /// returns events in, and what an online state lists.
    pub fn aggregation_inputs(&self) -> Vec<Field> {
        aggregation_inputs(&self.aggregations)
    }

    pub fn aggregation(&self, name: &str) -> Option<&Aggregation> {
        self.aggregations.iter().find(|a| a.name == name)
    }

    /// The shortest window of an aggregation view (`None` for other views).
    pub fn smallest_window(&self) -> Option<Duration> {
        self.aggregations.iter().map(|a| a.window).min()
    }

    /// The longest window of an aggregation view (`None` for other views):
    /// how far back an online read, or an offline sweep, must see events.
    pub fn largest_window(&self) -> Option<Duration> {
        self.aggregations.iter().map(|a| a.window).max()
    }

    /// The tile size of an aggregation view's online state (`None` for
    /// other views): the declared `tile`, or else the largest whole number
    /// of seconds that is at most a sixtieth of the smallest window and
    /// divides every window (at least 1s).
    ///
    /// Why: a read combines the whole tiles inside a window with the raw
    /// events kept for the partial tile at each of its edges, so a tile of
    /// 1/60 of the smallest window keeps those raw events to about a
    /// sixtieth of that window's events, while the longest window spans a
    /// bounded number of tiles (60 × largest / smallest). Dividing every
    /// window makes a window's start fall on a tile boundary whenever its
    /// end does. For windows of 1h, 1d and 7d the default is 1m; for 7d and
    /// 30d it is 160m (the largest divisor of 1d not above 7d / 60 = 168m).
    pub fn default_tile(&self) -> Option<Duration> {
        if let Some(tile) = self.tile {
            return Some(tile);
        }
        let smallest = self.smallest_window()?.seconds();
        let common = self.aggregations.iter().fold(0, |acc, a| gcd(acc, a.window.seconds()));
        let limit = (smallest / 60).max(1);
        Some(Duration::from_seconds(largest_divisor_at_most(common, limit)))
    }
}

/// A window as it appears in a default aggregation name (and in messages
/// about windows): the largest of days, hours, minutes and seconds that
/// divides it exactly, so `7d` (or `168h`) is `7d`, not `Duration`'s `1w`.
pub fn window_name(window: &Duration) -> String {
    let seconds = window.seconds();
    let (unit, factor) = [('d', 86_400), ('h', 3_600), ('m', 60)]
        .into_iter()
        .find(|(_, factor)| seconds != 0 && seconds % factor == 0)
        .unwrap_or(('s', 1));
    format!("{}{unit}", seconds / factor)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The largest divisor of `n` (> 0) that is at most `limit` (≥ 1); 1 when
/// `n` is not positive. Divisor pairs are found up to √n, capped at 2²²
/// so that absurd windows (millennia) cannot make this slow; past the cap
/// the answer is still a divisor, just maybe not the largest.
fn largest_divisor_at_most(n: i64, limit: i64) -> i64 {
    if n <= 0 {
        return 1;
    }
    let mut best = 1;
    let mut d: i64 = 1;
    while d <= n / d && d <= 1 << 22 {
        if n % d == 0 {
            for candidate in [d, n / d] {
                if candidate <= limit && candidate > best {
                    best = candidate;
                }
            }
        }
        d += 1;
    }
    best
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
            aggregations: Vec::new(),
            tile: None,
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

    fn aggregation(column: Option<&str>, function: AggFunction, window: &str) -> Aggregation {
        let window: Duration = window.parse().expect("window");
        Aggregation {
            name: Aggregation::default_name(column, function, &window),
            column: column.map(str::to_string),
            function,
            window,
            n: (function == AggFunction::Last).then_some(3),
            input_dtype: None,
            description: String::new(),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn aggregation_names_and_types_follow_the_design() {
        assert_eq!(aggregation(None, AggFunction::Count, "1h").name, "count_1h");
        assert_eq!(aggregation(Some("amount"), AggFunction::Sum, "7d").name, "amount_sum_7d", "not `1w`");
        assert_eq!(aggregation(Some("amount"), AggFunction::Sum, "168h").name, "amount_sum_7d", "one name however the window is spelled");
        assert_eq!(aggregation(None, AggFunction::Count, "2w").name, "count_14d");
        assert_eq!(aggregation(None, AggFunction::Count, "90m").name, "count_90m");
        assert_eq!(aggregation(None, AggFunction::Count, "36h").name, "count_36h");
        assert_eq!(aggregation(None, AggFunction::Count, "45s").name, "count_45s");
        assert_eq!(aggregation(Some("merchant_id"), AggFunction::ApproxCountDistinct, "7d").name, "merchant_id_approx_count_distinct_7d");
        for function in AggFunction::ALL {
            assert_eq!(AggFunction::from_name(function.as_str()), Some(function));
            assert_eq!(serde_json::to_value(function).expect("json"), function.as_str());
        }
        assert_eq!(AggFunction::from_name("avg"), None);
        let out = |function: AggFunction, input: DType| function.output_dtype(Some(&input));
        assert_eq!(out(AggFunction::Sum, DType::Int32), Some(DType::Int64));
        assert_eq!(out(AggFunction::Sum, DType::Float32), Some(DType::Float64));
        assert_eq!(out(AggFunction::Sum, DType::String), None);
        assert_eq!(out(AggFunction::Mean, DType::Int64), Some(DType::Float64));
        assert_eq!(out(AggFunction::Variance, DType::Timestamp), None);
        assert_eq!(out(AggFunction::Max, DType::Timestamp), Some(DType::Timestamp));
        assert_eq!(out(AggFunction::Min, DType::Bytes), None);
        assert_eq!(out(AggFunction::Count, DType::Bytes), Some(DType::Int64));
        assert_eq!(out(AggFunction::Count, DType::List(Box::new(DType::Int64))), Some(DType::Int64));
        assert_eq!(out(AggFunction::ApproxCountDistinct, DType::String), Some(DType::Int64));
        assert_eq!(out(AggFunction::ApproxCountDistinct, DType::List(Box::new(DType::Int64))), None);
        assert_eq!(out(AggFunction::Last, DType::String), Some(DType::List(Box::new(DType::String))));
        assert_eq!(out(AggFunction::Last, DType::List(Box::new(DType::Int64))), None);
        assert_eq!(AggFunction::Count.output_dtype(None), Some(DType::Int64));
        assert_eq!(AggFunction::Mean.output_dtype(None), None);
    }

    #[test]
    fn the_default_tile_divides_every_window() {
        fn view(windows: &[&str], tile: Option<&str>) -> FeatureView {
            FeatureView {
                name: "w".into(),
                entities: vec![],
                source: "events".into(),
                ttl: None,
                online: true,
                schema: vec![],
                aggregations: windows.iter().map(|w| aggregation(None, AggFunction::Count, w)).collect(),
                tile: tile.map(|t| t.parse().expect("tile")),
                monitoring: Monitoring::default(),
                governance: Governance::default(),
            }
        }
        fn tile(windows: &[&str], declared: Option<&str>) -> Option<String> {
            view(windows, declared).default_tile().map(|t| t.to_string())
        }
        assert_eq!(tile(&["1h", "1d", "7d"], None).as_deref(), Some("1m"));
        assert_eq!(tile(&["7d", "30d"], None).as_deref(), Some("160m"));
        assert_eq!(tile(&["30s"], None).as_deref(), Some("1s"), "at least a second");
        assert_eq!(tile(&["1h"], Some("5m")).as_deref(), Some("5m"), "a declared tile wins");
        assert_eq!(tile(&[], None), None, "not an aggregation view");
        assert!(view(&["1h"], None).is_aggregation() && !view(&[], None).is_aggregation());
    }
}
