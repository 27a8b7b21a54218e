//! Loading definition files: every kind of mistake is reported with its
//! location and a fix, all of them in one run, and nothing panics.

use std::path::Path;

use almanac_core::{AggFunction, DType, Definitions, Diagnostic, FeatureView, FileFormat, ObjectKind};
use almanac_registry::catalog::{self, ListFilter};
use almanac_registry::{Plan, RegistryError, RegistryState, load_config, load_definitions};
use proptest::prelude::*;
use serde_json::json;

fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("almanac.yaml"), "project: test\n").expect("config");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

fn diagnostics(files: &[(&str, &str)]) -> Vec<Diagnostic> {
    let dir = repo(files);
    load_definitions(dir.path()).expect("load").parsed.diagnostics.0
}

/// The one diagnostic whose message contains `needle`, with its `file:line:col`.
fn find<'a>(all: &'a [Diagnostic], needle: &str) -> &'a Diagnostic {
    let matching: Vec<&Diagnostic> = all.iter().filter(|d| d.message.contains(needle)).collect();
    assert_eq!(matching.len(), 1, "expected one diagnostic containing {needle:?}, got {all:#?}");
    matching[0]
}

const GOOD: &str = r#"
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: txn
    path: data/txn.parquet
    timestamp_field: event_timestamp
    created_timestamp_column: created_at
    field_mapping: {uid: user_id}
feature_views:
  - name: user_stats
    entities: [user]
    source: txn
    ttl: 3d
    owner: team
    tags: {domain: payments}
    schema:
      - {name: count_7d, dtype: int64}
      - {name: embedding, dtype: list<float32>}
  - name: global_stats
    source: txn
    online: false
    schema:
      - {name: total, dtype: float64}
feature_services:
  - name: model_v1
    features: [user_stats:count_7d, global_stats]
"#;

#[test]
fn a_valid_repo_parses_into_plain_definitions() {
    let dir = repo(&[("features.yaml", GOOD)]);
    let loaded = load_definitions(dir.path()).expect("load");
    assert!(loaded.parsed.diagnostics.is_empty(), "{}", loaded.parsed.diagnostics);
    let defs = loaded.parsed.definitions;
    let view = defs.feature_view("user_stats").expect("view");
    assert_eq!(view.ttl.map(|t| t.seconds()), Some(3 * 86_400));
    assert!(view.online, "online defaults to true");
    assert_eq!(view.schema[1].dtype, DType::List(Box::new(DType::Float32)));
    assert_eq!(view.governance.tags["domain"], "payments");
    let global = defs.feature_view("global_stats").expect("global view");
    assert!(global.entities.is_empty() && !global.online);
    let source = defs.source("txn").expect("source");
    assert_eq!(source.file_column("user_id"), "uid");
    assert_eq!(source.format, None::<FileFormat>);
    let service = defs.feature_service("model_v1").expect("service");
    assert_eq!(defs.resolve_service(service).len(), 2);
}

#[test]
fn syntax_errors_point_at_the_line() {
    let all = diagnostics(&[("bad.yaml", "entities:\n  - name: user\n    join_keys: [user_id\n")]);
    let d = find(&all, "YAML syntax error");
    assert_eq!(d.location.file, Path::new("bad.yaml"));
    assert!(d.location.line >= 3, "{d:?}");
}

#[test]
fn unknown_keys_get_a_did_you_mean() {
    let text = GOOD.replace("    timestamp_field: event_timestamp", "    timestamp_feild: event_timestamp");
    let all = diagnostics(&[("features.yaml", &text)]);
    let d = find(&all, "unknown key `timestamp_feild`");
    assert_eq!(d.location.to_string(), "features.yaml:8:5");
    assert_eq!(d.help.as_deref(), Some("did you mean `timestamp_field`?"));
    assert!(!all.iter().any(|d| d.message.contains("missing the required key")), "a typo is one mistake: {all:#?}");
    let missing = diagnostics(&[("f.yaml", "entities:\n  - name: user\n")]);
    assert_eq!(find(&missing, "missing the required key `join_keys`").location.to_string(), "f.yaml:2:5");
    let top = diagnostics(&[("f.yaml", "entitys: []\n")]);
    assert_eq!(find(&top, "unknown key `entitys`").help.as_deref(), Some("did you mean `entities`?"));
}

