//! # almanac-server
//!
//! The HTTP feature server: Feast's API (`/get-online-features`, `/push`)
//! plus `/health`, `/ready`, `/metrics` and `/features`, over one
//! [`FeatureStore`]. [`router`] builds the axum router from shared state;
//! [`serve`] binds it, reloads the registry when `apply` changes it, and
//! shuts down gracefully on SIGTERM or Ctrl-C.
//!
//! Handlers are thin: they parse, call the facade, and render. Planning a
//! request (resolving references to views, keys and decoders) is cached by
//! the facade per request shape, so latency does not grow with the
//! registry. This crate owns HTTP concerns only: limits, timeouts, auth,
//! status codes, metrics and logs.

pub mod connections;
mod error;
pub mod feast;
mod metrics;
mod request;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use almanac::core::Value;
use almanac::{FeatureSelection, FeatureStore};
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub use error::ApiError;
use error::ErrorKind;
pub use metrics::Metrics;
use request::{OnlineBody, PushBody};

/// Operational limits; every one is configurable from the CLI.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted (413 above it).
    pub max_body_bytes: usize,
    /// Most entity rows in one online request (400 above it).
    pub max_entities: usize,
    /// Most feature references in one online request (400 above it).
    pub max_features: usize,
    /// Most rows in one push (400 above it).
    pub max_push_rows: usize,
    /// Longest a request may take, on every store, before it is answered 503.
    pub request_timeout: Duration,
    /// Longest the body of a request may take to arrive (408 after it).
    pub body_read_timeout: Duration,
    /// Longest request target (414 above it) and total header size (431).
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
    /// Accepting connections: cap, header-read and idle timeouts.
    pub connections: connections::ConnectionLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 << 20,
            max_entities: 10_000,
            max_features: 1_000,
            max_push_rows: 10_000,
            request_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(10),
            max_uri_bytes: 8 << 10,
            max_header_bytes: 32 << 10,
            connections: connections::ConnectionLimits::default(),
        }
    }
}

/// What every handler shares.
pub struct AppState {
    pub store: Arc<FeatureStore>,
    pub metrics: Metrics,
    pub limits: Limits,
    /// `Authorization: Bearer <token>` required on every route but `/health`.
    pub token: Option<String>,
}

impl AppState {
    pub fn new(store: Arc<FeatureStore>, limits: Limits, token: Option<String>) -> Result<Arc<Self>, ApiError> {
        let metrics = Metrics::new().map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
        Ok(Arc::new(AppState { store, metrics, limits, token }))
    }
}

/// The router; state is shared, so tests can build one without a socket.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/get-online-features", post(get_online_features))
        .route("/push", post(push))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/features", get(features))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// A request target or header block over the limits gets its JSON 414/431
/// before any work (hyper's own limits, far above these, would answer with
/// an empty body). Checked in `observe`, so it costs no layer of its own.
fn head_limits(limits: &Limits, request: &Request) -> Option<ApiError> {
    let uri = request.uri().path_and_query().map_or(0, |p| p.as_str().len()) + request.uri().authority().map_or(0, |a| a.as_str().len());
    if uri > limits.max_uri_bytes {
        return Some(ApiError::new(StatusCode::URI_TOO_LONG, "uri_too_long", format!("the request target is {uri} bytes; the server's limit is {}", limits.max_uri_bytes)));
    }
    let count = request.headers().len();
    if count > 100 {
        return Some(ApiError::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large", format!("the request has {count} headers; the server's limit is 100")));
    }
    let bytes: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if bytes > limits.max_header_bytes {
        return Some(ApiError::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large", format!("the request's headers are {bytes} bytes; the server's limit is {}", limits.max_header_bytes)));
    }
    None
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{} is not allowed on {}; see POST /get-online-features, POST /push, GET /health, /ready, /metrics, /features", request.method(), request.uri().path()))
}

/// Count and time every request by endpoint and status; count errors by kind.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    // MatchedPath holds an `Arc<str>`: cloning it allocates nothing.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let endpoint = matched.as_ref().map_or("unmatched", |p| p.as_str());
    let started = Instant::now();
    let response = match head_limits(&state.limits, &request) {
        Some(refused) => refused.into_response(),
        None => next.run(request).await,
    };
    let status = response.status();
    let code = status.as_str();
    state.metrics.requests.with_label_values(&[endpoint, code]).inc();
    state.metrics.latency.with_label_values(&[endpoint, code]).observe(started.elapsed().as_secs_f64());
    if let Some(ErrorKind(kind)) = response.extensions().get::<ErrorKind>() {
        state.metrics.errors.with_label_values(&[kind]).inc();
        if status.is_server_error() {
            tracing::warn!(endpoint, status = code, kind, "request failed");
        } else {
            tracing::debug!(endpoint, status = code, kind, "request rejected");
        }
    }
    response
}

async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else { return next.run(request).await };
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    // The scheme is case-insensitive (RFC 9110 §11.1): `bearer` works too.
    let presented = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().split_once(' ')).filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")).map(|(_, token)| token.trim());
    if presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes())) {
        return next.run(request).await;
    }
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send `Authorization: Bearer <token>` with the server's token").into_response()
}

