//! The command line, as clap types. Only shapes and defaults live here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "almanac", version, about = "Almanac: a feature store that keeps training and serving consistent")]
pub struct Cli {
    /// The feature repo folder (holding almanac.yaml).
    #[arg(long, global = true, default_value = ".")]
    pub repo: PathBuf,

    /// Print structured output as JSON.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a feature repo: a commented template, or the demo with generated data.
    Init(InitArgs),
    /// Show what `apply` would change in the registry; writes nothing.
    Plan(PlanArgs),
    /// Validate the definitions against their sources and write them to the registry.
    Apply,
    /// Discover what the registry holds.
    #[command(subcommand)]
    Features(FeaturesCommand),
    /// Build a point-in-time-correct training set for an entity table.
    Historical(HistoricalArgs),
    /// Export one view's rows in a time range, or the latest row per entity.
    Export(ExportArgs),
    /// Write the latest value per entity in an event-time window into the online store.
    Materialize(MaterializeArgs),
    /// Materialize what is new since each view's watermark, up to --end.
    MaterializeIncremental(IncrementalArgs),
    /// Look up the latest feature values of entities in the online store.
    Online(OnlineArgs),
    /// Run the HTTP feature server (Feast-compatible API).
    Serve(ServeArgs),
    /// Check that online values equal point-in-time values for sampled entities
    /// (exit 0: all equal, 1: divergence, 2: error).
    Parity(ParityArgs),
    /// Staleness, null rates and drift per view and feature (exit 1 on any alert).
    Monitor(MonitorArgs),
    /// Run the whole feature store on generated data, step by step.
    Demo(DemoArgs),
    /// Read stream sources (NATS JetStream, Redis Streams) into both stores.
    Ingest(IngestArgs),
    /// Publish JSON events (one per line, from a file or stdin) to a stream source's broker.
    Publish(PublishArgs),
    /// Convert a Feast repo into an Almanac repo (the importer runs in a
    /// Python that has `feast`: ALMANAC_PYTHON, or python3).
    ImportFeast(ImportFeastArgs),
}

#[derive(Debug, Args, Clone)]
pub struct StreamBatchArgs {
    /// Most events in one micro-batch (one Parquet file, one broker ack).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_rows: u32,
    /// Longest a micro-batch stays open (e.g. 50ms, 1s): bounds how long an
    /// event waits before it is servable, and how many files are written.
    #[arg(long, default_value = "20ms", value_parser = parse_millis)]
    pub batch_delay: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Only these stream sources, comma-separated (default: every stream source).
    #[arg(long, value_parser = parse_views)]
    pub sources: Option<ViewList>,
    /// Stop once every stream has nothing left to deliver, and print a summary.
    #[arg(long)]
    pub until_idle: bool,
    #[command(flatten)]
    pub batch: StreamBatchArgs,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The stream source whose broker receives the events.
    pub source: String,
    /// JSON lines to publish (default: stdin).
    #[arg(long)]
    pub file: Option<PathBuf>,
}

/// `50ms`, `2s`, or a bare number of milliseconds.
fn parse_millis(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else {
        (text, 1)
    };
    let n: u64 = number.trim().parse().map_err(|_| format!("`{text}` is not a duration; write e.g. 50ms or 1s"))?;
    if n == 0 {
        return Err("the batch delay must be longer than zero".into());
    }
    Ok(std::time::Duration::from_millis(n * scale))
}

#[derive(Debug, Args)]
pub struct ImportFeastArgs {
    /// The Feast repo (the folder with feature_store.yaml).
    pub feast_repo: PathBuf,
    /// Where to write the Almanac repo (default: FEAST_REPO-almanac beside it).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Do not check the written repo with `almanac plan`.
    #[arg(long)]
    pub no_check: bool,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Only these views, comma-separated (default: every view).
    #[arg(long, value_parser = parse_views)]
    pub views: Option<ViewList>,
    /// The instant monitored (RFC 3339 or `now`).
    #[arg(long, default_value = "now")]
    pub at: String,
    /// Length of the current window, ending at --at.
    #[arg(long, default_value = "7d")]
    pub window: String,
    /// Length of the reference window, just before the current one.
    #[arg(long, default_value = "28d", conflicts_with = "reference_file")]
    pub reference_window: String,
    /// Use a training set (Parquet or CSV with the features as columns) as the reference instead.
    #[arg(long)]
    pub reference_file: Option<PathBuf>,
    /// Also write a self-contained HTML report with the distributions overlaid.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// The current sample: `offline` (recent offline history, --window) or
    /// `online` (the values the online store serves: materialized or pushed).
    #[arg(long, value_enum, default_value_t = CurrentSample::Offline)]
    pub current: CurrentSample,
}

