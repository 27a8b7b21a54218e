//! `almanac serve`: the HTTP feature server.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use almanac::FeatureStore;
use almanac_server::connections::ConnectionLimits;
use almanac_server::{Limits, ServeOptions};
use anyhow::Context;

use crate::args::{LogFormat, ServeArgs};

pub fn run(repo: &Path, args: &ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let host: IpAddr = args.host.parse().with_context(|| format!("`{}` is not an IP address; use e.g. 127.0.0.1 or 0.0.0.0", args.host))?;
    let token = match &args.token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path).with_context(|| format!("cannot read the token file {}", path.display()))?.trim().to_string();
            anyhow::ensure!(!token.is_empty(), "the token file {} is empty", path.display());
            Some(token)
        }
        None => None,
    };
    if !host.is_loopback() && token.is_none() {
        eprintln!("WARNING: serving on {host}, reachable from other machines, with no authentication.");
        eprintln!("WARNING: anyone who can reach this port can read and push features; pass --token-file to require a bearer token.");
    }
    let store = Arc::new(FeatureStore::open(repo)?);
    // `--ingest`: the stream consumers run on threads of their own beside
    // the server, and stop with it.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut extra_metrics = Vec::new();
    let mut ingesting = Vec::new();
    if args.ingest {
        let sources = almanac_stream::stream_sources(&store, None)?;
        anyhow::ensure!(!sources.is_empty(), "--ingest: no stream source is defined (see the README, Streams)");
        let metrics = Arc::new(almanac_stream::IngestMetrics::new()?);
        extra_metrics.push(metrics.registry.clone());
        ingesting = super::stream::spawn(&store, &sources, &super::stream::options(&args.batch), &metrics, &stop, true);
    }
    let options = ServeOptions {
        addr: SocketAddr::new(host, args.port),
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            max_entities: args.max_entities,
            max_features: args.max_features,
            max_push_rows: args.max_push_rows,
            request_timeout: Duration::from_millis(args.timeout_ms),
            body_read_timeout: Duration::from_millis(args.body_read_timeout_ms),
            connections: ConnectionLimits {
                max_connections: args.max_connections as usize,
                header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
                idle_timeout: Duration::from_millis(args.idle_timeout_ms),
            },
            ..Limits::default()
        },
        token,
        reload_every: Duration::from_millis(500),
        extra_metrics,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = args.workers {
        runtime.worker_threads(usize::from(workers));
    }
    let runtime = runtime.enable_all().build()?;
    let served = runtime.block_on(almanac_server::serve(store.clone(), options, |addr| {
        // Tests and scripts read this line to find the port (`--port 0`).
        println!("Serving on http://{addr}");
    }));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for (name, handle) in ingesting {
        match handle.join() {
            Ok(Ok(summary)) => eprintln!("{}", super::stream::summary_line(&summary)),
            Ok(Err(error)) => eprintln!("ingest {name}: {error}"),
            Err(_) => eprintln!("ingest {name}: the thread panicked"),
        }
    }
    // The store owns a runtime of its own (the offline engine's): it must be
    // dropped outside this one, after the server's tasks are gone.
    drop(runtime);
    drop(store);
    Ok(served?)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ALMANAC_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