#[test]
fn unknown_references_suggest_the_closest_name() {
    let text = GOOD
        .replace("entities: [user]", "entities: [usr]")
        .replace("source: txn\n    online", "source: txm\n    online")
        .replace("user_stats:count_7d", "user_stats:count_7");
    let all = diagnostics(&[("features.yaml", &text)]);
    let entity = find(&all, "unknown entity `usr`");
    assert_eq!(entity.location.to_string(), "features.yaml:13:16");
    assert_eq!(entity.help.as_deref(), Some("did you mean `user`?"));
    assert_eq!(find(&all, "unknown source `txm`").help.as_deref(), Some("did you mean `txn`?"));
    assert_eq!(find(&all, "unknown feature `user_stats:count_7`").help.as_deref(), Some("did you mean `user_stats:count_7d`?"));
    let views = diagnostics(&[("f.yaml", &GOOD.replace("global_stats]", "global_stat]"))]);
    assert_eq!(find(&views, "unknown feature view `global_stat`").help.as_deref(), Some("did you mean `global_stats`?"));
}

#[test]
fn a_name_defined_twice_names_both_places() {
    let other = "entities:\n  - name: user\n    join_keys: [id]\n";
    let all = diagnostics(&[("features.yaml", GOOD), ("more/other.yaml", other)]);
    let d = find(&all, "entity `user` is defined twice");
    assert_eq!(d.location.to_string(), "more/other.yaml:2:11");
    let (first, _) = d.related.as_ref().expect("related");
    assert_eq!(first.to_string(), "features.yaml:3:11");
}

#[test]
fn bad_durations_and_dtypes_explain_the_syntax() {
    let text = GOOD.replace("ttl: 3d", "ttl: 3days").replace("dtype: int64", "dtype: int46");
    let all = diagnostics(&[("features.yaml", &text)]);
    let ttl = find(&all, "`3days` is not a valid `ttl`");
    assert_eq!(ttl.location.to_string(), "features.yaml:15:10");
    assert!(ttl.help.as_deref().is_some_and(|h| h.contains("e.g. `90s`")));
    let dtype = find(&all, "unknown dtype `int46`");
    assert_eq!(dtype.help.as_deref(), Some("did you mean `int64`?"));
    let list = diagnostics(&[("f.yaml", &GOOD.replace("list<float32>", "list<flaot32>"))]);
    assert_eq!(find(&list, "unknown dtype").help.as_deref(), Some("did you mean `list<float32>`?"));
}

#[test]
fn features_may_not_shadow_keys_or_timestamps() {
    let text = GOOD.replace("{name: total, dtype: float64}", "{name: created_at, dtype: timestamp}").replace("{name: count_7d, dtype: int64}", "{name: user_id, dtype: int64}");
    let all = diagnostics(&[("features.yaml", &text)]);
    assert!(find(&all, "`user_id` of feature view `user_stats` has the name of a join key").help.is_some());
    find(&all, "`created_at` of feature view `global_stats` has the name of a timestamp column");
}

/// Read beside `GOOD` (as `on_demand.yaml`): an on-demand view over
/// `user_stats` and a request source, and services that use its features.
const ON_DEMAND: &str = r#"
request_sources:
  - name: txn_request
    schema:
      - {name: amount, dtype: float64}
on_demand_feature_views:
  - name: txn_ratios
    sources: [user_stats, txn_request]
    owner: fraud-team
    features:
      - {name: amount_to_count_ratio, dtype: float64, expr: "amount / nullif(count_7d, 0)"}
      - {name: is_large, dtype: bool, expr: "amount > 1000", description: Over a thousand}
feature_services:
  - name: fraud_v2
    features: [txn_ratios, user_stats:count_7d]
  - name: fraud_v3
    features: [txn_ratios:is_large]
"#;

/// The definitions of a repo that must load without a single diagnostic.
fn definitions(files: &[(&str, &str)]) -> Definitions {
    let dir = repo(files);
    let loaded = load_definitions(dir.path()).expect("load");
    assert!(loaded.parsed.diagnostics.is_empty(), "{}", loaded.parsed.diagnostics);
    loaded.parsed.definitions
}

/// The diagnostics of `GOOD` plus `ON_DEMAND` with one edit.
fn on_demand_diagnostics(from: &str, to: &str) -> Vec<Diagnostic> {
    assert!(ON_DEMAND.contains(from), "{from:?} is not in ON_DEMAND");
    diagnostics(&[("features.yaml", GOOD), ("on_demand.yaml", &ON_DEMAND.replacen(from, to, 1))])
}