/// Compare secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; see POST /get-online-features, POST /push, GET /health, /ready, /metrics, /features")
}

/// The body, read within the body-read timeout (a 408 after it: a client
/// trickling its body cannot hold a worker), or a JSON 413 over the limit.
async fn body_bytes(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
    let (limit, timeout) = (state.limits.max_body_bytes, state.limits.body_read_timeout);
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", format!("the request body did not arrive within {} ms", timeout.as_millis()))),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => {
            let too_large = std::error::Error::source(&error).is_some_and(|e| e.is::<http_body_util::LengthLimitError>()) || error.to_string().contains("length limit");
            if too_large {
                Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the request body is over the server's limit of {limit} bytes (`almanac serve --max-body-bytes`)")))
            } else {
                Err(ApiError::bad_request(format!("cannot read the request body: {error}")))
            }
        }
    }
}

/// Whether a piece of store work may run on the async request workers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Work {
    /// An online read: inline when the store says reads never block.
    Read,
    /// Anything that may touch files or the network (pushes): always on a
    /// blocking thread, so it never delays other requests.
    Blocking,
}

/// Run store work off the async workers when it may block (Redis, files);
/// embedded reads answer in microseconds and run inline.
async fn run_store_work<T: Send + 'static>(state: &Arc<AppState>, kind: Work, work: impl FnOnce(&FeatureStore) -> Result<T, almanac::Error> + Send + 'static) -> Result<T, ApiError> {
    let store = state.store.clone();
    let timeout = state.limits.request_timeout;
    // A store not connected yet is treated as not inline. Inline reads
    // take microseconds and cannot be interrupted; one that overran the
    // request timeout anyway is answered as a timeout, like any store's.
    if kind == Work::Read && store.online_capabilities().is_some_and(|c| c.inline_reads) {
        let started = Instant::now();
        let result = work(&store)?;
        if started.elapsed() > timeout {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", format!("the online store did not answer within {} ms", timeout.as_millis())));
        }
        return Ok(result);
    }
    let task = tokio::task::spawn_blocking(move || work(&store));
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(result)) => Ok(result?),
        Ok(Err(join)) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("request task failed: {join}"))),
        Err(_) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", format!("the online store did not answer within {} ms", timeout.as_millis()))),
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn get_online_features(State(state): State<Arc<AppState>>, body: Body) -> Result<Response, ApiError> {
    let bytes = body_bytes(&state, body).await?;
    let body: OnlineBody = request::parse(&bytes)?;
    let selection = match (body.features, body.feature_service) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give either `features` or `feature_service`, not both")),
        (Some(features), None) => {
            if features.len() > state.limits.max_features {
                return Err(ApiError::bad_request(format!("{} features in one request; the server's limit is {} (`almanac serve --max-features`)", features.len(), state.limits.max_features)));
            }
            let refs = features.iter().map(|f| f.parse()).collect::<Result<Vec<_>, _>>().map_err(|e: almanac::core::reference::FeatureRefError| ApiError::bad_request(e.to_string()))?;
            if refs.is_empty() {
                return Err(ApiError::bad_request("`features` is empty; list references such as \"user_txn_stats:txn_count_7d\""));
            }
            FeatureSelection::Refs(refs)
        }
        (None, Some(service)) => FeatureSelection::Service(service),
        (None, None) => return Err(ApiError::bad_request("missing `features` (a list of \"view:feature\") or `feature_service`")),
    };
    let mut columns: Vec<(String, Vec<Value>)> = Vec::with_capacity(body.entities.0.len());
    let context = body.request_context.map(|c| c.0).unwrap_or_default();
    for (name, values) in body.entities.0.into_iter().chain(context) {
        if columns.iter().any(|(n, _)| *n == name) {
            return Err(ApiError::bad_request(format!("`{name}` is given both in `entities` and in `request_context`; send it once")));
        }
        let values = values.iter().map(|v| request::entity_value(&name, v)).collect::<Result<Vec<Value>, _>>()?;
        columns.push((name, values));
    }
    let entities = almanac::online::entity_batch(&columns)?;
    let rows = entities.num_rows();
    if rows > state.limits.max_entities {
        return Err(ApiError::bad_request(format!("{rows} entities in one request; the server's limit is {} (`almanac serve --max-entities`)", state.limits.max_entities)));
    }
    state.metrics.entities.observe(rows as f64);
    let full = body.full_feature_names.unwrap_or(false);
    let started = Instant::now();
    let response = run_store_work(&state, Work::Read, move |store| store.get_online_features(&selection, &entities, full)).await?;
    state.metrics.store_latency.observe(started.elapsed().as_secs_f64());
    Ok(json_response(StatusCode::OK, feast::response_bytes(&response)))
}

