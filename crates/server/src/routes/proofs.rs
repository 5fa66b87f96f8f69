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
use crate::error::{ApiError, NotFound, SizeBound};
use crate::openapi::{AccessErrors, InternalError, LeafHash, ProofFlag, RawEntry, TimeoutError};
use crate::query::{Params, parse_u64, path_text};
use crate::routes::ledger::{b64, blocking, latest};
use crate::routes::reply::{IMMUTABLE, typed};

/// `GET /v1/proof/inclusion?index=<i>[&size=<n>]`
#[utoipa::path(
    get,
    path = "/v1/proof/inclusion",
    tag = "proofs",
    summary = "Inclusion proof of a leaf by index (RFC 9162 2.1.3)",
    description = "The audit path of leaf `index` in the tree of `size` leaves. Public: a proof \
holds hashes only. The lookup by leaf hash is `/v1/proof/inclusion/by-leaf-hash` (role `read`).",
    params(
        ("index" = u64, Query, example = 1,
            description = "Leaf index (canonical decimal), below `size`"),
        ("size" = Option<u64>, Query, minimum = 1, example = 600,
            description = "Tree size to prove against, at most the committed tree's; default: \
the latest published checkpoint's size"),
    ),
    responses(
        (status = 200, description = "The audit path, leaf's sibling first", body = InclusionProofResponse),
        (status = 400, description = "`invalid_parameter`: `index` missing, a non-canonical \
number, a parameter given twice, an unknown parameter (`leaf_hash` included: see \
`/v1/proof/inclusion/by-leaf-hash`), a query above 1024 bytes", body = ErrorBody),
        (status = 404, description = "`not_found`: no `size` given and no checkpoint \
published yet", body = ErrorBody),
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
    if names_leaf_hash(query.as_deref()) {
        return Err(ApiError::param(
            "leaf_hash",
            "look-ups by leaf hash are GET /v1/proof/inclusion/by-leaf-hash (role read)",
        ));
    }
    let params = Params::parse(query.as_deref(), &["index", "size"])?;
    let index = params
        .u64("index")?
        .ok_or_else(|| ApiError::param("index", "required"))?;
    let size = match params.u64("size")? {
        Some(size) => size,
        None => latest(&state)?.size(),
    };
    let proof = blocking(&state, move |l| l.inclusion_proof(index, size)).await?;
    Ok(Json(InclusionProofResponse {
        index,
        tree_size: size,
        proof: b64(&proof),
    }))
}

/// Whether the query names `leaf_hash`, which this route took until the lookup by leaf hash
/// moved to its own route (with its own role): such a request is told where it went.
fn names_leaf_hash(query: Option<&str>) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .any(|pair| pair.split('=').next() == Some("leaf_hash"))
}