#[derive(Debug, Args)]
pub struct ParityArgs {
    /// Only these views, comma-separated (default: every online view).
    #[arg(long, value_parser = parse_views)]
    pub views: Option<ViewList>,
    /// Entities sampled per view (half from the online store, half from the source).
    #[arg(long, default_value_t = 1000)]
    pub sample: usize,
    /// Seed of the sample (the same seed checks the same entities).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Relative tolerance for float features (0 = exact).
    #[arg(long, default_value_t = 0.0)]
    pub tolerance: f64,
    /// The instant compared (RFC 3339 or `now`).
    #[arg(long, default_value = "now")]
    pub at: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind (0 = any free port; the chosen one is printed).
    #[arg(long, default_value_t = 6566)]
    pub port: u16,
    /// Require `Authorization: Bearer <token>`, the token read from this file.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// Most entities in one online request.
    #[arg(long, default_value_t = 10_000)]
    pub max_entities: usize,
    /// Most feature references in one online request.
    #[arg(long, default_value_t = 1_000)]
    pub max_features: usize,
    /// Most rows in one push.
    #[arg(long, default_value_t = 10_000)]
    pub max_push_rows: usize,
    /// Per-request timeout, on every store, in milliseconds (503 after it).
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// Most connections served at once; past it new ones are closed on arrival.
    #[arg(long, default_value_t = 4_096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// A request's headers must arrive within this many milliseconds of the
    /// connection opening, or of the next request's first byte on a keep-alive
    /// connection.
    #[arg(long, default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// A request's body must arrive within this many milliseconds (408 after it).
    #[arg(long, default_value_t = 10_000)]
    pub body_read_timeout_ms: u64,
    /// A connection that moves no byte for this many milliseconds is closed
    /// (idle keep-alive connections, stalled clients).
    #[arg(long, default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// Threads answering requests (default: one per core). Fewer leave cores
    /// to whatever shares the machine, e.g. a model server or a sidecar.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// Log format on stderr: text or json (level from ALMANAC_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Also ingest every stream source (as `almanac ingest` does), with its
    /// metrics on /metrics.
    #[arg(long)]
    pub ingest: bool,
    #[command(flatten)]
    pub batch: StreamBatchArgs,
}

#[derive(Debug, Args)]
pub struct MaterializeArgs {
    /// Window start, inclusive (RFC 3339 or `now`).
    #[arg(long, required_unless_present = "reset_watermark")]
    pub start: Option<String>,
    /// Window end, inclusive (RFC 3339 or `now`; later than now only with --allow-future-end).
    #[arg(long, required_unless_present = "reset_watermark")]
    pub end: Option<String>,
    /// Only these views, comma-separated (default: every view with `online: true`).
    #[arg(long, value_parser = parse_views)]
    pub views: Option<ViewList>,
    /// Accept an --end later than now (the watermark then lies ahead of the data).
    #[arg(long)]
    pub allow_future_end: bool,
    /// Forget the views' watermarks instead (the next materialize-incremental
    /// starts over); online records are kept.
    #[arg(long, conflicts_with_all = ["start", "end", "allow_future_end"])]
    pub reset_watermark: bool,
}

#[derive(Debug, Args)]
pub struct IncrementalArgs {
    /// Materialize up to this instant, inclusive (RFC 3339 or `now`; later than now only with --allow-future-end).
    #[arg(long)]
    pub end: String,
    /// Only these views, comma-separated (default: every view with `online: true`).
    #[arg(long, value_parser = parse_views)]
    pub views: Option<ViewList>,
    /// Accept an --end later than now (the watermark then lies ahead of the data).
    #[arg(long)]
    pub allow_future_end: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("selection").required(true).args(["features", "feature_service"])))]
