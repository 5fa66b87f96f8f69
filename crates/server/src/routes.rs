//! The HTTP handlers. Each one checks access first, parses its input strictly into validated
//! types, and answers JSON errors through [`ApiError`].

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use veritrail_ledger::bundle::{MAX_ENTRY_SIZE, decode_bundle};
use veritrail_ledger::note::Note;
use veritrail_ledger::receipt::Receipt;
use veritrail_ledger::tile::{TileId, TileKind};
use veritrail_ledger::{Hash, leaf_hash};

use crate::AppState;
use crate::auth::Role;
use crate::error::ApiError;
use crate::idempotency::{Claim, validate_key};
use crate::publisher::{Published, wait_for};
use crate::query::{Params, parse_u64};

/// Content type of a batch of entries, encoded like a C2SP entry bundle.
pub const BATCH_CONTENT_TYPE: &str = "application/x-veritrail-entries";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const TEXT: &str = "text/plain; charset=utf-8";
const BINARY: &str = "application/octet-stream";

/// A non-JSON response with its content type and, optionally, a cache policy.
fn typed(
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

/// Runs a ledger call on the blocking pool (proofs hash and read tiles from disk).
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&veritrail_ledger::Ledger) -> Result<T, veritrail_ledger::Error> + Send + 'static,
) -> Result<T, ApiError> {
    let ledger = state.ledger.clone();
    tokio::task::spawn_blocking(move || f(&ledger))
        .await
        .map_err(|e| ApiError::Internal(format!("ledger task failed: {e}")))?
        .map_err(ApiError::from)
}

fn b64(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(Hash::to_base64).collect()
}

fn latest(state: &AppState) -> Result<Published, ApiError> {
    state
        .published
        .borrow()
        .clone()
        .ok_or_else(|| ApiError::NotFound("no checkpoint has been published yet".into()))
}

/// One appended entry, as returned by `POST /v1/entries`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppendedEntry {
    /// The entry's index in the log.
    pub index: u64,
    /// RFC 6962 leaf hash of the entry, standard base64.
    pub leaf_hash: String,
    /// With `wait=published`: the signed checkpoint note covering the entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// With `wait=published`: the inclusion proof against that checkpoint, base64 hashes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inclusion_proof: Option<Vec<String>>,
    /// With `wait=published`: a `c2sp.org/tlog-proof@v1` receipt, verifiable offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
}

/// Whether the request's media type (parameters aside, case-insensitively) is
/// [`BATCH_CONTENT_TYPE`]. Decides both how the body is split and the shape of the answer.
fn is_batch(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(BATCH_CONTENT_TYPE))
        })
}

/// What an `Idempotency-Key` is bound to: the entries, each with its length, as a batch
/// encodes them. A raw entry and a batch of that one entry are the same request; the same
/// bytes read as a raw entry and as a batch are not.
fn fingerprint(entries: &[Bytes]) -> [u8; 32] {
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
fn parse_entries(body: &Bytes, batch: bool, max_batch: usize) -> Result<Vec<Bytes>, ApiError> {
    if !batch {
        if body.is_empty() {
            return Err(ApiError::InvalidEntry(
                "empty entry: an entry is 1 to 65535 bytes".into(),
            ));
        }
        if body.len() > MAX_ENTRY_SIZE {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_ENTRY_SIZE,
            });
        }
        return Ok(vec![body.clone()]);
    }
    let entries = decode_bundle(body, max_batch)
        .map_err(|e| ApiError::InvalidEntry(format!("malformed batch: {e}")))?;
    if entries.is_empty() {
        return Err(ApiError::InvalidEntry(format!(
            "empty batch: send 1 to {max_batch} entries"
        )));
    }
    if let Some(position) = entries.iter().position(|e| e.is_empty()) {
        return Err(ApiError::InvalidEntry(format!(
            "entry {position} of the batch is empty"
        )));
    }
    // Zero-copy: each entry is a slice of the body.
    Ok(entries.iter().map(|e| body.slice_ref(e)).collect())
}

