//! Rendering a plan to one dialect's SQL.
//!
//! ## The formulation
//! Per view, two steps, both plain SQL every engine plans well:
//! 1. **Which instant wins.** The view's event times and the entity rows'
//!    as-of instants are stacked (`UNION ALL`) and swept per key in time
//!    order; a running `MAX` of the history's event times over everything up
//!    to and including the current instant (history stamped exactly at `T`
//!    is visible) gives each entity row the greatest event time `<= T`: the
//!    as-of instant, with nothing carried but a timestamp. The TTL bound
//!    (`winner >= T - ttl`) is one comparison on it.
//! 2. **Which row wins at that instant.** The entity rows join the history
//!    on key and that exact event time (an equality join: hash or index), and
//!    the rows tying there are ranked by created time, then feature values in
//!    schema order, greatest first, nulls smallest: the embedded engine's
//!    tie-break, so both engines pick the same row.
//!
//! Carrying values forward (`LAST_VALUE ... IGNORE NULLS`) is what a null
//! value must not do (a null winner must not fall back to an older value),
//! and PostgreSQL has no `IGNORE NULLS`; carrying only the instant avoids
//! both. Spark is the exception, measured: it carries the whole winning
//! row as one struct (never null itself, whatever its fields hold) in the
//! sweep, ordered by the tie-break within an instant, and skips step 2
//! (`carried_winners`), which its sorts and shuffles make worth it. A
//! per-row `LATERAL ... LIMIT 1` is the other classic shape; it probes an
//! index once per entity row and per view, and measured slower at
//! training-set sizes (BENCHMARKS.md).

use crate::dialect::Dialect;
use crate::plan::{AT, AggregationInputs, KeyPair, Output, PointInTime, ROW, Relation, ViewPlan, output_name};
use crate::SqlError;

/// The SQL of a training set: one row per entity row, columns
/// `__almanac_row` then every view's requested features (named by
/// [`output_name`]), ordered by row. One statement: each view's part is a
/// CTE (step 1's instants and step 2's winners; Spark's one-pass form).
pub fn point_in_time(plan: &PointInTime, dialect: Dialect) -> Result<String, SqlError> {
    Ok(render_point_in_time(plan, dialect, false)?.1)
}

/// The same training set as statements to run in order in one transaction:
/// each view's winning instants first written to a temporary table (and
/// analyzed), then the query that reads them. PostgreSQL runs this form:
/// with the instants' real row counts in hand its planner hashes the small
/// side of step 2 and picks index scans where they pay, where estimates
/// through a window function are guesses (measured in BENCHMARKS.md).
pub fn point_in_time_staged(plan: &PointInTime, dialect: Dialect) -> Result<(Vec<String>, String), SqlError> {
    render_point_in_time(plan, dialect, true)
}

fn render_point_in_time(plan: &PointInTime, dialect: Dialect, staged: bool) -> Result<(Vec<String>, String), SqlError> {
    let q = |name: &str| dialect.quote(name);
    let entities = dialect.table(&plan.entities);
    let mut setup = Vec::new();
    let mut ctes = Vec::new();
    let mut columns = vec![format!("e.{}", q(ROW))];
    let mut joins = Vec::new();
    for (index, view) in plan.views.iter().enumerate() {
        if view.outputs.is_empty() {
            continue;
        }
        if view.aggregation.is_some() {
            return Err(SqlError::Aggregation { view: view.name.clone(), dialect: dialect.name() });
        }
        let winners = format!("v{index}");
        if dialect == Dialect::Spark {
            ctes.push(format!("{} AS (\n{}\n)", q(&winners), carried_winners(view, index, &entities)?));
            columns.extend((0..view.outputs.len()).map(|feature| format!("{}.{}", q(&winners), q(&output_name(index, feature)))));
            joins.push(format!("LEFT JOIN {w} ON {w}.{row} = e.{row}", w = q(&winners), row = q(ROW)));
            continue;
        }
        let asof = if staged {
            let table = format!("{}_v{index}_asof", plan.entities);
            setup.push(format!(
                "CREATE TEMPORARY TABLE {t} ON COMMIT DROP AS\nSELECT a.* FROM (\n{}\n) AS a\nWHERE a.{} IS NOT NULL",
                asof_instants(view, &entities, dialect),
                q(ROW),
                t = q(&table)
            ));
            setup.push(format!("ANALYZE {}", q(&table)));
            table
        } else {
            let cte = format!("v{index}_asof");
            ctes.push(format!("{} AS (\n{}\n)", q(&cte), asof_instants(view, &entities, dialect)));
            cte
        };
        ctes.push(format!("{} AS (\n{}\n)", q(&winners), winning_rows(view, index, &asof, dialect)?));
        columns.extend((0..view.outputs.len()).map(|feature| format!("{}.{}", q(&winners), q(&output_name(index, feature)))));
        joins.push(format!("LEFT JOIN {w} ON {w}.{row} = e.{row}", w = q(&winners), row = q(ROW)));
    }
    let with = if ctes.is_empty() { String::new() } else { format!("WITH\n{}\n", ctes.join(",\n")) };
    let query = format!(
        "{with}SELECT {columns}\nFROM {entities} AS e{joins}\nORDER BY e.{row}",
        columns = columns.join(", "),
        joins = joins.iter().map(|j| format!("\n{j}")).collect::<String>(),
        row = q(ROW),
    );
    Ok((setup, query))
}

