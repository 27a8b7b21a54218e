//! Instants on the command line: `now`, or the one timestamp grammar of
//! `almanac_core::time` (RFC 3339; a time without a zone is UTC; a plain
//! date is midnight UTC), truncated to microseconds, Almanac's precision.

use almanac::core::time::{TIMESTAMP_HELP, parse_datetime as parse_grammar};
use chrono::{DateTime, SubsecRound, Utc};

/// `now` or a timestamp, in UTC, at microsecond precision.
pub fn parse_datetime(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if text.trim().eq_ignore_ascii_case("now") {
        return Ok(Utc::now().trunc_subsecs(6));
    }
    let parsed = parse_grammar(text).ok_or_else(|| anyhow::anyhow!("`{text}` is not a timestamp; {TIMESTAMP_HELP}, or `now`"))?;
    Ok(parsed.trunc_subsecs(6))
}

/// `now` or a timestamp, as nanoseconds since the epoch.
pub fn parse_instant_nanos(text: &str) -> anyhow::Result<i64> {
    parse_datetime(text)?.timestamp_nanos_opt().ok_or_else(|| anyhow::anyhow!("`{text}` is outside the years 1677-2262"))
}
