//! The error type of the durable engine and its stores.

use crate::hash::Hash;
use crate::tree::TreeError;

/// Errors from the ledger engine and its storage backends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage backend failed (I/O, locking, the database itself).
    #[error("storage error during {context}: {message}")]
    Storage {
        /// What the engine was doing.
        context: &'static str,
        /// The backend's message.
        message: String,
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
        reason: String,
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
    #[error("cannot sign checkpoint: {reason}")]
    Signing {
        /// The encoder's message.
        reason: String,
    },
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
    #[error("refusing to sign: {reason}")]
    Inconsistent {
        /// Why the new tree does not extend the last checkpoint.
        reason: String,
    },
    /// A store backend name is unknown or was not compiled in.
    #[error("unknown or disabled store backend {name:?} (expected \"redb\" or \"sled\")")]
    UnknownBackend {
        /// The name given.
        name: String,
    },
}

impl Error {
    pub(crate) fn storage(context: &'static str, err: impl std::fmt::Display) -> Self {
        Error::Storage {
            context,
            message: err.to_string(),
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
