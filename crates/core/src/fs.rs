//! The one atomic file write every crate uses (registry file, training-set
//! output, pushed Parquet files, generated data), and the only I/O in this
//! crate: it lives here because every writer depends on `almanac-core` and
//! the rule ("a reader sees the old file or the whole new one, never a torn
//! one") must not be re-implemented four ways.
//!
//! The data goes to a hidden temp file in the target's folder (source
//! listings skip dot-files), then is renamed over the target. With
//! [`Durability::Fsync`] the file is fsynced before the rename and the folder
//! after it, so a crash or power loss also leaves the old or the new file.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Whether the write must survive a power loss, or only a process crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file and its folder: for state others rely on (the
    /// registry, files appended to a source folder).
    Fsync,
    /// Rename only: for outputs a user can re-create (training sets).
    RenameOnly,
}

/// A temp path beside `path` that no other writer (thread or process) uses.
pub fn temp_path_beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.tmp-{}-{unique}", std::process::id()))
}

/// Write `path` atomically: `write` fills the temp file and hands it back
/// (writers such as Parquet's take the file by value); on any error the temp
/// file is removed and the target is untouched.
pub fn write_atomically(path: &Path, durability: Durability, write: impl FnOnce(File) -> io::Result<File>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = temp_path_beside(path);
    let result = (|| {
        let file = write(File::create(&tmp)?)?;
        if durability == Durability::Fsync {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&tmp, path)?;
        if durability == Durability::Fsync {
            File::open(&dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("almanac-core-fs-{}-{}", std::process::id(), temp_path_beside(Path::new("x")).display().to_string().len()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp_file() {
        let dir = scratch().join("failed");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("state.json");
        write_atomically(&path, Durability::Fsync, |mut f| {
            f.write_all(b"old")?;
            Ok(f)
        })
        .expect("first write");
        let error = write_atomically(&path, Durability::Fsync, |mut f| {
            f.write_all(b"half")?;
            Err(io::Error::other("disk on fire"))
        });
        assert!(error.is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        let names: Vec<String> = std::fs::read_dir(&dir).expect("ls").filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec!["state.json".to_string()]);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn temp_paths_never_repeat_and_are_hidden() {
        let a = temp_path_beside(Path::new("/x/y.parquet"));
        let b = temp_path_beside(Path::new("/x/y.parquet"));
        assert_ne!(a, b);
        assert!(a.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')));
    }
}