fn relation(relation: &Relation, dialect: Dialect) -> String {
    match relation {
        Relation::Table(name) => dialect.table(name),
        Relation::Query(sql) => format!("(\n{}\n)", sql.trim().trim_end_matches(';')),
    }
}

/// The key column of the stacked relation for key number `index`.
fn stacked_key(index: usize) -> String {
    format!("__almanac_k{index}")
}

/// Step 1: every entity row of the view's keys with its as-of instant and
/// the greatest history event time at or before it (`__almanac_winner`).
fn asof_instants(view: &ViewPlan, entities: &str, dialect: Dialect) -> String {
    let q = |name: &str| dialect.quote(name);
    let source = relation(&view.relation, dialect);
    let ts = format!("s.{}", q(&view.event_time));
    let history_keys = view.keys.iter().enumerate().map(|(i, k)| format!("s.{} AS {}, ", q(&k.source), q(&stacked_key(i)))).collect::<String>();
    let entity_keys = view.keys.iter().map(|k| format!("e.{}, ", q(&k.entity))).collect::<String>();
    let partition = (0..view.keys.len()).map(|i| format!("u.{}", q(&stacked_key(i)))).collect::<Vec<_>>();
    let window = if partition.is_empty() { String::new() } else { format!("PARTITION BY {} ", partition.join(", ")) };
    let stacked_keys = (0..view.keys.len()).map(|i| format!("u.{}, ", q(&stacked_key(i)))).collect::<String>();
    let row_type = dialect.type_name(&almanac_core::DType::Int64).unwrap_or("BIGINT");
    // Both branches are plain scans, without filters: PostgreSQL then reads
    // the history in (key, time) order straight from an index on (key,
    // event time) and merges it with the sorted entity rows, where any
    // filter here made it sort the whole history instead. Null keys need no
    // filter (they never equal anything in step 2), nor do null instants
    // (step 2 drops entity rows without one).
    format!(
        "  SELECT u.{row}, u.{at}, {stacked_keys}MAX(u.{hit}) OVER ({window}{frame}) AS {winner}
  FROM (
    SELECT {history_keys}{ts} AS {at}, CAST(NULL AS {row_type}) AS {row}, {ts} AS {hit}
    FROM {source} AS s
    UNION ALL
    SELECT {entity_keys}e.{at}, e.{row}, NULL
    FROM {entities} AS e
  ) AS u",
        row = q(ROW),
        at = q(AT),
        hit = q("__almanac_hit"),
        winner = q("__almanac_winner"),
        frame = dialect.cumulative_frame(&format!("u.{}", q(AT)), &format!("u.{}", q(ROW))),
    )
}

