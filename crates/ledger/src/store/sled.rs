//! The sled 0.34 backend (optional): one sled database, keys prefixed by kind, each write
//! applied as one atomic batch and then flushed to disk before it returns.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Backend, CheckpointRecord, Store, decode_tree_head, decode_u64};
use crate::error::Error;
use crate::hash::TreeHead;

const META: u8 = b'm';
const CHECKPOINTS: u8 = b'c';
/// Tree size (u64 BE) → when its checkpoint was first signed (Unix seconds, u64 BE).
const CHECKPOINT_TIMES: u8 = b's';
/// Tree size (u64 BE) → empty: checkpoints retention never removes.
const CHECKPOINT_PINS: u8 = b'p';
// Format 1 kept the tree under these prefixes; read only to migrate.
const TILES: u8 = b't';
const BUNDLES: u8 = b'b';
const LEAVES: u8 = b'l';

const TREE_HEAD_KEY: &[u8] = b"tree_head";

/// How long [`SledStore::open`] waits for a lock still held by a just-closed handle.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

/// A [`Store`] in one sled database directory.
pub struct SledStore {
    db: sled::Db,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

impl SledStore {
    /// Opens or creates the sled database at `path`.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled cannot open it (for example, another process holds it).
    ///
    /// sled releases its file lock from a background thread after the last handle is dropped,
    /// so a store reopened right after closing (a restart, a test) may briefly find it held:
    /// opening retries for up to [`LOCK_WAIT`](super::SLED_LOCK_WAIT) before giving up.
    ///
    /// sled 0.34.7 cannot reopen a database whose process was killed while it wrote a
    /// snapshot: recovery reads the incomplete temporary `snap.*.generating` file instead of
    /// the last complete snapshot and reports corruption (upstream issues #1527, #1509). sled
    /// renames that file into place only once it is complete and synced, so a leftover one is
    /// never authoritative: on a corruption error, `open` removes such leftovers and retries
    /// once. Any other corruption is reported as [`Error::Storage`].
    pub fn open(path: &Path) -> Result<Self, Error> {
        let deadline = Instant::now() + LOCK_WAIT;
        let mut cleaned = false;
        loop {
            match sled::Config::new().path(path).open() {
                Ok(db) => return Ok(SledStore { db }),
                Err(sled::Error::Corruption { .. })
                    if !cleaned && remove_partial_snapshots(path)? =>
                {
                    cleaned = true;
                }
                // sled 0.34 reports a held lock only as an `Other` I/O error with this text.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(Error::storage("open sled database", e)),
            }
        }
    }

    fn get(&self, k: &[u8], context: &'static str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .db
            .get(k)
            .map_err(|e| Error::storage(context, e))?
            .map(|v| v.to_vec()))
    }

    /// The retention view of the checkpoint stored under the full key `k`.
    fn record(&self, k: &[u8], context: &'static str) -> Result<CheckpointRecord, Error> {
        let size_bytes = k.get(1..).unwrap_or_default();
        let size = decode_u64(size_bytes, "checkpoint size")?;
        let signed_at = self
            .get(&key(CHECKPOINT_TIMES, size_bytes), context)?
            .map(|v| decode_u64(&v, "checkpoint signing time"))
            .transpose()?;
        let pinned = self
            .get(&key(CHECKPOINT_PINS, size_bytes), context)?
            .is_some();
        Ok(CheckpointRecord {
            size,
            signed_at,
            pinned,
        })
    }

    fn apply(&self, batch: sled::Batch, context: &'static str) -> Result<(), Error> {
        self.db
            .apply_batch(batch)
            .map_err(|e| Error::storage(context, e))?;
        self.db.flush().map_err(|e| Error::storage(context, e))?;
        Ok(())
    }
}

/// Removes `snap.*.generating` files left by a process killed mid-snapshot; returns whether
/// there were any.
fn remove_partial_snapshots(path: &Path) -> Result<bool, Error> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(_) => return Ok(false),
    };
    let mut removed = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::storage("remove a partial sled snapshot", e))?;
            removed = true;
        }
    }
    Ok(removed)
}

impl Store for SledStore {
    fn backend(&self) -> Backend {
        Backend::Sled
    }

    fn put_checkpoint(&self, size: u64, note: &[u8], signed_at: u64) -> Result<(), Error> {
        let context = "store checkpoint";
        let size = size.to_be_bytes();
        let time_key = key(CHECKPOINT_TIMES, &size);
        let mut batch = sled::Batch::default();
        batch.insert(key(CHECKPOINTS, &size), note);
        // The engine serializes signing, so nothing writes this key between the read and the
        // batch.
        if self.get(&time_key, context)?.is_none() {
            batch.insert(time_key, signed_at.to_be_bytes().as_slice());
        }
        self.apply(batch, context)
    }

