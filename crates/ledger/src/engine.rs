//! The durable ledger engine: sequences entries into the tile-backed Merkle tree, commits each
//! batch atomically and durably, serves tiles, bundles and proofs, and signs checkpoints that
//! are always consistent with every earlier one.
//!
//! Memory use does not grow with the log: the writer keeps only the compact range (one hash
//! per set bit of the tree size), the rightmost partial tile of each level and the rightmost
//! partial entry bundle; readers keep a bounded cache of verified full entry bundles
//! ([`BUNDLE_CACHE_BUDGET`]). Everything else is read from the [`Store`] on demand.
//!
//! Reads are verified: every entry served ([`Ledger::entry`], [`Ledger::entry_bundle`]) is
//! re-hashed against its leaf hash in the stored level-0 tile first, so an entry edited on
//! disk is refused with [`Error::Corrupted`] instead of being served.

use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::bundle::{self, BUNDLE_ENTRIES, MAX_ENTRY_SIZE};
use crate::checkpoint::Checkpoint;
use crate::error::{CheckpointMismatch, Error, Inconsistency};
use crate::hash::{HASH_SIZE, Hash, TreeHead, leaf_hash};
use crate::note::{NoteSigner, NoteVerifier};
use crate::proof;
use crate::store::bundle_cache::BundleCache;
use crate::store::leaf_index::{IndexStatus, LeafIndex, Lookup};
use crate::store::tilelog::{self, LogEnd, Scratch, TileLog, split_hashes};
use crate::store::{CheckpointRecord, FORMAT, FORMAT_KEY, PURGED_KEY, PurgedRange, Storage, Store};
use crate::tile::{TileId, TileKind, entry_bundle_width, hash_tile_width};
use crate::tree::{self, CompactRange};

/// Metadata key under which the log's origin is recorded on first open.
const ORIGIN_KEY: &str = "origin";
/// Bundles a migration from format 1 appends per durable write.
const MIGRATION_BUNDLES: u64 = 64;

/// Memory for verified full entry bundles kept by default (see
/// [`Ledger::set_bundle_cache_budget`]): 32 MiB, about 250 full bundles of 512-byte entries
/// (64,000 entries), which covers the recent tail that monitors and mirrors poll many times
/// over, for a small share of a server's memory.
pub const BUNDLE_CACHE_BUDGET: usize = 32 << 20;

/// Checkpoint retention: every checkpoint younger than this (seconds since it was first
/// signed) is kept. One hour: far longer than a `wait=published` request may wait (30 s by
/// default) or than monitors and witnesses poll (seconds to minutes), so a client that was
/// just shown a checkpoint can still fetch it by size, and a short outage of a monitor loses
/// nothing; at the fastest publication rate (one per 20 ms) it is ~180,000 notes, ~40 MB.
pub const KEEP_ALL_SECS: u64 = 3600;
/// Checkpoint retention: from [`KEEP_ALL_SECS`] up to this age, the first checkpoint signed
/// in each minute is kept (7 days: a week of minute-grained history for audits of recent
/// incidents, ≤ 10,080 notes); older ones are thinned to the first of each hour, kept forever.
pub const KEEP_MINUTELY_SECS: u64 = 7 * 24 * 3600;
/// Most stored checkpoints one [`Ledger::prune_checkpoints`] call reads: bounds its work to
/// a few milliseconds whatever the history's size.
pub const PRUNE_SCAN_LIMIT: usize = 16_384;
/// Most checkpoints one [`Ledger::prune_checkpoints`] call removes, in one durable write:
/// more than a minute of the fastest publication (3,000), so calls once a minute keep up.
pub const PRUNE_REMOVE_LIMIT: usize = 8_192;

/// What one [`Ledger::prune_checkpoints`] call did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The tree sizes whose checkpoints were removed, ascending.
    pub removed: Vec<u64>,
    /// Stored checkpoints examined.
    pub scanned: usize,
    /// Whether the walk reached the recent window (or the latest checkpoint): `false` means
    /// the call stopped at its work bound and the next call continues where it stopped.
    pub complete: bool,
}

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
    /// The leaf hash of each entry of the batch, in order (computed once, by the commit).
    pub leaf_hashes: Vec<Hash>,
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

/// The writer's state: everything needed to append the next batch.
#[derive(Debug)]
struct Writer {
    range: CompactRange,
    end: LogEnd,
    scratch: Scratch,
    /// Where the derived files were last made durable, and when.
    synced: LogEnd,
    synced_at: Instant,
}

/// The committed log: readers never look past it.
#[derive(Clone, Copy, Debug)]
struct Head {
    tree: TreeHead,
    end: LogEnd,
}

