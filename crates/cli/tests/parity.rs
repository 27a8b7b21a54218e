//! `almanac parity` and `almanac monitor` with real faults injected: rows
//! appended without materializing, values written straight into the online
//! store, shifted and nulled partitions. Nothing here sets a result by hand.

mod util;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use almanac::FeatureStore;
use almanac::online_store::{Entry, KeyPart, RecordCodec, encode_key};
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use parquet::arrow::ArrowWriter;
use serde_json::Value as Json;
use util::{run, unit};

const DAY: i64 = 86_400_000_000;
/// 2026-05-01T00:00:00Z
const T0: i64 = 1_777_593_600_000_000;
const AT: &str = "2026-05-31T00:00:00Z";
const AT_MICROS: i64 = T0 + 30 * DAY;
const USERS: i64 = 200;

/// Rows for users `0..USERS`, event times spread over [from, to).
#[allow(clippy::too_many_arguments)]
fn write_part(repo: &Path, name: &str, rows: i64, salt: i64, from: i64, to: i64, score: impl Fn(i64) -> Option<f64>, count: impl Fn(i64) -> i64) {
    let ts: Vec<i64> = (0..rows).map(|i| from + ((to - from) as f64 * unit(i, salt + 1)) as i64).collect();
    let batch = RecordBatch::try_from_iter(vec![
        ("user_id", Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i % USERS))) as ArrayRef),
        ("event_timestamp", Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC"))),
        ("score", Arc::new(Float64Array::from((0..rows).map(&score).collect::<Vec<_>>()))),
        ("count", Arc::new(Int64Array::from_iter_values((0..rows).map(count)))),
    ])
    .expect("batch");
    let mut writer = ArrowWriter::try_new(File::create(repo.join("data/events").join(name)).expect("file"), batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

fn repo(dir: &Path, online: &str) {
    std::fs::create_dir_all(dir.join("data/events")).expect("dir");
    std::fs::write(dir.join("almanac.yaml"), format!("project: parity_{}\n{online}\n", std::process::id())).expect("config");
    std::fs::write(
        dir.join("defs.yaml"),
        "entities:\n  - name: user\n    join_keys: [user_id]\nsources:\n  - name: events\n    path: data/events\n    timestamp_field: event_timestamp\nfeature_views:\n  - name: stats\n    entities: [user]\n    source: events\n    ttl: 30d\n    schema:\n      - {name: score, dtype: float64}\n      - {name: count, dtype: int64}\n",
    )
    .expect("defs");
    // Four weeks of ordinary data, the last row per user within the last week.
    write_part(dir, "part-0.parquet", 6000, 0, T0 + 2 * DAY, AT_MICROS, |i| Some(unit(i, 7)), |i| i % 10);
    run(dir, &["apply"]).ok();
}

fn materialize(dir: &Path) {
    run(dir, &["materialize", "--start", "2026-04-01T00:00:00Z", "--end", AT]).ok();
}

fn parity(dir: &Path) -> (i32, Json) {
    let out = run(dir, &["parity", "--at", AT, "--sample", "1000", "--json"]);
    assert!(out.code == 0 || out.code == 1, "parity errored: {}", out.stderr);
    (out.code, out.json())
}

fn clean_after_materialization(online: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    repo(dir.path(), online);
    materialize(dir.path());
    let (code, report) = parity(dir.path());
    let view = &report["views"][0];
    assert_eq!(code, 0, "{report}");
    assert_eq!(view["sampled_from_online"].as_u64().unwrap_or(0) + view["sampled_from_offline"].as_u64().unwrap_or(0), USERS as u64, "every entity checked");
    for feature in view["features"].as_array().expect("features") {
        assert_eq!(feature["checked"], USERS);
        assert_eq!(feature["equal"], USERS, "{feature}");
    }
    let text = run(dir.path(), &["parity", "--at", AT]).ok();
    assert!(text.stdout.contains("All sampled values agree."), "{}", text.stdout);
}

#[test]
fn parity_is_clean_after_materialization_embedded() {
    clean_after_materialization("");
}

#[test]
fn parity_is_clean_after_materialization_redis() {
    let url = almanac_online_redis::harness::ensure_redis(6379, 0).expect("a Redis server is required");
    clean_after_materialization(&format!("online: {{type: redis, url: \"{url}\"}}"));
}

#[test]
fn parity_is_clean_after_materialization_redis_cluster() {
    let cluster = almanac_online_redis::harness::TestCluster::start(3).expect("a Redis Cluster is required");
    clean_after_materialization(&format!("online: {{type: redis-cluster, nodes: [{}]}}", cluster.nodes.join(", ")));
}

#[test]
fn rows_appended_without_materializing_are_flagged_as_lag() {
    let dir = tempfile::tempdir().expect("tempdir");
    repo(dir.path(), "");
    materialize(dir.path());
    // Ten users get a newer row after the watermark (AT), nobody else does.
    write_part(dir.path(), "part-1.parquet", 10, 99, AT_MICROS + DAY / 24, AT_MICROS + DAY / 12, |i| Some(100.0 + i as f64), |i| 1000 + i);
    let later = "2026-05-31T12:00:00Z";
    let out = run(dir.path(), &["parity", "--at", later, "--json"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let report = out.json();
    for feature in report["views"][0]["features"].as_array().expect("features") {
        assert_eq!(feature["different"], 10, "exactly the ten appended users: {feature}");
        assert_eq!(feature["equal"], USERS - 10);
        for example in feature["examples"].as_array().expect("examples") {
            assert!(example["cause"].as_str().expect("cause").starts_with("materialization lag"), "{example}");
            let user: i64 = example["entity"][0].as_str().expect("entity").parse().expect("int");
            assert!((0..10).contains(&user), "{example}");
        }
    }
    // Catching up clears it.
    run(dir.path(), &["materialize-incremental", "--end", later]).ok();
    assert_eq!(run(dir.path(), &["parity", "--at", later]).code, 0);
}

fn record(codec: &RecordCodec, ts: i64, score: f64, count: i64) -> Vec<u8> {
    let mut out = Vec::new();
    codec.encode_values(&[almanac::core::Value::Float64(score), almanac::core::Value::Int64(count)], ts, None, &mut out).expect("encode");
    out
}

#[test]
fn values_written_straight_into_the_store_are_value_differences() {
    let dir = tempfile::tempdir().expect("tempdir");
    repo(dir.path(), "");
    materialize(dir.path());
    {
        let store = FeatureStore::open(dir.path()).expect("open");
        let online = store.online_store().expect("online");
        let view = store.registry_state().expect("state").definitions.feature_view("stats").cloned().expect("view");
        let codec = RecordCodec::new(&view.schema);
        let key = |user: i64| {
            let mut k = Vec::new();
            encode_key(&[KeyPart::Int(user)], &mut k);
            k
        };
        // User 5: the same event time, another value (a second code path).
        let stored = online.read(&[almanac::online_store::Lookup { view: "stats", key: &key(5) }]).expect("read")[0].clone().expect("record");
        let header = almanac::online_store::RecordHeader::parse(&stored).expect("header");
        online.write("stats", &[Entry { key: key(5), record: record(&codec, header.event_ts, -1.0, -1) }]).expect("write");
        // User 6: an older value, written past keep-if-newer by deleting the view
        // and restoring everything else (a test-only path into the store).
        let all = online.scan("stats", None).expect("scan");
        online.delete_view("stats").expect("delete");
        let restored: Vec<Entry> = all.into_iter().map(|e| if e.key == key(6) { Entry { key: key(6), record: record(&codec, T0 + 3 * DAY, -2.0, -2) } } else { e }).collect();
        online.write("stats", &restored).expect("restore");
    }
    let (code, report) = parity(dir.path());
    assert_eq!(code, 1, "{report}");
    let count = &report["views"][0]["features"][1];
    assert_eq!(count["different"], 2, "{count}");
    let causes: Vec<(&str, &str)> = count["examples"].as_array().expect("examples").iter().map(|e| (e["entity"][0].as_str().expect("entity"), e["cause"].as_str().expect("cause"))).collect();
    assert!(causes.contains(&("5", "same event time, different value: a second code path computes this feature (online writes not produced by materialization from this source)")), "{causes:?}");
    assert!(causes.iter().any(|(e, c)| *e == "6" && c.contains("older than the offline winner")), "{causes:?}");
}

fn monitor(dir: &Path, extra: &[&str]) -> (i32, Json) {
    let mut args = vec!["monitor", "--at", AT, "--window", "7d", "--reference-window", "21d", "--json"];
    args.extend_from_slice(extra);
    let out = run(dir, &args);
    assert!(out.code == 0 || out.code == 1, "monitor errored: {}", out.stderr);
    (out.code, out.json())
}

#[test]
fn monitor_is_quiet_on_unchanged_data_and_catches_drift() {
    let dir = tempfile::tempdir().expect("tempdir");
    repo(dir.path(), "");
    materialize(dir.path());
    // A new partition with the same distribution: no false alarm.
    write_part(dir.path(), "part-1.parquet", 3000, 5, AT_MICROS - 7 * DAY, AT_MICROS, |i| Some(unit(i, 70)), |i| (i + 3) % 10);
    let (code, report) = monitor(dir.path(), &[]);
    assert_eq!(code, 0, "{report}");
    let score = &report["views"][0]["features"][0];
    assert!(score["psi"].as_f64().expect("psi") < 0.1, "{score}");
    assert!(score["ks"].as_f64().expect("ks") < 0.1, "{score}");
    assert!(report["views"][0]["staleness_online_seconds"].as_f64().expect("staleness") < 7.0 * 86_400.0);

    // A partition whose scores are shifted: PSI over the threshold.
    write_part(dir.path(), "part-2.parquet", 6000, 6, AT_MICROS - 7 * DAY, AT_MICROS, |i| Some(2.0 + unit(i, 71)), |i| i % 10);
    let (code, report) = monitor(dir.path(), &[]);
    assert_eq!(code, 1, "{report}");
    let features = &report["views"][0]["features"];
    assert!(features[0]["psi"].as_f64().expect("psi") > 0.2 && features[0]["alerts"][0].as_str().expect("alert").starts_with("drift: PSI"), "{}", features[0]);
    assert_eq!(features[1]["alerts"], serde_json::json!([]), "count did not drift: {}", features[1]);
}

/// Regression: monitoring windows with no rows at all (an empty source, or
/// windows outside the data) printed "No alerts", as if all were well.
#[test]
fn monitoring_windows_without_rows_say_so_with_an_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    repo(dir.path(), "");
    materialize(dir.path());
    let out = run(dir.path(), &["monitor", "--at", "2020-01-01T00:00:00Z", "--json"]);
    assert_eq!(out.code, 1, "an empty comparison is an alert: {}", out.stdout);
    let report = out.json();
    assert!(report["views"][0]["alerts"].as_array().expect("alerts").iter().any(|a| a.as_str().is_some_and(|a| a.starts_with("no rows in the reference or the current window"))), "{report}");
}

#[test]
fn a_nulled_partition_is_a_null_rate_alert_and_staleness_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    repo(dir.path(), "");
    materialize(dir.path());
    write_part(dir.path(), "part-1.parquet", 6000, 8, AT_MICROS - 7 * DAY, AT_MICROS, |_| None, |i| i % 10);
    let (code, report) = monitor(dir.path(), &[]);
    assert_eq!(code, 1, "{report}");
    let score = &report["views"][0]["features"][0];
    assert!(score["null_rate_current"].as_f64().expect("rate") > 0.5 && score["null_rate_reference"].as_f64().expect("rate") == 0.0, "{score}");
    assert!(score["alerts"][0].as_str().expect("alert").starts_with("null spike"), "{score}");

    // Thirty-five days later nothing new was materialized: stale (TTL 30d).
    let (code, report) = {
        let out = run(dir.path(), &["monitor", "--at", "2026-07-05T00:00:00Z", "--json"]);
        (out.code, out.json())
    };
    assert_eq!(code, 1);
    assert!(report["views"][0]["alerts"][0].as_str().expect("alert").starts_with("stale:"), "{report}");
}

#[test]
fn the_html_report_renders_its_charts_in_chromium() {
    let dir = tempfile::tempdir().expect("tempdir");
    repo(dir.path(), "");
    materialize(dir.path());
    write_part(dir.path(), "part-1.parquet", 6000, 6, AT_MICROS - 7 * DAY, AT_MICROS, |i| Some(2.0 + unit(i, 71)), |i| i % 10);
    let page = dir.path().join("report.html");
    let out = run(dir.path(), &["monitor", "--at", AT, "--html", page.to_str().expect("path")]);
    assert_eq!(out.code, 1, "drift alert expected: {}{}", out.stdout, out.stderr);
    let html = std::fs::read_to_string(&page).expect("html");
    assert!(!html.contains("src=") && !html.contains("href=") && !html.contains("<script"), "self-contained: no external resources");
    let chromium = ["chromium", "chromium-browser", "google-chrome"].into_iter().find(|c| std::process::Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success())).expect("Chromium is required for this test (Debian: apt-get install chromium); scripts/test.sh installs it");
    let profile = tempfile::tempdir().expect("profile");
    let dom = std::process::Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let rendered = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.status.success(), "chromium failed: {}", String::from_utf8_lossy(&dom.stderr));
    // Two features, each a chart with reference and current bars, and the alert.
    assert_eq!(rendered.matches("<svg").count(), 2, "{rendered}");
    assert!(rendered.matches(r#"<rect class="ref""#).count() >= 10 && rendered.matches(r#"<rect class="cur""#).count() >= 10);
    assert!(rendered.contains("drift: PSI"));
}

#[test]
fn values_served_online_are_monitored_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    repo(dir.path(), "");
    materialize(dir.path());
    let served = |dir: &Path| {
        let out = run(dir, &["monitor", "--at", AT, "--current", "online", "--reference-window", "28d", "--json"]);
        assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
        (out.code, out.json())
    };
    // Freshly materialized: what is served looks like the history.
    let (code, report) = served(dir.path());
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["current_window"], "the values the online store serves");
    // Online-only writes (as `to: online` pushes are) with shifted scores.
    {
        let store = FeatureStore::open(dir.path()).expect("open");
        let view = store.registry_state().expect("state").definitions.feature_view("stats").cloned().expect("view");
        let codec = RecordCodec::new(&view.schema);
        let entries: Vec<Entry> = (0..USERS)
            .map(|user| {
                let mut key = Vec::new();
                encode_key(&[KeyPart::Int(user)], &mut key);
                Entry { key, record: record(&codec, AT_MICROS - 60_000_000, 5.0 + unit(user, 3), user % 10) }
            })
            .collect();
        store.online_store().expect("online").write("stats", &entries).expect("write");
    }
    let (code, report) = served(dir.path());
    assert_eq!(code, 1, "{report}");
    let score = &report["views"][0]["features"][0];
    assert!(score["alerts"][0].as_str().expect("alert").starts_with("drift: PSI"), "{score}");
    // The offline history never saw them: the offline monitor stays quiet.
    let (code, report) = monitor(dir.path(), &[]);
    assert_eq!(code, 0, "{report}");
}

