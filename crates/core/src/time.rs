//! The one timestamp grammar, shared by entity files, CSV sources, pushes and
//! the command line, so a time written one way is read the same way
//! everywhere (before this module there were three parsers that disagreed).
//!
//! Accepted: RFC 3339 (`2026-06-10T14:00:00Z`, `...+02:00`, offsets are
//! converted to UTC); a naive date-time with a space or a `T`
//! (`2026-06-10 14:00:00[.ffffff]`), read as UTC; a date-time followed by an
//! offset written `+0200` or `+02:00` after a space-separated time; a plain
//! date (`2026-06-10`), read as midnight UTC. Rendering is RFC 3339 in UTC
//! with a `Z`, fractional seconds only when non-zero, as Feast writes it.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// Nanoseconds since the epoch, or `None` when `text` is not a timestamp in
/// the grammar above (or is outside the years 1677–2262 that nanoseconds
/// can hold).
pub fn parse_timestamp_nanos(text: &str) -> Option<i64> {
    parse_datetime(text)?.timestamp_nanos_opt()
}

/// Microseconds since the epoch (Almanac's precision), truncating any finer
/// digits toward the past.
pub fn parse_timestamp_micros(text: &str) -> Option<i64> {
    Some(parse_datetime(text)?.timestamp_micros())
}

/// The instant `text` names, in UTC.
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(aware) = DateTime::parse_from_rfc3339(text) {
        return Some(aware.to_utc());
    }
    // Offsets first, and only as aware times: a naive parse of a format
    // with `%z` would read the offset and then ignore it.
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(aware) = DateTime::parse_from_str(text, format) {
            return Some(aware.to_utc());
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc());
        }
    }
    Some(NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0)?.and_utc())
}

/// What the error messages suggest.
pub const TIMESTAMP_HELP: &str = "write RFC 3339 such as `2026-06-10T14:00:00Z` (a time without a zone is UTC; a plain date is midnight UTC)";

/// An instant (µs since the epoch) as Feast writes it: RFC 3339, UTC, `Z`,
/// fractional seconds only when non-zero; always RFC 3339, whatever the
/// value (see the clamp below).
pub fn rfc3339_micros(micros: i64) -> String {
    // RFC 3339 has four-digit years: an instant outside 0000..=9999 (only
    // records written before writes were range-checked can hold one) is
    // shown at the nearest end of that range rather than in another format.
    let clamped = micros.clamp(RFC3339_FIRST_MICROS, RFC3339_LAST_MICROS);
    match DateTime::from_timestamp_micros(clamped) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => "1970-01-01T00:00:00Z".into(),
    }
}

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z.
const RFC3339_FIRST_MICROS: i64 = -62_167_219_200_000_000;
const RFC3339_LAST_MICROS: i64 = 253_402_300_799_999_999;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_spelling_is_the_same_instant() {
        let expected = 1_000_000i64;
        for text in ["1970-01-01T00:00:01Z", "1970-01-01T02:00:01+02:00", "1970-01-01 00:00:01", "1970-01-01T00:00:01", "1970-01-01T00:00:01.000000Z", "1970-01-01 02:00:01+02:00", "1970-01-01 02:00:01+0200", " 1970-01-01T00:00:01Z "] {
            assert_eq!(parse_timestamp_micros(text), Some(expected), "{text}");
        }
        assert_eq!(parse_timestamp_micros("1970-01-02"), Some(86_400_000_000));
        assert_eq!(parse_timestamp_nanos("1970-01-01T00:00:00.000000123Z"), Some(123));
        for bad in ["yesterday", "2026-13-01", "", "12:00"] {
            assert_eq!(parse_timestamp_micros(bad), None, "{bad}");
        }
    }

    #[test]
    fn rendering_is_rfc3339_utc_with_z_and_round_trips() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_micros(1_500_000), "1970-01-01T00:00:01.500Z");
        // Regression: an implausible or overflowing instant printed as
        // `1970-01-01T00:00:00Z` or in a non-RFC 3339 form.
        assert_eq!(rfc3339_micros(i64::MAX), "9999-12-31T23:59:59.999999Z");
        assert_eq!(rfc3339_micros(i64::MIN), "0000-01-01T00:00:00Z");
        for micros in [0, 1, -1, 1_764_669_600_123_456, 253_402_300_799_999_999] {
            let text = rfc3339_micros(micros);
            assert!(text.ends_with('Z'), "{text}");
            assert_eq!(parse_timestamp_micros(&text), Some(micros), "{text}");
        }
    }
}