#[test]
fn on_demand_views_and_request_sources_parse_into_plain_definitions() {
    let dir = repo(&[("features.yaml", GOOD), ("on_demand.yaml", ON_DEMAND)]);
    let loaded = load_definitions(dir.path()).expect("load");
    assert!(loaded.parsed.diagnostics.is_empty(), "{}", loaded.parsed.diagnostics);
    let defs = &loaded.parsed.definitions;
    let request = defs.request_source("txn_request").expect("request source");
    assert_eq!((request.schema[0].name.as_str(), &request.schema[0].dtype), ("amount", &DType::Float64));
    let view = defs.on_demand_feature_view("txn_ratios").expect("on-demand view");
    assert_eq!(view.sources, ["user_stats", "txn_request"], "sources keep the written order");
    assert_eq!(view.governance.owner, "fraud-team");
    assert_eq!(view.features[0].expr, "amount / nullif(count_7d, 0)");
    assert_eq!((&view.features[1].dtype, view.features[1].description.as_str()), (&DType::Bool, "Over a thousand"));
    assert_eq!(defs.view_kind("txn_ratios"), Some(ObjectKind::OnDemandFeatureView));
    let resolved = |name: &str| -> Vec<String> {
        defs.resolve_service(defs.feature_service(name).expect("service")).iter().map(ToString::to_string).collect()
    };
    assert_eq!(resolved("fraud_v2"), ["txn_ratios:amount_to_count_ratio", "txn_ratios:is_large", "user_stats:count_7d"]);
    assert_eq!(resolved("fraud_v3"), ["txn_ratios:is_large"]);
    // Where a later check (the expression compiler) points its errors.
    let at = |field: &str| {
        let location = loaded.parsed.locations.field(ObjectKind::OnDemandFeatureView, "txn_ratios", field);
        location.expect("located").to_string()
    };
    assert_eq!(at("features[1].expr"), "on_demand.yaml:12:45", "the opening quote of the expression");
    assert_eq!(at("features[1].name"), "on_demand.yaml:12:16");
    assert_eq!(at("sources[1]"), "on_demand.yaml:8:27");
    assert_eq!(at("name"), "on_demand.yaml:7:11", "a feature's fields do not overwrite the view's own");
}

#[test]
fn on_demand_mistakes_are_located_with_a_fix() {
    // (edit from, edit to, message, location (a trailing `:` checks the line only), help)
    let cases = [
        ("    sources: [", "    source: [", "unknown key `source` in on_demand_feature_view `txn_ratios`", "on_demand.yaml:8:5", "did you mean `sources`?"),
        ("expr: \"amount > 1000\"", "exp: \"amount > 1000\"", "unknown key `exp` in an on-demand feature", "on_demand.yaml:12:39", "did you mean `expr`?"),
        (", expr: \"amount > 1000\"", "", "an on-demand feature is missing the required key `expr`", "on_demand.yaml:12:10", "add `expr: ...`"),
        ("\"amount > 1000\"", "\"  \"", "`expr` must not be empty", "on_demand.yaml:12:45", "SQL expression"),
        ("dtype: bool", "dtype: boolean", "unknown dtype `boolean`", "on_demand.yaml:12:33", "did you mean `bool`?"),
        ("name: amount_to_count_ratio", "name: is_large", "feature `is_large` is listed twice in this on-demand feature view", "on_demand.yaml:12:", "remove one of them"),
        ("[user_stats, txn_request]", "[]", "an on-demand feature view needs at least one source", "on_demand.yaml:8:", "list the feature views and request sources"),
        (
            "[user_stats, txn_request]",
            "[user_stat, txn_request]",
            "on-demand feature view `txn_ratios` refers to unknown feature view or request source `user_stat`",
            "on_demand.yaml:8:15",
            "did you mean `user_stats`?",
        ),
        ("[user_stats, txn_request]", "[txn, txn_request]", "reads source `txn` directly", "on_demand.yaml:8:15", "list a feature view of that source"),
        ("[user_stats, txn_request]", "[user_stats, txn_request, user_stats]", "`user_stats` is listed twice in the sources", "on_demand.yaml:8:40", "remove the repeat"),
        ("{name: amount, dtype: float64}", "{name: user_id, dtype: int64}", "request field `user_id` of request source `txn_request` has the name of a join key of entity `user`", "on_demand.yaml:5:9", "rename the field"),
        ("[txn_ratios:is_large]", "[txn_ratios:is_larg]", "refers to unknown feature `txn_ratios:is_larg`", "on_demand.yaml:17:16", "did you mean `txn_ratios:is_large`?"),
        ("[txn_ratios, user", "[txn_ratio, user", "refers to unknown feature view `txn_ratio`", "on_demand.yaml:15:16", "did you mean `txn_ratios`?"),
    ];
    for (from, to, message, location, help) in cases {
        let all = on_demand_diagnostics(from, to);
        let d = find(&all, message);
        let at = d.location.to_string();
        assert!(at == location || (location.ends_with(':') && at.starts_with(location)), "{message}: at {at}, expected {location}");
        assert!(d.help.as_deref().is_some_and(|h| h.contains(help)), "{message}: help {:?}, expected {help:?}", d.help);
        assert!(!all.iter().any(|d| d.message.contains("missing the required key `sources`")), "a typo is one mistake: {all:#?}");
        assert!(all.iter().all(|d| d.help.is_some() || d.related.is_some()), "every error says how to fix it: {all:#?}");
    }
}

