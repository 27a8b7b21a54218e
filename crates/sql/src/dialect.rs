//! What differs between engines: identifier quoting, type names, instant
//! literals, interval arithmetic and string ordering. Everything else of a
//! query is the planner's, shared by every dialect.

use almanac_core::DType;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Postgres,
    Spark,
    Trino,
    BigQuery,
    Snowflake,
}

impl Dialect {
    pub const ALL: [Dialect; 5] = [Dialect::Postgres, Dialect::Spark, Dialect::Trino, Dialect::BigQuery, Dialect::Snowflake];

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::Spark => "Spark SQL",
            Dialect::Trino => "Trino",
            Dialect::BigQuery => "BigQuery",
            Dialect::Snowflake => "Snowflake",
        }
    }

    /// A quoted identifier. Every identifier is quoted, so a column named
    /// `count` or `user` is never read as a keyword; quoted names are
    /// case-sensitive in every dialect (Snowflake folds unquoted names to
    /// upper case, so its definitions name columns as they are stored).
    pub fn quote(self, name: &str) -> String {
        match self {
            Dialect::Spark | Dialect::BigQuery => format!("`{}`", name.replace('`', "``")),
            _ => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// A possibly qualified table name (`schema.table`), each part quoted.
    pub fn table(self, name: &str) -> String {
        name.split('.').map(|part| self.quote(part)).collect::<Vec<_>>().join(".")
    }

    /// The type a value of `dtype` is cast to, or `None` when the dialect
    /// has no faithful scalar type for it (nested types outside Spark).
    pub fn type_name(self, dtype: &DType) -> Option<&'static str> {
        use Dialect::*;
        Some(match (self, dtype) {
            (BigQuery, DType::Bool) => "BOOL",
            (_, DType::Bool) => "BOOLEAN",
            (BigQuery, DType::Int32 | DType::Int64) => "INT64",
            (Spark, DType::Int32) => "INT",
            (_, DType::Int32) => "INTEGER",
            (_, DType::Int64) => "BIGINT",
            (Spark, DType::Float32) => "FLOAT",
            (BigQuery, DType::Float32 | DType::Float64) => "FLOAT64",
            (Snowflake, DType::Float32 | DType::Float64) => "DOUBLE",
            (_, DType::Float32) => "REAL",
            (Postgres, DType::Float64) => "DOUBLE PRECISION",
            (_, DType::Float64) => "DOUBLE",
            (Postgres, DType::String | DType::Json) => "TEXT",
            (Spark | BigQuery, DType::String | DType::Json) => "STRING",
            (_, DType::String | DType::Json) => "VARCHAR",
            (Postgres, DType::Bytes) => "BYTEA",
            (Trino, DType::Bytes) => "VARBINARY",
            (BigQuery, DType::Bytes) => "BYTES",
            (_, DType::Bytes) => "BINARY",
            (Postgres, DType::Timestamp) => "TIMESTAMPTZ",
            (Trino, DType::Timestamp) => "TIMESTAMP(6) WITH TIME ZONE",
            (Snowflake, DType::Timestamp) => "TIMESTAMP_TZ",
            (_, DType::Timestamp) => "TIMESTAMP",
            (_, DType::List(_) | DType::Struct(_) | DType::Map(_)) => return None,
        })
    }

    /// `expr` cast to `dtype`. Spark carries nested values through as they
    /// are (its arrays, structs and maps are Arrow's); other dialects
    /// refuse them (`None`).
    pub fn cast(self, expr: &str, dtype: &DType) -> Option<String> {
        match self.type_name(dtype) {
            Some(name) => Some(format!("CAST({expr} AS {name})")),
            None if self == Dialect::Spark => Some(expr.to_string()),
            None => None,
        }
    }

    /// A row's position in the scan of its relation (increasing in scan
    /// order): how "later in the source" is told apart among events with
    /// one event time, as a file's row order tells it. On Spark, files in
    /// path order, then each file's splits in byte order, then rows in
    /// split order: Almanac's driver registers every source with its rows'
    /// `_metadata.file_path` and `file_block_start` as `__almanac_file` and
    /// `__almanac_block` (a temporary view hides `_metadata` itself).
    pub fn scan_position(self) -> &'static str {
        match self {
            Dialect::Spark => "struct(s.`__almanac_file`, s.`__almanac_block`, monotonically_increasing_id())",
            Dialect::Snowflake => "SEQ8()",
            _ => "ROW_NUMBER() OVER ()",
        }
    }

    /// An instant literal, UTC, microsecond precision.
    pub fn instant(self, micros: i64) -> String {
        let text = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default().format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        match self {
            Dialect::Postgres => format!("TIMESTAMPTZ '{text}+00'"),
            Dialect::Spark => format!("TIMESTAMP '{text}+00:00'"),
            Dialect::Trino => format!("TIMESTAMP '{text} UTC'"),
            Dialect::BigQuery => format!("TIMESTAMP '{text}+00'"),
            Dialect::Snowflake => format!("'{text} +00:00'::TIMESTAMP_TZ"),
        }
    }

    /// `expr` minus a duration of `micros` microseconds (a TTL's lower bound).
    pub fn minus_micros(self, expr: &str, micros: i64) -> String {
        let seconds = if micros % 1_000_000 == 0 { (micros / 1_000_000).to_string() } else { format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000) };
        match self {
            Dialect::Postgres => format!("({expr} - INTERVAL '{seconds} seconds')"),
            Dialect::Spark | Dialect::Trino => format!("({expr} - INTERVAL '{seconds}' SECOND)"),
            Dialect::BigQuery => format!("TIMESTAMP_SUB({expr}, INTERVAL {micros} MICROSECOND)"),
            Dialect::Snowflake => format!("DATEADD(microsecond, -{micros}, {expr})"),
        }
    }

    /// The window of step 1's running maximum: every row up to and
    /// including the current instant's peers (a history row stamped
    /// exactly at the entity row's instant is visible). A `RANGE` frame
    /// ordered by the instant alone, which lets an engine stream the
    /// history from a (key, time) index; BigQuery's `RANGE` frames want a
    /// numeric order, so there the entity rows are ordered after history
    /// rows at one instant (their row number is null on history rows) and
    /// the frame counts rows.
    pub fn cumulative_frame(self, instant: &str, row: &str) -> String {
        match self {
            Dialect::BigQuery => format!("ORDER BY {instant}, {row} NULLS FIRST ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"),
            _ => format!("ORDER BY {instant} RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"),
        }
    }

    /// An ORDER BY term for a value of `dtype`, ordered as the embedded
    /// engine orders it (strings by code point, whatever the database's
    /// collation), or `None` for types that take no part in tie-breaks.
    pub fn order_term(self, expr: &str, dtype: &DType) -> Option<String> {
        match dtype {
            DType::List(_) | DType::Struct(_) | DType::Map(_) => None,
            // JSON text orders as the text it is served as.
            DType::Json => self.order_term(&self.cast(expr, dtype)?, &DType::String),
            DType::String if self == Dialect::Postgres => Some(format!("{expr} COLLATE \"C\"")),
            _ => Some(expr.to_string()),
        }
    }
}
