//! Veritrail archives: a self-verifying copy of whole entry bundles on a directory or a
//! bucket, which an auditor verifies years later with nothing but the log's public key.
//!
//! The layout and the signed manifest are [`veritrail_ledger::archive`]'s. This crate writes
//! an archive ([`write()`]: every file, then the file list, then the manifest, which is never
//! overwritten), and reads one back and verifies it ([`verify()`]):
//!
//! 1. the manifest is a note signed by the log's key, for this origin;
//! 2. the file list hashes to the manifest's hash, and every file it names is there with that
//!    size and SHA-256;
//! 3. `checkpoint` is a checkpoint of the log signed by its key, of the manifest's size and
//!    root;
//! 4. every bundle of the range is a full bundle whose entries hash to the level-0 tile of
//!    the archive, and that tile is in the checkpoint's tree: the inclusion proof of the
//!    bundle's first leaf, computed from the archive's own hash tiles, verifies against the
//!    checkpoint's root (the proof's first eight hashes come from the level-0 tile, so the
//!    root binds all 256 leaves).
//!
//! Which hash tiles an archive needs ([`tiles_needed`]) depends only on the bundles and the
//! tree size, so the writer and the verifier agree on them without talking.
//!
//! ```
//! # use veritrail_archive::tiles_needed;
//! // Bundles 0 and 1 of a 600-entry tree: their level-0 tiles and the tiles on the path up.
//! let paths: Vec<String> = tiles_needed(0..2, 600).iter().map(|t| t.path()).collect();
//! assert!(paths.contains(&"tile/0/000".to_owned()) && paths.contains(&"tile/0/001".to_owned()));
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::task::JoinSet;
use veritrail_ledger::archive::{
    ArchiveFormatError, FILES_FILE, FileEntry, MANIFEST_FILE, MAX_FILES_SIZE, Manifest,
    encode_files, parse_files,
};
use veritrail_ledger::bundle::decode_bundle;
use veritrail_ledger::checkpoint::Checkpoint;
use veritrail_ledger::note::{Note, NoteVerifier};
use veritrail_ledger::proof::verify_inclusion;
use veritrail_ledger::tile::TileId;
use veritrail_ledger::tree::{self, HashTileReader, TreeError};
use veritrail_ledger::{Hash, TreeHead, leaf_hash};
use veritrail_objects::{Meta, Objects, ObjectsError};

pub use veritrail_ledger::archive;

/// Entries per bundle.
const BUNDLE: u64 = 256;
/// Files written or read at once.
const CONCURRENCY: usize = 16;

