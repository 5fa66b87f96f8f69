//! Durable storage behind one small trait, with two backends: [`redb`](RedbStore) (default)
//! and [`sled`](SledStore) (optional).
//!
//! A store keeps five things, all keyed big-endian so raw byte order is numeric order:
//!
//! | what            | key                         | value                                  |
//! |-----------------|-----------------------------|----------------------------------------|
//! | tree head       | `tree_head`                 | size (u64 BE) ‖ root (32 bytes)        |
//! | hash tiles      | level (u8) ‖ index (u64 BE) | up to 256 hashes (the latest width)    |
//! | entry bundles   | index (u64 BE)              | C2SP bundle of up to 256 entries       |
//! | leaf-hash index | leaf hash (32 bytes)        | first leaf index with that hash        |
//! | checkpoints     | tree size (u64 BE)          | signed checkpoint note                 |
//!
//! The rightmost (partial) tile of each level and the rightmost bundle are rewritten in place
//! as they grow: a partial tile of width `W` is always a prefix of every later version, so a
//! reader asking for an older width takes a prefix. A [`Commit`] is applied atomically and is
//! durable when [`Store::commit`] returns.

#[cfg(feature = "redb")]
mod redb;
#[cfg(feature = "sled")]
mod sled;

#[cfg(feature = "redb")]
pub use self::redb::RedbStore;
#[cfg(feature = "sled")]
pub use self::sled::{LOCK_WAIT as SLED_LOCK_WAIT, SledStore};

use crate::error::Error;
use crate::hash::{Hash, TreeHead};

/// Identifies a hash tile: its level and index (its width is implied by the tree size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TileKey {
    /// Tile level, 0..=63.
    pub level: u8,
    /// Tile index within the level.
    pub index: u64,
}

impl TileKey {
    /// The 9-byte big-endian storage key.
    pub fn to_bytes(self) -> [u8; 9] {
        let mut key = [0u8; 9];
        let (level, index) = key.split_at_mut(1);
        level.copy_from_slice(&[self.level]);
        index.copy_from_slice(&self.index.to_be_bytes());
        key
    }
}

/// One atomic, durable unit of growth: everything an integrated batch changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Commit {
    /// The tree head after the batch.
    pub tree: Option<TreeHead>,
    /// Hash tiles written (full tiles once, partial tiles rewritten), as concatenated hashes.
    pub tiles: Vec<(TileKey, Vec<u8>)>,
    /// Entry bundles written, C2SP-encoded.
    pub bundles: Vec<(u64, Vec<u8>)>,
    /// New leaf hashes with their indices; the store keeps the first index of each hash.
    pub leaves: Vec<(Hash, u64)>,
}

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

/// Durable key-value storage for one log. Implementations must make [`Store::commit`] and
/// [`Store::put_checkpoint`] atomic and durable before they return.
pub trait Store: Send + Sync + 'static {
    /// The backend's name, for logs and errors.
    fn backend(&self) -> Backend;

    /// The committed tree head, or `None` for a new store.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupted`].
    fn tree_head(&self) -> Result<Option<TreeHead>, Error>;

    /// Applies `commit` atomically; returns only once it is durable.
    ///
    /// # Errors
    /// [`Error::Storage`]; on error nothing of the commit is visible.
    fn commit(&self, commit: &Commit) -> Result<(), Error>;

    /// The stored bytes of hash tile `key` (its latest width), if any.
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn hash_tile(&self, key: TileKey) -> Result<Option<Vec<u8>>, Error>;

    /// The stored entry bundle `index` (its latest width), if any.
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn entry_bundle(&self, index: u64) -> Result<Option<Vec<u8>>, Error>;

    /// The first leaf index whose leaf hash is `leaf_hash`, if any.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupted`].
    fn leaf_index(&self, leaf_hash: &Hash) -> Result<Option<u64>, Error>;

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
}

/// Opens (creating if needed) a store of the given backend under directory `dir`.
///
/// # Errors
/// [`Error::Storage`] if the directory or database cannot be opened;
/// [`Error::UnknownBackend`] if the backend was not compiled in.
pub fn open(backend: Backend, dir: &std::path::Path) -> Result<Box<dyn Store>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::storage("create data directory", e))?;
    match backend {
        #[cfg(feature = "redb")]
        Backend::Redb => Ok(Box::new(RedbStore::open(&dir.join("ledger.redb"))?)),
        #[cfg(feature = "sled")]
        Backend::Sled => Ok(Box::new(SledStore::open(&dir.join("ledger.sled"))?)),
        #[allow(unreachable_patterns)]
        other => Err(Error::UnknownBackend {
            name: format!("{other:?}"),
        }),
    }
}