/// Aggregation views are monitored through their features at each event of
/// the windows (what a model scoring every event saw): quiet on unchanged
/// data, a drift alert when the events' values shift, and the count of
/// events per day as its own feature.
#[test]
fn aggregation_views_are_monitored_at_each_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    repo(dir.path(), "");
    let defs = std::fs::read_to_string(dir.path().join("defs.yaml")).expect("defs");
    let defs = format!("{defs}  - name: windows\n    entities: [user]\n    source: events\n    aggregations:\n      - {{column: score, function: mean, window: 3d}}\n      - {{function: count, window: 1d}}\n");
    std::fs::write(dir.path().join("defs.yaml"), defs).expect("defs");
    run(dir.path(), &["apply"]).ok();
    materialize(dir.path());
    let (code, report) = monitor(dir.path(), &["--views", "windows"]);
    let view = &report["views"][0];
    assert_eq!(view["view"], "windows");
    assert!(view["current_rows"].as_u64().expect("rows") > 1000 && view["reference_rows"].as_u64().expect("rows") > 3000, "{view}");
    let mean = &view["features"][0];
    assert_eq!(mean["feature"], "score_mean_3d");
    assert!(mean["psi"].as_f64().expect("psi") < 0.2, "unchanged data: {mean}");
    assert_eq!(code, 0, "{report}");

    // Shifted scores in the last week: the 3-day mean drifts.
    write_part(dir.path(), "part-2.parquet", 6000, 6, AT_MICROS - 7 * DAY, AT_MICROS, |i| Some(2.0 + unit(i, 71)), |i| i % 10);
    let (code, report) = monitor(dir.path(), &["--views", "windows"]);
    assert_eq!(code, 1, "{report}");
    let mean = &report["views"][0]["features"][0];
    assert!(mean["psi"].as_f64().expect("psi") > 0.2 && mean["alerts"][0].as_str().expect("alert").starts_with("drift: PSI"), "{mean}");
    // Online values exist only at the request instant: that sample is refused by name.
    let out = run(dir.path(), &["monitor", "--at", AT, "--current", "online", "--views", "windows", "--json"]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains("`windows` is an aggregation view"), "{}", out.stderr);
}