/// Spark's one-pass form of both steps: the sweep of step 1 carries the
/// whole winning row forward as a struct (`last(..., true)` skips only
/// rows with no struct, never a struct whose fields are null, so a null
/// value never falls back), history rows ordered within one instant by the
/// tie-break (created time, then features, ascending, nulls first) so the
/// last one before an entity row is the winner. One sort of the stacked
/// rows instead of two plus a join back.
fn carried_winners(view: &ViewPlan, index: usize, entities: &str) -> Result<String, SqlError> {
    let dialect = Dialect::Spark;
    let q = |name: &str| dialect.quote(name);
    let source = relation(&view.relation, dialect);
    let ts = format!("s.{}", q(&view.event_time));
    let mut fields = vec![format!("'t', {ts}")];
    for (feature, output) in view.outputs.iter().enumerate() {
        fields.push(format!("'f{feature}', {}", cast(view, output, &format!("s.{}", q(&output.column)), dialect)?));
    }
    let mut order_columns: Vec<String> = view.created_time.iter().map(|c| format!("s.{}", q(c))).collect();
    order_columns.extend(view.tie_break.iter().filter_map(|f| dialect.order_term(&format!("s.{}", q(&f.column)), &f.dtype)));
    let order_names: Vec<String> = (0..order_columns.len()).map(|i| q(&format!("__almanac_o{i}"))).collect();
    let history_keys = view.keys.iter().enumerate().map(|(i, k)| format!("s.{} AS {}, ", q(&k.source), q(&stacked_key(i)))).collect::<String>();
    let entity_keys = view.keys.iter().map(|k| format!("e.{}, ", q(&k.entity))).collect::<String>();
    let history_order = order_columns.iter().zip(&order_names).map(|(c, n)| format!(", {c} AS {n}")).collect::<String>();
    let entity_order = order_names.iter().map(|n| format!(", NULL AS {n}")).collect::<String>();
    let partition = (0..view.keys.len()).map(|i| format!("u.{}", q(&stacked_key(i)))).collect::<Vec<_>>();
    let window = if partition.is_empty() { String::new() } else { format!("PARTITION BY {} ", partition.join(", ")) };
    let order = order_names.iter().map(|n| format!(", u.{n} ASC NULLS FIRST")).collect::<String>();
    let mut filter = vec![format!("r.{} IS NOT NULL", q(ROW)), format!("r.{} IS NOT NULL", q(AT)), "r.w IS NOT NULL".to_string()];
    filter.extend((0..view.keys.len()).map(|i| format!("r.{} IS NOT NULL", q(&stacked_key(i)))));
    if let Some(ttl) = view.ttl_micros {
        filter.push(format!("r.w.t >= {}", dialect.minus_micros(&format!("r.{}", q(AT)), ttl)));
    }
    let outputs = (0..view.outputs.len()).map(|feature| format!(", r.w.f{feature} AS {}", q(&output_name(index, feature)))).collect::<String>();
    let keys = (0..view.keys.len()).map(|i| format!("u.{}, ", q(&stacked_key(i)))).collect::<String>();
    Ok(format!(
        "  SELECT r.{row}{outputs}
  FROM (
    SELECT {keys}u.{row}, u.{at}, LAST(u.{hit}, true) OVER ({window}ORDER BY u.{at}, u.{kind}{order} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS w
    FROM (
      SELECT {history_keys}{ts} AS {at}, 0 AS {kind}, CAST(NULL AS BIGINT) AS {row}, CASE WHEN {ts} IS NOT NULL THEN named_struct({fields}) END AS {hit}{history_order}
      FROM {source} AS s
      UNION ALL
      SELECT {entity_keys}e.{at}, 1, e.{row}, NULL{entity_order}
      FROM {entities} AS e
    ) AS u
  ) AS r
  WHERE {filter}",
        row = q(ROW),
        at = q(AT),
        hit = q("__almanac_hit"),
        kind = q("__almanac_kind"),
        fields = fields.join(", "),
        filter = filter.join(" AND "),
    ))
}

/// Step 2: each entity row's winning history row at its winning instant,
/// with the requested features cast to their dtypes.
fn winning_rows(view: &ViewPlan, index: usize, asof: &str, dialect: Dialect) -> Result<String, SqlError> {
    let q = |name: &str| dialect.quote(name);
    let source = relation(&view.relation, dialect);
    let winner = format!("a.{}", q("__almanac_winner"));
    let mut on: Vec<String> = view.keys.iter().enumerate().map(|(i, KeyPair { source, .. })| format!("s.{} = a.{}", q(source), q(&stacked_key(i)))).collect();
    on.push(format!("s.{} = {winner}", q(&view.event_time)));
    let mut filter = vec![format!("a.{} IS NOT NULL", q(ROW)), format!("a.{} IS NOT NULL", q(AT))];
    if let Some(ttl) = view.ttl_micros {
        filter.push(format!("{winner} >= {}", dialect.minus_micros(&format!("a.{}", q(AT)), ttl)));
    }
    let features = view
        .outputs
        .iter()
        .enumerate()
        .map(|(feature, output)| Ok(format!("{} AS {}", cast(view, output, &format!("s.{}", q(&output.column)), dialect)?, q(&output_name(index, feature)))))
        .collect::<Result<Vec<_>, SqlError>>()?;
    let names = (0..view.outputs.len()).map(|feature| format!("r.{}", q(&output_name(index, feature)))).collect::<Vec<_>>();
    let rank = q("__almanac_rank");
    Ok(format!(
        "  SELECT r.{row}, {names}
  FROM (
    SELECT a.{row}, {features},
      ROW_NUMBER() OVER (PARTITION BY a.{row}{order}) AS {rank}
    FROM {asof} AS a
    JOIN {source} AS s ON {on}
    WHERE {filter}
  ) AS r
  WHERE r.{rank} = 1",
        row = q(ROW),
        names = names.join(", "),
        features = features.join(", "),
        order = tie_break_order(view, dialect).map(|o| format!(" ORDER BY {o}")).unwrap_or_default(),
        asof = q(asof),
        on = on.join(" AND "),
        filter = filter.join(" AND "),
    ))
}

fn cast(view: &ViewPlan, output: &Output, expr: &str, dialect: Dialect) -> Result<String, SqlError> {
    dialect.cast(expr, &output.dtype).ok_or_else(|| SqlError::UnsupportedType {
        view: view.name.clone(),
        feature: output.column.clone(),
        dtype: output.dtype.to_string(),
        dialect: dialect.name(),
    })
}

/// Among rows with one key and one event time: created time, then every
/// feature in schema order, greatest first, nulls smallest.
fn tie_break_order(view: &ViewPlan, dialect: Dialect) -> Option<String> {
    let q = |name: &str| dialect.quote(name);
    let mut terms: Vec<String> = view.created_time.iter().map(|c| format!("s.{} DESC NULLS LAST", q(c))).collect();
    terms.extend(view.tie_break.iter().filter_map(|f| dialect.order_term(&format!("s.{}", q(&f.column)), &f.dtype)).map(|t| format!("{t} DESC NULLS LAST")));
    (!terms.is_empty()).then(|| terms.join(", "))
}

/// The columns of an export or a materialization, in the layout of the
/// offline crate's `ViewRows`: keys (cast to their dtypes), event time,
/// created time, then every feature in schema order.
fn export_columns(view: &ViewPlan, dialect: Dialect) -> Result<Vec<String>, SqlError> {
    layout_columns(view, &view.tie_break, dialect)
}

/// Keys (cast to their dtypes), event time, created time (when the source
/// has one), then `rest`, named `__almanac_c{i}` in that order: the layout
/// of exports, materialization and an aggregation view's events.
fn layout_columns(view: &ViewPlan, rest: &[Output], dialect: Dialect) -> Result<Vec<String>, SqlError> {
    let q = |name: &str| dialect.quote(name);
    let timestamp = almanac_core::DType::Timestamp;
    let mut columns = Vec::new();
    for key in &view.keys {
        columns.push(cast(view, &Output { column: key.source.clone(), dtype: key.dtype.clone() }, &format!("s.{}", q(&key.source)), dialect)?);
    }
    columns.push(cast(view, &Output { column: view.event_time.clone(), dtype: timestamp.clone() }, &format!("s.{}", q(&view.event_time)), dialect)?);
    if let Some(created) = &view.created_time {
        columns.push(cast(view, &Output { column: created.clone(), dtype: timestamp }, &format!("s.{}", q(created)), dialect)?);
    }
    for output in rest {
        columns.push(cast(view, output, &format!("s.{}", q(&output.column)), dialect)?);
    }
    Ok(columns.into_iter().enumerate().map(|(i, c)| format!("{c} AS {}", q(&format!("__almanac_c{i}")))).collect())
}

fn range_filter(view: &ViewPlan, start_micros: Option<i64>, end_micros: Option<i64>, dialect: Dialect) -> Vec<String> {
    let ts = format!("s.{}", dialect.quote(&view.event_time));
    let mut filter = vec![format!("{ts} IS NOT NULL")];
    filter.extend(start_micros.map(|start| format!("{ts} >= {}", dialect.instant(start))));
    filter.extend(end_micros.map(|end| format!("{ts} <= {}", dialect.instant(end))));
    filter
}

/// Every history row with event time in `[start, end]` (inclusive, µs), in
/// the export layout.
pub fn export(view: &ViewPlan, start_micros: Option<i64>, end_micros: Option<i64>, dialect: Dialect) -> Result<String, SqlError> {
    Ok(format!(
        "SELECT {}\nFROM {} AS s\nWHERE {}",
        export_columns(view, dialect)?.join(", "),
        relation(&view.relation, dialect),
        range_filter(view, start_micros, end_micros, dialect).join(" AND ")
    ))
}

/// What materialization writes: per key (null keys left out), the winning
/// row among rows with event time in `[start, end]`, in the export layout,
/// plus the number of rows the window held (`__almanac_rows`, the same on
/// every row).
pub fn latest_per_entity(view: &ViewPlan, start_micros: Option<i64>, end_micros: Option<i64>, dialect: Dialect) -> Result<String, SqlError> {
    let q = |name: &str| dialect.quote(name);
    let columns = export_columns(view, dialect)?;
    let names = (0..columns.len()).map(|i| format!("r.{}", q(&format!("__almanac_c{i}")))).collect::<Vec<_>>();
    let keys = view.keys.iter().map(|k| format!("s.{}", q(&k.source))).collect::<Vec<_>>();
    let mut filter = range_filter(view, start_micros, end_micros, dialect);
    let mut order = vec![format!("s.{} DESC", q(&view.event_time))];
    order.extend(tie_break_order(view, dialect));
    let partition = if keys.is_empty() { String::new() } else { format!("PARTITION BY {} ", keys.join(", ")) };
    let rows = q("__almanac_rows");
    let window_rows = format!("COUNT(*) OVER () AS {rows}");
    filter.extend(keys.iter().map(|k| format!("{k} IS NOT NULL")));
    Ok(format!(
        "SELECT {names}, r.{rows}
FROM (
  SELECT {columns}, {window_rows},
    ROW_NUMBER() OVER ({partition}ORDER BY {order}) AS {rank}
  FROM {source} AS s
  WHERE {filter}
) AS r
WHERE r.{rank} = 1",
        names = names.join(", "),
        columns = columns.join(", "),
        order = order.join(", "),
        rank = q("__almanac_rank"),
        source = relation(&view.relation, dialect),
        filter = filter.join(" AND "),
    ))
}

/// The scan-order column of [`scanned_events`].
const ORDER: &str = "__almanac_order";

fn aggregation_inputs(view: &ViewPlan, dialect: Dialect) -> Result<&AggregationInputs, SqlError> {
    view.aggregation.as_ref().ok_or_else(|| SqlError::NotAggregation { view: view.name.clone(), dialect: dialect.name() })
}

/// An aggregation view's events as its relation is scanned: keys (cast to
/// their dtypes), event time, created time (when the source has one), then
/// the aggregations' input columns, named `__almanac_c{i}` in that order,
/// and the scan position `__almanac_order`. Rows without an event time
/// never enter a window and are left out.
fn scanned_events(view: &ViewPlan, inputs: &AggregationInputs, dialect: Dialect) -> Result<String, SqlError> {
    let q = |name: &str| dialect.quote(name);
    let columns = layout_columns(view, &inputs.columns, dialect)?;
    Ok(format!(
        "SELECT {}, {} AS {}\n  FROM {} AS s\n  WHERE s.{} IS NOT NULL",
        columns.join(", "),
        dialect.scan_position(),
        q(ORDER),
        relation(&view.relation, dialect),
        q(&view.event_time)
    ))
}

/// The result columns of [`window_events`] and [`events_in_range`].
fn event_names(view: &ViewPlan, inputs: &AggregationInputs, dialect: Dialect) -> String {
    let count = view.keys.len() + 1 + usize::from(view.created_time.is_some()) + inputs.columns.len();
    (0..count).map(|i| format!("s.{}", dialect.quote(&format!("__almanac_c{i}")))).collect::<Vec<_>>().join(", ")
}

/// The events an aggregation view's windows can see for the shipped entity
/// rows: per key, event time in `[min T − widest window, max T)` over that
/// key's rows, in scan order. A superset of every row's windows, cut by key
/// and time in the engine; each window's exact edge `[T − w, T)` and every
/// aggregate are then computed by the one evaluator (`almanac-aggregate`)
/// on these rows as on a file's, so no function is written a second way in
/// SQL (where exact sums, HyperLogLog and `last`'s tie-break have no
/// faithful form). Among equal event times a row later in scan order is
/// newer, as a later row of a file is.
pub fn window_events(view: &ViewPlan, entities: &str, dialect: Dialect) -> Result<String, SqlError> {
    let inputs = aggregation_inputs(view, dialect)?;
    let q = |name: &str| dialect.quote(name);
    let bound_keys = view.keys.iter().enumerate().map(|(i, k)| format!("e.{} AS {}", q(&k.entity), q(&stacked_key(i)))).collect::<Vec<_>>();
    let group = view.keys.iter().map(|k| format!("e.{}", q(&k.entity))).collect::<Vec<_>>();
    let mut present = vec![format!("e.{} IS NOT NULL", q(AT))];
    present.extend(view.keys.iter().map(|k| format!("e.{} IS NOT NULL", q(&k.entity))));
    let on = (0..view.keys.len()).map(|i| format!("s.{} = b.{}", q(&format!("__almanac_c{i}")), q(&stacked_key(i)))).collect::<Vec<_>>();
    let ts = format!("s.{}", q(&format!("__almanac_c{}", view.keys.len())));
    let (lo, hi) = (q("__almanac_lo"), q("__almanac_hi"));
    Ok(format!(
        "WITH {bounds} AS (
  SELECT {bound_keys}MIN(e.{at}) AS {lo}, MAX(e.{at}) AS {hi}
  FROM {entities} AS e
  WHERE {present}{group}
)
SELECT {names}
FROM (
  {scanned}
) AS s
JOIN {bounds} AS b ON {on}
WHERE {ts} >= {from} AND {ts} < b.{hi}
ORDER BY s.{order}",
        bounds = q("__almanac_bounds"),
        bound_keys = bound_keys.iter().map(|k| format!("{k}, ")).collect::<String>(),
        at = q(AT),
        entities = dialect.table(entities),
        present = present.join(" AND "),
        group = if group.is_empty() { String::new() } else { format!("\n  GROUP BY {}", group.join(", ")) },
        names = event_names(view, inputs, dialect),
        scanned = scanned_events(view, inputs, dialect)?,
        on = if on.is_empty() { "TRUE".to_string() } else { on.join(" AND ") },
        from = dialect.minus_micros(&format!("b.{lo}"), inputs.widest_micros),
        order = q(ORDER),
    ))
}

/// An aggregation view's events with event time in `[start, end]`
/// (inclusive, µs), in scan order: what materialization builds each
/// entity's state from (the offline crate picks the entities and cuts each
/// state to the widest window, as it does for files).
pub fn events_in_range(view: &ViewPlan, start_micros: Option<i64>, end_micros: Option<i64>, dialect: Dialect) -> Result<String, SqlError> {
    let inputs = aggregation_inputs(view, dialect)?;
    let q = |name: &str| dialect.quote(name);
    let ts = format!("s.{}", q(&format!("__almanac_c{}", view.keys.len())));
    let mut filter = Vec::new();
    filter.extend(start_micros.map(|start| format!("{ts} >= {}", dialect.instant(start))));
    filter.extend(end_micros.map(|end| format!("{ts} <= {}", dialect.instant(end))));
    Ok(format!(
        "SELECT {names}
FROM (
  {scanned}
) AS s{filter}
ORDER BY s.{order}",
        names = event_names(view, inputs, dialect),
        scanned = scanned_events(view, inputs, dialect)?,
        filter = if filter.is_empty() { String::new() } else { format!("\nWHERE {}", filter.join(" AND ")) },
        order = q(ORDER),
    ))
}