/// Why an archive could not be written, or is not valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The location could not be read or written.
    #[error(transparent)]
    Objects(#[from] ObjectsError),
    /// A file the archive must hold is not there.
    #[error("{location}: {path} is missing")]
    Missing {
        /// The archive.
        location: String,
        /// The file.
        path: String,
    },
    /// A file is not what the manifest says.
    #[error("{location}: {path}: {reason}")]
    Mismatch {
        /// The archive.
        location: String,
        /// The file.
        path: String,
        /// How it differs.
        reason: String,
    },
    /// The manifest or file list is malformed.
    #[error("{location}: {source}")]
    Format {
        /// The archive.
        location: String,
        /// What is wrong.
        #[source]
        source: ArchiveFormatError,
    },
    /// The manifest or checkpoint is not signed by the log's key, or is for another log.
    #[error("{location}: {what} does not verify: {reason}")]
    Signature {
        /// The archive.
        location: String,
        /// `manifest` or `checkpoint`.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A bundle is not proven by the archive's tiles against its checkpoint.
    #[error("{location}: bundle {bundle} is not in the checkpoint's tree: {reason}")]
    Proof {
        /// The archive.
        location: String,
        /// The bundle.
        bundle: u64,
        /// Why.
        reason: String,
    },
    /// An archive with a manifest already exists there (archives are never overwritten).
    #[error("{location} already holds an archive; choose another location or verify that one")]
    Exists {
        /// The archive.
        location: String,
    },
    /// The manifest could not be signed.
    #[error("cannot sign the manifest: {0}")]
    Sign(String),
    /// A background task failed.
    #[error("an archive task failed: {0}")]
    Task(String),
}

impl ArchiveError {
    /// Whether the archive was read and found invalid (as opposed to: it could not be read).
    pub fn is_invalid(&self) -> bool {
        !matches!(
            self,
            ArchiveError::Objects(_) | ArchiveError::Sign(_) | ArchiveError::Task(_)
        )
    }
}

/// The directory name of the archive of `bundles` below an archive location.
pub fn archive_name(bundles: &Range<u64>) -> String {
    format!("bundles-{}-{}", bundles.start, bundles.end)
}

/// Records which hash tiles a computation reads, answering with placeholders.
struct Probe {
    read: RefCell<BTreeSet<(u8, u64, u16)>>,
}

impl HashTileReader for Probe {
    type Error = TreeError;

    fn read_hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>, TreeError> {
        self.read.borrow_mut().insert((level, index, width));
        Ok(vec![Hash([0; 32]); usize::from(width)])
    }
}

/// The hash tiles, at their width in the tree of `size`, that prove bundles `bundles` (which
/// `size` must cover whole): for each bundle, its level-0 tile and every tile the inclusion
/// proof of its first leaf reads.
pub fn tiles_needed(bundles: Range<u64>, size: u64) -> Vec<TileId> {
    let probe = Probe {
        read: RefCell::new(BTreeSet::new()),
    };
    for bundle in bundles {
        probe.read.borrow_mut().insert((0, bundle, 256));
        let _ = tree::inclusion_proof(&probe, bundle * BUNDLE, size);
    }
    // A tile read at several widths is needed at the widest (a narrower read takes a prefix).
    let mut widest: BTreeMap<(u8, u64), u16> = BTreeMap::new();
    for (level, index, width) in probe.read.into_inner() {
        let w = widest.entry((level, index)).or_insert(width);
        *w = (*w).max(width);
    }
    widest
        .into_iter()
        .filter_map(|((level, index), width)| TileId::hash(level, index, width).ok())
        .collect()
}

/// What an archive is of, before its files are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    /// The log's origin.
    pub origin: String,
    /// The bundles.
    pub bundles: Range<u64>,
    /// The checkpoint the bundles are proven against: its tree.
    pub tree: TreeHead,
}

/// An archive written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Where.
    pub location: String,
    /// The SHA-256 of the manifest note, as stored.
    pub manifest_sha256: [u8; 32],
    /// Files written, the file list and manifest included.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Writes an archive to `objects` (its own directory): every file of `files` (paths from
