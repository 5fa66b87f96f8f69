//! The server's error types: [`ApiError`], mapped to HTTP responses in one place, and
//! [`StartError`] for a server that cannot start.
//!
//! Every error response is an [`ErrorBody`]: `{"error": "<stable_code>", "message": "<human
//! text>"}`. Caller faults get a 4xx with a precise message; internal faults a generic 500,
//! with the detail (and its sources) only in the server log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use veritrail_api::{ErrorBody, ErrorCode};
use veritrail_ledger::Hash;
use veritrail_ledger::bundle::{BundleError, MAX_ENTRY_SIZE};
use veritrail_ledger::tile::TileError;

/// An API failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A path or query parameter, or a header, is malformed.
    #[error("invalid {name}: {message}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The request body is not a valid entry or entry batch.
    #[error(transparent)]
    InvalidEntry(#[from] InvalidEntry),
    /// The body's content type (or content encoding) is not one the endpoint accepts; the
    /// text says what was sent and what is accepted.
    #[error("unsupported content type: {0}")]
    UnsupportedMediaType(String),
    /// No valid credential was presented.
    #[error("{0}")]
    Unauthorized(Unauthenticated),
    /// The token is valid but lacks the role the route needs.
    #[error("token {token:?} lacks the {needed} role")]
    Forbidden {
        /// The token's name.
        token: String,
        /// The role the route needs.
        needed: &'static str,
    },
    /// The resource does not exist (yet).
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// An index is not below the tree size it is asked against.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// Requested index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// A tree size is beyond the tree it is compared with: the committed tree, or for a
    /// consistency proof the new size (`old` > `size`).
    #[error("{}", bound.describe(*requested, *current))]
    SizeOutOfRange {
        /// Requested size (`old` for [`SizeBound::NewSize`]).
        requested: u64,
        /// The size it exceeds: the committed tree's, or the proof's new size.
        current: u64,
        /// Which of the two `current` is.
        bound: SizeBound,
    },
    /// The path exists but does not take the request's method.
    #[error("method not allowed here; the Allow header lists the methods this path takes")]
    MethodNotAllowed,
    /// An `Idempotency-Key` was reused with a different body.
    #[error("Idempotency-Key {0:?} was already used for different entries")]
    IdempotencyConflict(String),
    /// The body is larger than the limit.
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The append queue is full; retry after the given number of seconds.
    #[error("the append queue is full; retry after {retry_after} s")]
    Overloaded {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The server is shutting down and accepts no more appends.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A lookup by leaf hash reached leaves the index has not caught up with yet.
    #[error("the leaf index covers {indexed} of {size} leaves; retry shortly")]
    IndexCatchingUp {
        /// Leaves indexed.
        indexed: u64,
        /// The tree size searched.
        size: u64,
    },
    /// The request took longer than the server allows.
    #[error("the request timed out")]
    Timeout,
    /// `wait=published`: no checkpoint cosigned by the witness quorum covers the entries.
    #[error(
        "the entries are durable, but no checkpoint covering them is cosigned by the witness quorum yet (missing: {}); retry with the same Idempotency-Key",
        .missing.join(", ")
    )]
    WitnessQuorum {
        /// The policy names of the witnesses the quorum misses.
        missing: Vec<String>,
    },
    /// One or more records are invalid; every problem names its field.
    #[error("{} invalid field(s) in the records; see problems", problems.len())]
    InvalidRecord {
        /// Every problem found.
        problems: Vec<veritrail_api::FieldProblem>,
    },
    /// A record names a conversation that has ended.
    #[error(
        "conversation {conversation:?} has ended (conversation_ended); it takes no more records"
    )]
    ConversationClosed {
        /// The conversation.
        conversation: String,
    },
    /// The payload was destroyed by an erasure.
    #[error("the payload was erased by the erasure record at index {erasure_index}")]
    PayloadErased {
        /// The erasure record's index.
        erasure_index: u64,
    },
    /// A time that may not be in the future is.
    #[error("{name} {value} is in the future: nothing is purged before it expires")]
    InTheFuture {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// The entry was archived and purged from this store.
    #[error(
        "entry {index} was archived to {location} and purged from this server (purge record {record}); read it from the archive"
    )]
    Archived {
        /// The entry asked for.
        index: u64,
        /// The archive's location.
        location: String,
        /// The purge record's index.
        record: u64,
    },
    /// The request's target is longer than the server reads.
    #[error("the request's path and query exceed {limit} bytes")]
    UriTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request's header section is larger than the server reads.
    #[error("the request's headers exceed {limit} bytes")]
    HeadersTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Stored data failed its check against the Merkle tree; it is not served.
    #[error("stored data failed verification and is not served: {what}")]
    Corrupted {
        /// What failed, naming the entry or tile.
        what: String,
    },
    /// The store cannot write (an I/O error other than a full disk); nothing was appended.
    #[error("the store cannot write right now; nothing was appended, retry after {retry_after} s")]
    StoreUnavailable {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The disk is full; nothing was appended.
    #[error("the disk holding the log is full; nothing was appended, retry after {retry_after} s")]
    InsufficientStorage {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// An internal fault; the detail is logged, not returned.
    #[error("internal error: {0}")]
    Internal(#[from] Internal),
}

/// Why a request is not authenticated (`unauthorized`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unauthenticated {
    /// No bearer token, a malformed header, or a token the server does not know.
    #[error("missing or unknown bearer token")]
    NoValidToken,
    /// A JWT that does not verify against the configured OIDC issuer.
    #[error("{0}")]
    Jwt(crate::oidc::JwtRejection),
}

/// What the requested size of an [`ApiError::SizeOutOfRange`] was compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SizeBound {
    /// The committed tree: no proof or tile reaches beyond it.
    Committed,
    /// The new size of a consistency proof: the old size may not exceed it.
    NewSize,
}

