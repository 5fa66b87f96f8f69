//! The error type of the durable engine and its stores.

use std::path::{Path, PathBuf};

use crate::checkpoint::CheckpointError;
use crate::hash::Hash;
use crate::proof::ProofError;
use crate::tree::TreeError;

/// The error a storage backend reported, kept as the source of [`Error::Storage`].
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from the ledger engine and its storage backends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key-value backend failed (I/O, locking, the database itself).
    #[error("storage error during {context}: {source}")]
    Storage {
        /// What the engine was doing.
        context: &'static str,
        /// The backend's error.
        #[source]
        source: BackendError,
    },
    /// Reading or writing one of the log's files failed.
    #[error("I/O error during {context}{}: {source}", at(.path.as_deref()))]
    Io {
        /// What the engine was doing.
        context: &'static str,
        /// The file or directory, when one is known.
        path: Option<PathBuf>,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Stored data does not decode or does not recompute: the store is damaged.
    #[error("store is corrupted: {what}")]
    Corrupted {
        /// What was found wrong.
        what: String,
    },
    /// The root re-derived from the stored tiles differs from the recorded one.
    #[error("root mismatch at tree size {size}: recorded {recorded}, tiles give {derived}")]
    RootMismatch {
        /// Tree size checked.
        size: u64,
        /// The root recorded (tree head or signed checkpoint).
        recorded: Hash,
        /// The root recomputed from tiles.
        derived: Hash,
    },
    /// The last signed checkpoint is not a prefix of the stored tree, or is invalid.
    #[error("last signed checkpoint (size {size}) does not match the store: {reason}")]
    CheckpointMismatch {
        /// The checkpoint's tree size.
        size: u64,
        /// Why it was rejected.
        #[source]
        reason: CheckpointMismatch,
    },
    /// The origin configured differs from the one this store was created with.
    #[error("store belongs to origin {stored:?}, not {configured:?}")]
    OriginMismatch {
        /// Origin recorded in the store.
        stored: String,
        /// Origin given at open.
        configured: String,
    },
    /// The origin is not usable as a checkpoint origin (empty, or with control characters).
    #[error("invalid origin {origin:?}: {reason}")]
    InvalidOrigin {
        /// The origin given.
        origin: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Signing a checkpoint failed (the note could not be encoded).
    #[error("cannot sign checkpoint: {0}")]
    Signing(#[source] CheckpointError),
    /// An entry in an append batch is too large for a C2SP entry bundle.
    #[error("entry {position} of the batch is {size} bytes; the maximum is 65535")]
    EntryTooLarge {
        /// Position within the batch.
        position: usize,
        /// Its size in bytes.
        size: usize,
    },
    /// A leaf index at or beyond the tree size was requested.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// Requested index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// A tree size beyond the current tree was requested.
    #[error("tree size {requested} is beyond the current size {current}")]
    SizeOutOfRange {
        /// Requested size.
        requested: u64,
        /// Current tree size.
        current: u64,
    },
    /// A consistency proof was requested for sizes that are not `0 < old <= new`.
    #[error("no consistency proof from size {old} to size {new}")]
    InvalidSizes {
        /// Old size.
        old: u64,
        /// New size.
        new: u64,
    },
    /// A leaf hash is not in the log (or not within the requested size).
    #[error("leaf hash {leaf_hash} is not in the tree of size {size}")]
    LeafNotFound {
        /// The leaf hash looked up.
        leaf_hash: Hash,
        /// The tree size searched.
        size: u64,
    },
    /// A checkpoint would not be consistent with the last signed one; nothing was signed.
    #[error(
        "refusing to sign tree size {current} over the last checkpoint's size {last}: {reason}"
    )]
    Inconsistent {
        /// The last signed checkpoint's tree size.
        last: u64,
        /// The tree size that would have been signed.
        current: u64,
        /// Why the new tree does not extend the last checkpoint.
        #[source]
        reason: Inconsistency,
    },
    /// A lookup by leaf hash reached leaves the index has not caught up with (after a restart
    /// that rebuilds it, or under a burst of appends). Retry shortly; never a wrong "absent".
    #[error("the leaf index covers {indexed} of {size} leaves; retry shortly")]
    IndexBehind {
        /// Leaves indexed.
        indexed: u64,
        /// The tree size searched.
        size: u64,
    },
    /// The store was written by a newer (or unknown) version of Veritrail.
    #[error(
        "the store has format {found:?}; this build reads formats \"1\" (migrated on open) and \"2\"; upgrade Veritrail"
    )]
    UnsupportedFormat {
        /// The format recorded in the store.
        found: String,
    },
    /// A statement to sign with the log's key could pose as a checkpoint (its first line is
    /// the origin) or is not a valid note text; nothing was signed.
    #[error("refusing to sign a statement: {reason}")]
    Statement {
        /// Why.
        reason: String,
    },
    /// The entry's bundle was archived and its bodies purged from this store; the hash tiles
    /// (and so every proof) remain.
    #[error("entry {index} was archived to {location} and purged here (purge record {record})")]
    Purged {
        /// The first entry asked for that is purged.
        index: u64,
        /// Where the archive is.
        location: String,
        /// The index of the purge record.
        record: u64,
    },
    /// A purge was refused: not whole committed bundles, or overlapping an earlier purge.
    #[error("cannot purge bundles {first}..{end}: {reason}")]
    PurgeRefused {
        /// The first bundle.
        first: u64,
        /// The end bundle.
        end: u64,
        /// Why.
        reason: String,
    },
    /// A store backend name is unknown or was not compiled in.
    #[error("unknown or disabled store backend {name:?} (expected \"redb\" or \"sled\")")]
    UnknownBackend {
        /// The name given.
        name: String,
    },
}

