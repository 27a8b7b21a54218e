//! Prometheus metrics, exported as text on `GET /metrics`.

use prometheus::{Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Latency buckets from 10 µs to 1 s: the interesting part of a feature
/// server's distribution is well under a millisecond.
const LATENCY_BUCKETS: &[f64] = &[0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0];

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub store_latency: Histogram,
    pub entities: Histogram,
    pub errors: IntCounterVec,
    /// Filled by the scheduled parity and monitoring run (`parity:` in almanac.yaml).
    pub parity_checked: GaugeVec,
    pub parity_divergent: GaugeVec,
    pub staleness: GaugeVec,
    pub null_rate: GaugeVec,
    pub psi: GaugeVec,
    pub checks_last_run: GaugeVec,
    pub connections_open: IntGauge,
    pub connections_refused: IntCounter,
    /// On-demand values that became null because their expression failed on
    /// the row (integer division by zero, overflow).
    pub on_demand_failed_rows: IntGauge,
    /// Registries of work beside the server (stream ingestion), rendered after ours.
    pub extra: Vec<Registry>,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(Opts::new("almanac_http_requests_total", "HTTP requests by endpoint and status"), &["endpoint", "status"])?;
        let latency = HistogramVec::new(HistogramOpts::new("almanac_http_request_seconds", "HTTP request latency by endpoint and status").buckets(LATENCY_BUCKETS.to_vec()), &["endpoint", "status"])?;
        let store_latency = Histogram::with_opts(HistogramOpts::new("almanac_online_store_read_seconds", "Online store read latency (planning excluded)").buckets(LATENCY_BUCKETS.to_vec()))?;
        let entities = Histogram::with_opts(HistogramOpts::new("almanac_entities_per_request", "Entity rows per online request").buckets(vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 10000.0]))?;
        let errors = IntCounterVec::new(Opts::new("almanac_errors_total", "Error responses by kind"), &["kind"])?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(store_latency.clone()))?;
        registry.register(Box::new(entities.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        let gauge = |name: &str, help: &str, labels: &[&str]| -> Result<GaugeVec, prometheus::Error> {
            let gauge = GaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let parity_checked = gauge("almanac_parity_checked_values", "Values compared by the last parity run", &["view"])?;
        let parity_divergent = gauge("almanac_parity_divergent_values", "Values that differed between online and point-in-time in the last parity run", &["view"])?;
        let staleness = gauge("almanac_staleness_seconds", "Now minus the newest event time held online, per view", &["view"])?;
        let null_rate = gauge("almanac_feature_null_rate", "Null share in the current window (last monitoring run)", &["view", "feature"])?;
        let psi = gauge("almanac_feature_psi", "Population stability index, current window vs reference (last monitoring run)", &["view", "feature"])?;
        let checks_last_run = gauge("almanac_checks_last_run_timestamp_seconds", "When the scheduled check last finished", &["check"])?;
        let connections_open = IntGauge::new("almanac_http_connections_open", "HTTP connections being served")?;
        let connections_refused = IntCounter::new("almanac_http_connections_refused_total", "Connections closed on arrival because --max-connections were open")?;
        registry.register(Box::new(connections_open.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        let on_demand_failed_rows = IntGauge::new("almanac_on_demand_failed_rows_total", "On-demand values set to null because the expression failed on the row (integer division by zero, overflow)")?;
        registry.register(Box::new(on_demand_failed_rows.clone()))?;
        Ok(Metrics { registry, requests, latency, store_latency, entities, errors, parity_checked, parity_divergent, staleness, null_rate, psi, checks_last_run, connections_open, connections_refused, on_demand_failed_rows, extra: Vec::new() })
    }

    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let mut families = self.registry.gather();
        for extra in &self.extra {
            families.extend(extra.gather());
        }
        let _ = TextEncoder::new().encode(&families, &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}
