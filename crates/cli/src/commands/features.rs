use std::path::Path;

use almanac::FeatureStore;
use almanac::registry::catalog::{self, ListFilter};
use serde_json::Value;

use crate::args::FeaturesCommand;
use crate::render;

pub fn run(repo: &Path, command: FeaturesCommand, json: bool) -> anyhow::Result<()> {
    let state = FeatureStore::open(repo)?.registry_state()?;
    match command {
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