/// Extractor that admits only callers with the `append` role. It runs before the body is
/// read, so an unauthorised client cannot make the server buffer a large body.
pub(crate) struct Appender;

impl axum::extract::FromRequestParts<AppState> for Appender {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        state
            .auth
            .require(&parts.headers, Role::Append)
            .map(|()| Appender)
    }
}

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
        ("wait" = Option<String>, Query, example = "published",
            description = "`published`: also wait for a signed checkpoint covering the entries \
and return it with an inclusion proof and a `c2sp.org/tlog-proof@v1` receipt per entry"),
        ("Idempotency-Key" = Option<String>, Header,
            description = "1 to 255 visible ASCII characters. A retry with the same key and \
entries gets the original indices instead of appending again; remembered in memory for \
`--idempotency-window` (default 24h), not across restarts"),
    ),
    request_body(
        description = "One raw entry, or a batch of length-prefixed entries",
        content(
            (crate::openapi::Binary = "application/octet-stream"),
            (crate::openapi::Binary = "application/x-veritrail-entries"),
        )
    ),
    responses(
        (status = 200, description = "Durable: an object for a raw entry, an array (one \
element per entry, in order) for a batch", body = crate::openapi::AppendResponse),
        (status = 400, description = "`invalid_parameter` (`wait`, `Idempotency-Key`, unknown \
query parameter) or `invalid_entry` (empty entry, malformed or empty batch, more than 4096 \
entries)", body = crate::openapi::ErrorResponse),
        (status = 401, description = "`unauthorized`: no, a malformed or an unknown bearer token", body = crate::openapi::ErrorResponse),
        (status = 403, description = "`forbidden`: the token lacks the role", body = crate::openapi::ErrorResponse),
        (status = 408, description = "`timeout`: not durable, or with `wait=published` not \
published, within `--request-timeout`", body = crate::openapi::ErrorResponse),
        (status = 409, description = "`idempotency_conflict`: the key was used with other \
entries", body = crate::openapi::ErrorResponse),
        (status = 413, description = "`payload_too_large`: body above `--max-body-bytes`, or a \
raw entry above 65535 bytes", body = crate::openapi::ErrorResponse),
        (status = 500, description = "`internal`: the commit failed; nothing of the batch was \
appended", body = crate::openapi::ErrorResponse),
        (status = 503, description = "`overloaded` (the append queue is full) or \
`shutting_down`; nothing was appended", body = crate::openapi::ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds to wait: 1 when overloaded, \
5 when shutting down"))),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn append(
    State(state): State<AppState>,
    _appender: Appender,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["wait"])?;
    let wait_published = match params.text("wait") {
        None => false,
        Some("published") => true,
        Some(other) => {
            return Err(ApiError::param(
                "wait",
                format!("{other:?} is not \"published\""),
            ));
        }
    };
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: state.config.limits.max_body_bytes,
        },
        _ => ApiError::InvalidEntry(format!("cannot read the body: {e}")),
    })?;
    let batch = is_batch(&headers);
    let entries = parse_entries(&body, batch, state.config.limits.max_batch_entries)?;
    let timeout = state.config.limits.request_timeout;

    let ticket = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = validate_key(value.as_bytes())?;
            let digest = fingerprint(&entries);
            match state
                .idempotency
                .claim_fingerprint(key, digest, timeout)
                .await?
            {
                Claim::Fresh(ticket) => Some(ticket),
                Claim::Replay(indices) => {
                    metrics::counter!("veritrail_append_replayed_total").increment(1);
                    return respond(&state, indices, &entries, batch, wait_published).await;
                }
            }
        }
    };
    let receiver = match state.sequencer.submit(entries.clone()) {
        Ok(receiver) => receiver,
        Err(err) => {
            if let Some(ticket) = ticket {
                ticket.finish(&state.idempotency, None);
            }
            return Err(err);
        }
    };
    // Record the outcome for the idempotency key in a task of its own: if this request is
    // dropped (client gone, timeout) after its entries were queued, they may still be
    // committed, and a retry must get those indices rather than append again.
    let recorder = {
        let state = state.clone();
        tokio::spawn(async move {
            let committed = receiver
                .await
                .map_err(|_| ApiError::Internal("the committer stopped before answering".into()))
                .and_then(|r| r);
            if let Some(ticket) = ticket {
                let indices = committed.as_ref().ok().map(|c| c.indices.clone());
                ticket.finish(&state.idempotency, indices);
            }
            committed
        })
    };
    let committed = recorder
        .await
        .map_err(|e| ApiError::Internal(format!("append task failed: {e}")))??;
    respond(&state, committed.indices, &entries, batch, wait_published).await
}

