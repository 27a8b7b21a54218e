//! The window rule and the offline sweep over sorted events.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::Arc;

use almanac_core::{AggFunction, Aggregation, DType};
use arrow::array::{Array, ArrayRef, AsArray, DynComparator, Float64Array, Int64Array, ListArray, UInt32Array, make_comparator};
use arrow::buffer::OffsetBuffer;
use arrow::compute::{SortOptions, cast, take};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type};
use arrow::error::ArrowError;

use crate::exact::{Hll, IntSum, Moments, SlidingSum, hash_bytes, hash_f64, hash_i64, hash_str, total_cmp_sql, TAG_BYTES};

/// Whether an event stamped `ts` is inside the window of length `window`
/// that ends at `at`: `[at − window, at)`. The one statement of DESIGN
/// §2.9's rule: the event stamped exactly `at` (the labelled event itself)
/// is outside its own features; the one stamped `at − window` is inside.
pub fn in_window(ts: i64, at: i64, window: i64) -> bool {
    ts < at && ts >= at.saturating_sub(window)
}

/// Events grouped by key and sorted, and the probes (entity rows) to
/// answer, grouped the same way. Times are in one unit on both sides.
pub struct Layout<'a> {
    /// Event time of every event.
    pub ts: &'a [i64],
    /// Event indices grouped by key; each group sorted by `(ts, seq)`
    /// (seq: source order, later is newer).
    pub events: &'a [u32],
    /// Group `g`'s events are `events[event_groups[g]..event_groups[g + 1]]`.
    pub event_groups: &'a [usize],
    /// Probe rows grouped in the same group order, each group sorted by `T`.
    pub probes: &'a [u32],
    /// Group `g`'s probes are `probes[probe_groups[g]..probe_groups[g + 1]]`.
    pub probe_groups: &'a [usize],
    /// `T` of each probe, in the order of `probes` (`at[i]` belongs to
    /// `probes[i]`), so a sweep reads it sequentially rather than missing
    /// the cache once per probe on a row-ordered array.
    pub at: &'a [i64],
    /// Probe rows whose key has no events at all: the empty window.
    pub empty: &'a [u32],
    /// Number of probe rows; rows in neither list (a null key or `T`) get null.
    pub rows: usize,
}

impl Layout<'_> {
    fn groups(&self) -> usize {
        self.event_groups.len().saturating_sub(1)
    }
}

/// One aggregation with its input column prepared for the sweep.
pub struct Prepared {
    function: AggFunction,
    window: i64,
    n: usize,
    input: Input,
    output: DataType,
}

enum Input {
    /// `count` without a column: every event.
    Rows,
    /// Only validity matters (`count` of a column).
    Valid(ArrayRef),
    Int(Int64Array),
    Float(Float64Array),
    /// `min`/`max`/`last`: the column as its output type, taken by index.
    Indexed(ArrayRef),
    /// `approx_count_distinct`: each event's fixed hash (null: skipped).
    Hashes(Vec<Option<u64>>),
}

