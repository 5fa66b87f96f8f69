//! Request bodies of `POST /v1/entries`: one raw entry, or a batch framed like a C2SP entry
//! bundle; and the fingerprint an `Idempotency-Key` is bound to.

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use veritrail_ledger::bundle::{MAX_ENTRY_SIZE, decode_bundle};
use veritrail_records::is_record;

use crate::error::{ApiError, InvalidEntry};

/// Whether the request's media type (parameters aside, case-insensitively) is
/// [`veritrail_api::media::BATCH_CONTENT_TYPE`]. Decides both how the body is split and the
/// shape of the answer.
pub(crate) fn is_batch(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(veritrail_api::media::is_batch)
}

/// What an `Idempotency-Key` is bound to: the entries, each with its length, as a batch
/// encodes them. A raw entry and a batch of that one entry are the same request; the same
/// bytes read as a raw entry and as a batch are not.
pub(crate) fn fingerprint(entries: &[Bytes]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for entry in entries {
        // `parse_entries` admits only entries of 1 to 65535 bytes: the length always fits.
        let len = u16::try_from(entry.len()).unwrap_or(u16::MAX);
        hasher.update(len.to_be_bytes());
        hasher.update(entry);
    }
    hasher.finalize().into()
}

/// Splits a request body into validated entries.
///
/// # Errors
/// [`InvalidEntry`] for an empty entry, a malformed or empty batch or an empty entry in it;
/// [`ApiError::PayloadTooLarge`] for a raw entry above [`MAX_ENTRY_SIZE`].
pub(crate) fn parse_entries(
    body: &Bytes,
    batch: bool,
    max_batch: usize,
) -> Result<Vec<Bytes>, ApiError> {
    if !batch {
        if body.is_empty() {
            return Err(InvalidEntry::Empty.into());
        }
        if body.len() > MAX_ENTRY_SIZE {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_ENTRY_SIZE,
            });
        }
        if is_record(body) {
            return Err(InvalidEntry::RecordMarker { position: 0 }.into());
        }
        return Ok(vec![body.clone()]);
    }
    let entries = decode_bundle(body, max_batch).map_err(InvalidEntry::MalformedBatch)?;
    if entries.is_empty() {
        return Err(InvalidEntry::EmptyBatch { max: max_batch }.into());
    }
    if let Some(position) = entries.iter().position(|e| e.is_empty()) {
        return Err(InvalidEntry::EmptyInBatch { position }.into());
    }
    if let Some(position) = entries.iter().position(|e| is_record(e)) {
        return Err(InvalidEntry::RecordMarker { position }.into());
    }
    // Zero-copy: each entry is a slice of the body.
    Ok(entries.iter().map(|e| body.slice_ref(e)).collect())
}

/// A JSON request body; an unreadable or non-JSON one is `400 invalid_entry`.
///
/// # Errors
/// [`ApiError::InvalidEntry`].
pub(crate) fn json(
    body: Result<bytes::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<serde_json::Value, crate::error::ApiError> {
    use crate::error::{ApiError, InvalidEntry};
    json_bytes(&body.map_err(|e| ApiError::InvalidEntry(InvalidEntry::Unreadable(e)))?)
}

/// The JSON of a body already read; not JSON is `400 invalid_entry`.
///
/// # Errors
/// [`ApiError::InvalidEntry`].
pub(crate) fn json_bytes(body: &[u8]) -> Result<serde_json::Value, crate::error::ApiError> {
    use crate::error::{ApiError, InvalidEntry};
    serde_json::from_slice(body).map_err(|e| {
        ApiError::InvalidEntry(InvalidEntry::NotJson {
            message: e.to_string(),
        })
    })
}
