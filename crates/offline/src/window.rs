//! Aggregation views offline (DESIGN §2.9): every entity row `(k, T)` gets
//! its key's aggregates over the events in `[T − w, T)`, computed by
//! `almanac-aggregate`'s sweep (the same states an online read merges).
//!
//! Layout: history events are bucketed by key with a counting sort in
//! source order, then each key's events are sorted by event time with a
//! *stable* sort, so equal times keep source order (`last` counts the later
//! row as newer). Entity rows are bucketed the same way and sorted by `T`.
//! Each aggregation then sweeps all keys once; aggregations run in parallel.

use std::sync::Arc;

use almanac_aggregate::{Layout, Prepared};
use almanac_core::{Aggregation, DType, Field};
use arrow::array::{ArrayRef, ListArray, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use arrow::buffer::OffsetBuffer;
use arrow::compute::take;
use arrow::datatypes::DataType;
use rayon::prelude::*;

use crate::{ViewRequest, ViewRows};

use crate::asof::{Probes, any_null, group_history, group_probes};
use crate::error::OfflineError;

/// The scanned events of an aggregation view.
pub struct Events<'a> {
    pub keys: &'a [ArrayRef],
    /// Event times (ns); invalid where `ts_valid` is false.
    pub ts: &'a [i64],
    pub ts_valid: &'a [bool],
}

/// The requested aggregations for every entity row, in row order.
/// `column` gives an aggregation's input column over the events.
pub fn window_aggregates<'c>(events: &Events, probes: &Probes, aggregations: &[&Aggregation], column: impl Fn(&str) -> Option<&'c ArrayRef> + Sync) -> Result<Vec<ArrayRef>, OfflineError> {
    let (index, ids, groups) = group_history(events.keys)?;
    let (mut event_order, event_groups) = bucket(&ids, groups, |row| events.ts_valid[row]);
    drop(ids);
    sort_groups(&mut event_order, &event_groups, |row| events.ts[row as usize]);

    let rows = probes.at.len();
    let probe_ids = group_probes(&index, probes.keys, rows)?;
    let ids: Vec<u32> = probe_ids.iter().map(|g| g.unwrap_or(u32::MAX)).collect();
    let (mut probe_order, probe_groups) = bucket(&ids, groups, |row| probes.at[row].is_some());
    let at: Vec<i64> = probes.at.iter().map(|t| t.unwrap_or(i64::MIN)).collect();
    sort_groups(&mut probe_order, &probe_groups, |row| at[row as usize]);
    // A known-nothing key (not null, with a time) reads as the empty window.
    let empty: Vec<u32> = (0..rows).filter(|&r| probe_ids[r].is_none() && probes.at[r].is_some() && !any_null(probes.keys, r)).map(|r| r as u32).collect();

    // Gather times and input columns into sorted order once: every sweep
    // then reads memory sequentially (indexing the scan order instead made
    // each of the 12 sweeps of a 10M-event history a cache miss per event).
    let gather = UInt32Array::from(event_order);
    let sorted_ts: Vec<i64> = gather.values().iter().map(|&e| events.ts[e as usize]).collect();
    let mut gathered: Vec<(&str, ArrayRef)> = Vec::new();
    for name in aggregations.iter().filter_map(|a| a.column.as_deref()) {
        if gathered.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let source = column(name).ok_or_else(|| OfflineError::Scan { source_name: String::new(), reason: format!("column `{name}` of an aggregation was not scanned") })?;
        gathered.push((name, take(source.as_ref(), &gather, None)?));
    }
    let identity: Vec<u32> = (0..gather.len() as u32).collect();
    let probe_at: Vec<i64> = probe_order.iter().map(|&row| at[row as usize]).collect();
    let layout = Layout { ts: &sorted_ts, events: &identity, event_groups: &event_groups, probes: &probe_order, probe_groups: &probe_groups, at: &probe_at, empty: &empty, rows };
    // Preparing casts each input and hashes `approx_count_distinct`'s
    // values: in parallel, as the sweeps are.
    let prepared = aggregations
        .par_iter()
        .map(|aggregation| {
            let input = match &aggregation.column {
                Some(name) => Some(gathered.iter().find(|(n, _)| *n == name.as_str()).map(|(_, c)| c).ok_or_else(|| OfflineError::Scan { source_name: String::new(), reason: format!("column `{name}` of aggregation `{}` was not scanned", aggregation.name) })?),
                None => None,
            };
            let window = aggregation.window.micros().saturating_mul(1_000);
            Ok(Prepared::new(aggregation, input, window)?)
        })
        .collect::<Result<Vec<_>, OfflineError>>()?;
    let passes = passes(&prepared);
    let answered: Vec<Vec<ArrayRef>> = passes
        .par_iter()
        .map(|pass| {
            let members: Vec<&Prepared> = pass.iter().map(|&i| &prepared[i]).collect();
            Ok(Prepared::sweep_pass(&members, &layout)?)
        })
        .collect::<Result<_, OfflineError>>()?;
    // Back into the order the aggregations were asked in.
    let mut out: Vec<Option<ArrayRef>> = vec![None; prepared.len()];
    for (pass, arrays) in passes.iter().zip(answered) {
        for (&index, array) in pass.iter().zip(arrays) {
            out[index] = Some(array);
        }
    }
    out.into_iter().map(|a| a.ok_or_else(|| OfflineError::Scan { source_name: String::new(), reason: "an aggregation was not answered".into() })).collect()
}

