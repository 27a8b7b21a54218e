//! Stream sources on the machine's real brokers (NATS JetStream on 4222,
//! Redis on 6379): a generated log with duplicates, shuffled order, late
//! events, bursts and malformed events is published and ingested by the
//! real `almanac ingest`; then the online answers at `t` must equal a
//! training set built from the batch source at `T = t` (plain and
//! aggregation views), and the history must hold each accepted event
//! exactly once, also after the ingest process is killed (-9) at random
//! points and restarted. The accepted set comes from an independent
//! replay of the rules over the log (first id wins, late = older than the
//! newest event so far minus the allowed lateness).

mod util;

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use almanac::{FeatureSelection, FeatureStore};
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use util::{run, unit};

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
/// 2026-05-01T00:00:00Z: history before it, the stream after it.
const T0: i64 = 1_777_593_600_000_000;
const USERS: i64 = 40;
const LATENESS: i64 = 2 * HOUR;

fn rfc3339(micros: i64) -> String {
    almanac::core::time::rfc3339_micros(micros)
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{}_{nanos}", std::process::id())
}

/// A repo whose stream source reads `broker` (a YAML flow mapping), with a
/// plain view and an aggregation view over it, a day of history in the
/// batch source, materialized up to T0.
fn repo(dir: &Path, broker: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("data/txns")).expect("dir");
    std::fs::write(dir.join("almanac.yaml"), format!("project: stream_{}\n", unique())).expect("config");
    std::fs::write(
        dir.join("defs.yaml"),
        format!(
            "entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: txns
    path: data/txns
    timestamp_field: ts
  - name: txn_stream
    batch_source: txns
    stream: {broker}
    event_id_field: txn_id
    allowed_lateness: 2h
feature_views:
  - name: last_txn
    entities: [user]
    source: txn_stream
    ttl: 30d
    schema:
      - {{name: amount, dtype: float64}}
      - {{name: merchant, dtype: string}}
  - name: txn_windows
    entities: [user]
    source: txn_stream
    aggregations:
      - {{function: count, window: 1h}}
      - {{column: amount, function: sum, window: 6h}}
      - {{column: amount, function: mean, window: 1d}}
      - {{column: amount, function: max, window: 1d}}
      - {{column: amount, function: stddev, window: 1d}}
      - {{column: merchant, function: approx_count_distinct, window: 1d}}
      - {{column: amount, function: last, n: 3, window: 1d}}
"
        ),
    )
    .expect("defs");
    // A day of history (ids h*), with a column no view reads.
    let n = 400;
    let batch = RecordBatch::try_from_iter(vec![
        ("txn_id", Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("h{i}")))) as ArrayRef),
        ("user_id", Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % USERS)))),
        ("ts", Arc::new(TimestampMicrosecondArray::from_iter_values((0..n).map(|i| T0 - 24 * HOUR + (unit(i, 1) * 24.0 * HOUR as f64) as i64)).with_timezone("UTC"))),
        ("amount", Arc::new(Float64Array::from_iter_values((0..n).map(|i| (unit(i, 2) * 100.0).round())))),
        ("merchant", Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("m{}", i % 7))))),
        ("note", Arc::new(StringArray::from_iter_values((0..n).map(|_| "backfill")))),
    ])
    .expect("batch");
    let mut writer = ArrowWriter::try_new(File::create(dir.join("data/txns/part-0.parquet")).expect("file"), batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    run(dir, &["apply"]).ok();
    run(dir, &["materialize", "--start", &rfc3339(T0 - 48 * HOUR), "--end", &rfc3339(T0)]).ok();
    dir.to_path_buf()
}

/// One published message and what the rules make of it.
struct Published {
    payload: String,
    /// `(id, user, ts)` when the payload is a well-formed event.
    event: Option<(String, i64, i64)>,
}

