//! `almanac-bench stream-latency`: event-to-servable latency under load
//! (issue 17). A publisher thread sends `--rate` events/s to the stream
//! source's broker (random users, unique ids, event time = now) while a
//! prober publishes one marked event every 100 ms for a user nobody else
//! writes, then polls the running server's `/get-online-features` (HTTP,
//! a fresh connection per poll) until the value shows; the time from
//! before the publish to the first response carrying the value is one
//! sample. Percentiles over the probes are printed as JSON.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use almanac::FeatureStore;
use almanac_stream::broker::Publisher;
use anyhow::Context;

pub struct Options {
    pub repo: std::path::PathBuf,
    pub source: String,
    pub server: String,
    pub rate: u64,
    pub seconds: u64,
    pub users: u64,
}

fn event(id: &str, user: u64, amount: f64) -> Vec<u8> {
    let ts = almanac::core::time::rfc3339_micros(chrono::Utc::now().timestamp_micros());
    format!("{{\"txn_id\": \"{id}\", \"user_id\": {user}, \"ts\": \"{ts}\", \"amount\": {amount}, \"merchant\": \"m{}\"}}", user % 97).into_bytes()
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let store = FeatureStore::open(&options.repo)?;
    let source = store.serving_state()?.definitions.source(&options.source).cloned().context("no such source")?;
    let run_id = std::process::id();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let load = {
        let (source, stop, sent, rate, users) = (source.clone(), stop.clone(), sent.clone(), options.rate, options.users);
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut publisher = Publisher::connect(&source)?;
            let started = Instant::now();
            let mut i = 0u64;
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(run_id);
            while !stop.load(Ordering::Relaxed) {
                // Paced in 10 ms slices: the events due by now, then sleep.
                let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                let mut batch = Vec::new();
                while i < due {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    batch.push(event(&format!("load-{run_id}-{i}"), x % users, (x % 10_000) as f64 / 100.0));
                    i += 1;
                }
                publisher.send(&mut batch.into_iter())?;
                sent.store(i, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let mut prober = Publisher::connect(&source)?;
    let mut samples: Vec<f64> = Vec::new();
    let until = Instant::now() + Duration::from_secs(options.seconds);
    let mut k = 0u64;
    while Instant::now() < until {
        k += 1;
        let user = 1_000_000_000 + u64::from(run_id) * 1_000 + k;
        let amount = k as f64 + 0.5;
        let started = Instant::now();
        prober.send(&mut std::iter::once(event(&format!("probe-{run_id}-{k}"), user, amount)))?;
        loop {
            if served_amount(&options.server, user)? == Some(amount) {
                samples.push(started.elapsed().as_secs_f64() * 1e3);
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                anyhow::bail!("probe {k} not servable after 10 s");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        std::thread::sleep(Duration::from_millis(100).saturating_sub(started.elapsed()));
    }
    stop.store(true, Ordering::Relaxed);
    load.join().map_err(|_| anyhow::anyhow!("the load thread panicked"))??;
    let published = sent.load(Ordering::Relaxed);
    samples.sort_by(f64::total_cmp);
    let pct = |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "{}",
        serde_json::json!({
            "rate_target": options.rate,
            "published": published,
            "seconds": options.seconds,
            "probes": samples.len(),
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "max_ms": pct(1.0),
        })
    );
    Ok(())
}

/// `last_txn:amount` of `user` as the server answers it (`None`: not there yet).
fn served_amount(server: &str, user: u64) -> anyhow::Result<Option<f64>> {
    let body = format!("{{\"features\": [\"last_txn:amount\"], \"entities\": {{\"user_id\": [{user}]}}}}");
    let mut stream = TcpStream::connect(server)?;
    write!(stream, "POST /get-online-features HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let json = response.split("\r\n\r\n").nth(1).context("no body")?;
    let value: serde_json::Value = serde_json::from_str(json.trim())?;
    Ok(value["results"][1]["values"][0].as_f64())
}