/// Why the last signed checkpoint does not match the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointMismatch {
    /// It does not verify (signature, origin, encoding).
    #[error("it does not verify: {0}")]
    Invalid(#[source] CheckpointError),
    /// It is stored under another size than the one it names.
    #[error("it is stored under size {stored} but names size {named}")]
    WrongKey {
        /// The storage key.
        stored: u64,
        /// The size in the note.
        named: u64,
    },
    /// It covers more entries than the store holds: acknowledged entries are missing.
    #[error("the store holds only {held} entries")]
    BeyondStore {
        /// Entries in the store.
        held: u64,
    },
    /// Its root differs from the root the stored tiles give.
    #[error("its root {signed} differs from the root {derived} the tiles give")]
    RootDiffers {
        /// The signed root.
        signed: Hash,
        /// The root derived from the tiles.
        derived: Hash,
    },
}

/// Why a tree does not extend the last signed checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Inconsistency {
    /// The tree is smaller than the checkpoint.
    #[error("the tree is smaller")]
    Smaller,
    /// The checkpoint has size 0 but not the empty root.
    #[error("the last checkpoint has size 0 but a non-empty root")]
    NonEmptyRootAtZero,
    /// The consistency proof built from the tiles does not verify.
    #[error("the consistency proof from the tiles does not verify: {0}")]
    Proof(#[source] ProofError),
}

fn at(path: Option<&Path>) -> String {
    path.map(|p| format!(" ({})", p.display()))
        .unwrap_or_default()
}

impl Error {
    pub(crate) fn storage(context: &'static str, err: impl Into<BackendError>) -> Self {
        Error::Storage {
            context,
            source: err.into(),
        }
    }

    pub(crate) fn io(context: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            context,
            path: None,
            source,
        }
    }

    pub(crate) fn io_path(context: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            context,
            path: Some(path.to_owned()),
            source,
        }
    }

    /// Whether the error means the disk (or the user's quota) is full.
    pub fn is_no_space(&self) -> bool {
        match self {
            Error::Io { source, .. } => is_no_space(source),
            Error::Storage { source, .. } => {
                // Walk the chain: the backends wrap the I/O error in their own types.
                let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&**source);
                while let Some(err) = cause {
                    if let Some(io) = backend_io_error(err)
                        && is_no_space(io)
                    {
                        return true;
                    }
                    cause = err.source();
                }
                false
            }
            _ => false,
        }
    }

    pub(crate) fn corrupted(what: impl Into<String>) -> Self {
        Error::Corrupted { what: what.into() }
    }
}

impl From<TreeError> for Error {
    fn from(err: TreeError) -> Self {
        match err {
            TreeError::IndexOutOfRange { index, size } => Error::IndexOutOfRange { index, size },
            TreeError::InvalidSizes { old, new } => Error::InvalidSizes { old, new },
            short @ TreeError::ShortTile { .. } => Error::corrupted(short.to_string()),
        }
    }
}

/// The I/O error `err` is or wraps directly (redb's and sled's errors do not expose it as
/// their `source`).
fn backend_io_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        return Some(io);
    }
    #[cfg(feature = "redb")]
    if let Some(redb::Error::Io(io)) = err.downcast_ref::<redb::Error>() {
        return Some(io);
    }
    #[cfg(feature = "sled")]
    if let Some(sled::Error::Io(io)) = err.downcast_ref::<sled::Error>() {
        return Some(io);
    }
    None
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub fn is_no_space(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}
