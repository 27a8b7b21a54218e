//! Materialization and online reads through the real binary.

mod util;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use almanac::FeatureStore;
use serde_json::{Value as Json, json};
use util::{almanac, demo_repo, run};

/// The reference dataset spans 2026-01-01 .. 2026-07-01.
const END: &str = "2026-07-01T00:00:00Z";

fn online_json(repo: &Path, entity: &str) -> Json {
    run(repo, &["online", "--feature-service", "fraud_model_v1", "--entity", entity, "--json"]).ok().json()
}

/// Every record of a view, sorted, as the store holds it.
fn dump(repo: &Path, view: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let store = FeatureStore::open(repo).expect("open");
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = store.online_store().expect("online").scan(view, None).expect("scan").into_iter().map(|e| (e.key, e.record)).collect();
    entries.sort();
    entries
}

fn watermark(repo: &Path, view: &str) -> Option<String> {
    let registry: Json = serde_json::from_str(&std::fs::read_to_string(repo.join(".almanac/registry.json")).expect("registry")).expect("json");
    registry["watermarks"][view].as_str().map(str::to_string)
}

#[test]
fn materialize_then_read_in_feasts_shape() {
    let (_dir, repo) = demo_repo();
    run(&repo, &["apply"]).ok();
    let reports = run(&repo, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", END, "--json"]).ok().json();
    let reports = reports.as_array().expect("array");
    assert_eq!(reports.len(), 3, "every online view, the aggregation view's states included");
    for report in reports {
        assert!(report["source_rows"].as_u64().expect("rows") > report["entities"].as_u64().expect("entities"));
        assert_eq!(report["written"], report["entities"]);
        // An aggregation view reports the size of the states it wrote.
        assert_eq!(report["view"] == "user_txn_windows", report["state_bytes"].as_u64().is_some_and(|b| b > 0), "{report}");
    }
    assert_eq!(watermark(&repo, "user_txn_stats").as_deref(), Some("2026-07-01T00:00:00Z"));

    // The data ends 2026-07-01, so "now" (later) is past every TTL: values
    // are withheld as OUTSIDE_MAX_AGE, which is exactly what the
    // point-in-time join at "now" would give (nulls).
    let body = online_json(&repo, "user_id=1,merchant_id=1");
    assert_eq!(body["metadata"]["feature_names"], json!(["user_id", "merchant_id", "txn_count_7d", "txn_amount_avg_7d", "merchant_fraud_rate_30d", "merchant_txn_count_1d"]));
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 6);
    assert_eq!(results[0], json!({"values": [1], "statuses": ["PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z"]}));
    for result in &results[2..] {
        assert_eq!(result["statuses"], json!(["OUTSIDE_MAX_AGE"]), "{result}");
        assert_eq!(result["values"], json!([null]));
        let ts = result["event_timestamps"][0].as_str().expect("ts");
        assert!(ts.starts_with("2026-0") && ts.ends_with('Z'), "{ts}");
    }

    // Unknown entities are NOT_FOUND, table output works, several entities.
    let missing = online_json(&repo, "user_id=999999999,merchant_id=1");
    assert_eq!(missing["results"][2]["statuses"], json!(["NOT_FOUND"]));
    let table = run(&repo, &["online", "--features", "user_txn_stats:txn_count_7d", "--entity", "user_id=1", "--entity", "user_id=2"]).ok();
    assert!(table.stdout.contains("txn_count_7d") && table.stdout.lines().count() >= 3, "{}", table.stdout);
}

