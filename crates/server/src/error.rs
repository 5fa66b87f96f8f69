//! The server's error type and its one mapping to HTTP responses.
//!
//! Every error is JSON: `{"error": "<stable_code>", "message": "<human text>"}`. Caller faults
//! get a 4xx with a precise message; internal faults a generic 500, with the detail only in the
//! server log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

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
    #[error("{0}")]
    InvalidEntry(String),
    /// The body's content type is not one the endpoint accepts.
    #[error(
        "unsupported content type {0:?}; use application/octet-stream or application/x-veritrail-entries"
    )]
    UnsupportedMediaType(String),
    /// No valid bearer token was presented.
    #[error("missing or unknown bearer token")]
    Unauthorized,
    /// The token is valid but lacks the role the route needs.
    #[error("token {token:?} lacks the {needed} role")]
    Forbidden {
        /// The token's name.
        token: String,
        /// The role the route needs.
        needed: &'static str,
    },
    /// The resource does not exist (yet).
    #[error("{0}")]
    NotFound(String),
    /// An index is not below the tree size it is asked against.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// Requested index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// A tree size is beyond the current tree.
    #[error("tree size {requested} is beyond the current tree size {current}")]
    SizeOutOfRange {
        /// Requested size.
        requested: u64,
        /// Current tree size.
        current: u64,
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
    /// The request took longer than the server allows.
    #[error("the request timed out")]
    Timeout,
    /// An internal fault; the detail is logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidParameter { .. } | ApiError::InvalidEntry(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::IdempotencyConflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::IndexOutOfRange { .. } | ApiError::SizeOutOfRange { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Overloaded { .. } | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidParameter { .. } => "invalid_parameter",
            ApiError::InvalidEntry(_) => "invalid_entry",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::IndexOutOfRange { .. } => "index_out_of_range",
            ApiError::SizeOutOfRange { .. } => "size_out_of_range",
            ApiError::IdempotencyConflict(_) => "idempotency_conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Timeout => "timeout",
            ApiError::Internal(_) => "internal",
        }
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
            E::SizeOutOfRange { requested, current } => {
                ApiError::SizeOutOfRange { requested, current }
            }
            E::InvalidSizes { old, new } => ApiError::param(
                "old",
                format!("no consistency proof from size {old} to size {new}; need 0 < old <= size"),
            ),
            E::LeafNotFound { leaf_hash, size } => ApiError::NotFound(format!(
                "leaf hash {} is not in the tree of size {size}",
                leaf_hash.to_base64()
            )),
            E::EntryTooLarge { position, size } => ApiError::InvalidEntry(format!(
                "entry {position} is {size} bytes; the maximum is 65535"
            )),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(detail = %detail, "internal error");
                "internal server error; the detail is in the server log".to_owned()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: self.code(),
            message,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::Overloaded { retry_after } = self
            && let Ok(value) = HeaderValue::from_str(&retry_after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if matches!(self, ApiError::Unauthorized) {
            // RFC 9110 section 15.5.2: a 401 names the scheme to authenticate with.
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, ApiError::ShuttingDown) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