/// `n` events after T0, mostly in order with up to 40 minutes of jitter
/// (inside the lateness), plus duplicates (some with other values), late
/// events, a burst at one instant, nulls and zeros, and malformed messages.
fn log(n: i64) -> Vec<Published> {
    let mut out = Vec::new();
    let step = 12 * HOUR / n;
    let event = |i: i64, id: String, user: i64, ts: i64, amount: Option<f64>| {
        let amount = amount.map_or("null".to_string(), |a| format!("{a}"));
        let merchant = if i % 13 == 0 { "null".to_string() } else { format!("\"m{}\"", i % 9) };
        Published { payload: format!("{{\"txn_id\": \"{id}\", \"user_id\": {user}, \"ts\": \"{}\", \"amount\": {amount}, \"merchant\": {merchant}}}", rfc3339(ts)), event: Some((id, user, ts)) }
    };
    for i in 0..n {
        let ts = T0 + i * step + ((unit(i, 3) - 0.5) * 80.0 * MINUTE as f64) as i64;
        let user = (unit(i, 4) * USERS as f64) as i64;
        let amount = match i % 17 {
            0 => None,
            1 => Some(0.0),
            _ => Some((unit(i, 5) * 500.0 - 50.0).round() / 4.0),
        };
        out.push(event(i, format!("e{i}"), user, ts, amount));
        if i % 10 == 5 {
            // A redelivery or producer retry of an earlier event, sometimes with other values.
            let j = i - 3;
            let ts = T0 + j * step;
            out.push(event(j, format!("e{j}"), (unit(j, 4) * USERS as f64) as i64, ts, Some(if i % 20 == 5 { 999.0 } else { 1.0 })));
        }
        if i % 97 == 50 {
            out.push(event(i, format!("late{i}"), user, ts - 5 * HOUR, Some(7.0)));
        }
        if i == n / 2 {
            for k in 0..30 {
                out.push(event(k, format!("burst{k}"), 7, ts, Some(k as f64)));
            }
        }
    }
    let bad = [
        "not json at all".to_string(),
        "[1, 2, 3]".to_string(),
        format!("{{\"txn_id\": \"bad1\", \"user_id\": \"abc\", \"ts\": \"{}\", \"amount\": 1}}", rfc3339(T0 + HOUR)),
        format!("{{\"txn_id\": \"bad2\", \"user_id\": 1, \"ts\": \"{}\", \"amount\": 1, \"amnt\": 2}}", rfc3339(T0 + HOUR)),
        "{\"txn_id\": \"bad3\", \"user_id\": 1, \"amount\": 1}".to_string(),
        "{\"txn_id\": \"bad4\", \"user_id\": 1, \"ts\": \"1900-01-01T00:00:00Z\", \"amount\": 1}".to_string(),
        format!("{{\"user_id\": 1, \"ts\": \"{}\", \"amount\": 1}}", rfc3339(T0 + HOUR)),
    ];
    for (k, payload) in bad.into_iter().enumerate() {
        out.insert(out.len() * (k + 1) / 9, Published { payload, event: None });
    }
    out
}

/// The rules replayed over the log: accepted `(id, user, ts)` in order,
/// and the duplicate, late and rejected counts.
struct Expected {
    accepted: Vec<(String, i64, i64)>,
    duplicates: u64,
    late: u64,
    rejected: u64,
}

fn expected(log: &[Published]) -> Expected {
    let mut seen = HashSet::new();
    let mut newest: Option<i64> = None;
    let mut out = Expected { accepted: Vec::new(), duplicates: 0, late: 0, rejected: 0 };
    for message in log {
        let Some((id, user, ts)) = &message.event else {
            out.rejected += 1;
            continue;
        };
        if seen.contains(id) {
            out.duplicates += 1;
        } else if newest.is_some_and(|n| *ts < n - LATENESS) {
            out.late += 1;
        } else {
            seen.insert(id.clone());
            newest = Some(newest.map_or(*ts, |n| n.max(*ts)));
            out.accepted.push((id.clone(), *user, *ts));
        }
    }
    out
}

