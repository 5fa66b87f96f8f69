//! The client's error type: transport and API failures, and every way a log can fail
//! verification.
//!
//! The variants split into two families, which the CLI maps to different exit codes:
//! [`ClientError::is_misbehaviour`] is true when the log (or a server in front of it) served
//! something that does not verify; the rest mean the check could not be carried out
//! (network, configuration, local files).

use veritrail_ledger::Hash;
use veritrail_ledger::bundle::BundleError;
use veritrail_ledger::tree::TreeError;

use crate::state::VerifyError;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The log URL is not a usable `http` or `https` URL.
    #[error("invalid log URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request could not be completed (connection refused, timeout, TLS, ...), after any
    /// retries.
    #[error("request to {url} failed: {source}")]
    Transport {
        /// The request URL.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status; `code` is its stable machine code (empty
    /// when the body was not a Veritrail JSON error).
    #[error("{url}: HTTP {status} {code}: {message}")]
    Api {
        /// The request URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's error code, such as `not_found`.
        code: String,
        /// The server's message (or the start of a non-JSON body).
        message: String,
    },
    /// A response body exceeded what that resource can legitimately hold.
    #[error("{url}: response is larger than {max} bytes")]
    ResponseTooLarge {
        /// The request URL.
        url: String,
        /// The limit for that resource.
        max: usize,
    },
    /// A response body is malformed (bad JSON, bad base64, wrong tile length, ...).
    #[error("{url}: malformed response: {reason}")]
    MalformedResponse {
        /// The request URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint, proof or growth step did not verify; for a split view the error carries
    /// offline-verifiable evidence.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The log served a checkpoint older than one it signed before: it rolled back (or a
    /// cache in front of it is stale). The older checkpoint is consistent with the trusted
    /// one unless the error is [`VerifyError::SplitView`] instead.
    #[error(
        "rollback: the log served a checkpoint of size {got}, but a checkpoint of size {trusted} was already verified"
    )]
    Rollback {
        /// The trusted size.
        trusted: u64,
        /// The size served.
        got: u64,
    },
    /// A checkpoint claims a tree larger than the client accepts (see
    /// [`crate::ClientConfig::max_tree_size`]).
    #[error("checkpoint claims a tree of {size} entries, more than the limit of {max}")]
    ImplausibleTreeSize {
        /// The claimed size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The bytes of an entry do not hash to the leaf hash the log committed to.
    #[error("entry {index}: its bytes hash to {computed}, but the log committed to {expected}")]
    EntryMismatch {
        /// The entry's index.
        index: u64,
        /// `leaf_hash(entry bytes)`.
        computed: Hash,
        /// The leaf hash from the proof, tile or answer it was checked against.
        expected: Hash,
    },
    /// The record the log stored is not the event the client sent (a field changed, added
    /// or dropped), or is not a well-formed record.
    #[error("record {index}: the stored record does not hold the event sent: {problem}")]
    RecordMismatch {
        /// The record's index.
        index: u64,
        /// What differs.
        problem: String,
    },
    /// A query answer left out a record the client holds proven and that matches the query.
    #[error("the query answer leaves out record {missing}, which matches it")]
    QueryIncomplete {
        /// The record left out.
        missing: u64,
    },
    /// The records served as a conversation do not form its complete chain: one was
    /// withheld, inserted or reordered, or the chain does not start at its first record.
    #[error("conversation {conversation:?} is not complete: {reason}")]
    ConversationIncomplete {
        /// The conversation.
        conversation: String,
        /// Where the chain breaks.
        reason: Box<veritrail_records::ChainError>,
    },
    /// The log's signed head statement does not name the last record served for the
    /// conversation at the same checkpoint (a stale or withheld head), or does not verify.
    #[error("conversation {conversation:?}: {reason}")]
    HeadMismatch {
        /// The conversation.
        conversation: String,
        /// What is wrong with the statement.
        reason: Box<veritrail_records::HeadError>,
    },
    /// The server answered for another index or size than the one asked.
    #[error("asked for {what} {asked}, the server answered for {got}")]
    WrongAnswer {
        /// What was asked (`index`, `tree size`, ...).
        what: &'static str,
        /// The value asked.
        asked: u64,
        /// The value in the answer.
        got: u64,
    },
    /// Hash tiles do not hash to the signed root of the checkpoint they were read for.
    #[error(
        "the log's hash tiles give root {computed} for tree size {size}, but its checkpoint says {expected}"
    )]
    TileRootMismatch {
        /// The tree size.
        size: u64,
        /// The root computed from the tiles.
        computed: Hash,
        /// The signed root.
        expected: Hash,
    },
    /// A hash tile served by the log differs from the one recomputed from the entries.
    #[error("hash tile {path} does not match the tile recomputed from the log's entries")]
    TileMismatch {
        /// The tile path.
        path: String,
    },
    /// The entries served by the log do not hash to the signed root.
    #[error(
        "the log's entries give root {computed} for tree size {size}, but its checkpoint says {expected}"
    )]
    EntriesRootMismatch {
        /// The tree size.
        size: u64,
        /// The root recomputed from the entries.
        computed: Hash,
        /// The signed root.
        expected: Hash,
    },
    /// The log does not serve a tile or bundle that its checkpoint covers.
    #[error("the checkpoint covers {path}, but the log does not serve it: {reason}")]
    MissingData {
        /// The tile or bundle path.
        path: String,
        /// The failure.
        reason: String,
    },
    /// An entry bundle is malformed.
    #[error("entry bundle {path}: {source}")]
    Bundle {
        /// The bundle path.
        path: String,
        /// What is wrong.
        #[source]
        source: BundleError,
    },
    /// A tree computation failed (a tile too short for the size asked, an index out of
    /// range).
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// A local file (tile cache, progress, evidence) could not be read or written.
    #[error("{path}: {reason}")]
    Local {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl ClientError {
    /// True when the error shows that the log served data that does not verify, as opposed to
    /// a failure to reach it or to use local files.
    pub fn is_misbehaviour(&self) -> bool {
        match self {
            ClientError::Verify(VerifyError::State { .. }) => false,
            ClientError::Verify(_)
            | ClientError::Rollback { .. }
            | ClientError::ImplausibleTreeSize { .. }
            | ClientError::EntryMismatch { .. }
            | ClientError::RecordMismatch { .. }
            | ClientError::ConversationIncomplete { .. }
            | ClientError::QueryIncomplete { .. }
            | ClientError::HeadMismatch { .. }
            | ClientError::WrongAnswer { .. }
            | ClientError::TileRootMismatch { .. }
            | ClientError::TileMismatch { .. }
            | ClientError::EntriesRootMismatch { .. }
            | ClientError::MissingData { .. }
            | ClientError::Bundle { .. }
            | ClientError::MalformedResponse { .. }
            | ClientError::ResponseTooLarge { .. }
            | ClientError::Tree(_) => true,
            ClientError::InvalidUrl { .. }
            | ClientError::Transport { .. }
            | ClientError::Api { .. }
            | ClientError::Local { .. } => false,
        }
    }

    /// The server's stable error code, for an [`ClientError::Api`] answer that carried one
    /// this client knows.
    pub fn api_code(&self) -> Option<veritrail_api::ErrorCode> {
        match self {
            ClientError::Api { code, .. } => code.parse().ok(),
            _ => None,
        }
    }

    /// The split-view evidence this error carries, if any.
    pub fn evidence(&self) -> Option<&crate::evidence::Evidence> {
        match self {
            ClientError::Verify(VerifyError::SplitView { evidence, .. }) => Some(evidence),
            _ => None,
        }
    }

    pub(crate) fn local(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        ClientError::Local {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}