impl SizeBound {
    /// The message of a size `requested` beyond `current`.
    fn describe(self, requested: u64, current: u64) -> String {
        match self {
            SizeBound::Committed => {
                format!("tree size {requested} is beyond the current tree size {current}")
            }
            SizeBound::NewSize => format!(
                "old size {requested} is beyond the tree size {current}; need 0 < old <= size"
            ),
        }
    }
}

/// Why a request body is not a valid entry or entry batch (`invalid_entry`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEntry {
    /// A raw entry of zero bytes.
    #[error("empty entry: an entry is 1 to {MAX_ENTRY_SIZE} bytes")]
    Empty,
    /// A batch of zero entries.
    #[error("empty batch: send 1 to {max} entries")]
    EmptyBatch {
        /// The most entries a batch may hold.
        max: usize,
    },
    /// A records request whose body is not JSON.
    #[error("the body is not JSON: {message}")]
    NotJson {
        /// The parser's message.
        message: String,
    },
    /// An OTLP body that does not decode, or holds too many spans or log records.
    #[error("the OTLP body does not decode: {message}")]
    Otlp {
        /// Why.
        message: String,
    },
    /// A records request with no record, or too many.
    #[error("send 1 to {max} records (got {count})")]
    RecordCount {
        /// Records sent.
        count: usize,
        /// The most one request may hold.
        max: usize,
    },
    /// A raw entry starting with the byte that marks agent records (0x01): only the server
    /// writes records, so a raw entry may not look like one.
    #[error(
        "entry {position} starts with byte 0x01, which marks agent records; send records to POST /v1/records"
    )]
    RecordMarker {
        /// Its position in the request (0 for a raw entry).
        position: usize,
    },
    /// An entry of zero bytes inside a batch.
    #[error("entry {position} of the batch is empty")]
    EmptyInBatch {
        /// Its position in the batch.
        position: usize,
    },
    /// The batch framing is malformed (or holds too many entries).
    #[error("malformed batch: {0}")]
    MalformedBatch(#[source] BundleError),
    /// An entry is larger than an entry may be.
    #[error("entry {position} is {size} bytes; the maximum is {MAX_ENTRY_SIZE}")]
    TooLarge {
        /// Its position in the batch.
        position: usize,
        /// Its size in bytes.
        size: usize,
    },
    /// A batch larger than the whole append queue: it could never be admitted.
    #[error(
        "a batch of {count} entries can never fit the append queue ({queue} entries); split it"
    )]
    LargerThanQueue {
        /// Entries in the batch.
        count: usize,
        /// The queue's capacity in entries.
        queue: usize,
    },
    /// The body could not be read.
    #[error("cannot read the body: {0}")]
    Unreadable(#[source] axum::extract::rejection::BytesRejection),
}

