//! Loading definition files: every kind of mistake is reported with its
//! location and a fix, all of them in one run, and nothing panics.

use std::path::Path;

use almanac_core::{DType, Diagnostic, FileFormat};
use almanac_registry::{RegistryError, load_config, load_definitions};
use proptest::prelude::*;

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

#[test]
fn on_demand_views_are_rejected_not_ignored() {
    let all = diagnostics(&[("f.yaml", "on_demand_feature_views:\n  - name: x\n")]);
    assert_eq!(find(&all, "not supported yet").location.to_string(), "f.yaml:1:1");
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
