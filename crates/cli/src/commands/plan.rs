use std::path::Path;

use almanac::FeatureStore;

use crate::render;

pub fn plan(repo: &Path, json: bool) -> anyhow::Result<()> {
    let store = FeatureStore::open(repo)?;
    let plan = store.plan()?;
    if json {
        return render::json(&plan);
    }
    println!("{plan}");
    if !plan.is_empty() {
        println!("Nothing was written; run `almanac apply` to apply this plan.");
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
