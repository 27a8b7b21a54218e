//! The feature server end to end: the real binary on a free port, real
//! stores (embedded, and the local Redis), real HTTP.

mod util;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use parquet::arrow::ArrowWriter;
use serde_json::{Value as Json, json};
use util::{Server, demo_repo, http, run};

const END: &str = "2026-07-01T00:00:00Z";

fn materialized_demo() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, repo) = demo_repo();
    run(&repo, &["apply"]).ok();
    run(&repo, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", END]).ok();
    (dir, repo)
}

#[test]
fn responses_equal_the_rust_api_and_keep_feasts_shape() {
    let (_dir, repo) = materialized_demo();
    let server = Server::start(&repo, &[]);
    // Written by hand: the order of `entities` is the order echoed back.
    let body = r#"{"features": ["merchant_stats:merchant_txn_count_1d", "user_txn_stats:txn_count_7d", "user_txn_stats:txn_amount_avg_7d"],
        "entities": {"user_id": [1, 2, 999999999], "merchant_id": [3, 4, 5]}, "full_feature_names": false,
        "include_feature_view_version_metadata": false}"#;
    let (status, text) = server.post("/get-online-features", body);
    assert_eq!(status, 200, "{text}");
    let served: Json = serde_json::from_str(&text).expect("json");
    // The CLI's --json goes through the Rust API: byte-for-byte the same answer.
    let cli = run(&repo, &["online", "--features", "merchant_stats:merchant_txn_count_1d,user_txn_stats:txn_count_7d,user_txn_stats:txn_amount_avg_7d", "--entity", "user_id=1,merchant_id=3", "--entity", "user_id=2,merchant_id=4", "--entity", "user_id=999999999,merchant_id=5", "--json"]).ok().json();
    assert_eq!(served, cli);
    // Join keys first, in request order, then features in request order.
    assert_eq!(served["metadata"]["feature_names"], json!(["user_id", "merchant_id", "merchant_txn_count_1d", "txn_count_7d", "txn_amount_avg_7d"]));
    let results = served["results"].as_array().expect("results");
    assert_eq!(results[0]["values"], json!([1, 2, 999999999]));
    assert_eq!(results[0]["statuses"], json!(["PRESENT", "PRESENT", "PRESENT"]));
    assert_eq!(results[0]["event_timestamps"], json!(["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]));
    for result in results {
        let object = result.as_object().expect("object");
        assert_eq!(object.len(), 3, "exactly values/statuses/event_timestamps: {result}");
        assert_eq!(result["values"].as_array().expect("values").len(), 3);
    }
    assert_eq!(results[3]["statuses"][2], "NOT_FOUND");

    // Entities in the other order come back in that order.
    let swapped = server.post("/get-online-features", r#"{"features": ["user_txn_stats:txn_count_7d"], "entities": {"merchant_id": [3], "user_id": [1]}}"#);
    assert!(swapped.1.starts_with(r#"{"metadata":{"feature_names":["merchant_id","user_id","txn_count_7d"]}"#), "{}", swapped.1);
    // Full feature names and a feature service.
    let (status, full) = server.post("/get-online-features", r#"{"feature_service": "fraud_model_v1", "entities": {"user_id": [1], "merchant_id": [1]}, "full_feature_names": true}"#);
    assert_eq!(status, 200, "{full}");
    let full: Json = serde_json::from_str(&full).expect("json");
    assert_eq!(full["metadata"]["feature_names"], json!(["user_id", "merchant_id", "user_txn_stats__txn_count_7d", "user_txn_stats__txn_amount_avg_7d", "merchant_stats__merchant_fraud_rate_30d", "merchant_stats__merchant_txn_count_1d"]));
}

#[test]
fn operational_endpoints_answer() {
    let (_dir, repo) = materialized_demo();
    // A worker count of zero is a usage error that names the flag.
    let zero = run(&repo, &["serve", "--port", "0", "--workers", "0"]);
    assert_eq!(zero.code, 2, "{}", zero.stderr);
    assert!(zero.stderr.contains("--workers"), "{}", zero.stderr);
    // One worker thread is enough for every endpoint.
    let server = Server::start(&repo, &["--workers", "1"]);
    assert_eq!(server.get("/health"), (200, r#"{"status":"ok"}"#.to_string()));
    let (status, ready) = server.get("/ready");
    assert_eq!(status, 200, "{ready}");
    let catalog: Json = serde_json::from_str(&server.get("/features").1).expect("catalog");
    assert_eq!(catalog["feature_views"].as_array().expect("views").len(), 3);
    assert_eq!(catalog["feature_views"][1]["watermark"], json!("2026-07-01T00:00:00Z"));
    server.post_json("/get-online-features", &json!({"features": ["user_txn_stats:txn_count_7d"], "entities": {"user_id": [1]}}), 200);
    server.post_json("/get-online-features", &json!({"features": ["nope:x"], "entities": {"user_id": [1]}}), 404);
    // Aggregation features over HTTP, in Feast's shape: at the server's now
    // (months after the reference data ends) every window is empty: a count
    // is 0 and PRESENT, a maximum is null.
    let windows = server.post_json("/get-online-features", &json!({"features": ["user_txn_windows:count_1h", "user_txn_windows:amount_max_30d"], "entities": {"user_id": [1]}}), 200);
    assert_eq!(windows["results"][1]["values"], json!([0]), "{windows}");
    assert_eq!(windows["results"][1]["statuses"], json!(["PRESENT"]), "{windows}");
    assert_eq!(windows["results"][2]["statuses"], json!(["NULL_VALUE"]), "{windows}");
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains(r#"almanac_http_requests_total{endpoint="/get-online-features",status="200"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"almanac_errors_total{kind="not_found"} 1"#), "{metrics}");
    assert!(metrics.contains("almanac_http_request_seconds_bucket") && metrics.contains("almanac_online_store_read_seconds") && metrics.contains("almanac_entities_per_request"), "{metrics}");
}

#[test]
fn bad_requests_are_4xx_json_never_a_panic() {
    let (_dir, repo) = materialized_demo();
    let server = Server::start(&repo, &["--max-body-bytes", "2000", "--max-entities", "50"]);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("malformed", "{\"features\": [".into(), 400, "malformed JSON"),
        ("not an object", "[1,2]".into(), 400, "invalid request"),
        ("no features", json!({"entities": {"user_id": [1]}}).to_string(), 400, "missing `features`"),
        ("wrong types", json!({"features": "user_txn_stats:txn_count_7d", "entities": {"user_id": [1]}}).to_string(), 400, "invalid request"),
        ("float key", json!({"features": ["user_txn_stats:txn_count_7d"], "entities": {"user_id": [1.5]}}).to_string(), 400, "join keys are integers"),
        ("string for int key", json!({"features": ["user_txn_stats:txn_count_7d"], "entities": {"user_id": ["a"]}}).to_string(), 400, "join key `user_id` is an int64"),
        ("unknown feature", json!({"features": ["user_txn_stats:txn_count_7"], "entities": {"user_id": [1]}}).to_string(), 404, "did you mean `user_txn_stats:txn_count_7d`?"),
        ("unknown service", json!({"feature_service": "fraud_model", "entities": {"user_id": [1]}}).to_string(), 404, "did you mean `fraud_model_v1`?"),
        ("bad reference", json!({"features": ["::"], "entities": {"user_id": [1]}}).to_string(), 400, ""),
        ("missing join key", json!({"features": ["user_txn_stats:txn_count_7d"], "entities": {"merchant_id": [1]}}).to_string(), 400, "needs join key `user_id`"),
        ("mixed lengths", json!({"feature_service": "fraud_model_v1", "entities": {"user_id": [1, 2], "merchant_id": [1]}}).to_string(), 400, "different lengths"),
        ("no entities", json!({"features": ["user_txn_stats:txn_count_7d"], "entities": {}}).to_string(), 400, "no entities given"),
        ("too many entities", json!({"features": ["user_txn_stats:txn_count_7d"], "entities": {"user_id": (0..60).collect::<Vec<_>>()}}).to_string(), 400, "limit is 50"),
        ("oversized", json!({"features": ["user_txn_stats:txn_count_7d"], "entities": {"user_id": vec![1; 2000]}}).to_string(), 413, "limit of 2000 bytes"),
        ("push unknown source", json!({"push_source_name": "nope", "df": {"user_id": [1]}, "to": "online"}).to_string(), 404, "unknown push source"),
        ("push bad target", json!({"push_source_name": "x", "df": {}, "to": "everywhere"}).to_string(), 400, "use \\\"online\\\""),
    ];
    for (name, body, status, needle) in cases {
        let path = if name.starts_with("push") { "/push" } else { "/get-online-features" };
        let (code, text) = server.post(path, &body);
        assert_eq!(code, status, "{name}: {text}");
        let parsed: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {text}"));
        assert!(parsed["error"].is_string() && parsed["detail"].is_string(), "{name}: {text}");
        assert!(text.contains(needle), "{name}: expected {needle:?} in {text}");
    }
    let (code, text) = server.get("/no-such-endpoint");
    assert_eq!(code, 404, "{text}");
    assert!(text.contains("\"error\""));
    // Still serving.
    server.post_json("/get-online-features", &json!({"features": ["user_txn_stats:txn_count_7d"], "entities": {"user_id": [1]}}), 200);
}

/// Regression: `"entities": {"user_id": 5}` was answered 200 as if it were
/// `[5]`. Feast's server rejects it (its request model wants a list per
/// key), and accepting it hides client bugs: it is a 400 naming the key.
#[test]
fn a_scalar_entity_value_is_a_400_naming_the_key_not_a_one_row_column() {
    let (_dir, repo) = materialized_demo();
    let server = Server::start(&repo, &[]);
    let (code, text) = server.post("/get-online-features", &json!({"features": ["user_txn_stats:txn_count_7d"], "entities": {"user_id": 5}}).to_string());
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("`user_id` must be a list"), "{text}");
    let (code, text) = server.post("/push", &json!({"push_source_name": "user_txn_push", "df": {"user_id": 5}, "to": "online"}).to_string());
    assert_eq!(code, 400, "a push column is a list too: {text}");
}

/// Deterministic pseudo-random bytes (no extra crates, reproducible).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn fuzzed_bodies_never_break_the_server() {
    let (_dir, repo) = materialized_demo();
    let server = Server::start(&repo, &[]);
    let seeds = [
        json!({"features": ["user_txn_stats:txn_count_7d", "merchant_stats"], "entities": {"user_id": [1, 2], "merchant_id": [1, 2]}}).to_string(),
        json!({"feature_service": "fraud_model_v1", "entities": {"user_id": [1], "merchant_id": [7]}, "full_feature_names": true}).to_string(),
    ];
    let alphabet: &[u8] = "{}[]\":,0123456789-.eE truefalsnul\\ufeffé".as_bytes();
    let mut rng = Lcg(42);
    for round in 0..400 {
        let mut body = seeds[round % 2].clone().into_bytes();
        for _ in 0..(1 + rng.next() % 6) {
            let at = (rng.next() as usize) % (body.len() + 1);
            match rng.next() % 4 {
                0 if at < body.len() => {
                    body.remove(at);
                }
                1 => body.insert(at, alphabet[(rng.next() as usize) % alphabet.len()]),
                2 if at < body.len() => body[at] = (rng.next() % 256) as u8,
                _ => body.truncate(at),
            }
        }
        let path = if round % 5 == 0 { "/push" } else { "/get-online-features" };
        let (status, text) = http(&server.addr, "POST", path, &body, &[]);
        assert!(status == 200 || (400..500).contains(&status), "round {round}: {status} {text} for {:?}", String::from_utf8_lossy(&body));
        if status != 200 {
            let parsed: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("round {round}: not JSON ({e}): {text}"));
            assert!(parsed["detail"].is_string());
        }
    }
    server.post_json("/get-online-features", &json!({"features": ["user_txn_stats:txn_count_7d"], "entities": {"user_id": [1]}}), 200);
}

/// A repo with a folder batch source and a push source over it.
fn push_repo(dir: &Path, online: &str) {
    std::fs::create_dir_all(dir.join("data/scores")).expect("dir");
    std::fs::write(dir.join("almanac.yaml"), format!("project: push_test_{}\n{online}\n", std::process::id())).expect("config");
    std::fs::write(
        dir.join("defs.yaml"),
        r#"
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: scores_batch
    path: data/scores
    timestamp_field: event_timestamp
    created_timestamp_column: created_at
  - name: scores_push
    batch_source: scores_batch
feature_views:
  - name: scores
    entities: [user]
    source: scores_push
    ttl: 3650d
    schema:
      - {name: score, dtype: float64}
      - {name: clicks, dtype: int64}
"#,
    )
    .expect("defs");
    let ts = |v: i64| Arc::new(TimestampMicrosecondArray::from(vec![v]).with_timezone("UTC")) as ArrayRef;
    let batch = RecordBatch::try_from_iter(vec![
        ("user_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("event_timestamp", ts(1_780_000_000_000_000)),
        ("created_at", ts(1_780_000_000_000_000)),
        ("score", Arc::new(Float64Array::from(vec![0.5])) as ArrayRef),
        ("clicks", Arc::new(Int64Array::from(vec![3])) as ArrayRef),
    ])
    .expect("batch");
    let mut writer = ArrowWriter::try_new(File::create(dir.join("data/scores/part-0.parquet")).expect("file"), batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

fn push_then_read(online: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path();
    push_repo(repo, online);
    run(repo, &["apply"]).ok();
    run(repo, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", END]).ok();
    let server = Server::start(repo, &[]);
    let read = |user: i64| server.post_json("/get-online-features", &json!({"features": ["scores:score", "scores:clicks"], "entities": {"user_id": [user]}}), 200);
    assert_eq!(read(1)["results"][1]["values"], json!([0.5]));

    // Online only: visible online, not in history.
    let pushed = server.post_json("/push", &json!({"push_source_name": "scores_push", "df": {"user_id": [1, 2], "event_timestamp": ["2026-06-20T00:00:00Z", "2026-06-20T00:00:00Z"], "score": [1.0, 2], "clicks": [10, null]}, "to": "online"}), 200);
    assert_eq!(pushed["online_written"], json!(2));
    let user1 = read(1);
    assert_eq!(user1["results"][1]["values"], json!([1.0]), "{user1}");
    assert_eq!(user1["results"][1]["event_timestamps"], json!(["2026-06-20T00:00:00Z"]));
    let user2 = read(2);
    assert_eq!(user2["results"][2]["statuses"], json!(["NULL_VALUE"]));
    assert_eq!(std::fs::read_dir(repo.join("data/scores")).expect("dir").count(), 1, "an online push writes no file");

    // A late push (older event time) never moves an entity back in time.
    let late = server.post_json("/push", &json!({"push_source_name": "scores_push", "df": {"user_id": [1], "event_timestamp": ["2026-06-01T00:00:00Z"], "score": [-1.0], "clicks": [0]}, "to": "online"}), 200);
    assert_eq!(late["online_kept_newer"], json!(1));
    assert_eq!(read(1)["results"][1]["values"], json!([1.0]));

    // Online and offline: the same value in both stores.
    let both = server.post_json("/push", &json!({"push_source_name": "scores_push", "df": {"user_id": [3], "event_timestamp": ["2026-06-25T12:00:00Z"], "created_at": ["2026-06-25T12:00:01Z"], "score": [7.25], "clicks": [70]}, "to": "online_and_offline"}), 200);
    let file = both["offline_file"].as_str().expect("file").to_string();
    assert!(Path::new(&file).is_file());
    assert_eq!(read(3)["results"][1]["values"], json!([7.25]));
    let entities = repo.join("entities.csv");
    std::fs::write(&entities, "user_id,event_timestamp\n3,2026-06-26T00:00:00Z\n3,2026-06-25T11:00:00Z\n").expect("entities");
    let out = repo.join("train.csv");
    run(repo, &["historical", "--entities", entities.to_str().expect("path"), "--features", "scores:score,scores:clicks", "--output", out.to_str().expect("path")]).ok();
    let csv = std::fs::read_to_string(&out).expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[1].ends_with(",7.25,70"), "pushed row visible to training at its event time: {csv}");
    assert!(lines[2].ends_with(",,"), "and not before it: {csv}");

    // A push whose columns do not match the view is refused, nothing written.
    let files_before = std::fs::read_dir(repo.join("data/scores")).expect("dir").count();
    for (body, needle) in [
        (json!({"push_source_name": "scores_push", "df": {"user_id": [1], "event_timestamp": ["2026-06-30T00:00:00Z"], "score": [1.0]}, "to": "online_and_offline"}), "missing column `clicks`"),
        (json!({"push_source_name": "scores_push", "df": {"user_id": [1], "event_timestamp": ["2026-06-30T00:00:00Z"], "score": [1.0], "clicks": [1], "scroe": [2]}, "to": "offline"}), "column `scroe` is not part of push source"),
        (json!({"push_source_name": "scores_push", "df": {"user_id": [1], "event_timestamp": ["yesterday"], "score": [1.0], "clicks": [1]}, "to": "offline"}), "is not a timestamp"),
        (json!({"push_source_name": "scores_push", "df": {"user_id": [1], "event_timestamp": ["2026-06-30T00:00:00Z"], "score": ["high"], "clicks": [1]}, "to": "offline"}), "column `score`, row 0: expected float64"),
        (json!({"push_source_name": "scores_batch", "df": {"user_id": [1]}, "to": "online"}), "is a batch source, not a push source"),
    ] {
        let refused = server.post_json("/push", &body, 400);
        assert!(refused["detail"].as_str().expect("detail").contains(needle), "{refused}");
    }
    assert_eq!(std::fs::read_dir(repo.join("data/scores")).expect("dir").count(), files_before);
    assert_eq!(read(1)["results"][1]["values"], json!([1.0]));
}

#[test]
fn push_reaches_both_stores_embedded() {
    push_then_read("");
}

#[test]
fn push_reaches_both_stores_redis() {
    let url = almanac_online_redis::harness::ensure_redis(6379, 0).expect("a Redis server is required");
    push_then_read(&format!("online: {{type: redis, url: \"{url}\"}}"));
}

#[test]
fn redis_backed_server_matches_the_embedded_one() {
    let url = almanac_online_redis::harness::ensure_redis(6379, 0).expect("a Redis server is required");
    let (_dir, repo) = materialized_demo();
    let (_dir2, redis_repo) = demo_repo();
    std::fs::write(redis_repo.join("almanac.yaml"), format!("project: serve_parity_{}\nonline: {{type: redis, url: \"{url}\"}}\n", std::process::id())).expect("config");
    run(&redis_repo, &["apply"]).ok();
    run(&redis_repo, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", END]).ok();
    let embedded = Server::start(&repo, &[]);
    let redis = Server::start(&redis_repo, &[]);
    let body = json!({"feature_service": "fraud_model_v1", "entities": {"user_id": (1..40).collect::<Vec<_>>(), "merchant_id": (1..40).collect::<Vec<_>>()}});
    assert_eq!(embedded.post_json("/get-online-features", &body, 200), redis.post_json("/get-online-features", &body, 200));
}

#[test]
fn the_registry_reloads_after_apply_without_a_restart() {
    let (_dir, repo) = materialized_demo();
    let server = Server::start(&repo, &[]);
    let request = json!({"feature_service": "fraud_model_v2", "entities": {"user_id": [1]}});
    server.post_json("/get-online-features", &request, 404);
    let defs = std::fs::read_to_string(repo.join("features.yaml")).expect("defs");
    std::fs::write(repo.join("features.yaml"), format!("{defs}\n  - name: fraud_model_v2\n    features: [user_txn_stats:txn_count_7d]\n")).expect("write");
    let applied = run(&repo, &["apply"]);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    let started = Instant::now();
    loop {
        let (status, text) = server.post("/get-online-features", &request.to_string());
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not reloaded: {status} {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_token_is_required_when_configured() {
    let (dir, repo) = materialized_demo();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").expect("token");
    let server = Server::start(&repo, &["--token-file", token.to_str().expect("path")]);
    let body = json!({"features": ["user_txn_stats:txn_count_7d"], "entities": {"user_id": [1]}}).to_string();
    let (status, text) = server.post("/get-online-features", &body);
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("Bearer"));
    assert_eq!(http(&server.addr, "POST", "/get-online-features", body.as_bytes(), &[("Authorization", "Bearer wrong")]).0, 401);
    assert_eq!(http(&server.addr, "POST", "/get-online-features", body.as_bytes(), &[("Authorization", "Bearer s3cret")]).0, 200);
    assert_eq!(server.get("/health").0, 200, "health stays open for probes");
}

#[test]
fn a_redis_outage_is_a_quick_503_and_the_server_recovers() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let start_redis = || {
        std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server")
    };
    let mut redis = start_redis();
    let url = format!("redis://127.0.0.1:{port}/0");
    // Wait for our own server (never start another one on this port).
    let pong = || std::process::Command::new("redis-cli").args(["-p", &port.to_string(), "ping"]).output().is_ok_and(|o| o.stdout.starts_with(b"PONG"));
    let started = Instant::now();
    while !pong() {
        assert!(started.elapsed() < Duration::from_secs(10), "redis-server on port {port} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_dir, repo) = demo_repo();
    std::fs::write(repo.join("almanac.yaml"), format!("project: outage\nonline: {{type: redis, url: \"{url}\"}}\n")).expect("config");
    run(&repo, &["apply"]).ok();
    run(&repo, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", END]).ok();
    let server = Server::start(&repo, &["--timeout-ms", "8000"]);
    let body = json!({"features": ["user_txn_stats:txn_count_7d"], "entities": {"user_id": [1]}});
    server.post_json("/get-online-features", &body, 200);

    redis.kill().expect("kill redis");
    redis.wait().expect("wait");
    let asked = Instant::now();
    let down = server.post_json("/get-online-features", &body, 503);
    assert!(asked.elapsed() < Duration::from_secs(4), "503 took {:?}", asked.elapsed());
    assert!(down["detail"].as_str().expect("detail").contains(&url), "{down}");
    assert_eq!(server.get("/ready").0, 503);
    assert_eq!(server.get("/health").0, 200);

    let mut redis = start_redis();
    let started = Instant::now();
    loop {
        let (status, _) = server.post("/get-online-features", &body.to_string());
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "did not recover");
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = redis.kill();
    let _ = redis.wait();
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let (_dir, repo) = materialized_demo();
    let mut server = Server::start(&repo, &[]);
    let pid = server.child.id().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
    let started = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn scheduled_parity_and_monitoring_land_in_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    util::almanac().args(["init", "--demo", "--scale", "0.005"]).arg(&repo).output().expect("init");
    let config = std::fs::read_to_string(repo.join("almanac.yaml")).expect("config");
    std::fs::write(repo.join("almanac.yaml"), format!("{config}\nparity: {{every: 1s, sample: 50}}\n")).expect("config");
    // Thresholds from the definition: an impossible null-rate limit alerts.
    let defs = std::fs::read_to_string(repo.join("features.yaml")).expect("defs");
    let defs = defs.replacen("    online: true\n", "    online: true\n    monitoring: {max_staleness: 1h, max_null_rate: 0.0, psi_alert: 0.5}\n", 1);
    std::fs::write(repo.join("features.yaml"), defs).expect("defs");
    run(&repo, &["apply"]).ok();
    run(&repo, &["materialize-incremental", "--end", "now"]).ok();
    let server = Server::start(&repo, &[]);
    let started = Instant::now();
    let metrics = loop {
        let (_, text) = server.get("/metrics");
        if text.contains("almanac_checks_last_run_timestamp_seconds{check=\"monitor\"}") {
            break text;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no scheduled check results: {text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(metrics.contains("almanac_parity_checked_values{view=\"user_txn_stats\"}"), "{metrics}");
    assert!(metrics.contains("almanac_parity_divergent_values{view=\"user_txn_stats\"} 0"), "{metrics}");
    assert!(metrics.contains("almanac_staleness_seconds{view=\"merchant_stats\"}"), "{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("almanac_feature_null_rate{") && l.contains("txn_amount_avg_7d")), "{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("almanac_feature_psi{")), "{metrics}");
    drop(server);
    // The same thresholds drive `almanac monitor`: the null share of
    // txn_amount_avg_7d (~5%) is over max_null_rate 0.0.
    let monitor = run(&repo, &["monitor", "--json"]);
    assert_eq!(monitor.code, 1, "{}", monitor.stdout);
    assert!(monitor.stdout.contains("is above max_null_rate 0.0%"), "{}", monitor.stdout);
    let bad = std::fs::read_to_string(repo.join("features.yaml")).expect("defs").replace("max_null_rate: 0.0", "max_null_rate: 2");
    std::fs::write(repo.join("features.yaml"), bad).expect("defs");
    let refused = run(&repo, &["plan"]).fails();
    assert!(refused.stderr.contains("is not a valid `max_null_rate`") && refused.stderr.contains("features.yaml:"), "{}", refused.stderr);
}

// ---- Hardening (issue 12): each test guards one reproduced defect. ----

/// Read whatever the server sends until it closes (or `wait` passes).
fn read_until_closed(stream: &mut std::net::TcpStream, wait: Duration) -> (bool, String) {
    use std::io::Read;
    stream.set_read_timeout(Some(wait)).expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (true, String::from_utf8_lossy(&out).into_owned()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // Reset by the server counts as closed too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (true, String::from_utf8_lossy(&out).into_owned()),
            Err(_) => return (false, String::from_utf8_lossy(&out).into_owned()),
        }
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Regression: clients that send headers very slowly were held for ever;
/// ~20,000 of them exhausted the file descriptors and `/health` stopped
/// answering. Now: past `--max-connections` new connections are closed at
/// once, a connection already being served keeps its answers, half-open
/// ones are dropped at the header-read timeout, and the server's open
/// files stay bounded by the cap.
#[test]
fn thousands_of_half_open_connections_are_capped_timed_out_and_never_starve_the_server() {
    use std::io::Write;
    let (_dir, repo) = materialized_demo();
    let server = Server::start(&repo, &["--max-connections", "200", "--header-read-timeout-ms", "1500", "--idle-timeout-ms", "30000"]);
    // A client already connected before the flood (keep-alive).
    let mut early = std::net::TcpStream::connect(&server.addr).expect("connect");
    // One keep-alive request: read the head, then exactly its body.
    let ask = |stream: &mut std::net::TcpStream| {
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            let n = std::io::Read::read(stream, &mut byte).expect("an answer");
            assert_eq!(n, 1, "closed mid-response: {}", String::from_utf8_lossy(&got));
            got.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&got).into_owned();
        let length: usize = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))).unwrap_or(0);
        let mut body = vec![0u8; length];
        std::io::Read::read_exact(stream, &mut body).expect("the body");
        head
    };
    assert!(ask(&mut early).starts_with("HTTP/1.1 200"));
    // Waiting for its next request longer than the header-read timeout (but
    // less than the idle timeout) does not cost a keep-alive client its
    // connection: the header clock starts at the next request's first byte.
    std::thread::sleep(Duration::from_millis(2_000));
    assert!(ask(&mut early).starts_with("HTTP/1.1 200"), "an idle keep-alive connection is kept until the idle timeout");

    let mut slow = Vec::new();
    for i in 0..2_000 {
        let Ok(mut stream) = std::net::TcpStream::connect(&server.addr) else { continue };
        let _ = stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n");
        slow.push(stream);
        // Throughout the flood, the server answers the connection it
        // already serves (a keep-alive client asking now and then).
        if i % 200 == 199 {
            assert!(ask(&mut early).starts_with("HTTP/1.1 200"), "an admitted connection keeps its answers (after {i} slow ones)");
        }
    }
    assert!(slow.len() > 1_500, "the test could open only {} connections", slow.len());
    // Its open files stay bounded by the cap, not by the flood.
    let fds = open_fds(server.child.id());
    assert!(fds < 400, "{fds} open files with a cap of 200 connections");
    // Connections past the cap were closed on arrival.
    let mut refused = 0;
    for stream in slow.iter_mut().rev().take(300) {
        if read_until_closed(stream, Duration::from_millis(20)).0 {
            refused += 1;
        }
    }
    assert!(refused > 100, "only {refused} of the last 300 connections were closed on arrival");
    // The half-open ones that were admitted are dropped at the header timeout.
    std::thread::sleep(Duration::from_millis(2_500));
    let still_open = slow.iter_mut().take(300).map(|s| read_until_closed(s, Duration::from_millis(10)).0).filter(|closed| !closed).count();
    assert_eq!(still_open, 0, "half-open connections must be closed after the header-read timeout");
    drop(slow);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.get("/health").0, 200, "and new clients are served again");
}

/// Regression: an idle keep-alive connection and a body trickled a byte at
/// a time were held for ever. An idle connection is closed after
/// `--idle-timeout-ms`; a body that does not arrive within
/// `--body-read-timeout-ms` gets a JSON 408.
#[test]
fn idle_connections_are_closed_and_slow_bodies_get_a_408() {
    use std::io::Write;
    let (_dir, repo) = materialized_demo();
    let server = Server::start(&repo, &["--idle-timeout-ms", "700", "--body-read-timeout-ms", "500", "--header-read-timeout-ms", "5000"]);
    let mut idle = std::net::TcpStream::connect(&server.addr).expect("connect");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let (closed, text) = read_until_closed(&mut idle, Duration::from_secs(5));
    assert!(closed && text.starts_with("HTTP/1.1 200"), "answered, then closed when idle: {closed} {text}");

    let mut slow = std::net::TcpStream::connect(&server.addr).expect("connect");
    slow.write_all(b"POST /get-online-features HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"features\"").expect("write");
    let (_, text) = read_until_closed(&mut slow, Duration::from_secs(5));
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"error\":\"body_timeout\""), "{text}");
}

/// Regression: 405 (a wrong method) and the HTTP layer's 414/431 had empty
/// bodies; every 4xx carries the JSON error body.
#[test]
fn every_4xx_has_a_json_body_even_from_the_http_layer() {
    let (_dir, repo) = materialized_demo();
    let server = Server::start(&repo, &[]);
    for method in ["GET", "PUT", "DELETE"] {
        let (status, text) = http(&server.addr, method, "/get-online-features", b"", &[]);
        assert_eq!(status, 405, "{method}: {text}");
        let body: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method}: not JSON ({e}): {text}"));
        assert_eq!(body["error"], "method_not_allowed");
    }
    let long = format!("/health?{}", "a".repeat(20_000));
    let (status, text) = http(&server.addr, "GET", &long, b"", &[]);
    assert_eq!(status, 414, "{text}");
    assert!(serde_json::from_str::<Json>(&text).is_ok(), "{text}");
    let names: Vec<String> = (0..150).map(|i| format!("x-h{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let (status, text) = http(&server.addr, "GET", "/health", b"", &headers);
    assert_eq!(status, 431, "{text}");
    assert!(serde_json::from_str::<Json>(&text).is_ok(), "{text}");
}

/// Regression: the plan cache's key was the whole feature list and its cap
/// counted entries, so requests repeating one feature 130,000+i times grew
/// the server for ever. Repeats are merged (one column), the number of
/// references per request is limited, and the cache is bounded in bytes.
#[test]
fn repeated_and_excessive_feature_lists_are_merged_or_refused() {
    let (_dir, repo) = materialized_demo();
    let server = Server::start(&repo, &["--max-features", "60000", "--max-body-bytes", "8000000"]);
    let repeated = json!({"features": vec!["user_txn_stats:txn_count_7d"; 50_000], "entities": {"user_id": [1]}});
    let answer = server.post_json("/get-online-features", &repeated, 200);
    assert_eq!(answer["metadata"]["feature_names"], json!(["user_id", "txn_count_7d"]), "repeats merged");
    let limited = Server::start(&repo, &["--max-features", "10"]);
    let many = json!({"features": vec!["user_txn_stats:txn_count_7d"; 11], "entities": {"user_id": [1]}});
    let refused = limited.post_json("/get-online-features", &many, 400);
    assert!(refused["detail"].as_str().expect("detail").contains("limit is 10 (`almanac serve --max-features`)"), "{refused}");
}

/// Regression: epoch milliseconds were read as seconds (year 57890) and won
/// keep-if-newer for ever; overflowing numbers saturated. Now an instant
/// outside the plausible range, or a number that looks like milliseconds,
/// is a 400 naming the field and the value, and nothing is written. A null
/// join key is a 400 naming the row (it was silently dropped), and a push
/// has a row limit.
#[test]
fn implausible_push_timestamps_null_keys_and_huge_pushes_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path();
    push_repo(repo, "");
    run(repo, &["apply"]).ok();
    let server = Server::start(repo, &["--max-push-rows", "3"]);
    let push = |df: Json| json!({"push_source_name": "scores_push", "df": df, "to": "online"});
    for (df, needle) in [
        (json!({"user_id": [1], "event_timestamp": [1_764_669_600_123i64], "score": [1.0], "clicks": [1]}), "looks like epoch milliseconds"),
        (json!({"user_id": [1], "event_timestamp": [9_223_372_036_854_775_807i64], "score": [1.0], "clicks": [1]}), "column `event_timestamp`, row 0"),
        (json!({"user_id": [1], "event_timestamp": ["2300-01-01T00:00:00Z"], "score": [1.0], "clicks": [1]}), "2300-01-01T00:00:00Z is outside the plausible range"),
        (json!({"user_id": [1], "event_timestamp": ["1969-12-31T23:59:59Z"], "score": [1.0], "clicks": [1]}), "column `event_timestamp`, row 0: 1969-12-31T23:59:59Z is outside"),
        (json!({"user_id": [1], "event_timestamp": ["2026-06-01T00:00:00Z"], "created_at": ["2999-01-01T00:00:00Z"], "score": [1.0], "clicks": [1]}), "column `created_at`, row 0"),
        (json!({"user_id": [1, null], "event_timestamp": ["2026-06-01T00:00:00Z", "2026-06-01T00:00:00Z"], "score": [1.0, 2.0], "clicks": [1, 2]}), "column `user_id`, row 1: the join key is null"),
        (json!({"user_id": [1, 2, 3, 4], "event_timestamp": vec!["2026-06-01T00:00:00Z"; 4], "score": vec![1.0; 4], "clicks": vec![1; 4]}), "limit is 3 (`almanac serve --max-push-rows`)"),
    ] {
        let refused = server.post_json("/push", &push(df.clone()), 400);
        assert!(refused["detail"].as_str().expect("detail").contains(needle), "{df}: {refused}");
    }
    let read = server.post_json("/get-online-features", &json!({"features": ["scores:score"], "entities": {"user_id": [1]}}), 200);
    assert_eq!(read["results"][1]["statuses"], json!(["NOT_FOUND"]), "nothing was written: {read}");
    // Epoch seconds (with a fraction) are the documented form and work.
    server.post_json("/push", &push(json!({"user_id": [1], "event_timestamp": [1_764_669_600.5], "score": [1.0], "clicks": [1]})), 200);
    let read = server.post_json("/get-online-features", &json!({"features": ["scores:score"], "entities": {"user_id": [1]}}), 200);
    assert_eq!(read["results"][1]["event_timestamps"], json!(["2025-12-02T10:00:00.500Z"]));
}

/// Regression: each offline push re-read every footer in the folder on the
/// request workers, and file names (µs + pid) could collide. Many quick
/// offline pushes now each land in a file of their own, and a damaged file
/// already in the folder is the server's problem (a 5xx naming it relative
/// to the repo), not a 400 blaming the pusher.
#[test]
fn offline_pushes_get_unique_files_and_a_damaged_folder_is_a_server_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path();
    push_repo(repo, "");
    run(repo, &["apply"]).ok();
    let server = Server::start(repo, &[]);
    let count = || std::fs::read_dir(repo.join("data/scores")).expect("dir").count();
    let before = count();
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let server = &server;
            scope.spawn(move || {
                for i in 0..10 {
                    let body = json!({"push_source_name": "scores_push", "df": {"user_id": [worker * 100 + i], "event_timestamp": ["2026-06-01T00:00:00Z"], "score": [1.0], "clicks": [1]}, "to": "offline"});
                    server.post_json("/push", &body, 200);
                }
            });
        }
    });
    assert_eq!(count(), before + 40, "one file per offline push, none overwritten");

    let fresh = tempfile::tempdir().expect("tempdir");
    push_repo(fresh.path(), "");
    run(fresh.path(), &["apply"]).ok();
    std::fs::write(fresh.path().join("data/scores/damaged.parquet"), b"PAR1 not really").expect("damage");
    let damaged = Server::start(fresh.path(), &[]);
    let body = json!({"push_source_name": "scores_push", "df": {"user_id": [1], "event_timestamp": ["2026-06-01T00:00:00Z"], "score": [1.0], "clicks": [1]}, "to": "offline"});
    let (status, text) = damaged.post("/push", &body.to_string());
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("damaged.parquet"), "the file is named: {text}");
    let absolute = fresh.path().canonicalize().expect("canonical");
    assert!(!text.contains(&absolute.display().to_string()) && !text.contains(&fresh.path().display().to_string()), "no absolute server path: {text}");
}

/// Regression: deleting `registry.json` made the watcher serve an empty
/// registry (every lookup 503). A missing registry keeps the last good
/// state, as a corrupt one does.
#[test]
fn a_deleted_registry_keeps_the_last_good_state_serving() {
    let (_dir, repo) = materialized_demo();
    let server = Server::start(&repo, &[]);
    let body = json!({"features": ["user_txn_stats:txn_count_7d"], "entities": {"user_id": [1]}});
    server.post_json("/get-online-features", &body, 200);
    std::fs::remove_file(repo.join(".almanac/registry.json")).expect("delete the registry");
    // The watcher polls every 500 ms: give it a few rounds.
    std::thread::sleep(Duration::from_millis(1_500));
    server.post_json("/get-online-features", &body, 200);
    assert_eq!(server.get("/ready").0, 200);
}

/// The `Authorization` scheme is case-insensitive (RFC 9110).
#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let (dir, repo) = materialized_demo();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").expect("token");
    let server = Server::start(&repo, &["--token-file", token.to_str().expect("path")]);
    let body = json!({"features": ["user_txn_stats:txn_count_7d"], "entities": {"user_id": [1]}}).to_string();
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let value = format!("{scheme} s3cret");
        assert_eq!(http(&server.addr, "POST", "/get-online-features", body.as_bytes(), &[("Authorization", value.as_str())]).0, 200, "{scheme}");
    }
}

/// On-demand features (DESIGN §9) over HTTP: request fields travel beside
/// the join keys in `entities` (Feast's Python server) or in
/// `request_context` (Feast's Go server); a missing field, or one of the
/// wrong type, is a 400 naming it. The CLI takes `--request`, and training
/// sets read request fields from the entity table.
#[test]
fn on_demand_features_take_request_data_over_http_the_cli_and_training_sets() {
    let (_dir, repo) = materialized_demo();
    let server = Server::start(&repo, &[]);
    let features = json!(["txn_ratios:is_large", "txn_ratios:amount_to_avg_ratio"]);
    // A literal body: `json!` would sort the keys, and the order of
    // `entities` is the order of the echoed columns.
    let (status, text) = server.post("/get-online-features", r#"{"features": ["txn_ratios:is_large", "txn_ratios:amount_to_avg_ratio"], "entities": {"user_id": [1, 2], "amount": [1500.0, 12]}}"#);
    assert_eq!(status, 200, "{text}");
    let answer: Json = serde_json::from_str(&text).expect("json");
    assert_eq!(answer["metadata"]["feature_names"], json!(["user_id", "amount", "is_large", "amount_to_avg_ratio"]));
    assert_eq!(answer["results"][2]["values"], json!([true, false]));
    assert_eq!(answer["results"][2]["statuses"], json!(["PRESENT", "PRESENT"]));
    // The reference dates are long past: the user's average is outside its
    // TTL, enters as null, and the ratio is null.
    assert_eq!(answer["results"][3]["statuses"], json!(["NULL_VALUE", "NULL_VALUE"]));
    let context = server.post_json("/get-online-features", &json!({"features": features, "entities": {"user_id": [1, 2]}, "request_context": {"amount": [1500.0, 12]}}), 200);
    assert_eq!(context["results"][2]["values"], json!([true, false]));
    let missing = server.post_json("/get-online-features", &json!({"features": features, "entities": {"user_id": [1]}}), 400);
    assert!(missing["detail"].as_str().expect("detail").contains("missing request field `amount` (float64)"), "{missing}");
    let wrong = server.post_json("/get-online-features", &json!({"features": features, "entities": {"user_id": [1], "amount": ["lots"]}}), 400);
    assert!(wrong["detail"].as_str().expect("detail").contains("request field `amount` is float64"), "{wrong}");

    let cli = run(&repo, &["online", "--features", "txn_ratios:is_large", "--entity", "user_id=1", "--request", "amount=1500", "--json"]).ok().json();
    assert_eq!(cli["results"][2]["values"], json!([true]), "{cli}");

    let out = repo.join("train.parquet");
    let labels = repo.join("data/labels.parquet");
    run(&repo, &["historical", "--entities", labels.to_str().expect("path"), "--features", "txn_ratios,user_txn_stats:txn_amount_avg_7d", "--output", out.to_str().expect("path")]).ok();
    let batch = {
        let file = File::open(&out).expect("output");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet").build().expect("reader");
        let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
        arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat")
    };
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Float64Type;
    let amount = batch.column_by_name("amount").expect("amount").as_primitive::<Float64Type>();
    let avg = batch.column_by_name("txn_amount_avg_7d").expect("avg").as_primitive::<Float64Type>();
    let ratio = batch.column_by_name("amount_to_avg_ratio").expect("ratio").as_primitive::<Float64Type>();
    let large = batch.column_by_name("is_large").expect("is_large").as_boolean();
    let mut compared = 0;
    for row in 0..batch.num_rows() {
        let expected = (!amount.is_null(row) && !avg.is_null(row) && avg.value(row) != 0.0).then(|| amount.value(row) / avg.value(row));
        assert_eq!(ratio.is_null(row), expected.is_none(), "row {row}");
        if let Some(expected) = expected {
            assert_eq!(ratio.value(row).to_bits(), expected.to_bits(), "row {row}");
            compared += 1;
        }
        assert_eq!(large.value(row), amount.value(row) > 1000.0, "row {row}");
    }
    assert!(compared > 100, "only {compared} rows had a ratio");
    let no_amount = repo.join("entities.csv");
    std::fs::write(&no_amount, "user_id,event_timestamp\n1,2026-06-01T00:00:00Z\n").expect("csv");
    let failed = run(&repo, &["historical", "--entities", no_amount.to_str().expect("path"), "--features", "txn_ratios", "--output", out.to_str().expect("path")]).fails();
    assert!(failed.stderr.contains("no column `amount`"), "{}", failed.stderr);
}