#[test]
fn views_and_request_sources_share_one_namespace() {
    let all = on_demand_diagnostics("  - name: txn_ratios\n", "  - name: global_stats\n");
    let d = find(&all, "on-demand feature view `global_stats` has the name of feature view `global_stats`");
    assert_eq!(d.location.to_string(), "on_demand.yaml:7:11");
    let (first, _) = d.related.as_ref().expect("related");
    assert_eq!(first.to_string(), "features.yaml:21:11");
    assert!(d.help.as_deref().is_some_and(|h| h.contains("one namespace")));
    let all = on_demand_diagnostics("  - name: txn_request\n", "  - name: user_stats\n");
    assert_eq!(find(&all, "request source `user_stats` has the name of feature view `user_stats`").location.to_string(), "on_demand.yaml:3:11");
}

#[test]
fn plans_show_on_demand_views_added_changed_and_removed() {
    let empty = RegistryState::empty("test");
    let first = definitions(&[("features.yaml", GOOD), ("on_demand.yaml", ON_DEMAND)]);
    let plan = Plan::compute(&empty, &first);
    let text = plan.to_string();
    assert!(text.contains("+ request_source txn_request (add)"), "{text}");
    assert!(text.contains("+ on_demand_feature_view txn_ratios (add)"), "{text}");
    let applied = plan.apply_to(&empty, &first, chrono::Utc::now());
    assert!(Plan::compute(&applied, &first).is_empty(), "applying twice is a no-op");

    let changed = definitions(&[("features.yaml", GOOD), ("on_demand.yaml", &ON_DEMAND.replace("amount > 1000", "amount > 5000"))]);
    let text = Plan::compute(&applied, &changed).to_string();
    assert!(text.contains("~ on_demand_feature_view txn_ratios (change)"), "{text}");
    assert!(text.contains("~ feature is_large.expr: amount > 1000 → amount > 5000"), "{text}");
    assert!(text.contains("0 to add, 1 to change, 0 to remove."), "{text}");

    let removed = definitions(&[("features.yaml", GOOD)]);
    let text = Plan::compute(&applied, &removed).to_string();
    for line in ["- request_source txn_request (remove)", "- on_demand_feature_view txn_ratios (remove)", "- feature_service fraud_v2 (remove)"] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
}

