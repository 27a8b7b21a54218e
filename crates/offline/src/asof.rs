//! The native point-in-time (as-of) join: for every entity row `(k, T)`, the
//! index of the history row of key `k` that DESIGN §2 says wins.
//!
//! Semantics (the one place they are implemented):
//! * candidates: same key, event time `ts <= T`, and `ts >= T - ttl` when a
//!   non-zero TTL is set (both ends inclusive);
//! * winner: greatest `ts`, then greatest created time (rows without one
//!   count as the smallest), then, for rows identical in both, the row whose
//!   feature values sort last (column by column, nulls first). That last rule
//!   depends only on the data, never on file or scan order, so every engine
//!   and every run picks the same row;
//! * no candidate, or a null key on either side: no match.
//!
//! Algorithm: history rows get a dense group id per key (a hash map from key
//! to id), are bucketed by group with a counting sort (O(n), no comparison
//! sort over the whole history), and each group is sorted by
//! `(ts, created, values)` in parallel. Each entity row then binary-searches
//! its group for the last `ts <= T`: the winner is exactly that row, and the
//! TTL only needs checking on it. Work is O(n + m log g) for n history rows,
//! m entity rows and groups of size g, with no allocation per row.
//!
//! Memory: the history's keys, times and one permutation (about 28 bytes per
//! history row beyond the Arrow data). Histories larger than memory are
//! handled a level up, by splitting both sides into key-hash partitions.

use std::cmp::Ordering;

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Int64Type};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, Rows, SortField};
use arrow::array::{DynComparator, make_comparator};
use hashbrown::HashMap;
use rayon::prelude::*;

/// The history side of one feature view, normalized: key columns, event and
/// created times as nanoseconds since the epoch (UTC), and feature columns.
pub struct History<'a> {
    pub keys: &'a [ArrayRef],
    pub ts: &'a [i64],
    /// Created times; `None` when the source has no created-timestamp
    /// column. A null created time is `i64::MIN`: it sorts below every real
    /// instant, which is exactly the rule (a missing created time loses).
    pub created: Option<&'a [i64]>,
    /// Null event times never match (a row without an event time has no
    /// place in history).
    pub ts_valid: Option<&'a [bool]>,
    pub features: &'a [ArrayRef],
}

/// The entity side: key columns (same types and order as the history's) and
/// the as-of instants in nanoseconds (`None` = null timestamp, no match).
pub struct Probes<'a> {
    pub keys: &'a [ArrayRef],
    pub at: &'a [Option<i64>],
}

/// Key → group id, for int64 single keys (the common case, hashed as
/// integers) or anything else (compound/string keys, via Arrow's row format).
pub(crate) enum KeyIndex {
    Int(HashMap<i64, u32>),
    Rows(RowConverter, HashMap<Box<[u8]>, u32>),
}

fn is_single_int(keys: &[ArrayRef]) -> bool {
    keys.len() == 1 && keys[0].data_type() == &DataType::Int64
}

pub(crate) fn any_null(keys: &[ArrayRef], row: usize) -> bool {
    keys.iter().any(|k| k.is_null(row))
}

/// Group id of each history row (`u32::MAX` for a null key) and the group count.
pub(crate) fn group_history(keys: &[ArrayRef]) -> Result<(KeyIndex, Vec<u32>, usize), ArrowError> {
    let rows = keys.first().map(|k| k.len()).unwrap_or(0);
    let mut ids = Vec::with_capacity(rows);
    if keys.is_empty() {
        // A global view: every row is in the one group.
        return Ok((KeyIndex::Int(HashMap::from_iter([(0, 0)])), vec![0; rows], 1));
    }
    if is_single_int(keys) {
        let values = keys[0].as_primitive::<Int64Type>();
        let mut map: HashMap<i64, u32> = HashMap::with_capacity(rows / 16);
        for row in 0..rows {
            if values.is_null(row) {
                ids.push(u32::MAX);
                continue;
            }
            let next = map.len() as u32;
            ids.push(*map.entry(values.value(row)).or_insert(next));
        }
        let groups = map.len();
        return Ok((KeyIndex::Int(map), ids, groups));
    }
    let converter = RowConverter::new(keys.iter().map(|k| SortField::new(k.data_type().clone())).collect())?;
    let encoded = converter.convert_columns(keys)?;
    let mut map: HashMap<Box<[u8]>, u32> = HashMap::with_capacity(rows / 8);
    for row in 0..rows {
        if any_null(keys, row) {
            ids.push(u32::MAX);
            continue;
        }
        // Look up before inserting: only a new key allocates its bytes.
        let bytes = encoded.row(row);
        let id = match map.get(bytes.as_ref()) {
            Some(id) => *id,
            None => {
                let next = map.len() as u32;
                map.insert(bytes.as_ref().into(), next);
                next
            }
        };
        ids.push(id);
    }
    let groups = map.len();
    Ok((KeyIndex::Rows(converter, map), ids, groups))
}

