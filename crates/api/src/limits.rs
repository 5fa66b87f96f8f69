//! Sizes and counts the server enforces and the client relies on.
//!
//! Entry sizes (1 to 65535 bytes) come from the C2SP entry bundle framing and live in
//! `veritrail_ledger::bundle::MAX_ENTRY_SIZE`; the limits here are the API's own.

/// Default and largest useful number of entries in one batch append: a batch is answered
/// with one JSON object per entry, and 4096 receipts (about 1 KiB each) keep an answer near
/// 4 MiB. The server's `--max-batch-entries` defaults to this.
pub const MAX_BATCH_ENTRIES: usize = 4096;

/// Longest `Idempotency-Key`: 255 visible ASCII characters, enough for any UUID or hash in
/// text form while bounding what the server remembers per key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Largest JSON answer a client accepts: a batch of [`MAX_BATCH_ENTRIES`] answers with
/// receipts is about 4 MiB, so 16 MiB leaves room without letting a hostile server make the
/// client buffer without bound.
pub const MAX_JSON_RESPONSE: usize = 16 << 20;

/// Largest error body a client reads: an [`crate::ErrorBody`] is well under 1 KiB.
pub const MAX_ERROR_RESPONSE: usize = 64 << 10;

/// Default largest request body the server reads (`--max-body-bytes`): a full batch of
/// [`MAX_BATCH_ENTRIES`] entries of 4 KiB with their length prefixes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;
