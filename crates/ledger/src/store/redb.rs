//! The redb backend (default): one file, copy-on-write B-trees, writes with immediate
//! durability (fsync before they return).
//!
//! After a failed write (a full disk, an I/O error) redb refuses every later transaction
//! until the database is closed and opened again. This backend does that itself: the failed
//! write marks the database for reopening, and the next call reopens it (repairing from its
//! last durable commit), so freeing space restores service without a restart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, TableError};

use super::{Backend, CheckpointRecord, Store, decode_tree_head, decode_u64};
use crate::error::Error;
use crate::hash::TreeHead;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CHECKPOINTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("checkpoints");
/// Tree size (u64 BE) → when its checkpoint was first signed (Unix seconds, u64 BE).
const CHECKPOINT_TIMES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("checkpoint_times");
/// Tree size (u64 BE) → empty: checkpoints retention never removes.
const CHECKPOINT_PINS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("checkpoint_pins");
// Format 1 kept the tree in these; read only to migrate.
const TILES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tiles");
const BUNDLES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bundles");
const LEAVES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("leaves");
const TREE_HEAD_KEY: &str = "tree_head";

/// A [`Store`] in one redb database file.
pub struct RedbStore {
    /// The database file.
    path: PathBuf,
    /// Written only to compact after a migration (which needs `&mut`) and to reopen after a
    /// failed write.
    db: std::sync::RwLock<Database>,
    /// A write failed: the database must be closed and opened before the next use.
    broken: AtomicBool,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

fn err(context: &'static str) -> impl FnOnce(redb::Error) -> Error {
    move |e| Error::storage(context, e)
}

impl RedbStore {
    /// The database, reopened first if a write failed since it was last opened.
    ///
    /// # Errors
    /// [`Error::Storage`] if it must be reopened and cannot be (the disk is still full).
    fn db(&self) -> Result<std::sync::RwLockReadGuard<'_, Database>, Error> {
        if self.broken.load(Ordering::Acquire) {
            self.reopen()?;
        }
        Ok(self
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Closes the database and opens it again from its last durable commit.
    fn reopen(&self) -> Result<(), Error> {
        let mut db = self
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !self.broken.load(Ordering::Acquire) {
            return Ok(()); // another caller reopened it
        }
        // redb holds a lock on its file: the old handle must be gone before the new opens.
        // An empty in-memory database stands in meanwhile; it is never read, since `broken`
        // stays set until the file is open again.
        let stand_in = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| err("reopen redb database")(e.into()))?;
        drop(std::mem::replace(&mut *db, stand_in));
        let reopened =
            Database::create(&self.path).map_err(|e| err("reopen redb database")(e.into()))?;
        *db = reopened;
        self.broken.store(false, Ordering::Release);
        tracing::info!(path = %self.path.display(), "reopened the redb database after a failed write");
        Ok(())
    }

    /// Opens or creates the database file at `path`.
    ///
    /// # Errors
    /// [`Error::Storage`] if the file cannot be opened (for example, another process holds it).
    pub fn open(path: &Path) -> Result<Self, Error> {
        if !path.exists() {
            Self::create_atomically(path)?;
        }
        let db = Database::create(path).map_err(|e| err("open redb database")(e.into()))?;
        // Create the tables up front so that readers never see "table does not exist".
        let txn = db
            .begin_write()
            .map_err(|e| err("create tables")(e.into()))?;
        {
            let map = |e: TableError| err("create tables")(e.into());
            txn.open_table(META).map_err(map)?;
            txn.open_table(CHECKPOINTS).map_err(map)?;
            txn.open_table(CHECKPOINT_TIMES).map_err(map)?;
            txn.open_table(CHECKPOINT_PINS).map_err(map)?;
        }
        txn.commit().map_err(|e| err("create tables")(e.into()))?;
        Ok(RedbStore {
            path: path.to_owned(),
            db: std::sync::RwLock::new(db),
            broken: AtomicBool::new(false),
        })
    }