pub struct OnlineArgs {
    /// Feature references, comma-separated: `view:feature` or a bare `view`.
    #[arg(long)]
    pub features: Option<String>,
    /// A feature service instead of explicit references.
    #[arg(long)]
    pub feature_service: Option<String>,
    /// One entity: `KEY=VALUE`, compound keys comma-separated
    /// (`user_id=1,merchant_id=7`); repeat for more entities.
    #[arg(long, required = true)]
    pub entity: Vec<String>,
    /// Request data for on-demand features: `FIELD=VALUE`, several
    /// comma-separated (`amount=12.5,channel=web`); give it once for every
    /// entity, or once per `--entity`, in the same order.
    #[arg(long)]
    pub request: Vec<String>,
    /// Name features `view__feature` instead of `feature`.
    #[arg(long)]
    pub full_feature_names: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("selection").required(true).args(["features", "feature_service"])))]
pub struct HistoricalArgs {
    /// The entity table (Parquet or CSV): join keys, an event timestamp, any label columns.
    #[arg(long)]
    pub entities: PathBuf,
    /// Feature references, comma-separated: `view:feature` or a bare `view`.
    #[arg(long)]
    pub features: Option<String>,
    /// A feature service instead of explicit references.
    #[arg(long)]
    pub feature_service: Option<String>,
    /// Where to write the training set (.parquet or .csv).
    #[arg(long)]
    pub output: PathBuf,
    /// Name features `view__feature` instead of `feature`.
    #[arg(long)]
    pub full_feature_names: bool,
    /// The entity table's timestamp column.
    #[arg(long, default_value = "event_timestamp")]
    pub timestamp_column: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The feature view to export.
    #[arg(long)]
    pub view: String,
    /// Only rows with event time at or after this instant (RFC 3339 or `now`).
    #[arg(long)]
    pub start: Option<String>,
    /// Only rows with event time at or before this instant (RFC 3339 or `now`).
    #[arg(long)]
    pub end: Option<String>,
    /// Only the latest row per entity (as of --end), chosen by the same rule as training sets.
    #[arg(long)]
    pub latest: bool,
    /// Where to write the rows (.parquet or .csv).
    #[arg(long)]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to create the repo in (created if missing).
    pub dir: PathBuf,
    /// Write the fraud-detection demo repo with generated data.
    #[arg(long)]
    pub demo: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Size of the generated dataset (1 = 5M + 1M feature rows, 1M labels).
    #[arg(long, default_value_t = 0.1)]
    pub scale: f64,
    /// Keep the reference dates (2026-01-01 .. 2026-07-01) instead of ending now;
    /// benchmarks use this for reproducible data.
    #[arg(long)]
    pub reference_dates: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo repo; a fresh temporary folder when omitted.
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Also print the SQL a pushdown offline store (PostgreSQL, Spark) runs
    /// for each feature service's training set, with index advice.
    #[arg(long)]
    pub explain: bool,
}

#[derive(Debug, Subcommand)]
pub enum FeaturesCommand {
    /// List entities, sources, feature views, features and services.
    List(ListArgs),
    /// Everything about one object (or `view:feature`): definition, version, lineage.
    Describe {
        name: String,
    },
    /// Every applied version of one object (a view, source, entity, service).
    History {
        name: String,
    },
    /// Search names, descriptions and tags, best matches first.
    Search {
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only objects owned by this owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only objects with this tag (`key=value`); repeat to require several.
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Only one kind: entity, source, request_source, feature_view, on_demand_feature_view, feature, feature_service.
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
}

/// `--current` of `monitor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CurrentSample {
    Offline,
    Online,
}

/// `--log-format` of `serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `--kind` of `features list`: the catalog's kinds, spelled as it spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Kind {
    Entity,
    Source,
    RequestSource,
    FeatureView,
    OnDemandFeatureView,
    Feature,
    FeatureService,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Entity => "entity",
            Kind::Source => "source",
            Kind::RequestSource => "request_source",
            Kind::FeatureView => "feature_view",
            Kind::OnDemandFeatureView => "on_demand_feature_view",
            Kind::Feature => "feature",
            Kind::FeatureService => "feature_service",
        }
    }
}

/// A `--views a,b` list: names trimmed, empty entries dropped, and at least
/// one name (an empty list would silently mean "every view").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewList(pub Vec<String>);

fn parse_views(text: &str) -> Result<ViewList, String> {
    let names: Vec<String> = text.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if names.is_empty() {
        return Err("give at least one view name (or leave --views out for every view)".into());
    }
    Ok(ViewList(names))
}

fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{text}` is not a tag filter; write `key=value`")),
    }
}
