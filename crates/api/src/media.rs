//! Content types and header names of the API.

/// Content type of a batch append: entries framed like a C2SP entry bundle, each prefixed
/// by its length as a big-endian `u16`. Any other content type on `POST /v1/entries` is one
/// raw entry.
pub const BATCH_CONTENT_TYPE: &str = "application/x-veritrail-entries";

/// Content type of one raw entry (an append body, `GET /v1/entries/{index}`) and of tiles
/// and entry bundles.
pub const BINARY_CONTENT_TYPE: &str = "application/octet-stream";

/// Content type of a signed checkpoint note (`GET /checkpoint`, `GET /v1/checkpoints/{size}`).
pub const NOTE_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Content type of `GET /metrics` (Prometheus text exposition format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Header that makes an append safe to retry (see [`crate::limits::MAX_IDEMPOTENCY_KEY_LEN`]).
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// The `wait` query value that makes an append wait for a signed checkpoint.
pub const WAIT_PUBLISHED: &str = "published";

/// Whether a `Content-Type` value names [`BATCH_CONTENT_TYPE`], parameters aside and
/// case-insensitively (RFC 9110 section 8.3.1). Decides both how an append body is split and
/// the shape of the answer (an array for a batch).
///
/// ```
/// use veritrail_api::media::is_batch;
/// assert!(is_batch("Application/X-Veritrail-Entries; charset=binary"));
/// assert!(!is_batch("application/octet-stream"));
/// ```
pub fn is_batch(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(BATCH_CONTENT_TYPE))
}
