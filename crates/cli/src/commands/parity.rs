//! `almanac parity`: online values against point-in-time values.
//! Exit code 0 when everything agrees, 1 on any divergence, 2 on error, so
//! cron and CI can alert on it.

use std::path::Path;
use std::process::ExitCode;

use almanac::FeatureStore;
use almanac::parity::{ParityReport, ParityRequest};

use crate::args::ParityArgs;
use crate::render;

pub fn run(repo: &Path, args: &ParityArgs, json: bool) -> ExitCode {
    match check(repo, args) {
        Ok(report) => {
            let shown = if json { render::json(&report) } else { print(&report) };
            if let Err(error) = shown {
                crate::report(&error);
                return ExitCode::from(2);
            }
            if report.divergent() == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(error) => {
            crate::report(&error);
            ExitCode::from(2)
        }
    }
}

fn check(repo: &Path, args: &ParityArgs) -> anyhow::Result<ParityReport> {
    let store = FeatureStore::open(repo)?;
    let at = crate::time::parse_datetime(&args.at)?;
    let views = args.views.clone().map(|v| v.0);
    anyhow::ensure!(args.tolerance >= 0.0, "--tolerance must be zero or positive (a relative difference such as 1e-9)");
    let request = ParityRequest { views, sample: args.sample, seed: args.seed, tolerance: args.tolerance, at_micros: at.timestamp_micros() };
    Ok(store.parity(&request)?)
}

fn print(report: &ParityReport) -> anyhow::Result<()> {
    println!("Parity at {} (tolerance {}):", report.at, report.tolerance);
    for view in &report.views {
        println!(
            "\n{}: {} entities sampled ({} from the online store, {} from the offline source); watermark {}",
            view.view,
            view.sampled_from_online + view.sampled_from_offline,
            view.sampled_from_online,
            view.sampled_from_offline,
            view.watermark.as_deref().unwrap_or("none")
        );
        if let Some(reason) = &view.skipped {
            println!("  not compared: {reason}");
            continue;
        }
        if let Some(error) = &view.error {
            println!("  DIVERGENT: {error}");
            continue;
        }
        let rows = view
            .features
            .iter()
            .map(|f| vec![f.feature.clone(), f.checked.to_string(), f.equal.to_string(), f.different.to_string(), f.missing_online.to_string(), f.absent_offline.to_string()])
            .collect();
        for line in render::table(&["feature", "checked", "equal", "different", "missing online", "absent offline"], rows).to_string().lines() {
            println!("  {line}");
        }
        for feature in &view.features {
            for example in &feature.examples {
                let request: Vec<String> = example.request.iter().map(|(name, value)| format!(" {name}={}", json_text(value))).collect();
                println!(
                    "  ✗ {} [{}{}]: online {} @ {} vs point-in-time {} @ {} — {}",
                    feature.feature,
                    example.entity.join(","),
                    request.concat(),
                    json_text(&example.online),
                    example.online_event_time.as_deref().unwrap_or("-"),
                    json_text(&example.offline),
                    example.offline_event_time.as_deref().unwrap_or("-"),
                    example.cause
                );
            }
        }
    }
    let divergent = report.divergent();
    println!("\n{}", if divergent == 0 { "All sampled values agree.".to_string() } else { format!("{divergent} divergent values.") });
    Ok(())
}

/// A value as its JSON text (`3.0`, `"eu"`, `null`), as the report's
/// `--json` output writes it.
fn json_text(value: &almanac::core::Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