async fn push(State(state): State<Arc<AppState>>, body: Body) -> Result<Response, ApiError> {
    let bytes = body_bytes(&state, body).await?;
    let body: PushBody = request::parse(&bytes)?;
    let rows = body.df.0.first().map_or(0, |(_, values)| values.len());
    if rows > state.limits.max_push_rows {
        return Err(ApiError::bad_request(format!("{rows} rows in one push; the server's limit is {} (`almanac serve --max-push-rows`)", state.limits.max_push_rows)));
    }
    let to = match body.to.as_deref().unwrap_or("online") {
        "online" => almanac::push::PushTo::Online,
        "offline" => almanac::push::PushTo::Offline,
        "online_and_offline" => almanac::push::PushTo::OnlineAndOffline,
        other => return Err(ApiError::bad_request(format!("`to` is {other:?}; use \"online\", \"offline\" or \"online_and_offline\""))),
    };
    let columns: Vec<(String, Vec<Value>)> = body.df.0.into_iter().map(|(name, values)| (name, values.iter().map(Value::from_json).collect())).collect();
    let source = body.push_source_name;
    let report = run_store_work(&state, Work::Blocking, move |store| {
        // JSON is loosely typed: convert each column to the dtype the push
        // source declares for it (unknown columns keep their JSON type, so
        // the facade can name them in its error).
        let expected = store.push_columns(&source)?;
        let rows = almanac::core::convert::columns_to_batch(&columns, |name| expected.iter().find(|c| c.name == name).map(|c| c.dtype.clone())).map_err(|e| almanac::Error::Push(e.to_string()))?;
        store.push(&source, &rows, to)
    })
    .await?;
    let bytes = serde_json::to_vec(&report).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(json_response(StatusCode::OK, bytes))
}

async fn health() -> Response {
    json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

/// Ready = the registry is loaded and the online store answers.
async fn ready(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let version = run_store_work(&state, Work::Read, |store| {
        let version = store.serving_state()?.version;
        store.online_store()?.ping()?;
        Ok(version)
    })
    .await?;
    if version == 0 {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_applied", "nothing is applied yet; run `almanac apply`"));
    }
    Ok(json_response(StatusCode::OK, serde_json::json!({"status": "ready", "registry_version": version}).to_string().into_bytes()))
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    state.metrics.on_demand_failed_rows.set(almanac::online::ON_DEMAND_FAILED_ROWS.load(std::sync::atomic::Ordering::Relaxed) as i64);
    let mut response = Response::new(Body::from(state.metrics.render()));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}

/// The catalog (`almanac::registry::catalog::summary`, the one catalog JSON).
async fn features(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let registry = state.store.serving_state()?;
    let body = almanac::registry::catalog::summary(&registry);
    Ok(json_response(StatusCode::OK, body.to_string().into_bytes()))
}

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    pub limits: Limits,
    pub token: Option<String>,
    /// How often to look for a changed registry.
    pub reload_every: Duration,
    /// Metrics of work running beside the server (`serve --ingest`'s
    /// stream consumers), appended to `/metrics`.
    pub extra_metrics: Vec<prometheus::Registry>,
}

/// Bind, serve until SIGTERM/Ctrl-C (in-flight requests finish), and
/// reload the registry in the background whenever its file changes.
pub async fn serve(store: Arc<FeatureStore>, options: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), std::io::Error> {
    let state = AppState::new(store.clone(), options.limits.clone(), options.token.clone()).map_err(|e| std::io::Error::other(e.detail))?;
    let state = match Arc::try_unwrap(state) {
        Ok(mut owned) => {
            owned.metrics.extra = options.extra_metrics.clone();
            Arc::new(owned)
        }
        Err(shared) => shared,
    };
    error::hide_paths_under(store.root());
    // Plan and connect before the first request, so it is not the slow one.
    if let Err(error) = store.serving_state() {
        tracing::warn!(%error, "registry not loaded yet");
    }
    if let Err(error) = store.online_store() {
        tracing::warn!(%error, "online store not reachable yet; /ready will say so");
    }
    let listener = tokio::net::TcpListener::bind(options.addr).await?;
    let addr = listener.local_addr()?;
    let state_for_router = state.clone();
    // Install the signal handlers before announcing readiness: a SIGTERM
    // that arrives right after "ready" must shut down gracefully, not kill.
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(watch_registry(store.clone(), store.registry_file(), options.reload_every));
    if let Some(schedule) = store.config().parity.clone() {
        tokio::spawn(scheduled_checks(state.clone(), schedule));
    }
    ready(addr);
    tracing::info!(%addr, "serving");
    #[cfg(unix)]
    let shutdown = shutdown_signal(terminate);
    #[cfg(not(unix))]
    let shutdown = shutdown_signal();
    let events: Arc<dyn connections::ConnectionEvents> = Arc::new(ConnectionMetrics(state.clone()));
    let limits = options.limits.connections.clone();
    connections::serve(listener, router(state_for_router), limits, events, shutdown, Duration::from_secs(30)).await
}

