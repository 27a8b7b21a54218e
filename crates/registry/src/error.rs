//! Registry errors, grouped by who can fix them.

use std::path::PathBuf;

use almanac_core::Diagnostics;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Mistakes in the definitions; each names its file, line and fix.
    #[error("{0}")]
    Invalid(Diagnostics),

    #[error("{} is not an Almanac repo (no almanac.yaml); create one with `almanac init {}` or pass `--repo DIR`", root.display(), root.display())]
    NotARepo { root: PathBuf },

    #[error("cannot read or write {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("the registry at {} is corrupt: {reason}; restore it from version control or delete it and run `almanac apply` again", path.display())]
    Corrupt { path: PathBuf, reason: String },

    #[error("the registry at {} was written by a newer Almanac (format {found}, this build reads up to {supported}); upgrade Almanac", path.display())]
    TooNew { path: PathBuf, found: u32, supported: u32 },

    #[error("another Almanac command (an apply or a materialization) has held the registry's lock on {} for {waited_secs} s; if no such command is running, the lock file's holder is stuck: stop it and try again", path.display())]
    Locked { path: PathBuf, waited_secs: u64 },

    #[error("the registry changed while this apply was being planned (planned against version {planned}, now version {found}); run `almanac apply` again to see the new plan")]
    Conflict { planned: u64, found: u64 },

    /// The registry's database refused or failed (PostgreSQL's own words).
    #[error("the registry database at {url}: {reason}")]
    Database { url: String, reason: String },

    #[error("the registry belongs to project `{found}`, but almanac.yaml says `{expected}`; point `registry.path` elsewhere or fix the project name")]
    WrongProject { expected: String, found: String },
}
