//! Durations as users write them in definition files: `90s`, `15m`, `6h`, `3d`, `2w`.
//!
//! Stored as whole seconds: feature TTLs and windows are never finer than that,
//! and an integer keeps comparisons exact (no float rounding at a TTL boundary).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative span of whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    seconds: i64,
}

/// How to write a duration, for error help texts.
pub const HINT: &str = "write a whole number followed by s, m, h, d or w, e.g. `90s`, `15m`, `6h`, `3d`, `2w`";

const UNITS: [(char, i64); 5] = [('w', 604_800), ('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Why a duration string was rejected; `Display` says how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a duration: {reason}; {HINT}")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

impl Duration {
    pub const ZERO: Duration = Duration { seconds: 0 };

    pub fn from_seconds(seconds: i64) -> Self {
        Duration { seconds: seconds.max(0) }
    }

    pub fn seconds(&self) -> i64 {
        self.seconds
    }

    pub fn micros(&self) -> i64 {
        self.seconds.saturating_mul(1_000_000)
    }

    pub fn is_zero(&self) -> bool {
        self.seconds == 0
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError { input: input.to_string(), reason };
        let text = input.trim();
        if text == "0" {
            return Ok(Duration::ZERO);
        }
        if text.is_empty() {
            return Err(err("it is empty"));
        }
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        if number.is_empty() {
            return Err(err("it must start with a whole non-negative number"));
        }
        if unit.is_empty() {
            return Err(err("it has no unit"));
        }
        let Some(&(_, factor)) = UNITS.iter().find(|(u, _)| unit.len() == 1 && unit.starts_with(*u)) else {
            return Err(err("the unit must be one of s, m, h, d, w"));
        };
        let amount: i64 = number.parse().map_err(|_| err("the amount is too large"))?;
        let seconds = amount.checked_mul(factor).ok_or_else(|| err("the amount is too large"))?;
        Ok(Duration { seconds })
    }
}

impl fmt::Display for Duration {
    /// The largest unit that divides the duration exactly, so `259200` seconds prints `3d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.seconds == 0 {
            return f.write_str("0s");
        }
        let (unit, factor) = UNITS
            .iter()
            .find(|(_, factor)| self.seconds % factor == 0)
            .copied()
            .unwrap_or(('s', 1));
        write!(f, "{}{}", self.seconds / factor, unit)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        for (text, seconds) in [("90s", 90), ("15m", 900), ("6h", 21_600), ("3d", 259_200), ("2w", 1_209_600), ("0", 0), ("0s", 0)] {
            assert_eq!(text.parse::<Duration>().map(|d| d.seconds()), Ok(seconds), "{text}");
        }
    }

    #[test]
    fn rejects_bad_input_with_a_hint() {
        for text in ["", "3", "3x", "-3d", "1.5h", "d", "99999999999999999999w"] {
            let error = text.parse::<Duration>().expect_err(text);
            assert!(error.to_string().contains("e.g. `90s`"), "{error}");
        }
    }

    #[test]
    fn display_round_trips_in_the_largest_exact_unit() {
        for text in ["90s", "15m", "6h", "3d", "2w", "0s", "25h"] {
            let duration: Duration = text.parse().expect(text);
            assert_eq!(duration.to_string(), text);
            assert_eq!(duration.to_string().parse::<Duration>(), Ok(duration));
        }
        assert_eq!(Duration::from_seconds(120).to_string(), "2m");
    }
}
