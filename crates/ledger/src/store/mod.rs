//! Durable storage: the log's files, written once each (see [`tilelog`](self) below), and a
//! small key-value store for everything else, with two backends: [`redb`](RedbStore)
//! (default) and [`sled`](SledStore) (optional).
//!
//! A data directory holds:
//!
//! | path                  | what                                                         | written          |
//! |-----------------------|--------------------------------------------------------------|------------------|
//! | `log/entries`         | every entry once, in checksummed frames                      | fsynced per commit |
//! | `log/level-<L>`       | every hash-tile node of level `L`, 32 bytes each             | derived, synced each second |
//! | `log/bundles`         | the entry-log offset of each entry bundle                    | derived          |
//! | `log/state`           | how far the derived files are durable                        | each second      |
//! | `leaf-index/*.run`    | sorted runs: leaf-hash prefix → index                        | behind the committer |
//! | `ledger.redb` / `ledger.sled` | origin, format version, signed checkpoints, when each was first signed, pins | per checkpoint   |
//!
//! The key-value store keys are big-endian so raw byte order is numeric order. Everything is
//! created owner-only: directories `0700`, files `0600`.
//!
//! Signed checkpoints keep the format-1 layout (tree size → note bytes); the time each was
//! first signed and the pins that exempt one from retention
//! ([`Ledger::prune_checkpoints`](crate::Ledger::prune_checkpoints)) sit beside them, keyed by
//! the same size, so a format-1 store needs no migration for them (its checkpoints simply have
//! no recorded time and are kept).

#[cfg(feature = "redb")]
mod redb;
#[cfg(feature = "sled")]
mod sled;

pub(crate) mod bundle_cache;
pub(crate) mod leaf_index;
pub mod purged;
pub(crate) mod tilelog;

#[cfg(feature = "redb")]
pub use self::redb::RedbStore;
#[cfg(feature = "sled")]
pub use self::sled::{LOCK_WAIT as SLED_LOCK_WAIT, SledStore};
pub use leaf_index::{IndexStatus, RUN_MIN, TAIL_SCAN_LIMIT};
pub use purged::{PURGED_KEY, PurgedRange};

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::hash::{Hash, TreeHead};

/// The store format this build writes (kept under the metadata key [`FORMAT_KEY`]).
pub const FORMAT: &str = "2";
/// Metadata key of the store format.
pub const FORMAT_KEY: &str = "format";

/// Which backend a store uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// redb: the default embedded store.
    Redb,
    /// sled 0.34.
    Sled,
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "redb" => Ok(Backend::Redb),
            "sled" => Ok(Backend::Sled),
            other => Err(Error::UnknownBackend {
                name: other.to_owned(),
            }),
        }
    }
}

/// Durable key-value storage for a log's metadata and signed checkpoints. Implementations
/// must make every write atomic and durable before it returns.
pub trait Store: Send + Sync + 'static {
    /// The backend's name, for logs and errors.
    fn backend(&self) -> Backend;

    /// Durably stores a signed checkpoint note for tree size `size`, signed at `signed_at`
    /// (Unix seconds), in one atomic write. The time is recorded only if none is recorded for
    /// `size` yet: re-signing a tree keeps the time it was first signed.
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn put_checkpoint(&self, size: u64, note: &[u8], signed_at: u64) -> Result<(), Error>;

    /// The signed checkpoint stored for tree size `size`, if any.
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, Error>;

    /// The signed checkpoint with the largest tree size, if any.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupted`].
    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, Error>;

    /// Up to `limit` stored checkpoints with tree size `>= from`, smallest size first, as
    /// retention sees them (no note bytes).
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupted`].
    fn checkpoint_records(&self, from: u64, limit: usize) -> Result<Vec<CheckpointRecord>, Error>;

    /// The stored checkpoint with the largest tree size below `size`, if any.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupted`].
    fn checkpoint_record_before(&self, size: u64) -> Result<Option<CheckpointRecord>, Error>;

    /// Durably removes the checkpoints of these tree sizes (note and time) in one atomic
    /// write. Pinned sizes and sizes not stored are skipped.
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn remove_checkpoints(&self, sizes: &[u64]) -> Result<(), Error>;

    /// Durably pins tree size `size`: its checkpoint is never removed by
    /// [`Store::remove_checkpoints`] (for example, one a witness cosigned).
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn pin_checkpoint(&self, size: u64) -> Result<(), Error>;

    /// Whether tree size `size` is pinned.
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn is_pinned(&self, size: u64) -> Result<bool, Error>;

    /// A metadata value (e.g. the log's origin).
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;

    /// Durably sets a metadata value.
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), Error>;

    /// The tree head recorded by a store of format 1 (entries and tiles kept in the key-value
    /// store), if this is one: the starting point of a migration.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupted`].
    fn legacy_tree_head(&self) -> Result<Option<TreeHead>, Error>;

    /// Entry bundle `index` of a format-1 store (its latest width).
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn legacy_bundle(&self, index: u64) -> Result<Option<Vec<u8>>, Error>;

    /// Removes the format-1 data (tree head, tiles, bundles, leaf index) once migrated.
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn drop_legacy(&self) -> Result<(), Error>;
}

