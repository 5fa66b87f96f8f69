//! Non-JSON responses: a body with its content type and cache policy.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Cache policy of what never changes: full tiles, checkpoints of the history.
pub(crate) const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A non-JSON response with its content type and, optionally, a cache policy.
pub(crate) fn typed(
    content_type: &'static str,
    cache: Option<&'static str>,
    body: impl Into<Body>,
) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(cache) = cache {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    response
}
