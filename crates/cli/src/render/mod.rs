//! Presentation helpers: tables and JSON, and (in submodules) the pages
//! the commands write.

pub mod monitor_html;

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic).set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    table
}

pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn tags(tags: &std::collections::BTreeMap<String, String>) -> String {
    tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

/// A value for a table cell: text as it is (not JSON-escaped), `null` for
/// a missing value, everything else as its JSON.
pub fn value(value: &almanac::core::Value) -> String {
    match value {
        almanac::core::Value::Null => "null".into(),
        almanac::core::Value::String(text) => text.clone(),
        other => serde_json::to_string(other).unwrap_or_default().trim_matches('"').to_string(),
    }
}

/// `1234567` → `1,234,567`.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
