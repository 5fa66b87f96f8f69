//! The HTTP handlers. Each one checks access first, parses its input strictly into validated
//! types, and answers JSON errors through [`ApiError`].

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
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

/// Splits a request body into validated entries.
fn parse_entries(
    headers: &HeaderMap,
    body: &Bytes,
    max_batch: usize,
) -> Result<Vec<Bytes>, ApiError> {
    let batch = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(BATCH_CONTENT_TYPE))
        });
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
        return Err(ApiError::InvalidEntry(
            "empty batch: send 1 to 4096 entries".into(),
        ));
    }
    if let Some(position) = entries.iter().position(|e| e.is_empty()) {
        return Err(ApiError::InvalidEntry(format!(
            "entry {position} of the batch is empty"
        )));
    }
    // Zero-copy: each entry is a slice of the body.
    Ok(entries.iter().map(|e| body.slice_ref(e)).collect())
}

/// `POST /v1/entries[?wait=published]`
pub(crate) async fn append(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.auth.require(&headers, Role::Append)?;
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
    let batch = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(BATCH_CONTENT_TYPE.as_bytes()));
    let entries = parse_entries(&headers, &body, state.config.limits.max_batch_entries)?;
    let timeout = state.config.limits.request_timeout;

    let ticket = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = validate_key(value.as_bytes())?;
            match state.idempotency.claim(key, &body, timeout).await? {
                Claim::Fresh(ticket) => Some(ticket),
                Claim::Replay(indices) => {
                    metrics::counter!("veritrail_append_replayed_total").increment(1);
                    return respond(&state, indices, &entries, batch, wait_published).await;
                }
            }
        }
    };
    let receiver = state.sequencer.submit(entries.clone());
    let committed = match receiver {
        Ok(receiver) => receiver
            .await
            .map_err(|_| ApiError::Internal("the committer stopped before answering".into()))
            .and_then(|r| r),
        Err(e) => Err(e),
    };
    match committed {
        Ok(committed) => {
            if let Some(ticket) = ticket {
                ticket.finish(&state.idempotency, Some(committed.indices.clone()));
            }
            respond(&state, committed.indices, &entries, batch, wait_published).await
        }
        Err(err) => {
            if let Some(ticket) = ticket {
                ticket.finish(&state.idempotency, None);
            }
            Err(err)
        }
    }
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
pub(crate) async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let published = latest(&state)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=1"),
            ),
        ],
        Body::from(published.checkpoint.note.clone()),
    )
        .into_response())
}

/// `GET /tile/<L>/<N>[.p/<W>]` and `GET /tile/entries/<N>[.p/<W>]`
pub(crate) async fn tile(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
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
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        bytes,
    )
        .into_response())
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
pub(crate) async fn entry(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(index): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.auth.require_read(&headers)?;
    let params = Params::parse(query.as_deref(), &["proof"])?;
    let index = parse_u64("index", &index)?;
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
        return Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )],
            bytes,
        )
            .into_response());
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
pub(crate) async fn checkpoint_at(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(size): Path<String>,
) -> Result<Response, ApiError> {
    state.auth.require(&headers, Role::Audit)?;
    let size = parse_u64("size", &size)?;
    let note = blocking(&state, move |l| l.checkpoint(size))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no checkpoint of size {size} was published")))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
        ],
        note,
    )
        .into_response())
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
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        tree_size: None,
        published_size: None,
        reason: None,
    })
}

/// `GET /readyz`: the store is open and writable and a checkpoint is published.
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
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response())
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
