use std::path::Path;

use almanac::FeatureStore;
use almanac::registry::catalog::{self, ListFilter};
use serde_json::Value;

use crate::args::FeaturesCommand;
use crate::render;

pub fn run(repo: &Path, command: FeaturesCommand, json: bool) -> anyhow::Result<()> {
    let store = FeatureStore::open(repo)?;
    if let FeaturesCommand::History { name } = &command {
        return history(&store, name, json);
    }
    let state = store.registry_state()?;
    match command {
        FeaturesCommand::History { .. } => {}
        FeaturesCommand::List(args) => {
            let filter = ListFilter { owner: args.owner, tags: args.tags, kind: args.kind.map(|k| k.as_str().to_string()) };
            let entries = catalog::list(&state, &filter);
            if json {
                return render::json(&entries);
            }
            if state.version == 0 {
                println!("The registry is empty; run `almanac apply` first.");
                return Ok(());
            }
            let rows = entries.iter().map(|e| vec![e.kind.clone(), e.name.clone(), e.owner.clone(), render::tags(&e.tags), e.description.clone()]).collect();
            println!("{}", render::table(&["KIND", "NAME", "OWNER", "TAGS", "DESCRIPTION"], rows));
        }
        FeaturesCommand::Search { text } => {
            let hits = catalog::search(&state, &text.join(" "));
            if json {
                return render::json(&hits);
            }
            if hits.is_empty() {
                println!("No matches for `{}`.", text.join(" "));
                return Ok(());
            }
            let rows = hits.iter().map(|h| vec![h.score.to_string(), h.entry.kind.clone(), h.entry.name.clone(), h.entry.owner.clone(), h.entry.description.clone()]).collect();
            println!("{}", render::table(&["SCORE", "KIND", "NAME", "OWNER", "DESCRIPTION"], rows));
        }
        FeaturesCommand::Describe { name } => {
            let described = catalog::describe(&state, &name)?;
            if json {
                return render::json(&described);
            }
            for object in &described {
                print_description(object);
            }
        }
    }
    Ok(())
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(map) => map.iter().map(|(k, v)| format!("{k}={}", text(v))).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn print_description(object: &Value) {
    println!("{} {}", text(&object["kind"]), text(&object["name"]));
    if let Some(meta) = object.get("meta").filter(|m| !m.is_null()) {
        println!("  version:     {} (updated {})", text(&meta["version"]), text(&meta["updated_at"]));
    }
    let definition = &object["definition"];
    if let Some(fields) = definition.as_object() {
        for (key, value) in fields {
            if matches!(key.as_str(), "name" | "schema" | "join_keys") {
                continue;
            }
            println!("  {:<12} {}", format!("{key}:"), text(value));
        }
    }
    if let Some(keys) = object.get("join_keys").or_else(|| definition.get("join_keys")).and_then(Value::as_array) {
        let keys: Vec<String> = keys.iter().map(|k| format!("{} ({})", text(&k["name"]), text(&k["dtype"]))).collect();
        println!("  {:<12} {}", "join keys:", keys.join(", "));
    }
    if let Some(watermark) = object.get("watermark") {
        println!("  {:<12} {}", "watermark:", if watermark.is_null() { "never materialized".into() } else { text(watermark) });
    }
    if let Some(resolved) = object.get("resolved_features") {
        println!("  {:<12} {}", "resolves to:", text(resolved));
    }
    if let Some(schema) = definition.get("schema").and_then(Value::as_array) {
        let rows = schema.iter().map(|f| vec![text(&f["name"]), text(&f["dtype"]), text(&f["description"])]).collect();
        println!("  schema:");
        for line in render::table(&["FEATURE", "DTYPE", "DESCRIPTION"], rows).to_string().lines() {
            println!("    {line}");
        }
    }
    println!("  {:<12} {}", "upstream:", text(&object["upstream"]));
    println!("  {:<12} {}", "downstream:", text(&object["downstream"]));
    println!();
}

/// `features history NAME`: the registry versions at which an object was
/// created, changed or removed, with its own version and definition.
fn history(store: &FeatureStore, name: &str, json: bool) -> anyhow::Result<()> {
    let versions = store.registry_history()?;
    let suffix = format!("/{name}");
    let mut seen: std::collections::BTreeMap<String, u64> = Default::default();
    let mut rows: Vec<Value> = Vec::new();
    for state in &versions {
        let present: Vec<(&String, u64)> = state.objects.iter().filter(|(key, _)| key.ends_with(&suffix)).map(|(key, meta)| (key, meta.version)).collect();
        for (key, version) in &present {
            let change = match seen.get(*key) {
                None => "created",
                Some(before) if before != version => "changed",
                Some(_) => continue,
            };
            seen.insert((*key).clone(), *version);
            let definition = catalog::describe(state, name).ok().and_then(|found| serde_json::to_value(found).ok()).unwrap_or(Value::Null);
            rows.push(serde_json::json!({"registry_version": state.version, "applied_at": state.applied_at, "object": key, "object_version": version, "change": change, "definition": definition}));
        }
        let gone: Vec<String> = seen.keys().filter(|key| !present.iter().any(|(k, _)| k == key)).cloned().collect();
        for key in gone {
            seen.remove(&key);
            rows.push(serde_json::json!({"registry_version": state.version, "applied_at": state.applied_at, "object": key, "object_version": Value::Null, "change": "removed", "definition": Value::Null}));
        }
    }
    if rows.is_empty() {
        anyhow::bail!("no applied version of the registry has an object named `{name}`; `almanac features list` shows what there is");
    }
    if json {
        return render::json(&rows);
    }
    let table = rows.iter().map(|row| vec![text(&row["registry_version"]), text(&row["applied_at"]), text(&row["object"]), text(&row["object_version"]), text(&row["change"])]).collect();
    println!("{}", render::table(&["REGISTRY VERSION", "APPLIED AT", "OBJECT", "OBJECT VERSION", "CHANGE"], table));
    Ok(())
}