/// What does not exist (yet) (`not_found`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotFound {
    /// No route has this path.
    #[error("no such endpoint; see /openapi.json")]
    Endpoint,
    /// No checkpoint has been published since the server started.
    #[error("no checkpoint has been published yet")]
    NoCheckpointYet,
    /// No checkpoint of this size is in the history.
    #[error("no checkpoint of size {size} was published")]
    Checkpoint {
        /// The size asked for.
        size: u64,
    },
    /// No leaf with this hash in the tree of this size.
    #[error("leaf hash {} is not in the tree of size {size}", leaf_hash.to_base64())]
    LeafHash {
        /// The leaf hash asked for.
        leaf_hash: Hash,
        /// The tree size searched.
        size: u64,
    },
    /// No entry at this index.
    #[error("no entry {index}: the log has {size} entries")]
    Entry {
        /// The index asked for.
        index: u64,
        /// The number of committed entries.
        size: u64,
    },
    /// The record has no payload of that name.
    #[error("record {index} has no payload {name:?}")]
    Payload {
        /// The record's index.
        index: u64,
        /// The payload's name.
        name: String,
    },
    /// The server keeps no record indexes.
    #[error("this server keeps no record indexes, so it answers no queries")]
    NoRecordIndex,
    /// The server was started without `--archive-to`.
    #[error("this server archives nothing: start it with --archive-to <dir|s3://...>")]
    NoArchive,
    /// No legal hold in force was placed by the record at this index.
    #[error("no legal hold in force was placed at index {index}; GET /v1/admin/holds lists them")]
    Hold {
        /// The index asked for.
        index: u64,
    },
    /// The entry is a raw entry, not an agent record.
    #[error("entry {index} is a raw entry, not a record; read it from /v1/entries/{index}")]
    NotARecord {
        /// The index asked for.
        index: u64,
    },
    /// The entry exists but the latest checkpoint does not cover it yet.
    #[error("entry {index} is not covered by the latest checkpoint (size {size}) yet")]
    NotCovered {
        /// The index asked for.
        index: u64,
        /// The latest checkpoint's size.
        size: u64,
    },
    /// The path after `/tile/` is not a canonical tile path.
    #[error("not a tile path: tile/{path}: {source}")]
    TilePath {
        /// The path after `tile/`.
        path: String,
        /// What is wrong with it.
        #[source]
        source: TileError,
    },
    /// The path after `/tile/` is not valid percent-encoded UTF-8.
    #[error("not a tile path: {0}")]
    TilePathEncoding(String),
    /// The tile is beyond the committed tree.
    #[error("{path} is beyond the tree")]
    TileBeyondTree {
        /// The tile path.
        path: String,
    },
}

