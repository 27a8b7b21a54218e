use std::path::Path;

use almanac::FeatureStore;

use crate::render;

pub fn plan(repo: &Path, explain: bool, json: bool) -> anyhow::Result<()> {
    let store = FeatureStore::open(repo)?;
    let plan = store.plan()?;
    let explained = if explain { store.explain()? } else { Vec::new() };
    if json {
        if explain {
            let sql: Vec<_> = explained.iter().map(|(what, sql)| serde_json::json!({"training_set": what, "sql": sql})).collect();
            return render::json(&serde_json::json!({"plan": plan, "explain": sql}));
        }
        return render::json(&plan);
    }
    println!("{plan}");
    if !plan.is_empty() {
        println!("Nothing was written; run `almanac apply` to apply this plan.");
    }
    if explain && explained.is_empty() {
        println!("\nThe embedded offline store runs no SQL (its as-of join is Almanac's own); --explain shows SQL for `offline: {{type: postgres}}` or `{{type: spark}}`.");
    }
    for (what, sql) in explained {
        println!("\n-- Training set of {what}:\n{sql}");
    }
    Ok(())
}

pub fn apply(repo: &Path, json: bool) -> anyhow::Result<()> {
    let store = FeatureStore::open(repo)?;
    let outcome = store.apply()?;
    if json {
        return render::json(&serde_json::json!({"version": outcome.version, "plan": outcome.plan}));
    }
    println!("{}", outcome.plan);
    if !outcome.plan.is_empty() {
        println!("Applied: the registry is at version {}.", outcome.version);
    }
    Ok(())
}