#[test]
fn fresh_values_are_present_with_their_event_time() {
    // A repo whose data ends now (the demo's shifted dates): values are fresh.
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    almanac().args(["init", "--demo", "--scale", "0.005"]).arg(&repo).output().expect("init");
    run(&repo, &["apply"]).ok();
    run(&repo, &["materialize-incremental", "--end", "now"]).ok();
    let users = dump(&repo, "user_txn_stats");
    assert!(!users.is_empty());
    let parts = almanac::online_store::decode_key(&users[0].0).expect("key");
    let almanac::online_store::KeyPart::Int(user) = parts[0] else { panic!("int key") };
    let body = run(&repo, &["online", "--features", "user_txn_stats", "--entity", &format!("user_id={user}"), "--json"]).ok().json();
    let statuses: Vec<&str> = body["results"].as_array().expect("results")[1..].iter().map(|r| r["statuses"][0].as_str().expect("status")).collect();
    assert!(statuses.iter().all(|s| *s == "PRESENT" || *s == "NULL_VALUE" || *s == "OUTSIDE_MAX_AGE"), "{statuses:?}");
    let count = &body["results"][1];
    if count["statuses"][0] == "PRESENT" {
        assert!(count["values"][0].is_i64(), "int features are JSON numbers: {count}");
    }
    let avg = &body["results"][2];
    if avg["statuses"][0] == "PRESENT" {
        assert!(avg["values"][0].is_f64(), "{avg}");
    }
}

