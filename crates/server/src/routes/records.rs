//! Agent records: `POST /v1/records` (validated, attested, chained, canonical) and
//! `GET /v1/records/<index>` (the stored record with its inclusion proof).

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use veritrail_api::{AppendedRecord, ErrorBody, FieldProblem, RecordWithProof, RecordsResponse};
use veritrail_ledger::{Hash, leaf_hash};
use veritrail_records::{
    MAX_RECORDS_PER_REQUEST, NONCE_BYTES, SubmittedBy, Unchained, parse_leaf, parse_submission,
    scrub_event,
};

use crate::payloads::{self, Filing};

use crate::AppState;
use crate::access::{append_server_record, record_read};
use crate::auth::{Caller, Principal, Role};
use crate::error::{ApiError, Internal, InvalidEntry, NotFound};
use crate::idempotency::Fingerprint;
use crate::openapi::{AccessErrors, InternalError, TimeoutError, WaitFor};
use crate::query::{Params, parse_u64, path_text};
use crate::routes::append::{Keying, appended, claim_key, commit, wait_published};
use crate::routes::ledger::{b64, blocking, latest};

/// `POST /v1/records[?wait=published]`
#[utoipa::path(
    post,
    path = "/v1/records",
    tag = "records",
    summary = "Append agent audit records, answered once durable",
    description = "One record (a JSON object) or a JSON array of 1 to 1,000, validated against \
the event schema (`/v1/schema/event.json`, `docs/events.md`). The server adds `id` if absent, \
`received_at`, `submitted_by` (the authenticated token, or the `iss` and `sub` of a verified OIDC \
JWT), a 128-bit random `nonce`, and `prev`: \
the index and leaf hash of the previous record of the same `conversation_id`, set inside the \
commit so that a conversation's records form one chain. The classification registry may raise \
`classification` and add `compliance` domains; secrets in `details` and `resource.uri` are \
redacted (or refused with `--scrub reject`). The leaf is `0x01` followed by the RFC \
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
    let submitted_by = submitter(state.auth.authorize(&headers, Role::Append)?);
    let params = Params::parse(query.as_deref(), &["wait"])?;
    let wait = wait_published(&params)?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: state.config.limits.max_body_bytes,
        },
        _ => InvalidEntry::Unreadable(e).into(),
    })?;
    let (records, filings) = prepare(&state, &body, &submitted_by)?;
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    // Bound to the body; journaled with the records' nonces, which a restart finds again in
    // the leaves (see `Fingerprint::Records`).
    let digest = || {
        Fingerprint::records(&body, &records)
            .map_err(|e| ApiError::Internal(Internal::Record(e.to_string())))
    };
    let ticket = match claim_key(&state, &headers, digest).await? {
        Keying::Replay(indices) => return replay(&state, indices, wait).await,
        Keying::Fresh(ticket) => ticket,
    };
    // After the key is claimed, so a replayed retry files no payloads that no record would
    // ever commit to; durable before the records that commit to them are queued. A failure
    // frees the key (a request dropped here frees it too: its ticket goes with it).
    if let Err(e) = store_payloads(&state, filings).await {
        if let Some(ticket) = ticket {
            ticket.finish(&state.idempotency, None);
        }
        return Err(e);
    }
    let count = records.len();
    let committed = commit(
        &state,
        ticket,
        |keyed| state.sequencer.submit_records(records, keyed),
        "append records",
    )
    .await?;
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

/// Files the payloads of a request's records in the payload store, durably (nothing to do
/// for records without payloads).
///
/// # Errors
/// `store_failure` (507 when the disk is full); `prepare` refuses payloads when the server
/// keeps no store, so its absence here is internal.
pub(crate) async fn store_payloads(state: &AppState, filings: Vec<Filing>) -> Result<(), ApiError> {
    if filings.is_empty() {
        return Ok(());
    }
    let store = state
        .payloads
        .clone()
        .ok_or_else(|| Internal::Record("payloads without a payload store".into()))?;
    store.store_all(filings).await.map_err(|e| {
        tracing::error!(error = %e, "payloads not stored; nothing was appended");
        ApiError::store_failure(e.is_no_space())
    })
}