fn stream_source(repo: &Path) -> almanac::core::Source {
    let store = FeatureStore::open(repo).expect("open");
    store.serving_state().expect("state").definitions.source("txn_stream").cloned().expect("source")
}

fn publish(repo: &Path, log: &[Published]) {
    let source = stream_source(repo);
    let mut payloads = log.iter().map(|m| m.payload.clone().into_bytes());
    let sent = almanac_stream::broker::publish(&source, &mut payloads).expect("publish");
    assert_eq!(sent, log.len() as u64);
}

/// Deletes the test's stream or key when the test ends, pass or fail.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = almanac_stream::broker::delete(&stream_source(&self.0));
    }
}

/// Every stream file's ids in the batch source, in file order.
fn ingested_ids(repo: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo.join("data/txns")).expect("dir").filter_map(Result::ok).map(|e| e.path()).filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("stream-"))).collect();
    files.sort();
    let mut ids = Vec::new();
    for file in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&file).expect("open")).expect("parquet").build().expect("reader");
        for batch in reader {
            let batch = batch.expect("batch");
            let column = batch.column_by_name("txn_id").expect("txn_id");
            let note = batch.column_by_name("note").expect("the extra column is kept in the files");
            assert_eq!(note.null_count(), batch.num_rows(), "events carry no note: it is null");
            ids.extend(column.as_string::<i32>().iter().map(|s| s.expect("id").to_string()));
        }
    }
    ids
}

const FEATURES: &str = "last_txn:amount,last_txn:merchant,txn_windows:count_1h,txn_windows:amount_sum_6h,txn_windows:amount_mean_1d,txn_windows:amount_max_1d,txn_windows:amount_stddev_1d,txn_windows:merchant_approx_count_distinct_1d,txn_windows:amount_last_1d";

/// Online at `t` equals the training set at `T = t`, value for value (floats
/// bit for bit), for every user and one the stream never saw; and the
/// hourly counts equal a brute-force count over the accepted events.
fn assert_online_equals_offline(repo: &Path, expected: &Expected) {
    let store = FeatureStore::open(repo).expect("open");
    let newest = expected.accepted.iter().map(|(_, _, ts)| *ts).max().expect("events");
    let t = newest + MINUTE;
    let users: Vec<i64> = (0..USERS).chain([9_999]).collect();
    let selection = FeatureSelection::parse_refs(FEATURES).expect("features");
    let entities = RecordBatch::try_from_iter(vec![
        ("user_id", Arc::new(Int64Array::from(users.clone())) as ArrayRef),
        ("event_timestamp", Arc::new(TimestampMicrosecondArray::from(vec![t; users.len()]).with_timezone("UTC"))),
    ])
    .expect("entities");
    let training = store.get_historical_features(&entities, &selection, &Default::default()).expect("training set");
    let keys = RecordBatch::try_from_iter(vec![("user_id", Arc::new(Int64Array::from(users.clone())) as ArrayRef)]).expect("keys");
    let online = store.get_online_features_at(&selection, &keys, false, t).expect("online");
    let mut compared = 0;
    for feature in FEATURES.split(',').map(|f| f.split(':').nth(1).expect("name")) {
        let offline_column = training.column_by_name(feature).unwrap_or_else(|| panic!("training set has no `{feature}`"));
        let online_column = online.values.column_by_name(feature).unwrap_or_else(|| panic!("online has no `{feature}`"));
        for (row, user) in users.iter().enumerate() {
            let (a, b) = (almanac::core::convert::value_at(online_column.as_ref(), row), almanac::core::convert::value_at(offline_column.as_ref(), row));
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "user {user} feature `{feature}` at {}: online {a:?}, training set {b:?}", rfc3339(t));
            compared += 1;
        }
    }
    assert!(compared > 300);
    // Independent of both paths: the 1h counts from the accepted events.
    let counts = online.values.column_by_name("count_1h").expect("count_1h").as_primitive::<arrow::datatypes::Int64Type>().clone();
    let mut nonzero = 0;
    for (row, user) in users.iter().enumerate() {
        let brute = expected.accepted.iter().filter(|(_, u, ts)| u == user && *ts >= t - HOUR && *ts < t).count() as i64;
        let got = if counts.is_null(row) { 0 } else { counts.value(row) };
        assert_eq!(got, brute, "user {user}: count_1h");
        nonzero += usize::from(brute > 0);
    }
    assert!(nonzero > 3, "the last hour should hold events of several users");
}

