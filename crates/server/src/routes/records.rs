//! Agent records: `POST /v1/records` (validated, attested, chained, canonical) and
//! `GET /v1/records/<index>` (the stored record with its inclusion proof).

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use veritrail_api::media::IDEMPOTENCY_KEY_HEADER;
use veritrail_api::{AppendedRecord, ErrorBody, FieldProblem, RecordWithProof, RecordsResponse};
use veritrail_ledger::{Hash, leaf_hash};
use veritrail_records::{
    MAX_RECORDS_PER_REQUEST, NONCE_BYTES, SubmittedBy, Unchained, parse_event, parse_leaf,
    scrub_event,
};

use crate::AppState;
use crate::auth::Role;
use crate::error::{ApiError, Internal, InvalidEntry, NotFound};
use crate::idempotency::{Claim, Scope, validate_key};
use crate::openapi::{AccessErrors, InternalError, TimeoutError, WaitFor};
use crate::query::{Params, parse_u64, path_text};
use crate::routes::append::{appended, wait_published};
use crate::routes::ledger::{b64, blocking, latest};

/// `POST /v1/records[?wait=published]`
#[utoipa::path(
    post,
    path = "/v1/records",
    tag = "records",
    summary = "Append agent audit records, answered once durable",
    description = "One record (a JSON object) or a JSON array of 1 to 1,000, validated against \
the event schema (`/v1/schema/event.json`, `docs/events.md`). The server adds `id` if absent, \
`received_at`, `submitted_by` (the authenticated token), a 128-bit random `nonce`, and `prev`: \
the index and leaf hash of the previous record of the same `conversation_id`, set inside the \
commit so that a conversation's records form one chain. The leaf is `0x01` followed by the RFC \
8785 canonical JSON of the stored record. The request is all or nothing. Role: `append`.",
    params(
        ("wait" = Option<WaitFor>, Query,
            description = "`published`: also wait for a signed checkpoint covering the records \
and return it with inclusion proofs and receipts"),
        ("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]{1,255}$", min_length = 1,
            max_length = 255, example = "7f3c9a1e-records-42",
            description = "1 to 255 visible ASCII characters, as for `POST /v1/entries`: a retry \
with the same key and body gets the original records"),
    ),
    request_body(description = "One event object, or an array of them", content_type = "application/json",
        content = Object),
    responses(
        (status = 200, description = "Durable, one element per record in order", body = RecordsResponse),
        (status = 400, description = "`invalid_parameter`, or `invalid_entry` (the body is not \
JSON, or an empty or too long array)", body = ErrorBody),
        AccessErrors,
        (status = 408, description = "`timeout`", body = ErrorBody),
        (status = 409, description = "`conversation_closed`: a record names a conversation that \
ended; or `idempotency_conflict`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`invalid_record`: `problems` lists every field at fault \
as `{field, problem}`, the record's position first for an array (`[2].actor.type`)", body = ErrorBody),
        (status = 503, description = "`overloaded`, `shutting_down` or `store_unavailable`; \
nothing was appended", body = ErrorBody),
        (status = 507, description = "`insufficient_storage`: the disk is full; nothing was \
appended", body = ErrorBody),
    ),
    security(("bearer" = ["append"]))
)]
pub(crate) async fn append_records(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.auth.require(&headers, Role::Append)?;
    let submitted_by = match state.auth.caller(&headers)? {
        Some(caller) => SubmittedBy::Token { name: caller.name },
        None => SubmittedBy::Anonymous,
    };
    let params = Params::parse(query.as_deref(), &["wait"])?;
    let wait = wait_published(&params)?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: state.config.limits.max_body_bytes,
        },
        _ => InvalidEntry::Unreadable(e).into(),
    })?;
    let records = prepare(&state, &body, &submitted_by)?;
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let timeout = state.config.limits.request_timeout;

    let ticket = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => None,
        Some(value) => {
            let key = validate_key(value.as_bytes())?;
            let digest: [u8; 32] = Sha256::new()
                .chain_update(b"veritrail/records-request/v1\0")
                .chain_update(&body)
                .finalize()
                .into();
            let scope = Scope::of_request(&headers, state.config.no_auth);
            match state
                .idempotency
                .claim(&scope, key, digest, timeout)
                .await?
            {
                Claim::Fresh(ticket) => Some(ticket),
                Claim::Replay(indices) => {
                    metrics::counter!("veritrail_append_replayed_total").increment(1);
                    return replay(&state, indices, wait).await;
                }
            }
        }
    };
    let keyed = ticket.as_ref().map(|ticket| ticket.keyed());
    let count = records.len();
    let receiver = match state.sequencer.submit_records(records, keyed) {
        Ok(receiver) => receiver,
        Err(err) => {
            if let Some(ticket) = ticket {
                ticket.finish(&state.idempotency, None);
            }
            return Err(err);
        }
    };
    let committed = match ticket {
        None => receiver
            .await
            .map_err(|_| ApiError::from(Internal::CommitterStopped))??,
        // As for entries: the outcome is recorded even if this request goes away.
        Some(ticket) => {
            let state = state.clone();
            tokio::spawn(async move {
                let committed = receiver
                    .await
                    .map_err(|_| ApiError::from(Internal::CommitterStopped))
                    .and_then(|r| r);
                let indices = committed.as_ref().ok().map(|c| c.indices.clone());
                ticket.finish(&state.idempotency, indices);
                committed
            })
            .await
            .map_err(|source| Internal::Task {
                what: "append records",
                source,
            })??
        }
    };
    if committed.leaf_hashes.len() != count || committed.leaves.len() != count {
        return Err(Internal::EmptyResult.into());
    }
    metrics::counter!("veritrail_records_appended_total").increment(count as u64);
    respond(
        &state,
        committed.indices,
        &committed.leaf_hashes,
        ids,
        &committed.leaves,
        wait,
    )
    .await
}

