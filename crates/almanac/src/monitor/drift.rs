//! The drift statistics behind `monitor`: a column sampled as numbers or
//! category labels, null rates, decile and top-value histograms, the
//! population stability index and the two-sample Kolmogorov–Smirnov
//! statistic.
//!
//! Pure functions over Arrow arrays and slices, no store and no I/O, so each
//! one is tested here on its own; the thresholds and alerts built on them
//! live in the parent module.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType};

use serde::Serialize;

/// Two distributions binned the same way, for a report to draw.
#[derive(Debug, Clone, Serialize)]
pub struct Histogram {
    pub labels: Vec<String>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

/// Bins per histogram: deciles for numbers, the top values (plus "other")
/// for categories.
const BINS: usize = 10;

/// One feature's values as numbers or as category labels.
pub(super) enum Sample {
    Numbers(Vec<f64>),
    Categories(Vec<String>),
}

impl Sample {
    pub(super) fn len(&self) -> usize {
        match self {
            Sample::Numbers(v) => v.len(),
            Sample::Categories(v) => v.len(),
        }
    }
}

/// A column's non-null values as a sample, and its null count. Timestamps
/// are sampled as microseconds since the epoch whatever their unit and zone.
pub(super) fn column_sample(column: &ArrayRef) -> (Sample, usize) {
    let nulls = column.null_count();
    let numbers = |values: Vec<f64>| (Sample::Numbers(values), nulls);
    match column.data_type() {
        DataType::Int64 => numbers(column.as_primitive::<Int64Type>().iter().flatten().map(|v| v as f64).collect()),
        DataType::Int32 => numbers(column.as_primitive::<Int32Type>().iter().flatten().map(f64::from).collect()),
        DataType::Float64 => numbers(column.as_primitive::<Float64Type>().iter().flatten().filter(|v| v.is_finite()).collect()),
        DataType::Float32 => numbers(column.as_primitive::<Float32Type>().iter().flatten().filter(|v| v.is_finite()).map(f64::from).collect()),
        DataType::Timestamp(unit, _) => numbers(timestamp_micros(column, *unit).into_iter().map(|v| v as f64).collect()),
        _ => {
            let labels = (0..column.len()).filter(|&i| column.is_valid(i)).map(|i| arrow::util::display::array_value_to_string(column, i).unwrap_or_default()).collect();
            (Sample::Categories(labels), nulls)
        }
    }
}

/// A timestamp column's non-null values in microseconds. Training-set files
/// and sources store seconds, milliseconds or nanoseconds as well as
/// microseconds; the zone only labels the instant, so it is ignored.
/// Nanoseconds round down, as the offline engine's export does.
fn timestamp_micros(column: &ArrayRef, unit: TimeUnit) -> Vec<i64> {
    match unit {
        TimeUnit::Second => column.as_primitive::<TimestampSecondType>().iter().flatten().map(|s| s.saturating_mul(1_000_000)).collect(),
        TimeUnit::Millisecond => column.as_primitive::<TimestampMillisecondType>().iter().flatten().map(|ms| ms.saturating_mul(1_000)).collect(),
        TimeUnit::Microsecond => column.as_primitive::<TimestampMicrosecondType>().iter().flatten().collect(),
        TimeUnit::Nanosecond => column.as_primitive::<TimestampNanosecondType>().iter().flatten().map(|ns| ns.div_euclid(1_000)).collect(),
    }
}

/// The share of nulls, when there are any rows.
pub(super) fn rate(nulls: usize, total: usize) -> Option<f64> {
    (total > 0).then(|| nulls as f64 / total as f64)
}

/// PSI with a small floor on shares, so an empty bin does not make it infinite.
pub(super) fn psi(reference: &[f64], current: &[f64]) -> f64 {
    reference
        .iter()
        .zip(current)
        .map(|(r, c)| {
            let (r, c) = (r.max(1e-4), c.max(1e-4));
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// The two-sample Kolmogorov–Smirnov statistic: the largest gap between the
/// two empirical distribution functions.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut gap) = (0usize, 0usize, 0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        gap = gap.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    gap
}

/// Decile edges of the reference (deduplicated) and both sides' bin shares.
/// The reference must not be empty.
pub(super) fn numeric_histogram(reference: &[f64], current: &[f64]) -> Histogram {
    let mut sorted = reference.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..BINS).map(|q| sorted[(q * (sorted.len() - 1)) / BINS]).collect();
    edges.dedup();
    let bin = |v: f64| edges.partition_point(|e| *e < v);
    let shares = |values: &[f64]| {
        let mut counts = vec![0usize; edges.len() + 1];
        for v in values {
            counts[bin(*v)] += 1;
        }
        counts.iter().map(|c| *c as f64 / values.len().max(1) as f64).collect::<Vec<f64>>()
    };
    let mut labels = Vec::with_capacity(edges.len() + 1);
    for i in 0..=edges.len() {
        labels.push(match i {
            0 => format!("≤ {}", short(edges.first().copied().unwrap_or(0.0))),
            i if i == edges.len() => format!("> {}", short(edges[i - 1])),
            i => format!("{}–{}", short(edges[i - 1]), short(edges[i])),
        });
    }
    Histogram { labels, reference: shares(reference), current: shares(current) }
}

/// A bin edge as a short label.
fn short(v: f64) -> String {
    if v.abs() >= 1e5 || (v != 0.0 && v.abs() < 1e-3) { format!("{v:.2e}") } else { format!("{:.3}", v).trim_end_matches('0').trim_end_matches('.').to_string() }
}

/// The reference's most frequent values (at most [`BINS`]) plus "other",
/// and both sides' shares of each.
pub(super) fn categorical_histogram(reference: &[String], current: &[String]) -> Histogram {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for v in reference {
        *counts.entry(v).or_default() += 1;
    }
    let mut top: Vec<(&str, usize)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    top.truncate(BINS);
    let labels: Vec<String> = top.iter().map(|(v, _)| v.to_string()).chain(["other".to_string()]).collect();
    let shares = |values: &[String]| {
        let mut counts = vec![0usize; labels.len()];
        for v in values {
            let i = labels[..labels.len() - 1].iter().position(|l| l == v).unwrap_or(labels.len() - 1);
            counts[i] += 1;
        }
        counts.iter().map(|c| *c as f64 / values.len().max(1) as f64).collect::<Vec<f64>>()
    };
    Histogram { reference: shares(reference), current: shares(current), labels }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray};

    use super::*;

    #[test]
    fn identical_samples_do_not_drift_and_shifted_ones_do() {
        let a: Vec<f64> = (0..1000).map(|i| (i % 100) as f64).collect();
        let same = numeric_histogram(&a, &a);
        assert!(psi(&same.reference, &same.current) < 1e-9);
        assert_eq!(ks_statistic(&a, &a), 0.0);
        let shifted: Vec<f64> = a.iter().map(|v| v + 50.0).collect();
        let moved = numeric_histogram(&a, &shifted);
        assert!(psi(&moved.reference, &moved.current) > 1.0);
        assert!((ks_statistic(&a, &shifted) - 0.5).abs() < 0.02);
    }

    #[test]
    fn categories_keep_top_values_and_other() {
        let r: Vec<String> = (0..100).map(|i| format!("v{}", i % 12)).collect();
        let h = categorical_histogram(&r, &r);
        assert_eq!(h.labels.len(), BINS + 1);
        assert!((h.reference.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(psi(&h.reference, &h.current) < 1e-9);
    }

    /// A reference file or source may store timestamp features in any unit
    /// and zone; sampling used to assume microseconds and panicked on the
    /// rest.
    #[test]
    fn timestamp_features_in_every_unit_and_zone_are_sampled_without_panic() {
        // 1969-12-31T23:59:59Z, 1970-01-01T00:00:00Z, 2024-03-01T12:00:00Z, and a null.
        let seconds = [Some(-1i64), Some(0), None, Some(1_709_294_400)];
        let expected: Vec<f64> = seconds.iter().flatten().map(|s| (s * 1_000_000) as f64).collect();
        let scaled = |factor: i64| seconds.iter().map(|&s| s.map(|s| s * factor)).collect::<Vec<Option<i64>>>();
        for zone in [None, Some("UTC"), Some("+02:00")] {
            // The zone is set as a label only (a cast from no zone would
            // shift the instants as if they were local times).
            let columns: [ArrayRef; 4] = [
                Arc::new(TimestampSecondArray::from(scaled(1)).with_timezone_opt(zone)),
                Arc::new(TimestampMillisecondArray::from(scaled(1_000)).with_timezone_opt(zone)),
                Arc::new(TimestampMicrosecondArray::from(scaled(1_000_000)).with_timezone_opt(zone)),
                Arc::new(TimestampNanosecondArray::from(scaled(1_000_000_000)).with_timezone_opt(zone)),
            ];
            for column in &columns {
                let (sample, nulls) = column_sample(column);
                let Sample::Numbers(values) = sample else { panic!("{} was sampled as categories", column.data_type()) };
                assert_eq!(values, expected, "{}", column.data_type());
                assert_eq!(nulls, 1, "{}", column.data_type());
            }
        }
        // Below a microsecond, nanoseconds round down (towards the past).
        let fine: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![1_999i64, -1]).with_timezone("UTC"));
        let (Sample::Numbers(values), _) = column_sample(&fine) else { panic!("nanoseconds were sampled as categories") };
        assert_eq!(values, vec![1.0, -1.0]);
    }

}