/// Parses and validates the body (one event or an array) and encodes every record. All
/// problems of all records are reported together.
fn prepare(
    state: &AppState,
    body: &[u8],
    submitted_by: &SubmittedBy,
) -> Result<(Vec<Unchained>, Vec<Filing>), ApiError> {
    let (events, array) = match crate::body::json_bytes(body)? {
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
    let mut filings = Vec::new();
    for (position, event) in events.iter().enumerate() {
        let prefix = |field: String| match (array, field.is_empty()) {
            (false, _) => field,
            (true, true) => format!("[{position}]"),
            (true, false) => format!("[{position}].{field}"),
        };
        match prepare_event(state, event, submitted_by, received_at)? {
            Ok((record, filing)) => {
                records.push(record);
                filings.extend(filing);
            }
            Err(found) => problems.extend(found.into_iter().map(|p| FieldProblem {
                field: prefix(p.field),
                problem: p.problem,
            })),
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::InvalidRecord { problems });
    }
    Ok((records, filings))
}

/// A record ready to append, with its payloads to file; or why the event was refused.
pub(crate) type Prepared = Result<(Unchained, Option<Filing>), Vec<FieldProblem>>;

/// One submitted event validated, classified, scrubbed and encoded as a record received at
/// `received_at`, with its payloads to file (`None` without payloads); or every problem
/// found, by field.
///
/// # Errors
/// [`Internal`] errors only (the random source, payload commitments).
pub(crate) fn prepare_event(
    state: &AppState,
    event: &serde_json::Value,
    submitted_by: &SubmittedBy,
    received_at: time::OffsetDateTime,
) -> Result<Prepared, ApiError> {
    let (mut event, payloads) = match parse_submission(event) {
        Err(found) => {
            return Ok(Err(found
                .into_iter()
                .map(|p| FieldProblem {
                    field: p.field,
                    problem: p.problem,
                })
                .collect()));
        }
        Ok(parsed) => parsed,
    };
    if !payloads.is_empty() && state.payloads.is_none() {
        return Ok(Err(vec![FieldProblem {
            field: "payloads".into(),
            problem: "this server keeps no payload store; send the record without payloads".into(),
        }]));
    }
    if state.classifier.current().apply(&mut event) {
        metrics::counter!("veritrail_records_classified_total").increment(1);
    }
    let scrubbed = match scrub_event(&state.scrubber, &mut event, state.config.records.scrub) {
        Ok(kinds) => kinds,
        Err(found) => {
            return Ok(Err(found
                .into_iter()
                .map(|p| FieldProblem {
                    field: p.field,
                    problem: p.problem,
                })
                .collect()));
        }
    };
    if !scrubbed.is_empty() {
        metrics::counter!("veritrail_records_scrubbed_total").increment(1);
    }
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(Internal::Random)?;
    let (refs, keyed) = payloads::commit(payloads).map_err(Internal::Payload)?;
    let subject = event.subject.clone();
    let conversation_id = event.conversation_id.clone();
    match Unchained::with(event, submitted_by, received_at, nonce, &scrubbed, &refs) {
        Ok(record) => {
            let filing = (!keyed.is_empty()).then(|| Filing {
                nonce,
                label: payloads::label_of(
                    subject.as_deref(),
                    conversation_id.as_deref(),
                    &record.id,
                ),
                conversation_id,
                payloads: keyed,
            });
            Ok(Ok((record, filing)))
        }
        Err(e) => Ok(Err(vec![FieldProblem {
            field: String::new(),
            problem: e.to_string(),
        }])),
    }
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
                .ok_or_else(|| {
                    ApiError::Internal(Internal::Record(
                        "an entry remembered for an idempotency key is not a record".into(),
                    ))
                })
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
        (status = 410, description = "`archived`: archived and purged from this server; the \
message names the archive and the purge record", body = ErrorBody),
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
    let caller = state.auth.authorize(&headers, Role::Audit)?;
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
    let leaf = crate::archive::entry(&state, index).await?;
    let proof = blocking(&state, move |l| l.inclusion_proof(index, size)).await?;
    let record = parse_leaf(&leaf).map_err(|_| NotFound::NotARecord { index })?;
    let mut read = serde_json::Map::new();
    read.insert("index".into(), index.into());
    record_read(&state, caller, "GET /v1/records/{index}", read);
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

/// The payload of a record, opened: what `GET /v1/records/{index}/payloads/{name}` returns.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct PayloadAnswer {
    /// Its media type.
    media_type: String,
    /// The payload, standard base64.
    payload: String,
    /// The opening key of the record's commitment to it, standard base64.
    opening_key: String,
}

/// `GET /v1/records/<index>/payloads/<name>`
#[utoipa::path(
    get,
    path = "/v1/records/{index}/payloads/{name}",
    tag = "records",
    summary = "A record's payload with its opening key",
    description = "The payload the record at `index` commits to under `name`, decrypted from \
the payload store, with its opening key. Verify before use: \
`HMAC-SHA-256(opening_key, \"veritrail/payload/v1\" ‖ payload)` must equal the commitment in the \
record, whose inclusion you prove. After an erasure: 410 `payload_erased`, naming the erasure \
record. Role: `audit` (or `admin`).",
    params(
        ("index" = u64, Path, example = 600, description = "The record's index"),
        ("name" = String, Path, example = "prompt", pattern = r"^[a-z0-9_][a-z0-9_.-]{0,63}$",
            description = "The payload's name"),
    ),
    responses(
        (status = 200, description = "The payload", body = PayloadAnswer),
        (status = 400, description = "`invalid_parameter`", body = ErrorBody),
        AccessErrors,
        (status = 404, description = "`not_found`: no such record or payload", body = ErrorBody),
        (status = 410, description = "`payload_erased`: destroyed by the erasure record the \
message names; `archived`: the record was archived and purged from this server (its payloads \
are in the archive, sealed)", body = ErrorBody),
        TimeoutError,
        InternalError,
    ),
    security(("bearer" = ["audit"]))
)]
pub(crate) async fn payload(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let caller = state.auth.authorize(&headers, Role::Audit)?;
    Params::parse(query.as_deref(), &[])?;
    let Path((index, name)) = path.map_err(|e| ApiError::param("path", e.body_text()))?;
    let index = parse_u64("index", &index)?;
    if !veritrail_records::payload::is_payload_name(&name) {
        return Err(ApiError::param(
            "name",
            "a payload name is 1 to 64 of a-z, 0-9, _, - and .",
        ));
    }
    let Some(store) = state.payloads.clone() else {
        return Err(NotFound::Payload { index, name }.into());
    };
    let leaf = blocking(&state, move |l| l.entry(index))
        .await
        .map_err(|e| match e {
            ApiError::IndexOutOfRange { index, size } => NotFound::Entry { index, size }.into(),
            other => other,
        })?;
    let record = parse_leaf(&leaf).map_err(|_| NotFound::NotARecord { index })?;
    let committed = veritrail_records::payload::stored_commitment(&record, &name);
    let nonce = record
        .get("nonce")
        .and_then(|n| n.as_str())
        .and_then(|n| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, n).ok());
    let (Some(_), Some(nonce)) = (committed, nonce) else {
        return Err(NotFound::Payload { index, name }.into());
    };
    let wanted = name.clone();
    let found = tokio::task::spawn_blocking(move || store.fetch(&nonce, &wanted))
        .await
        .map_err(|source| Internal::Task {
            what: "payload",
            source,
        })?
        .map_err(Internal::Payload)?;
    match found {
        payloads::Lookup::Found(opened) => {
            let mut read = serde_json::Map::new();
            read.insert("index".into(), index.into());
            read.insert("payload".into(), serde_json::Value::String(name.clone()));
            record_read(
                &state,
                caller,
                "GET /v1/records/{index}/payloads/{name}",
                read,
            );
            let b64 =
                |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
            Ok(Json(PayloadAnswer {
                media_type: opened.media_type,
                payload: b64(&opened.payload),
                opening_key: b64(&opened.opening_key),
            })
            .into_response())
        }
        payloads::Lookup::Erased(erasure_index) => Err(ApiError::PayloadErased { erasure_index }),
        payloads::Lookup::Missing => Err(NotFound::Payload { index, name }.into()),
    }
}