impl Prepared {
    /// `column` is the aggregation's input column over all events (`None`
    /// for `count` of rows); `window` is in the unit of the layout's times.
    pub fn new(aggregation: &Aggregation, column: Option<&ArrayRef>, window: i64) -> Result<Self, ArrowError> {
        let dtype = aggregation.input_dtype.clone();
        let function = aggregation.function;
        let missing = || ArrowError::InvalidArgumentError(format!("aggregation `{}` needs its column", aggregation.name));
        let unsupported = |d: &Option<DType>| ArrowError::InvalidArgumentError(format!("`{}` does not apply to a column of type {}", function.as_str(), d.as_ref().map_or_else(|| "unknown".to_string(), ToString::to_string)));
        let is_int = matches!(dtype, Some(DType::Int32 | DType::Int64));
        let is_float = matches!(dtype, Some(DType::Float32 | DType::Float64));
        let (input, output) = match function {
            AggFunction::Count => match column {
                None => (Input::Rows, DataType::Int64),
                Some(column) => (Input::Valid(column.clone()), DataType::Int64),
            },
            AggFunction::Sum if is_int => (Input::Int(cast(column.ok_or_else(missing)?, &DataType::Int64)?.as_primitive::<Int64Type>().clone()), DataType::Int64),
            AggFunction::Sum | AggFunction::Mean | AggFunction::Stddev | AggFunction::Variance if is_int || is_float => {
                (Input::Float(cast(column.ok_or_else(missing)?, &DataType::Float64)?.as_primitive::<Float64Type>().clone()), DataType::Float64)
            }
            AggFunction::Min | AggFunction::Max => {
                let target = dtype.as_ref().filter(|d| !matches!(d, DType::Bytes | DType::List(_))).ok_or_else(|| unsupported(&dtype))?.to_arrow();
                (Input::Indexed(cast(column.ok_or_else(missing)?, &target)?), target)
            }
            AggFunction::Last => {
                let target = dtype.as_ref().filter(|d| !matches!(d, DType::List(_))).ok_or_else(|| unsupported(&dtype))?.to_arrow();
                let list = DataType::List(Arc::new(Field::new("item", target.clone(), true)));
                (Input::Indexed(cast(column.ok_or_else(missing)?, &target)?), list)
            }
            AggFunction::ApproxCountDistinct => (Input::Hashes(hashes(column.ok_or_else(missing)?)?), DataType::Int64),
            _ => return Err(unsupported(&dtype)),
        };
        Ok(Prepared { function, window, n: aggregation.n.unwrap_or(1), input, output })
    }

    /// The output column's Arrow type.
    pub fn output_type(&self) -> &DataType {
        &self.output
    }

    /// The aggregate for every probe row of `layout`, in row order.
    pub fn sweep(&self, layout: &Layout) -> Result<ArrayRef, ArrowError> {
        match (&self.function, &self.input) {
            (AggFunction::Count, input) => {
                let valid = match input {
                    Input::Valid(column) => Some(column.clone()),
                    _ => None,
                };
                Ok(Arc::new(Int64Array::from(self.sliding(layout, Counter { valid, n: 0 }))))
            }
            (AggFunction::Sum, Input::Int(values)) => Ok(Arc::new(Int64Array::from(self.sliding(layout, IntSummer { values, sum: IntSum::new(), n: 0 })))),
            (AggFunction::Sum | AggFunction::Mean, Input::Float(_)) => Ok(Prepared::sweep_pass(&[self], layout)?.remove(0)),
            (AggFunction::Stddev | AggFunction::Variance, Input::Float(values)) => {
                Ok(Arc::new(Float64Array::from(self.sliding(layout, MomentKeeper { values, moments: Moments::new(), function: self.function }))))
            }
            (AggFunction::Min | AggFunction::Max, Input::Indexed(column)) => self.extremes(layout, column),
            (AggFunction::Last, Input::Indexed(column)) => self.last(layout, column),
            (AggFunction::ApproxCountDistinct, Input::Hashes(hashes)) => Ok(Arc::new(Int64Array::from(self.distinct(layout, hashes)))),
            _ => Err(ArrowError::InvalidArgumentError(format!("`{}`: input prepared for another function", self.function.as_str()))),
        }
    }

    /// Whether `self` and `other` are answered by one slide of one exact
    /// sum: `sum` of a float column and `mean`, over the same column and
    /// window (the mean is `round(Σx) / n`, as `Moments::mean` computes it
    /// online, so it needs the exact sum alone).
    pub fn shares_pass_with(&self, other: &Prepared) -> bool {
        match (&self.input, &other.input) {
            (Input::Float(a), Input::Float(b)) => {
                let sums = |p: &Prepared| matches!(p.function, AggFunction::Sum | AggFunction::Mean);
                sums(self) && sums(other) && self.window == other.window && (a.values().inner().ptr_eq(b.values().inner()) && a.nulls() == b.nulls() || a == b)
            }
            _ => false,
        }
    }

