//! `almanac materialize`, `almanac materialize-incremental` and `almanac online`.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use almanac::materialize::{MaterializeRequest, Progress, ViewReport};
use almanac::core::time::rfc3339_micros;
use almanac::online::parse_key_text;
use almanac::{FeatureSelection, FeatureStore};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{IncrementalArgs, MaterializeArgs, OnlineArgs};
use crate::render;
use crate::time::parse_datetime;

pub fn materialize(repo: &Path, args: &MaterializeArgs, json: bool) -> anyhow::Result<()> {
    let views = args.views.clone().map(|v| v.0);
    if args.reset_watermark {
        return reset_watermarks(repo, views.as_deref(), json);
    }
    // clap requires both unless --reset-watermark is given.
    let (Some(start), Some(end)) = (&args.start, &args.end) else { anyhow::bail!("pass --start and --end") };
    let request = MaterializeRequest { start: Some(parse_datetime(start)?), end: parse_datetime(end)?, views, incremental: false, allow_future_end: args.allow_future_end };
    run(repo, &request, json)
}

pub fn materialize_incremental(repo: &Path, args: &IncrementalArgs, json: bool) -> anyhow::Result<()> {
    let request = MaterializeRequest { start: None, end: parse_datetime(&args.end)?, views: args.views.clone().map(|v| v.0), incremental: true, allow_future_end: args.allow_future_end };
    run(repo, &request, json)
}

fn reset_watermarks(repo: &Path, views: Option<&[String]>, json: bool) -> anyhow::Result<()> {
    let store = FeatureStore::open(repo)?;
    let before = store.reset_watermarks(views)?;
    if json {
        let report: Vec<serde_json::Value> = before.iter().map(|(view, mark)| serde_json::json!({"view": view, "watermark_was": mark})).collect();
        return render::json(&report);
    }
    for (view, mark) in before {
        let was = mark.map_or_else(|| "none".to_string(), |m| m.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        println!("{view}: watermark reset (was {was}); the next materialize-incremental starts over");
    }
    Ok(())
}

fn run(repo: &Path, request: &MaterializeRequest, json: bool) -> anyhow::Result<()> {
    let store = FeatureStore::open(repo)?;
    let progress = Bar::new(!json && std::io::stderr().is_terminal());
    let reports = store.materialize(request, &progress)?;
    if json {
        return render::json(&reports);
    }
    let target = store.online_store()?.describe();
    for report in &reports {
        println!("{}", summary(report, &target));
    }
    Ok(())
}

fn window(report: &ViewReport) -> String {
    let end = report.end.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    match report.start {
        Some(start) => format!("{} .. {end}", start.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        None => format!("<= {end}"),
    }
}

/// One line per view: what was read, what was written, how fast.
pub fn summary(report: &ViewReport, target: &str) -> String {
    if report.up_to_date {
        let mark = report.watermark_before.unwrap_or(report.end).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        return format!("{}: already materialized up to {mark} (the view's watermark), at or past --end {}; nothing to do (`materialize --reset-watermark --views {}` starts over)", report.view, report.end.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true), report.view);
    }
    let rate = if report.seconds > 0.0 { report.source_rows as f64 / report.seconds } else { 0.0 };
    format!(
        "{}: {} source rows (event time {}) → {} entities, {} written, {} kept (store had newer) into {target} in {:.2} s ({} rows/s)",
        report.view,
        render::count(report.source_rows),
        window(report),
        render::count(report.entities),
        render::count(report.written as usize),
        render::count(report.kept_newer as usize),
        report.seconds,
        render::count(rate as usize),
    )
}

/// An indicatif bar per view on a terminal; nothing otherwise (the summary
/// lines are printed at the end either way).
struct Bar {
    enabled: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bar {
    fn new(enabled: bool) -> Self {
        Bar { enabled, bar: Mutex::new(None) }
    }

    fn replace(&self, bar: Option<ProgressBar>) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(old) = slot.take() {
                old.finish_and_clear();
            }
            *slot = bar;
        }
    }
}

impl Progress for Bar {
    fn scanning(&self, view: &str) {
        if self.enabled {
            let spinner = ProgressBar::new_spinner().with_message(format!("{view}: scanning the offline store"));
            spinner.enable_steady_tick(std::time::Duration::from_millis(100));
            self.replace(Some(spinner));
        }
    }

    fn writing(&self, view: &str, records: u64) {
        if self.enabled {
            let bar = ProgressBar::new(records).with_message(view.to_string());
            let style = ProgressStyle::with_template("{msg}: [{bar:30}] {human_pos}/{human_len} records, {per_sec}, ETA {eta}").map(|s| s.progress_chars("=> "));
            if let Ok(style) = style {
                bar.set_style(style);
            }
            self.replace(Some(bar));
        }
    }

    fn wrote(&self, records: u64) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref() {
                bar.inc(records);
            }
    }

    fn finished(&self, _report: &ViewReport) {
        self.replace(None);
    }
}

pub fn online(repo: &Path, args: &OnlineArgs, json: bool) -> anyhow::Result<()> {
    let store = FeatureStore::open(repo)?;
    let selection = match (&args.features, &args.feature_service) {
        (Some(features), _) => FeatureSelection::parse_refs(features)?,
        (None, Some(service)) => FeatureSelection::Service(service.clone()),
        (None, None) => anyhow::bail!("pass --features or --feature-service"),
    };
    let mut columns = entity_columns(&store, &args.entity)?;
    columns.extend(request_columns(&store, &selection, &args.request, args.entity.len())?);
    let entities = almanac::entity_batch(&columns)?;
    let response = store.get_online_features(&selection, &entities, args.full_feature_names)?;
    if json {
        // The server's own encoder: `--json` prints exactly its response.
        println!("{}", String::from_utf8_lossy(&almanac_server::feast::response_bytes(&response)));
        return Ok(());
    }
    println!("{}", table(&response, entities.num_columns()));
    Ok(())
}

