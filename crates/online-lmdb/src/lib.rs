//! # almanac-online-lmdb
//!
//! Owns the embedded online store, [`EmbeddedStore`]: an LMDB environment (a
//! folder under the repo's `.almanac/`, one named database per feature
//! view) behind the [`OnlineStore`] trait of `almanac-online`, and runs that
//! crate's conformance kit against it. Why LMDB rather than redb: serving
//! and materialization are separate processes (`almanac serve` keeps
//! reading while a cron runs `almanac materialize-incremental`), and both
//! open the store at once. redb locks its file to one process; LMDB is built
//! for exactly this: any number of reader processes and one writer, readers
//! never block and are never blocked (MVCC over a memory map), and a killed
//! writer leaves the last committed transaction intact. Reads are a B-tree
//! lookup in mapped memory, well under a microsecond, so the store reports
//! [`Capabilities::inline_reads`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, PutFlags, WithoutTls};

use almanac_online::record::replaces;
use almanac_online::{Capabilities, Entry, Lookup, OnlineError, OnlineStore, WriteStats};

/// The address space reserved for the map. LMDB files are sparse: this is a
/// ceiling on the store's size, not disk or memory used.
const MAP_SIZE: usize = 1 << 40;
/// Named databases (one per online view). LMDB sizes, allocates and zeroes
/// per-transaction tables by this number on every read transaction, so it
/// is kept modest: 4096 made each read allocate ~200 KB (an mmap/munmap per
/// request); 512 costs ~25 KB of heap.
const MAX_VIEWS: u32 = 512;

/// A handle on an embedded store. Cheap to clone; every handle on one
/// folder within a process shares one LMDB environment (LMDB forbids opening
/// an environment twice in a process: closing one would drop the other's
/// locks).
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    env: Env<WithoutTls>,
    views: RwLock<HashMap<String, Database<Bytes, Bytes>>>,
}

/// Environments open in this process, by canonical folder.
fn opened() -> &'static Mutex<HashMap<PathBuf, Weak<Inner>>> {
    static OPENED: OnceLock<Mutex<HashMap<PathBuf, Weak<Inner>>>> = OnceLock::new();
    OPENED.get_or_init(|| Mutex::new(HashMap::new()))
}

impl EmbeddedStore {
    /// Open (creating if needed) the store in folder `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OnlineError> {
        let path = path.as_ref().to_path_buf();
        let fail = |reason: String| OnlineError::Storage { store: describe(&path), reason };
        std::fs::create_dir_all(&path).map_err(|e| fail(e.to_string()))?;
        let canonical = path.canonicalize().map_err(|e| fail(e.to_string()))?;
        let mut opened = opened().lock().map_err(|e| fail(e.to_string()))?;
        if let Some(inner) = opened.get(&canonical).and_then(Weak::upgrade) {
            return Ok(EmbeddedStore { inner });
        }
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(MAP_SIZE).max_dbs(MAX_VIEWS).max_readers(1024);
        // SAFETY: the environment's files are only ever modified through LMDB
        // (by this code, in this or another process); nothing truncates or
        // rewrites them underneath the memory map.
        #[allow(unsafe_code)]
        let env = unsafe { options.open(&path) }.map_err(|e| fail(e.to_string()))?;
        let inner = Arc::new(Inner { path, env, views: RwLock::new(HashMap::new()) });
        opened.insert(canonical, Arc::downgrade(&inner));
        Ok(EmbeddedStore { inner })
    }

    /// A heed (LMDB) or lock error, as the trait's storage error.
    fn fail(&self, error: impl std::fmt::Display) -> OnlineError {
        OnlineError::Storage { store: describe(&self.inner.path), reason: error.to_string() }
    }

    /// The view's database if it exists (reads never create one).
    fn existing(&self, view: &str) -> Result<Option<Database<Bytes, Bytes>>, OnlineError> {
        if let Some(db) = self.inner.views.read().map_err(|e| self.fail(e))?.get(view) {
            return Ok(Some(*db));
        }
        let rtxn = self.inner.env.read_txn().map_err(|e| self.fail(e))?;
        let db = self.inner.env.open_database::<Bytes, Bytes>(&rtxn, Some(view)).map_err(|e| self.fail(e))?;
        rtxn.commit().map_err(|e| self.fail(e))?;
        if let Some(db) = db {
            self.inner.views.write().map_err(|e| self.fail(e))?.insert(view.to_string(), db);
        }
        Ok(db)
    }
}

fn describe(path: &Path) -> String {
    format!("embedded at {}", path.display())
}

impl OnlineStore for EmbeddedStore {
    fn describe(&self) -> String {
        describe(&self.inner.path)
    }

    /// Reads are a lookup in mapped memory: they never touch the network.
    fn capabilities(&self) -> Capabilities {
        Capabilities { inline_reads: true }
    }