    /// Creates a new database file under a temporary name and renames it into place once its
    /// header is written and synced: a process killed while creating the store leaves either
    /// no database or a whole one, never a file redb cannot open (`magic number mismatch`).
    /// A temporary file left by such a kill held nothing yet and is replaced.
    fn create_atomically(path: &Path) -> Result<(), Error> {
        let creating = path.with_extension("redb.creating");
        match std::fs::remove_file(&creating) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::io_path(
                    "remove a half-created database",
                    &creating,
                    e,
                ));
            }
        }
        // Owner-only from the start, like every file of the store.
        let file = super::tilelog::open_private(&creating)?;
        let backend = redb::backends::FileBackend::new(file)
            .map_err(|e| err("create redb database")(e.into()))?;
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| err("create redb database")(e.into()))?;
        drop(db);
        std::fs::File::open(&creating)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io_path("sync the new database", &creating, e))?;
        std::fs::rename(&creating, path)
            .map_err(|e| Error::io_path("rename the new database into place", path, e))?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io_path("sync the data directory", dir, e))?;
        }
        Ok(())
    }

    fn get(
        &self,
        table: TableDefinition<&[u8], &[u8]>,
        key: &[u8],
        context: &'static str,
    ) -> Result<Option<Vec<u8>>, Error> {
        let txn = self
            .db()?
            .begin_read()
            .map_err(|e| err(context)(e.into()))?;
        let table = txn.open_table(table).map_err(|e| err(context)(e.into()))?;
        let value = table.get(key).map_err(|e| err(context)(e.into()))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn write(
        &self,
        context: &'static str,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), Error> {
        let result = self.write_once(context, f);
        if result.is_err() {
            // redb refuses everything after a failed write until reopened.
            self.broken.store(true, Ordering::Release);
        }
        result
    }

    fn write_once(
        &self,
        context: &'static str,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), Error> {
        let db = self.db()?;
        let mut txn = db.begin_write().map_err(|e| err(context)(e.into()))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| Error::storage(context, e))?;
        f(&txn).map_err(err(context))?;
        txn.commit().map_err(|e| err(context)(e.into()))
    }
}

impl Store for RedbStore {
    fn backend(&self) -> Backend {
        Backend::Redb
    }

    fn put_checkpoint(&self, size: u64, note: &[u8], signed_at: u64) -> Result<(), Error> {
        let key = size.to_be_bytes();
        self.write("store checkpoint", |txn| {
            txn.open_table(CHECKPOINTS)?.insert(key.as_slice(), note)?;
            let mut times = txn.open_table(CHECKPOINT_TIMES)?;
            if times.get(key.as_slice())?.is_none() {
                times.insert(key.as_slice(), signed_at.to_be_bytes().as_slice())?;
            }
            Ok(())
        })
    }

    fn checkpoint_records(&self, from: u64, limit: usize) -> Result<Vec<CheckpointRecord>, Error> {
        let context = "read checkpoint records";
        let txn = self
            .db()?
            .begin_read()
            .map_err(|e| err(context)(e.into()))?;
        let open = |t| txn.open_table(t).map_err(|e| err(context)(e.into()));
        let (notes, times, pins) = (
            open(CHECKPOINTS)?,
            open(CHECKPOINT_TIMES)?,
            open(CHECKPOINT_PINS)?,
        );
        let range = notes
            .range(from.to_be_bytes().as_slice()..)
            .map_err(|e| err(context)(e.into()))?;
        let mut records = Vec::new();
        for item in range.take(limit) {
            let (key, _) = item.map_err(|e| err(context)(e.into()))?;
            records.push(record(&times, &pins, key.value(), context)?);
        }
        Ok(records)
    }

    fn checkpoint_record_before(&self, size: u64) -> Result<Option<CheckpointRecord>, Error> {
        let context = "read checkpoint records";
        let txn = self
            .db()?
            .begin_read()
            .map_err(|e| err(context)(e.into()))?;
        let open = |t| txn.open_table(t).map_err(|e| err(context)(e.into()));
        let (notes, times, pins) = (
            open(CHECKPOINTS)?,
            open(CHECKPOINT_TIMES)?,
            open(CHECKPOINT_PINS)?,
        );
        let mut range = notes
            .range(..size.to_be_bytes().as_slice())
            .map_err(|e| err(context)(e.into()))?;
        let Some(item) = range.next_back() else {
            return Ok(None);
        };
        let (key, _) = item.map_err(|e| err(context)(e.into()))?;
        record(&times, &pins, key.value(), context).map(Some)
    }

    fn remove_checkpoints(&self, sizes: &[u64]) -> Result<(), Error> {
        self.write("remove checkpoints", |txn| {
            let pins = txn.open_table(CHECKPOINT_PINS)?;
            let mut notes = txn.open_table(CHECKPOINTS)?;
            let mut times = txn.open_table(CHECKPOINT_TIMES)?;
            for size in sizes {
                let key = size.to_be_bytes();
                if pins.get(key.as_slice())?.is_none() {
                    notes.remove(key.as_slice())?;
                    times.remove(key.as_slice())?;
                }
            }
            Ok(())
        })
    }