fn assert_history_exactly_once(repo: &Path, expected: &Expected) {
    let ids = ingested_ids(repo);
    let mut sorted = ids.clone();
    sorted.sort();
    let before = sorted.len();
    sorted.dedup();
    assert_eq!(sorted.len(), before, "an event was written to the history twice");
    let mut want: Vec<String> = expected.accepted.iter().map(|(id, _, _)| id.clone()).collect();
    want.sort();
    assert_eq!(sorted, want, "the history holds exactly the accepted events");
}

fn equality(broker: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = repo(dir.path(), broker);
    let _cleanup = Cleanup(repo.clone());
    let log = log(2_000);
    let expected = expected(&log);
    assert!(expected.duplicates > 100 && expected.late > 10 && expected.rejected == 7, "the log exercises every rule");
    publish(&repo, &log);
    let out = run(&repo, &["ingest", "--until-idle", "--batch-rows", "300", "--json"]).ok();
    let summary = &out.json()[0];
    assert_eq!(summary["received"], log.len() as u64, "{summary}");
    assert_eq!(summary["ingested"], expected.accepted.len() as u64, "{summary}");
    assert_eq!(summary["duplicates"], expected.duplicates, "{summary}");
    assert_eq!(summary["late"], expected.late, "{summary}");
    assert_eq!(summary["rejected"], expected.rejected, "{summary}");
    assert_history_exactly_once(&repo, &expected);
    assert_online_equals_offline(&repo, &expected);
    // Late and rejected events are kept with their reasons.
    let late = std::fs::read_to_string(repo.join(".almanac/late/txn_stream.jsonl")).expect("late file");
    assert_eq!(late.lines().count() as u64, expected.late);
    assert!(late.contains("more than 2h before the newest event time"), "{late}");
    let rejected = std::fs::read_to_string(repo.join(".almanac/rejected/txn_stream.jsonl")).expect("rejected file");
    assert_eq!(rejected.lines().count() as u64, expected.rejected);
    for reason in ["not a JSON object", "field `user_id` (int64)", "did you mean `amount`?", "field `ts` (timestamp) is required", "outside the plausible range", "field `txn_id` (string) is required"] {
        assert!(rejected.contains(reason), "no rejection says {reason:?}:\n{rejected}");
    }
    // A second run finds nothing new and changes nothing.
    let again = run(&repo, &["ingest", "--until-idle", "--json"]).ok();
    assert_eq!(again.json()[0]["received"], 0);
    // The monitor reports the stream's freshness beside the views' staleness.
    let newest = expected.accepted.iter().map(|e| e.2).max().unwrap_or(T0);
    let monitor = run(&repo, &["monitor", "--views", "last_txn", "--at", &rfc3339(newest + MINUTE), "--json"]);
    let stream = &monitor.json()["views"][0]["stream"];
    assert_eq!(stream["source"], "txn_stream", "{}", monitor.stdout);
    assert_eq!(stream["newest_event"], rfc3339(newest), "{}", monitor.stdout);
    assert_eq!(stream["newest_event_age_seconds"], 60.0, "{}", monitor.stdout);
    // Parity covers stream-fed views: the online store agrees with the history.
    let parity = run(&repo, &["parity", "--at", &rfc3339(expected.accepted.iter().map(|e| e.2).max().unwrap_or(T0) + MINUTE), "--json"]);
    assert_eq!(parity.code, 0, "parity: {}\n{}", parity.stdout, parity.stderr);
}

