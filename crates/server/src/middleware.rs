//! What wraps every route: the early refusals (oversized target, headers or declared body),
//! the request timeout, the response counter, and the two fallbacks (unknown path, known
//! path with another method).

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

/// The limits [`frontline`] applies before a handler runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frontline {
    /// Longest a request may take, body included.
    pub(crate) timeout: Duration,
    /// Largest body; a larger declared `Content-Length` is refused before any body byte is
    /// read.
    pub(crate) max_body_bytes: usize,
    /// Largest request target, and largest header section (names and values, four bytes of
    /// separators each).
    pub(crate) max_header_bytes: usize,
}

/// Refuses what is too large before reading a body byte (target 414, headers 431, declared
/// `Content-Length` 413), bounds the rest of the request by the timeout (408), and counts
/// every response by route and status.
pub(crate) async fn frontline(
    State(limits): State<Frontline>,
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = matched
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = match refuse_early(&request, &limits) {
        Some(refusal) => refusal.into_response(),
        None => match tokio::time::timeout(limits.timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::Timeout.into_response(),
        },
    };
    count(route, response)
}

/// The refusal for a request whose target, headers or declared body are over the limits.
fn refuse_early(request: &axum::extract::Request, limits: &Frontline) -> Option<ApiError> {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if target > limits.max_header_bytes {
        return Some(ApiError::UriTooLong {
            limit: limits.max_header_bytes,
        });
    }
    let headers = request.headers();
    let header_bytes = headers.iter().fold(0usize, |sum, (name, value)| {
        sum.saturating_add(name.as_str().len() + value.len() + 4)
    });
    if header_bytes > limits.max_header_bytes {
        return Some(ApiError::HeadersTooLarge {
            limit: limits.max_header_bytes,
        });
    }
    // A Content-Length that is not a number is hyper's to refuse; here only the size.
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limits.max_body_bytes as u64 => Some(ApiError::PayloadTooLarge {
            limit: limits.max_body_bytes,
        }),
        _ => None,
    }
}

/// Counts `response` by route and status, and passes it on.
fn count(route: String, response: Response) -> Response {
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
