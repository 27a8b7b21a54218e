//! Finding and reading a feature repo: `almanac.yaml` plus every definition file.

use std::path::{Path, PathBuf};

use almanac_core::{Diagnostics, RepoConfig};

use crate::error::RegistryError;
use crate::parse::{self, Parsed};
use crate::validate;

pub const CONFIG_FILE: &str = "almanac.yaml";

/// A repo's definitions as read from disk, validated, with their locations.
#[derive(Debug)]
pub struct RepoDefinitions {
    pub parsed: Parsed,
    /// Each definition file (relative path) and its text, for error snippets.
    pub files: Vec<(PathBuf, String)>,
}

/// Read and parse `almanac.yaml` in `root`.
pub fn load_config(root: &Path) -> Result<RepoConfig, RegistryError> {
    let path = root.join(CONFIG_FILE);
    if !path.is_file() {
        return Err(RegistryError::NotARepo { root: root.to_path_buf() });
    }
    let text = read(&path)?;
    let mut diagnostics = Diagnostics::default();
    let config = parse::parse_config(Path::new(CONFIG_FILE), &text, &mut diagnostics);
    match config {
        Some(config) if diagnostics.is_empty() => Ok(config),
        _ => Err(RegistryError::Invalid(diagnostics)),
    }
}

/// Read, parse and validate every definition file of the repo. All mistakes
/// in all files are returned together.
pub fn load_definitions(root: &Path) -> Result<RepoDefinitions, RegistryError> {
    let mut parsed = Parsed::default();
    let mut files = Vec::new();
    for path in definition_files(root)? {
        let text = read(&path)?;
        let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        parse::parse_definitions(&relative, &text, &mut parsed);
        files.push((relative, text));
    }
    validate::resolve_push_sources(&mut parsed);
    let cross = validate::validate(&parsed);
    parsed.diagnostics.extend(cross);
    attach_snippets(&mut parsed.diagnostics, &files);
    parsed.diagnostics.sort();
    parsed.definitions.sort();
    Ok(RepoDefinitions { parsed, files })
}

/// Fill in the source line under each diagnostic that lacks one.
pub fn attach_snippets(diagnostics: &mut Diagnostics, files: &[(PathBuf, String)]) {
    for diagnostic in diagnostics.0.iter_mut().filter(|d| d.snippet.is_none()) {
        if let Some((_, text)) = files.iter().find(|(path, _)| *path == diagnostic.location.file) {
            diagnostic.snippet = parse::snippet(text, diagnostic.location.line);
        }
    }
}

/// Every `*.yaml` / `*.yml` under `root` except `almanac.yaml`, skipping
/// hidden folders (`.almanac/`, `.git/`), in a stable order.
pub fn definition_files(root: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| RegistryError::Io { path: dir.clone(), source })?;
        for entry in entries {
            let entry = entry.map_err(|source| RegistryError::Io { path: dir.clone(), source })?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if (name.ends_with(".yaml") || name.ends_with(".yml")) && !(dir == root && name == CONFIG_FILE) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// A definition file's text. A UTF-8 byte-order mark (which some Windows
/// editors write) is dropped: it is not part of the YAML, and left in it
/// made the first key read as `\u{feff}entities`.
fn read(path: &Path) -> Result<String, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io { path: path.to_path_buf(), source })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}
