//! # almanac-transform
//!
//! Owns on-demand feature expressions (DESIGN §9): SQL scalar expressions
//! parsed and type-checked by DataFusion's SQL planner, compiled once into
//! physical expressions, and evaluated by **one** evaluator over Arrow
//! batches — the joined rows of a training set and the rows of an online
//! read alike — so training and serving cannot compute a feature two ways.
//!
//! An on-demand view reads the features of its input feature views and the
//! fields of its request sources. [`compile`] builds the view's input schema
//! (every field qualified by its source's name, so a name two sources share
//! is written `view.field`), plans each expression against it, rejects what
//! is not a pure scalar expression (aggregates, window functions,
//! subqueries, volatile functions such as `random()` and `now()`), and
//! checks the result type against the declared dtype. [`CompiledView::evaluate`]
//! takes a batch laid out as [`CompiledView::inputs`] says.
//!
//! Integer division by zero and integer overflow of `+`, `-`, `*` (any
//! error on a row) do not fail a whole batch: the rows that fail become
//! null and are counted in [`Evaluated::failed_rows`]. Arithmetic is
//! compiled checked, since a wrapped integer is a silently wrong feature.
//!
//! A compiled view keeps only the inputs its expressions read, so neither
//! path builds a column nobody uses.

mod compile;
mod evaluate;

pub use compile::{CompileError, CompiledView, InputField, compile};
pub use evaluate::Evaluated;