/// Parses and validates the body (one event or an array) and encodes every record. All
/// problems of all records are reported together.
fn prepare(
    state: &AppState,
    body: &[u8],
    submitted_by: &SubmittedBy,
) -> Result<Vec<Unchained>, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::InvalidEntry(InvalidEntry::NotJson {
            message: e.to_string(),
        })
    })?;
    let (events, array) = match value {
        serde_json::Value::Array(items) => (items, true),
        other => (vec![other], false),
    };
    if events.is_empty() || events.len() > MAX_RECORDS_PER_REQUEST {
        return Err(InvalidEntry::RecordCount {
            count: events.len(),
            max: MAX_RECORDS_PER_REQUEST,
        }
        .into());
    }
    let received_at = time::OffsetDateTime::now_utc();
    let mut problems = Vec::new();
    let mut records = Vec::with_capacity(events.len());
    for (position, event) in events.iter().enumerate() {
        let prefix = |field: String| match (array, field.is_empty()) {
            (false, _) => field,
            (true, true) => format!("[{position}]"),
            (true, false) => format!("[{position}].{field}"),
        };
        match parse_event(event) {
            Err(found) => problems.extend(found.into_iter().map(|p| FieldProblem {
                field: prefix(p.field),
                problem: p.problem,
            })),
            Ok(mut event) => {
                let scrubbed =
                    match scrub_event(&state.scrubber, &mut event, state.config.records.scrub) {
                        Ok(kinds) => kinds,
                        Err(found) => {
                            problems.extend(found.into_iter().map(|p| FieldProblem {
                                field: prefix(p.field),
                                problem: p.problem,
                            }));
                            continue;
                        }
                    };
                if !scrubbed.is_empty() {
                    metrics::counter!("veritrail_records_scrubbed_total").increment(1);
                }
                let mut nonce = [0u8; NONCE_BYTES];
                getrandom::fill(&mut nonce).map_err(Internal::Random)?;
                match Unchained::scrubbed(event, submitted_by, received_at, nonce, &scrubbed) {
                    Ok(record) => records.push(record),
                    Err(e) => problems.push(FieldProblem {
                        field: prefix(String::new()),
                        problem: e.to_string(),
                    }),
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::InvalidRecord { problems });
    }
    Ok(records)
}

/// The answer to a retry: the records committed at `indices`, read back from the log.
async fn replay(
    state: &AppState,
    indices: std::ops::Range<u64>,
    wait: bool,
) -> Result<Response, ApiError> {
    let wanted = indices.clone();
    let leaves = blocking(state, move |ledger| {
        wanted
            .map(|index| ledger.entry(index))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let hashes: Vec<Hash> = leaves.iter().map(|leaf| leaf_hash(leaf)).collect();
    let ids = leaves
        .iter()
        .map(|leaf| {
            parse_leaf(leaf)
                .ok()
                .and_then(|r| r.get("id").and_then(|id| id.as_str()).map(str::to_owned))
                .ok_or(ApiError::Internal(Internal::EmptyResult))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let leaves: Vec<Bytes> = leaves.into_iter().map(Bytes::from).collect();
    respond(state, indices, &hashes, ids, &leaves, wait).await
}

async fn respond(
    state: &AppState,
    indices: std::ops::Range<u64>,
    hashes: &[Hash],
    ids: Vec<String>,
    leaves: &[Bytes],
    wait: bool,
) -> Result<Response, ApiError> {
    let entries = appended(state, indices, hashes, wait).await?;
    let records = entries
        .into_iter()
        .zip(ids)
        .zip(leaves)
        .map(|((entry, id), leaf)| AppendedRecord {
            id,
            index: entry.index,
            leaf_hash: entry.leaf_hash,
            leaf: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, leaf),
            checkpoint: entry.checkpoint,
            inclusion_proof: entry.inclusion_proof,
            receipt: entry.receipt,
        })
        .collect();
    Ok(Json(RecordsResponse { records }).into_response())
}

/// `GET /v1/records/<index>`
#[utoipa::path(
    get,
    path = "/v1/records/{index}",
    tag = "records",
    summary = "One stored record with its inclusion proof",
    description = "The record as stored (JSON), its leaf hash, and an inclusion proof against \
the latest signed checkpoint, which must cover it. A client recomputes the leaf as `0x01` ‖ \
RFC 8785 canonical JSON of `record`, hashes it, and verifies the proof. Role: `audit` (or \
`admin`).",
    params(("index" = u64, Path, example = 600,
        description = "Leaf index (canonical decimal); a raw entry, or an index beyond the log, \
is 404")),
    responses(
        (status = 200, description = "The record", body = RecordWithProof),
        (status = 400, description = "`invalid_parameter`", body = ErrorBody),
        AccessErrors,
        (status = 404, description = "`not_found`: no such entry, a raw entry (not a record), \
or not covered by the latest checkpoint yet", body = ErrorBody),
        TimeoutError,
        InternalError,
    ),
    security(("bearer" = ["audit"]))
)]
pub(crate) async fn record(
    State(state): State<AppState>,
    headers: HeaderMap,
    index: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.auth.require(&headers, Role::Audit)?;
    Params::parse(query.as_deref(), &[])?;
    let index = parse_u64("index", &path_text("index", index)?)?;
    let published = latest(&state)?;
    let size = published.size();
    if index >= size {
        let committed = state.ledger.tree_head().size;
        return Err(if index < committed {
            NotFound::NotCovered { index, size }.into()
        } else {
            NotFound::Entry {
                index,
                size: committed,
            }
            .into()
        });
    }
    let (leaf, proof) = blocking(&state, move |l| {
        Ok((l.entry(index)?, l.inclusion_proof(index, size)?))
    })
    .await?;
    let record = parse_leaf(&leaf).map_err(|_| NotFound::NotARecord { index })?;
    Ok(Json(RecordWithProof {
        index,
        record,
        leaf_hash: leaf_hash(&leaf).to_base64(),
        size,
        proof: b64(&proof),
        checkpoint: String::from_utf8_lossy(&published.checkpoint.note).into_owned(),
    })
    .into_response())
}

/// `GET /v1/schema/event.json`
#[utoipa::path(
    get,
    path = "/v1/schema/event.json",
    tag = "records",
    summary = "The JSON Schema of an agent audit event",
    description = "JSON Schema draft 2020-12 of what `POST /v1/records` takes (one event), \
checked in CI to accept and refuse what the server's validator does; its `description` names \
the few rules JSON Schema cannot state. Public.",
    responses(
        (status = 200, description = "The schema", content_type = "application/schema+json"),
    )
)]
pub(crate) async fn event_schema() -> Response {
    crate::routes::reply::typed(
        "application/schema+json",
        Some("public, max-age=3600"),
        veritrail_records::EVENT_SCHEMA,
    )
}
