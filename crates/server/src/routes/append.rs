//! `POST /v1/entries`: durable appends, optionally waiting for a signed checkpoint.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use veritrail_api::media::{IDEMPOTENCY_KEY_HEADER, WAIT_PUBLISHED};
use veritrail_api::{AppendResponse, AppendedEntry, ErrorBody};
use veritrail_ledger::note::Note;
use veritrail_ledger::receipt::Receipt;
use veritrail_ledger::{Hash, leaf_hash};

use crate::AppState;
use crate::auth::Appender;
use crate::body::{fingerprint, is_batch, parse_entries};
use crate::error::{ApiError, Internal, InvalidEntry};
use crate::idempotency::{Claim, Fingerprint, Keyed, Scope, Ticket, validate_key};
use crate::sequencer::Committed;

/// What the sequencer answers a queued request on.
type CommitReceiver = tokio::sync::oneshot::Receiver<Result<Committed, ApiError>>;
use crate::openapi::{AccessErrors, EntryBatch, RawEntry, WaitFor};
use crate::publisher::wait_for;
use crate::query::Params;
use crate::routes::ledger::{b64, blocking};

/// `POST /v1/entries[?wait=published]`
#[utoipa::path(
    post,
    path = "/v1/entries",
    tag = "append",
    summary = "Append one entry or a batch, answered once durable",
    description = "Concurrent requests share one durable commit (group commit). With \
`Content-Type: application/x-veritrail-entries` the body is a batch encoded like a C2SP entry \
bundle: each entry prefixed by its length as a big-endian u16, 1 to 4096 entries of 1 to 65535 \
bytes, answered with an array. Any other content type (use `application/octet-stream`) is one \
raw entry of 1 to 65535 bytes, answered with one object. Role: `append`.",
    params(
        ("wait" = Option<WaitFor>, Query,
            description = "`published`: also wait for a signed checkpoint covering the entries \
and return it with an inclusion proof and a `c2sp.org/tlog-proof@v1` receipt per entry"),
        ("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]{1,255}$", min_length = 1,
            max_length = 255, example = "7f3c9a1e-run-42",
            description = "1 to 255 visible ASCII characters (0x21 to 0x7E). A retry with the \
same key and entries gets the original indices instead of appending again; the same key with \
other entries is 409. Keys are scoped per token; remembered for `--idempotency-window` \
(default 24h) within `--idempotency-budget` (default 64 MiB, oldest forgotten first), and \
across restarts: the outcome is durable before the append is acknowledged"),
    ),
    request_body(
        description = "One raw entry, or a batch of length-prefixed entries. The body is at \
most `--max-body-bytes` (default 16 MiB)",
        content(
            (RawEntry = "application/octet-stream"),
            (EntryBatch = "application/x-veritrail-entries"),
        )
    ),
    responses(
        (status = 200, description = "Durable: an object for a raw entry, an array (one \
element per entry, in order) for a batch", body = AppendResponse),
        (status = 400, description = "`invalid_parameter` (`wait`, `Idempotency-Key`, unknown \
query parameter) or `invalid_entry` (empty entry, malformed or empty batch, more than 4096 \
entries)", body = ErrorBody),
        AccessErrors,
        (status = 408, description = "`timeout`: not durable, or with `wait=published` not \
published, within `--request-timeout`", body = ErrorBody),
        (status = 409, description = "`idempotency_conflict`: the key was used by this token \
with other entries", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: body above `--max-body-bytes`, or a \
raw entry above 65535 bytes", body = ErrorBody),
        (status = 500, description = "`internal`: the commit failed; nothing of the batch was \
appended", body = ErrorBody),
        (status = 503, description = "`overloaded` (the append queue is full) or \
`shutting_down`; nothing was appended", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait: 1 when overloaded, \
5 when shutting down"))),
    ),
    security(("bearer" = ["append"]))
)]
pub(crate) async fn append(
    State(state): State<AppState>,
    _appender: Appender,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["wait"])?;
    let wait_published = wait_published(&params)?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: state.config.limits.max_body_bytes,
        },
        _ => InvalidEntry::Unreadable(e).into(),
    })?;
    let batch = is_batch(&headers);
    let entries = parse_entries(&body, batch, state.config.limits.max_batch_entries)?;
    let digest = || Ok(Fingerprint::Entries(fingerprint(&entries)));
    let ticket = match claim_key(&state, &headers, digest).await? {
        Keying::Replay(indices) => {
            let hashes: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
            return respond(&state, indices, &hashes, batch, wait_published).await;
        }
        Keying::Fresh(ticket) => ticket,
    };
    let count = entries.len();
    let committed = commit(
        &state,
        ticket,
        |keyed| state.sequencer.submit_keyed(entries, keyed),
        "append",
    )
    .await?;
    if committed.leaf_hashes.len() != count {
        return Err(Internal::EmptyResult.into());
    }
    respond(
        &state,
        committed.indices,
        &committed.leaf_hashes,
        batch,
        wait_published,
    )
    .await
}

/// What the request's `Idempotency-Key` decided.
pub(crate) enum Keying {
    /// Append (with the key's ticket, if the request has a key).
    Fresh(Option<Ticket>),
    /// A retry: answer with what the first request appended at these indices.
    Replay(std::ops::Range<u64>),
}

