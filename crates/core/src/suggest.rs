//! "Did you mean" suggestions for misspelled keys and names.

/// The closest candidate to `input`, if one is close enough to be a likely typo.
///
/// Uses Jaro-Winkler similarity (good at transpositions like `feild`/`field`)
/// with a threshold high enough that unrelated names are not suggested.
pub fn closest<'a, I>(input: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(input, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// A help sentence: "did you mean `x`?" when something is close, otherwise
/// the list of valid choices (when it is short enough to be useful).
pub fn help<'a, I>(input: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let candidates: Vec<&str> = candidates.into_iter().collect();
    if let Some(best) = closest(input, candidates.iter().copied()) {
        return Some(format!("did you mean `{best}`?"));
    }
    match candidates.len() {
        0 => None,
        1..=12 => Some(format!(
            "expected one of: {}",
            candidates.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_but_not_strangers() {
        let keys = ["timestamp_field", "created_timestamp_column", "path", "format"];
        assert_eq!(closest("timestamp_feild", keys), Some("timestamp_field"));
        assert_eq!(closest("pth", keys), Some("path"));
        assert_eq!(closest("zzz", keys), None);
    }
}