/// The body of `POST /v1/admin/erase`: exactly one target, and why.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged, deny_unknown_fields)]
pub(crate) enum EraseRequest {
    /// Every payload of a data subject (its data key is destroyed).
    Subject {
        /// The subject, as records name it in `subject`.
        #[schema(min_length = 1, max_length = 256, example = "P-0042")]
        subject: String,
        /// Why (1 to 1024 characters); recorded in the erasure record.
        #[schema(
            min_length = 1,
            max_length = 1024,
            example = "GDPR art. 17 request 2026-114"
        )]
        reason: String,
    },
    /// Every payload of the records of a conversation.
    Conversation {
        /// The conversation.
        #[schema(min_length = 1, max_length = 256, example = "c-9")]
        conversation_id: String,
        /// Why.
        #[schema(min_length = 1, max_length = 1024)]
        reason: String,
    },
    /// The payloads of one record.
    Index {
        /// The record's index.
        #[schema(example = 601)]
        index: u64,
        /// Why.
        #[schema(min_length = 1, max_length = 1024)]
        reason: String,
    },
}

/// The answer of `POST /v1/admin/erase`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct EraseAnswer {
    /// The index of the `x-veritrail.erasure` record appended for it.
    erasure_index: u64,
    /// Records whose payloads were destroyed.
    records_affected: usize,
    /// Data keys destroyed.
    keys_destroyed: usize,
}

