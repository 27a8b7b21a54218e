//! Registry storage: the [`Registry`] trait and its embedded file implementation.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::error::RegistryError;
use crate::state::{FORMAT_VERSION, RegistryState};

/// Where registry state is kept. Implementations must make [`Registry::commit`]
/// atomic (readers see the old or the new state, never a mix) and exclusive
/// (of two concurrent commits against the same version, one fails).
pub trait Registry: Send + Sync {
    /// The current state, or an empty state for `project` if nothing was applied yet.
    fn load(&self, project: &str) -> Result<RegistryState, RegistryError>;

    /// Replace the state, provided it is still at `expected_version`
    /// (otherwise [`RegistryError::Conflict`]).
    fn commit(&self, expected_version: u64, state: &RegistryState) -> Result<(), RegistryError>;

    /// Move a view's watermark forward to `to` (never backwards), without
    /// changing the definitions' version.
    fn advance_watermark(&self, project: &str, view: &str, to: DateTime<Utc>) -> Result<(), RegistryError>;
}

/// The embedded registry: one JSON file, replaced atomically (temp file,
/// fsync, rename, fsync of the folder) under an exclusive lock file.
#[derive(Debug, Clone)]
pub struct FileRegistry {
    path: PathBuf,
}

impl FileRegistry {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileRegistry { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_path(&self) -> PathBuf {
        self.path.with_extension("lock")
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> RegistryError + '_ {
        let path = path.to_path_buf();
        move |source| RegistryError::Io { path: path.clone(), source }
    }

    /// Take the writer lock without waiting: a second writer gets a clear
    /// error instead of silently queueing behind (or racing) the first.
    fn lock(&self) -> Result<File, RegistryError> {
        let lock_path = self.lock_path();
        if let Some(dir) = lock_path.parent() {
            std::fs::create_dir_all(dir).map_err(self.io(dir))?;
        }
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(self.io(&lock_path))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(RegistryError::Locked { path: lock_path }),
            Err(std::fs::TryLockError::Error(source)) => Err(RegistryError::Io { path: lock_path, source }),
        }
    }

    fn read(&self) -> Result<Option<RegistryState>, RegistryError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(RegistryError::Io { path: self.path.clone(), source }),
        };
        let header: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Corrupt { path: self.path.clone(), reason: e.to_string() })?;
        let found = header.get("format_version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        if found > FORMAT_VERSION {
            return Err(RegistryError::TooNew { path: self.path.clone(), found, supported: FORMAT_VERSION });
        }
        serde_json::from_value(header).map(Some).map_err(|e| RegistryError::Corrupt { path: self.path.clone(), reason: e.to_string() })
    }

    fn write_atomically(&self, state: &RegistryState) -> Result<(), RegistryError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(self.io(dir))?;
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| RegistryError::Corrupt { path: self.path.clone(), reason: e.to_string() })?;
        bytes.push(b'\n');
        let tmp = self.path.with_extension(format!("json.tmp-{}", std::process::id()));
        let result = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // Make the rename itself durable.
            File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(self.io(&self.path))
    }

    fn check_project(&self, project: &str, state: &RegistryState) -> Result<(), RegistryError> {
        if state.project != project {
            return Err(RegistryError::WrongProject { expected: project.to_string(), found: state.project.clone() });
        }
        Ok(())
    }
}

impl Registry for FileRegistry {
    fn load(&self, project: &str) -> Result<RegistryState, RegistryError> {
        match self.read()? {
            Some(state) => {
                self.check_project(project, &state)?;
                Ok(state)
            }
            None => Ok(RegistryState::empty(project)),
        }
    }

    fn commit(&self, expected_version: u64, state: &RegistryState) -> Result<(), RegistryError> {
        let _lock = self.lock()?;
        let found = self.read()?.map(|s| s.version).unwrap_or(0);
        if found != expected_version {
            return Err(RegistryError::Conflict { planned: expected_version, found });
        }
        self.write_atomically(state)
    }

    fn advance_watermark(&self, project: &str, view: &str, to: DateTime<Utc>) -> Result<(), RegistryError> {
        let _lock = self.lock()?;
        let mut state = self.load(project)?;
        let watermark = state.watermarks.entry(view.to_string()).or_insert(to);
        if *watermark < to {
            *watermark = to;
        }
        self.write_atomically(&state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (tempfile::TempDir, FileRegistry) {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = FileRegistry::new(dir.path().join(".almanac/registry.json"));
        (dir, registry)
    }

    #[test]
    fn commit_is_compare_and_swap_on_the_version() {
        let (_dir, registry) = registry();
        let mut state = registry.load("p").expect("load empty");
        assert_eq!(state.version, 0);
        state.version = 1;
        registry.commit(0, &state).expect("first commit");
        // A second writer that planned against version 0 must lose.
        let error = registry.commit(0, &state).expect_err("stale commit");
        assert!(matches!(error, RegistryError::Conflict { planned: 0, found: 1 }), "{error}");
        assert_eq!(registry.load("p").expect("load").version, 1);
    }

    #[test]
    fn a_held_lock_makes_the_second_writer_fail_clearly() {
        let (_dir, registry) = registry();
        let held = registry.lock().expect("first lock");
        let error = registry.commit(0, &RegistryState::empty("p")).expect_err("locked");
        assert!(error.to_string().contains("another `almanac apply`"), "{error}");
        drop(held);
        registry.commit(0, &RegistryState::empty("p")).expect("after unlock");
    }

    #[test]
    fn corrupt_and_foreign_files_are_reported_not_misread() {
        let (_dir, registry) = registry();
        std::fs::create_dir_all(registry.path().parent().expect("parent")).expect("mkdir");
        std::fs::write(registry.path(), b"{\"format_version\": 1, \"proj").expect("write");
        assert!(matches!(registry.load("p"), Err(RegistryError::Corrupt { .. })));
        std::fs::write(registry.path(), b"{\"format_version\": 99}").expect("write");
        assert!(matches!(registry.load("p"), Err(RegistryError::TooNew { found: 99, .. })));
        let mut state = RegistryState::empty("other");
        state.version = 1;
        std::fs::remove_file(registry.path()).expect("rm");
        registry.commit(0, &state).expect("commit");
        assert!(matches!(registry.load("p"), Err(RegistryError::WrongProject { .. })));
    }

    #[test]
    fn watermarks_only_move_forward() {
        let (_dir, registry) = registry();
        let t1: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().expect("ts");
        let t0: DateTime<Utc> = "2026-05-01T00:00:00Z".parse().expect("ts");
        registry.advance_watermark("p", "v", t1).expect("advance");
        registry.advance_watermark("p", "v", t0).expect("advance");
        assert_eq!(registry.load("p").expect("load").watermarks["v"], t1);
    }

    #[test]
    fn no_temp_file_is_left_behind() {
        let (dir, registry) = registry();
        registry.commit(0, &RegistryState::empty("p")).expect("commit");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join(".almanac"))
            .expect("ls")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