/// Builds the append response for entries committed at `indices`.
async fn respond(
    state: &AppState,
    indices: std::ops::Range<u64>,
    entries: &[Bytes],
    batch: bool,
    wait_published: bool,
) -> Result<Response, ApiError> {
    let mut out: Vec<AppendedEntry> = indices
        .clone()
        .zip(entries)
        .map(|(index, entry)| AppendedEntry {
            index,
            leaf_hash: leaf_hash(entry).to_base64(),
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
            state.config.limits.request_timeout,
        )
        .await
        .ok_or(ApiError::Timeout)?;
        let size = published.size();
        let note_text = String::from_utf8_lossy(&published.checkpoint.note).into_owned();
        let note = Note::from_bytes(&published.checkpoint.note)
            .map_err(|e| ApiError::Internal(format!("published checkpoint does not parse: {e}")))?;
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
    if batch {
        Ok(Json(out).into_response())
    } else {
        let single = out
            .pop()
            .ok_or_else(|| ApiError::Internal("empty append result".into()))?;
        Ok(Json(single).into_response())
    }
}

/// `GET /checkpoint`
#[utoipa::path(
    get,
    path = "/checkpoint",
    tag = "tlog-tiles",
    summary = "The latest signed checkpoint (C2SP tlog-checkpoint note)",
    description = "`<origin>\\n<tree size>\\n<base64 root>\\n\\n— <key name> <signature>\\n`. \
`Cache-Control: public, max-age=1`. Public.",
    responses(
        (status = 200, description = "The signed note", body = String,
            content_type = "text/plain; charset=utf-8"),
        (status = 404, description = "`not_found`: no checkpoint has been published yet", body = crate::openapi::ErrorResponse),
        (status = 408, description = "`timeout`: the request took longer than `--request-timeout`", body = crate::openapi::ErrorResponse),
        (status = 500, description = "`internal`: detail in the server log", body = crate::openapi::ErrorResponse),
    )
)]
pub(crate) async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let published = latest(&state)?;
    Ok(typed(
        TEXT,
        Some("public, max-age=1"),
        published.checkpoint.note.clone(),
    ))
}