/// Encodes a tree head as size (u64 BE) ‖ root.
#[cfg_attr(not(any(feature = "redb", feature = "sled")), allow(dead_code))]
pub(crate) fn encode_tree_head(tree: &TreeHead) -> [u8; 40] {
    let mut out = [0u8; 40];
    let (size, root) = out.split_at_mut(8);
    size.copy_from_slice(&tree.size.to_be_bytes());
    root.copy_from_slice(tree.root.as_bytes());
    out
}

/// Decodes a stored tree head.
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
    //! The suite every backend must pass, including a model test against a `BTreeMap`.
    use super::*;
    use crate::hash::leaf_hash;
    use std::collections::BTreeMap;

    pub(crate) fn store_suite(open: &dyn Fn(&std::path::Path) -> Box<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = open(&path);
            assert_eq!(store.tree_head().unwrap(), None);
            assert_eq!(store.latest_checkpoint().unwrap(), None);
            let t1 = TreeHead::new(3, leaf_hash(b"root"));
            let commit = Commit {
                tree: Some(t1),
                tiles: vec![(TileKey { level: 0, index: 0 }, vec![7; 96])],
                bundles: vec![(0, vec![0, 1, b'a'])],
                leaves: vec![
                    (leaf_hash(b"a"), 0),
                    (leaf_hash(b"b"), 1),
                    (leaf_hash(b"a"), 2),
                ],
            };
            store.commit(&commit).unwrap();
            // The first index of a repeated leaf hash is kept, within and across commits.
            store
                .commit(&Commit {
                    leaves: vec![(leaf_hash(b"b"), 9)],
                    ..Commit::default()
                })
                .unwrap();
            assert_eq!(store.leaf_index(&leaf_hash(b"a")).unwrap(), Some(0));
            assert_eq!(store.leaf_index(&leaf_hash(b"b")).unwrap(), Some(1));
            assert_eq!(store.leaf_index(&leaf_hash(b"c")).unwrap(), None);
            store.put_checkpoint(1, b"one").unwrap();
            store.put_checkpoint(300, b"three hundred").unwrap();
            store.put_checkpoint(2, b"two").unwrap();
            store.put_meta("origin", b"example.com/log").unwrap();
        }
        // Everything survives a reopen.
        let store = open(&path);
        assert_eq!(
            store.tree_head().unwrap(),
            Some(TreeHead::new(3, leaf_hash(b"root")))
        );
        assert_eq!(
            store.hash_tile(TileKey { level: 0, index: 0 }).unwrap(),
            Some(vec![7; 96])
        );
        assert_eq!(
            store.hash_tile(TileKey { level: 1, index: 0 }).unwrap(),
            None
        );
        assert_eq!(store.entry_bundle(0).unwrap(), Some(vec![0, 1, b'a']));
        assert_eq!(store.entry_bundle(1).unwrap(), None);
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

        // Model test: random overwrites of tiles and bundles agree with a BTreeMap.
        let mut model_tiles = BTreeMap::new();
        let mut model_bundles = BTreeMap::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..200u64 {
            let mut commit = Commit::default();
            for _ in 0..3 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let key = TileKey {
                    level: (state >> 60) as u8 % 3,
                    index: (state >> 32) % 1000,
                };
                let value = vec![(state >> 8) as u8; (state % 64) as usize];
                model_tiles.insert(key, value.clone());
                commit.tiles.push((key, value));
                let bundle = (state >> 40) % 300;
                model_bundles.insert(bundle, round.to_be_bytes().to_vec());
                commit.bundles.push((bundle, round.to_be_bytes().to_vec()));
            }
            store.commit(&commit).unwrap();
        }
        for (key, value) in &model_tiles {
            assert_eq!(store.hash_tile(*key).unwrap().as_ref(), Some(value));
        }
        for (index, value) in &model_bundles {
            assert_eq!(store.entry_bundle(*index).unwrap().as_ref(), Some(value));
        }
    }
}
