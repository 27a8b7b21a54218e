//! The `almanac monitor --html` page: one self-contained file (inline CSS
//! and SVG, no scripts, no network) drawn from a [`MonitorReport`].
//!
//! Presentation belongs at the edge: the facade computes the report, the CLI
//! decides how it looks, like the text tables in `commands/monitor.rs`.

use almanac::monitor::{Histogram, MonitorReport};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An SVG bar chart of the two distributions overlaid.
fn svg(histogram: &Histogram) -> String {
    let (width, height, pad) = (560.0, 180.0, 24.0);
    let n = histogram.labels.len().max(1) as f64;
    let top = histogram.reference.iter().chain(&histogram.current).cloned().fold(0.0, f64::max).max(1e-9);
    let slot = (width - 2.0 * pad) / n;
    let mut out = format!(r#"<svg class="hist" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" role="img">"#, height + 40.0);
    for (i, label) in histogram.labels.iter().enumerate() {
        let x = pad + i as f64 * slot;
        for (series, (value, class)) in [(histogram.reference[i], "ref"), (histogram.current[i], "cur")].iter().enumerate() {
            let h = value / top * (height - pad);
            let bar_x = x + slot * 0.1 + series as f64 * slot * 0.4;
            out.push_str(&format!(r#"<rect class="{class}" x="{bar_x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}"><title>{} {}: {:.1}%</title></rect>"#, height - h, slot * 0.4, if *class == "ref" { "reference" } else { "current" }, escape(label), value * 100.0));
        }
        out.push_str(&format!(r#"<text x="{:.1}" y="{}" font-size="9" text-anchor="middle">{}</text>"#, x + slot / 2.0, height + 14.0, escape(label)));
    }
    out.push_str("</svg>");
    out
}

/// One self-contained page (inline CSS and SVG, no scripts, no network).
pub fn html(report: &MonitorReport) -> String {
    let mut body = String::new();
    for view in &report.views {
        body.push_str(&format!("<section><h2>{}</h2><p>watermark {} · newest online value {} · staleness {} (limit {}) · rows: reference {}, current {}</p>",
            escape(&view.view),
            view.watermark.as_deref().unwrap_or("none"),
            view.newest_online.as_deref().unwrap_or("none"),
            view.staleness_online_seconds.map(|s| format!("{:.0} s", s)).unwrap_or_else(|| "-".into()),
            view.max_staleness_seconds.map(|s| format!("{:.0} s", s)).unwrap_or_else(|| "none".into()),
            view.reference_rows, view.current_rows));
        for alert in &view.alerts {
            body.push_str(&format!(r#"<p class="alert">⚠ {}</p>"#, escape(alert)));
        }
        for feature in &view.features {
            let pct = |v: Option<f64>| v.map(|v| format!("{:.1}%", v * 100.0)).unwrap_or_else(|| "-".into());
            body.push_str(&format!(r#"<div class="feature"><h3>{} <small>{}</small></h3><p>null rate: reference {}, current {} · PSI {} · KS {}</p>"#,
                escape(&feature.feature), escape(&feature.dtype), pct(feature.null_rate_reference), pct(feature.null_rate_current),
                feature.psi.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into()), feature.ks.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into())));
            for alert in &feature.alerts {
                body.push_str(&format!(r#"<p class="alert">⚠ {}</p>"#, escape(alert)));
            }
            if let Some(histogram) = &feature.histogram {
                body.push_str(&svg(histogram));
            }
            body.push_str("</div>");
        }
        body.push_str("</section>");
    }
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Almanac monitor {at}</title><style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} section{{border-top:2px solid #ccc;margin-top:1.5em}}
.feature{{display:inline-block;vertical-align:top;margin:0 1.5em 1.5em 0}} .alert{{color:#b00020;font-weight:600}}
rect.ref{{fill:#4e79a7;opacity:.75}} rect.cur{{fill:#f28e2b;opacity:.75}} .legend span{{padding:0 .6em;color:#fff}}
</style></head><body><h1>Almanac monitor</h1><p>at {at}; current window: {cur}; reference: {reference}; {alerts} alerts</p>
<p class="legend"><span style="background:#4e79a7">reference</span> <span style="background:#f28e2b">current</span></p>{body}</body></html>"#,
        at = escape(&report.at), cur = escape(&report.current_window), reference = escape(&report.reference), alerts = report.alerts()
    )
}