    fn pin_checkpoint(&self, size: u64) -> Result<(), Error> {
        self.write("pin checkpoint", |txn| {
            txn.open_table(CHECKPOINT_PINS)?
                .insert(size.to_be_bytes().as_slice(), [].as_slice())?;
            Ok(())
        })
    }

    fn is_pinned(&self, size: u64) -> Result<bool, Error> {
        Ok(self
            .get(CHECKPOINT_PINS, &size.to_be_bytes(), "read checkpoint pin")?
            .is_some())
    }

    fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, Error> {
        self.get(CHECKPOINTS, &size.to_be_bytes(), "read checkpoint")
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, Error> {
        let context = "read latest checkpoint";
        let txn = self
            .db()?
            .begin_read()
            .map_err(|e| err(context)(e.into()))?;
        let table = txn
            .open_table(CHECKPOINTS)
            .map_err(|e| err(context)(e.into()))?;
        let Some((key, value)) = table.last().map_err(|e| err(context)(e.into()))? else {
            return Ok(None);
        };
        let size = decode_u64(key.value(), "checkpoint size")?;
        Ok(Some((size, value.value().to_vec())))
    }

    fn legacy_tree_head(&self) -> Result<Option<TreeHead>, Error> {
        self.meta(TREE_HEAD_KEY)?
            .map(|v| decode_tree_head(&v))
            .transpose()
    }

    fn legacy_bundle(&self, index: u64) -> Result<Option<Vec<u8>>, Error> {
        let context = "read a format-1 entry bundle";
        let txn = self
            .db()?
            .begin_read()
            .map_err(|e| err(context)(e.into()))?;
        let table = match txn.open_table(BUNDLES) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(err(context)(e.into())),
        };
        let value = table
            .get(index.to_be_bytes().as_slice())
            .map_err(|e| err(context)(e.into()))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn drop_legacy(&self) -> Result<(), Error> {
        self.write("remove format-1 data", |txn| {
            txn.delete_table(TILES)?;
            txn.delete_table(BUNDLES)?;
            txn.delete_table(LEAVES)?;
            txn.open_table(META)?.remove(TREE_HEAD_KEY)?;
            Ok(())
        })?;
        // Give the freed pages back to the file system.
        let mut db = self
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        db.compact()
            .map_err(|e| Error::storage("compact after migration", e))?;
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let txn = self
            .db()?
            .begin_read()
            .map_err(|e| err("read metadata")(e.into()))?;
        let table = txn
            .open_table(META)
            .map_err(|e| err("read metadata")(e.into()))?;
        let value = table.get(key).map_err(|e| err("read metadata")(e.into()))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.write("write metadata", |txn| {
            txn.open_table(META)?.insert(key, value)?;
            Ok(())
        })
    }
}

/// The retention view of the checkpoint stored under `key`.
fn record(
    times: &redb::ReadOnlyTable<&[u8], &[u8]>,
    pins: &redb::ReadOnlyTable<&[u8], &[u8]>,
    key: &[u8],
    context: &'static str,
) -> Result<CheckpointRecord, Error> {
    let size = decode_u64(key, "checkpoint size")?;
    let signed_at = times
        .get(key)
        .map_err(|e| err(context)(e.into()))?
        .map(|v| decode_u64(v.value(), "checkpoint signing time"))
        .transpose()?;
    let pinned = pins.get(key).map_err(|e| err(context)(e.into()))?.is_some();
    Ok(CheckpointRecord {
        size,
        signed_at,
        pinned,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_store_suite() {
        crate::store::tests::store_suite(&|p| Box::new(RedbStore::open(p).unwrap()));
    }

    #[test]
    fn passes_the_retention_suite() {
        crate::store::tests::retention_suite(&|p| Box::new(RedbStore::open(p).unwrap()));
    }

    #[test]
    fn a_store_killed_while_being_created_opens_next_time() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.redb");
        // What a kill during creation leaves: a half-written temporary file, no database.
        std::fs::write(path.with_extension("redb.creating"), b"half a header").unwrap();
        let store = RedbStore::open(&path).unwrap();
        store.put_meta("origin", b"o").unwrap();
        drop(store);
        assert!(!path.with_extension("redb.creating").exists());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            RedbStore::open(&path).unwrap().meta("origin").unwrap(),
            Some(b"o".to_vec())
        );
    }
}
