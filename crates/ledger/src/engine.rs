//! The durable ledger engine: sequences entries into the tile-backed Merkle tree, commits each
//! batch atomically and durably, serves tiles, bundles and proofs, and signs checkpoints that
//! are always consistent with every earlier one.
//!
//! Memory use does not grow with the log: the writer keeps only the compact range (one hash
//! per set bit of the tree size), the rightmost partial tile of each level and the rightmost
//! partial entry bundle. Everything else is read from the [`Store`] on demand.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use crate::bundle::{self, BUNDLE_ENTRIES, MAX_ENTRY_SIZE};
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::error::Error;
use crate::hash::{HASH_SIZE, Hash, TreeHead, leaf_hash};
use crate::note::{NoteSigner, NoteVerifier};
use crate::proof;
use crate::store::{Commit, Store, TileKey};
use crate::tile::{TileId, TileKind, entry_bundle_width, hash_tile_width};
use crate::tree::{self, CompactRange, HashTileReader};

/// Bytes in a full hash tile.
const FULL_TILE_BYTES: usize = 256 * HASH_SIZE;
/// Metadata key under which the log's origin is recorded on first open.
const ORIGIN_KEY: &str = "origin";

/// A signed checkpoint as stored and served: the parsed body and the exact note bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The checkpoint body.
    pub checkpoint: Checkpoint,
    /// The signed note, byte for byte as published.
    pub note: Vec<u8>,
}

/// The result of an append: the indices assigned and the tree they are now part of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The indices assigned to the batch, in order.
    pub indices: Range<u64>,
    /// The committed tree head after the batch.
    pub tree: TreeHead,
}

/// What [`Ledger::audit`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// The tree audited.
    pub tree: TreeHead,
    /// Entries re-hashed against their leaf hashes.
    pub entries: u64,
    /// Full hash tiles re-hashed against the node one tile level up.
    pub full_tiles: u64,
}

/// A tile being filled at the right edge of one level (or the rightmost entry bundle).
#[derive(Clone, Debug, Default)]
struct Edge {
    /// Index of the tile or bundle.
    index: u64,
    /// Its bytes so far: concatenated hashes, or length-prefixed entries.
    bytes: Vec<u8>,
    /// Number of hashes or entries in `bytes`.
    count: usize,
}

/// The writer's in-memory state: everything needed to integrate the next batch.
#[derive(Debug)]
struct Writer {
    range: CompactRange,
    tiles: Vec<Edge>,
    bundle: Edge,
}