#[test]
fn an_older_window_after_a_newer_one_changes_nothing() {
    let (_dir, repo) = demo_repo();
    run(&repo, &["apply"]).ok();
    run(&repo, &["materialize", "--start", "2026-04-01T00:00:00Z", "--end", END, "--views", "user_txn_stats"]).ok();
    let after_newer = dump(&repo, "user_txn_stats");
    let reports = run(&repo, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", "2026-03-31T23:59:59Z", "--views", "user_txn_stats", "--json"]).ok().json();
    let report = &reports[0];
    assert!(report["kept_newer"].as_u64().expect("kept") > 0, "{report}");
    let after_older = dump(&repo, "user_txn_stats");
    // Every entity present after the newer window is unchanged; the older
    // window only adds entities the newer one did not have.
    for (key, record) in &after_newer {
        let now = after_older.iter().find(|(k, _)| k == key).expect("still there");
        assert_eq!(&now.1, record, "a newer record was replaced by an older one");
    }
    assert_eq!(after_older.len() as u64, after_newer.len() as u64 + report["written"].as_u64().expect("written"));
    // The watermark is the later of the two ends.
    assert_eq!(watermark(&repo, "user_txn_stats").as_deref(), Some("2026-07-01T00:00:00Z"));
    // The end state equals one full run.
    let (_dir2, clean) = demo_repo();
    run(&clean, &["apply"]).ok();
    run(&clean, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", END, "--views", "user_txn_stats"]).ok();
    assert_eq!(dump(&clean, "user_txn_stats"), after_older);
}

fn write_events(path: &Path, rows: &[(i64, &str, i64)]) {
    let mut text = String::from("user_id,event_timestamp,score\n");
    for (user, ts, score) in rows {
        text.push_str(&format!("{user},{ts},{score}\n"));
    }
    std::fs::write(path, text).expect("write csv");
}

#[test]
fn incremental_picks_up_new_files_and_respects_the_watermark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path();
    std::fs::create_dir_all(repo.join("data/events")).expect("dir");
    std::fs::write(repo.join("almanac.yaml"), "project: incremental\n").expect("config");
    std::fs::write(
        repo.join("defs.yaml"),
        "entities:\n  - name: user\n    join_keys: [user_id]\nsources:\n  - name: events\n    path: data/events\n    timestamp_field: event_timestamp\nfeature_views:\n  - name: scores\n    entities: [user]\n    source: events\n    schema:\n      - {name: score, dtype: int64}\n",
    )
    .expect("defs");
    write_events(&repo.join("data/events/part-1.csv"), &[(1, "2026-05-01T00:00:00Z", 10), (2, "2026-05-01T00:00:00Z", 20)]);
    run(repo, &["apply"]).ok();
    run(repo, &["materialize-incremental", "--end", "2026-05-02T00:00:00Z"]).ok();
    let score = |user: i64| run(repo, &["online", "--features", "scores:score", "--entity", &format!("user_id={user}"), "--json"]).ok().json()["results"][1]["values"][0].clone();
    assert_eq!((score(1), score(2)), (json!(10), json!(20)));

    // New rows: one after the watermark (picked up), one at or before it
    // (incremental processes (watermark, end] only, so it is not), and a
    // new user.
    write_events(&repo.join("data/events/part-2.csv"), &[(1, "2026-05-03T00:00:00Z", 11), (2, "2026-05-01T12:00:00Z", 99), (3, "2026-05-03T00:00:00Z", 30)]);
    let reports = run(repo, &["materialize-incremental", "--end", "2026-05-04T00:00:00Z", "--json"]).ok().json();
    assert_eq!(reports[0]["start"], json!("2026-05-02T00:00:00.000000001Z"));
    assert_eq!(reports[0]["source_rows"], json!(2));
    assert_eq!((score(1), score(2), score(3)), (json!(11), json!(20), json!(30)));
    assert_eq!(watermark(repo, "scores").as_deref(), Some("2026-05-04T00:00:00Z"));
    // Nothing new: a no-op that says so.
    let again = run(repo, &["materialize-incremental", "--end", "2026-05-04T00:00:00Z"]).ok();
    assert!(again.stdout.contains("already materialized"), "{}", again.stdout);
}

/// Start a throttled materialization of the user view in the background.
fn slow_materialize(repo: &Path) -> std::process::Child {
    almanac()
        .arg("--repo")
        .arg(repo)
        .args(["materialize", "--start", "2026-01-01T00:00:00Z", "--end", END, "--views", "user_txn_stats"])
        .env("ALMANAC_MATERIALIZE_CHUNK", "50")
        .env("ALMANAC_MATERIALIZE_THROTTLE_MS", "40")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

fn wait_for_records(repo: &Path, view: &str) {
    let started = Instant::now();
    while dump(repo, view).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "the materialization never wrote anything");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_materialization_reruns_to_the_same_store() {
    let (_dir, repo) = demo_repo();
    run(&repo, &["apply"]).ok();
    let mut child = slow_materialize(&repo);
    wait_for_records(&repo, "user_txn_stats");
    child.kill().expect("kill");
    child.wait().expect("wait");
    let partial = dump(&repo, "user_txn_stats");
    assert!(!partial.is_empty(), "killed after some chunks were written");
    assert_eq!(watermark(&repo, "user_txn_stats"), None, "the watermark must not move for an unfinished job");
    // Every record that made it is whole and readable.
    let store = FeatureStore::open(&repo).expect("open");
    let view = store.registry_state().expect("state").definitions.feature_view("user_txn_stats").cloned().expect("view");
    let codec = almanac::online_store::RecordCodec::new(&view.schema);
    for (_, record) in &partial {
        codec.decode(record).expect("every record decodes");
    }
    drop(store);

    run(&repo, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", END, "--views", "user_txn_stats"]).ok();
    let (_dir2, clean) = demo_repo();
    run(&clean, &["apply"]).ok();
    run(&clean, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", END, "--views", "user_txn_stats"]).ok();
    let rerun = dump(&repo, "user_txn_stats");
    assert!(rerun.len() > partial.len());
    assert_eq!(rerun, dump(&clean, "user_txn_stats"), "rerun after a kill equals a clean run");
    assert_eq!(watermark(&repo, "user_txn_stats").as_deref(), Some("2026-07-01T00:00:00Z"));
}

#[test]
fn two_materializations_of_one_view_do_not_interleave() {
    let (_dir, repo) = demo_repo();
    run(&repo, &["apply"]).ok();
    let mut first = slow_materialize(&repo);
    wait_for_records(&repo, "user_txn_stats");
    let second = run(&repo, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", END, "--views", "user_txn_stats"]).fails();
    assert!(second.stderr.contains("another materialization of view `user_txn_stats` is running"), "{}", second.stderr);
    // Other views are not blocked.
    run(&repo, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", END, "--views", "merchant_stats"]).ok();
    first.kill().expect("kill");
    first.wait().expect("wait");
}

#[test]
fn bad_materialize_and_online_requests_explain_themselves() {
    let (_dir, repo) = demo_repo();
    run(&repo, &["apply"]).ok();
    let backwards = run(&repo, &["materialize", "--start", END, "--end", "2026-01-01T00:00:00Z"]).fails();
    assert!(backwards.stderr.contains("is after --end"), "{}", backwards.stderr);
    let unknown = run(&repo, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", END, "--views", "user_txn_stat"]).fails();
    assert!(unknown.stderr.contains("did you mean `user_txn_stats`?"), "{}", unknown.stderr);
    let bad_time = run(&repo, &["materialize-incremental", "--end", "yesterday"]).fails();
    assert!(bad_time.stderr.contains("RFC 3339"), "{}", bad_time.stderr);

    let wrong_type = run(&repo, &["online", "--features", "user_txn_stats:txn_count_7d", "--entity", "user_id=abc"]).fails();
    assert!(wrong_type.stderr.contains("join key `user_id` is an int64, and `abc` is not an integer"), "{}", wrong_type.stderr);
    let unknown_feature = run(&repo, &["online", "--features", "user_txn_stats:txn_count", "--entity", "user_id=1"]).fails();
    assert!(unknown_feature.stderr.contains("did you mean `user_txn_stats:txn_count_7d`?"), "{}", unknown_feature.stderr);
    let unknown_key = run(&repo, &["online", "--features", "user_txn_stats", "--entity", "usr_id=1"]).fails();
    assert!(unknown_key.stderr.contains("did you mean `user_id`?"), "{}", unknown_key.stderr);
    let missing_key = run(&repo, &["online", "--features", "user_txn_stats", "--entity", "merchant_id=1"]).fails();
    assert!(missing_key.stderr.contains("needs join key `user_id`"), "{}", missing_key.stderr);
    let malformed = run(&repo, &["online", "--features", "user_txn_stats", "--entity", "user_id"]).fails();
    assert!(malformed.stderr.contains("is not KEY=VALUE"), "{}", malformed.stderr);

    // A view with `online: false` is refused for both.
    let defs = std::fs::read_to_string(repo.join("features.yaml")).expect("defs");
    let offline_only = defs.replacen("online: true", "online: false", 1);
    assert_ne!(defs, offline_only);
    std::fs::write(repo.join("features.yaml"), offline_only).expect("write");
    run(&repo, &["apply"]).ok();
    let state = FeatureStore::open(&repo).expect("open").registry_state().expect("state");
    let off = state.definitions.feature_views.iter().find(|v| !v.online).map(|v| v.name.clone()).expect("an offline view");
    let refused = run(&repo, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", END, "--views", &off]).fails();
    assert!(refused.stderr.contains("is not materialized online (`online: false`)"), "{}", refused.stderr);
    let key = if off == "user_txn_stats" { "user_id=1" } else { "merchant_id=1" };
    let refused = run(&repo, &["online", "--features", &off, "--entity", key]).fails();
    assert!(refused.stderr.contains("`online: false`"), "{}", refused.stderr);
}

#[test]
fn an_unreachable_redis_is_a_clear_error_not_a_hang() {
    let (_dir, repo) = demo_repo();
    std::fs::write(repo.join("almanac.yaml"), "project: fraud_demo\nonline: {type: redis, url: \"redis://127.0.0.1:1/0\"}\n").expect("config");
    run(&repo, &["apply"]).ok();
    let started = Instant::now();
    let out = run(&repo, &["online", "--features", "user_txn_stats", "--entity", "user_id=1"]).fails();
    assert!(out.stderr.contains("redis://127.0.0.1:1/0") && out.stderr.contains("check that Redis is running"), "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let bad_url = std::fs::write(repo.join("almanac.yaml"), "project: fraud_demo\nonline: {type: redis, url: \"localhost:6379\"}\n");
    bad_url.expect("config");
    let out = run(&repo, &["plan"]).fails();
    assert!(out.stderr.contains("almanac.yaml:2:") && out.stderr.contains("is not a Redis URL"), "{}", out.stderr);
}

/// Regression: eight materializations of different views and two applies
/// that finish together used to fail ("another `almanac apply` ...", the
/// registry lock was taken without waiting) or silently roll back each
/// other's watermarks (apply cloned the state before taking the lock).
/// Now every run succeeds and every watermark is the newest one written.
#[test]
fn concurrent_materializations_and_applies_all_succeed_and_keep_every_watermark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path();
    std::fs::write(repo.join("almanac.yaml"), "project: concurrent\n").expect("config");
    std::fs::create_dir_all(repo.join("data/events")).expect("mkdir");
    let mut csv = String::from("account,ts,balance\n");
    for i in 0..200 {
        csv.push_str(&format!("acc-{},2026-03-{:02}T00:00:00Z,{i}.5\n", i % 20, 1 + i % 28));
    }
    std::fs::write(repo.join("data/events/a.csv"), csv).expect("csv");
    let views: String = (0..8).map(|v| format!("  - name: v{v}\n    entities: [account]\n    source: events\n    ttl: 30d\n    online: true\n    description: view {v}\n    schema:\n      - {{name: balance, dtype: float64}}\n")).collect();
    let defs = |note: &str| format!("entities:\n  - name: account\n    join_keys: [account]\n    description: {note}\nsources:\n  - name: events\n    path: data/events\n    timestamp_field: ts\nfeature_views:\n{views}");
    std::fs::write(repo.join("defs.yaml"), defs("first")).expect("defs");
    run(repo, &["apply"]).ok();
    // The applies below have a real change to write (a description).
    std::fs::write(repo.join("defs.yaml"), defs("second")).expect("defs");
    let ends: Vec<String> = (0..8).map(|v| format!("2026-04-{:02}T00:00:00Z", 10 + v)).collect();
    let mut children = Vec::new();
    for (v, end) in ends.iter().enumerate() {
        let child = almanac().args(["--repo", repo.to_str().expect("path"), "materialize", "--start", "2026-01-01T00:00:00Z", "--end", end, "--views", &format!("v{v}")]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn materialize");
        children.push((format!("materialize v{v}"), child));
    }
    for a in 0..2 {
        let child = almanac().args(["--repo", repo.to_str().expect("path"), "apply"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn apply");
        children.push((format!("apply {a}"), child));
    }
    for (name, child) in children {
        let output = child.wait_with_output().expect("wait");
        assert!(output.status.success(), "{name} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let registry: Json = serde_json::from_str(&std::fs::read_to_string(repo.join(".almanac/registry.json")).expect("registry")).expect("json");
    assert_eq!(registry["version"], 2, "exactly one of the two applies had something to write");
    for (v, end) in ends.iter().enumerate() {
        let mark = registry["watermarks"][format!("v{v}")].as_str().unwrap_or_default();
        let parsed = chrono::DateTime::parse_from_rfc3339(mark).map(|t| t.to_utc());
        let expected = chrono::DateTime::parse_from_rfc3339(end).map(|t| t.to_utc());
        assert_eq!(parsed.ok(), expected.ok(), "v{v}: watermark {mark}, expected {end}");
    }
}

/// Regression: `materialize --end 9999-12-31T23:59:59Z` set the watermark to
/// 9999, and every later `materialize-incremental --end now` said "already
/// materialized up to <now>" (printing `--end`, not the watermark). A future
/// `--end` is refused unless asked for, the message shows the stored
/// watermark, and `--reset-watermark` is the way back.
#[test]
fn a_far_future_end_is_refused_and_a_watermark_can_be_reset() {
    let (_dir, repo) = demo_repo();
    run(&repo, &["apply"]).ok();
    let refused = run(&repo, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", "9999-12-31T23:59:59Z"]).fails();
    assert!(refused.stderr.contains("is in the future") && refused.stderr.contains("--allow-future-end"), "{}", refused.stderr);
    run(&repo, &["materialize", "--start", "2026-01-01T00:00:00Z", "--end", "9999-12-31T23:59:59Z", "--allow-future-end", "--views", "user_txn_stats"]).ok();
    let skipped = run(&repo, &["materialize-incremental", "--end", "now", "--views", "user_txn_stats"]).ok();
    assert!(skipped.stdout.contains("already materialized up to 9999-12-31T23:59:59Z (the view's watermark)"), "{}", skipped.stdout);
    let reset = run(&repo, &["materialize", "--reset-watermark", "--views", "user_txn_stats"]).ok();
    assert!(reset.stdout.contains("watermark reset (was 9999-12-31T23:59:59Z)"), "{}", reset.stdout);
    let again = run(&repo, &["materialize-incremental", "--end", "now", "--views", "user_txn_stats", "--json"]).ok().json();
    assert_eq!(again[0]["up_to_date"], json!(false), "{again}");
}
