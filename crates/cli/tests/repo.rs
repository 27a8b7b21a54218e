//! `init`, `plan`, `apply` and discovery through the real binary.

mod util;

use util::{almanac, demo_repo, run};

#[test]
fn plan_writes_nothing_apply_applies_and_reapply_is_a_noop() {
    let (_dir, repo) = demo_repo();
    let plan = run(&repo, &["plan"]).ok();
    assert!(plan.stdout.contains("+ feature_view user_txn_stats"), "{}", plan.stdout);
    assert!(plan.stdout.contains("11 to add, 0 to change, 0 to remove."), "{}", plan.stdout);
    assert!(!repo.join(".almanac/registry.json").exists(), "plan must not write the registry");

    let apply = run(&repo, &["apply"]).ok();
    assert!(apply.stdout.contains("Applied: the registry is at version 1."), "{}", apply.stdout);
    let again = run(&repo, &["apply"]).ok();
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    let json = run(&repo, &["apply", "--json"]).ok().json();
    assert_eq!(json["version"], 1);
    assert_eq!(json["plan"]["changes"].as_array().map(Vec::len), Some(0));

    // Change a TTL and drop the service: the plan names the field and the removal.
    let path = repo.join("features.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    let text = text.replace("ttl: 3d", "ttl: 2d");
    let text = &text[..text.find("feature_services:").expect("services")];
    std::fs::write(&path, text).expect("write");
    let plan = run(&repo, &["plan", "--json"]).ok().json();
    let changes = plan["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 2, "{plan}");
    assert_eq!(changes[0]["action"], "change");
    assert_eq!(changes[0]["fields"][0]["field"], "ttl");
    assert_eq!(changes[0]["fields"][0]["old"], "3d");
    assert_eq!(changes[0]["fields"][0]["new"], "2d");
    assert_eq!(changes[1]["action"], "remove");
    assert_eq!(changes[1]["kind"], "feature_service");
    let apply = run(&repo, &["apply"]).ok();
    assert!(apply.stdout.contains("ttl: 3d → 2d"), "{}", apply.stdout);
    let described = run(&repo, &["features", "describe", "user_txn_stats", "--json"]).ok().json();
    assert_eq!(described[0]["meta"]["version"], 2);
}

#[test]
fn discovery_lists_describes_and_searches() {
    let (_dir, repo) = demo_repo();
    run(&repo, &["apply"]).ok();

    let all = run(&repo, &["features", "list", "--json"]).ok().json();
    assert_eq!(all.as_array().map(Vec::len), Some(25), "2 entities, 3 sources, 1 request source, 3 views (one of aggregations), 1 on-demand view, 14 features, 1 service");
    let risk = run(&repo, &["features", "list", "--owner", "risk-team", "--kind", "feature", "--json"]).ok().json();
    let names: Vec<&str> = risk.as_array().expect("array").iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["merchant_stats:merchant_fraud_rate_30d", "merchant_stats:merchant_txn_count_1d"]);
    let tagged = run(&repo, &["features", "list", "--tag", "pii=false", "--kind", "feature_view", "--json"]).ok().json();
    assert_eq!(tagged[0]["name"], "user_txn_stats");
    assert_eq!(tagged.as_array().map(Vec::len), Some(1));
    let table = run(&repo, &["features", "list"]).ok();
    assert!(table.stdout.contains("KIND") && table.stdout.contains("user_txn_stats:txn_count_7d"), "{}", table.stdout);

    let service = run(&repo, &["features", "describe", "fraud_model_v1", "--json"]).ok().json();
    let upstream: Vec<&str> = service[0]["upstream"].as_array().expect("upstream").iter().filter_map(|v| v.as_str()).collect();
    assert!(upstream.contains(&"path:data/user_txn_stats.parquet"), "{upstream:?}");
    assert!(upstream.contains(&"entity:merchant"), "{upstream:?}");
    assert_eq!(service[0]["resolved_features"].as_array().map(Vec::len), Some(4));
    let source = run(&repo, &["features", "describe", "user_txn_source", "--json"]).ok().json();
    assert_eq!(source[0]["downstream"], serde_json::json!(["feature_service:fraud_model_v1", "feature_view:user_txn_stats", "on_demand_feature_view:txn_ratios"]));
    let view = run(&repo, &["features", "describe", "user_txn_stats", "--json"]).ok().json();
    assert_eq!(view[0]["join_keys"], serde_json::json!([{"name": "user_id", "dtype": "int64"}]), "key dtype resolved from the file");
    let feature = run(&repo, &["features", "describe", "merchant_stats:merchant_txn_count_1d"]).ok();
    assert!(feature.stdout.contains("feature_service:fraud_model_v1"), "{}", feature.stdout);
    let text = run(&repo, &["features", "describe", "user_txn_stats"]).ok();
    assert!(text.stdout.contains("ttl:") && text.stdout.contains("3d") && text.stdout.contains("txn_count_7d"), "{}", text.stdout);

    let missing = run(&repo, &["features", "describe", "user_txn_stat"]).fails();
    assert!(missing.stderr.contains("did you mean `user_txn_stats`?"), "{}", missing.stderr);

    let hits = run(&repo, &["features", "search", "fraud", "--json"]).ok().json();
    assert_eq!(hits[0]["name"], "fraud_model_v1", "a name prefix match ranks first: {hits}");
    let ranked: Vec<&str> = hits.as_array().expect("hits").iter().filter_map(|h| h["name"].as_str()).collect();
    assert!(ranked.contains(&"merchant_stats:merchant_fraud_rate_30d"), "{ranked:?}");
    let two_words = run(&repo, &["features", "search", "amount", "days", "--json"]).ok().json();
    assert!(two_words.as_array().expect("hits").iter().all(|h| h["kind"] == "feature"), "{two_words}");
    let none = run(&repo, &["features", "search", "zebra"]).ok();
    assert!(none.stdout.contains("No matches"), "{}", none.stdout);
}

#[test]
fn mistakes_exit_1_with_locations_and_no_panic() {
    let (_dir, repo) = demo_repo();
    let path = repo.join("features.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    let broken = text
        .replace("timestamp_field: event_timestamp\n    created_timestamp_column: created_at\n    description: Per-user", "timestamp_feild: event_timestamp\n    created_timestamp_column: created_at\n    description: Per-user")
        .replace("entities: [merchant]", "entities: [merchnt]");
    std::fs::write(&path, broken).expect("write");
    let out = run(&repo, &["plan"]).fails();
    assert!(out.stderr.contains("features.yaml:14:5"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `timestamp_field`?"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `merchant`?"), "{}", out.stderr);
    assert!(out.stderr.contains("2 errors in the definitions"), "{}", out.stderr);
    run(&repo, &["apply"]).fails();
    assert!(!repo.join(".almanac/registry.json").exists(), "a failed apply writes nothing");
}

#[test]
fn definitions_are_checked_against_the_files_at_apply() {
    let (_dir, repo) = demo_repo();
    let path = repo.join("features.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    let broken = text
        .replace("{name: merchant_fraud_rate_30d, dtype: float64", "{name: merchant_fraud_rate_30d, dtype: int64")
        .replace("{name: merchant_txn_count_1d,", "{name: merchant_txn_count_24h,")
        .replace("data/merchant_stats.parquet", "data/missing.parquet");
    std::fs::write(&path, &broken).expect("write");
    let out = run(&repo, &["apply"]).fails();
    assert!(out.stderr.contains("`data/missing.parquet` does not exist"), "{}", out.stderr);
    std::fs::write(&path, broken.replace("data/missing.parquet", "data/merchant_stats.parquet")).expect("write");
    let out = run(&repo, &["apply"]).fails();
    assert!(out.stderr.contains("declared int64 but source `merchant_source` stores it as float64"), "{}", out.stderr);
    assert!(out.stderr.contains("declare `dtype: float64`"), "{}", out.stderr);
    assert!(out.stderr.contains("`merchant_txn_count_24h` of feature view `merchant_stats` is not a column"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `merchant_txn_count_1d`?"), "{}", out.stderr);
}

#[test]
fn concurrent_applies_never_both_win() {
    for _ in 0..4 {
        let (_dir, repo) = demo_repo();
        let spawn = || almanac().arg("--repo").arg(&repo).arg("apply").output().expect("apply");
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(spawn);
            let b = s.spawn(spawn);
            (a.join().expect("a"), b.join().expect("b"))
        });
        let outcomes: Vec<util::Run> = vec![a.into(), b.into()];
        let winners = outcomes.iter().filter(|r| r.stdout.contains("Applied")).count();
        assert_eq!(winners, 1, "exactly one apply wins: {:?}", outcomes.iter().map(|r| (&r.stdout, &r.stderr)).collect::<Vec<_>>());
        for loser in outcomes.iter().filter(|r| !r.stdout.contains("Applied")) {
            let clear = loser.stdout.contains("No changes") || loser.stderr.contains("another `almanac apply`") || loser.stderr.contains("registry changed while");
            assert!(clear, "the loser says why: {} {}", loser.stdout, loser.stderr);
        }
        let state = run(&repo, &["features", "describe", "user", "--json"]).ok().json();
        assert_eq!(state[0]["meta"]["version"], 1);
    }
}

#[test]
fn init_template_and_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("fresh");
    let out: util::Run = almanac().arg("init").arg(&repo).output().expect("init").into();
    out.ok();
    let template = std::fs::read_to_string(repo.join("features.yaml")).expect("template");
    assert!(template.contains("# feature_views:"), "a commented template");
    let plan = run(&repo, &["plan"]).ok();
    assert!(plan.stdout.contains("No changes"), "an empty template applies cleanly: {}", plan.stdout);
    let again: util::Run = almanac().arg("init").arg(&repo).output().expect("init").into();
    assert!(again.fails().stderr.contains("already holds an Almanac repo"));
    let nowhere = run(dir.path(), &["plan"]).fails();
    assert!(nowhere.stderr.contains("is not an Almanac repo"), "{}", nowhere.stderr);
    let bad_scale: util::Run = almanac().args(["init", "--demo", "--scale", "0"]).arg(dir.path().join("x")).output().expect("init").into();
    assert!(bad_scale.fails().stderr.contains("scale must be a positive number"));
}

#[test]
fn demo_runs_end_to_end_on_embedded_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("demo");
    let out: util::Run = almanac().args(["demo", "--scale", "0.005"]).arg(&repo).output().expect("demo").into();
    let out = out.ok();
    assert!(out.stdout.contains("[1/7] init"), "{}", out.stdout);
    assert!(out.stdout.contains("[2/7] apply"), "{}", out.stdout);
    assert!(out.stdout.contains("11 to add"), "{}", out.stdout);
    assert!(out.stdout.contains("count_1h over [T − 1h, T)"), "{}", out.stdout);
    assert!(out.stdout.contains("[3/7] historical"), "{}", out.stdout);
    assert!(out.stdout.contains("Leakage avoided, e.g. label"), "{}", out.stdout);
    assert!(out.stdout.contains("[4/7] materialize"), "{}", out.stdout);
    assert!(out.stdout.contains("[5/7] online: fraud_model_v1 for 3 entities"), "{}", out.stdout);
    assert!(out.stdout.contains("PRESENT") || out.stdout.lines().any(|l| l.contains('.')), "{}", out.stdout);
    assert!(out.stdout.contains("[6/7] parity") && out.stdout.contains(", 0 differ"), "{}", out.stdout);
    assert!(out.stdout.contains("[7/7] monitor"), "{}", out.stdout);
    assert!(repo.join(".almanac/registry.json").exists());
    assert!(repo.join("training_set.parquet").exists());
    assert!(repo.join("monitor.html").exists());
}

#[test]
fn a_killed_apply_leaves_a_readable_registry() {
    let (_dir, repo) = demo_repo();
    run(&repo, &["apply"]).ok();
    let path = repo.join("features.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.replace("ttl: 3d", "ttl: 2d")).expect("write");
    // Kill applies at staggered moments: whenever the kill lands, the
    // registry must read as the old version or the new one, never torn.
    for attempt in 0..25u64 {
        let mut child = almanac().arg("--repo").arg(&repo).arg("apply").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("spawn");
        std::thread::sleep(std::time::Duration::from_micros(attempt * 400));
        let _ = child.kill();
        let _ = child.wait();
        let view = run(&repo, &["features", "describe", "user_txn_stats", "--json"]).ok().json();
        let ttl = view[0]["definition"]["ttl"].as_str().unwrap_or_default().to_string();
        assert!(ttl == "3d" || ttl == "2d", "attempt {attempt}: {view}");
    }
    run(&repo, &["apply"]).ok();
    let view = run(&repo, &["features", "describe", "user_txn_stats", "--json"]).ok().json();
    assert_eq!(view[0]["definition"]["ttl"], "2d", "a rerun completes the change");
}

/// Typed flags: values clap knows (`--current`, `--kind`, `--log-format`)
/// are checked before anything runs, `--reference-window` and
/// `--reference-file` conflict as the README says, and `--views ""` is a
/// usage error rather than "every view".
#[test]
fn typed_flags_reject_bad_values_conflicts_and_empty_view_lists() {
    let (_dir, repo) = demo_repo();
    let usage_error = |args: &[&str], needle: &str| {
        let result = run(&repo, args);
        assert_eq!(result.code, 2, "{args:?} is a usage error: {}", result.stderr);
        assert!(result.stderr.contains(needle), "{args:?}: expected {needle:?} in {}", result.stderr);
    };
    usage_error(&["monitor", "--reference-window", "7d", "--reference-file", "ref.parquet"], "cannot be used with");
    usage_error(&["monitor", "--current", "sideways"], "possible values: offline, online");
    usage_error(&["features", "list", "--kind", "views"], "feature_view");
    usage_error(&["serve", "--log-format", "xml"], "possible values: text, json");
    usage_error(&["materialize", "--start", "2026-01-01T00:00:00Z", "--end", "2026-02-01T00:00:00Z", "--views", " , "], "at least one view name");
}