    /// The aggregates of `pass` (members that [`Prepared::shares_pass_with`]
    /// one another, or a single aggregation) from one sweep, in order.
    pub fn sweep_pass(pass: &[&Prepared], layout: &Layout) -> Result<Vec<ArrayRef>, ArrowError> {
        let [first, rest @ ..] = pass else { return Ok(Vec::new()) };
        let (Input::Float(values), AggFunction::Sum | AggFunction::Mean) = (&first.input, first.function) else {
            return match rest {
                [] => Ok(vec![first.sweep(layout)?]),
                _ => Err(ArrowError::InvalidArgumentError(format!("`{}` does not share a pass", first.function.as_str()))),
            };
        };
        if let Some(other) = rest.iter().find(|p| !first.shares_pass_with(p)) {
            return Err(ArrowError::InvalidArgumentError(format!("`{}` and `{}` do not share a pass", first.function.as_str(), other.function.as_str())));
        }
        let sums = first.sliding(layout, FloatSummer { values, sum: SlidingSum::new(), n: 0 });
        Ok(pass
            .iter()
            .map(|p| -> ArrayRef {
                let answer = |s: &Option<(f64, u64)>| s.map(|(sum, n)| if p.function == AggFunction::Mean { sum / n as f64 } else { sum });
                Arc::new(sums.iter().map(answer).collect::<Float64Array>())
            })
            .collect())
    }

    /// Every probe of every group, visited in `T` order with the window's
    /// bounds `[lo, hi)` as positions into the group's sorted events.
    fn visit(&self, layout: &Layout, mut on_probe: impl FnMut(&[u32], usize, usize, usize, u32)) {
        for group in 0..layout.groups() {
            let events = &layout.events[layout.event_groups[group]..layout.event_groups[group + 1]];
            let (mut lo, mut hi) = (0usize, 0usize);
            let span = layout.probe_groups[group]..layout.probe_groups[group + 1];
            for (&row, &at) in layout.probes[span.clone()].iter().zip(&layout.at[span]) {
                while hi < events.len() && layout.ts[events[hi] as usize] < at {
                    hi += 1;
                }
                let start = at.saturating_sub(self.window);
                while lo < hi && layout.ts[events[lo] as usize] < start {
                    lo += 1;
                }
                on_probe(events, lo, hi, group, row);
            }
        }
    }

    /// A removable state slid along each group: each event is added once
    /// and removed once, so a group costs O(events + probes).
    fn sliding<S: Removable>(&self, layout: &Layout, mut state: S) -> Vec<Option<S::Out>> {
        let mut out: Vec<Option<S::Out>> = vec![None; layout.rows];
        for &row in layout.empty {
            out[row as usize] = S::empty();
        }
        let mut current_group = usize::MAX;
        let (mut added, mut removed) = (0usize, 0usize);
        self.visit(layout, |events, lo, hi, group, row| {
            if group != current_group {
                state.reset();
                (added, removed, current_group) = (0, 0, group);
            }
            while added < hi {
                state.add(events[added] as usize);
                added += 1;
            }
            while removed < lo {
                state.remove(events[removed] as usize);
                removed += 1;
            }
            out[row as usize] = state.result();
        });
        out
    }

    /// `min`/`max` with a monotonic deque of positions (front: the answer).
    fn extremes(&self, layout: &Layout, column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
        let compare = comparator(column)?;
        let wanted = if self.function == AggFunction::Min { Ordering::Less } else { Ordering::Greater };
        let mut picked: Vec<Option<u32>> = vec![None; layout.rows];
        let mut deque: VecDeque<usize> = VecDeque::new();
        let mut current_group = usize::MAX;
        let mut added = 0usize;
        self.visit(layout, |events, lo, hi, group, row| {
            if group != current_group {
                deque.clear();
                (added, current_group) = (0, group);
            }
            while added < hi {
                let index = events[added] as usize;
                if column.is_valid(index) {
                    // Drop what the new value beats; equals stay (the older is
                    // answered first and leaves first).
                    while deque.back().is_some_and(|&p| compare(index, events[p] as usize) == wanted) {
                        deque.pop_back();
                    }
                    deque.push_back(added);
                }
                added += 1;
            }
            while deque.front().is_some_and(|&p| p < lo) {
                deque.pop_front();
            }
            picked[row as usize] = deque.front().map(|&p| events[p]);
        });
        take(column.as_ref(), &UInt32Array::from(picked), None)
    }