/// The ledger: one log over one store.
pub struct Ledger {
    store: Box<dyn Store>,
    origin: String,
    signer: NoteSigner,
    verifier: NoteVerifier,
    /// `None` after a failed commit whose state could not be reloaded.
    writer: Mutex<Option<Writer>>,
    /// The committed tree head; readers never look past it.
    head: RwLock<TreeHead>,
    /// The last signed checkpoint; the lock also serializes signing.
    last_checkpoint: Mutex<Option<SignedCheckpoint>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("origin", &self.origin)
            .field("backend", &self.store.backend())
            .field("tree", &self.tree_head())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave a half-applied commit (commits are atomic in
    // the store and the writer is reloaded on failure), so a poisoned lock is safe to reuse.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Ledger {
    /// Opens the log in `store`, creating it if the store is new.
    ///
    /// On open the engine re-derives the root from the stored tiles and refuses to start if it
    /// differs from the recorded tree head or from the last signed checkpoint, or if that
    /// checkpoint does not verify under `signer`'s key.
    ///
    /// # Errors
    /// [`Error::InvalidOrigin`], [`Error::OriginMismatch`], [`Error::RootMismatch`], [`Error::CheckpointMismatch`],
    /// [`Error::Corrupted`] or [`Error::Storage`].
    pub fn open(store: Box<dyn Store>, origin: &str, signer: NoteSigner) -> Result<Self, Error> {
        // Reject an origin that could never appear in a checkpoint before touching the store.
        Checkpoint::new(origin, TreeHead::empty()).map_err(|e| Error::InvalidOrigin {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        match store.meta(ORIGIN_KEY)? {
            Some(stored) if stored != origin.as_bytes() => {
                return Err(Error::OriginMismatch {
                    stored: String::from_utf8_lossy(&stored).into_owned(),
                    configured: origin.to_owned(),
                });
            }
            Some(_) => {}
            None => store.put_meta(ORIGIN_KEY, origin.as_bytes())?,
        }
        let head = store.tree_head()?.unwrap_or_else(TreeHead::empty);
        let writer = Writer::load(store.as_ref(), head)?;
        let verifier = signer.verifier();
        let ledger = Ledger {
            store,
            origin: origin.to_owned(),
            signer,
            verifier,
            writer: Mutex::new(Some(writer)),
            head: RwLock::new(head),
            last_checkpoint: Mutex::new(None),
        };
        let last = ledger.check_last_checkpoint()?;
        *lock(&ledger.last_checkpoint) = last;
        Ok(ledger)
    }

    /// Verifies the last stored checkpoint against the key, the origin and the tiles.
    fn check_last_checkpoint(&self) -> Result<Option<SignedCheckpoint>, Error> {
        let Some((size, note)) = self.store.latest_checkpoint()? else {
            return Ok(None);
        };
        let mismatch = |reason: String| Error::CheckpointMismatch { size, reason };
        let (checkpoint, _) = Checkpoint::verify_signed(&note, &self.origin, &self.verifier)
            .map_err(|e| mismatch(e.to_string()))?;
        if checkpoint.tree.size != size {
            return Err(mismatch(format!(
                "stored under size {size}, says {}",
                checkpoint.tree.size
            )));
        }
        let current = self.tree_head();
        if size > current.size {
            return Err(mismatch(format!(
                "the store holds only {} entries",
                current.size
            )));
        }
        let derived = self.root_at(size)?;
        if derived != checkpoint.tree.root {
            return Err(mismatch(format!(
                "its root {} differs from the root {derived} the tiles give",
                checkpoint.tree.root
            )));
        }
        Ok(Some(SignedCheckpoint { checkpoint, note }))
    }

    /// The log's origin (its checkpoint name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The key that verifies this log's checkpoints.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The store this ledger runs on.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The committed tree head: every entry below its size is durable.
    pub fn tree_head(&self) -> TreeHead {
        *self.head.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a batch of entries and returns once they are durable.
    ///
    /// The whole batch is validated first: a bad entry changes nothing.
    ///
    /// # Errors
    /// [`Error::EntryTooLarge`] for an entry over 65535 bytes; [`Error::Storage`] if the
    /// commit failed (then nothing of the batch was appended).
    pub fn append<E: AsRef<[u8]>>(&self, entries: &[E]) -> Result<Appended, Error> {
        if let Some((position, entry)) = entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.as_ref().len() > MAX_ENTRY_SIZE)
        {
            return Err(Error::EntryTooLarge {
                position,
                size: entry.as_ref().len(),
            });
        }
        let mut guard = lock(&self.writer);
        let writer = match guard.as_mut() {
            Some(writer) => writer,
            None => guard.insert(Writer::load(self.store.as_ref(), self.tree_head())?),
        };
        let start = writer.range.size();
        let commit = writer.integrate(entries);
        if let Err(err) = self.store.commit(&commit) {
            // The store rolled back; bring the writer back in line with it (or retry later).
            *guard = Writer::load(self.store.as_ref(), self.tree_head()).ok();
            return Err(err);
        }
        let tree = writer.range.tree_head();
        *self.head.write().unwrap_or_else(PoisonError::into_inner) = tree;
        Ok(Appended {
            indices: start..tree.size,
            tree,
        })
    }

    fn reader(&self, size: u64) -> StoreTiles<'_> {
        StoreTiles {
            store: self.store.as_ref(),
            size,
            cache: RefCell::new(Vec::new()),
        }
    }

    fn check_size(&self, size: u64) -> Result<(), Error> {
        let current = self.tree_head().size;
        if size > current {
            return Err(Error::SizeOutOfRange {
                requested: size,
                current,
            });
        }
        Ok(())
    }

    /// The root of the tree of `size` leaves, recomputed from stored tiles.
    ///
    /// # Errors
    /// [`Error::SizeOutOfRange`] beyond the committed size; storage errors.
    pub fn root_at(&self, size: u64) -> Result<Hash, Error> {
        self.check_size(size)?;
        tree::root(&self.reader(size), size)
    }

    /// The inclusion proof for leaf `index` in the tree of `size` leaves.
    ///
    /// # Errors
    /// [`Error::SizeOutOfRange`], [`Error::IndexOutOfRange`], storage errors.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, Error> {
        self.check_size(size)?;
        tree::inclusion_proof(&self.reader(size), index, size)
    }

    /// The index of the first leaf with `leaf_hash` and its inclusion proof in the tree of
    /// `size` leaves.
    ///
    /// # Errors
    /// [`Error::LeafNotFound`] if no such leaf is in that tree; as [`Ledger::inclusion_proof`].
    pub fn inclusion_proof_by_leaf_hash(
        &self,
        leaf_hash: &Hash,
        size: u64,
    ) -> Result<(u64, Vec<Hash>), Error> {
        self.check_size(size)?;
        let index = self
            .store
            .leaf_index(leaf_hash)?
            .filter(|index| *index < size)
            .ok_or(Error::LeafNotFound {
                leaf_hash: *leaf_hash,
                size,
            })?;
        Ok((index, self.inclusion_proof(index, size)?))
    }

    /// The consistency proof from the tree of `old` leaves to the tree of `new` leaves.
    ///
    /// # Errors
    /// [`Error::InvalidSizes`] unless `0 < old <= new`; [`Error::SizeOutOfRange`].
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, Error> {
        self.check_size(new)?;
        tree::consistency_proof(&self.reader(new), old, new)
    }

    /// The bytes of hash tile `(level, index)` at width `width` (1..=256), a C2SP tile.
    ///
    /// # Errors
    /// [`Error::SizeOutOfRange`] when the committed tree does not yet hold that many hashes.
    pub fn hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<u8>, Error> {
        let size = self.tree_head().size;
        let available = hash_tile_width(level, index, size).unwrap_or(0);
        if width == 0 || width > available {
            return Err(self.beyond_tree(level, index, width));
        }
        let want = usize::from(width) * HASH_SIZE;
        let mut bytes = self
            .store
            .hash_tile(TileKey { level, index })?
            .filter(|b| b.len() >= want)
            .ok_or_else(|| {
                Error::corrupted(format!("hash tile {level}/{index} is missing or short"))
            })?;
        bytes.truncate(want);
        Ok(bytes)
    }

    /// The bytes of entry bundle `index` holding its first `width` (1..=256) entries.
    ///
    /// # Errors
    /// [`Error::SizeOutOfRange`] when the committed log does not yet hold those entries.
    pub fn entry_bundle(&self, index: u64, width: u16) -> Result<Vec<u8>, Error> {
        let size = self.tree_head().size;
        let available = entry_bundle_width(index, size).unwrap_or(0);
        if width == 0 || width > available {
            return Err(self.beyond_tree(0, index, width));
        }
        let stored = self
            .store
            .entry_bundle(index)?
            .ok_or_else(|| Error::corrupted(format!("entry bundle {index} is missing")))?;
        let entries = bundle::decode_bundle(&stored, BUNDLE_ENTRIES)
            .map_err(|e| Error::corrupted(format!("entry bundle {index}: {e}")))?;
        let wanted = entries
            .get(..usize::from(width))
            .ok_or_else(|| Error::corrupted(format!("entry bundle {index} is short")))?;
        bundle::encode_bundle(wanted.iter().copied())
            .map_err(|e| Error::corrupted(format!("entry bundle {index}: {e}")))
    }

    /// The bytes of a C2SP tile (hash tile or entry bundle) by its coordinates, e.g. from
    /// [`TileId::from_path`].
    ///
    /// # Errors
    /// As [`Ledger::hash_tile`] and [`Ledger::entry_bundle`].
    pub fn read_tile(&self, tile: &TileId) -> Result<Vec<u8>, Error> {
        match tile.kind() {
            TileKind::Hash { level } => self.hash_tile(level, tile.index(), tile.width()),
            TileKind::Entries => self.entry_bundle(tile.index(), tile.width()),
        }
    }

    fn beyond_tree(&self, level: u8, index: u64, width: u16) -> Error {
        let current = self.tree_head().size;
        // The smallest tree size that would hold the requested tile, saturating.
        let requested = index
            .saturating_mul(256)
            .saturating_add(u64::from(width))
            .saturating_mul(1u64.checked_shl(8 * u32::from(level)).unwrap_or(u64::MAX));
        Error::SizeOutOfRange { requested, current }
    }

    /// Audits the whole committed tree, O(n): every entry re-hashes to its leaf hash in the
    /// level-0 tiles, every full hash tile hashes to the node stored for it one tile level up,
    /// and the root derived from the tiles equals the committed tree head.
    ///
    /// [`Ledger::open`] checks only the tiles on the right edge of the tree (O(log n)); a
    /// tampered tile further left is found here, or by any client whose proof passes through
    /// it.
    ///
    /// # Errors
    /// [`Error::Corrupted`] naming the first entry or tile that does not match;
    /// [`Error::RootMismatch`]; storage errors.
    pub fn audit(&self) -> Result<AuditReport, Error> {
        let tree = self.tree_head();
        let size = tree.size;
        for bundle_index in 0..size.div_ceil(256) {
            let width = entry_bundle_width(bundle_index, size).unwrap_or(0);
            let bundle_bytes = self.entry_bundle(bundle_index, width)?;
            let entries = bundle::decode_bundle(&bundle_bytes, BUNDLE_ENTRIES)
                .map_err(|e| Error::corrupted(format!("entry bundle {bundle_index}: {e}")))?;
            let leaves = self.hash_tile(0, bundle_index, width)?;
            for (i, (entry, stored)) in entries
                .iter()
                .zip(leaves.chunks_exact(HASH_SIZE))
                .enumerate()
            {
                if leaf_hash(entry).as_bytes().as_slice() != stored {
                    return Err(Error::corrupted(format!(
                        "entry {} does not hash to its leaf hash in tile 0/{bundle_index}",
                        bundle_index * 256 + i as u64
                    )));
                }
            }
        }
        let mut full_tiles = 0u64;
        for level in 0u8..7 {
            let full = (size >> (8 * u32::from(level))) / 256;
            for parent_index in 0..full.div_ceil(256) {
                let width = hash_tile_width(level + 1, parent_index, size).unwrap_or(0);
                let parent = self.hash_tile(level + 1, parent_index, width)?;
                for (i, stored) in parent.chunks_exact(HASH_SIZE).enumerate() {
                    let index = parent_index * 256 + i as u64;
                    let tile = hashes(&self.hash_tile(level, index, 256)?);
                    let computed = tree::perfect_subtree_root(&tile);
                    if computed.as_ref().map(Hash::as_bytes).map(|h| h.as_slice()) != Some(stored) {
                        return Err(Error::corrupted(format!(
                            "hash tile {level}/{index} does not hash to node {i} of tile {}/{parent_index}",
                            level + 1
                        )));
                    }
                    full_tiles += 1;
                }
            }
        }
        let derived = self.root_at(size)?;
        if derived != tree.root {
            return Err(Error::RootMismatch {
                size,
                recorded: tree.root,
                derived,
            });
        }
        Ok(AuditReport {
            tree,
            entries: size,
            full_tiles,
        })
    }

    /// The entry at `index`.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] beyond the committed size; storage errors.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, Error> {
        let size = self.tree_head().size;
        if index >= size {
            return Err(Error::IndexOutOfRange { index, size });
        }
        let stored = self
            .store
            .entry_bundle(index / 256)?
            .ok_or_else(|| Error::corrupted(format!("entry bundle {} is missing", index / 256)))?;
        let entries = bundle::decode_bundle(&stored, BUNDLE_ENTRIES)
            .map_err(|e| Error::corrupted(format!("entry bundle {}: {e}", index / 256)))?;
        entries
            .get((index % 256) as usize)
            .map(|e| e.to_vec())
            .ok_or_else(|| Error::corrupted(format!("entry bundle {} is short", index / 256)))
    }