/// The sweeps to run: aggregations that share one pass (`sum` and `mean`
/// of a column over one window slide one exact sum) grouped together,
/// each other aggregation a pass of its own; indices into `prepared`.
fn passes(prepared: &[Prepared]) -> Vec<Vec<usize>> {
    let mut passes: Vec<Vec<usize>> = Vec::new();
    for (index, p) in prepared.iter().enumerate() {
        match passes.iter_mut().find(|pass| prepared[pass[0]].shares_pass_with(p)) {
            Some(pass) => pass.push(index),
            None => passes.push(vec![index]),
        }
    }
    passes
}

/// Rows bucketed by group id with a counting sort (stable: source order
/// within a group); rows with `u32::MAX` or failing `keep` are left out.
pub(crate) fn bucket(ids: &[u32], groups: usize, keep: impl Fn(usize) -> bool) -> (Vec<u32>, Vec<usize>) {
    let mut offsets = vec![0usize; groups + 1];
    for (row, &id) in ids.iter().enumerate() {
        if id != u32::MAX && keep(row) {
            offsets[id as usize + 1] += 1;
        }
    }
    for g in 0..groups {
        offsets[g + 1] += offsets[g];
    }
    let mut cursor = offsets.clone();
    let mut order = vec![0u32; offsets[groups]];
    for (row, &id) in ids.iter().enumerate() {
        if id != u32::MAX && keep(row) {
            order[cursor[id as usize]] = row as u32;
            cursor[id as usize] += 1;
        }
    }
    (order, offsets)
}

/// Sort every group by `time`, stably (equal times keep source order), in parallel.
fn sort_groups(order: &mut [u32], offsets: &[usize], time: impl Fn(u32) -> i64 + Sync) {
    let mut slices: Vec<&mut [u32]> = Vec::with_capacity(offsets.len());
    let mut rest: &mut [u32] = order;
    for pair in offsets.windows(2) {
        let (head, tail) = rest.split_at_mut(pair[1] - pair[0]);
        slices.push(head);
        rest = tail;
    }
    slices.par_iter_mut().with_min_len(256).for_each(|slice| slice.sort_by_key(|&row| time(row)));
}

/// Per entity with an event at or after `changed_from`: its events (all
/// scanned, i.e. in `[end − widest, end]`) as one list per state column,
/// in `(ts, source order)` order, stamped `end`. Also the events read.
#[allow(clippy::too_many_arguments)]
pub fn states(request: &ViewRequest, keys: &[ArrayRef], ts: &[i64], ts_valid: &[bool], columns: &[ArrayRef], fields: &[Field], changed_from: i64, end: i64) -> Result<(ViewRows, usize), crate::error::OfflineError> {
    let (_, ids, groups) = group_history(keys)?;
    let (mut order, offsets) = bucket(&ids, groups, |row| ts_valid[row]);
    sort_groups(&mut order, &offsets, |row| ts[row as usize]);
    // Groups with a change, and their events (flattened, group by group).
    let mut first_rows: Vec<u32> = Vec::new();
    let mut flat: Vec<u32> = Vec::new();
    let mut lengths: Vec<usize> = Vec::new();
    for pair in offsets.windows(2) {
        let events = &order[pair[0]..pair[1]];
        if events.is_empty() || !events.iter().any(|&e| ts[e as usize] >= changed_from) {
            continue;
        }
        first_rows.push(events[0]);
        flat.extend_from_slice(events);
        lengths.push(events.len());
    }
    let picked = UInt32Array::from(first_rows);
    let flat = UInt32Array::from(flat);
    let offsets = OffsetBuffer::from_lengths(lengths.iter().copied());
    let mut out: Vec<(String, ArrayRef)> = Vec::new();
    for ((_, key), column) in request.join_keys.iter().zip(keys) {
        out.push((key.name.clone(), take(column.as_ref(), &picked, None)?));
    }
    let entities = picked.len();
    out.push(("event_timestamp".into(), Arc::new(TimestampMicrosecondArray::from(vec![end.div_euclid(1_000); entities]).with_timezone("UTC"))));
    let times: ArrayRef = Arc::new(TimestampMicrosecondArray::from_iter_values(flat.values().iter().map(|&e| ts[e as usize].div_euclid(1_000))).with_timezone("UTC"));
    out.push((almanac_aggregate::EVENT_TIMES.into(), list(times, &DType::Timestamp, &offsets)?));
    for (field, column) in fields.iter().zip(columns) {
        out.push((field.name.clone(), list(take(column.as_ref(), &flat, None)?, &field.dtype, &offsets)?));
    }
    let batch = RecordBatch::try_from_iter(out)?;
    let mut state_request = request.clone();
    state_request.view.schema = almanac_aggregate::state_schema(&request.view);
    state_request.source.created_timestamp_column = None;
    Ok((ViewRows::from_batch(&state_request, batch)?, ts.len()))
}

/// `values` cut into lists of `dtype` at `offsets`.
fn list(values: ArrayRef, dtype: &DType, offsets: &OffsetBuffer<i32>) -> Result<ArrayRef, crate::error::OfflineError> {
    let DataType::List(item) = DType::List(Box::new(dtype.clone())).to_arrow() else {
        return Err(crate::error::OfflineError::Internal("a list dtype is not an Arrow list".into()));
    };
    let values = arrow::compute::cast(&values, item.data_type())?;
    Ok(Arc::new(ListArray::try_new(item, offsets.clone(), values, None)?))
}