    /// `last`: the `n` newest non-null values in the window, newest first.
    fn last(&self, layout: &Layout, column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
        let mut lists: Vec<Option<Vec<u32>>> = vec![None; layout.rows];
        for &row in layout.empty {
            lists[row as usize] = Some(Vec::new());
        }
        self.visit(layout, |events, lo, hi, _, row| {
            let newest: Vec<u32> = events[lo..hi].iter().rev().filter(|&&e| column.is_valid(e as usize)).take(self.n).copied().collect();
            lists[row as usize] = Some(newest);
        });
        list_of(column, &lists, &self.output)
    }

    /// `approx_count_distinct`: the window's sketch, rebuilt when the window
    /// moved (a sketch cannot forget an event).
    fn distinct(&self, layout: &Layout, hashes: &[Option<u64>]) -> Vec<Option<i64>> {
        let mut out: Vec<Option<i64>> = vec![None; layout.rows];
        for &row in layout.empty {
            out[row as usize] = Some(0);
        }
        let mut previous: Option<(usize, usize, usize, i64)> = None;
        self.visit(layout, |events, lo, hi, group, row| {
            let estimate = match previous {
                Some((g, l, h, estimate)) if (g, l, h) == (group, lo, hi) => estimate,
                _ => {
                    let mut sketch = Hll::new();
                    for hash in events[lo..hi].iter().filter_map(|&e| hashes[e as usize]) {
                        sketch.insert_hash(hash);
                    }
                    i64::try_from(sketch.estimate()).unwrap_or(i64::MAX)
                }
            };
            previous = Some((group, lo, hi, estimate));
            out[row as usize] = Some(estimate);
        });
        out
    }
}

/// A state that can forget an event it was given (the sliding window's
/// left edge), exactly: the result depends only on the events still in.
trait Removable {
    type Out: Clone;
    fn add(&mut self, event: usize);
    fn remove(&mut self, event: usize);
    fn reset(&mut self);
    fn result(&self) -> Option<Self::Out>;
    /// The result for a key without events.
    fn empty() -> Option<Self::Out>;
}

struct Counter {
    valid: Option<ArrayRef>,
    n: i64,
}

impl Removable for Counter {
    type Out = i64;
    fn add(&mut self, event: usize) {
        if self.valid.as_ref().is_none_or(|c| c.is_valid(event)) {
            self.n += 1;
        }
    }
    fn remove(&mut self, event: usize) {
        if self.valid.as_ref().is_none_or(|c| c.is_valid(event)) {
            self.n -= 1;
        }
    }
    fn reset(&mut self) {
        self.n = 0;
    }
    fn result(&self) -> Option<i64> {
        Some(self.n)
    }
    fn empty() -> Option<i64> {
        Some(0)
    }
}

struct IntSummer<'a> {
    values: &'a Int64Array,
    sum: IntSum,
    n: u64,
}

impl Removable for IntSummer<'_> {
    type Out = i64;
    fn add(&mut self, event: usize) {
        if self.values.is_valid(event) {
            self.sum.add(self.values.value(event));
            self.n += 1;
        }
    }
    fn remove(&mut self, event: usize) {
        if self.values.is_valid(event) {
            self.sum.sub(self.values.value(event));
            self.n -= 1;
        }
    }
    fn reset(&mut self) {
        (self.sum, self.n) = (IntSum::new(), 0);
    }
    /// Null for an empty window, and for a sum that does not fit int64
    /// (never a wrapped number).
    fn result(&self) -> Option<i64> {
        if self.n == 0 { None } else { self.sum.value() }
    }
    fn empty() -> Option<i64> {
        None
    }
}

struct FloatSummer<'a> {
    values: &'a Float64Array,
    sum: SlidingSum,
    n: u64,
}

/// The window's correctly rounded exact sum and its count of values (sum
/// and mean are both answered from it).
impl Removable for FloatSummer<'_> {
    type Out = (f64, u64);
    fn add(&mut self, event: usize) {
        if self.values.is_valid(event) {
            self.sum.add(self.values.value(event));
            self.n += 1;
        }
    }
    fn remove(&mut self, event: usize) {
        if self.values.is_valid(event) {
            self.sum.sub(self.values.value(event));
            self.n -= 1;
        }
    }
    fn reset(&mut self) {
        self.sum.clear();
        self.n = 0;
    }
    fn result(&self) -> Option<(f64, u64)> {
        (self.n > 0).then(|| (self.sum.value(), self.n))
    }
    fn empty() -> Option<(f64, u64)> {
        None
    }
}

