//! Registry storage: the [`Registry`] trait and its embedded file implementation.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use almanac_core::fs::{Durability, write_atomically};
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

    /// Read-modify-write as one step: `change` is handed the current state
    /// and returns the next one (or `None` to write nothing), while no other
    /// writer can commit in between. This is how every writer that does not
    /// hold a planned version (apply, materialization) changes the registry,
    /// so none of them can roll back what another wrote meanwhile. Returns
    /// the state now stored.
    fn update(&self, project: &str, change: &mut dyn FnMut(&RegistryState) -> Option<RegistryState>) -> Result<RegistryState, RegistryError>;

    /// Every applied version of the definitions, oldest first (the current
    /// one last), for `features history`. Watermarks are not versioned.
    fn history(&self, project: &str) -> Result<Vec<RegistryState>, RegistryError>;

    /// Move a view's watermark forward to `to` (never backwards), without
    /// changing the definitions' version.
    fn advance_watermark(&self, project: &str, view: &str, to: DateTime<Utc>) -> Result<(), RegistryError> {
        self.update(project, &mut |current| {
            if current.watermarks.get(view).is_some_and(|mark| *mark >= to) {
                return None;
            }
            let mut next = current.clone();
            next.watermarks.insert(view.to_string(), to);
            Some(next)
        })
        .map(|_| ())
    }
}

