use almanac::scaffold::{self, InitKind};
use almanac_datagen::DatasetSpec;
use chrono::Utc;

use crate::args::{DataArgs, InitArgs};
use crate::render;

pub fn dataset_spec(data: &DataArgs) -> DatasetSpec {
    if data.reference_dates { DatasetSpec::reference(data.scale) } else { DatasetSpec::ending_at(data.scale, Utc::now()) }
}

pub fn run(args: &InitArgs, json: bool) -> anyhow::Result<()> {
    let kind = if args.demo { InitKind::Demo(dataset_spec(&args.data)) } else { InitKind::Template };
    let outcome = scaffold::init(&args.dir, kind)?;
    if json {
        let files: Vec<String> = outcome.files.iter().map(|f| f.display().to_string()).collect();
        return render::json(&serde_json::json!({"root": outcome.root, "files": files}));
    }
    println!("Created an Almanac repo in {}", outcome.root.display());
    for file in &outcome.files {
        println!("  {}", file.strip_prefix(&outcome.root).unwrap_or(file).display());
    }
    println!("Next: almanac --repo {} plan", outcome.root.display());
    Ok(())
}
