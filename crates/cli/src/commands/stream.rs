//! `almanac ingest` and `almanac publish`: stream sources (DESIGN §10).

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

use almanac::FeatureStore;
use almanac_stream::{IngestMetrics, IngestOptions, Summary};
use anyhow::Context;

use crate::args::{IngestArgs, PublishArgs, StreamBatchArgs};

pub fn ingest(repo: &Path, args: &IngestArgs, json: bool) -> anyhow::Result<()> {
    init_logging();
    let store = Arc::new(FeatureStore::open(repo)?);
    let only = args.sources.as_ref().map(|s| s.0.clone());
    let sources = almanac_stream::stream_sources(&store, only.as_deref())?;
    anyhow::ensure!(!sources.is_empty(), "no stream source is defined; declare one with `stream: {{type: nats, ...}}`, `batch_source` and `event_id_field` (see the README, Streams)");
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(stop.clone());
    let metrics = Arc::new(IngestMetrics::new()?);
    let options = IngestOptions { until_idle: args.until_idle, ..options(&args.batch) };
    let handles = spawn(&store, &sources, &options, &metrics, &stop, false);
    let mut failed = Vec::new();
    let mut summaries = Vec::new();
    for (name, handle) in handles {
        match handle.join() {
            Ok(Ok(summary)) => summaries.push(summary),
            Ok(Err(error)) => failed.push(format!("{name}: {error:#}")),
            Err(_) => failed.push(format!("{name}: the ingest thread panicked")),
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    } else {
        for summary in &summaries {
            println!("{}", summary_line(summary));
        }
    }
    anyhow::ensure!(failed.is_empty(), "{}", failed.join("\n"));
    Ok(())
}

pub fn summary_line(s: &Summary) -> String {
    format!(
        "{}: {} events in {:.1}s ({:.0}/s): {} ingested, {} duplicates, {} late, {} rejected; {} batches{}; newest event {}",
        s.source,
        s.counts.received,
        s.seconds,
        s.events_per_second(),
        s.counts.ingested,
        s.counts.duplicates,
        s.counts.late,
        s.counts.rejected,
        s.batches,
        if s.broker_errors > 0 { format!(", {} broker/store errors retried", s.broker_errors) } else { String::new() },
        s.newest_event.as_deref().unwrap_or("none"),
    )
}

pub fn options(batch: &StreamBatchArgs) -> IngestOptions {
    IngestOptions { max_batch_rows: batch.batch_rows as usize, max_batch_delay: batch.batch_delay, until_idle: false }
}

/// One thread per source, each with its own broker connection.
/// `report_errors`: print a source's error when it stops (beside a server,
/// where nothing else would until shutdown).
pub fn spawn(store: &Arc<FeatureStore>, sources: &[String], options: &IngestOptions, metrics: &Arc<IngestMetrics>, stop: &Arc<AtomicBool>, report_errors: bool) -> Vec<(String, JoinHandle<Result<Summary, almanac_stream::StreamError>>)> {
    sources
        .iter()
        .map(|name| {
            let (store, options, stop, name_owned) = (store.clone(), options.clone(), stop.clone(), name.clone());
            let source_metrics = Arc::new(metrics.source(name));
            let handle = std::thread::Builder::new()
                .name(format!("ingest-{name}"))
                .spawn(move || {
                    let result = almanac_stream::run_source(store, &name_owned, &options, source_metrics, &stop);
                    if let (true, Err(error)) = (report_errors, &result) {
                        eprintln!("ingestion of `{name_owned}` stopped: {error}");
                    }
                    result
                })
                .unwrap_or_else(|e| std::thread::spawn(move || Err(almanac_stream::StreamError::Broker { source_name: String::new(), reason: format!("cannot start a thread: {e}") })));
            (name.clone(), handle)
        })
        .collect()
}

/// Ctrl-C / SIGTERM: finish the batch in hand, acknowledge it, stop.
fn stop_on_signal(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        runtime.block_on(async {
            let terminate = async {
                #[cfg(unix)]
                if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    signal.recv().await;
                    return;
                }
                std::future::pending::<()>().await
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate => {}
            }
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ALMANAC_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub fn publish(repo: &Path, args: &PublishArgs, json: bool) -> anyhow::Result<()> {
    let store = FeatureStore::open(repo)?;
    let state = store.serving_state()?;
    let source = state.definitions.source(&args.source).cloned().ok_or_else(|| almanac_stream::StreamError::NotAStream(args.source.clone()))?;
    let reader: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(std::io::BufReader::new(std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?)),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let mut lines = reader.lines().map_while(Result::ok).filter(|l| !l.trim().is_empty()).map(String::into_bytes);
    let sent = almanac_stream::broker::publish(&source, &mut lines)?;
    if json {
        println!("{}", serde_json::json!({"source": args.source, "published": sent}));
    } else {
        println!("published {sent} events to {}", source.stream.as_ref().map(|s| s.broker.describe()).unwrap_or_default());
    }
    Ok(())
}