    /// Signs and durably stores a checkpoint of the committed tree.
    ///
    /// Refuses (and signs nothing) unless the tree extends the last signed checkpoint: the
    /// engine builds a consistency proof from the stored tiles and verifies it with the same
    /// verifier clients use. Signing the same size again returns the same bytes.
    ///
    /// # Errors
    /// [`Error::Inconsistent`] if the tree does not extend the last checkpoint; storage errors.
    pub fn sign_checkpoint(&self) -> Result<SignedCheckpoint, Error> {
        let mut last = lock(&self.last_checkpoint);
        let tree = self.tree_head();
        if let Some(previous) = last.as_ref() {
            self.check_extends(&previous.checkpoint.tree, &tree)?;
        }
        // The origin was validated at open, so signing fails only on a bug in the encoder.
        let sign_error = |e: CheckpointError| Error::Signing {
            reason: e.to_string(),
        };
        let checkpoint = Checkpoint::new(self.origin.clone(), tree).map_err(sign_error)?;
        let note = checkpoint
            .sign(&self.signer)
            .map_err(sign_error)?
            .to_bytes();
        self.store.put_checkpoint(tree.size, &note)?;
        let signed = SignedCheckpoint { checkpoint, note };
        *last = Some(signed.clone());
        Ok(signed)
    }