#[test]
fn the_catalog_lists_and_describes_on_demand_views_with_their_lineage() {
    let empty = RegistryState::empty("test");
    let defs = definitions(&[("features.yaml", GOOD), ("on_demand.yaml", ON_DEMAND)]);
    let state = Plan::compute(&empty, &defs).apply_to(&empty, &defs, chrono::Utc::now());
    let edges = [
        ("feature_view:user_stats", "on_demand_feature_view:txn_ratios"),
        ("request_source:txn_request", "on_demand_feature_view:txn_ratios"),
        ("on_demand_feature_view:txn_ratios", "feature_service:fraud_v2"),
        ("on_demand_feature_view:txn_ratios", "feature_service:fraud_v3"),
    ];
    for (from, to) in edges {
        assert!(state.lineage.iter().any(|e| e.from == from && e.to == to), "{from} -> {to} in {:#?}", state.lineage);
    }

    let listed: Vec<(String, String)> = catalog::list(&state, &ListFilter::default()).into_iter().map(|e| (e.kind, e.name)).collect();
    for (kind, name) in [("request_source", "txn_request"), ("on_demand_feature_view", "txn_ratios"), ("feature", "txn_ratios:is_large")] {
        assert!(listed.iter().any(|(k, n)| k == kind && n == name), "{kind} {name} in {listed:#?}");
    }
    let owned = catalog::list(&state, &ListFilter { owner: Some("fraud-team".into()), kind: Some("feature".into()), ..Default::default() });
    assert_eq!(owned.len(), 2, "an on-demand view's features carry its owner: {owned:#?}");
    assert_eq!(catalog::search(&state, "large")[0].entry.name, "txn_ratios:is_large");

    let described = catalog::describe(&state, "txn_ratios").expect("describe the view");
    let view = &described[0];
    assert_eq!(view["kind"], "on_demand_feature_view");
    assert_eq!(view["definition"]["sources"], json!(["user_stats", "txn_request"]));
    assert_eq!(view["downstream"], json!(["feature_service:fraud_v2", "feature_service:fraud_v3"]));
    let upstream = view["upstream"].as_array().expect("upstream");
    for node in ["feature_view:user_stats", "request_source:txn_request", "source:txn"] {
        assert!(upstream.iter().any(|n| n == node), "{node} in {upstream:?}");
    }
    let described = catalog::describe(&state, "txn_ratios:is_large").expect("describe the feature");
    let feature = &described[0];
    assert_eq!(feature["kind"], "feature");
    assert_eq!(feature["definition"]["expr"], "amount > 1000");
    assert_eq!(feature["on_demand_feature_view"], "txn_ratios");
    assert_eq!(feature["owner"], "fraud-team");
    assert_eq!(feature["downstream"], json!(["feature_service:fraud_v2", "feature_service:fraud_v3"]));
    assert_eq!(catalog::describe(&state, "txn_request").expect("describe the request source")[0]["kind"], "request_source");

    let summary = catalog::summary(&state);
    let on_demand = &summary["on_demand_feature_views"][0];
    assert_eq!(on_demand["sources"], json!(["user_stats", "txn_request"]));
    assert_eq!(on_demand["features"][1], json!({"name": "is_large", "dtype": "bool", "expr": "amount > 1000", "description": "Over a thousand"}));
    assert_eq!(summary["request_sources"][0]["schema"][0]["dtype"], "float64");
    let fraud_v3 = summary["feature_services"].as_array().expect("services").iter().find(|s| s["name"] == "fraud_v3").cloned();
    assert_eq!(fraud_v3.map(|s| s["features"].clone()), Some(json!(["txn_ratios:is_large"])));
}

/// Read beside `GOOD` (as `aggregations.yaml`): an aggregation view over an
/// event source (DESIGN §9), and a service that uses two of its features.
/// Line numbers in the tests below count from the empty first line.
const AGGREGATIONS: &str = r#"
sources:
  - name: transactions
    path: data/transactions.parquet
    timestamp_field: event_timestamp
feature_views:
  - name: user_txn_windows
    entities: [user]
    source: transactions
    tile: 5m
    aggregations:
      - {function: count, window: 1h}
      - {column: amount, function: sum, window: 7d}
      - {column: amount, function: mean, window: 7d, name: avg_amount_7d}
      - {column: amount, function: max, window: 30d}
      - {column: amount, function: stddev, window: 30d}
      - {column: merchant_id, function: approx_count_distinct, window: 7d}
      - {column: amount, function: last, n: 3, window: 1d}
feature_services:
  - name: fraud_windows
    features: [user_txn_windows:amount_sum_7d, user_txn_windows:count_1h]
"#;

/// The diagnostics of `GOOD` plus `AGGREGATIONS` with one edit.
fn aggregation_diagnostics(from: &str, to: &str) -> Vec<Diagnostic> {
    assert!(AGGREGATIONS.contains(from), "{from:?} is not in AGGREGATIONS");
    diagnostics(&[("features.yaml", GOOD), ("aggregations.yaml", &AGGREGATIONS.replacen(from, to, 1))])
}