    fn checkpoint_records(&self, from: u64, limit: usize) -> Result<Vec<CheckpointRecord>, Error> {
        let context = "read checkpoint records";
        let start = key(CHECKPOINTS, &from.to_be_bytes());
        let mut records = Vec::new();
        for item in self.db.range(start..vec![CHECKPOINTS + 1]).take(limit) {
            let (k, _) = item.map_err(|e| Error::storage(context, e))?;
            records.push(self.record(&k, context)?);
        }
        Ok(records)
    }

    fn checkpoint_record_before(&self, size: u64) -> Result<Option<CheckpointRecord>, Error> {
        let context = "read checkpoint records";
        let end = key(CHECKPOINTS, &size.to_be_bytes());
        let Some(item) = self.db.range(vec![CHECKPOINTS]..end).next_back() else {
            return Ok(None);
        };
        let (k, _) = item.map_err(|e| Error::storage(context, e))?;
        self.record(&k, context).map(Some)
    }

    fn remove_checkpoints(&self, sizes: &[u64]) -> Result<(), Error> {
        let context = "remove checkpoints";
        let mut batch = sled::Batch::default();
        for size in sizes {
            let size = size.to_be_bytes();
            // The engine serializes pinning and pruning, so no pin lands between the read and
            // the batch.
            if self.get(&key(CHECKPOINT_PINS, &size), context)?.is_none() {
                batch.remove(key(CHECKPOINTS, &size));
                batch.remove(key(CHECKPOINT_TIMES, &size));
            }
        }
        self.apply(batch, context)
    }

    fn pin_checkpoint(&self, size: u64) -> Result<(), Error> {
        let mut batch = sled::Batch::default();
        batch.insert(key(CHECKPOINT_PINS, &size.to_be_bytes()), &[][..]);
        self.apply(batch, "pin checkpoint")
    }

    fn is_pinned(&self, size: u64) -> Result<bool, Error> {
        Ok(self
            .get(
                &key(CHECKPOINT_PINS, &size.to_be_bytes()),
                "read checkpoint pin",
            )?
            .is_some())
    }

    fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, Error> {
        self.get(&key(CHECKPOINTS, &size.to_be_bytes()), "read checkpoint")
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, Error> {
        let context = "read latest checkpoint";
        let Some(item) = self.db.scan_prefix([CHECKPOINTS]).next_back() else {
            return Ok(None);
        };
        let (k, v) = item.map_err(|e| Error::storage(context, e))?;
        let size = decode_u64(k.get(1..).unwrap_or_default(), "checkpoint size")?;
        Ok(Some((size, v.to_vec())))
    }

    fn legacy_tree_head(&self) -> Result<Option<TreeHead>, Error> {
        self.get(&key(META, TREE_HEAD_KEY), "read a format-1 tree head")?
            .map(|v| decode_tree_head(&v))
            .transpose()
    }

    fn legacy_bundle(&self, index: u64) -> Result<Option<Vec<u8>>, Error> {
        self.get(
            &key(BUNDLES, &index.to_be_bytes()),
            "read a format-1 entry bundle",
        )
    }

    fn drop_legacy(&self) -> Result<(), Error> {
        let context = "remove format-1 data";
        let mut batch = sled::Batch::default();
        for prefix in [TILES, BUNDLES, LEAVES] {
            for item in self.db.scan_prefix([prefix]) {
                let (k, _) = item.map_err(|e| Error::storage(context, e))?;
                batch.remove(k);
            }
        }
        batch.remove(key(META, TREE_HEAD_KEY));
        self.apply(batch, context)
    }

    fn meta(&self, k: &str) -> Result<Option<Vec<u8>>, Error> {
        self.get(&key(META, k.as_bytes()), "read metadata")
    }

    fn put_meta(&self, k: &str, value: &[u8]) -> Result<(), Error> {
        let mut batch = sled::Batch::default();
        batch.insert(key(META, k.as_bytes()), value);
        self.apply(batch, "write metadata")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reopens_after_a_kill_during_snapshot_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = SledStore::open(&path).unwrap();
            store.put_meta("origin", b"o").unwrap();
        }
        // What a SIGKILL while sled writes a snapshot leaves behind (sled issue #1527).
        std::fs::write(path.join("snap.FFFFFFFFFFFFFFFF.generating"), b"").unwrap();
        let store = SledStore::open(&path).unwrap();
        assert_eq!(store.meta("origin").unwrap(), Some(b"o".to_vec()));
        assert!(!path.join("snap.FFFFFFFFFFFFFFFF.generating").exists());
    }

    #[test]
    fn passes_the_store_suite() {
        crate::store::tests::store_suite(&|p| Box::new(SledStore::open(p).unwrap()));
    }

    #[test]
    fn passes_the_retention_suite() {
        crate::store::tests::retention_suite(&|p| Box::new(SledStore::open(p).unwrap()));
    }
}
