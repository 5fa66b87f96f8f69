//! What wraps every route: the request timeout, the response counter, and the two
//! fallbacks (unknown path, known path with another method).

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, NotFound};

/// Fallback for a known path with a method it does not take (axum adds `Allow`).
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Fallback for unknown paths.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound(NotFound::Endpoint)
}

/// Bounds the whole request, body included, by the configured timeout.
pub(crate) async fn request_timeout(
    State(timeout): State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// Counts responses by route and status.
pub(crate) async fn count_status(
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = matched
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    metrics::counter!(
        "veritrail_http_responses_total",
        "route" => route,
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    response
}
