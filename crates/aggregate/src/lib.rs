//! # almanac-aggregate
//!
//! Owns the semantics of windowed aggregations (DESIGN §9, §2.9): the window
//! rule `[T − w, T)` ([`in_window`], stated once), and for each function a
//! state whose result depends only on the *multiset* of events it has seen,
//! never on the order they were added, removed or merged in ([`exact`]):
//! sums are exact and rounded once, moments are computed from exact sums,
//! HyperLogLog uses a fixed hash and integer registers, min/max and `last`
//! use total orders with explicit tie-breaks. That is what lets the offline
//! sweep (which slides a window, adding and removing events) and an online
//! read (which merges stored partial states) give the same bits.
//!
//! [`Prepared::sweep`] is the offline evaluator: every probe `(key, T)` gets
//! the aggregate over its key's events in `[T − w, T)`, in O(events + probes)
//! per key for the removable functions (count, sum, mean, stddev, variance),
//! with a monotonic deque for min/max, and by folding the window for
//! `approx_count_distinct` and `last`. [`fold`] is the online evaluator: an
//! entity's stored events folded at the request instant by the same rule
//! and the same states.

pub mod exact;
mod fold;
mod window;

pub use fold::{StoredEvents, fold};

use almanac_core::{Aggregation, DType, FeatureView, Field};

/// The input columns a state holds, in order (after the event times):
/// [`FeatureView::aggregation_inputs`]' names.
pub fn state_schema_names(aggregations: &[Aggregation]) -> Vec<String> {
    almanac_core::defs::aggregation_inputs(aggregations).into_iter().map(|field| field.name).collect()
}

/// The name of an aggregation state's event-time list.
pub const EVENT_TIMES: &str = "__event_times";

/// The online record of an aggregation view: an entity's events in the
/// widest window, as lists: their event times, then each input column
/// (once, however many aggregations read it), events in `(ts, source
/// order)` order. A read folds them at its instant ([`fold`]); the record's
/// own event time is the instant the state is complete up to.
pub fn state_schema(view: &FeatureView) -> Vec<Field> {
    let list = |name: &str, dtype: DType| Field { name: name.to_string(), dtype: DType::List(Box::new(dtype)), description: String::new(), tags: Default::default() };
    let mut fields = vec![list(EVENT_TIMES, DType::Timestamp)];
    fields.extend(view.aggregation_inputs().into_iter().map(|input| list(&input.name, input.dtype)));
    fields
}
pub use window::{Layout, Prepared, in_window};
