//! `almanac monitor`: staleness, null rates and drift per view and feature.
//! Exit code 0 when quiet, 1 when any alert fires, 2 on error.

use std::path::Path;
use std::process::ExitCode;

use almanac::FeatureStore;
use almanac::monitor::{Current, MonitorReport, MonitorRequest, Reference};
use anyhow::Context;

use crate::args::{CurrentSample, MonitorArgs};
use crate::render;

pub fn run(repo: &Path, args: &MonitorArgs, json: bool) -> ExitCode {
    match check(repo, args, json) {
        Ok(report) if report.alerts() == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => {
            crate::report(&error);
            ExitCode::from(2)
        }
    }
}

fn duration(text: &str, flag: &str) -> anyhow::Result<i64> {
    let parsed: almanac::core::Duration = text.parse().map_err(|e: almanac::core::duration::DurationError| anyhow::anyhow!("{flag} `{text}`: {}", e.reason))?;
    anyhow::ensure!(!parsed.is_zero(), "{flag} must be longer than zero");
    Ok(parsed.micros())
}

fn check(repo: &Path, args: &MonitorArgs, json: bool) -> anyhow::Result<MonitorReport> {
    let store = FeatureStore::open(repo)?;
    let at = crate::time::parse_datetime(&args.at)?.timestamp_micros();
    let reference = match &args.reference_file {
        Some(path) => Reference::File(path.clone()),
        None => Reference::Window { micros: duration(&args.reference_window, "--reference-window")? },
    };
    let views = args.views.clone().map(|v| v.0);
    let current = match args.current {
        CurrentSample::Online => Current::Online,
        CurrentSample::Offline => Current::Offline,
    };
    let request = MonitorRequest { views, at_micros: at, window_micros: duration(&args.window, "--window")?, reference, current };
    let report = store.monitor(&request)?;
    if let Some(path) = &args.html {
        std::fs::write(path, render::monitor_html::html(&report)).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if json {
        render::json(&report)?;
    } else {
        print(&report);
        if let Some(path) = &args.html {
            println!("\nHTML report: {}", path.display());
        }
    }
    Ok(report)
}

fn print(report: &MonitorReport) {
    println!("Monitor at {}: current window {}, reference {}", report.at, report.current_window, report.reference);
    for view in &report.views {
        let age = |s: Option<f64>| s.map(|s| almanac::core::Duration::from_seconds(s.max(0.0) as i64).to_string()).unwrap_or_else(|| "-".into());
        println!(
            "\n{}: watermark {} ({} ago), newest online value {} ago (limit {}); rows: reference {}, current {}",
            view.view,
            view.watermark.as_deref().unwrap_or("none"),
            age(view.staleness_watermark_seconds),
            age(view.staleness_online_seconds),
            age(view.max_staleness_seconds),
            render::count(view.reference_rows),
            render::count(view.current_rows)
        );
        if let Some(stream) = &view.stream {
            println!(
                "  stream {}: newest event {} ({} ago), last batch {} ago",
                stream.source,
                stream.newest_event.as_deref().unwrap_or("none (never ingested here)"),
                age(stream.newest_event_age_seconds),
                age(stream.last_batch_age_seconds)
            );
        }
        for alert in &view.alerts {
            println!("  ALERT {alert}");
        }
        let pct = |v: Option<f64>| v.map(|v| format!("{:.1}%", v * 100.0)).unwrap_or_else(|| "-".into());
        let num = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
        let rows = view.features.iter().map(|f| vec![f.feature.clone(), pct(f.null_rate_reference), pct(f.null_rate_current), num(f.psi), num(f.ks), if f.alerts.is_empty() { "ok".into() } else { f.alerts.join("; ") }]).collect();
        for line in render::table(&["feature", "null ref", "null now", "PSI", "KS", "status"], rows).to_string().lines() {
            println!("  {line}");
        }
    }
    let alerts = report.alerts();
    println!("\n{}", if alerts == 0 { "No alerts.".to_string() } else { format!("{alerts} alerts.") });
}
