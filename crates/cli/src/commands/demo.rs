//! `almanac demo`: the main job on embedded defaults, step by step with timings.

use std::path::PathBuf;
use std::time::Instant;

use almanac::FeatureStore;
use almanac::registry::Action;
use almanac::scaffold::{self, InitKind};

use super::init::dataset_spec;
use crate::args::DemoArgs;
use crate::render;

fn step(number: usize, total: usize, title: &str, started: Instant) {
    println!("[{number}/{total}] {title:<58} {:>8.2} s", started.elapsed().as_secs_f64());
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let total_start = Instant::now();
    let dir: PathBuf = match &args.dir {
        Some(dir) => dir.clone(),
        None => tempfile::Builder::new().prefix("almanac-demo-").tempdir()?.keep(),
    };
    println!("Almanac demo: a fraud-detection feature repo on generated data");
    println!("Repo: {}\n", dir.display());
    const STEPS: usize = 2;

    let started = Instant::now();
    let spec = dataset_spec(&args.data);
    let outcome = scaffold::init(&dir, InitKind::Demo(spec))?;
    step(1, STEPS, &format!("init: generated the reference dataset (scale {})", args.data.scale), started);
    if let Some(dataset) = &outcome.dataset {
        for (file, rows) in dataset.files.iter().zip([dataset.user_rows, dataset.merchant_rows, dataset.label_rows]) {
            let name = file.strip_prefix(&dir).unwrap_or(file).display().to_string();
            println!("        {name:<32} {:>12} rows", render::count(rows));
        }
    }

    let started = Instant::now();
    let store = FeatureStore::open(&dir)?;
    let applied = store.apply()?;
    let added = applied.plan.changes.iter().filter(|c| c.action == Action::Add).count();
    step(2, STEPS, &format!("apply: checked definitions against the data, registered {added} objects"), started);
    for line in applied.plan.to_string().lines().skip(1) {
        println!("        {line}");
    }

    println!("\nDone in {:.2} s. Explore the repo:", total_start.elapsed().as_secs_f64());
    let repo = dir.display();
    println!("  almanac --repo {repo} features list");
    println!("  almanac --repo {repo} features describe fraud_model_v1");
    println!("  almanac --repo {repo} features search fraud");
    Ok(())
}