/// Kill -9 the ingest process at pseudo-random points, repeatedly, then
/// let a last run finish: nothing lost, nothing twice, stores equal.
fn crash(broker: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = repo(dir.path(), broker);
    let _cleanup = Cleanup(repo.clone());
    let log = log(40_000);
    let expected = expected(&log);
    publish(&repo, &log);
    // The worst instant first: the batch's file written, nothing online yet.
    let aborted: util::Run = util::almanac().arg("--repo").arg(&repo).args(["ingest", "--batch-rows", "250"]).env("ALMANAC_FAULT_ABORT_AFTER_OFFLINE_PUSH", "1").output().expect("run").into();
    assert_ne!(aborted.code, 0, "the fault must abort the process");
    let first = ingested_ids(&repo).len();
    assert!(first > 0 && first <= 250, "one batch reached the history: {first}");
    let mut progress = Vec::new();
    for round in 0..5 {
        let mut child = util::almanac().arg("--repo").arg(&repo).args(["ingest", "--batch-rows", "250", "--batch-delay", "20ms"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("spawn");
        std::thread::sleep(Duration::from_millis(40 + (unit(round, 9) * 160.0) as u64));
        child.kill().expect("kill -9");
        child.wait().expect("wait");
        progress.push(ingested_ids(&repo).len());
    }
    // The kills must land mid-stream, or this tests nothing.
    assert!(progress.iter().any(|&n| n > 0 && n < expected.accepted.len()), "every kill came before the first batch or after the last: {progress:?}");
    let last = run(&repo, &["ingest", "--until-idle"]).ok();
    eprintln!("ingested after each kill: {progress:?}; last run: {}", last.stdout);
    assert_history_exactly_once(&repo, &expected);
    assert_online_equals_offline(&repo, &expected);
}

const NATS: &str = "{type: nats, url: \"nats://127.0.0.1:4222\", stream: STREAM, subject: SUBJECT}";
const REDIS: &str = "{type: redis, url: \"redis://127.0.0.1:6379/0\", key: KEY}";

fn nats() -> String {
    let id = unique();
    NATS.replace("STREAM", &format!("ALMANAC_TEST_{id}")).replace("SUBJECT", &format!("almanac.test.{id}"))
}

fn redis() -> String {
    REDIS.replace("KEY", &format!("almanac:test:{}", unique()))
}

#[test]
fn nats_log_is_ingested_exactly_and_online_equals_the_training_set() {
    equality(&nats());
}

#[test]
fn redis_log_is_ingested_exactly_and_online_equals_the_training_set() {
    equality(&redis());
}

#[test]
fn nats_ingest_killed_at_random_points_loses_nothing_and_counts_nothing_twice() {
    crash(&nats());
}

#[test]
fn redis_ingest_killed_at_random_points_loses_nothing_and_counts_nothing_twice() {
    crash(&redis());
}

#[test]
fn a_broker_that_is_down_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = repo(dir.path(), "{type: nats, url: \"nats://127.0.0.1:1\", stream: S, subject: s}");
    let out = run(&repo, &["ingest", "--until-idle"]).fails();
    assert!(out.stderr.contains("cannot reach NATS stream `S`") && out.stderr.contains("127.0.0.1:1"), "{}", out.stderr);
    std::fs::write(repo.join("defs.yaml"), std::fs::read_to_string(repo.join("defs.yaml")).expect("defs").replace("{type: nats, url: \"nats://127.0.0.1:1\", stream: S, subject: s}", "{type: redis, url: \"redis://127.0.0.1:1/0\", key: k}")).expect("defs");
    run(&repo, &["apply"]).ok();
    let out = run(&repo, &["ingest", "--until-idle"]).fails();
    assert!(out.stderr.contains("cannot reach Redis stream `k`"), "{}", out.stderr);
}

#[test]
fn stream_definitions_with_mistakes_are_located_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = repo(dir.path(), &redis());
    let defs = std::fs::read_to_string(repo.join("defs.yaml")).expect("defs");
    for (from, to, message) in [
        ("type: redis", "type: kafka", "unknown stream type `kafka`"),
        ("url: \"redis://127.0.0.1:6379/0\"", "url: \"127.0.0.1:6379\"", "is not a redis:// URL"),
        ("    event_id_field: txn_id\n", "", "missing the required key `event_id_field`"),
        ("allowed_lateness: 2h", "allowed_lateness: soon", "is not a valid `allowed_lateness`"),
    ] {
        std::fs::write(repo.join("defs.yaml"), defs.replace(from, to)).expect("defs");
        let out = run(&repo, &["plan"]).fails();
        assert!(out.stderr.contains(message) && out.stderr.contains("defs.yaml:"), "{message}: {}", out.stderr);
    }
    std::fs::write(repo.join("defs.yaml"), defs.replace("event_id_field: txn_id", "event_id_field: txn")).expect("defs");
    run(&repo, &["apply"]).ok();
    let out = run(&repo, &["ingest", "--until-idle"]).fails();
    assert!(out.stderr.contains("`event_id_field: txn` is not a column of batch source `txns`"), "{}", out.stderr);
}