/// `GET /tile/<L>/<N>[.p/<W>]` and `GET /tile/entries/<N>[.p/<W>]`
#[utoipa::path(
    get,
    path = "/tile/{path}",
    tag = "tlog-tiles",
    summary = "A hash tile or an entry bundle (C2SP tlog-tiles v0.1.0)",
    description = "Hash tiles `tile/<L>/<N>[.p/<W>]` are public; entry bundles \
`tile/entries/<N>[.p/<W>]` need `read` unless the server runs with `--public-read`. Full tiles \
are served `Cache-Control: public, max-age=31536000, immutable`, partial ones \
`public, max-age=60`.",
    params(
        ("path" = String, Path, example = "0/x001/x234/067.p/5",
            description = "The tile path after `/tile/` (its `/` are not percent-encoded): \
`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, N in 3-digit groups with `x` prefixes"),
    ),
    responses(
        (status = 200, description = "Hash tile: W (or 256) 32-byte hashes. Entry bundle: W \
(or 256) entries, each prefixed by its length as a big-endian u16", body = crate::openapi::Binary,
            content_type = "application/octet-stream"),
        (status = 401, description = "`unauthorized`: no, a malformed or an unknown bearer token", body = crate::openapi::ErrorResponse),
        (status = 403, description = "`forbidden`: the token lacks the role", body = crate::openapi::ErrorResponse),
        (status = 404, description = "`not_found`: not a canonical tile path, or beyond the \
committed tree", body = crate::openapi::ErrorResponse),
        (status = 408, description = "`timeout`: the request took longer than `--request-timeout`", body = crate::openapi::ErrorResponse),
        (status = 500, description = "`internal`: detail in the server log", body = crate::openapi::ErrorResponse),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn tile(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(path) = path.map_err(|e| ApiError::NotFound(format!("not a tile path: {e}")))?;
    let tile = TileId::from_path(&format!("tile/{path}"))
        .map_err(|e| ApiError::NotFound(format!("not a tile path: tile/{path}: {e}")))?;
    if tile.kind() == TileKind::Entries {
        state.auth.require_read(&headers)?;
    }
    let bytes = blocking(&state, move |ledger| ledger.read_tile(&tile))
        .await
        .map_err(|e| match e {
            ApiError::SizeOutOfRange { .. } => {
                ApiError::NotFound(format!("{} is beyond the tree", tile.path()))
            }
            other => other,
        })?;
    let cache = if tile.is_full() {
        IMMUTABLE
    } else {
        "public, max-age=60"
    };
    Ok(typed(BINARY, Some(cache), bytes))
}

/// An inclusion proof, as returned by `GET /v1/proof/inclusion`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InclusionProofResponse {
    /// The leaf index.
    pub index: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The audit path, leaf's sibling first, base64 hashes.
    pub proof: Vec<String>,
}

/// `GET /v1/proof/inclusion?index=<i>&size=<n>` or `?leaf_hash=<b64>&size=<n>`
#[utoipa::path(
    get,
    path = "/v1/proof/inclusion",
    tag = "proofs",
    summary = "Inclusion proof of a leaf, by index or by leaf hash (RFC 9162 2.1.3)",
    description = "Give exactly one of `index` and `leaf_hash`. Public.",
    params(
        ("index" = Option<u64>, Query, description = "Leaf index (canonical decimal)"),
        ("leaf_hash" = Option<String>, Query, description = "Leaf hash, standard base64 (`+` \
may be sent literally or as `%2B`); the first leaf with that hash is used"),
        ("size" = Option<u64>, Query, description = "Tree size to prove against; default: the \
latest published checkpoint's size"),
    ),
    responses(
        (status = 200, description = "The audit path, leaf's sibling first", body = InclusionProofResponse),
        (status = 400, description = "`invalid_parameter`: not exactly one of index and \
leaf_hash, a non-canonical number, a bad hash, an unknown parameter", body = crate::openapi::ErrorResponse),
        (status = 404, description = "`not_found`: no leaf with that hash in the tree of that \
size, or no `size` given and no checkpoint published yet", body = crate::openapi::ErrorResponse),
        (status = 408, description = "`timeout`: the request took longer than `--request-timeout`", body = crate::openapi::ErrorResponse),
        (status = 422, description = "`index_out_of_range` (index >= size) or \
`size_out_of_range` (size beyond the committed tree)", body = crate::openapi::ErrorResponse),
        (status = 500, description = "`internal`: detail in the server log", body = crate::openapi::ErrorResponse),
    )
)]
pub(crate) async fn inclusion_proof(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<InclusionProofResponse>, ApiError> {
    let params = Params::parse(query.as_deref(), &["index", "leaf_hash", "size"])?;
    let size = match params.u64("size")? {
        Some(size) => size,
        None => latest(&state)?.size(),
    };
    let (index, proof) = match (params.u64("index")?, params.hash("leaf_hash")?) {
        (Some(index), None) => (
            index,
            blocking(&state, move |l| l.inclusion_proof(index, size)).await?,
        ),
        (None, Some(hash)) => {
            blocking(&state, move |l| l.inclusion_proof_by_leaf_hash(&hash, size)).await?
        }
        _ => {
            return Err(ApiError::param(
                "query",
                "give exactly one of index or leaf_hash",
            ));
        }
    };
    Ok(Json(InclusionProofResponse {
        index,
        tree_size: size,
        proof: b64(&proof),
    }))
}

/// A consistency proof, as returned by `GET /v1/proof/consistency`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsistencyProofResponse {
    /// The old tree size.
    pub old: u64,
    /// The new tree size.
    pub tree_size: u64,
    /// The proof, base64 hashes.
    pub proof: Vec<String>,
}