/// A stored checkpoint as retention sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// Its tree size (the key).
    pub size: u64,
    /// When it was first signed (Unix seconds); `None` for a checkpoint stored before times
    /// were recorded.
    pub signed_at: Option<u64>,
    /// Whether it is pinned (never removed).
    pub pinned: bool,
}

/// An opened data directory: the key-value store and where the log's files live. Pass it to
/// [`Ledger::open`](crate::Ledger::open).
pub struct Storage {
    pub(crate) kv: Box<dyn Store>,
    pub(crate) dir: PathBuf,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("backend", &self.kv.backend())
            .field("dir", &self.dir)
            .finish()
    }
}

impl Storage {
    /// The key-value store.
    pub fn kv(&self) -> &dyn Store {
        self.kv.as_ref()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Opens (creating if needed, owner-only) the data directory `dir` with the given backend for
/// its key-value store.
///
/// # Errors
/// [`Error::Storage`] or [`Error::Io`] if the directory or database cannot be opened;
/// [`Error::UnknownBackend`] if the backend was not compiled in.
pub fn open(backend: Backend, dir: &Path) -> Result<Storage, Error> {
    tilelog::create_private_dir(dir)?;
    let kv: Box<dyn Store> = match backend {
        #[cfg(feature = "redb")]
        Backend::Redb => Box::new(RedbStore::open(&dir.join("ledger.redb"))?),
        #[cfg(feature = "sled")]
        Backend::Sled => Box::new(SledStore::open(&dir.join("ledger.sled"))?),
        #[allow(unreachable_patterns)]
        other => {
            return Err(Error::UnknownBackend {
                name: format!("{other:?}"),
            });
        }
    };
    restrict(&dir.join("ledger.redb"))?;
    restrict(&dir.join("ledger.sled"))?;
    Ok(Storage {
        kv,
        dir: dir.to_owned(),
    })
}

/// Makes `path` (a file, or a directory and everything in it) owner-only, if it exists.
fn restrict(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let set = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io_path("restrict permissions", p, e))
    };
    if meta.is_dir() {
        set(path, 0o700)?;
        let entries =
            std::fs::read_dir(path).map_err(|e| Error::io_path("restrict permissions", path, e))?;
        for entry in entries.flatten() {
            restrict(&entry.path())?;
        }
    } else if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
        set(path, 0o600)?;
    }
    Ok(())
}

/// Decodes a stored format-1 tree head: size (u64 BE) ‖ root.
#[cfg_attr(not(any(feature = "redb", feature = "sled")), allow(dead_code))]
pub(crate) fn decode_tree_head(bytes: &[u8]) -> Result<TreeHead, Error> {
    let (size, root) = bytes
        .split_at_checked(8)
        .filter(|(_, root)| root.len() == 32)
        .ok_or_else(|| {
            Error::corrupted(format!("stored tree head is {} bytes, not 40", bytes.len()))
        })?;
    let size = decode_u64(size, "tree size")?;
    let root = Hash::try_from_slice(root).map_err(|_| Error::corrupted("stored root"))?;
    Ok(TreeHead::new(size, root))
}