/// Claims the request's `Idempotency-Key`, if it has one, for the body whose fingerprint
/// `digest` computes (only called when there is a key).
///
/// # Errors
/// `invalid_parameter` for a malformed key; `idempotency_conflict`; a timeout waiting for a
/// concurrent first request; `digest`'s error.
pub(crate) async fn claim_key(
    state: &AppState,
    headers: &HeaderMap,
    digest: impl FnOnce() -> Result<Fingerprint, ApiError>,
) -> Result<Keying, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(Keying::Fresh(None));
    };
    let key = validate_key(value.as_bytes())?;
    let scope = Scope::of_request(headers, state.config.no_auth);
    let timeout = state.config.limits.request_timeout;
    match state
        .idempotency
        .claim(&scope, key, digest()?, timeout)
        .await?
    {
        Claim::Fresh(ticket) => Ok(Keying::Fresh(Some(ticket))),
        Claim::Replay(indices) => {
            metrics::counter!("veritrail_append_replayed_total").increment(1);
            Ok(Keying::Replay(indices))
        }
    }
}

/// Queues a request with `submit` and waits for its commit. With a key's `ticket`, the
/// outcome is recorded for the key in a task of its own: if this request is dropped (client
/// gone, timeout) after it was queued, it may still be committed, and a retry must get those
/// indices rather than append again. A request refused at the queue frees its key.
///
/// # Errors
/// The queue's refusals (`overloaded`, `shutting_down`, ...) and the commit's errors.
pub(crate) async fn commit(
    state: &AppState,
    ticket: Option<Ticket>,
    submit: impl FnOnce(Option<Keyed>) -> Result<CommitReceiver, ApiError>,
    what: &'static str,
) -> Result<Committed, ApiError> {
    let receiver = match submit(ticket.as_ref().map(Ticket::keyed)) {
        Ok(receiver) => receiver,
        Err(err) => {
            if let Some(ticket) = ticket {
                ticket.finish(&state.idempotency, None);
            }
            return Err(err);
        }
    };
    let committed = async move {
        receiver
            .await
            .map_err(|_| ApiError::from(Internal::CommitterStopped))
            .and_then(|r| r)
    };
    match ticket {
        // Without a key nothing outlives the request: wait for the commit right here.
        None => committed.await,
        Some(ticket) => {
            let state = state.clone();
            tokio::spawn(async move {
                let committed = committed.await;
                let indices = committed.as_ref().ok().map(|c| c.indices.clone());
                ticket.finish(&state.idempotency, indices);
                committed
            })
            .await
            .map_err(|source| Internal::Task { what, source })?
        }
    }
}

/// Builds the append response for entries with leaf hashes `hashes` committed at `indices`.
async fn respond(
    state: &AppState,
    indices: std::ops::Range<u64>,
    hashes: &[Hash],
    batch: bool,
    wait_published: bool,
) -> Result<Response, ApiError> {
    let mut out = appended(state, indices, hashes, wait_published).await?;
    if batch {
        Ok(Json(out).into_response())
    } else {
        let single = out.pop().ok_or(Internal::EmptyResult)?;
        Ok(Json(single).into_response())
    }
}

/// The answer for each entry with leaf hash in `hashes` committed at `indices`; with
/// `wait_published`, once a signed checkpoint covers them, with its note, inclusion proofs
/// and receipts.
///
/// # Errors
/// [`ApiError::Timeout`] if no checkpoint covers them within the request timeout ([`ApiError::WitnessQuorum`] if a witness quorum is what is missing); ledger
/// errors building the proofs.
pub(crate) async fn appended(
    state: &AppState,
    indices: std::ops::Range<u64>,
    hashes: &[Hash],
    wait_published: bool,
) -> Result<Vec<AppendedEntry>, ApiError> {
    let mut out: Vec<AppendedEntry> = indices
        .clone()
        .zip(hashes)
        .map(|(index, hash)| AppendedEntry {
            index,
            leaf_hash: hash.to_base64(),
            checkpoint: None,
            inclusion_proof: None,
            receipt: None,
        })
        .collect();
    if wait_published {
        let mut receiver = state.published.clone();
        let published = wait_for(
            &mut receiver,
            indices.end,
            // A tenth before the request's own deadline, so the answer can say why.
            state.config.limits.request_timeout - state.config.limits.request_timeout / 10,
        )
        .await
        .ok_or_else(|| {
            // Fail-closed on a witness quorum: say which witnesses are missing.
            let missing = state
                .witnesses
                .as_ref()
                .map(|w| w.missing())
                .unwrap_or_default();
            if missing.is_empty() {
                ApiError::Timeout
            } else {
                ApiError::WitnessQuorum { missing }
            }
        })?;
        let size = published.size();
        let note_text = String::from_utf8_lossy(&published.checkpoint.note).into_owned();
        let note =
            Note::from_bytes(&published.checkpoint.note).map_err(Internal::PublishedCheckpoint)?;
        let wanted = indices.clone();
        let proofs = blocking(state, move |ledger| {
            wanted
                .map(|index| ledger.inclusion_proof(index, size))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        for (item, proof) in out.iter_mut().zip(proofs) {
            let receipt = Receipt {
                extra: None,
                index: item.index,
                proof: proof.clone(),
                checkpoint: note.clone(),
            };
            item.receipt = Some(String::from_utf8_lossy(&receipt.to_bytes()).into_owned());
            item.inclusion_proof = Some(b64(&proof));
            item.checkpoint = Some(note_text.clone());
        }
    }
    Ok(out)
}

/// Parses the `wait` parameter: absent, or `published`.
pub(crate) fn wait_published(params: &Params) -> Result<bool, ApiError> {
    match params.text("wait") {
        None => Ok(false),
        Some(WAIT_PUBLISHED) => Ok(true),
        Some(other) => Err(ApiError::param(
            "wait",
            format!("{other:?} is not \"published\""),
        )),
    }
}