/// `GET /v1/proof/consistency?old=<m>&size=<n>`
#[utoipa::path(
    get,
    path = "/v1/proof/consistency",
    tag = "proofs",
    summary = "Consistency proof between two tree sizes (RFC 9162 2.1.4)",
    description = "From `old` to `size` (0 < old <= size); empty when old == size. Public.",
    params(
        ("old" = u64, Query, description = "The old tree size (required, at least 1)"),
        ("size" = Option<u64>, Query, description = "The new tree size; default: the latest \
published checkpoint's size"),
    ),
    responses(
        (status = 200, description = "The proof", body = ConsistencyProofResponse),
        (status = 400, description = "`invalid_parameter`: `old` missing, 0 or larger than \
`size`, a non-canonical number, an unknown parameter", body = crate::openapi::ErrorResponse),
        (status = 404, description = "`not_found`: no `size` given and no checkpoint \
published yet", body = crate::openapi::ErrorResponse),
        (status = 408, description = "`timeout`: the request took longer than `--request-timeout`", body = crate::openapi::ErrorResponse),
        (status = 422, description = "`size_out_of_range`: size beyond the committed tree", body = crate::openapi::ErrorResponse),
        (status = 500, description = "`internal`: detail in the server log", body = crate::openapi::ErrorResponse),
    )
)]
pub(crate) async fn consistency_proof(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<ConsistencyProofResponse>, ApiError> {
    let params = Params::parse(query.as_deref(), &["old", "size"])?;
    let old = params
        .u64("old")?
        .ok_or_else(|| ApiError::param("old", "required"))?;
    let size = match params.u64("size")? {
        Some(size) => size,
        None => latest(&state)?.size(),
    };
    if old > size {
        return Err(ApiError::param(
            "old",
            format!("{old} is larger than size {size}"),
        ));
    }
    let proof = blocking(&state, move |l| l.consistency_proof(old, size)).await?;
    Ok(Json(ConsistencyProofResponse {
        old,
        tree_size: size,
        proof: b64(&proof),
    }))
}

/// An entry with its inclusion proof, as returned by `GET /v1/entries/<index>?proof=1`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntryWithProof {
    /// The leaf index.
    pub index: u64,
    /// The entry bytes, standard base64.
    pub entry: String,
    /// Its leaf hash, standard base64.
    pub leaf_hash: String,
    /// The size of the latest checkpoint the proof is against.
    pub tree_size: u64,
    /// The inclusion proof, base64 hashes.
    pub proof: Vec<String>,
    /// The latest signed checkpoint note.
    pub checkpoint: String,
}