/// the archive's root: `checkpoint`, `tile/...`, `payloads/...`), then the file list, then
/// the manifest signed by `sign` — last, and only if no manifest is there yet, so that a
/// manifest is never replaced and never names a file not yet written. `progress` is called
/// with the bytes written so far.
///
/// # Errors
/// [`ArchiveError::Exists`] if the location already holds a manifest;
/// [`ArchiveError::Sign`]; [`ArchiveError::Objects`] for a failed write (a partial archive
/// without a manifest is left, and is not an archive).
pub async fn write(
    objects: &Objects,
    draft: &Draft,
    mut files: Vec<(String, Bytes)>,
    sign: impl FnOnce(&str) -> Result<Vec<u8>, String>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Written, ArchiveError> {
    if objects.get(MANIFEST_FILE).await?.is_some() {
        return Err(ArchiveError::Exists {
            location: objects.location().to_owned(),
        });
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let entries: Vec<FileEntry> = files
        .iter()
        .map(|(path, bytes)| FileEntry {
            sha256: sha256(bytes),
            size: bytes.len() as u64,
            path: path.clone(),
        })
        .collect();
    let mut written = 0u64;
    let mut tasks = JoinSet::new();
    for (path, bytes) in files {
        while tasks.len() >= CONCURRENCY {
            written += join(&mut tasks).await?;
            progress(written);
        }
        let objects = objects.clone();
        tasks.spawn(async move {
            let len = bytes.len() as u64;
            objects.put(&path, bytes, &Meta::IMMUTABLE).await?;
            Ok::<u64, ArchiveError>(len)
        });
    }
    while !tasks.is_empty() {
        written += join(&mut tasks).await?;
        progress(written);
    }
    let list = encode_files(&entries);
    let manifest = Manifest {
        origin: draft.origin.clone(),
        bundles: draft.bundles.clone(),
        size: draft.tree.size,
        root: draft.tree.root,
        files: entries.len() as u64,
        files_hash: sha256(list.as_bytes()),
    };
    objects
        .put(FILES_FILE, Bytes::from(list.clone()), &Meta::NONE)
        .await?;
    let note = sign(&manifest.to_text()).map_err(ArchiveError::Sign)?;
    let manifest_sha256 = sha256(&note);
    let note_len = note.len() as u64;
    if !objects
        .create(MANIFEST_FILE, Bytes::from(note), &Meta::NONE)
        .await?
    {
        return Err(ArchiveError::Exists {
            location: objects.location().to_owned(),
        });
    }
    Ok(Written {
        location: objects.location().to_owned(),
        manifest_sha256,
        files: entries.len() as u64 + 2,
        bytes: written + list.len() as u64 + note_len,
    })
}

async fn join<T: 'static>(tasks: &mut JoinSet<Result<T, ArchiveError>>) -> Result<T, ArchiveError> {
    match tasks.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(ArchiveError::Task(e.to_string())),
        None => Err(ArchiveError::Task("no task".into())),
    }
}

/// An archive read back and verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Where.
    pub location: String,
    /// Its manifest.
    pub manifest: Manifest,
    /// The SHA-256 of the manifest note.
    pub manifest_sha256: [u8; 32],
    /// Its files (the file list).
    pub files: Vec<FileEntry>,
    /// Entries verified.
    pub entries: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// The archive's hash tiles, for proofs.
struct Tiles(BTreeMap<(u8, u64), Vec<Hash>>);

impl HashTileReader for Tiles {
    type Error = TreeError;

    fn read_hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>, TreeError> {
        match self.0.get(&(level, index)) {
            Some(tile) if tile.len() >= usize::from(width) => Ok(tile.clone()),
            other => Err(TreeError::ShortTile {
                level,
                index,
                got: other.map_or(0, Vec::len),
                want: usize::from(width),
            }),
        }
    }
}