struct MomentKeeper<'a> {
    values: &'a Float64Array,
    moments: Moments,
    function: AggFunction,
}

impl Removable for MomentKeeper<'_> {
    type Out = f64;
    fn add(&mut self, event: usize) {
        if self.values.is_valid(event) {
            self.moments.add(self.values.value(event));
        }
    }
    fn remove(&mut self, event: usize) {
        if self.values.is_valid(event) {
            self.moments.sub(self.values.value(event));
        }
    }
    fn reset(&mut self) {
        self.moments = Moments::new();
    }
    fn result(&self) -> Option<f64> {
        match self.function {
            AggFunction::Mean => self.moments.mean(),
            AggFunction::Variance => self.moments.variance(),
            _ => self.moments.stddev(),
        }
    }
    fn empty() -> Option<f64> {
        None
    }
}

/// Compare two rows of one column in SQL order (for floats: `-0.0 < 0.0`,
/// NaN above everything, all NaNs equal). Only valid rows are compared.
fn comparator(column: &ArrayRef) -> Result<DynComparator, ArrowError> {
    if let Some(floats) = column.as_primitive_opt::<Float64Type>() {
        let floats = floats.clone();
        return Ok(Box::new(move |a, b| total_cmp_sql(floats.value(a), floats.value(b))));
    }
    if let Some(floats) = column.as_primitive_opt::<arrow::datatypes::Float32Type>() {
        let floats = floats.clone();
        return Ok(Box::new(move |a, b| total_cmp_sql(f64::from(floats.value(a)), f64::from(floats.value(b)))));
    }
    make_comparator(column.as_ref(), column.as_ref(), SortOptions::default())
}

/// Each event's fixed hash for HyperLogLog (integers of any width and
/// timestamps hash as int64; floats by value with `-0.0 == 0.0`).
fn hashes(column: &ArrayRef) -> Result<Vec<Option<u64>>, ArrowError> {
    let hash_all = |f: &dyn Fn(usize) -> u64| (0..column.len()).map(|i| column.is_valid(i).then(|| f(i))).collect::<Vec<_>>();
    Ok(match column.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let strings = cast(column, &DataType::Utf8)?;
            let strings = strings.as_string::<i32>();
            hash_all(&|i| hash_str(strings.value(i)))
        }
        DataType::Float32 | DataType::Float64 => {
            let floats = cast(column, &DataType::Float64)?;
            let floats = floats.as_primitive::<Float64Type>();
            hash_all(&|i| hash_f64(floats.value(i)))
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let bytes = cast(column, &DataType::Binary)?;
            let bytes = bytes.as_binary::<i32>();
            hash_all(&|i| hash_bytes(TAG_BYTES, bytes.value(i)))
        }
        DataType::Boolean => {
            let bools = column.as_boolean();
            hash_all(&|i| hash_i64(i64::from(bools.value(i))))
        }
        DataType::Timestamp(_, _) => {
            let times = cast(column, &DataType::Int64)?;
            let times = times.as_primitive::<Int64Type>();
            hash_all(&|i| hash_i64(times.value(i)))
        }
        _ => {
            let ints = cast(column, &DataType::Int64)?;
            let ints = ints.as_primitive::<Int64Type>();
            hash_all(&|i| hash_i64(ints.value(i)))
        }
    })
}

/// A list column from per-row index lists into `column` (`None`: null row).
fn list_of(column: &ArrayRef, lists: &[Option<Vec<u32>>], output: &DataType) -> Result<ArrayRef, ArrowError> {
    let DataType::List(item) = output else {
        return Err(ArrowError::InvalidArgumentError("`last` builds a list".into()));
    };
    let flat: Vec<u32> = lists.iter().flatten().flatten().copied().collect();
    let values = take(column.as_ref(), &UInt32Array::from(flat), None)?;
    let offsets = OffsetBuffer::from_lengths(lists.iter().map(|l| l.as_ref().map_or(0, Vec::len)));
    let nulls = arrow::buffer::NullBuffer::from(lists.iter().map(Option::is_some).collect::<Vec<_>>());
    Ok(Arc::new(ListArray::try_new(item.clone(), offsets, values, Some(nulls))?))
}