/// Group id of each probe row (`None`: null key or a key with no history).
pub(crate) fn group_probes(index: &KeyIndex, keys: &[ArrayRef], rows: usize) -> Result<Vec<Option<u32>>, ArrowError> {
    Ok(match index {
        KeyIndex::Int(map) if keys.is_empty() => vec![map.get(&0).copied(); rows],
        KeyIndex::Int(map) => {
            let values = keys[0].as_primitive::<Int64Type>();
            (0..rows).map(|r| if values.is_null(r) { None } else { map.get(&values.value(r)).copied() }).collect()
        }
        KeyIndex::Rows(converter, map) => {
            let encoded: Rows = converter.convert_columns(keys)?;
            (0..rows).map(|r| if any_null(keys, r) { None } else { map.get(encoded.row(r).as_ref()).copied() }).collect()
        }
    })
}

/// For each probe, the winning history row (null when none): an index array
/// ready for `arrow::compute::take`.
pub fn asof_join(history: &History, probes: &Probes, ttl_nanos: Option<i64>) -> Result<UInt32Array, ArrowError> {
    let (index, ids, groups) = group_history(history.keys)?;
    // Counting sort of history rows by group (rows without a key or an event time left out).
    let (order, offsets) = crate::window::bucket(&ids, groups, |row| history.ts_valid.is_none_or(|v| v[row]));
    drop(ids);

    // Sort every group by (ts, created, values), in parallel, on contiguous
    // (ts, row) entries: direct comparisons, no random access into the
    // history until two rows tie on event time.
    let tie = TieBreak::new(history.features)?;
    let mut entries: Vec<(i64, u32)> = order.par_iter().with_min_len(4096).map(|&row| (history.ts[row as usize], row)).collect();
    drop(order);
    let created = history.created;
    let mut slices: Vec<&mut [(i64, u32)]> = Vec::with_capacity(groups);
    let mut rest: &mut [(i64, u32)] = &mut entries;
    for g in 0..groups {
        let (head, tail) = rest.split_at_mut(offsets[g + 1] - offsets[g]);
        slices.push(head);
        rest = tail;
    }
    slices.par_iter_mut().with_min_len(256).for_each(|slice| {
        slice.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| {
                let (x, y) = (a.1 as usize, b.1 as usize);
                created.map_or(Ordering::Equal, |c| c[x].cmp(&c[y])).then_with(|| tie.compare(x, y))
            })
        })
    });
    let sorted_ts: Vec<i64> = entries.par_iter().with_min_len(4096).map(|e| e.0).collect();
    let order: Vec<u32> = entries.par_iter().with_min_len(4096).map(|e| e.1).collect();
    drop(entries);

    // Probe: binary search each group for the last ts <= T.
    let probe_groups = group_probes(&index, probes.keys, probes.at.len())?;
    let ttl = ttl_nanos.filter(|t| *t > 0);
    let winners: Vec<u32> = probe_groups
        .par_iter()
        .zip(probes.at.par_iter())
        .with_min_len(4096)
        .map(|(group, at)| {
            let winner = (|| {
                let (group, at) = ((*group)? as usize, (*at)?);
                let (start, end) = (offsets[group], offsets[group + 1]);
                let visible = sorted_ts[start..end].partition_point(|&ts| ts <= at);
                let winner = start + visible.checked_sub(1)?;
                let fresh = ttl.is_none_or(|ttl| sorted_ts[winner] >= at.saturating_sub(ttl));
                fresh.then_some(order[winner])
            })();
            winner.unwrap_or(NO_MATCH)
        })
        .collect();
    // Build the nullable index array without an intermediate Vec<Option<u32>>.
    let valid = NullBuffer::from_iter(winners.iter().map(|w| *w != NO_MATCH));
    Ok(UInt32Array::new(ScalarBuffer::from(winners), Some(valid)))
}

/// Marks "no winner" in the probe results (history row indices are u32 and
/// never reach it: a history of u32::MAX rows is split by key long before).
const NO_MATCH: u32 = u32::MAX;

/// Compares two history rows by their feature values (nulls first, column by
/// column): the last-resort, order-independent tie-break.
struct TieBreak {
    comparators: Vec<DynComparator>,
}

impl TieBreak {
    fn new(features: &[ArrayRef]) -> Result<Self, ArrowError> {
        let options = SortOptions { descending: false, nulls_first: true };
        let comparators = features
            .iter()
            .filter(|array| comparable(array.data_type()))
            .map(|array| make_comparator(array.as_ref(), array.as_ref(), options))
            .collect::<Result<_, _>>()?;
        Ok(TieBreak { comparators })
    }