#[test]
fn aggregation_views_parse_into_plain_definitions() {
    let dir = repo(&[("features.yaml", GOOD), ("aggregations.yaml", AGGREGATIONS)]);
    let loaded = load_definitions(dir.path()).expect("load");
    assert!(loaded.parsed.diagnostics.is_empty(), "{}", loaded.parsed.diagnostics);
    let defs = &loaded.parsed.definitions;
    let view = defs.feature_view("user_txn_windows").expect("view");
    assert!(view.is_aggregation());
    let names: Vec<&str> = view.aggregations.iter().map(|a| a.name.as_str()).collect();
    let expected = [
        "count_1h",
        "amount_sum_7d",
        "avg_amount_7d",
        "amount_max_30d",
        "amount_stddev_30d",
        "merchant_id_approx_count_distinct_7d",
        "amount_last_1d",
    ];
    assert_eq!(names, expected, "default names, and the one written");
    let features: Vec<&str> = view.schema.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(features, expected, "the schema holds the derived features");
    let count = &view.aggregations[0];
    assert_eq!((count.function, count.column.as_deref(), count.window.seconds()), (AggFunction::Count, None, 3_600));
    let sum = &view.aggregations[1];
    assert_eq!((sum.function, sum.column.as_deref(), sum.window.seconds(), sum.n), (AggFunction::Sum, Some("amount"), 7 * 86_400, None));
    assert_eq!(view.aggregations[5].function, AggFunction::ApproxCountDistinct);
    assert_eq!((view.aggregations[6].function, view.aggregations[6].n), (AggFunction::Last, Some(3)));
    assert!(view.aggregations.iter().all(|a| a.input_dtype.is_none()), "input types are read from the files at apply");
    assert_eq!(view.schema[0].dtype, DType::Int64, "counts are int64 whatever the column");
    assert_eq!(view.schema[5].dtype, DType::Int64);
    assert_eq!(view.schema[1].dtype, DType::Float64, "a placeholder until apply reads the column's type");
    assert_eq!(view.tile.map(|t| t.seconds()), Some(300));
    assert_eq!(view.default_tile().map(|t| t.seconds()), Some(300), "the declared tile");
    assert_eq!(view.ttl, None);
    assert!(view.online);
    let service = defs.feature_service("fraud_windows").expect("service");
    let resolved: Vec<String> = defs.resolve_service(service).iter().map(ToString::to_string).collect();
    assert_eq!(resolved, ["user_txn_windows:amount_sum_7d", "user_txn_windows:count_1h"]);

    // Where the apply-time checks point their errors.
    let at = |field: &str| {
        let location = loaded.parsed.locations.field(ObjectKind::FeatureView, "user_txn_windows", field);
        location.expect("located").to_string()
    };
    assert_eq!(at("aggregations[1].column"), "aggregations.yaml:13:18");
    assert_eq!(at("aggregations[1].function"), "aggregations.yaml:13:36");
    assert_eq!(at("aggregations[0].window"), "aggregations.yaml:12:35");
    assert_eq!(at("aggregations[2].name"), "aggregations.yaml:14:60");
    assert_eq!(at("aggregations[6].n"), "aggregations.yaml:18:45");
    assert_eq!(at("tile"), "aggregations.yaml:10:11");
    assert_eq!(at("schema[2]"), "aggregations.yaml:14:60", "a derived feature is located at its written name");
    assert_eq!(at("schema[1]"), "aggregations.yaml:13:10", "or at the first key of its aggregation");
    assert_eq!(at("name"), "aggregations.yaml:7:11", "an aggregation's fields do not overwrite the view's own");

    // Stored and read back as plain JSON; empty and unset fields are left out.
    let json = serde_json::to_value(view).expect("to json");
    assert_eq!(json["aggregations"][0], json!({"name": "count_1h", "function": "count", "window": "1h"}));
    assert_eq!(json["aggregations"][6]["n"], 3);
    assert_eq!(json["tile"], "5m");
    let back: FeatureView = serde_json::from_value(json).expect("from json");
    assert_eq!(&back, view);

    // Without a declared tile: a sixtieth of the smallest window (1h), which divides every window.
    let untiled = definitions(&[("features.yaml", GOOD), ("aggregations.yaml", &AGGREGATIONS.replace("    tile: 5m\n", ""))]);
    let view = untiled.feature_view("user_txn_windows").expect("view");
    assert_eq!((view.tile, view.default_tile().map(|t| t.to_string())), (None, Some("1m".to_string())));
}

