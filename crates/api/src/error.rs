//! The body of every error response and its stable codes.
//!
//! Every error answer is `{"error": "<code>", "message": "<human text>"}` (`docs/api.md`,
//! "Errors"). Programs match on the code, never on the message; for `internal` the message is
//! generic and the detail stays in the server log.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// The OpenAPI schema keeps the name it has always had in `/openapi.json`.
#[cfg_attr(feature = "openapi", schema(as = ErrorResponse, example = json!({
    "error": "index_out_of_range",
    "message": "leaf index 7 is out of range for tree size 3"
})))]
pub struct ErrorBody {
    /// Stable machine-readable code; match on this, not on the message.
    pub error: ErrorCode,
    /// Human-readable detail. For `internal` it is generic: the detail is in the server log.
    pub message: String,
    /// For `invalid_record`: every problem found, each naming its field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<FieldProblem>,
}

/// One problem with a submitted record (in an `invalid_record` answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldProblem {
    /// The field's path, e.g. `actor.type`, `details.a`, `[3].timestamp` (the record's
    /// position in an array request first).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

/// The stable error codes (the `error` field of an [`ErrorBody`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: a path or query parameter, or a header, is malformed.
    InvalidParameter,
    /// 400: the body is not a valid entry or entry batch.
    InvalidEntry,
    /// 415: the body's content type is not accepted (reserved: no route returns it today).
    UnsupportedMediaType,
    /// 401: no valid bearer token.
    Unauthorized,
    /// 403: the token lacks the role the route needs.
    Forbidden,
    /// 404: no such resource (yet).
    NotFound,
    /// 405: the path exists but does not take this method (the `Allow` header lists those
    /// it takes).
    MethodNotAllowed,
    /// 422: a leaf index is not below the tree size.
    IndexOutOfRange,
    /// 422: a tree size is beyond the current tree.
    SizeOutOfRange,
    /// 409: an `Idempotency-Key` was reused with a different body.
    IdempotencyConflict,
    /// 413: the body (or a single entry) is too large.
    PayloadTooLarge,
    /// 503 with `Retry-After`: the append queue is full.
    Overloaded,
    /// 503 with `Retry-After`: the server is shutting down.
    ShuttingDown,
    /// 503 with `Retry-After`: a lookup by leaf hash reached leaves the leaf index has not
    /// caught up with yet (after a restart that rebuilds it); never a wrong `not_found`.
    IndexCatchingUp,
    /// 503 with `Retry-After`: `wait=published` found no checkpoint covering the entries
    /// cosigned by the witness policy's quorum (the log is fail-closed); the entries are
    /// durable, and the message names the missing witnesses.
    WitnessQuorum,
    /// 408: the request took longer than the server allows.
    Timeout,
    /// 414: the request's target (path and query) is longer than the server reads.
    UriTooLong,
    /// 431: the request's header section is larger than the server reads.
    HeadersTooLarge,
    /// 500: stored data failed its check against the Merkle tree (an entry that does not hash
    /// to its leaf hash); the server never serves such bytes, logs the index and fails
    /// `/readyz`.
    Corrupted,
    /// 503 with `Retry-After`: the store cannot write (an I/O error other than a full disk);
    /// nothing was appended, the server is reopening the store.
    StoreUnavailable,
    /// 507 with `Retry-After`: the disk is full; nothing was appended. Appends succeed again
    /// once space is freed, without a restart.
    InsufficientStorage,
    /// 422: a record is invalid; `problems` names every field at fault.
    InvalidRecord,
    /// 409: a record names a conversation that already ended (`conversation_ended`).
    ConversationClosed,
    /// 422: a time that may not be in the future is (`until` of `POST /v1/admin/archive`:
    /// nothing is purged before it expires).
    InTheFuture,
    /// 410: the payload was destroyed by an erasure; the message names the erasure record.
    PayloadErased,
    /// 410: the entry was archived and purged from the primary store; the message names the
    /// archive's location and the purge record (C2SP tlog-tiles pruning).
    Archived,
    /// 500: an internal fault.
    Internal,
}

