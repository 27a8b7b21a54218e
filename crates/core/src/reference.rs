//! Feature references: `view:feature`, or a bare `view` meaning all of its features.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeatureRef {
    pub view: String,
    /// `None` for a bare view reference (all of the view's features).
    pub feature: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a feature reference; write `view:feature` or a bare `view` for all of its features")]
pub struct FeatureRefError {
    pub input: String,
}

impl FeatureRef {
    pub fn new(view: &str, feature: &str) -> Self {
        FeatureRef { view: view.to_string(), feature: Some(feature.to_string()) }
    }

    pub fn whole_view(view: &str) -> Self {
        FeatureRef { view: view.to_string(), feature: None }
    }
}

fn is_name(text: &str) -> bool {
    !text.is_empty() && !text.contains(char::is_whitespace) && !text.contains(':')
}

impl FromStr for FeatureRef {
    type Err = FeatureRefError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || FeatureRefError { input: input.to_string() };
        let text = input.trim();
        match text.split_once(':') {
            Some((view, feature)) if is_name(view) && is_name(feature) => {
                Ok(FeatureRef::new(view, feature))
            }
            None if is_name(text) => Ok(FeatureRef::whole_view(text)),
            _ => Err(err()),
        }
    }
}

impl fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.feature {
            Some(feature) => write!(f, "{}:{}", self.view, feature),
            None => f.write_str(&self.view),
        }
    }
}

impl Serialize for FeatureRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FeatureRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        assert_eq!("v:f".parse(), Ok(FeatureRef::new("v", "f")));
        assert_eq!("v".parse(), Ok(FeatureRef::whole_view("v")));
        for bad in ["", ":f", "v:", "a:b:c", "a b"] {
            assert!(bad.parse::<FeatureRef>().is_err(), "{bad}");
        }
    }
}
