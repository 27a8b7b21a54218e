//! # almanac-stream
//!
//! Owns streaming ingestion (DESIGN §10): the broker consumers (NATS
//! JetStream, Redis Streams), the decoding and checking of JSON events,
//! deduplication by event id, the late-event rule, micro-batching, crash
//! recovery and the ingest metrics. It writes through the facade's push,
//! so an ingested event reaches the offline history and the online store
//! (latest values and aggregation state) by the same code a batch
//! materialization and `/push` use, and is acknowledged only after both.
//! `almanac ingest` runs [`run_source`] per source; `almanac serve
//! --ingest` runs the same loops beside the server.

pub mod broker;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod seen;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use almanac::FeatureStore;

pub use error::StreamError;
pub use ingest::{BatchCounts, SourceIngest};
pub use metrics::{IngestMetrics, SourceMetrics};

/// A fetched batch and its events decoded (or the reason each was rejected).
type Decoded = (Vec<broker::Delivery>, Vec<Result<ingest::Event, String>>);

/// How a source's micro-batches are cut and when the loop stops.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Most events in one micro-batch (one Parquet file, one ack).
    pub max_batch_rows: usize,
    /// Longest a micro-batch stays open once it has an event: the bound
    /// on how long an event waits before it is written (and servable).
    pub max_batch_delay: Duration,
    /// Stop once the stream has nothing left to deliver.
    pub until_idle: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions { max_batch_rows: 10_000, max_batch_delay: Duration::from_millis(20), until_idle: false }
    }
}

/// What a run did, for the summary line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub source: String,
    #[serde(flatten)]
    pub counts: BatchCounts,
    pub batches: u64,
    pub broker_errors: u64,
    pub seconds: f64,
    /// The newest event time ingested, RFC 3339.
    pub newest_event: Option<String>,
}

impl Summary {
    pub fn events_per_second(&self) -> f64 {
        if self.seconds > 0.0 { self.counts.received as f64 / self.seconds } else { 0.0 }
    }
}

/// Waits that double from 100 ms to 5 s while a broker or store is away.
pub struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_millis(100))
    }

    fn wait(&mut self, stop: &AtomicBool) {
        let until = Instant::now() + self.0;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }
}

/// Ingest stream source `name` until `stop` is set (or, with
/// `until_idle`, until its stream has nothing left). A broker that cannot
/// be reached at start is an error; one that goes away later is retried
/// with backoff, each retry logged and counted.
pub fn run_source(store: Arc<FeatureStore>, name: &str, options: &IngestOptions, metrics: Arc<SourceMetrics>, stop: &AtomicBool) -> Result<Summary, StreamError> {
    let started = Instant::now();
    let mut ingest = SourceIngest::open(store.clone(), name, metrics.clone())?;
    let source = store.serving_state()?.definitions.source(name).cloned().ok_or_else(|| StreamError::NotAStream(name.to_string()))?;
    let consumer = broker::connect(&source)?;
    tracing::info!(source = name, broker = %consumer.describe(), "ingesting");
    let decoder = ingest.decoder();
    let summary = std::sync::Mutex::new(Summary { source: name.to_string(), counts: BatchCounts::default(), batches: 0, broker_errors: 0, seconds: 0.0, newest_event: None });
    let retry = |error: &StreamError, backoff: &mut Backoff| {
        tracing::warn!(source = name, %error, "retrying");
        metrics.broker_error();
        if let Ok(mut summary) = summary.lock() {
            summary.broker_errors += 1;
        }
        backoff.wait(stop);
    };
    // Two threads, one per core: the reader fetches and decodes the next
    // batch while the writer puts this one in both stores; the reader
    // acknowledges a batch once the writer hands it back written.
    let (batches, to_write) = std::sync::mpsc::sync_channel::<Decoded>(1);
    let (written, to_ack) = std::sync::mpsc::channel::<Vec<broker::Delivery>>();
    let failed = AtomicBool::new(false);
    let reader_result = std::thread::scope(|scope| {
        let reader = scope.spawn(|| read_loop(consumer, &decoder, options, &metrics, stop, &failed, batches, to_ack, &retry));
        let written_result = (|| -> Result<(), StreamError> {
            let mut backoff = Backoff::new();
            let (mut rate_from, mut rate_events) = (Instant::now(), 0u64);
            for (deliveries, decoded) in to_write {
                let mut decoded = Some(decoded);
                let counts = loop {
                    // A retry decodes again: the first attempt consumed the events.
                    let events = decoded.take().unwrap_or_else(|| deliveries.iter().map(|d| decoder.decode(&d.payload)).collect());
                    match ingest.process(&deliveries, events) {
                        Ok(counts) => break counts,
                        Err(error) if error.is_transient() && !stop.load(Ordering::Relaxed) => retry(&error, &mut backoff),
                        Err(error) => return Err(error),
                    }
                };
                backoff = Backoff::new();
                if let Ok(mut summary) = summary.lock() {
                    summary.counts += counts;
                    summary.batches += 1;
                }
                rate_events += counts.received;
                if rate_from.elapsed() >= Duration::from_secs(1) {
                    metrics.rate.set(rate_events as f64 / rate_from.elapsed().as_secs_f64());
                    (rate_from, rate_events) = (Instant::now(), 0);
                }
                // Both stores hold the batch: the reader may acknowledge it.
                if written.send(deliveries).is_err() {
                    break;
                }
            }
            Ok(())
        })();
        if written_result.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        drop(written);
        let read_result = reader.join().map_err(|_| StreamError::Broker { source_name: name.to_string(), reason: "the reader thread panicked".into() })?;
        written_result.and(read_result)
    });
    reader_result?;
    let mut summary = summary.into_inner().map_err(|_| StreamError::Broker { source_name: name.to_string(), reason: "a thread panicked".into() })?;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.newest_event = ingest.newest().map(almanac::core::time::rfc3339_micros);
    Ok(summary)
}