    /// Checks that `new` extends `old` with a real consistency proof.
    fn check_extends(&self, old: &TreeHead, new: &TreeHead) -> Result<(), Error> {
        let inconsistent = |reason: String| Error::Inconsistent { reason };
        if new.size < old.size {
            return Err(inconsistent(format!(
                "tree size {} is smaller than the last checkpoint's {}",
                new.size, old.size
            )));
        }
        if old.size == 0 {
            return if old.root == Hash::empty_root() {
                Ok(())
            } else {
                Err(inconsistent(
                    "the last checkpoint has size 0 but a non-empty root".into(),
                ))
            };
        }
        let consistency = self.consistency_proof(old.size, new.size)?;
        proof::verify_consistency(old, new, &consistency).map_err(|e| {
            inconsistent(format!(
                "size {} does not extend size {}: {e}",
                new.size, old.size
            ))
        })
    }

    /// The last signed checkpoint, if any.
    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        lock(&self.last_checkpoint).clone()
    }

    /// The signed checkpoint stored for tree size `size`, if one was published.
    ///
    /// # Errors
    /// Storage errors.
    pub fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, Error> {
        self.store.checkpoint(size)
    }
}

impl Writer {
    /// Loads the writer state for the committed tree `head` from the store, re-deriving the
    /// root from the tiles and checking it against `head.root`.
    fn load(store: &dyn Store, head: TreeHead) -> Result<Self, Error> {
        let reader = StoreTiles {
            store,
            size: head.size,
            cache: RefCell::new(Vec::new()),
        };
        let range = CompactRange::from_tiles(&reader, head.size)?;
        let derived = range.root();
        if derived != head.root {
            return Err(Error::RootMismatch {
                size: head.size,
                recorded: head.root,
                derived,
            });
        }
        let mut tiles = Vec::new();
        for level in 0u8..8 {
            let row = head.size >> (8 * u32::from(level));
            if row == 0 && level > 0 {
                break;
            }
            let index = row / 256;
            let count = (row % 256) as usize;
            let mut bytes = Vec::with_capacity(FULL_TILE_BYTES);
            if count > 0 {
                let stored = store
                    .hash_tile(TileKey { level, index })?
                    .filter(|b| b.len() >= count * HASH_SIZE)
                    .ok_or_else(|| {
                        Error::corrupted(format!("edge tile {level}/{index} is short"))
                    })?;
                bytes.extend_from_slice(stored.get(..count * HASH_SIZE).unwrap_or_default());
            }
            tiles.push(Edge {
                index,
                bytes,
                count,
            });
        }
        let index = head.size / 256;
        let count = (head.size % 256) as usize;
        let mut bytes = Vec::new();
        if count > 0 {
            let stored = store
                .entry_bundle(index)?
                .ok_or_else(|| Error::corrupted(format!("edge bundle {index} is missing")))?;
            let entries = bundle::decode_bundle(&stored, BUNDLE_ENTRIES)
                .map_err(|e| Error::corrupted(format!("edge bundle {index}: {e}")))?;
            let kept = entries
                .get(..count)
                .ok_or_else(|| Error::corrupted(format!("edge bundle {index} is short")))?;
            bytes = bundle::encode_bundle(kept.iter().copied())
                .map_err(|e| Error::corrupted(format!("edge bundle {index}: {e}")))?;
        }
        Ok(Writer {
            range,
            tiles,
            bundle: Edge {
                index,
                bytes,
                count,
            },
        })
    }