/// `GET /v1/entries/<index>[?proof=1]`
#[utoipa::path(
    get,
    path = "/v1/entries/{index}",
    tag = "proofs",
    summary = "One entry: its bytes, or with `proof=1` JSON with an inclusion proof",
    description = "Without `proof` the raw entry bytes of any committed entry. With `proof=1` \
the entry (base64), its leaf hash, the latest signed checkpoint and the inclusion proof \
against it; the entry must be covered by that checkpoint. Role: `read` (or `audit`, `admin`), \
or none with `--public-read`.",
    params(
        ("index" = u64, Path, description = "Leaf index (canonical decimal)"),
        ("proof" = Option<bool>, Query, description = "`1`/`true` (or empty) for JSON with a \
proof; `0`/`false` for the raw bytes"),
    ),
    responses(
        (status = 200, description = "The entry", content(
            (crate::openapi::Binary = "application/octet-stream"),
            (EntryWithProof = "application/json"),
        )),
        (status = 400, description = "`invalid_parameter`: a non-canonical index, a bad \
`proof` value, an unknown parameter", body = crate::openapi::ErrorResponse),
        (status = 401, description = "`unauthorized`: no, a malformed or an unknown bearer token", body = crate::openapi::ErrorResponse),
        (status = 403, description = "`forbidden`: the token lacks the role", body = crate::openapi::ErrorResponse),
        (status = 404, description = "`not_found`: no such entry, or (with `proof`) not covered \
by the latest checkpoint yet or none published", body = crate::openapi::ErrorResponse),
        (status = 408, description = "`timeout`: the request took longer than `--request-timeout`", body = crate::openapi::ErrorResponse),
        (status = 500, description = "`internal`: detail in the server log", body = crate::openapi::ErrorResponse),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn entry(
    State(state): State<AppState>,
    headers: HeaderMap,
    index: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.auth.require_read(&headers)?;
    let params = Params::parse(query.as_deref(), &["proof"])?;
    let index = parse_u64("index", &path_text("index", index)?)?;
    let not_found = |e: ApiError| match e {
        ApiError::IndexOutOfRange { index, size } => {
            ApiError::NotFound(format!("no entry {index}: the log has {size} entries"))
        }
        other => other,
    };
    if !params.flag("proof")? {
        let bytes = blocking(&state, move |l| l.entry(index))
            .await
            .map_err(not_found)?;
        return Ok(typed(BINARY, None, bytes));
    }
    let published = latest(&state)?;
    let size = published.size();
    if index >= size {
        return Err(ApiError::NotFound(format!(
            "entry {index} is not covered by the latest checkpoint (size {size}) yet"
        )));
    }
    let (bytes, proof) = blocking(&state, move |l| {
        Ok((l.entry(index)?, l.inclusion_proof(index, size)?))
    })
    .await?;
    Ok(Json(EntryWithProof {
        index,
        leaf_hash: leaf_hash(&bytes).to_base64(),
        entry: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes),
        tree_size: size,
        proof: b64(&proof),
        checkpoint: String::from_utf8_lossy(&published.checkpoint.note).into_owned(),
    })
    .into_response())
}