/// A Redis that dies mid-run (SIGKILL) and comes back (its append-only
/// file keeps the stream and the group): `almanac ingest` retries with
/// backoff, reports the errors, and ends with every event exactly once.
#[test]
fn a_broker_that_goes_away_mid_run_is_retried_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let data = dir.path().join("redis");
    std::fs::create_dir_all(&data).expect("redis dir");
    let start_redis = || {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test.sh installs it)");
        // Ready once it answers PONG (while it loads its append-only file it answers LOADING).
        for _ in 0..250 {
            let pong = std::process::Command::new("redis-cli").args(["-p", &port.to_string(), "ping"]).output().is_ok_and(|o| o.stdout.starts_with(b"PONG"));
            if pong {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    };
    let mut redis = start_redis();
    let repo = repo(&dir.path().join("repo"), &format!("{{type: redis, url: \"redis://127.0.0.1:{port}/0\", key: events}}"));
    let log = log(2_000);
    let expected = expected(&log);
    let (first, second) = log.split_at(log.len() / 2);
    publish(&repo, first);
    let ingest = util::almanac().arg("--repo").arg(&repo).args(["ingest", "--json", "--batch-rows", "200"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("ingest");
    let wait_for = |n: usize| {
        for _ in 0..500 {
            if ingested_ids(&repo).len() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("ingest did not reach {n} events: {}", ingested_ids(&repo).len());
    };
    wait_for(1);
    redis.kill().expect("kill redis");
    redis.wait().expect("wait");
    std::thread::sleep(Duration::from_millis(800));
    redis = start_redis();
    publish(&repo, second);
    wait_for(expected.accepted.len());
    // SIGTERM: the batch in hand is finished and acknowledged, the summary printed.
    std::process::Command::new("kill").args(["-TERM", &ingest.id().to_string()]).status().expect("kill -TERM");
    let out: util::Run = ingest.wait_with_output().expect("ingest output").into();
    let _ = redis.kill();
    let out = out.ok();
    let summary = &out.json()[0];
    assert!(summary["broker_errors"].as_u64().is_some_and(|n| n > 0), "the outage is reported: {summary}\n{}", out.stderr);
    assert!(out.stderr.contains("retrying"), "each retry is logged: {}", out.stderr);
    assert_history_exactly_once(&repo, &expected);
    assert_online_equals_offline(&repo, &expected);
}