/// Reads the archive at `objects` back whole and verifies it against the log's key and
/// origin (see the crate docs). Nothing is trusted: not the location, not the file list.
/// `progress` is called with the bytes read so far.
///
/// # Errors
/// [`ArchiveError::is_invalid`] tells an invalid archive (with the first reason found) from
/// one that could not be read.
pub async fn verify(
    objects: &Objects,
    origin: &str,
    verifier: &NoteVerifier,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Verified, ArchiveError> {
    let location = objects.location().to_owned();
    let missing = |path: &str| ArchiveError::Missing {
        location: location.clone(),
        path: path.to_owned(),
    };
    let mismatch = |path: &str, reason: String| ArchiveError::Mismatch {
        location: location.clone(),
        path: path.to_owned(),
        reason,
    };
    let format = |source| ArchiveError::Format {
        location: location.clone(),
        source,
    };
    let signature = |what, reason: String| ArchiveError::Signature {
        location: location.clone(),
        what,
        reason,
    };

    // 1. The manifest, signed by the log.
    let note_bytes = objects
        .get(MANIFEST_FILE)
        .await?
        .ok_or_else(|| missing(MANIFEST_FILE))?;
    let note = Note::from_bytes(&note_bytes).map_err(|e| signature("manifest", e.to_string()))?;
    note.verify(std::slice::from_ref(verifier))
        .map_err(|e| signature("manifest", e.to_string()))?;
    let manifest = Manifest::from_text(note.text()).map_err(format)?;
    if manifest.origin != origin {
        return Err(signature(
            "manifest",
            format!("it is for the log {:?}, not {origin:?}", manifest.origin),
        ));
    }

    // 2. The file list, bound by the manifest.
    let list = objects
        .get(FILES_FILE)
        .await?
        .ok_or_else(|| missing(FILES_FILE))?;
    if list.len() > MAX_FILES_SIZE || sha256(&list) != manifest.files_hash {
        return Err(mismatch(
            FILES_FILE,
            "it does not hash to the manifest's hash".into(),
        ));
    }
    let text = std::str::from_utf8(&list).map_err(|_| mismatch(FILES_FILE, "not UTF-8".into()))?;
    let files = parse_files(text).map_err(format)?;
    if files.len() as u64 != manifest.files {
        return Err(mismatch(
            FILES_FILE,
            "its count is not the manifest's".into(),
        ));
    }
    let by_path: BTreeMap<&str, &FileEntry> = files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut read_bytes = (note_bytes.len() + list.len()) as u64;

    // Reads a listed file and checks its size and hash.
    let fetch = |path: String| {
        let objects = objects.clone();
        let expected = by_path.get(path.as_str()).map(|f| (f.size, f.sha256));
        let location = location.clone();
        async move {
            let Some((size, hash)) = expected else {
                return Err(ArchiveError::Missing {
                    location,
                    path: format!("{path} (not in the file list)"),
                });
            };
            let bytes = objects
                .get(&path)
                .await?
                .ok_or_else(|| ArchiveError::Missing {
                    location: location.clone(),
                    path: path.clone(),
                })?;
            if bytes.len() as u64 != size || sha256(&bytes) != hash {
                return Err(ArchiveError::Mismatch {
                    location,
                    path,
                    reason: "its size or SHA-256 is not the file list's".into(),
                });
            }
            Ok::<Bytes, ArchiveError>(bytes)
        }
    };

    // 3. The checkpoint.
    let checkpoint = fetch("checkpoint".into()).await?;
    read_bytes += checkpoint.len() as u64;
    let (signed, _) = Checkpoint::verify_signed(&checkpoint, origin, verifier)
        .map_err(|e| signature("checkpoint", e.to_string()))?;
    if signed.tree.size != manifest.size || signed.tree.root != manifest.root {
        return Err(signature(
            "checkpoint",
            "its size and root are not the manifest's".into(),
        ));
    }

    // Every other listed file is read and checked (payloads included), tiles kept.
    let mut tiles = BTreeMap::new();
    let mut bundles = Vec::new();
    let mut others = Vec::new();
    for file in &files {
        if file.path == "checkpoint" {
            continue;
        }
        match TileId::from_path(&file.path) {
            Ok(id) if id.kind() == veritrail_ledger::tile::TileKind::Entries => bundles.push(id),
            Ok(id) => tiles.insert(file.path.clone(), id).map_or((), |_| ()),
            Err(_) => others.push(file.path.clone()),
        }
    }
    let mut hash_tiles: BTreeMap<(u8, u64), Vec<Hash>> = BTreeMap::new();
    for (path, id) in tiles {
        let bytes = fetch(path.clone()).await?;
        read_bytes += bytes.len() as u64;
        let hashes: Vec<Hash> = bytes
            .chunks(32)
            .map(Hash::try_from_slice)
            .collect::<Result<_, _>>()
            .map_err(|_| mismatch(&path, "not a whole number of hashes".into()))?;
        if hashes.len() != usize::from(id.width()) {
            return Err(mismatch(&path, "its width is not its path's".into()));
        }
        let level = match id.kind() {
            veritrail_ledger::tile::TileKind::Hash { level } => level,
            veritrail_ledger::tile::TileKind::Entries => continue,
        };
        hash_tiles.insert((level, id.index()), hashes);
    }
    let tiles = Tiles(hash_tiles);
    for path in others {
        let bytes = fetch(path).await?;
        read_bytes += bytes.len() as u64;
        progress(read_bytes);
    }

    // 4. Every bundle of the range, full, matching its tile, proven.
    let listed: BTreeSet<u64> = bundles
        .iter()
        .filter(|id| id.is_full())
        .map(TileId::index)
        .collect();
    let tree = signed.tree;
    let mut entries = 0u64;
    for bundle in manifest.bundles.clone() {
        let proof_error = |reason: String| ArchiveError::Proof {
            location: location.clone(),
            bundle,
            reason,
        };
        if !listed.contains(&bundle) {
            return Err(missing(&format!("tile/entries/{bundle} (full)")));
        }
        let path = TileId::entries(bundle, 256)
            .map(|id| id.path())
            .map_err(|e| proof_error(e.to_string()))?;
        let bytes = fetch(path.clone()).await?;
        read_bytes += bytes.len() as u64;
        let leaves: Vec<Hash> = decode_bundle(&bytes, 256)
            .map_err(|e| mismatch(&path, e.to_string()))?
            .iter()
            .map(|e| leaf_hash(e))
            .collect();
        if leaves.len() != 256 {
            return Err(mismatch(
                &path,
                format!("it holds {} entries, not 256", leaves.len()),
            ));
        }
        let tile = tiles
            .read_hash_tile(0, bundle, 256)
            .map_err(|e| proof_error(e.to_string()))?;
        if tile != leaves {
            return Err(proof_error(
                "its entries do not hash to its level-0 tile".into(),
            ));
        }
        let first = bundle * BUNDLE;
        let proof = tree::inclusion_proof(&tiles, first, tree.size)
            .map_err(|e| proof_error(e.to_string()))?;
        let Some(leaf) = leaves.first() else {
            return Err(proof_error("empty".into()));
        };
        verify_inclusion(leaf, first, &tree, &proof).map_err(|e| proof_error(e.to_string()))?;
        entries += 256;
        progress(read_bytes);
    }
    let extra: Vec<&TileId> = bundles
        .iter()
        .filter(|id| !manifest.bundles.contains(&id.index()) || !id.is_full())
        .collect();
    if let Some(id) = extra.first() {
        return Err(mismatch(
            &id.path(),
            "a bundle outside the manifest's range".into(),
        ));
    }
    Ok(Verified {
        location,
        manifest,
        manifest_sha256: sha256(&note_bytes),
        files,
        entries,
        bytes: read_bytes,
    })
}

/// Reads full bundle `bundle` from a verified archive, checked against the file list's hash
/// (the caller verified the archive, so the list is the signed one).
///
/// # Errors
/// [`ArchiveError::Missing`], [`ArchiveError::Mismatch`], [`ArchiveError::Objects`].
pub async fn read_bundle(
    objects: &Objects,
    verified: &Verified,
    bundle: u64,
) -> Result<Bytes, ArchiveError> {
    let location = objects.location().to_owned();
    let path = TileId::entries(bundle, 256)
        .map(|id| id.path())
        .map_err(|e| ArchiveError::Missing {
            location: location.clone(),
            path: e.to_string(),
        })?;
    let Some(file) = verified.files.iter().find(|f| f.path == path) else {
        return Err(ArchiveError::Missing { location, path });
    };
    let bytes = objects
        .get(&path)
        .await?
        .ok_or_else(|| ArchiveError::Missing {
            location: location.clone(),
            path: path.clone(),
        })?;
    if sha256(&bytes) != file.sha256 {
        return Err(ArchiveError::Mismatch {
            location,
            path,
            reason: "its SHA-256 is not the file list's".into(),
        });
    }
    Ok(bytes)
}