    /// Integrates `entries` into the in-memory edge and returns the commit that persists it.
    /// Entries were validated by the caller.
    fn integrate<E: AsRef<[u8]>>(&mut self, entries: &[E]) -> Commit {
        let mut commit = Commit::default();
        let mut touched_levels = 0u64;
        let Writer {
            range,
            tiles,
            bundle: edge_bundle,
        } = self;
        for entry in entries {
            let entry = entry.as_ref();
            let index = range.size();
            let hash = leaf_hash(entry);
            commit.leaves.push((hash, index));
            // Entry sizes were checked by `Ledger::append`, so this cannot fail.
            let _ = bundle::append_entry(&mut edge_bundle.bytes, entry);
            edge_bundle.count += 1;
            if edge_bundle.count == BUNDLE_ENTRIES {
                commit
                    .bundles
                    .push((edge_bundle.index, std::mem::take(&mut edge_bundle.bytes)));
                edge_bundle.index += 1;
                edge_bundle.count = 0;
            }
            range.append(hash, |level, _, node| {
                if level % 8 != 0 {
                    return;
                }
                let tile_level = (level / 8) as usize;
                if tiles.len() <= tile_level {
                    tiles.resize_with(tile_level + 1, Edge::default);
                }
                touched_levels |= 1 << tile_level;
                if let Some(edge) = tiles.get_mut(tile_level) {
                    edge.bytes.extend_from_slice(node.as_bytes());
                    edge.count += 1;
                    if edge.count == 256 {
                        let key = TileKey {
                            level: tile_level as u8,
                            index: edge.index,
                        };
                        let full =
                            std::mem::replace(&mut edge.bytes, Vec::with_capacity(FULL_TILE_BYTES));
                        commit.tiles.push((key, full));
                        edge.index += 1;
                        edge.count = 0;
                    }
                }
            });
        }
        for (level, edge) in tiles.iter().enumerate() {
            if touched_levels & (1 << level) != 0 && edge.count > 0 {
                let key = TileKey {
                    level: level as u8,
                    index: edge.index,
                };
                commit.tiles.push((key, edge.bytes.clone()));
            }
        }
        if !entries.is_empty() && edge_bundle.count > 0 {
            commit
                .bundles
                .push((edge_bundle.index, edge_bundle.bytes.clone()));
        }
        commit.tree = Some(range.tree_head());
        commit
    }
}