/// An internal fault (`internal`): answered with a generic message, logged with its sources.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Internal {
    /// The ledger failed (storage, corruption).
    #[error("ledger: {0}")]
    Ledger(#[source] veritrail_ledger::Error),
    /// A task running part of the request panicked or was cancelled.
    #[error("{what} task failed: {source}")]
    Task {
        /// Which task.
        what: &'static str,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The committer thread stopped before answering.
    #[error("the committer stopped before answering")]
    CommitterStopped,
    /// The published checkpoint does not parse as a note (a bug or a corrupted store).
    #[error("published checkpoint does not parse: {0}")]
    PublishedCheckpoint(#[source] veritrail_ledger::note::NoteError),
    /// The payload store failed (a damaged or undecryptable file, an I/O error).
    #[error("payload store: {0}")]
    Payload(#[source] crate::payloads::PayloadError),
    /// A record the server builds itself (an erasure record) could not be encoded.
    #[error("server record: {0}")]
    Record(String),
    /// The system's random number generator failed.
    #[error("the system's random number generator failed: {0}")]
    Random(getrandom::Error),
    /// The committer answered with fewer indices than entries.
    #[error("empty append result")]
    EmptyResult,
}

/// Why [`crate::Server::start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The committer thread could not be spawned.
    #[error("cannot start the committer thread: {0}")]
    CommitterThread(#[source] std::io::Error),
    /// The witness policy cannot be used by this log.
    #[error("{0}")]
    Witnesses(#[source] crate::witnessing::WitnessSetupError),
    /// The archive location to re-serve cannot be used.
    #[error("--archive: {0}")]
    ArchiveSource(#[source] veritrail_objects::ObjectsError),
    /// The archive target cannot be used.
    #[error("--archive-to: {0}")]
    Archive(#[source] veritrail_objects::ObjectsError),
    /// The mirror's location cannot be used.
    #[error("--mirror: {0}")]
    Mirror(#[source] veritrail_objects::ObjectsError),
    /// The record indexer thread could not be spawned.
    #[error("cannot start the record indexer thread: {0}")]
    IndexerThread(#[source] std::io::Error),
    /// The idempotency journal could not be opened or read.
    #[error("cannot open the idempotency journal: {0}")]
    IdempotencyJournal(#[source] JournalError),
    /// The payload store could not be opened (or its master key read).
    #[error("cannot open the payload store: {0}")]
    Payloads(#[source] crate::payloads::PayloadError),
    /// The record indexes could not be opened.
    #[error("{0}")]
    RecordIndex(#[source] crate::record_index::IndexError),
    /// The classification registry could not be loaded.
    #[error("{0}")]
    Classification(#[source] crate::classification::RegistryFileError),
    /// The conversation chains could not be read from the log.
    #[error("cannot read the conversation chains from the log: {0}")]
    Chains(#[source] veritrail_ledger::Error),
    /// A setting the server cannot run with.
    #[error("invalid configuration: {0}")]
    Config(#[source] crate::config::ConfigError),
}

impl JournalError {
    /// Whether the journal could not be written because the disk is full.
    pub fn is_no_space(&self) -> bool {
        matches!(self, JournalError::Io { source, .. } if veritrail_ledger::error::is_no_space(source))
    }
}

impl ApiError {
    /// The answer to a request whose commit failed for a storage reason: 507 when the disk
    /// is full, 503 otherwise; both retryable and both mean nothing was appended.
    pub(crate) fn store_failure(no_space: bool) -> ApiError {
        if no_space {
            ApiError::InsufficientStorage { retry_after: 5 }
        } else {
            ApiError::StoreUnavailable { retry_after: 1 }
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::InvalidParameter { .. } => ErrorCode::InvalidParameter,
            ApiError::InvalidEntry(_) => ErrorCode::InvalidEntry,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden { .. } => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::IndexOutOfRange { .. } => ErrorCode::IndexOutOfRange,
            ApiError::SizeOutOfRange { .. } => ErrorCode::SizeOutOfRange,
            ApiError::IdempotencyConflict(_) => ErrorCode::IdempotencyConflict,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::Overloaded { .. } => ErrorCode::Overloaded,
            ApiError::ShuttingDown => ErrorCode::ShuttingDown,
            ApiError::IndexCatchingUp { .. } => ErrorCode::IndexCatchingUp,
            ApiError::Timeout => ErrorCode::Timeout,
            ApiError::WitnessQuorum { .. } => ErrorCode::WitnessQuorum,
            ApiError::InvalidRecord { .. } => ErrorCode::InvalidRecord,
            ApiError::ConversationClosed { .. } => ErrorCode::ConversationClosed,
            ApiError::PayloadErased { .. } => ErrorCode::PayloadErased,
            ApiError::Archived { .. } => ErrorCode::Archived,
            ApiError::InTheFuture { .. } => ErrorCode::InTheFuture,
            ApiError::UriTooLong { .. } => ErrorCode::UriTooLong,
            ApiError::HeadersTooLarge { .. } => ErrorCode::HeadersTooLarge,
            ApiError::Corrupted { .. } => ErrorCode::Corrupted,
            ApiError::StoreUnavailable { .. } => ErrorCode::StoreUnavailable,
            ApiError::InsufficientStorage { .. } => ErrorCode::InsufficientStorage,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The HTTP status for this error (the status of its [`code`](Self::code)).
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A parameter error.
    pub(crate) fn param(name: &'static str, message: impl Into<String>) -> Self {
        ApiError::InvalidParameter {
            name,
            message: message.into(),
        }
    }
}

impl From<veritrail_ledger::Error> for ApiError {
    fn from(err: veritrail_ledger::Error) -> Self {
        use veritrail_ledger::Error as E;
        match err {
            E::IndexOutOfRange { index, size } => ApiError::IndexOutOfRange { index, size },
            E::SizeOutOfRange { requested, current } => ApiError::SizeOutOfRange {
                requested,
                current,
                bound: SizeBound::Committed,
            },
            E::InvalidSizes { old, new } => ApiError::param(
                "old",
                format!("no consistency proof from size {old} to size {new}; need 0 < old <= size"),
            ),
            E::LeafNotFound { leaf_hash, size } => {
                ApiError::NotFound(NotFound::LeafHash { leaf_hash, size })
            }
            E::IndexBehind { indexed, size } => ApiError::IndexCatchingUp { indexed, size },
            E::EntryTooLarge { position, size } => {
                ApiError::InvalidEntry(InvalidEntry::TooLarge { position, size })
            }
            E::Corrupted { what } => ApiError::Corrupted { what },
            E::Purged {
                index,
                location,
                record,
            } => ApiError::Archived {
                index,
                location,
                record,
            },
            other => ApiError::Internal(Internal::Ledger(other)),
        }
    }
}

/// The error and its chain of sources, for the log.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // thiserror messages often embed their source already.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(detail = %chain(detail), "internal error");
                "internal server error; the detail is in the server log".to_owned()
            }
            ApiError::Corrupted { what } => {
                tracing::error!(%what, "refused to serve stored data that failed verification");
                self.to_string()
            }
            other => other.to_string(),
        };
        let problems = match &self {
            ApiError::InvalidRecord { problems } => problems.clone(),
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error: self.code(),
            message,
            problems,
        };
        let mut response = (status, axum::Json(body)).into_response();
        let retry_after = match self {
            ApiError::Overloaded { retry_after } => Some(retry_after),
            ApiError::IndexCatchingUp { .. } | ApiError::WitnessQuorum { .. } => Some(1),
            ApiError::StoreUnavailable { retry_after }
            | ApiError::InsufficientStorage { retry_after } => Some(retry_after),
            _ => None,
        };
        if let Some(retry_after) = retry_after
            && let Ok(value) = HeaderValue::from_str(&retry_after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        match self {
            // RFC 9110 section 15.5.2: a 401 names the scheme to authenticate with.
            ApiError::Unauthorized(Unauthenticated::NoValidToken) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // RFC 6750 section 3.1: a token that was presented and refused.
            ApiError::Unauthorized(Unauthenticated::Jwt(_)) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            _ => {}
        }
        if matches!(self, ApiError::ShuttingDown) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn internal_detail_keeps_its_sources_for_the_log() {
        let io = std::io::Error::other("disk on fire");
        let err = StartError::CommitterThread(io);
        assert_eq!(
            err.to_string(),
            "cannot start the committer thread: disk on fire"
        );
        assert!(std::error::Error::source(&err).is_some());
        let err = ApiError::from(Internal::CommitterStopped);
        assert_eq!(err.code(), ErrorCode::Internal);
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn messages_keep_their_documented_text() {
        let err = ApiError::from(NotFound::Entry { index: 99, size: 4 });
        assert_eq!(err.to_string(), "no entry 99: the log has 4 entries");
        let err = ApiError::from(InvalidEntry::Empty);
        assert_eq!(err.to_string(), "empty entry: an entry is 1 to 65535 bytes");
        let err = ApiError::from(InvalidEntry::TooLarge {
            position: 2,
            size: 70000,
        });
        assert_eq!(
            err.to_string(),
            "entry 2 is 70000 bytes; the maximum is 65535"
        );
        assert_eq!(
            ApiError::from(NotFound::Endpoint).to_string(),
            "no such endpoint; see /openapi.json"
        );
    }
}

/// Why the idempotency journal (`crate::idempotency::journal`) cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// Reading, writing, syncing or renaming failed.
    #[error("idempotency journal {path}: cannot {action}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the journal's magic `VTIDEMJ1`: it is not a journal (of
    /// this format).
    #[error("{path} is not an idempotency journal (format 1): it does not start with \"VTIDEMJ1\"")]
    NotAJournal {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The file is larger than the journal's size limit.
    #[error("idempotency journal {path} is {size} bytes; at most {max} are accepted")]
    TooLarge {
        /// The file.
        path: std::path::PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
}