    fn read(&self, lookups: &[Lookup<'_>]) -> Result<Vec<Option<Vec<u8>>>, OnlineError> {
        let mut dbs: Vec<(&str, Option<Database<Bytes, Bytes>>)> = Vec::new();
        for lookup in lookups {
            if !dbs.iter().any(|(v, _)| *v == lookup.view) {
                dbs.push((lookup.view, self.existing(lookup.view)?));
            }
        }
        let rtxn = self.inner.env.read_txn().map_err(|e| self.fail(e))?;
        lookups
            .iter()
            .map(|lookup| {
                let db = dbs.iter().find(|(v, _)| *v == lookup.view).and_then(|(_, db)| *db);
                match db {
                    Some(db) => db.get(&rtxn, lookup.key).map(|v| v.map(<[u8]>::to_vec)).map_err(|e| self.fail(e)),
                    None => Ok(None),
                }
            })
            .collect()
    }

    fn write(&self, view: &str, entries: &[Entry]) -> Result<WriteStats, OnlineError> {
        let mut stats = WriteStats::default();
        if entries.is_empty() {
            return Ok(stats);
        }
        // Sorted keys turn random B-tree inserts into mostly sequential ones.
        let mut order: Vec<&Entry> = entries.iter().collect();
        order.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let mut wtxn = self.inner.env.write_txn().map_err(|e| self.fail(e))?;
        let db = self.inner.env.create_database::<Bytes, Bytes>(&mut wtxn, Some(view)).map_err(|e| self.fail(e))?;
        // A strictly increasing batch that starts after the last stored key
        // (a fresh materialization, chunk after chunk) cannot meet a stored
        // record: append it without searching the tree at all.
        let last = db.last(&wtxn).map_err(|e| self.fail(e))?.map(|(key, _)| key.to_vec());
        let increasing = order.windows(2).all(|pair| pair[0].key < pair[1].key);
        if increasing && last.as_deref().is_none_or(|last| order[0].key.as_slice() > last) {
            for entry in &order {
                db.put_with_flags(&mut wtxn, PutFlags::APPEND, &entry.key, &entry.record).map_err(|e| self.fail(e))?;
            }
            stats.written = order.len() as u64;
            wtxn.commit().map_err(|e| self.fail(e))?;
            self.inner.views.write().map_err(|e| self.fail(e))?.insert(view.to_string(), db);
            return Ok(stats);
        }
        for entry in order {
            // One B-tree descent inserts a new key (the common case) or
            // finds the stored record; a second one only to replace it.
            let replace = match db.get_or_put(&mut wtxn, &entry.key, &entry.record).map_err(|e| self.fail(e))? {
                None => {
                    stats.written += 1;
                    continue;
                }
                Some(old) => replaces(&entry.record, old),
            };
            if replace {
                db.put(&mut wtxn, &entry.key, &entry.record).map_err(|e| self.fail(e))?;
                stats.written += 1;
            } else {
                stats.kept_newer += 1;
            }
        }
        wtxn.commit().map_err(|e| self.fail(e))?;
        self.inner.views.write().map_err(|e| self.fail(e))?.insert(view.to_string(), db);
        Ok(stats)
    }

    fn delete_view(&self, view: &str) -> Result<u64, OnlineError> {
        let Some(db) = self.existing(view)? else { return Ok(0) };
        let mut wtxn = self.inner.env.write_txn().map_err(|e| self.fail(e))?;
        let count = db.len(&wtxn).map_err(|e| self.fail(e))?;
        db.clear(&mut wtxn).map_err(|e| self.fail(e))?;
        wtxn.commit().map_err(|e| self.fail(e))?;
        Ok(count)
    }

    fn scan(&self, view: &str, limit: Option<usize>) -> Result<Vec<Entry>, OnlineError> {
        let Some(db) = self.existing(view)? else { return Ok(Vec::new()) };
        let rtxn = self.inner.env.read_txn().map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for item in db.iter(&rtxn).map_err(|e| self.fail(e))? {
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            let (key, record) = item.map_err(|e| self.fail(e))?;
            out.push(Entry { key: key.to_vec(), record: record.to_vec() });
        }
        Ok(out)
    }

    fn ping(&self) -> Result<(), OnlineError> {
        self.inner.env.read_txn().map(|_| ()).map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_on_one_folder_share_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = EmbeddedStore::open(dir.path().join("online")).expect("open");
        let reader = EmbeddedStore::open(dir.path().join("online")).expect("open");
        assert!(Arc::ptr_eq(&writer.inner, &reader.inner));
        let entry = almanac_online::testkit::entry(b"k", 10, None, 1);
        assert_eq!(reader.read(&[Lookup { view: "v", key: b"k" }]).expect("read"), vec![None]);
        writer.write("v", std::slice::from_ref(&entry)).expect("write");
        assert_eq!(reader.read(&[Lookup { view: "v", key: b"k" }]).expect("read"), vec![Some(entry.record)]);
    }

    #[test]
    fn reads_may_run_inline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path().join("online")).expect("open");
        assert!(store.capabilities().inline_reads);
    }
}