/// `POST /v1/admin/erase`
#[utoipa::path(
    post,
    path = "/v1/admin/erase",
    tag = "records",
    summary = "Erase payloads (crypto-shredding), recorded in the log",
    description = "Destroys the data key and the stored payloads of a data subject, of every \
record of a conversation, or of one record, after appending an `x-veritrail.erasure` record \
naming what was erased (a subject by its key id, never in the clear), by whom and why. The tree \
is untouched: every proof, receipt and replay still verifies; the payload endpoint then answers \
410 naming the erasure record. Role: `admin`.",
    request_body(content = EraseRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Erased", body = EraseAnswer),
        (status = 400, description = "`invalid_entry`: not exactly one target, or no reason", body = ErrorBody),
        AccessErrors,
        (status = 404, description = "`not_found`: the index is not a record", body = ErrorBody),
        TimeoutError,
        (status = 422, description = "`index_out_of_range`: the index is beyond the log", body = ErrorBody),
        InternalError,
        (status = 503, description = "`overloaded`, `store_unavailable`", body = ErrorBody),
        (status = 507, description = "`insufficient_storage`", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn erase(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = state.auth.authorize(&headers, Role::Admin)?;
    Params::parse(query.as_deref(), &[])?;
    // Exactly one target: an object with more keys than one target and `reason` is refused.
    let value = crate::body::json(body)?;
    if value.as_object().is_none_or(|o| o.len() != 2) {
        return Err(ApiError::param(
            "target",
            "give exactly one of subject, conversation_id or index, and reason",
        ));
    }
    // JSON has one number type: `33.0` is the integer 33 (as JSON Schema says).
    let mut value = value;
    if let Some(index) = value.get_mut("index")
        && let Some(float) = index.as_f64()
        && !index.is_u64()
        && float.fract() == 0.0
        && (0.0..=veritrail_records::MAX_INTEGER as f64).contains(&float)
    {
        *index = serde_json::Value::from(float as u64);
    }
    let request: EraseRequest = serde_json::from_value(value).map_err(|_| {
        ApiError::param(
            "target",
            "give exactly one of subject (a string), conversation_id (a string) or index (a number), and reason (a string)",
        )
    })?;
    let (subject, conversation_id, index, reason) = match request {
        EraseRequest::Subject { subject, reason } => (Some(subject), None, None, reason),
        EraseRequest::Conversation {
            conversation_id,
            reason,
        } => (None, Some(conversation_id), None, reason),
        EraseRequest::Index { index, reason } => (None, None, Some(index), reason),
    };
    if !(1..=1024).contains(&reason.chars().count()) {
        return Err(ApiError::param("reason", "1 to 1024 characters"));
    }
    if [&subject, &conversation_id]
        .into_iter()
        .flatten()
        .any(|t| !(1..=256).contains(&t.chars().count()))
    {
        return Err(ApiError::param("target", "1 to 256 characters"));
    }
    let store = state
        .payloads
        .clone()
        .ok_or_else(|| ApiError::param("target", "this server keeps no payload store"))?;
    // What is erased, and how the erasure record names it.
    let (target, label, conversation, nonce) = match (&subject, &conversation_id, index) {
        (Some(subject), _, _) => {
            let label = payloads::label_of(Some(subject), None, "");
            (
                serde_json::json!({"subject_key": store.key_id(&label)}),
                Some(label),
                None,
                None,
            )
        }
        (_, Some(conversation), _) => (
            serde_json::json!({"conversation_id": conversation}),
            Some(payloads::label_of(None, Some(conversation), "")),
            Some(conversation.clone()),
            None,
        ),
        (_, _, Some(index)) => {
            let leaf = blocking(&state, move |l| l.entry(index)).await?;
            let record = parse_leaf(&leaf).map_err(|_| NotFound::NotARecord { index })?;
            let nonce = record
                .get("nonce")
                .and_then(|n| n.as_str())
                .and_then(|n| {
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, n).ok()
                })
                .ok_or(NotFound::NotARecord { index })?;
            // A record with neither subject nor conversation has a key of its own.
            let own = match (
                record.get("subject"),
                record.get("conversation_id"),
                record.get("id"),
            ) {
                (None, None, Some(id)) => id.as_str().map(|id| payloads::label_of(None, None, id)),
                _ => None,
            };
            (serde_json::json!({"index": index}), own, None, Some(nonce))
        }
        (None, None, None) => return Err(ApiError::param("target", "no target")),
    };
    let scan = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            store.affected(label.as_deref(), conversation.as_deref(), nonce.as_deref())
        })
    };
    let affected = scan
        .await
        .map_err(|source| Internal::Task {
            what: "erase",
            source,
        })?
        .map_err(|e| ApiError::store_failure(e.is_no_space()))?;
    // First the record of the erasure, durable; then the destruction.
    let mut details = serde_json::Map::new();
    details.insert("target".into(), target);
    details.insert("reason".into(), serde_json::Value::String(reason));
    details.insert("records_affected".into(), affected.records.len().into());
    details.insert("keys_destroyed".into(), affected.keys.len().into());
    let erasure_index = append_server_record(
        &state,
        "x-veritrail.erasure",
        caller,
        veritrail_records::ActorType::Admin,
        details,
    )
    .await?;
    store.destroy(&affected, erasure_index).await.map_err(|e| {
        tracing::error!(error = %e, erasure_index, "erasure recorded but not finished; retry it");
        ApiError::store_failure(e.is_no_space())
    })?;
    tracing::info!(
        erasure_index,
        records = affected.records.len(),
        "payloads erased"
    );
    metrics::counter!("veritrail_payload_erasures_total").increment(1);
    Ok(Json(EraseAnswer {
        erasure_index,
        records_affected: affected.records.len(),
        keys_destroyed: affected.keys.len(),
    })
    .into_response())
}

/// The `submitted_by` of a record posted by `caller`: the authenticated principal, never the
/// client's own claim.
pub(crate) fn submitter(caller: Option<Caller>) -> SubmittedBy {
    match caller.map(|c| c.principal) {
        Some(Principal::Token { name }) => SubmittedBy::Token { name },
        Some(Principal::Oidc { issuer, subject }) => SubmittedBy::Oidc { issuer, subject },
        None => SubmittedBy::Anonymous,
    }
}