/// `GET /v1/checkpoints/<size>`
#[utoipa::path(
    get,
    path = "/v1/checkpoints/{size}",
    tag = "proofs",
    summary = "The signed checkpoint of a given tree size, from the history",
    description = "Every checkpoint the log signed is kept, keyed by size; not every size has \
one. Served `Cache-Control: public, max-age=31536000, immutable`. Role: `audit` or `admin`.",
    params(
        ("size" = u64, Path, description = "Tree size (canonical decimal)"),
    ),
    responses(
        (status = 200, description = "The signed note", body = String,
            content_type = "text/plain; charset=utf-8"),
        (status = 400, description = "`invalid_parameter`: a non-canonical size", body = crate::openapi::ErrorResponse),
        (status = 401, description = "`unauthorized`: no, a malformed or an unknown bearer token", body = crate::openapi::ErrorResponse),
        (status = 403, description = "`forbidden`: the token lacks the role", body = crate::openapi::ErrorResponse),
        (status = 404, description = "`not_found`: no checkpoint of that size was signed", body = crate::openapi::ErrorResponse),
        (status = 408, description = "`timeout`: the request took longer than `--request-timeout`", body = crate::openapi::ErrorResponse),
        (status = 500, description = "`internal`: detail in the server log", body = crate::openapi::ErrorResponse),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn checkpoint_at(
    State(state): State<AppState>,
    headers: HeaderMap,
    size: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    state.auth.require(&headers, Role::Audit)?;
    let size = parse_u64("size", &path_text("size", size)?)?;
    let note = blocking(&state, move |l| l.checkpoint(size))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no checkpoint of size {size} was published")))?;
    Ok(typed(TEXT, Some(IMMUTABLE), note))
}

/// Health status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    pub status: &'static str,
    /// The committed tree size (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree_size: Option<u64>,
    /// The latest published checkpoint size (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_size: Option<u64>,
    /// Why the server is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /healthz`: the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness: the process is up",
    description = "Always `{\"status\":\"ok\"}`. Public.",
    responses(
        (status = 200, description = "Alive", body = Health),
    )
)]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        tree_size: None,
        published_size: None,
        reason: None,
    })
}

/// `GET /readyz`: the store is open and writable and a checkpoint is published.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: the store answers, a checkpoint is published, the last commit worked",
    description = "Public.",
    responses(
        (status = 200, description = "`ready`, with the committed and published tree sizes", body = Health),
        (status = 408, description = "`timeout`: the request took longer than `--request-timeout`", body = crate::openapi::ErrorResponse),
        (status = 503, description = "`unavailable`, with a `reason`: the store is not \
readable, no checkpoint is published yet, the server is shutting down, or the last commit \
failed", body = Health),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let probe = blocking(&state, |l| l.store().meta("origin")).await;
    let published = state.published.borrow().as_ref().map(Published::size);
    let reason = match (&probe, published) {
        (Err(e), _) => Some(format!("store not readable: {e}")),
        (_, None) => Some("no checkpoint published yet".into()),
        _ if state.sequencer.is_closed() => Some("shutting down".into()),
        _ if !state.sequencer.is_healthy() => Some("the last commit failed".into()),
        _ => None,
    };
    let tree_size = Some(state.ledger.tree_head().size);
    match reason {
        None => Json(Health {
            status: "ready",
            tree_size,
            published_size: published,
            reason: None,
        })
        .into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
                tree_size,
                published_size: published,
                reason: Some(reason),
            }),
        )
            .into_response(),
    }
}

/// `GET /metrics` (admin): Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (text exposition format 0.0.4)",
    description = "Role: `admin`.",
    responses(
        (status = 200, description = "The metrics", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "`unauthorized`: no, a malformed or an unknown bearer token", body = crate::openapi::ErrorResponse),
        (status = 403, description = "`forbidden`: the token lacks the role", body = crate::openapi::ErrorResponse),
        (status = 408, description = "`timeout`: the request took longer than `--request-timeout`", body = crate::openapi::ErrorResponse),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.auth.require(&headers, Role::Admin)?;
    if let Some(published) = state.published.borrow().as_ref() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        metrics::gauge!("veritrail_checkpoint_age_seconds")
            .set(now.saturating_sub(published.signed_at) as f64);
    }
    let text = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    Ok(typed("text/plain; version=0.0.4", None, text))
}

/// A path parameter's text; a segment that does not percent-decode to UTF-8 is a parameter
/// error (axum's own rejection is plain text, not the JSON error every endpoint answers).
fn path_text(
    name: &'static str,
    path: Result<Path<String>, PathRejection>,
) -> Result<String, ApiError> {
    path.map(|Path(text)| text)
        .map_err(|e| ApiError::param(name, e.body_text()))
}

/// Fallback for a known path with a method it does not take (axum adds `Allow`).
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Fallback for unknown paths.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see /openapi.json".into())
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