    fn compare(&self, a: usize, b: usize) -> Ordering {
        for comparator in &self.comparators {
            match comparator(a, b) {
                Ordering::Equal => continue,
                other => return other,
            }
        }
        Ordering::Equal
    }
}

fn comparable(data_type: &DataType) -> bool {
    !matches!(data_type, DataType::Null)
}

/// The winning row of every key among all history rows (no time bound; the
/// caller pre-filters to a window): one index per distinct non-null key, in
/// order of first appearance. Same winner rule as [`asof_join`].
pub fn latest_per_key(history: &History) -> Result<UInt32Array, ArrowError> {
    let (_, ids, groups) = group_history(history.keys)?;
    let tie = TieBreak::new(history.features)?;
    let created = history.created;
    let better = |a: usize, b: usize| -> bool {
        let order = history.ts[a]
            .cmp(&history.ts[b])
            .then_with(|| created.map_or(Ordering::Equal, |c| c[a].cmp(&c[b])))
            .then_with(|| tie.compare(a, b));
        order == Ordering::Greater
    };
    let mut best: Vec<Option<u32>> = vec![None; groups];
    for (row, &id) in ids.iter().enumerate() {
        let valid_ts = history.ts_valid.is_none_or(|v| v[row]);
        if id == u32::MAX || !valid_ts {
            continue;
        }
        let slot = &mut best[id as usize];
        if slot.is_none_or(|current| better(row, current as usize)) {
            *slot = Some(row as u32);
        }
    }
    Ok(UInt32Array::from(best.into_iter().flatten().collect::<Vec<u32>>()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};

    use super::*;

    fn run(keys: Vec<Option<i64>>, ts: Vec<i64>, created: Option<Vec<Option<i64>>>, value: Vec<Option<i64>>, probe_keys: Vec<Option<i64>>, at: Vec<Option<i64>>, ttl: Option<i64>) -> Vec<Option<u32>> {
        let keys: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(keys))];
        let features: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(value))];
        let probe_keys: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(probe_keys))];
        let created: Option<Vec<i64>> = created.map(|c| c.into_iter().map(|v| v.unwrap_or(i64::MIN)).collect());
        let history = History { keys: &keys, ts: &ts, created: created.as_deref(), ts_valid: None, features: &features };
        let probes = Probes { keys: &probe_keys, at: &at };
        asof_join(&history, &probes, ttl).expect("join").iter().collect()
    }

    #[test]
    fn boundaries_are_inclusive_on_both_ends() {
        // key 1 at t=10; probes at 10 (visible), 9 (not yet), 15 with ttl 5 (edge), 16 (expired).
        let got = run(vec![Some(1)], vec![10], None, vec![Some(7)], vec![Some(1); 4], vec![Some(10), Some(9), Some(15), Some(16)], Some(5));
        assert_eq!(got, vec![Some(0), None, Some(0), None]);
    }

    #[test]
    fn created_time_then_values_break_ties() {
        let got = run(
            vec![Some(1), Some(1), Some(1), Some(2), Some(2)],
            vec![5, 5, 5, 5, 5],
            Some(vec![Some(1), Some(3), Some(2), None, None]),
            vec![Some(0), Some(1), Some(2), Some(9), Some(3)],
            vec![Some(1), Some(2)],
            vec![Some(5), Some(5)],
            None,
        );
        // Key 1: greatest created wins (row 1). Key 2: equal times, no created: the greater value (row 3) wins.
        assert_eq!(got, vec![Some(1), Some(3)]);
    }

    #[test]
    fn null_keys_and_unknown_keys_do_not_match() {
        let got = run(vec![None, Some(1)], vec![1, 1], None, vec![Some(0), Some(1)], vec![None, Some(3), Some(1)], vec![Some(5), Some(5), None], None);
        assert_eq!(got, vec![None, None, None]);
    }

    #[test]
    fn compound_string_keys_use_the_row_format() {
        let keys: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec!["a", "a", "b"])), Arc::new(Int64Array::from(vec![1, 2, 1]))];
        let features: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![10, 20, 30]))];
        let probe_keys: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec!["a", "b", "b"])), Arc::new(Int64Array::from(vec![2, 1, 2]))];
        let ts = [1, 1, 1];
        let history = History { keys: &keys, ts: &ts, created: None, ts_valid: None, features: &features };
        let at = [Some(1), Some(1), Some(1)];
        let probes = Probes { keys: &probe_keys, at: &at };
        let got: Vec<Option<u32>> = asof_join(&history, &probes, None).expect("join").iter().collect();
        assert_eq!(got, vec![Some(1), Some(2), None]);
    }
}