/// The reader: acknowledge what the writer handed back, fetch and decode
/// the next batch, hand it over; until stopped, idle (with `until_idle`:
/// nothing left and nothing unacknowledged), or the writer failed.
#[allow(clippy::too_many_arguments)]
fn read_loop(
    mut consumer: Box<dyn broker::Consumer>,
    decoder: &ingest::Decoder,
    options: &IngestOptions,
    metrics: &SourceMetrics,
    stop: &AtomicBool,
    failed: &AtomicBool,
    batches: std::sync::mpsc::SyncSender<Decoded>,
    to_ack: std::sync::mpsc::Receiver<Vec<broker::Delivery>>,
    retry: &(dyn Fn(&StreamError, &mut Backoff) + Sync),
) -> Result<(), StreamError> {
    let mut backoff = Backoff::new();
    let mut quiet_polls = 0;
    let mut unacked = 0usize;
    let ack = |consumer: &mut dyn broker::Consumer, deliveries: Vec<broker::Delivery>, backoff: &mut Backoff| -> Result<(), StreamError> {
        let stage = Instant::now();
        while let Err(error) = consumer.ack(&deliveries) {
            if stop.load(Ordering::Relaxed) || !error.is_transient() {
                // Unacknowledged events are delivered again and recognized as duplicates.
                return Err(error);
            }
            retry(&error, backoff);
        }
        almanac::offline::report_stage("stream: ack", stage);
        Ok(())
    };
    loop {
        while let Ok(deliveries) = to_ack.try_recv() {
            ack(consumer.as_mut(), deliveries, &mut backoff)?;
            unacked -= 1;
        }
        if stop.load(Ordering::Relaxed) || failed.load(Ordering::Relaxed) {
            break;
        }
        let stage = Instant::now();
        let collected = collect_batch(consumer.as_mut(), options);
        almanac::offline::report_stage("stream: fetch", stage);
        let deliveries = match collected {
            Ok(deliveries) => deliveries,
            Err(error) if error.is_transient() => {
                retry(&error, &mut backoff);
                continue;
            }
            Err(error) => return Err(error),
        };
        if deliveries.is_empty() {
            if let Ok(lag) = consumer.lag() {
                metrics.lag.set(lag as f64);
                quiet_polls = if lag == 0 && unacked == 0 { quiet_polls + 1 } else { 0 };
            }
            if options.until_idle && quiet_polls >= 2 {
                break;
            }
            continue;
        }
        quiet_polls = 0;
        backoff = Backoff::new();
        let stage = Instant::now();
        let decoded = deliveries.iter().map(|d| decoder.decode(&d.payload)).collect();
        almanac::offline::report_stage("stream: decode", stage);
        if batches.send((deliveries, decoded)).is_err() {
            break;
        }
        unacked += 1;
    }
    // Batches handed over before stopping are acknowledged once written.
    drop(batches);
    while unacked > 0 {
        match to_ack.recv() {
            Ok(deliveries) => {
                ack(consumer.as_mut(), deliveries, &mut backoff)?;
                unacked -= 1;
            }
            Err(_) => break,
        }
    }
    Ok(())
}

/// Deliveries until the batch is full, its delay is up, or the broker has
/// nothing more right now.
fn collect_batch(consumer: &mut dyn broker::Consumer, options: &IngestOptions) -> Result<Vec<broker::Delivery>, StreamError> {
    let opened = Instant::now();
    let mut batch: Vec<broker::Delivery> = Vec::new();
    while batch.len() < options.max_batch_rows {
        let left = options.max_batch_delay.saturating_sub(opened.elapsed());
        if left.is_zero() && !batch.is_empty() {
            break;
        }
        let wait = if batch.is_empty() { options.max_batch_delay } else { left };
        match consumer.fetch(options.max_batch_rows - batch.len(), wait) {
            Ok(more) if more.is_empty() => break,
            Ok(more) => batch.extend(more),
            // Keep what was fetched: it is processed and acknowledged once
            // the broker is back (or delivered again after a restart).
            Err(error) if !batch.is_empty() && error.is_transient() => break,
            Err(error) => return Err(error),
        }
    }
    Ok(batch)
}

/// The stream sources of the applied definitions (`only`, if given, must
/// name stream sources).
pub fn stream_sources(store: &FeatureStore, only: Option<&[String]>) -> Result<Vec<String>, StreamError> {
    let state = store.serving_state()?;
    let all: Vec<String> = state.definitions.sources.iter().filter(|s| s.stream.is_some()).map(|s| s.name.clone()).collect();
    match only {
        None => Ok(all),
        Some(names) => {
            for name in names {
                if !all.contains(name) {
                    return Err(StreamError::NotAStream(name.clone()));
                }
            }
            Ok(names.to_vec())
        }
    }
}