/// The ledger: one log over one data directory.
pub struct Ledger {
    kv: Box<dyn Store>,
    log: Arc<TileLog>,
    index: LeafIndex,
    origin: String,
    signer: NoteSigner,
    verifier: NoteVerifier,
    writer: Mutex<Writer>,
    head: RwLock<Head>,
    /// The last signed checkpoint; the lock also serializes signing.
    last_checkpoint: Mutex<Option<SignedCheckpoint>>,
    /// Where the next checkpoint prune resumes (a tree size; 0 = from the start). The lock
    /// also serializes pruning and pinning.
    prune_cursor: Mutex<u64>,
    /// Full entry bundles that passed their check against the level-0 tiles.
    verified_bundles: Mutex<BundleCache>,
    /// Bundles archived and purged from the entry log (see [`Ledger::purge`]).
    purged: RwLock<Vec<PurgedRange>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("origin", &self.origin)
            .field("backend", &self.kv.backend())
            .field("tree", &self.tree_head())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave a half-applied commit (the writer's state is
    // replaced only after a durable write), so a poisoned lock is safe to reuse.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Ledger {
    /// Opens the log in `storage`, creating it if the store is new.
    ///
    /// On open the engine recovers the log's files (cutting off a write torn by a crash and
    /// recomputing the tiles past the last durable watermark), migrates a store of format 1,
    /// and refuses to start if the last signed checkpoint does not verify under `signer`'s
    /// key or is not a prefix of the stored tree.
    ///
    /// # Errors
    /// [`Error::InvalidOrigin`], [`Error::OriginMismatch`], [`Error::UnsupportedFormat`],
    /// [`Error::RootMismatch`], [`Error::CheckpointMismatch`], [`Error::Corrupted`],
    /// [`Error::Storage`] or [`Error::Io`].
    pub fn open(storage: Storage, origin: &str, signer: NoteSigner) -> Result<Self, Error> {
        // Reject an origin that could never appear in a checkpoint before touching the store.
        Checkpoint::new(origin, TreeHead::empty()).map_err(|e| Error::InvalidOrigin {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        let Storage { kv, dir } = storage;
        match kv.meta(ORIGIN_KEY)? {
            Some(stored) if stored != origin.as_bytes() => {
                return Err(Error::OriginMismatch {
                    stored: String::from_utf8_lossy(&stored).into_owned(),
                    configured: origin.to_owned(),
                });
            }
            Some(_) => {}
            None => kv.put_meta(ORIGIN_KEY, origin.as_bytes())?,
        }
        let legacy = match kv.meta(FORMAT_KEY)? {
            Some(format) if format == FORMAT.as_bytes() => None,
            Some(other) => {
                return Err(Error::UnsupportedFormat {
                    found: String::from_utf8_lossy(&other).into_owned(),
                });
            }
            None => kv.legacy_tree_head()?,
        };
        let log_dir = dir.join("log");
        if legacy.is_some() {
            // A migration interrupted earlier left partial files: start it over.
            remove_dir_if_exists(&log_dir)?;
            remove_dir_if_exists(&dir.join("leaf-index"))?;
        }
        let (log, recovered) = TileLog::open(&log_dir)?;
        if recovered.replayed > 0 {
            tracing::info!(
                entries = recovered.replayed,
                "recomputed tiles past the last durable watermark from the entry log"
            );
        }
        if recovered.torn_bytes > 0 {
            tracing::warn!(
                bytes = recovered.torn_bytes,
                size = recovered.end.size,
                "cut a write torn by a crash off the entry log (never acknowledged; its bytes are kept beside it)"
            );
        }
        let mut writer = Writer {
            range: recovered.range,
            end: recovered.end,
            scratch: Scratch::default(),
            synced: recovered.end,
            synced_at: Instant::now(),
        };
        if let Some(head) = legacy {
            migrate(kv.as_ref(), &log, &mut writer, head)?;
        }
        if kv.meta(FORMAT_KEY)?.is_none() {
            kv.put_meta(FORMAT_KEY, FORMAT.as_bytes())?;
        }
        let log = Arc::new(log);
        let head = Head {
            tree: writer.range.tree_head(),
            end: writer.end,
        };
        let index = LeafIndex::open(&dir.join("leaf-index"), log.clone(), head.tree.size)?;
        let verifier = signer.verifier();
        let ledger = Ledger {
            kv,
            log,
            index,
            origin: origin.to_owned(),
            signer,
            verifier,
            writer: Mutex::new(writer),
            head: RwLock::new(head),
            last_checkpoint: Mutex::new(None),
            prune_cursor: Mutex::new(0),
            verified_bundles: Mutex::new(BundleCache::new(BUNDLE_CACHE_BUDGET)),
            purged: RwLock::new(Vec::new()),
        };
        let purged = match ledger.kv.meta(PURGED_KEY)? {
            Some(bytes) => crate::store::purged::decode(&bytes)?,
            None => Vec::new(),
        };
        // A crash between recording a purge and punching it out leaves the bytes: punch
        // again (idempotent, and cheap on ranges already holes).
        for range in &purged {
            ledger.log.punch(range.bundles.clone(), head.end)?;
        }
        *ledger.purged.write().unwrap_or_else(|e| e.into_inner()) = purged;
        let last = ledger.check_last_checkpoint()?;
        *lock(&ledger.last_checkpoint) = last;
        Ok(ledger)
    }

    /// Verifies the last stored checkpoint against the key, the origin and the tiles.
    fn check_last_checkpoint(&self) -> Result<Option<SignedCheckpoint>, Error> {
        let Some((size, note)) = self.kv.latest_checkpoint()? else {
            return Ok(None);
        };
        let mismatch = |reason: CheckpointMismatch| Error::CheckpointMismatch { size, reason };
        let (checkpoint, _) = Checkpoint::verify_signed(&note, &self.origin, &self.verifier)
            .map_err(|e| mismatch(CheckpointMismatch::Invalid(e)))?;
        if checkpoint.tree.size != size {
            return Err(mismatch(CheckpointMismatch::WrongKey {
                stored: size,
                named: checkpoint.tree.size,
            }));
        }
        let current = self.tree_head();
        if size > current.size {
            return Err(mismatch(CheckpointMismatch::BeyondStore {
                held: current.size,
            }));
        }
        let derived = self.root_at(size)?;
        if derived != checkpoint.tree.root {
            return Err(mismatch(CheckpointMismatch::RootDiffers {
                signed: checkpoint.tree.root,
                derived,
            }));
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

    /// The key-value store this ledger keeps its metadata and checkpoints in.
    pub fn store(&self) -> &dyn Store {
        self.kv.as_ref()
    }

    fn head(&self) -> Head {
        *self.head.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The committed tree head: every entry below its size is durable.
    pub fn tree_head(&self) -> TreeHead {
        self.head().tree
    }

    /// How far the leaf-hash index is behind the log.
    pub fn leaf_index_status(&self) -> IndexStatus {
        self.index.status()
    }

    /// Blocks until the leaf-hash index covers the committed tree (for tools and tests; a
    /// lookup never needs it).
    pub fn wait_indexed(&self) {
        self.index.wait_indexed(self.tree_head().size);
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
        let writer = &mut *guard;
        let start = writer.end.size;
        let end = self
            .log
            .append(&mut writer.range, writer.end, &mut writer.scratch, entries)?;
        writer.end = end;
        let tree = writer.range.tree_head();
        *self.head.write().unwrap_or_else(PoisonError::into_inner) = Head { tree, end };
        self.index.committed(tree.size);
        if tilelog::sync_due(writer.synced_at) {
            writer.synced_at = Instant::now();
            // The entries are durable already; this only shortens recovery after a crash.
            match self.log.sync_derived(end, &tree.root) {
                Ok(()) => writer.synced = end,
                Err(err) => tracing::warn!(error = %err, "cannot sync the derived tile files"),
            }
        }
        let leaf_hashes = writer.scratch.leaf_hashes();
        Ok(Appended {
            indices: start..tree.size,
            tree,
            leaf_hashes,
        })
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
        tree::root(&self.log.reader(size), size)
    }

    /// The inclusion proof for leaf `index` in the tree of `size` leaves.
    ///
    /// # Errors
    /// [`Error::SizeOutOfRange`], [`Error::IndexOutOfRange`], storage errors.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, Error> {
        self.check_size(size)?;
        tree::inclusion_proof(&self.log.reader(size), index, size)
    }

    /// The index of the first leaf with `leaf_hash` and its inclusion proof in the tree of
    /// `size` leaves.
    ///
    /// # Errors
    /// [`Error::LeafNotFound`] if no such leaf is in that tree; [`Error::IndexBehind`] if the
    /// leaf index has not caught up far enough to tell (retry); as [`Ledger::inclusion_proof`].
    pub fn inclusion_proof_by_leaf_hash(
        &self,
        leaf_hash: &Hash,
        size: u64,
    ) -> Result<(u64, Vec<Hash>), Error> {
        self.check_size(size)?;
        match self.index.find(&self.log, leaf_hash, size)? {
            Lookup::Found(index) => Ok((index, self.inclusion_proof(index, size)?)),
            Lookup::Absent => Err(Error::LeafNotFound {
                leaf_hash: *leaf_hash,
                size,
            }),
        }
    }

    /// The consistency proof from the tree of `old` leaves to the tree of `new` leaves.
    ///
    /// # Errors
    /// [`Error::InvalidSizes`] unless `0 < old <= new`; [`Error::SizeOutOfRange`].
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, Error> {
        self.check_size(new)?;
        tree::consistency_proof(&self.log.reader(new), old, new)
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
        self.log
            .level_hashes(level, index * 256, usize::from(width))
    }

    /// The bytes of entry bundle `index` holding its first `width` (1..=256) entries, each
    /// checked against its leaf hash in the level-0 tile before it is returned: a bundle
    /// edited on disk is refused, never served.
    ///
    /// A full bundle (one the log holds all 256 entries of, whatever `width` asks) is read
    /// and checked whole once, then kept in memory within the budget of
    /// [`Ledger::set_bundle_cache_budget`] and served from there: it is immutable, and an edit
    /// of the files after the check cannot reach bytes in memory. A partial bundle (the
    /// right edge of the log) is read and checked on every call.
    ///
    /// # Errors
    /// [`Error::SizeOutOfRange`] when the committed log does not yet hold those entries;
    /// [`Error::Corrupted`] naming the first entry that does not hash to its leaf hash (or
    /// the bundle, if it does not decode); storage errors.
    pub fn entry_bundle(&self, index: u64, width: u16) -> Result<Vec<u8>, Error> {
        let head = self.head();
        let available = entry_bundle_width(index, head.tree.size).unwrap_or(0);
        if width == 0 || width > available {
            return Err(self.beyond_tree(0, index, width));
        }
        self.refuse_purged(index, index * BUNDLE_ENTRIES as u64)?;
        if usize::from(available) < BUNDLE_ENTRIES {
            return self.verified_bundle(index, width, head.end);
        }
        let full = self.full_bundle(index, head.end)?;
        if usize::from(width) == BUNDLE_ENTRIES {
            return Ok(full.to_vec());
        }
        let len: usize = bundle::iter_bundle(&full)
            .take(usize::from(width))
            .map(|entry| entry.map(|e| 2 + e.len()))
            .sum::<Result<usize, _>>()
            .map_err(|e| Error::corrupted(format!("entry bundle {index}: {e}")))?;
        full.get(..len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::corrupted(format!("entry bundle {index} is short")))
    }

    /// The ranges of bundles archived and purged from this store, in bundle order.
    pub fn purged(&self) -> Vec<PurgedRange> {
        self.purged
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The purged range holding bundle `bundle`, if any.
    pub fn purged_range(&self, bundle: u64) -> Option<PurgedRange> {
        let purged = self.purged.read().unwrap_or_else(|e| e.into_inner());
        let at = purged.partition_point(|r| r.bundles.end <= bundle);
        purged.get(at).filter(|r| r.holds(bundle)).cloned()
    }

    fn refuse_purged(&self, bundle: u64, index: u64) -> Result<(), Error> {
        match self.purged_range(bundle) {
            None => Ok(()),
            Some(range) => Err(Error::Purged {
                index,
                location: range.location,
                record: range.record,
            }),
        }
    }

    /// Purges the entries of whole bundles `range.bundles` from this store, after they were
    /// archived to `range.location` (and the archive verified) and the purge recorded in the
    /// log as record `range.record`: the range is recorded durably first, then its bytes are
    /// punched out of the entry log. Hash tiles stay, so every inclusion and consistency proof
    /// still works; reads of the entries answer [`Error::Purged`] naming the archive.
    ///
    /// # Errors
    /// [`Error::PurgeRefused`] unless the bundles are whole, committed and not purged yet;
    /// storage errors.
    pub fn purge(&self, range: PurgedRange) -> Result<(), Error> {
        let refuse = |reason: &str| Error::PurgeRefused {
            first: range.bundles.start,
            end: range.bundles.end,
            reason: reason.to_owned(),
        };
        let head = self.head();
        if range.bundles.is_empty() {
            return Err(refuse("the range is empty"));
        }
        if range.bundles.end.saturating_mul(BUNDLE_ENTRIES as u64) > head.tree.size {
            return Err(refuse("the log does not hold all of them whole"));
        }
        if range.location.is_empty() || range.location.contains('\n') {
            return Err(refuse(
                "the archive location is empty or holds a line break",
            ));
        }
        {
            let mut purged = self.purged.write().unwrap_or_else(|e| e.into_inner());
            if purged
                .iter()
                .any(|r| r.bundles.start < range.bundles.end && range.bundles.start < r.bundles.end)
            {
                return Err(refuse("some are purged already"));
            }
            let mut next = purged.clone();
            next.push(range.clone());
            next.sort_by_key(|r| r.bundles.start);
            self.kv
                .put_meta(PURGED_KEY, &crate::store::purged::encode(&next))?;
            *purged = next;
        }
        lock(&self.verified_bundles).clear();
        self.log.punch(range.bundles, head.end)
    }

    /// Sets the memory kept for verified full entry bundles (see [`Ledger::entry_bundle`]),
    /// in bytes; [`BUNDLE_CACHE_BUDGET`] (32 MiB) by default. 0 keeps none: every read
    /// then goes to disk and is hashed again. Shrinking evicts the least recently used
    /// bundles at once. A bundle larger than an eighth of the budget is never kept.
    pub fn set_bundle_cache_budget(&self, bytes: usize) {
        lock(&self.verified_bundles).set_budget(bytes);
    }

    /// Full bundle `index` (the log holds all its entries), checked: from the cache, or read,
    /// checked and kept.
    fn full_bundle(&self, index: u64, end: LogEnd) -> Result<Arc<Vec<u8>>, Error> {
        if let Some(bytes) = lock(&self.verified_bundles).get(index) {
            return Ok(bytes);
        }
        // Read and hash outside the lock: two readers that miss together both check.
        let bytes = Arc::new(self.verified_bundle(index, BUNDLE_ENTRIES as u16, end)?);
        lock(&self.verified_bundles).insert(index, bytes.clone());
        Ok(bytes)
    }

    /// The first `width` entries of bundle `index` read from the entry log (which ends at
    /// `end`), each checked against its leaf hash in the level-0 tile. No cache.
    fn verified_bundle(&self, index: u64, width: u16, end: LogEnd) -> Result<Vec<u8>, Error> {
        let bytes = self.log.bundle(index, usize::from(width), end)?;
        self.check_bundle(index, width, &bytes)?;
        Ok(bytes)
    }

    /// Checks that `bytes` hold exactly the first `width` entries of bundle `index` of this
    /// log: each hashes to its leaf hash in the level-0 tile. For bundles read from elsewhere
    /// (an archive), as for the entry log's own.
    ///
    /// # Errors
    /// [`Error::Corrupted`] naming the first entry that does not match (or the bundle, if it
    /// does not decode or holds another count); storage errors.
    pub fn check_bundle(&self, index: u64, width: u16, bytes: &[u8]) -> Result<(), Error> {
        let width = usize::from(width);
        let entries = bundle::decode_bundle(bytes, width)
            .map_err(|e| Error::corrupted(format!("entry bundle {index}: {e}")))?;
        if entries.len() != width {
            return Err(Error::corrupted(format!(
                "entry bundle {index} holds {} entries, not {width}",
                entries.len()
            )));
        }
        let first = index * BUNDLE_ENTRIES as u64;
        let leaves = self.log.level_hashes(0, first, width)?;
        for (i, (entry, stored)) in entries
            .iter()
            .zip(leaves.chunks_exact(HASH_SIZE))
            .enumerate()
        {
            check_leaf(first + i as u64, entry, stored)?;
        }
        Ok(())
    }

    /// The first `width` entries of bundle `index` as stored, *without* the check against the
    /// level-0 tile: the read path before verified reads, kept only so that the benches can
    /// measure what the check costs. Never serve its bytes.
    ///
    /// # Errors
    /// As [`Ledger::entry_bundle`], without [`Error::Corrupted`] for a forged entry.
    #[cfg(feature = "bench-unverified-reads")]
    #[doc(hidden)]
    pub fn entry_bundle_unverified(&self, index: u64, width: u16) -> Result<Vec<u8>, Error> {
        let head = self.head();
        let available = entry_bundle_width(index, head.tree.size).unwrap_or(0);
        if width == 0 || width > available {
            return Err(self.beyond_tree(0, index, width));
        }
        self.log.bundle(index, usize::from(width), head.end)
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
            // Purged bundles are checked against their archive (`veritrail verify-archive`);
            // their hash tiles are checked below like every other.
            if self.purged_range(bundle_index).is_some() {
                continue;
            }
            let width = entry_bundle_width(bundle_index, size).unwrap_or(0);
            // From disk, past the cache of verified bundles: the audit checks the files.
            self.verified_bundle(bundle_index, width, self.head().end)?;
        }
        let mut full_tiles = 0u64;
        for level in 0u8..7 {
            let full = (size >> (8 * u32::from(level))) / 256;
            for parent_index in 0..full.div_ceil(256) {
                let width = hash_tile_width(level + 1, parent_index, size).unwrap_or(0);
                let parent = self.hash_tile(level + 1, parent_index, width)?;
                for (i, stored) in parent.chunks_exact(HASH_SIZE).enumerate() {
                    let index = parent_index * 256 + i as u64;
                    let tile = split_hashes(&self.hash_tile(level, index, 256)?);
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

    /// The entry at `index`, checked against its leaf hash in the level-0 tile before it is
    /// returned: an entry edited on disk is refused, never served. From the cache of verified
    /// full bundles when its bundle is there (see [`Ledger::entry_bundle`]); otherwise read
    /// from disk and hashed.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] beyond the committed size; [`Error::Corrupted`] if the
    /// stored entry does not hash to its leaf hash (or does not decode); storage errors.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, Error> {
        let head = self.head();
        let size = head.tree.size;
        if index >= size {
            return Err(Error::IndexOutOfRange { index, size });
        }
        let per = BUNDLE_ENTRIES as u64;
        let bundle_index = index / per;
        self.refuse_purged(bundle_index, index)?;
        // Below BUNDLE_ENTRIES, so it fits any usize.
        let position = (index % per) as usize;
        let short = || Error::corrupted(format!("entry bundle {bundle_index} is short"));
        let cached = lock(&self.verified_bundles).get(bundle_index);
        if let Some(full) = cached {
            return bundle::iter_bundle(&full)
                .nth(position)
                .and_then(Result::ok)
                .map(<[u8]>::to_vec)
                .ok_or_else(short);
        }
        let bytes = self.log.bundle(bundle_index, position + 1, head.end)?;
        let entries = bundle::decode_bundle(&bytes, position + 1)
            .map_err(|e| Error::corrupted(format!("entry bundle {bundle_index}: {e}")))?;
        let entry = entries.get(position).ok_or_else(short)?;
        check_leaf(index, entry, self.log.leaf_hash(index)?.as_bytes())?;
        Ok(entry.to_vec())
    }

    /// Signs `text` with the log's key as a note: a statement about the log (such as a
    /// conversation's head at a checkpoint) that a client verifies with the same key it pins
    /// for checkpoints. Nothing is stored.
    ///
    /// A statement can never be taken for a checkpoint: a text whose first line is the log's
    /// origin (a checkpoint's first line) is refused.
    ///
    /// # Errors
    /// [`Error::Statement`] for such a text or one that is not a valid note text.
    pub fn sign_statement(&self, text: &str) -> Result<Vec<u8>, Error> {
        if text.lines().next() == Some(self.origin.as_str()) {
            return Err(Error::Statement {
                reason: "its first line is the log's origin, as a checkpoint's is".into(),
            });
        }
        let refused = |e: crate::note::NoteError| Error::Statement {
            reason: e.to_string(),
        };
        let mut note = crate::note::Note::new(text).map_err(refused)?;
        note.add_signature(self.signer.sign(note.text()))
            .map_err(refused)?;
        Ok(note.to_bytes())
    }

    /// Signs and durably stores a checkpoint of the committed tree, recording the current
    /// time as its signing time (see [`Ledger::sign_checkpoint_at`]).
    ///
    /// Refuses (and signs nothing) unless the tree extends the last signed checkpoint: the
    /// engine builds a consistency proof from the stored tiles and verifies it with the same
    /// verifier clients use. Signing the same size again returns the same bytes.
    ///
    /// # Errors
    /// [`Error::Inconsistent`] if the tree does not extend the last checkpoint; storage errors.
    pub fn sign_checkpoint(&self) -> Result<SignedCheckpoint, Error> {
        self.sign_checkpoint_at(unix_now())
    }

    /// As [`Ledger::sign_checkpoint`], recording `signed_at` (Unix seconds) as the time the
    /// checkpoint was signed, which [`Ledger::prune_checkpoints`] ages it by. Checkpoint notes
    /// carry no time, so this is metadata of the store only. Re-signing a size keeps the time
    /// it was first signed.
    ///
    /// # Errors
    /// As [`Ledger::sign_checkpoint`].
    pub fn sign_checkpoint_at(&self, signed_at: u64) -> Result<SignedCheckpoint, Error> {
        let mut last = lock(&self.last_checkpoint);
        let tree = self.tree_head();
        if let Some(previous) = last.as_ref() {
            self.check_extends(&previous.checkpoint.tree, &tree)?;
        }
        // The origin was validated at open, so signing fails only on a bug in the encoder.
        let checkpoint = Checkpoint::new(self.origin.clone(), tree).map_err(Error::Signing)?;
        let note = checkpoint
            .sign(&self.signer)
            .map_err(Error::Signing)?
            .to_bytes();
        self.kv.put_checkpoint(tree.size, &note, signed_at)?;
        let signed = SignedCheckpoint { checkpoint, note };
        *last = Some(signed.clone());
        Ok(signed)
    }

    /// Removes checkpoints from the stored history that the retention policy no longer keeps,
    /// as of `now` (Unix seconds), with bounded work: call it periodically off the append path
    /// (the server's publisher does, about once a minute and again soon while a call reports
    /// `complete == false`).
    ///
    /// The policy, by the time each checkpoint was first signed:
    /// - younger than [`KEEP_ALL_SECS`] (1 hour): every checkpoint;
    /// - in a minute that began less than [`KEEP_MINUTELY_SECS`] (7 days) ago: the first
    ///   checkpoint of each minute;
    /// - older: the first checkpoint of each hour, forever;
    /// - always: the latest checkpoint, pinned ones ([`Ledger::pin_checkpoint`], e.g.
    ///   cosigned by a witness) and ones stored without a signing time (before times were
    ///   recorded).
    ///
    /// Precisely: walking the history by tree size, a checkpoint older than the recent window
    /// is removed when the previous remaining checkpoint was signed in the same minute (hour,
    /// beyond 7 days); the walk stops at the first checkpoint inside the recent window. With
    /// a clock that only moves forward this keeps exactly the first of each minute (hour);
    /// a clock stepped back only keeps more. Pruning again with the same `now` removes
    /// nothing (idempotent), and thinning day by day keeps the same checkpoints as thinning
    /// once. Removed sizes answer "not found" like sizes that were never signed.
    ///
    /// Each call reads at most [`PRUNE_SCAN_LIMIT`] checkpoints and removes at most
    /// [`PRUNE_REMOVE_LIMIT`] in one durable write; the next call continues after them.
    ///
    /// # Errors
    /// Storage errors (then nothing was removed).
    pub fn prune_checkpoints(&self, now: u64) -> Result<Pruned, Error> {
        let mut cursor = lock(&self.prune_cursor);
        prune_history(
            self.kv.as_ref(),
            &mut cursor,
            now,
            PRUNE_SCAN_LIMIT,
            PRUNE_REMOVE_LIMIT,
        )
    }

    /// Pins the stored checkpoint of tree size `size` so that
    /// [`Ledger::prune_checkpoints`] never removes it (the hook for checkpoints a witness
    /// cosigned). Returns `false`, pinning nothing, if no checkpoint of that size is stored.
    ///
    /// # Errors
    /// Storage errors.
    pub fn pin_checkpoint(&self, size: u64) -> Result<bool, Error> {
        // Holding the prune lock: a prune never removes a checkpoint pinned while it runs.
        let _prune = lock(&self.prune_cursor);
        if self.kv.checkpoint(size)?.is_none() {
            return Ok(false);
        }
        self.kv.pin_checkpoint(size)?;
        Ok(true)
    }

    /// Whether the checkpoint of tree size `size` is pinned (see [`Ledger::pin_checkpoint`]).
    ///
    /// # Errors
    /// Storage errors.
    pub fn is_pinned(&self, size: u64) -> Result<bool, Error> {
        self.kv.is_pinned(size)
    }

    /// Checks that `new` extends `old` with a real consistency proof.
    fn check_extends(&self, old: &TreeHead, new: &TreeHead) -> Result<(), Error> {
        let inconsistent = |reason: Inconsistency| Error::Inconsistent {
            last: old.size,
            current: new.size,
            reason,
        };
        if new.size < old.size {
            return Err(inconsistent(Inconsistency::Smaller));
        }
        if old.size == 0 {
            return if old.root == Hash::empty_root() {
                Ok(())
            } else {
                Err(inconsistent(Inconsistency::NonEmptyRootAtZero))
            };
        }
        let consistency = self.consistency_proof(old.size, new.size)?;
        proof::verify_consistency(old, new, &consistency)
            .map_err(|e| inconsistent(Inconsistency::Proof(e)))
    }

    /// The last signed checkpoint, if any.
    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        lock(&self.last_checkpoint).clone()
    }

    /// The signed checkpoint stored for tree size `size`, if one was published and retention
    /// kept it (see [`Ledger::prune_checkpoints`]).
    ///
    /// # Errors
    /// Storage errors.
    pub fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, Error> {
        self.kv.checkpoint(size)
    }

    /// When the first stored checkpoint covering entry `index` was signed (Unix seconds): an
    /// upper bound on when the entry was appended, since it was in the tree by then. `None`
    /// if no stored checkpoint with a recorded time covers it.
    ///
    /// # Errors
    /// Storage errors.
    pub fn covered_since(&self, index: u64) -> Result<Option<u64>, Error> {
        let Some(from) = index.checked_add(1) else {
            return Ok(None);
        };
        let mut cursor = from;
        loop {
            let records = self.kv.checkpoint_records(cursor, 64)?;
            if let Some(signed_at) = records.iter().find_map(|r| r.signed_at) {
                return Ok(Some(signed_at));
            }
            match records.last() {
                Some(last) if records.len() == 64 => cursor = last.size.saturating_add(1),
                _ => return Ok(None),
            }
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // A clean shutdown leaves nothing to recompute at the next open.
        let writer = lock(&self.writer);
        if writer.synced != writer.end
            && let Err(err) = self.log.sync_derived(writer.end, &writer.range.root())
        {
            tracing::warn!(error = %err, "cannot sync the derived tile files at shutdown");
        }
    }
}

/// Checks that `entry`, read back as entry `index`, hashes to `stored`, its leaf hash in the
/// level-0 tile.
///
/// # Errors
/// [`Error::Corrupted`] naming the entry and its tile.
fn check_leaf(index: u64, entry: &[u8], stored: &[u8]) -> Result<(), Error> {
    if leaf_hash(entry).as_bytes().as_slice() == stored {
        return Ok(());
    }
    Err(Error::corrupted(format!(
        "entry {index} does not hash to its leaf hash in tile 0/{}",
        index / BUNDLE_ENTRIES as u64
    )))
}

/// The current time in Unix seconds (0 if the clock is before 1970).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What retention decides for one checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retain {
    Keep,
    Remove,
    /// Inside the recent window: keep it and stop the walk.
    Stop,
}

/// Retention's decision for `record`, given the previous remaining checkpoint (by size).
fn retain(record: &CheckpointRecord, previous: Option<&CheckpointRecord>, now: u64) -> Retain {
    let Some(signed_at) = record.signed_at else {
        return Retain::Keep; // cannot be aged
    };
    let age = now.saturating_sub(signed_at);
    if age < KEEP_ALL_SECS {
        return Retain::Stop;
    }
    if record.pinned {
        return Retain::Keep;
    }
    // A whole minute changes tier at once (when it began 7 days ago), so thinning in steps
    // keeps the same checkpoints as thinning once.
    let minute_age = now.saturating_sub(signed_at - signed_at % 60);
    let bucket = if minute_age < KEEP_MINUTELY_SECS {
        60
    } else {
        3600
    };
    match previous.and_then(|p| p.signed_at) {
        Some(before) if before / bucket == signed_at / bucket => Retain::Remove,
        _ => Retain::Keep,
    }
}

/// One bounded pass of checkpoint retention over `kv` from `*cursor` (see
/// [`Ledger::prune_checkpoints`]); moves the cursor to where the next pass resumes.
pub(crate) fn prune_history(
    kv: &dyn Store,
    cursor: &mut u64,
    now: u64,
    scan_limit: usize,
    remove_limit: usize,
) -> Result<Pruned, Error> {
    let Some((latest, _)) = kv.latest_checkpoint()? else {
        *cursor = 0;
        return Ok(Pruned {
            complete: true,
            ..Pruned::default()
        });
    };
    let mut previous = match *cursor {
        0 => None,
        from => kv.checkpoint_record_before(from)?,
    };
    let limit = scan_limit.max(1);
    let records = kv.checkpoint_records(*cursor, limit)?;
    let mut pruned = Pruned::default();
    // Where the next pass starts; `None` once this one reached its end. A full page may be
    // followed by more.
    let mut next = match records.last() {
        Some(last) if records.len() == limit => Some(last.size.saturating_add(1)),
        _ => None,
    };
    for record in &records {
        if record.size >= latest {
            next = None;
            break;
        }
        if pruned.removed.len() >= remove_limit {
            next = Some(record.size);
            break;
        }
        pruned.scanned += 1;
        match retain(record, previous.as_ref(), now) {
            Retain::Keep => previous = Some(*record),
            Retain::Remove => pruned.removed.push(record.size),
            Retain::Stop => {
                next = None;
                break;
            }
        }
    }
    if !pruned.removed.is_empty() {
        kv.remove_checkpoints(&pruned.removed)?;
    }
    pruned.complete = next.is_none();
    *cursor = next.unwrap_or(0);
    Ok(pruned)
}

/// Removes a directory tree if it exists.
fn remove_dir_if_exists(dir: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io_path("remove an interrupted migration", dir, e)),
    }
}

/// Moves a format-1 store's entries into the log files, checks that they give the recorded
/// root, and only then removes the old data.
fn migrate(
    kv: &dyn Store,
    log: &TileLog,
    writer: &mut Writer,
    head: TreeHead,
) -> Result<(), Error> {
    tracing::info!(size = head.size, "migrating the store from format 1");
    let bundles = head.size.div_ceil(BUNDLE_ENTRIES as u64);
    let mut first = 0u64;
    while first < bundles {
        let last = bundles.min(first + MIGRATION_BUNDLES);
        let mut raw = Vec::new();
        for index in first..last {
            let width = usize::from(entry_bundle_width(index, head.size).unwrap_or(0));
            let bytes = kv.legacy_bundle(index)?.ok_or_else(|| {
                Error::corrupted(format!("format-1 entry bundle {index} is missing"))
            })?;
            raw.push((index, width, bytes));
        }
        let mut entries: Vec<&[u8]> = Vec::new();
        for (index, width, bytes) in &raw {
            let decoded = bundle::decode_bundle(bytes, BUNDLE_ENTRIES)
                .map_err(|e| Error::corrupted(format!("format-1 entry bundle {index}: {e}")))?;
            let kept = decoded.get(..*width).ok_or_else(|| {
                Error::corrupted(format!("format-1 entry bundle {index} is short"))
            })?;
            entries.extend_from_slice(kept);
        }
        writer.end = log.append(&mut writer.range, writer.end, &mut writer.scratch, &entries)?;
        first = last;
    }
    let derived = writer.range.root();
    if writer.end.size != head.size || derived != head.root {
        return Err(Error::RootMismatch {
            size: head.size,
            recorded: head.root,
            derived,
        });
    }
    log.sync_derived(writer.end, &derived)?;
    writer.synced = writer.end;
    kv.put_meta(FORMAT_KEY, FORMAT.as_bytes())?;
    kv.drop_legacy()?;
    tracing::info!(size = head.size, "migrated the store to format 2");
    Ok(())
}
