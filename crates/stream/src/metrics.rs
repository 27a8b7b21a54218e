//! Prometheus metrics of the ingest loops, in a registry of their own that
//! the server's `/metrics` appends (`serve --ingest`).

use prometheus::{Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::ingest::BatchCounts;

/// Event-to-servable buckets, 1 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Every source's metrics, labelled by source.
pub struct IngestMetrics {
    pub registry: Registry,
    events: IntCounterVec,
    rate: GaugeVec,
    lag: GaugeVec,
    latency: HistogramVec,
    newest: GaugeVec,
    broker_errors: IntCounterVec,
}

/// One source's handles.
pub struct SourceMetrics {
    events: IntCounterVec,
    source: String,
    pub rate: Gauge,
    pub lag: Gauge,
    pub servable_latency: Histogram,
    pub newest_event: Gauge,
    broker_errors: IntCounterVec,
}

impl IngestMetrics {
    pub fn new() -> Result<IngestMetrics, prometheus::Error> {
        let registry = Registry::new();
        let events = IntCounterVec::new(Opts::new("almanac_stream_events_total", "Stream events by source and outcome (ingested, duplicate, late, rejected)"), &["source", "outcome"])?;
        let rate = GaugeVec::new(Opts::new("almanac_stream_events_per_second", "Events ingested per second over the last few seconds"), &["source"])?;
        let lag = GaugeVec::new(Opts::new("almanac_stream_consumer_lag", "Messages in the stream not yet acknowledged by Almanac's consumer"), &["source"])?;
        let latency = HistogramVec::new(HistogramOpts::new("almanac_stream_event_to_servable_seconds", "From the broker receiving an event to the event being servable online").buckets(LATENCY_BUCKETS.to_vec()), &["source"])?;
        let newest = GaugeVec::new(Opts::new("almanac_stream_newest_event_timestamp_seconds", "Event time of the newest event ingested"), &["source"])?;
        let broker_errors = IntCounterVec::new(Opts::new("almanac_stream_broker_errors_total", "Broker or store errors retried by the ingest loop"), &["source"])?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(rate.clone()))?;
        registry.register(Box::new(lag.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(newest.clone()))?;
        registry.register(Box::new(broker_errors.clone()))?;
        Ok(IngestMetrics { registry, events, rate, lag, latency, newest, broker_errors })
    }

    pub fn source(&self, name: &str) -> SourceMetrics {
        SourceMetrics {
            events: self.events.clone(),
            source: name.to_string(),
            rate: self.rate.with_label_values(&[name]),
            lag: self.lag.with_label_values(&[name]),
            servable_latency: self.latency.with_label_values(&[name]),
            newest_event: self.newest.with_label_values(&[name]),
            broker_errors: self.broker_errors.clone(),
        }
    }
}

impl SourceMetrics {
    pub fn count(&self, counts: &BatchCounts) {
        for (outcome, n) in [("ingested", counts.ingested), ("duplicate", counts.duplicates), ("late", counts.late), ("rejected", counts.rejected)] {
            if n > 0 {
                self.events.with_label_values(&[&self.source, outcome]).inc_by(n);
            }
        }
    }

    pub fn broker_error(&self) {
        self.broker_errors.with_label_values(&[&self.source]).inc();
    }
}
