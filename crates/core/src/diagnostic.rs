//! Diagnostics: definition mistakes reported with a location and a fix.
//!
//! Validation collects every mistake it finds into [`Diagnostics`] instead of
//! stopping at the first, because fixing a repo one error per run is the
//! experience we are trying not to have.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// A 1-based position in a definition file, displayed as `file.yaml:LINE:COL`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Location {
    /// Relative to the repo folder when inside it.
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location { file: file.into(), line, column }
    }

    /// A whole-file location (line 1, column 1), for problems with no better anchor.
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Location::new(file, 1, 1)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One mistake: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// A second place involved (the first definition of a duplicated name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related: Option<(Location, String)>,
    /// The text of the offending line, for rendering a caret under it.
    #[serde(skip)]
    pub snippet: Option<String>,
}

impl Diagnostic {
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        Diagnostic { location, message: message.into(), help: None, related: None, snippet: None }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_optional_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    pub fn with_related(mut self, location: Location, note: impl Into<String>) -> Self {
        self.related = Some((location, note.into()));
        self
    }
}

impl fmt::Display for Diagnostic {
    /// Rendered like a compiler error, so editors and people both find the spot:
    ///
    /// ```text
    /// error: unknown key `timestamp_feild` in source `txn`
    ///   --> features.yaml:9:5
    ///    |
    ///  9 |     timestamp_feild: event_timestamp
    ///    |     ^
    ///    = help: did you mean `timestamp_field`?
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        writeln!(f, "  --> {}", self.location)?;
        if let Some(line) = &self.snippet {
            let number = self.location.line.to_string();
            let pad = " ".repeat(number.len());
            writeln!(f, " {pad} |")?;
            writeln!(f, " {number} | {line}")?;
            let caret_at = " ".repeat(self.location.column.saturating_sub(1));
            writeln!(f, " {pad} | {caret_at}^")?;
        }
        if let Some((location, note)) = &self.related {
            writeln!(f, "   = note: {note} at {location}")?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "   = help: {help}")?;
        }
        Ok(())
    }
}

/// Every mistake found in one run, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// Sort by location and drop exact repeats, so output is stable.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| a.location.cmp(&b.location).then(a.message.cmp(&b.message)));
        self.0.dedup_by(|a, b| a.location == b.location && a.message == b.message);
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.0 {
            writeln!(f, "{diagnostic}")?;
        }
        let count = self.0.len();
        write!(f, "{count} error{} in the definitions", if count == 1 { "" } else { "s" })
    }
}