impl ErrorCode {
    /// Every code, in the order of the documentation.
    pub const ALL: [ErrorCode; 27] = [
        ErrorCode::InvalidParameter,
        ErrorCode::InvalidEntry,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::IndexOutOfRange,
        ErrorCode::SizeOutOfRange,
        ErrorCode::IdempotencyConflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Overloaded,
        ErrorCode::ShuttingDown,
        ErrorCode::IndexCatchingUp,
        ErrorCode::WitnessQuorum,
        ErrorCode::Timeout,
        ErrorCode::InvalidRecord,
        ErrorCode::ConversationClosed,
        ErrorCode::InTheFuture,
        ErrorCode::PayloadErased,
        ErrorCode::Archived,
        ErrorCode::UriTooLong,
        ErrorCode::HeadersTooLarge,
        ErrorCode::Corrupted,
        ErrorCode::StoreUnavailable,
        ErrorCode::InsufficientStorage,
        ErrorCode::Internal,
    ];

    /// The code as it appears on the wire, such as `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameter => "invalid_parameter",
            ErrorCode::InvalidEntry => "invalid_entry",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::IndexOutOfRange => "index_out_of_range",
            ErrorCode::SizeOutOfRange => "size_out_of_range",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::IndexCatchingUp => "index_catching_up",
            ErrorCode::WitnessQuorum => "witness_quorum",
            ErrorCode::Timeout => "timeout",
            ErrorCode::InvalidRecord => "invalid_record",
            ErrorCode::ConversationClosed => "conversation_closed",
            ErrorCode::InTheFuture => "in_the_future",
            ErrorCode::PayloadErased => "payload_erased",
            ErrorCode::Archived => "archived",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::Corrupted => "corrupted",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::InsufficientStorage => "insufficient_storage",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status the server answers with this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidParameter | ErrorCode::InvalidEntry => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Timeout => 408,
            ErrorCode::IdempotencyConflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::IndexOutOfRange | ErrorCode::SizeOutOfRange => 422,
            ErrorCode::InvalidRecord => 422,
            ErrorCode::ConversationClosed => 409,
            ErrorCode::PayloadErased | ErrorCode::Archived => 410,
            ErrorCode::InTheFuture => 422,
            ErrorCode::UriTooLong => 414,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::Internal | ErrorCode::Corrupted => 500,
            ErrorCode::Overloaded
            | ErrorCode::ShuttingDown
            | ErrorCode::IndexCatchingUp
            | ErrorCode::WitnessQuorum
            | ErrorCode::StoreUnavailable => 503,
            ErrorCode::InsufficientStorage => 507,
        }
    }

    /// Whether the same request may succeed later (`overloaded`, `shutting_down`,
    /// `index_catching_up`, `store_unavailable`, `insufficient_storage`, `timeout`): the
    /// server appended nothing, or the client may retry with its idempotency key.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Overloaded
                | ErrorCode::ShuttingDown
                | ErrorCode::IndexCatchingUp
                | ErrorCode::WitnessQuorum
                | ErrorCode::StoreUnavailable
                | ErrorCode::InsufficientStorage
                | ErrorCode::Timeout
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the [`ErrorCode`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownErrorCode;

impl fmt::Display for UnknownErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a Veritrail error code")
    }
}

impl std::error::Error for UnknownErrorCode {}

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    /// The code named `text` exactly (lower case, as on the wire).
    fn from_str(text: &str) -> Result<Self, UnknownErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == text)
            .ok_or(UnknownErrorCode)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde_and_parse_back() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
            assert!((400..600).contains(&code.status()), "{code}");
        }
        assert_eq!("Not_Found".parse::<ErrorCode>(), Err(UnknownErrorCode));
    }

    #[test]
    fn the_error_body_keeps_its_documented_shape() {
        let body = ErrorBody {
            error: ErrorCode::IndexOutOfRange,
            message: "leaf index 7 is out of range for tree size 3".into(),
            problems: Vec::new(),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":"index_out_of_range","message":"leaf index 7 is out of range for tree size 3"}"#
        );
    }
}