/// `GET /v1/proof/inclusion/by-leaf-hash?leaf_hash=<b64>[&size=<n>]`
#[utoipa::path(
    get,
    path = "/v1/proof/inclusion/by-leaf-hash",
    tag = "proofs",
    summary = "Inclusion proof of the first leaf with a given leaf hash (RFC 9162 2.1.3)",
    description = "Finds the first leaf whose RFC 9162 leaf hash `SHA-256(0x00 || entry)` is \
`leaf_hash` in the tree of `size` leaves and returns its index and audit path. Role: `read` (or \
`audit`, `admin`), or none with `--public-read`: the answer tells whether an entry is in the log, \
so without a token it would confirm guesses of entry content (see docs/threat-model.md).",
    params(
        ("leaf_hash" = LeafHash, Query,
            description = "The leaf hash: 32 bytes in standard padded base64 (44 characters; \
`+` may be sent literally or as `%2B`)"),
        ("size" = Option<u64>, Query, minimum = 1, example = 600,
            description = "Tree size to search and prove against, at most the committed \
tree's; default: the latest published checkpoint's size"),
    ),
    responses(
        (status = 200, description = "The leaf's index and audit path, leaf's sibling first", body = InclusionProofResponse),
        (status = 400, description = "`invalid_parameter`: `leaf_hash` missing or not 32 bytes \
of standard base64, a non-canonical number, a parameter given twice, an unknown parameter, a \
query above 1024 bytes", body = ErrorBody),
        AccessErrors,
        (status = 404, description = "`not_found`: no leaf with that hash in the tree of that \
size, or no `size` given and no checkpoint published yet", body = ErrorBody),
        TimeoutError,
        (status = 422, description = "`size_out_of_range`: size beyond the committed tree", body = ErrorBody),
        InternalError,
        (status = 503, description = "`index_catching_up`: the leaf index is rebuilding after \
a restart and is too far behind to tell; never a wrong `not_found`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait: 1"))),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn inclusion_proof_by_leaf_hash(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<InclusionProofResponse>, ApiError> {
    // Before anything else: without the role nothing is parsed or looked up.
    state.auth.require_read(&headers)?;
    let params = Params::parse(query.as_deref(), &["leaf_hash", "size"])?;
    let hash = params
        .hash("leaf_hash")?
        .ok_or_else(|| ApiError::param("leaf_hash", "required"))?;
    let size = match params.u64("size")? {
        Some(size) => size,
        None => latest(&state)?.size(),
    };
    let (index, proof) =
        blocking(&state, move |l| l.inclusion_proof_by_leaf_hash(&hash, size)).await?;
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
    description = "From `old` to `size` (0 < old <= size <= the committed tree); empty when \
old == size. Public.",
    params(
        ("old" = u64, Query, minimum = 1, example = 1,
            description = "The old tree size (canonical decimal), at most `size`"),
        ("size" = Option<u64>, Query, minimum = 1, example = 600,
            description = "The new tree size, at most the committed tree's; default: the latest \
published checkpoint's size"),
    ),
    responses(
        (status = 200, description = "The proof", body = ConsistencyProofResponse),
        (status = 400, description = "`invalid_parameter`: `old` missing or 0, a non-canonical \
number, a parameter given twice, an unknown parameter, a query above 1024 bytes", body = ErrorBody),
        (status = 404, description = "`not_found`: no `size` given and no checkpoint \
published yet", body = ErrorBody),
        TimeoutError,
        (status = 422, description = "`size_out_of_range`: `size` beyond the committed tree, \
or `old` beyond `size`", body = ErrorBody),
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
        return Err(ApiError::SizeOutOfRange {
            requested: old,
            current: size,
            bound: SizeBound::NewSize,
        });
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
        ("index" = u64, Path, example = 0,
            description = "Leaf index (canonical decimal); entries beyond the log are 404"),
        ("proof" = Option<ProofFlag>, Query,
            description = "`1`, `true` or empty (`?proof`) for JSON with a proof; `0` or \
`false` for the raw bytes"),
    ),
    responses(
        (status = 200, description = "The entry", content(
            (RawEntry = "application/octet-stream"),
            (EntryWithProof = "application/json"),
        )),
        (status = 400, description = "`invalid_parameter`: a non-canonical index, a bad \
`proof` value, a parameter given twice, an unknown parameter", body = ErrorBody),
        AccessErrors,
        (status = 404, description = "`not_found`: no such entry, or (with `proof`) not covered \
by the latest checkpoint yet or none published", body = ErrorBody),
        (status = 410, description = "`archived`: archived and purged from this server; the \
message names the archive and the purge record", body = ErrorBody),
        TimeoutError,
        (status = 500, description = "`corrupted`: the stored entry does not hash to its leaf \
hash (it is not served, and `/readyz` fails); or `internal`: detail in the server log",
            body = ErrorBody),
    ),
    security(("bearer" = ["read"]))
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
        let bytes = crate::archive::entry(&state, index)
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
    let bytes = crate::archive::entry(&state, index).await?;
    let proof = blocking(&state, move |l| l.inclusion_proof(index, size)).await?;
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
        ("size" = u64, Path, example = 0,
            description = "Tree size (canonical decimal). A server signs a checkpoint of its \
tree at start, so a log first started empty always has the one of size 0"),
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
    security(("bearer" = ["audit"]))
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