/// The response as a table: one row per entity, its values, then each
/// distinct status (with event time) of its features.
pub fn table(response: &almanac::OnlineResponse, keys: usize) -> String {
    let names = response.feature_names();
    let mut header: Vec<&str> = names.clone();
    header.push("status / event time");
    let mut body = Vec::new();
    for row in 0..response.num_rows() {
        let mut line: Vec<String> = (0..names.len()).map(|column| render::value(&response.value(column, row))).collect();
        let statuses: Vec<String> = (keys..names.len())
            .map(|column| match response.event_timestamps[column][row] {
                Some(ts) => format!("{} @ {}", response.statuses[column][row].as_str(), rfc3339_micros(ts)),
                None => response.statuses[column][row].as_str().to_string(),
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        line.push(statuses.join("; "));
        body.push(line);
    }
    render::table(&header, body).to_string()
}

/// `--request amount=12.5` (once for all entities, or once per entity) as
/// columns, each value parsed to its request field's dtype.
fn request_columns(store: &FeatureStore, selection: &FeatureSelection, flags: &[String], rows: usize) -> anyhow::Result<Vec<(String, Vec<almanac::core::Value>)>> {
    if flags.is_empty() {
        return Ok(Vec::new());
    }
    anyhow::ensure!(flags.len() == 1 || flags.len() == rows, "{} --request flags for {rows} entities; give one for all, or one per --entity", flags.len());
    let fields = store.request_fields(selection)?;
    let mut columns: Vec<(String, Vec<almanac::core::Value>)> = Vec::new();
    for (index, flag) in flags.iter().enumerate() {
        for pair in flag.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, text) = pair.split_once('=').with_context(|| format!("`{pair}` is not FIELD=VALUE; write `--request amount=12.5`"))?;
            let name = name.trim();
            let Some((_, dtype)) = fields.iter().find(|(field, _)| field == name) else {
                let known: Vec<&str> = fields.iter().map(|(field, _)| field.as_str()).collect();
                anyhow::bail!("`{name}` is not a request field of the requested features; they need: {}", if known.is_empty() { "none".to_string() } else { known.join(", ") });
            };
            let value = almanac::core::convert::coerce(&almanac::core::Value::String(text.trim().to_string()), dtype)
                .or_else(|_| text.trim().parse::<i64>().map(almanac::core::Value::Int64).map_err(|_| ()).and_then(|v| almanac::core::convert::coerce(&v, dtype).map_err(|_| ())))
                .or_else(|_| text.trim().parse::<f64>().map(almanac::core::Value::Float64).map_err(|_| ()).and_then(|v| almanac::core::convert::coerce(&v, dtype).map_err(|_| ())))
                .or_else(|_| text.trim().parse::<bool>().map(almanac::core::Value::Bool).map_err(|_| ()).and_then(|v| almanac::core::convert::coerce(&v, dtype).map_err(|_| ())))
                .map_err(|_| anyhow::anyhow!("request field `{name}` is {dtype}, and `{text}` is not one"))?;
            if !columns.iter().any(|(n, _)| n == name) {
                columns.push((name.to_string(), vec![almanac::core::Value::Null; if flags.len() == 1 { 1 } else { rows }]));
            }
            if let Some((_, column)) = columns.iter_mut().find(|(n, _)| n == name) {
                column[if flags.len() == 1 { 0 } else { index }] = value;
            }
        }
    }
    if flags.len() == 1 {
        for (_, column) in &mut columns {
            let value = column[0].clone();
            *column = vec![value; rows];
        }
    }
    Ok(columns)
}

/// `--entity user_id=1,merchant_id=7` (one entity row per flag) as columns,
/// each value parsed to its key's registered dtype. A key missing from a
/// row is null there.
fn entity_columns(store: &FeatureStore, flags: &[String]) -> anyhow::Result<Vec<(String, Vec<almanac::core::Value>)>> {
    let mut rows: Vec<Vec<(String, String)>> = Vec::new();
    for flag in flags {
        let mut row = Vec::new();
        for pair in flag.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = pair.split_once('=').with_context(|| format!("`{pair}` is not KEY=VALUE; write `--entity user_id=42` (compound keys: `--entity user_id=1,merchant_id=7`)"))?;
            row.push((key.trim().to_string(), value.trim().to_string()));
        }
        rows.push(row);
    }
    let mut names: Vec<String> = Vec::new();
    for (key, _) in rows.iter().flatten() {
        if !names.contains(key) {
            names.push(key.clone());
        }
    }
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let dtype = store.join_key_dtype(&name)?;
        let values = rows
            .iter()
            .map(|row| match row.iter().find(|(k, _)| *k == name) {
                Some((_, text)) => Ok(parse_key_text(&name, text, &dtype)?),
                None => Ok(almanac::core::Value::Null),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        columns.push((name, values));
    }
    anyhow::ensure!(!columns.is_empty(), "no entities given; pass --entity KEY=VALUE (e.g. --entity user_id=42)");
    Ok(columns)
}
