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
    let status = response.status();
    let status: metrics::SharedString = match status_label(status.as_u16()) {
        Some(label) => label.into(),
        None => status.as_u16().to_string().into(),
    };
    metrics::counter!(
        "veritrail_http_responses_total",
        "route" => route,
        "status" => status
    )
    .increment(1);
    response
}

/// The label of the statuses the server answers with, without an allocation per request.
fn status_label(status: u16) -> Option<&'static str> {
    Some(match status {
        200 => "200",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        413 => "413",
        414 => "414",
        415 => "415",
        422 => "422",
        431 => "431",
        500 => "500",
        503 => "503",
        507 => "507",
        _ => return None,
    })
}