/// Decodes a stored big-endian u64.
#[cfg_attr(not(any(feature = "redb", feature = "sled")), allow(dead_code))]
pub(crate) fn decode_u64(bytes: &[u8], what: &str) -> Result<u64, Error> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| Error::corrupted(format!("stored {what} is {} bytes, not 8", bytes.len())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
pub(crate) mod tests {
    //! The suite every key-value backend must pass.
    use super::*;
    use std::collections::BTreeMap;

    pub(crate) fn store_suite(open: &dyn Fn(&std::path::Path) -> Box<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = open(&path);
            assert_eq!(store.latest_checkpoint().unwrap(), None);
            assert_eq!(store.legacy_tree_head().unwrap(), None);
            store.put_checkpoint(1, b"one", 1).unwrap();
            store.put_checkpoint(300, b"three hundred", 300).unwrap();
            store.put_checkpoint(2, b"two", 2).unwrap();
            store.put_meta("origin", b"example.com/log").unwrap();
        }
        // Everything survives a reopen.
        let store = open(&path);
        assert_eq!(store.checkpoint(2).unwrap(), Some(b"two".to_vec()));
        assert_eq!(store.checkpoint(3).unwrap(), None);
        // Big-endian keys: 300 sorts after 2 and 1.
        assert_eq!(
            store.latest_checkpoint().unwrap(),
            Some((300, b"three hundred".to_vec()))
        );
        assert_eq!(
            store.meta("origin").unwrap(),
            Some(b"example.com/log".to_vec())
        );
        assert_eq!(store.meta("other").unwrap(), None);
        assert_eq!(store.legacy_bundle(0).unwrap(), None);
        store.drop_legacy().unwrap();

        // Model test: random checkpoints and metadata agree with a BTreeMap.
        let mut model = BTreeMap::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..200u64 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let size = (state >> 32) % 1000;
            store
                .put_checkpoint(size, &round.to_be_bytes(), round)
                .unwrap();
            model.insert(size, round.to_be_bytes().to_vec());
        }
        for (size, value) in &model {
            assert_eq!(store.checkpoint(*size).unwrap().as_ref(), Some(value));
        }
        let (last, value) = model.iter().next_back().unwrap();
        assert_eq!(
            store.latest_checkpoint().unwrap(),
            Some((*last, value.clone()))
        );
    }

    /// "Now" of the synthetic history: on a minute boundary, half past an hour (the suite
    /// also runs 30 s later, so that each boundary falls both on and inside a minute).
    const NOW: u64 = 1_800_001_800;

    /// A synthetic history, sizes ascending with non-decreasing times: dense and sparse
    /// stretches on both sides of the 7-day and 1-hour boundaries, and exactly on them.
    fn history(now: u64) -> Vec<(u64, u64)> {
        use crate::engine::{KEEP_ALL_SECS as ALL, KEEP_MINUTELY_SECS as WEEK};
        let mut times = Vec::new();
        // Older than 7 days: every 17 minutes for two days (several per hour), then a
        // checkpoint every 7 s across the 7-day boundary.
        let mut t = now - WEEK - 2 * 86_400;
        while t < now - WEEK - 600 {
            times.push(t);
            t += 17 * 60;
        }
        let mut t = now - WEEK - 600;
        while t < now - WEEK + 600 {
            times.push(t);
            t += 7;
        }
        times.extend([now - WEEK - 1, now - WEEK, now - WEEK + 1]);
        // Minute-tier: every 23 s for 3 hours, a gap, then every 5 s across the 1-hour
        // boundary, exactly on it, and into the recent window.
        let mut t = now - 3 * 86_400;
        while t < now - 3 * 86_400 + 3 * 3600 {
            times.push(t);
            t += 23;
        }
        let mut t = now - ALL - 300;
        while t < now - ALL + 300 {
            times.push(t);
            t += 5;
        }
        times.extend([now - ALL - 1, now - ALL, now - ALL + 1, now - 2, now - 1]);
        times.sort_unstable();
        times
            .into_iter()
            .enumerate()
            .map(|(i, t)| (i as u64 * 3 + 1, t))
            .collect()
    }

    /// What the policy keeps, computed naively from the whole history: the latest, the
    /// pinned, every one younger than an hour, the first of each minute that began less than
    /// 7 days ago and the first of each hour before.
    fn expected(history: &[(u64, u64)], pinned: &[u64], now: u64) -> Vec<u64> {
        use crate::engine::{KEEP_ALL_SECS as ALL, KEEP_MINUTELY_SECS as WEEK};
        let latest = history.iter().map(|(s, _)| *s).max();
        let mut first_of = BTreeMap::new();
        for (size, t) in history {
            let bucket = if now - (t - t % 60) < WEEK {
                (60, t / 60)
            } else {
                (3600, t / 3600)
            };
            first_of.entry(bucket).or_insert(*size);
        }
        history
            .iter()
            .filter(|(size, t)| {
                let bucket = if now - (t - t % 60) < WEEK {
                    (60, t / 60)
                } else {
                    (3600, t / 3600)
                };
                Some(*size) == latest
                    || pinned.contains(size)
                    || now - t < ALL
                    || first_of.get(&bucket) == Some(size)
            })
            .map(|(s, _)| *s)
            .collect()
    }

    fn fill(store: &dyn Store, history: &[(u64, u64)]) {
        for (size, t) in history {
            store
                .put_checkpoint(*size, &size.to_be_bytes(), *t)
                .unwrap();
        }
    }

    fn stored(store: &dyn Store) -> Vec<u64> {
        store
            .checkpoint_records(0, usize::MAX)
            .unwrap()
            .iter()
            .map(|r| r.size)
            .collect()
    }

    /// Full passes (calls until one reports `complete`) with the given bounds.
    fn prune(store: &dyn Store, now: u64, scan: usize, remove: usize) -> Vec<u64> {
        let mut cursor = 0;
        let mut removed = Vec::new();
        for _ in 0..100_000 {
            let pruned =
                crate::engine::prune_history(store, &mut cursor, now, scan, remove).unwrap();
            assert!(pruned.removed.len() <= remove);
            assert!(pruned.scanned <= scan);
            removed.extend(pruned.removed);
            if pruned.complete {
                assert_eq!(cursor, 0);
                return removed;
            }
        }
        panic!("pruning never completed");
    }

    /// The retention suite every key-value backend must pass.
    pub(crate) fn retention_suite(open: &dyn Fn(&std::path::Path) -> Box<dyn Store>) {
        assert_eq!((NOW % 60, NOW % 3600), (0, 1800));
        let dir = tempfile::tempdir().unwrap();
        for now in [NOW, NOW + 30] {
            let history = history(now);
            let sizes: Vec<u64> = history.iter().map(|(s, _)| *s).collect();
            let want = expected(&history, &[], now);
            // The history crosses every boundary, so the policy has something to do in each tier.
            assert!(
                want.len() < sizes.len() / 2,
                "{} of {}",
                want.len(),
                sizes.len()
            );

            // One pass with the real bounds keeps exactly the expected sizes; a second removes
            // nothing (idempotent); the times and notes of the kept ones are intact.
            {
                let store = open(&dir.path().join(format!("once-{now}")));
                fill(store.as_ref(), &history);
                assert_eq!(stored(store.as_ref()), sizes);
                let removed = prune(
                    store.as_ref(),
                    now,
                    crate::engine::PRUNE_SCAN_LIMIT,
                    crate::engine::PRUNE_REMOVE_LIMIT,
                );
                assert_eq!(stored(store.as_ref()), want);
                assert_eq!(removed.len() + want.len(), sizes.len());
                assert_eq!(
                    prune(store.as_ref(), now, usize::MAX, usize::MAX),
                    Vec::<u64>::new()
                );
                for (size, t) in history.iter().filter(|(s, _)| want.contains(s)) {
                    let record = store.checkpoint_records(*size, 1).unwrap();
                    assert_eq!(record[0].signed_at, Some(*t));
                    assert_eq!(
                        store.checkpoint(*size).unwrap(),
                        Some(size.to_be_bytes().to_vec())
                    );
                }
                for size in &removed {
                    assert_eq!(store.checkpoint(*size).unwrap(), None, "{size}");
                }
            }
            // Small bounds (many calls resuming from a cursor) keep the same; so does thinning
            // day by day up to now.
            {
                let store = open(&dir.path().join(format!("small-{now}")));
                fill(store.as_ref(), &history);
                prune(store.as_ref(), now, 7, 3);
                assert_eq!(stored(store.as_ref()), want);
            }
            {
                let store = open(&dir.path().join(format!("daily-{now}")));
                fill(store.as_ref(), &history);
                for days in (0..=9).rev() {
                    prune(store.as_ref(), now - days * 86_400, 1000, 100);
                }
                assert_eq!(stored(store.as_ref()), want);
            }
        }
        let history = history(NOW);
        let sizes: Vec<u64> = history.iter().map(|(s, _)| *s).collect();
        let want = expected(&history, &[], NOW);
        // Pinned ones are never removed, whatever their age; pins survive a reopen.
        {
            let path = dir.path().join("pinned");
            let dropped: Vec<u64> = sizes
                .iter()
                .copied()
                .filter(|s| !want.contains(s))
                .collect();
            let pins = [
                dropped[0],
                dropped[dropped.len() / 2],
                dropped[dropped.len() - 1],
            ];
            {
                let store = open(&path);
                fill(store.as_ref(), &history);
                for pin in pins {
                    store.pin_checkpoint(pin).unwrap();
                }
            }
            let store = open(&path);
            assert!(store.is_pinned(pins[0]).unwrap());
            assert!(!store.is_pinned(sizes[3]).unwrap());
            prune(store.as_ref(), NOW, 5, 2);
            assert_eq!(stored(store.as_ref()), expected(&history, &pins, NOW));
            // Removing a pinned size directly is refused by the store too.
            store.remove_checkpoints(&pins).unwrap();
            assert_eq!(stored(store.as_ref()), expected(&history, &pins, NOW));
        }
        // The latest is never removed, even when old and in the same hour as earlier ones.
        {
            let store = open(&dir.path().join("latest"));
            let old = NOW - 30 * 86_400;
            fill(store.as_ref(), &[(10, old), (11, old + 1), (12, old + 2)]);
            prune(store.as_ref(), NOW, 10, 10);
            assert_eq!(stored(store.as_ref()), vec![10, 12]);
            assert_eq!(store.latest_checkpoint().unwrap().unwrap().0, 12);
            prune(store.as_ref(), NOW + 365 * 86_400, 10, 10);
            assert_eq!(stored(store.as_ref()), vec![10, 12]);
        }
        // Re-signing a size keeps its first signing time; an empty store prunes nothing.
        {
            let store = open(&dir.path().join("resign"));
            assert_eq!(prune(store.as_ref(), NOW, 10, 10), Vec::<u64>::new());
            store.put_checkpoint(5, b"five", 100).unwrap();
            store.put_checkpoint(5, b"five", 200).unwrap();
            assert_eq!(
                store.checkpoint_records(0, 10).unwrap(),
                vec![CheckpointRecord {
                    size: 5,
                    signed_at: Some(100),
                    pinned: false
                }]
            );
            assert_eq!(store.checkpoint_record_before(5).unwrap(), None);
            assert_eq!(
                store.checkpoint_record_before(6).unwrap().map(|r| r.size),
                Some(5)
            );
        }
    }
}