#[test]
fn aggregation_mistakes_are_located_with_a_fix() {
    // (edit from, edit to, message, location, help)
    let cases = [
        ("function: stddev", "function: stdev", "unknown aggregation function `stdev`", "aggregations.yaml:16:36", "did you mean `stddev`?"),
        ("function: stddev", "function: median", "unknown aggregation function `median`", "aggregations.yaml:16:36", "approx_count_distinct"),
        (", n: 3, window: 1d", ", window: 1d", "`last` needs `n`, e.g. `n: 3`", "aggregations.yaml:18:36", "how many of the newest values"),
        ("function: max, window: 30d", "function: max, n: 2, window: 30d", "`n` only applies to `last`", "aggregations.yaml:15:44", "remove `n`"),
        ("n: 3", "n: 0", "`n` must be a whole number of at least 1, not `0`", "aggregations.yaml:18:45", "e.g. `n: 3`"),
        ("n: 3", "n: three", "`n` must be a whole number of at least 1, not `three`", "aggregations.yaml:18:45", "e.g. `n: 3`"),
        ("window: 1h}", "window: 0s}", "a window must be longer than zero", "aggregations.yaml:12:35", "write e.g. `window: 7d`"),
        ("window: 1h}", "window: 0}", "a window must be longer than zero", "aggregations.yaml:12:35", "write e.g. `window: 7d`"),
        ("window: 1h}", "window: -1h}", "`-1h` is not a valid `window`: it must start with a whole non-negative number", "aggregations.yaml:12:35", "e.g. `90s`"),
        ("tile: 5m", "tile: 0s", "`tile` must be longer than zero", "aggregations.yaml:10:11", "write e.g. `tile: 5m`"),
        ("tile: 5m", "tile: 2h", "`tile` (2h) is longer than the smallest window (1h)", "aggregations.yaml:10:11", "at most `1h`"),
        ("{column: amount, function: max, window: 30d}", "{function: max, window: 30d}", "`max` needs a `column`", "aggregations.yaml:15:20", "only `count` goes without one"),
        (
            "{column: amount, function: max, window: 30d}",
            "{column: amount-usd, function: max, window: 30d}",
            "the default name `amount-usd_max_30d` of this aggregation is not a valid feature name",
            "aggregations.yaml:15:18",
            "give the aggregation a `name:`",
        ),
        (
            "{column: amount, function: stddev, window: 30d}",
            "{column: amount, function: stddev, window: 30d, name: amount_max_30d}",
            "feature `amount_max_30d` is listed twice in this aggregation view",
            "aggregations.yaml:16:63",
            "give one of them a `name:`",
        ),
        (
            "function: stddev, window: 30d",
            "function: max, window: 720h",
            "feature `amount_max_30d` (its default name) is listed twice in this aggregation view",
            "aggregations.yaml:16:10",
            "give one of them a `name:`",
        ),
        (
            "    tile: 5m\n",
            "    tile: 5m\n    schema:\n      - {name: total, dtype: float64}\n",
            "`schema` and `aggregations` cannot be combined",
            "aggregations.yaml:13:5",
            "split them into two feature views",
        ),
        ("    tile: 5m\n", "    tile: 5m\n    ttl: 3d\n", "`ttl` does not apply to aggregation views (the window bounds them)", "aggregations.yaml:11:10", "remove `ttl`"),
        ("n: 3, window: 1d", "n: 3, windw: 1d", "unknown key `windw` in an aggregation", "aggregations.yaml:18:48", "did you mean `window`?"),
        ("    aggregations:\n", "    aggregation:\n", "unknown key `aggregation` in feature_view `user_txn_windows`", "aggregations.yaml:11:5", "did you mean `aggregations`?"),
    ];
    for (from, to, message, location, help) in cases {
        let all = aggregation_diagnostics(from, to);
        let d = find(&all, message);
        assert_eq!(d.location.to_string(), location, "{message}");
        assert!(d.help.as_deref().is_some_and(|h| h.contains(help)), "{message}: help {:?}, expected {help:?}", d.help);
        assert!(!all.iter().any(|d| d.message.contains("missing the required key")), "a typo is one mistake: {all:#?}");
        assert!(!all.iter().any(|d| d.message.contains("a feature view needs `schema`")), "a typo is one mistake: {all:#?}");
        assert!(!all.iter().any(|d| d.message.contains("`tile` only applies")), "a typo is one mistake: {all:#?}");
        assert!(all.iter().all(|d| d.help.is_some() || d.related.is_some()), "every error says how to fix it: {all:#?}");
    }

    // A repeated name names both places.
    let all = aggregation_diagnostics("function: stddev, window: 30d", "function: max, window: 720h");
    let d = find(&all, "feature `amount_max_30d` (its default name) is listed twice");
    let (first, _) = d.related.as_ref().expect("related");
    assert_eq!(first.to_string(), "aggregations.yaml:15:10");

    // Neither `schema` nor `aggregations`.
    let start = AGGREGATIONS.find("    tile: 5m\n").expect("tile");
    let end = AGGREGATIONS.find("feature_services:").expect("services");
    let bare = format!("{}{}", &AGGREGATIONS[..start], &AGGREGATIONS[end..]);
    let all = diagnostics(&[("features.yaml", GOOD), ("aggregations.yaml", &bare)]);
    let d = find(&all, "a feature view needs `schema` (precomputed features) or `aggregations` (windowed aggregates over an event source)");
    assert_eq!(d.location.to_string(), "aggregations.yaml:7:5");
    assert!(d.help.as_deref().is_some_and(|h| h.contains("add `schema:")), "{d:?}");

    // `tile` on a view of precomputed features.
    let all = diagnostics(&[("features.yaml", &GOOD.replace("    ttl: 3d\n", "    ttl: 3d\n    tile: 5m\n"))]);
    let d = find(&all, "`tile` only applies to aggregation views");
    assert_eq!(d.location.to_string(), "features.yaml:16:11");
    assert!(d.help.as_deref().is_some_and(|h| h.contains("remove `tile`")), "{d:?}");
}

