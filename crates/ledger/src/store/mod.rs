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
//! | `ledger.redb` / `ledger.sled` | origin, format version, signed checkpoints           | per checkpoint   |
//!
//! The key-value store keys are big-endian so raw byte order is numeric order. Everything is
//! created owner-only: directories `0700`, files `0600`.

#[cfg(feature = "redb")]
mod redb;
#[cfg(feature = "sled")]
mod sled;

pub(crate) mod leaf_index;
pub(crate) mod tilelog;

#[cfg(feature = "redb")]
pub use self::redb::RedbStore;
#[cfg(feature = "sled")]
pub use self::sled::{LOCK_WAIT as SLED_LOCK_WAIT, SledStore};
pub use leaf_index::{IndexStatus, RUN_MIN, TAIL_SCAN_LIMIT};

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

    /// Durably stores a signed checkpoint note for tree size `size`.
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn put_checkpoint(&self, size: u64, note: &[u8]) -> Result<(), Error>;

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
            store.put_checkpoint(1, b"one").unwrap();
            store.put_checkpoint(300, b"three hundred").unwrap();
            store.put_checkpoint(2, b"two").unwrap();
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
            store.put_checkpoint(size, &round.to_be_bytes()).unwrap();
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
}