/// How long a writer waits for another writer's lock before giving up.
/// Writers hold it for one small file write, so a wait this long means a
/// stuck process, not a busy one.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

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

    /// Every applied version, one JSON state per line, appended under the
    /// writer lock when the definitions' version changes.
    fn history_path(&self) -> PathBuf {
        self.path.with_extension("history.jsonl")
    }

    fn append_history(&self, state: &RegistryState) -> Result<(), RegistryError> {
        let path = self.history_path();
        let mut line = serde_json::to_vec(&RegistryState { watermarks: Default::default(), ..state.clone() }).map_err(|e| RegistryError::Corrupt { path: path.clone(), reason: e.to_string() })?;
        line.push(b'\n');
        let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(self.io(&path))?;
        file.write_all(&line).and_then(|()| file.sync_data()).map_err(self.io(&path))
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> RegistryError + '_ {
        let path = path.to_path_buf();
        move |source| RegistryError::Io { path: path.clone(), source }
    }

    /// Take the writer lock, waiting up to `wait` for another writer to
    /// finish (writers hold it for one small file write, so concurrent
    /// materializations and applies queue briefly instead of failing). The
    /// OS releases it if the holder dies.
    fn lock(&self, wait: std::time::Duration) -> Result<File, RegistryError> {
        let lock_path = self.lock_path();
        if let Some(dir) = lock_path.parent() {
            std::fs::create_dir_all(dir).map_err(self.io(dir))?;
        }
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(self.io(&lock_path))?;
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < wait => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::WouldBlock) => return Err(RegistryError::Locked { path: lock_path, waited_secs: wait.as_secs() }),
                Err(std::fs::TryLockError::Error(source)) => return Err(RegistryError::Io { path: lock_path, source }),
            }
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
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(self.io(dir))?;
        }
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| RegistryError::Corrupt { path: self.path.clone(), reason: e.to_string() })?;
        bytes.push(b'\n');
        write_atomically(&self.path, Durability::Fsync, |mut file| {
            file.write_all(&bytes)?;
            Ok(file)
        })
        .map_err(self.io(&self.path))
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
        let _lock = self.lock(LOCK_WAIT)?;
        // No file yet is version 0, the empty registry.
        let found = self.read()?.map_or(0, |s| s.version);
        if found != expected_version {
            return Err(RegistryError::Conflict { planned: expected_version, found });
        }
        self.write_atomically(state)?;
        if state.version != found {
            self.append_history(state)?;
        }
        Ok(())
    }

    fn history(&self, project: &str) -> Result<Vec<RegistryState>, RegistryError> {
        let path = self.history_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(RegistryError::Io { path, source }),
        };
        let mut versions = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            // A line cut short by a crash mid-append is the last one; skip it.
            let Ok(state) = serde_json::from_str::<RegistryState>(line) else { continue };
            if state.project == project {
                versions.push(state);
            }
        }
        // Versions applied before history was kept: at least the current one.
        let current = self.load(project)?;
        if current.version > 0 && versions.last().is_none_or(|last| last.version != current.version) {
            versions.push(RegistryState { watermarks: Default::default(), ..current });
        }
        Ok(versions)
    }

    fn update(&self, project: &str, change: &mut dyn FnMut(&RegistryState) -> Option<RegistryState>) -> Result<RegistryState, RegistryError> {
        let _lock = self.lock(LOCK_WAIT)?;
        let current = self.load(project)?;
        match change(&current) {
            Some(next) => {
                self.write_atomically(&next)?;
                if next.version != current.version {
                    self.append_history(&next)?;
                }
                Ok(next)
            }
            None => Ok(current),
        }
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
    fn a_lock_held_too_long_makes_the_second_writer_fail_clearly() {
        let (_dir, registry) = registry();
        let held = registry.lock(LOCK_WAIT).expect("first lock");
        let error = registry.lock(std::time::Duration::from_millis(30)).expect_err("locked");
        assert!(error.to_string().contains("another Almanac command"), "{error}");
        drop(held);
        registry.commit(0, &RegistryState::empty("p")).expect("after unlock");
    }

    /// Regression: eight materializations of different views and two
    /// applies finishing together used to fail ("another `almanac apply`")
    /// or silently roll back each other's watermarks. Every writer must now
    /// succeed and every watermark must be the newest one written.
    #[test]
    fn concurrent_writers_wait_and_never_lose_a_watermark() {
        let (_dir, registry) = registry();
        let mut initial = RegistryState::empty("p");
        initial.version = 1;
        registry.commit(0, &initial).expect("initial");
        let registry = std::sync::Arc::new(registry);
        let base: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().expect("ts");
        let mut threads = Vec::new();
        for view in 0..8 {
            let registry = registry.clone();
            threads.push(std::thread::spawn(move || {
                for step in 0..20 {
                    let to = base + chrono::Duration::minutes(step);
                    registry.advance_watermark("p", &format!("v{view}"), to).expect("advance");
                }
            }));
        }
        for _ in 0..2 {
            let registry = registry.clone();
            threads.push(std::thread::spawn(move || {
                for _ in 0..20 {
                    // An apply: read-modify-write of the definitions' version.
                    registry
                        .update("p", &mut |current| {
                            let mut next = current.clone();
                            next.version += 1;
                            Some(next)
                        })
                        .expect("apply");
                }
            }));
        }
        for thread in threads {
            thread.join().expect("writer thread");
        }
        let state = registry.load("p").expect("load");
        assert_eq!(state.version, 1 + 2 * 20, "every apply landed");
        for view in 0..8 {
            assert_eq!(state.watermarks[&format!("v{view}")], base + chrono::Duration::minutes(19), "v{view}");
        }
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
    fn every_applied_version_is_kept_for_history_and_watermarks_are_not() {
        let (_dir, registry) = registry();
        for _ in 0..3 {
            registry
                .update("p", &mut |current| {
                    let mut next = current.clone();
                    next.version += 1;
                    Some(next)
                })
                .expect("apply");
        }
        registry.advance_watermark("p", "v", "2026-06-01T00:00:00Z".parse().expect("ts")).expect("advance");
        let history = registry.history("p").expect("history");
        assert_eq!(history.iter().map(|s| s.version).collect::<Vec<_>>(), vec![1, 2, 3], "one entry per version, none for a watermark");
        assert!(history.iter().all(|s| s.watermarks.is_empty()));
        assert!(matches!(registry.history("other"), Err(RegistryError::WrongProject { .. })), "another project's history is refused like its state");
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