/// A derived feature is a feature like any other: one named like a join key
/// is refused, at the aggregation that produces it.
#[test]
fn aggregation_features_may_not_shadow_join_keys() {
    let all = aggregation_diagnostics("name: avg_amount_7d", "name: user_id");
    let d = find(&all, "`user_id` of feature view `user_txn_windows` has the name of a join key");
    assert_eq!(d.location.to_string(), "aggregations.yaml:14:60");
}

#[test]
fn every_mistake_is_reported_in_one_run() {
    let text = GOOD
        .replace("timestamp_field:", "timestamp_feild:")
        .replace("ttl: 3d", "ttl: forever")
        .replace("entities: [user]", "entities: [nobody]")
        .replace("dtype: float64", "dtype: double");
    let duplicate_key = "entities:\n  - name: a\n    name: b\n    join_keys: [k]\n";
    let all = diagnostics(&[("features.yaml", &text), ("z.yaml", duplicate_key)]);
    assert_eq!(all.len(), 5, "{all:#?}");
    let d = find(&all, "key `name` is written twice");
    assert_eq!(d.location.to_string(), "z.yaml:3:5");
    assert!(all.iter().all(|d| d.help.is_some() || d.related.is_some()), "every error says how to fix it: {all:#?}");
}

#[test]
fn empty_and_comment_only_files_are_fine() {
    assert!(diagnostics(&[("a.yaml", ""), ("b.yaml", "# nothing yet\n")]).is_empty());
}

#[test]
fn config_errors_are_located_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(load_config(dir.path()), Err(RegistryError::NotARepo { .. })));
    std::fs::write(dir.path().join("almanac.yaml"), "projet: x\nonline: {type: embeded}\n").expect("write");
    let Err(RegistryError::Invalid(all)) = load_config(dir.path()) else { panic!("expected diagnostics") };
    find(&all.0, "unknown key `projet`");
    let online = find(&all.0, "online type `embeded` is not supported");
    assert!(online.help.as_deref().is_some_and(|h| h.contains("did you mean `embedded`")));
    std::fs::write(dir.path().join("almanac.yaml"), "project: x\n").expect("write");
    assert_eq!(load_config(dir.path()).expect("minimal config").project, "x");
}

/// Regression: a UTF-8 byte-order mark (some Windows editors write one)
/// made the first key read as `\u{feff}entities`, reported as "unknown key
/// `entities`, did you mean `entities`?". It is not part of the YAML.
#[test]
fn a_byte_order_mark_at_the_start_of_a_file_is_accepted() {
    let with_bom = format!("\u{feff}{GOOD}");
    assert!(diagnostics(&[("features.yaml", &with_bom)]).is_empty());
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("almanac.yaml"), "\u{feff}project: x\n").expect("write");
    assert_eq!(load_config(dir.path()).expect("a config with a BOM").project, "x");
}

#[test]
fn the_timestamp_range_is_configurable_and_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("almanac.yaml"), "project: x\ntimestamp_range: {earliest: 2000-01-01, latest: 2100-01-01T00:00:00Z}\n").expect("write");
    let range = load_config(dir.path()).expect("config").timestamp_range;
    assert_eq!((range.earliest_micros, range.latest_micros), (946_684_800_000_000, 4_102_444_800_000_000));
    std::fs::write(dir.path().join("almanac.yaml"), "project: x\ntimestamp_range: {earliest: someday, latest: 1960-01-01}\n").expect("write");
    let Err(RegistryError::Invalid(all)) = load_config(dir.path()) else { panic!("expected diagnostics") };
    find(&all.0, "`someday` is not a timestamp");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Mangled definition files never panic, and every diagnostic points
    /// inside the file it names.
    #[test]
    fn mangled_files_never_panic(cut in 0usize..GOOD.len(), len in 0usize..40, insert in "[ :\\-\\[\\]{}a-z#\n]{0,8}") {
        let end = (cut + len).min(GOOD.len());
        let (cut, end) = (floor_char(GOOD, cut), floor_char(GOOD, end));
        let text = format!("{}{}{}", &GOOD[..cut], insert, &GOOD[end..]);
        let all = diagnostics(&[("features.yaml", &text)]);
        let lines = text.lines().count().max(1);
        for d in &all {
            prop_assert!(d.location.line >= 1 && d.location.line <= lines + 1, "{d:?} in {text}");
            prop_assert!(d.location.column >= 1);
        }
    }
}

fn floor_char(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}