/// Splits tile bytes into hashes (a trailing partial hash is ignored).
fn hashes(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks_exact(HASH_SIZE)
        .filter_map(|c| Hash::try_from_slice(c).ok())
        .collect()
}

/// Reads hash tiles from a store for a tree of `size` leaves, caching the last few tiles
/// (a proof touches the same low tiles several times).
struct StoreTiles<'a> {
    store: &'a dyn Store,
    size: u64,
    cache: RefCell<Vec<(TileKey, Vec<Hash>)>>,
}

/// Tiles kept by [`StoreTiles`]: enough for one proof's low levels.
const TILE_CACHE: usize = 8;

impl HashTileReader for StoreTiles<'_> {
    type Error = Error;

    fn read_hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>, Error> {
        let key = TileKey { level, index };
        let want = usize::from(width);
        if let Some((_, hashes)) = self
            .cache
            .borrow()
            .iter()
            .find(|(k, h)| *k == key && h.len() >= want)
        {
            return Ok(hashes.clone());
        }
        let available = usize::from(hash_tile_width(level, index, self.size).unwrap_or(0));
        let bytes = self.store.hash_tile(key)?.unwrap_or_default();
        if bytes.len() < available * HASH_SIZE || available < want {
            return Err(tree::TreeError::ShortTile {
                level,
                index,
                got: bytes.len() / HASH_SIZE,
                want,
            }
            .into());
        }
        let hashes: Vec<Hash> = hashes(bytes.get(..available * HASH_SIZE).unwrap_or_default());
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= TILE_CACHE {
            cache.remove(0);
        }
        cache.push((key, hashes.clone()));
        Ok(hashes)
    }
}
