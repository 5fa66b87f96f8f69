//! Entries, proofs and the checkpoint history, as JSON (or raw entry bytes).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use veritrail_api::media::{BINARY_CONTENT_TYPE, NOTE_CONTENT_TYPE};
use veritrail_api::{ConsistencyProofResponse, EntryWithProof, ErrorBody, InclusionProofResponse};
use veritrail_ledger::leaf_hash;

use crate::AppState;
use crate::auth::Role;
use crate::error::{ApiError, NotFound};
use crate::openapi::{AccessErrors, Binary, InternalError, TimeoutError};
use crate::query::{Params, parse_u64, path_text};
use crate::routes::ledger::{b64, blocking, latest};
use crate::routes::reply::{IMMUTABLE, typed};

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
leaf_hash, a non-canonical number, a bad hash, an unknown parameter", body = ErrorBody),
        (status = 404, description = "`not_found`: no leaf with that hash in the tree of that \
size, or no `size` given and no checkpoint published yet", body = ErrorBody),
        TimeoutError,
        (status = 422, description = "`index_out_of_range` (index >= size) or \
`size_out_of_range` (size beyond the committed tree)", body = ErrorBody),
        InternalError,
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
`size`, a non-canonical number, an unknown parameter", body = ErrorBody),
        (status = 404, description = "`not_found`: no `size` given and no checkpoint \
published yet", body = ErrorBody),
        TimeoutError,
        (status = 422, description = "`size_out_of_range`: size beyond the committed tree", body = ErrorBody),
        InternalError,
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

/// `GET /v1/entries/<index>[?proof=1]`
#[utoipa::path(
    get,
    path = "/v1/entries/{index}",
    tag = "proofs",
    summary = "One entry: its bytes, or with `proof=1` JSON with an inclusion proof",
    description = "Without `proof` the raw entry bytes of any committed entry. With `proof=1` \
the entry (base64), its leaf hash, the latest signed checkpoint and the inclusion proof \
against it; the entry must be covered by that checkpoint. The stored entry is checked against \
its leaf hash in the level-0 tile before it is served: one that does not match is never \
served (500 `corrupted`). Role: `read` (or `audit`, `admin`), or none with `--public-read`.",
    params(
        ("index" = u64, Path, description = "Leaf index (canonical decimal)"),
        ("proof" = Option<bool>, Query, description = "`1`/`true` (or empty) for JSON with a \
proof; `0`/`false` for the raw bytes"),
    ),
    responses(
        (status = 200, description = "The entry", content(
            (Binary = "application/octet-stream"),
            (EntryWithProof = "application/json"),
        )),
        (status = 400, description = "`invalid_parameter`: a non-canonical index, a bad \
`proof` value, an unknown parameter", body = ErrorBody),
        AccessErrors,
        (status = 404, description = "`not_found`: no such entry, or (with `proof`) not covered \
by the latest checkpoint yet or none published", body = ErrorBody),
        TimeoutError,
        (status = 500, description = "`corrupted`: the stored entry does not hash to its leaf \
hash (it is not served, and `/readyz` fails); or `internal`: detail in the server log",
            body = ErrorBody),
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
            ApiError::NotFound(NotFound::Entry { index, size })
        }
        other => other,
    };
    if !params.flag("proof")? {
        let bytes = blocking(&state, move |l| l.entry(index))
            .await
            .map_err(not_found)?;
        return Ok(typed(BINARY_CONTENT_TYPE, None, bytes));
    }
    let published = latest(&state)?;
    let size = published.size();
    if index >= size {
        return Err(NotFound::NotCovered { index, size }.into());
    }
    // `Ledger::entry` checked the bytes against the stored leaf hash: the leaf hash below is
    // that one, never one computed from forged bytes.
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
    description = "Checkpoints the log signed, keyed by size: every one from the last hour, \
then the first of each minute for 7 days, then the first of each hour (plus the latest and any \
pinned one); not every size has one. Served `Cache-Control: public, max-age=31536000, immutable`. Role: `audit` or `admin`.",
    params(
        ("size" = u64, Path, description = "Tree size (canonical decimal)"),
    ),
    responses(
        (status = 200, description = "The signed note", body = String,
            content_type = "text/plain; charset=utf-8"),
        (status = 400, description = "`invalid_parameter`: a non-canonical size", body = ErrorBody),
        AccessErrors,
        (status = 404, description = "`not_found`: no checkpoint of that size was signed", body = ErrorBody),
        TimeoutError,
        InternalError,
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
        .ok_or(NotFound::Checkpoint { size })?;
    Ok(typed(NOTE_CONTENT_TYPE, Some(IMMUTABLE), note))
}