/// Connection counts into the metrics.
struct ConnectionMetrics(Arc<AppState>);

impl connections::ConnectionEvents for ConnectionMetrics {
    fn opened(&self) {
        self.0.metrics.connections_open.inc();
    }

    fn closed(&self) {
        self.0.metrics.connections_open.dec();
    }

    fn refused(&self) {
        self.0.metrics.connections_refused.inc();
    }
}

/// Poll the registry file's modification time (a database registry: the
/// registry itself, whose version says whether anything changed); reload
/// on change. A reload swaps one `Arc`, so requests in flight finish on the
/// old state and new ones plan against the new one: no pause, no lock held
/// while serving.
async fn watch_registry(store: Arc<FeatureStore>, file: Option<PathBuf>, every: Duration) {
    let modified = |file: &Option<PathBuf>| file.as_ref().and_then(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok());
    let mut last: Option<SystemTime> = modified(&file);
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let now = modified(&file);
        if file.is_some() && now == last {
            continue;
        }
        last = now;
        let source = file.as_ref().map_or_else(|| "the registry database".to_string(), |f| f.display().to_string());
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.refresh()).await {
            Ok(Ok(true)) => tracing::info!(registry = %source, "registry reloaded"),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "registry reload failed; still serving the previous version"),
            Err(error) => tracing::warn!(%error, "registry reload task failed"),
        }
    }
}

/// Parity and monitoring on a schedule, results exported as gauges.
async fn scheduled_checks(state: Arc<AppState>, schedule: almanac::core::ParitySchedule) {
    let every = Duration::from_secs(schedule.every.micros() as u64 / 1_000_000).max(Duration::from_secs(1));
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let worker = state.clone();
        let sample = schedule.sample;
        let outcome = tokio::task::spawn_blocking(move || run_checks(&worker, sample)).await;
        match outcome {
            Ok(Ok(())) => tracing::info!("scheduled parity and monitoring finished"),
            Ok(Err(error)) => tracing::warn!(%error, "scheduled check failed"),
            Err(error) => tracing::warn!(%error, "scheduled check task failed"),
        }
    }
}

fn run_checks(state: &AppState, sample: usize) -> Result<(), almanac::Error> {
    let now = chrono::Utc::now();
    let store = &state.store;
    let metrics = &state.metrics;
    let parity = store.parity(&almanac::parity::ParityRequest { views: None, sample, seed: now.timestamp() as u64, tolerance: 0.0, at_micros: now.timestamp_micros() })?;
    for view in &parity.views {
        let checked: usize = view.features.iter().map(|f| f.checked).sum();
        metrics.parity_checked.with_label_values(&[view.view.as_str()]).set(checked as f64);
        metrics.parity_divergent.with_label_values(&[view.view.as_str()]).set(view.divergent() as f64);
    }
    metrics.checks_last_run.with_label_values(&["parity"]).set(now.timestamp() as f64);
    let day = 86_400_000_000i64;
    let monitor = store.monitor(&almanac::monitor::MonitorRequest { views: None, at_micros: now.timestamp_micros(), window_micros: day, reference: almanac::monitor::Reference::Window { micros: 7 * day }, current: almanac::monitor::Current::Offline })?;
    for view in &monitor.views {
        if let Some(seconds) = view.staleness_online_seconds {
            metrics.staleness.with_label_values(&[view.view.as_str()]).set(seconds);
        }
        for feature in &view.features {
            let labels = [view.view.as_str(), feature.feature.as_str()];
            if let Some(rate) = feature.null_rate_current {
                metrics.null_rate.with_label_values(&labels).set(rate);
            }
            if let Some(psi) = feature.psi {
                metrics.psi.with_label_values(&labels).set(psi);
            }
        }
    }
    metrics.checks_last_run.with_label_values(&["monitor"]).set(chrono::Utc::now().timestamp() as f64);
    Ok(())
}

#[cfg(unix)]
async fn shutdown_signal(mut terminate: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(not(unix))]
async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down: finishing requests in flight");
}
